package main

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/ucprelay/ucprelay/internal/kafkatest"
)

// The Kafka TLS options against the real broker's SSL listener, which requires a client
// certificate: with the CA and the client certificate, topics create and produce work;
// without the client certificate, or trusting only the system roots, they fail at once
// naming the TLS problem.
func TestKafkaTLSRealKafka(t *testing.T) {
	t.Parallel()
	plain := kafkatest.Brokers(t)
	tlsSeeds, dir := kafkatest.TLSBrokers(t)
	tt := newTestTopics(t, plain, 2)
	write := func(tls string) string { return tt.config(t, tlsSeeds[0], "  tls:\n"+tls, nowhere, "") }
	ca, cert, key := filepath.Join(dir, "ca.pem"), filepath.Join(dir, "client.pem"), filepath.Join(dir, "client-key.pem")
	good := write("    enabled: true\n    ca_file: " + ca + "\n    cert_file: " + cert + "\n    key_file: " + key + "\n")
	if out, err := run(t, nil, "--config", good, "topics", "create", "--replication", "1"); err != nil {
		t.Fatalf("topics create over mutual TLS: %v\n%s", err, out)
	}
	if out, err := run(t, nil, "--config", good, "produce", "--sample", "1", "--seed", "9"); err != nil || !strings.Contains(out, "produced") {
		t.Fatalf("produce over mutual TLS: %v\n%s", err, out)
	}
	for name, tls := range map[string]string{
		"no client certificate": "    enabled: true\n    ca_file: " + ca + "\n",
		"system roots":          "    enabled: true\n    cert_file: " + cert + "\n    key_file: " + key + "\n",
	} {
		_, err := run(t, nil, "--config", write(tls), "produce", "--sample", "1")
		if err == nil || !strings.Contains(err.Error(), "kafka.tls") {
			t.Errorf("%s: %v", name, err)
		}
	}
}
