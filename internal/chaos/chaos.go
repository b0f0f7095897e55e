// Package chaos runs ucprelay as real child processes against a real broker and breaks
// them: kill -9 at random moments, graceful stops, replicas joining and leaving, input
// partition growth with `ucprelay state migrate`. It provides the workload (order
// lifecycles with an oracle of each order's final entity) and the process control; the
// crash, rebalance and growth tests, and `make chaos`, are built from it.
package chaos

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/ucprelay/ucprelay/internal/gen"
	"github.com/ucprelay/ucprelay/pkg/orderevents"
)

// Build compiles the ucprelay command (without the race detector, as it runs in
// production) into dir and returns the binary's path.
func Build(ctx context.Context, dir string) (string, error) {
	root, err := moduleRoot(ctx)
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "ucprelay")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/ucprelay") //nolint:gosec // this module's own command
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("chaos: go build: %w\n%s", err, out)
	}
	return bin, nil
}

func moduleRoot(ctx context.Context) (string, error) {
	out, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("chaos: go env GOMOD: %w", err)
	}
	mod := strings.TrimSpace(string(out))
	if mod == "" || mod == os.DevNull {
		return "", errors.New("chaos: not inside the ucprelay module")
	}
	return filepath.Dir(mod), nil
}

// Deployment is what every replica shares.
type Deployment struct {
	Binary  string
	Dir     string // configs and logs
	Brokers []string
	Input   string
	State   string
	DLQ     string
	Group   string
	SinkURL string
	// SessionTimeout of the replicas' group membership.
	SessionTimeout time.Duration
	// Static gives each replica a static group membership (instance id = its name), so a
	// replica restarted within the session timeout gets its partitions back at once.
	Static bool
}

// Replica is one relay process; it can be started again after it ended.
type Replica struct {
	Name string
	d    *Deployment

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
	err  error
	runs int
}

// NewReplica returns a replica (not started).
func (d *Deployment) NewReplica(name string) *Replica { return &Replica{Name: name, d: d} }

// Command is a one-off ucprelay command (dlq replay, state migrate, state inspect) of the
// deployment's binary, in a replica's environment (ReplicaEnviron).
func (d *Deployment) Command(ctx context.Context, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, d.Binary, args...) //nolint:gosec // the binary this package built
	cmd.Env = ReplicaEnviron()
	return cmd
}

func (d *Deployment) config(name string) string {
	var b bytes.Buffer
	fmt.Fprintf(&b, "kafka:\n  brokers: [%s]\n  input_topic: %s\n  state_topic: %s\n  dead_letter_topic: %s\n  group: %s\n",
		strings.Join(d.Brokers, ", "), d.Input, d.State, d.DLQ, d.Group)
	fmt.Fprintf(&b, "  transactional_id: %s.%s\n  session_timeout: %s\n", d.Group, name, d.SessionTimeout)
	if d.Static {
		fmt.Fprintf(&b, "  instance_id: %s\n", name)
	}
	// The replica's name travels as the API key in a header of its own, so a test can
	// tell which replica sent a request.
	fmt.Fprintf(&b, "partners:\n  google:\n    base_url: %s\n    allow_insecure_http: true\n    api_key_env: CHAOS_REPLICA\n    api_key_header: X-Chaos-Replica\ndelivery:\n  attempt_timeout: %s\n  max_attempts: 30\n  backoff_initial: 20ms\n  backoff_max: 2s\nlog:\n  level: info\ntelemetry:\n  listen: 127.0.0.1:0\n", d.SinkURL, d.SessionTimeout/3)
	return b.String()
}

// Start starts the replica's process; its output goes to Dir/NAME.log.
func (r *Replica) Start(ctx context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cmd != nil {
		return fmt.Errorf("chaos: replica %s is running", r.Name)
	}
	cfg := filepath.Join(r.d.Dir, r.Name+".yaml")
	if err := os.WriteFile(cfg, []byte(r.d.config(r.Name)), 0o600); err != nil {
		return fmt.Errorf("chaos: %w", err)
	}
	logf, err := os.OpenFile(filepath.Join(r.d.Dir, r.Name+".log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("chaos: %w", err)
	}
	r.runs++
	fmt.Fprintf(logf, "---- run %d at %s\n", r.runs, time.Now().Format(time.RFC3339Nano))
	cmd := exec.CommandContext(ctx, r.d.Binary, "run", "--config", cfg) //nolint:gosec // the binary this package built
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Env = append(ReplicaEnviron(), "UCPRELAY_LOG__LEVEL=info", "CHAOS_REPLICA="+r.Name+"/"+strconv.Itoa(r.runs))
	if err := cmd.Start(); err != nil {
		_ = logf.Close()
		return fmt.Errorf("chaos: start %s: %w", r.Name, err)
	}
	r.cmd, r.done = cmd, make(chan struct{})
	go func(cmd *exec.Cmd, done chan struct{}) {
		err := cmd.Wait()
		_ = logf.Close()
		r.mu.Lock()
		r.err = err
		if r.cmd == cmd {
			r.cmd = nil
		}
		r.mu.Unlock()
		close(done)
	}(cmd, r.done)
	return nil
}

// Kill sends SIGKILL and waits for the process to end.
func (r *Replica) Kill() { _ = r.signal(syscall.SIGKILL, 0) }

// Stop sends SIGTERM and waits up to grace for a graceful exit, then kills. It returns
// the process's exit error (nil for a clean exit).
func (r *Replica) Stop(grace time.Duration) error { return r.signal(syscall.SIGTERM, grace) }

func (r *Replica) signal(sig syscall.Signal, grace time.Duration) error {
	r.mu.Lock()
	cmd, done := r.cmd, r.done
	r.mu.Unlock()
	if cmd == nil {
		return nil
	}
	_ = cmd.Process.Signal(sig)
	if grace > 0 {
		select {
		case <-done:
		case <-time.After(grace):
			_ = cmd.Process.Kill()
			<-done
			return fmt.Errorf("chaos: %s did not stop within %s", r.Name, grace)
		}
	} else {
		<-done
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.err
}

// Workload is a generated set of order lifecycles.
type Workload struct {
	// ByOrder holds each order's events in time order.
	ByOrder map[string][]orderevents.Event
	// Stream is the order the events are produced in: orders interleaved, each order's
	// events in sequence.
	Stream []orderevents.Event
}

// NewWorkload generates orders lifecycles for partner, deterministic for seed.
func NewWorkload(orders int, partner string, seed uint64) Workload {
	w := Workload{ByOrder: make(map[string][]orderevents.Event, orders)}
	at := time.Date(2026, 10, 1, 9, 0, 0, 0, time.UTC)
	queues := make([][]orderevents.Event, orders)
	for i := range orders {
		id := fmt.Sprintf("ord_%d_%06d", seed, i)
		evs := gen.Lifecycle(id, partner, seed*1_000_003+uint64(i), at.Add(time.Duration(i)*time.Second))
		w.ByOrder[id] = evs
		queues[i] = evs
	}
	// Interleave: a window of orders in flight at once, like a shop's live traffic.
	rng := rand.New(rand.NewPCG(seed, 42))
	const window = 200
	active := []int{}
	next := 0
	for next < orders || len(active) > 0 {
		for len(active) < window && next < orders {
			active = append(active, next)
			next++
		}
		k := rng.IntN(len(active))
		i := active[k]
		w.Stream = append(w.Stream, queues[i][0])
		queues[i] = queues[i][1:]
		if len(queues[i]) == 0 {
			active = append(active[:k], active[k+1:]...)
		}
	}
	return w
}

// Events counts the workload's events.
func (w Workload) Events() int { return len(w.Stream) }

// ReplicaEnviron is this process's environment without the test harness's own
// UCPRELAY_TEST_* variables (the brokers `make test` started): a replica reads every
// other UCPRELAY_* variable as configuration and refuses unknown ones.
func ReplicaEnviron() []string {
	var out []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "UCPRELAY_TEST_") {
			out = append(out, kv)
		}
	}
	return out
}
