package main

import (
	"os"
	"path/filepath"
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
	n := kafkatest.NewNames(t)
	adm := kafkatest.Admin(t, plain)
	input := n.Topic("orders")
	kafkatest.CreateTopic(t, adm, input, 2, nil)
	for _, mech := range []string{"PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"} {
		state, dlq := n.Topic("state-"+mech), n.Topic("dlq-"+mech)
		t.Cleanup(func() { _, _ = adm.DeleteTopics(t.Context(), state, dlq) })
		cfg := filepath.Join(t.TempDir(), "c.yaml")
		body := "kafka:\n  brokers: [" + sasl[0] + "]\n  input_topic: " + input + "\n  state_topic: " + state + "\n  dead_letter_topic: " + dlq +
			"\n  sasl:\n    mechanism: " + mech + "\n    username: " + kafkatest.SASLUser + "\n    password_env: KAFKA_PASSWORD\n" +
			"partners:\n  google:\n    base_url: http://127.0.0.1:9\n"
		if err := os.WriteFile(cfg, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
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
