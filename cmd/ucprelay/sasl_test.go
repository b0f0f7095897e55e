package main

import (
	"strings"
	"testing"

	"github.com/ucprelay/ucprelay/internal/kafkatest"
)

// The Kafka SASL options against the real broker's SASL_PLAINTEXT listener: with each
// mechanism, topics create and produce log in with the password from the environment;
// a wrong password fails with an authentication error that does not print it.
func TestKafkaSASLRealKafka(t *testing.T) {
	t.Parallel()
	plain := kafkatest.Brokers(t)
	sasl := kafkatest.SASLBrokers(t)
	tt := newTestTopics(t, plain, 2)
	for _, mech := range []string{"PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"} {
		cfg := tt.variant(t, "-"+mech).config(t, sasl[0],
			"  sasl:\n    mechanism: "+mech+"\n    username: "+kafkatest.SASLUser+"\n    password_env: KAFKA_PASSWORD\n", nowhere, "")
		env := []string{"KAFKA_PASSWORD=" + kafkatest.SASLPassword}
		if out, err := run(t, env, "--config", cfg, "topics", "create", "--replication", "1"); err != nil {
			t.Fatalf("%s: topics create: %v\n%s", mech, err, out)
		}
		if out, err := run(t, env, "--config", cfg, "produce", "--sample", "1", "--seed", "5"); err != nil || !strings.Contains(out, "produced") {
			t.Fatalf("%s: produce: %v\n%s", mech, err, out)
		}
		out, err := run(t, []string{"KAFKA_PASSWORD=wrong-password"}, "--config", cfg, "produce", "--sample", "1")
		if err == nil {
			t.Fatalf("%s: a wrong password was accepted\n%s", mech, out)
		}
		if msg := err.Error() + out; !strings.Contains(strings.ToLower(msg), "authentication") || strings.Contains(msg, "wrong-password") {
			t.Errorf("%s: wrong password: %v", mech, err)
		}
	}
}
