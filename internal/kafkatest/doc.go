// Package kafkatest gives tests a Kafka to talk to: the real Apache Kafka broker that
// `make test` starts (scripts/kafka.sh), located through UCPRELAY_TEST_BROKERS, and
// in-process kfake clusters for fast tests and fault injection.
//
// Every test that uses the shared real broker takes unique topic, group and
// transactional ids from [Names], so packages can run in parallel against one broker,
// and the topics it creates are deleted when the test ends.
//
// Policy for a missing broker: with CI=true a test that needs Kafka fails; otherwise it
// is skipped with a message that says how to start one.
package kafkatest
