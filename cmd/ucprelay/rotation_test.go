package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dunglas/httpsfv"

	"github.com/ucprelay/ucprelay/internal/kafkatest"
	"github.com/ucprelay/ucprelay/internal/sink"
	"github.com/ucprelay/ucprelay/pkg/ucpschema"
)

// kidLog is a partner's verifier that keeps the kid of every request it verified, in
// the order they arrived, and the requests it refused.
type kidLog struct {
	inner *sink.RFC9421Verifier
	mu    sync.Mutex
	kids  []string
	bad   []error
}

func (k *kidLog) Verify(r *http.Request, body []byte) error {
	err := k.inner.Verify(r, body)
	k.mu.Lock()
	defer k.mu.Unlock()
	if err != nil {
		k.bad = append(k.bad, err)
		return err
	}
	d, perr := httpsfv.UnmarshalDictionary(r.Header.Values("Signature-Input"))
	kid := "?"
	if perr == nil {
		if m, ok := d.Get("sig1"); ok {
			if il, ok := m.(httpsfv.InnerList); ok {
				if v, ok := il.Params.Get("keyid"); ok {
					kid, _ = v.(string)
				}
			}
		}
	}
	k.kids = append(k.kids, kid)
	return nil
}

func (k *kidLog) snapshot() ([]string, []error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	return append([]string(nil), k.kids...), append([]error(nil), k.bad...)
}

// A signing key rotates while `ucprelay run` delivers, on the real broker, without a
// restart: the partner knows both public keys (the merchant published the new one
// first); the relay signs with the old key, the configuration's signing.key_id is
// switched to the new one and SIGHUP given while events keep flowing; every request
// verifies, the deliveries before the switch carry the old kid and those after it the
// new one, and none fails.
func TestRunRotatesSigningKeyWithoutRestart(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	seeds := kafkatest.Brokers(t)
	tt := newTestTopics(t, seeds, 2)
	n := tt.names
	dir := t.TempDir()
	oldFile, oldJWK := genKey(t, dir, "old")
	newFile, newJWK := genKey(t, dir, "new")
	pub, err := sink.ParsePublicKeys([]byte(`{"keys":[` + oldJWK + `,` + newJWK + `]}`))
	if err != nil {
		t.Fatal(err)
	}
	verifier := &kidLog{inner: &sink.RFC9421Verifier{Keys: pub.EC}}
	val, err := ucpschema.New("2026-04-08")
	if err != nil {
		t.Fatal(err)
	}
	snk, err := sink.New(sink.Config{Validator: val, Verifier: verifier})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(snk)
	defer srv.Close()
	signing := func(kid string) string {
		return fmt.Sprintf(`    signing:
      key_id: %s
      profile: https://shop.example/.well-known/ucp
      keys:
        - {key_id: old, key_file: %s}
        - {key_id: new, key_file: %s}
reload: {interval: 0s}
delivery: {attempt_timeout: 3s}
`, kid, oldFile, newFile)
	}
	kafkaLines := "  group: " + n.Group() + "\n  transactional_id: " + n.TxnID() + "\n  session_timeout: 9s\n"
	cfg := tt.config(t, seeds[0], kafkaLines, srv.URL, signing("old"))
	if out, err := run(t, nil, "--config", cfg, "topics", "create", "--replication", "1"); err != nil {
		t.Fatalf("topics create: %v\n%s", err, out)
	}

	demand := make(chan struct{})
	listening := make(chan net.Addr, 1)
	var out syncBuffer
	a := &app{stdout: &out, stderr: &out, reloadDemand: demand, onListen: func(x net.Addr) { listening <- x }}
	root := newRootCmdFor(a)
	root.SetArgs([]string{"--config", cfg, "run", "--telemetry.listen", "127.0.0.1:0"})
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	done := make(chan error, 1)
	go func() { done <- root.ExecuteContext(runCtx) }()
	select {
	case <-listening:
	case err := <-done:
		t.Fatalf("run ended: %v\n%s", err, out.String())
	case <-ctx.Done():
		t.Fatal("run never listened")
	}

	produce := newPlacer(ctx, t, seeds, tt.input, "ord_rot_").produce
	accepted := func(k int) {
		t.Helper()
		if err := snk.WaitFor(ctx, func(s sink.Stats) bool { return s.Accepted >= k }); err != nil {
			kids, bad := verifier.snapshot()
			t.Fatalf("%d accepted of %d: %v; kids %v, refused %v\n%s", snk.Stats().Accepted, k, err, kids, bad, out.String())
		}
	}

	produce(10)
	accepted(10)
	before, _ := verifier.snapshot()

	// The switch, while events keep flowing: write the new configuration as Kubernetes
	// updates a mounted ConfigMap (a new file renamed over the old), then SIGHUP.
	flowing := make(chan struct{})
	go func() {
		defer close(flowing)
		for range 5 {
			produce(2)
		}
	}()
	tmp := filepath.Join(filepath.Dir(cfg), ".c.yaml.new")
	body, err := os.ReadFile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(tmp, []byte(strings.Replace(string(body), "key_id: old\n      profile", "key_id: new\n      profile", 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, cfg); err != nil {
		t.Fatal(err)
	}
	select {
	case demand <- struct{}{}:
	case <-ctx.Done():
		t.Fatal("run took no reload demand")
	}
	for !strings.Contains(out.String(), `"msg":"signing keys reloaded","partner":"google","key_id":"new"`) {
		if ctx.Err() != nil || strings.Contains(out.String(), "reload failed") {
			t.Fatalf("no reload to the new key:\n%s", out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	<-flowing
	accepted(20)
	during, _ := verifier.snapshot()
	produce(10)
	accepted(30)

	kids, bad := verifier.snapshot()
	if st := snk.Stats(); len(bad) > 0 || st.Unauthorized > 0 || st.Invalid > 0 || st.Stale > 0 {
		t.Fatalf("requests refused during the rotation: %v", bad)
	}
	for i, kid := range kids {
		switch {
		case i < len(before) && kid != "old":
			t.Fatalf("delivery %d before the switch signed by %q: %v", i, kid, kids)
		case i >= len(during) && kid != "new":
			t.Fatalf("delivery %d after the switch signed by %q: %v", i, kid, kids)
		case kid != "old" && kid != "new":
			t.Fatalf("delivery %d signed by %q: %v", i, kid, kids)
		}
	}
	if st := snk.Stats(); st.Accepted != 30 {
		t.Fatalf("accepted %d, want 30 (one per order, none failed): %+v", st.Accepted, st)
	}
	stop()
	if err := <-done; err != nil {
		t.Fatalf("run: %v\n%s", err, out.String())
	}
}
