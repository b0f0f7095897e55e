package chaos

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/ucprelay/ucprelay/internal/deadletter"
	"github.com/ucprelay/ucprelay/internal/oracle"
	"github.com/ucprelay/ucprelay/internal/sink"
	"github.com/ucprelay/ucprelay/internal/statestore"
	"github.com/ucprelay/ucprelay/internal/topics"
	"github.com/ucprelay/ucprelay/internal/wait"
	"github.com/ucprelay/ucprelay/pkg/avrocodec"
	"github.com/ucprelay/ucprelay/pkg/orderevents"
	"github.com/ucprelay/ucprelay/pkg/ucp"
	"github.com/ucprelay/ucprelay/pkg/ucpschema"
)

// ScenarioOptions size a chaos scenario.
type ScenarioOptions struct {
	// Orders in the workload.
	Orders int
	// Scale stretches every phase: 1 is the full run of `make chaos` (a 60 s outage),
	// 0.3 the short variant of `make test`.
	Scale float64
	// Seed makes the workload and the fault choices repeatable.
	Seed uint64
	// Dir keeps configs and replica logs.
	Dir string
	// Out receives the narration and the report.
	Out io.Writer
	// Binary is a built ucprelay command; empty builds one into Dir.
	Binary string
	// BrokerPort is the first of the four ports of the scenario's own broker (plain,
	// controller, SASL, TLS). Default 29192: below the ephemeral port range
	// (32768–60999), so no outgoing connection of a test running beside it holds one
	// of them when the broker binds or restarts.
	BrokerPort int
}

// scenarioRun is one scenario's moving parts.
type scenarioRun struct {
	o      ScenarioOptions
	root   string
	env    []string // the scenario broker's kafka.sh environment
	seeds  []string
	adm    *kadm.Client
	cl     *kgo.Client
	codec  *avrocodec.Codec
	snk    *sink.Sink
	d      *Deployment
	reps   []*Replica
	rng    *rand.Rand
	faults map[string]int
	fmu    sync.Mutex
	poison map[string]int // poison records produced, by reason; under fmu
	// notOurs are the orders of a platform not configured the storm placed; under fmu.
	notOurs []string
	sample  orderevents.Event // an event of the workload, for poison records

	rejectOn atomic.Bool
	rejected sync.Map // order id → true: its deliveries are refused with 422 while rejectOn
}

func (s *scenarioRun) say(format string, args ...any) {
	fmt.Fprintf(s.o.Out, "chaos %s  "+format+"\n", append([]any{time.Now().Format("15:04:05")}, args...)...)
}

func (s *scenarioRun) fault(name string) {
	s.fmu.Lock()
	s.faults[name]++
	s.fmu.Unlock()
}

func (s *scenarioRun) phase(d time.Duration) time.Duration {
	return time.Duration(float64(d) * s.o.Scale)
}

// kafka runs scripts/kafka.sh for the scenario's own broker.
func (s *scenarioRun) kafka(ctx context.Context, arg string) error {
	cmd := exec.CommandContext(ctx, filepath.Join(s.root, "scripts", "kafka.sh"), arg) //nolint:gosec // the repository's own script
	cmd.Env = append(os.Environ(), s.env...)
	cmd.Dir = s.root
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("chaos: kafka.sh %s: %w\n%s", arg, err, out)
	}
	return nil
}

// RunScenario runs every fault of the design's promises against three relay processes
// on a broker of its own (started with scripts/kafka.sh on its own ports and stopped at
// the end): a partner answering 5xx to 30% of calls, kill -9 of relays at random, a
// broker stop and start, a slow partner, a partner outage (60 s at scale 1), a rebalance
// storm, input partition growth with `ucprelay state migrate`, poison events, and
// deliveries refused with 422 that `ucprelay dlq replay` delivers once the partner
// takes them. It then checks every order against the oracle and the state topic.
func RunScenario(ctx context.Context, o ScenarioOptions) (Report, error) {
	start := time.Now()
	if o.Scale <= 0 {
		o.Scale = 1
	}
	if o.BrokerPort == 0 {
		o.BrokerPort = 29192
	}
	rep := Report{Faults: map[string]int{}, DeadBefore: map[string]int{}, DeadAfter: map[string]int{}, Poison: map[string]int{}}
	root, err := moduleRoot(ctx)
	if err != nil {
		return rep, err
	}
	s := &scenarioRun{o: o, root: root, rng: rand.New(rand.NewPCG(o.Seed, 77)), faults: rep.Faults, poison: rep.Poison}
	p := o.BrokerPort
	s.env = []string{fmt.Sprintf("KAFKA_PORT=%d", p), fmt.Sprintf("KAFKA_CONTROLLER_PORT=%d", p+1), fmt.Sprintf("KAFKA_SASL_PORT=%d", p+2),
		fmt.Sprintf("KAFKA_TLS_PORT=%d", p+3), "KAFKA_RUN=" + filepath.Join(o.Dir, "broker")}
	s.seeds = []string{fmt.Sprintf("127.0.0.1:%d", p)}
	s.say("starting a broker of its own on %s", s.seeds[0])
	if err := s.kafka(ctx, "up"); err != nil {
		return rep, err
	}
	defer func() { _ = s.kafka(context.WithoutCancel(ctx), "down") }()
	if s.cl, err = kgo.NewClient(kgo.SeedBrokers(s.seeds...), kgo.DefaultProduceTopic("orders"), kgo.ProducerLinger(5*time.Millisecond)); err != nil {
		return rep, err
	}
	defer s.cl.Close()
	s.adm = kadm.NewClient(s.cl)
	if err := s.setup(ctx); err != nil {
		return rep, err
	}
	wl := NewWorkload(o.Orders, "google", o.Seed)
	final, err := oracle.Bodies(wl.ByOrder)
	if err != nil {
		return rep, err
	}
	rep.Orders, rep.Events = o.Orders, wl.Events()
	s.sample = wl.Stream[0]
	for i := 0; i < o.Orders; i += 97 { // about 1% of the orders: their deliveries are refused for a while
		s.rejected.Store(fmt.Sprintf("ord_%d_%06d", o.Seed, i), true)
	}

	for _, r := range s.reps {
		if err := r.Start(ctx); err != nil {
			return rep, err
		}
	}
	defer func() {
		for _, r := range s.reps {
			_ = r.Stop(30 * time.Second)
		}
	}()
	produced := make(chan error, 1)
	go func() { produced <- s.produce(ctx, wl.Stream, s.phase(200*time.Second)) }()
	if err := s.faultsSchedule(ctx); err != nil {
		return rep, err
	}
	if err := <-produced; err != nil {
		return rep, err
	}

	// Calm: the partner takes everything, every order but the refused ones converges.
	s.snk.FailRate(0, sink.Fault{})
	s.snk.SetLatency(0)
	s.snk.EndOutage()
	s.rejectOn.Store(false)
	s.say("faults over; waiting for every order to converge (the refused ones after the replay)")
	waitable := make(map[string][]byte, len(final))
	for id, body := range final {
		if _, refused := s.rejected.Load(id); !refused {
			waitable[id] = body
		}
	}
	missing := s.converge(ctx, waitable, s.phase(4*time.Minute)+time.Minute)
	if rep.DeadBefore, err = s.deadLetters(ctx); err != nil {
		return rep, err
	}
	s.say("%d of %d orders not refused are not at their final state before the replay (dead letters %v)", len(missing), len(waitable), rep.DeadBefore)
	out, err := s.d.Command(ctx, "dlq", "replay", "--config", filepath.Join(s.d.Dir, s.reps[0].Name+".yaml")).CombinedOutput()
	if err != nil {
		return rep, fmt.Errorf("chaos: dlq replay: %w\n%s", err, out)
	}
	s.say("$ ucprelay dlq replay: %s", strings.TrimSpace(string(out)))
	s.fault("dlq replay")
	missing = s.converge(ctx, final, 2*time.Minute)
	rep.Lost = len(missing)
	if rep.Lost > 0 {
		ids := missing
		if len(ids) > 5 {
			ids = ids[:5]
		}
		s.say("never converged: %v", ids)
	}
	// The replayed poison is dead-lettered again, each record once more.
	for deadline := time.Now().Add(time.Minute); ; {
		if rep.DeadAfter, err = s.deadLetters(ctx); err != nil {
			return rep, err
		}
		if rep.poisonReplayed() || time.Now().After(deadline) || wait.Sleep(ctx, time.Second) != nil {
			break
		}
	}
	if rep.NotAcked, err = s.notAcked(ctx, wl); err != nil {
		return rep, err
	}
	rep.NotOurs = len(s.notOurs)
	for _, id := range s.notOurs {
		if _, ok := s.snk.Latest(id); ok {
			rep.Leaked++
		}
	}
	st := s.snk.Stats()
	rep.Delivered, rep.Stale, rep.Invalid = st.Accepted, st.Stale, st.Invalid
	rep.Took = time.Since(start)
	rep.Print(o.Out)
	return rep, nil
}

// setup creates the topics, the sink, the binary and the three replicas.
func (s *scenarioRun) setup(ctx context.Context) error {
	if _, err := s.adm.CreateTopic(ctx, 6, 1, nil, "orders"); err != nil {
		return fmt.Errorf("chaos: create input: %w", err)
	}
	if _, err := topics.Create(ctx, topics.NewAdmin(s.cl), topics.Layout{Input: []string{"orders"}, State: "ucprelay.state", DeadLetter: "ucprelay.dlq"}, 1, 1); err != nil {
		return err
	}
	// A dead-letter topic smaller than the input's records: the oversize poison's dead
	// letter must carry a reference instead of the value.
	if _, err := s.adm.AlterTopicConfigs(ctx, []kadm.AlterConfig{{Name: "max.message.bytes", Value: kadm.StringPtr(fmt.Sprint(dlqMaxMessageBytes))}}, "ucprelay.dlq"); err != nil {
		return fmt.Errorf("chaos: dead-letter topic size: %w", err)
	}
	var err error
	if s.codec, err = avrocodec.New(); err != nil {
		return err
	}
	val, err := ucpschema.New(string(ucp.V20260408))
	if err != nil {
		return err
	}
	if s.snk, err = sink.New(sink.Config{Validator: val}); err != nil {
		return err
	}
	srv := httptest.NewServer(http.HandlerFunc(s.partner))
	go func() { <-ctx.Done(); srv.Close() }()
	bin := s.o.Binary
	if bin == "" {
		if bin, err = Build(ctx, s.o.Dir); err != nil {
			return err
		}
	}
	s.d = &Deployment{Binary: bin, Dir: s.o.Dir, Brokers: s.seeds, Input: "orders", State: "ucprelay.state", DLQ: "ucprelay.dlq",
		Group: "ucprelay", SinkURL: srv.URL, SessionTimeout: 9 * time.Second}
	s.reps = []*Replica{s.d.NewReplica("r1"), s.d.NewReplica("r2"), s.d.NewReplica("r3")}
	return nil
}

// partner is the sink, refusing the chosen orders' deliveries with 422 while rejectOn.
func (s *scenarioRun) partner(w http.ResponseWriter, r *http.Request) {
	if s.rejectOn.Load() {
		body, err := io.ReadAll(r.Body)
		if err == nil {
			var b struct{ ID string }
			_ = json.Unmarshal(body, &b)
			if _, ok := s.rejected.Load(b.ID); ok {
				http.Error(w, `{"error":"chaos: refused for the replay"}`, http.StatusUnprocessableEntity)
				return
			}
		}
		r.Body = io.NopCloser(strings.NewReader(string(body)))
	}
	s.snk.ServeHTTP(w, r)
}

// produce writes the workload spread over span, with poison records among it.
func (s *scenarioRun) produce(ctx context.Context, evs []orderevents.Event, span time.Duration) error {
	const chunks = 100
	size := (len(evs) + chunks - 1) / chunks
	gap := span / chunks
	for i, n := 0, 0; i < len(evs); i, n = i+size, n+1 {
		recs := make([]*kgo.Record, 0, size+2)
		for _, ev := range evs[i:min(i+size, len(evs))] {
			v, err := s.codec.EncodeSingleObject(ev)
			if err != nil {
				return err
			}
			recs = append(recs, &kgo.Record{Key: []byte(ev.OrderID), Value: v})
		}
		if n%20 == 5 { // poison: garbage, and an event under another order's key
			recs = append(recs, &kgo.Record{Key: []byte(fmt.Sprintf("poison_%d", n)), Value: []byte("not an event")})
			if v, err := s.codec.EncodeSingleObject(evs[i]); err == nil {
				recs = append(recs, &kgo.Record{Key: []byte(fmt.Sprintf("wrong_key_%d", n)), Value: v})
			}
			s.fault("poison records")
			s.fault("poison records")
			s.fmu.Lock()
			s.poison["unknown_framing"]++
			s.poison["key_mismatch"]++
			s.fmu.Unlock()
		}
		if err := produceRetrying(ctx, s.cl, recs); err != nil {
			return err
		}
		if err := wait.Sleep(ctx, gap); err != nil {
			return err
		}
	}
	return nil
}

// produceRetrying produces through a broker restart.
func produceRetrying(ctx context.Context, cl *kgo.Client, recs []*kgo.Record) error {
	for {
		err := cl.ProduceSync(ctx, recs...).FirstErr()
		if err == nil || ctx.Err() != nil {
			return err
		}
		if err := wait.Sleep(ctx, 500*time.Millisecond); err != nil {
			return err
		}
	}
}

// faultsSchedule injects the faults one after the other.
func (s *scenarioRun) faultsSchedule(ctx context.Context) error {
	steps := []struct {
		name string
		run  func(context.Context) error
	}{
		{"partner answers 5xx to 30% of calls; 1% of orders refused with 422", func(ctx context.Context) error {
			s.snk.FailRate(0.3, sink.Fault{Status: http.StatusInternalServerError})
			s.rejectOn.Store(true)
			s.fault("5xx for 30% of calls")
			return wait.Sleep(ctx, s.phase(30*time.Second))
		}},
		{"kill -9 of relays at random", func(ctx context.Context) error {
			for end := time.Now().Add(s.phase(30 * time.Second)); time.Now().Before(end); {
				if err := wait.Sleep(ctx, time.Duration(1000+s.rng.IntN(3000))*time.Millisecond); err != nil {
					return err
				}
				if err := s.killOne(ctx, "kill -9", 800); err != nil {
					return err
				}
			}
			s.snk.FailRate(0, sink.Fault{})
			return nil
		}},
		{"poison storm: every kind of bad record in bursts, with kill -9 of relays at random", func(ctx context.Context) error {
			return s.poisonStorm(ctx, s.phase(30*time.Second), s.sample)
		}},
		{"broker stop and start", func(ctx context.Context) error {
			if err := s.kafka(ctx, "down"); err != nil {
				return err
			}
			s.fault("broker stop/start")
			if err := wait.Sleep(ctx, max(s.phase(10*time.Second), 3*time.Second)); err != nil {
				return err
			}
			return s.kafka(ctx, "start")
		}},
		{"slow partner (300 ms per answer)", func(ctx context.Context) error {
			s.snk.SetLatency(300 * time.Millisecond)
			s.fault("slow partner")
			err := wait.Sleep(ctx, s.phase(30*time.Second))
			s.snk.SetLatency(0)
			return err
		}},
		{"partner outage", func(ctx context.Context) error {
			s.snk.StartOutage()
			s.fault(fmt.Sprintf("partner outage (%s)", s.phase(60*time.Second).Round(time.Second)))
			err := wait.Sleep(ctx, s.phase(60*time.Second))
			s.snk.EndOutage()
			return err
		}},
		{"rebalance storm", func(ctx context.Context) error {
			for end := time.Now().Add(s.phase(20 * time.Second)); time.Now().Before(end); {
				// A replica stopped within milliseconds of its start would die by the
				// signal's default action, before Go installs its handler: a kill, which
				// the kill -9 phase covers. Give each one a moment to start.
				if err := wait.Sleep(ctx, time.Duration(300+s.rng.IntN(700))*time.Millisecond); err != nil {
					return err
				}
				r := s.reps[s.rng.IntN(len(s.reps))]
				if err := r.Stop(30 * time.Second); err != nil {
					s.say("%s: stop: %v", r.Name, err)
				}
				s.fault("rebalance (stop/start)")
				if err := wait.Sleep(ctx, time.Duration(200+s.rng.IntN(1500))*time.Millisecond); err != nil {
					return err
				}
				if err := r.Start(ctx); err != nil {
					return err
				}
			}
			return nil
		}},
		{"input partition growth 6 → 9 with state migrate", func(ctx context.Context) error {
			for _, r := range s.reps {
				_ = r.Stop(30 * time.Second)
			}
			if _, err := s.adm.CreatePartitions(ctx, 3, "orders"); err != nil {
				return fmt.Errorf("chaos: grow input: %w", err)
			}
			s.fault("partition growth + state migrate")
			var out []byte
			var err error
			for range 30 { // the group may take a moment to see every member gone
				out, err = s.d.Command(ctx, "state", "migrate", "--config", filepath.Join(s.d.Dir, "r1.yaml")).CombinedOutput()
				if err == nil || !strings.Contains(string(out), "active members") {
					break
				}
				if err := wait.Sleep(ctx, time.Second); err != nil {
					return err
				}
			}
			if err != nil {
				return fmt.Errorf("chaos: state migrate: %w\n%s", err, out)
			}
			s.say("$ ucprelay state migrate: %s", lastLine(out))
			for _, r := range s.reps {
				if err := r.Start(ctx); err != nil {
					return err
				}
			}
			return nil
		}},
	}
	for _, st := range steps {
		s.say("fault: %s", st.name)
		if err := st.run(ctx); err != nil {
			return fmt.Errorf("chaos: %s: %w", st.name, err)
		}
	}
	return nil
}

// killOne kills a relay at random with SIGKILL, counted as fault, and starts it again
// 100 ms to 100+upTo ms later.
func (s *scenarioRun) killOne(ctx context.Context, fault string, upTo int) error {
	r := s.reps[s.rng.IntN(len(s.reps))]
	r.Kill()
	s.fault(fault)
	if err := wait.Sleep(ctx, time.Duration(100+s.rng.IntN(upTo))*time.Millisecond); err != nil {
		return err
	}
	return r.Start(ctx)
}

func lastLine(b []byte) string {
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	return lines[len(lines)-1]
}

// converge waits up to d for every order's newest accepted body to equal the oracle's
// and returns the orders that did not.
func (s *scenarioRun) converge(ctx context.Context, want map[string][]byte, d time.Duration) []string {
	deadline := time.Now().Add(d)
	for {
		var missing []string
		for id, body := range want {
			if got, ok := s.snk.Latest(id); !ok || !oracle.SameJSON(got.Body, body) {
				missing = append(missing, id)
			}
		}
		if len(missing) == 0 || time.Now().After(deadline) || wait.Sleep(ctx, 500*time.Millisecond) != nil {
			sort.Strings(missing)
			return missing
		}
	}
}

// deadLetters counts the dead-letter records by reason.
func (s *scenarioRun) deadLetters(ctx context.Context) (map[string]int, error) {
	sum, err := deadletter.Inspect(ctx, []kgo.Opt{kgo.SeedBrokers(s.seeds...)}, "ucprelay.dlq", deadletter.Filter{}, 0)
	if err != nil {
		return nil, err
	}
	return sum.ByReason, nil
}

// notAcked counts the orders whose state does not hold their final version acknowledged.
func (s *scenarioRun) notAcked(ctx context.Context, wl Workload) (int, error) {
	md, err := s.adm.Metadata(ctx, "ucprelay.state")
	if err != nil {
		return 0, err
	}
	parts := int32(len(md.Topics["ucprelay.state"].Partitions))
	for deadline := time.Now().Add(time.Minute); ; {
		state := map[string]statestore.Header{}
		for p := range parts {
			ps, err := statestore.Restore(ctx, []kgo.Opt{kgo.SeedBrokers(s.seeds...)}, "ucprelay.state", p, nil)
			if err != nil {
				return 0, err
			}
			for id, v := range ps.Orders {
				if statestore.IsNotOurs(v) {
					continue // an order of a platform not configured: no snapshot to acknowledge
				}
				h, err := statestore.ParseHeader(v)
				if err != nil {
					return 0, err
				}
				state[id] = h
			}
		}
		bad := 0
		for id, evs := range wl.ByOrder {
			if h := state[id]; h.Acked.Version != int64(len(evs)) || h.Pending.Version > h.Acked.Version {
				bad++
			}
		}
		if bad == 0 || time.Now().After(deadline) {
			return bad, nil
		}
		if err := wait.Sleep(ctx, time.Second); err != nil {
			return bad, err
		}
	}
}

// ErrBroken means a scenario broke a promise.
var ErrBroken = errors.New("chaos: a promise was broken")
