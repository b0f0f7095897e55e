package kafkatest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// EnvBrokers names the environment variable that holds the real broker's bootstrap
// addresses, comma-separated. `make test` sets it.
const EnvBrokers = "UCPRELAY_TEST_BROKERS"

const startHint = "start a real broker with `make kafka-up` and export " + EnvBrokers + "=127.0.0.1:39092, or run `make test`"

// TB is the part of testing.TB the helpers need; *testing.T and *testing.B satisfy it.
type TB interface {
	Helper()
	Name() string
	Logf(format string, args ...any)
	Fatalf(format string, args ...any)
	Skipf(format string, args ...any)
	Cleanup(func())
}

// InCI reports whether the tests run in CI (CI=true), where a missing broker is a failure.
func InCI() bool { return strings.EqualFold(os.Getenv("CI"), "true") || os.Getenv("CI") == "1" }

var (
	pingMu    sync.Mutex
	pingCache = map[string]error{}
)

// Brokers returns the real broker's seed addresses after checking, once per process and
// address list, that it answers a metadata request. Without a reachable broker the test
// fails in CI and is skipped elsewhere, with a message that says how to start one.
func Brokers(t TB) []string {
	t.Helper()
	if testing.Short() {
		t.Skipf("needs real Kafka; skipped in -short mode (make test-unit)")
		return nil
	}
	raw := strings.TrimSpace(os.Getenv(EnvBrokers))
	if raw == "" {
		missing(t, EnvBrokers+" is not set")
		return nil
	}
	seeds := strings.Split(raw, ",")
	pingMu.Lock()
	err, done := pingCache[raw]
	if !done {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		err = Ping(ctx, seeds)
		cancel()
		pingCache[raw] = err
	}
	pingMu.Unlock()
	if err != nil {
		missing(t, fmt.Sprintf("broker %s does not answer: %v", raw, err))
		return nil
	}
	report(t.Name())
	return seeds
}

// EnvReport names a file to which every test that got the real broker appends its name,
// so `make test` can show which integration tests ran against it.
const EnvReport = "UCPRELAY_TEST_REPORT"

func report(name string) {
	p := os.Getenv(EnvReport)
	if p == "" {
		return
	}
	f, err := os.OpenFile(p, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o600) //nolint:gosec // a path the test runner chose
	if err != nil {
		return
	}
	_, _ = fmt.Fprintln(f, name)
	_ = f.Close()
}

func missing(t TB, why string) {
	t.Helper()
	if InCI() {
		t.Fatalf("real Kafka required in CI: %s (%s)", why, startHint)
	}
	t.Skipf("real Kafka not available: %s; %s", why, startHint)
}

// Ping waits until the brokers answer a metadata request or ctx ends.
func Ping(ctx context.Context, seeds []string) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(seeds...), kgo.RetryTimeout(2*time.Second))
	if err != nil {
		return fmt.Errorf("kafkatest: client: %w", err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	var last error
	for {
		bm, err := adm.BrokerMetadata(ctx)
		if err == nil && len(bm.Brokers) > 0 {
			return nil
		}
		if err == nil {
			err = fmt.Errorf("metadata lists no brokers")
		}
		last = err
		select {
		case <-ctx.Done():
			return fmt.Errorf("kafkatest: no metadata answer: %w", last)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// Names are unique ids for one test's topics, group and transactional ids, so tests can
// share one broker without seeing each other's records.
type Names struct{ prefix string }

var unsafeChars = regexp.MustCompile(`[^a-zA-Z0-9._-]+`)

// NewNames returns ids unique to this test and process.
func NewNames(t TB) Names {
	t.Helper()
	var b [4]byte
	_, _ = rand.Read(b[:])
	name := unsafeChars.ReplaceAllString(t.Name(), "_")
	if len(name) > 80 {
		name = name[len(name)-80:]
	}
	return Names{prefix: "t." + name + "." + hex.EncodeToString(b[:])}
}

// Topic returns a unique topic name with the given role, e.g. "input".
func (n Names) Topic(role string) string { return n.prefix + "." + role }

// Group returns a unique consumer group id.
func (n Names) Group() string { return n.prefix + ".group" }

// TxnID returns a unique transactional id prefix.
func (n Names) TxnID() string { return n.prefix + ".txn" }

// Prefix returns the common prefix of all names.
func (n Names) Prefix() string { return n.prefix }

// Admin returns an admin client for the seeds, closed when the test ends.
func Admin(t TB, seeds []string) *kadm.Client {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(seeds...), kgo.MetadataMinAge(50*time.Millisecond))
	if err != nil {
		t.Fatalf("kafkatest: admin client: %v", err)
	}
	t.Cleanup(cl.Close)
	return kadm.NewClient(cl)
}

// CreateTopic creates a topic with the given partition count and configs, and deletes it
// when the test ends.
func CreateTopic(t TB, adm *kadm.Client, name string, partitions int32, configs map[string]*string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	resp, err := adm.CreateTopic(ctx, partitions, 1, configs, name)
	if err == nil {
		err = resp.Err
	}
	if err != nil {
		t.Fatalf("kafkatest: create topic %s: %v", name, err)
	}
	// A broker answers CreateTopics before its metadata shows the topic everywhere.
	for {
		md, err := adm.Metadata(ctx, name)
		if err == nil {
			if td, ok := md.Topics[name]; ok && td.Err == nil && len(td.Partitions) == int(partitions) {
				break
			}
		}
		select {
		case <-ctx.Done():
			t.Fatalf("kafkatest: topic %s not visible: %v", name, ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := adm.DeleteTopics(ctx, name); err != nil {
			t.Logf("kafkatest: delete topic %s: %v", name, err)
		}
	})
}

// EnvSASLBrokers names the real broker's SASL_PLAINTEXT listener (scripts/kafka.sh
// sasl-brokers), where SASLUser logs in with SASLPassword by PLAIN or SCRAM.
const EnvSASLBrokers = "UCPRELAY_TEST_SASL_BROKERS"

// The test broker's own SASL user (scripts/kafka.sh); not a credential of anything else.
const (
	SASLUser     = "ucprelay"
	SASLPassword = "ucprelay-test-secret" //nolint:gosec // the local test broker's fixed user
)

// SASLBrokers returns the SASL listener of the real broker, with the same rules as
// Brokers when it is not there.
func SASLBrokers(t TB) []string {
	t.Helper()
	if Brokers(t) == nil {
		return nil
	}
	raw := strings.TrimSpace(os.Getenv(EnvSASLBrokers))
	if raw == "" {
		missing(t, EnvSASLBrokers+" is not set")
		return nil
	}
	return strings.Split(raw, ",")
}

// EnvTLSBrokers names the real broker's SSL listener, which requires a client
// certificate; EnvTLSDir the directory with its CA (ca.pem) and a client certificate
// (client.pem, client-key.pem).
const (
	EnvTLSBrokers = "UCPRELAY_TEST_TLS_BROKERS"
	EnvTLSDir     = "UCPRELAY_TEST_TLS_DIR"
)

// TLSBrokers returns the SSL listener of the real broker and the directory of its TLS
// material, with the same rules as Brokers when they are not there.
func TLSBrokers(t TB) ([]string, string) {
	t.Helper()
	if Brokers(t) == nil {
		return nil, ""
	}
	raw, dir := strings.TrimSpace(os.Getenv(EnvTLSBrokers)), os.Getenv(EnvTLSDir)
	if raw == "" || dir == "" {
		missing(t, EnvTLSBrokers+" or "+EnvTLSDir+" is not set")
		return nil, ""
	}
	return strings.Split(raw, ","), dir
}
