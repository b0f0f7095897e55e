package chaos_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/ucprelay/ucprelay/internal/chaos"
	"github.com/ucprelay/ucprelay/internal/kafkatest"
	"github.com/ucprelay/ucprelay/internal/oracle"
	"github.com/ucprelay/ucprelay/internal/sink"
	"github.com/ucprelay/ucprelay/internal/statestore"
	"github.com/ucprelay/ucprelay/internal/topics"
	"github.com/ucprelay/ucprelay/pkg/avrocodec"
	"github.com/ucprelay/ucprelay/pkg/orderevents"
	"github.com/ucprelay/ucprelay/pkg/ucp"
	"github.com/ucprelay/ucprelay/pkg/ucpschema"
)

var (
	buildOnce sync.Once
	binary    string
	buildErr  error
)

// ucprelayBinary builds the command once per test process.
func ucprelayBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "ucprelay-chaos-bin")
		if err != nil {
			buildErr = err
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		binary, buildErr = chaos.Build(ctx, dir)
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binary
}

// world is one chaos test's broker topics, sink and producer.
type world struct {
	t      *testing.T
	seeds  []string
	adm    *kadm.Client
	codec  *avrocodec.Codec
	snk    *sink.Sink
	d      *chaos.Deployment
	parts  int32
	oracle map[string][]byte

	mu       sync.Mutex
	rejected []sink.Line // the first answers >= 400, for the failure message
	lines    map[string][]sink.Line
}

func newWorld(t *testing.T, partitions int32, static bool) *world {
	t.Helper()
	seeds := kafkatest.Brokers(t)
	bin := ucprelayBinary(t)
	names := kafkatest.NewNames(t)
	w := &world{t: t, seeds: seeds, adm: kafkatest.Admin(t, seeds), parts: partitions, lines: map[string][]sink.Line{}}
	d := &chaos.Deployment{Binary: bin, Dir: t.TempDir(), Brokers: seeds, Input: names.Topic("orders"), State: names.Topic("state"),
		DLQ: names.Topic("dlq"), Group: names.Group(), SessionTimeout: 9 * time.Second, Static: static}
	kafkatest.CreateTopic(t, w.adm, d.Input, partitions, nil)
	cl, err := kgo.NewClient(kgo.SeedBrokers(seeds...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := topics.Create(ctx, topics.NewAdmin(cl), topics.Layout{Input: []string{d.Input}, State: d.State, DeadLetter: d.DLQ}, 1, 1); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_, _ = w.adm.DeleteTopics(ctx, d.State, d.DLQ)
	})
	val, err := ucpschema.New(string(ucp.V20260408))
	if err != nil {
		t.Fatal(err)
	}
	if w.snk, err = sink.New(sink.Config{Validator: val, KeepHistory: true, OnRequest: func(l sink.Line) {
		var b struct{ ID string }
		_ = json.Unmarshal([]byte(l.Body), &b)
		w.mu.Lock()
		w.lines[b.ID] = append(w.lines[b.ID], l)
		if l.Status >= 400 && len(w.rejected) < 5 {
			w.rejected = append(w.rejected, l)
		}
		w.mu.Unlock()
	}}); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(w.snk)
	t.Cleanup(srv.Close)
	d.SinkURL = srv.URL
	if w.codec, err = avrocodec.New(); err != nil {
		t.Fatal(err)
	}
	w.d = d
	t.Cleanup(func() {
		if t.Failed() {
			logs, _ := exec.Command("sh", "-c", "tail -n 30 "+d.Dir+"/*.log").CombinedOutput()
			t.Logf("replica logs:\n%s", logs)
			if keep := os.Getenv("UCPRELAY_CHAOS_KEEP"); keep != "" {
				_ = exec.Command("cp", "-r", d.Dir, keep).Run()
			}
		}
	})
	return w
}

// produce writes events in chunks spaced by gap, so that faults land mid-stream.
func (w *world) produce(ctx context.Context, evs []orderevents.Event, chunks int, gap time.Duration) error {
	prod, err := kgo.NewClient(kgo.SeedBrokers(w.seeds...), kgo.DefaultProduceTopic(w.d.Input), kgo.ProducerLinger(5*time.Millisecond))
	if err != nil {
		return err
	}
	defer prod.Close()
	size := (len(evs) + chunks - 1) / chunks
	for i := 0; i < len(evs); i += size {
		end := min(i+size, len(evs))
		recs := make([]*kgo.Record, 0, end-i)
		for _, ev := range evs[i:end] {
			v, err := w.codec.EncodeSingleObject(ev)
			if err != nil {
				return err
			}
			recs = append(recs, &kgo.Record{Key: []byte(ev.OrderID), Value: v})
		}
		if err := prod.ProduceSync(ctx, recs...).FirstErr(); err != nil {
			return err
		}
		if end < len(evs) {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(gap):
			}
		}
	}
	return nil
}

func (w *world) setOracle(wl chaos.Workload) {
	var err error
	if w.oracle, err = oracle.Bodies(wl.ByOrder); err != nil {
		w.t.Fatal(err)
	}
}

// converged waits until every order's newest delivered body is its expected final order.
func (w *world) converged(ctx context.Context) {
	w.t.Helper()
	for {
		missing, sample := 0, ""
		for id, body := range w.oracle {
			d, ok := w.snk.Latest(id)
			if !ok || !oracle.SameJSON(d.Body, body) {
				missing++
				sample = id
			}
		}
		if missing == 0 {
			return
		}
		select {
		case <-ctx.Done():
			w.t.Fatalf("%d of %d orders not converged (e.g. %s); sink %+v", missing, len(w.oracle), sample, w.snk.Stats())
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// verify checks the promises after a run: nothing stale or invalid reached the partner,
// nothing was dead-lettered, and the state topic holds exactly one live record per
// order with its final version acknowledged and nothing pending.
func (w *world) verify(ctx context.Context, wl chaos.Workload) {
	w.t.Helper()
	st := w.snk.Stats()
	if st.Stale != 0 || st.Invalid != 0 {
		w.mu.Lock()
		defer w.mu.Unlock()
		for _, l := range w.rejected {
			var b struct{ ID string }
			_ = json.Unmarshal([]byte(l.Body), &b)
			w.t.Logf("rejected at %s: %d %s (Webhook-Id %v, stamp %v)", l.Time, l.Status, l.Error, l.Headers["Webhook-Id"], l.Headers["Webhook-Timestamp"])
			for _, x := range w.lines[b.ID] {
				w.t.Logf("   %s %d from %v: %v @ %v %s", x.Time, x.Status, x.Headers["X-Chaos-Replica"], x.Headers["Webhook-Id"], x.Headers["Webhook-Timestamp"], x.Error)
			}
		}
		w.t.Fatalf("sink saw stale or invalid bodies: %+v", st)
	}
	for {
		state := map[string]statestore.Header{}
		for p := range w.parts {
			ps, err := statestore.Restore(ctx, []kgo.Opt{kgo.SeedBrokers(w.seeds...)}, w.d.State, p, nil)
			if err != nil {
				w.t.Fatal(err)
			}
			for id, v := range ps.Orders {
				if _, dup := state[id]; dup {
					w.t.Fatalf("order %s is live in two state partitions", id)
				}
				h, err := statestore.ParseHeader(v)
				if err != nil {
					w.t.Fatal(err)
				}
				state[id] = h
			}
		}
		bad := ""
		if len(state) != len(wl.ByOrder) {
			bad = fmt.Sprintf("state holds %d orders, want %d", len(state), len(wl.ByOrder))
		}
		for id, evs := range wl.ByOrder {
			if h := state[id]; h.Acked.Version != int64(len(evs)) || h.Pending.Version > h.Acked.Version {
				bad = fmt.Sprintf("order %s: state %+v, want version %d acknowledged", id, h, len(evs))
				break
			}
		}
		if bad == "" {
			break
		}
		select {
		case <-ctx.Done():
			w.t.Fatal(bad)
		case <-time.After(250 * time.Millisecond):
		}
	}
	ends, err := w.adm.ListEndOffsets(ctx, w.d.DLQ)
	if err != nil {
		w.t.Fatal(err)
	}
	ends.Each(func(o kadm.ListedOffset) {
		if o.Offset > 0 {
			w.t.Errorf("dead-letter partition %d holds %d records", o.Partition, o.Offset)
		}
	})
	w.mu.Lock()
	n := 0
	for _, ls := range w.lines {
		n += len(ls)
	}
	w.mu.Unlock()
	w.t.Logf("orders %d, events %d, sink %+v, %d requests logged", len(wl.ByOrder), wl.Events(), st, n)
}

// The chaos tests run one after the other, not in parallel: each starts several relay
// processes and a validating sink, and together they starve the sink on two cores until
// its answers time out.

// kill -9 at random moments while 5k orders stream in: after restarts, every order's
// last delivered snapshot is its final order, nothing stale, nothing lost (P1, P2, P4).
func TestKillRecoveryRealKafka(t *testing.T) {
	w := newWorld(t, 6, true)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	wl := chaos.NewWorkload(5000, "google", 1)
	w.setOracle(wl)
	reps := []*chaos.Replica{w.d.NewReplica("r1"), w.d.NewReplica("r2")}
	for _, r := range reps {
		if err := r.Start(ctx); err != nil {
			t.Fatal(err)
		}
	}
	produced := make(chan error, 1)
	go func() { produced <- w.produce(ctx, wl.Stream, 30, 250*time.Millisecond) }()
	rng := rand.New(rand.NewPCG(7, 7))
	kills := 0
	for deadline := time.Now().Add(12 * time.Second); time.Now().Before(deadline); kills++ {
		time.Sleep(time.Duration(300+rng.IntN(1200)) * time.Millisecond)
		r := reps[rng.IntN(len(reps))]
		r.Kill()
		time.Sleep(time.Duration(50+rng.IntN(400)) * time.Millisecond)
		if err := r.Start(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if err := <-produced; err != nil {
		t.Fatal(err)
	}
	w.converged(ctx)
	w.verify(ctx, wl)
	for _, r := range reps {
		if err := r.Stop(30 * time.Second); err != nil {
			t.Errorf("%s: graceful stop: %v", r.Name, err)
		}
	}
	t.Logf("%d kills", kills)
}

// Three replicas join and leave (graceful stops, kills, restarts) while orders stream
// in: partitions move with their state, and the same promises hold.
func TestRebalanceRealKafka(t *testing.T) {
	w := newWorld(t, 6, false)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	wl := chaos.NewWorkload(3000, "google", 2)
	w.setOracle(wl)
	r1, r2, r3 := w.d.NewReplica("r1"), w.d.NewReplica("r2"), w.d.NewReplica("r3")
	if err := r1.Start(ctx); err != nil {
		t.Fatal(err)
	}
	produced := make(chan error, 1)
	go func() { produced <- w.produce(ctx, wl.Stream, 40, 300*time.Millisecond) }()
	step := func(d time.Duration, f func() error) {
		time.Sleep(d)
		if err := f(); err != nil {
			t.Fatal(err)
		}
	}
	start := func(r *chaos.Replica) func() error { return func() error { return r.Start(ctx) } }
	stop := func(r *chaos.Replica) func() error { return func() error { return r.Stop(30 * time.Second) } }
	kill := func(r *chaos.Replica) func() error { return func() error { r.Kill(); return nil } }
	step(time.Second, start(r2))
	step(time.Second, start(r3))
	step(1500*time.Millisecond, stop(r2))
	step(time.Second, kill(r3))
	step(500*time.Millisecond, start(r2))
	step(time.Second, start(r3))
	step(1500*time.Millisecond, stop(r1))
	step(time.Second, start(r1))
	if err := <-produced; err != nil {
		t.Fatal(err)
	}
	w.converged(ctx)
	w.verify(ctx, wl)
	for _, r := range []*chaos.Replica{r1, r2, r3} {
		if err := r.Stop(30 * time.Second); err != nil {
			t.Errorf("%s: graceful stop: %v", r.Name, err)
		}
	}
}

// The input grows from 3 to 6 partitions with events still unconsumed in the old
// partitions: the relay refuses the new layout, `state migrate` moves the state (and a
// second run moves nothing), and the relays then deliver every order's final entity,
// forwarding the old events to their order's new partition.
func TestPartitionGrowthRealKafka(t *testing.T) {
	w := newWorld(t, 3, false)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	wl := chaos.NewWorkload(1500, "google", 3)
	w.setOracle(wl)
	n := len(wl.Stream)
	r1, r2 := w.d.NewReplica("r1"), w.d.NewReplica("r2")

	// Phase 1: a third of the stream, relayed.
	if err := r1.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := w.produce(ctx, wl.Stream[:n/3], 1, 0); err != nil {
		t.Fatal(err)
	}
	if err := w.snk.WaitFor(ctx, func(s sink.Stats) bool { return s.Received > 0 }); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * time.Second)
	if err := r1.Stop(30 * time.Second); err != nil {
		t.Fatal(err)
	}
	// Phase 2: the next third lands in the old partitions, unconsumed; then the input grows.
	if err := w.produce(ctx, wl.Stream[n/3:2*n/3], 1, 0); err != nil {
		t.Fatal(err)
	}
	resp, err := w.adm.UpdatePartitions(ctx, 6, w.d.Input)
	if err == nil {
		_, err = resp.On(w.d.Input, nil)
	}
	if err != nil {
		t.Fatal(err)
	}
	w.parts = 6
	run := w.d.Command(ctx, "run", "--config", w.d.Dir+"/r1.yaml")
	run.Env = append(run.Env, "CHAOS_REPLICA=r1") // the partner key its config names, as a replica has it
	out, err := run.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "state migrate") {
		t.Fatalf("relay on a grown input: %v\n%s", err, out)
	}
	out, err = w.d.Command(ctx, "state", "migrate", "--config", w.d.Dir+"/r1.yaml").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "to 6 partitions") {
		t.Fatalf("state migrate: %v\n%s", err, out)
	}
	t.Logf("%s", out)
	out, err = w.d.Command(ctx, "state", "migrate", "--config", w.d.Dir+"/r1.yaml").CombinedOutput()
	if err != nil || !strings.Contains(string(out), " 0 moved") {
		t.Fatalf("state migrate again: %v\n%s", err, out)
	}
	// Phase 3: the rest lands by the new partitioning; two replicas relay it all.
	if err := w.produce(ctx, wl.Stream[2*n/3:], 1, 0); err != nil {
		t.Fatal(err)
	}
	for _, r := range []*chaos.Replica{r1, r2} {
		if err := r.Start(ctx); err != nil {
			t.Fatal(err)
		}
	}
	w.converged(ctx)
	w.verify(ctx, wl)
	for _, r := range []*chaos.Replica{r1, r2} {
		if err := r.Stop(30 * time.Second); err != nil {
			t.Errorf("%s: graceful stop: %v", r.Name, err)
		}
	}
	// state inspect finds an order in its new partition, with its final snapshot.
	id := wl.Stream[n-1].OrderID
	out, err = w.d.Command(ctx, "state", "inspect", id, "--config", w.d.Dir+"/r1.yaml").Output()
	if err != nil {
		t.Fatalf("state inspect: %v\n%s", err, out)
	}
	var in struct {
		Partition int32                   `json:"partition"`
		Version   int64                   `json:"version"`
		Acked     struct{ Version int64 } `json:"acked"`
		Events    []struct{ ID string }   `json:"events"`
		Snapshot  json.RawMessage         `json:"snapshot"`
	}
	if err := json.Unmarshal(out, &in); err != nil {
		t.Fatalf("state inspect output: %v\n%s", err, out)
	}
	evs := wl.ByOrder[id]
	if in.Version != int64(len(evs)) || in.Acked.Version != in.Version || len(in.Events) != len(evs) || !oracle.SameJSON(in.Snapshot, w.oracle[id]) {
		t.Fatalf("state inspect %s:\n%s", id, out)
	}
}

// SIGTERM mid-stream: the relay stops fetching, finishes what it can within its grace,
// commits, leaves the group and exits 0. Its last commit is exact: every input record
// below the committed offset is folded into the state topic, and none at or above it
// (the next owner processes those, once). Then a second replica finishes the work and
// every order converges, nothing stale, nothing dead-lettered.
func TestGracefulShutdownCommitsExactlyRealKafka(t *testing.T) {
	w := newWorld(t, 4, false)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	wl := chaos.NewWorkload(1500, "google", 11)
	w.setOracle(wl)
	a := w.d.NewReplica("a")
	if err := a.Start(ctx); err != nil {
		t.Fatal(err)
	}
	produced := make(chan error, 1)
	go func() { produced <- w.produce(ctx, wl.Stream, 20, 150*time.Millisecond) }()
	// Stop once the relay is well into the stream.
	if err := w.snk.WaitFor(ctx, func(s sink.Stats) bool { return s.Accepted >= 300 }); err != nil {
		t.Fatal(err)
	}
	if err := a.Stop(30 * time.Second); err != nil {
		t.Fatalf("SIGTERM: the relay did not exit cleanly: %v", err)
	}
	if err := <-produced; err != nil {
		t.Fatal(err)
	}
	groups, err := w.adm.DescribeGroups(ctx, w.d.Group)
	if err != nil {
		t.Fatal(err)
	}
	if g := groups[w.d.Group]; len(g.Members) != 0 {
		t.Errorf("the stopped relay is still a group member: %+v", g.Members)
	}
	committed := w.committed(ctx)
	folded := w.foldedEvents(ctx)
	below, above := 0, 0
	w.eachInput(ctx, func(r *kgo.Record, eventID string) {
		in := folded[eventID]
		switch {
		case r.Offset < committed[r.Partition] && !in:
			t.Errorf("%s/%d@%d (event %s) is committed but not in the state: lost", r.Topic, r.Partition, r.Offset, eventID)
		case r.Offset >= committed[r.Partition] && in:
			t.Errorf("%s/%d@%d (event %s) is in the state but not committed: it would be processed twice", r.Topic, r.Partition, r.Offset, eventID)
		case in:
			below++
		default:
			above++
		}
	})
	if below == 0 || above == 0 {
		t.Fatalf("the stop did not land mid-stream: %d records committed, %d not", below, above)
	}
	b := w.d.NewReplica("b")
	if err := b.Start(ctx); err != nil {
		t.Fatal(err)
	}
	w.converged(ctx)
	w.verify(ctx, wl)
	if err := b.Stop(30 * time.Second); err != nil {
		t.Errorf("b: graceful stop: %v", err)
	}
	t.Logf("SIGTERM after %d committed input records, %d left for the next owner", below, above)
}

// committed returns the consumer group's committed input offsets.
func (w *world) committed(ctx context.Context) map[int32]int64 {
	w.t.Helper()
	resp, err := w.adm.FetchOffsets(ctx, w.d.Group)
	if err == nil {
		err = resp.Error()
	}
	if err != nil {
		w.t.Fatal(err)
	}
	out := map[int32]int64{}
	for p, o := range resp[w.d.Input] {
		out[p] = o.At
	}
	return out
}

// foldedEvents returns the ids of every event held in the state topic.
func (w *world) foldedEvents(ctx context.Context) map[string]bool {
	w.t.Helper()
	out := map[string]bool{}
	for p := range w.parts {
		ps, err := statestore.Restore(ctx, []kgo.Opt{kgo.SeedBrokers(w.seeds...)}, w.d.State, p, nil)
		if err != nil {
			w.t.Fatal(err)
		}
		for id, v := range ps.Orders {
			rec, err := statestore.Unmarshal(id, v)
			if err != nil {
				w.t.Fatal(err)
			}
			for _, raw := range rec.Events {
				ev, err := w.codec.Decode(ctx, raw)
				if err != nil {
					w.t.Fatal(err)
				}
				out[ev.ID] = true
			}
		}
	}
	return out
}

// eachInput reads the input topic to its end and calls fn with each record's event id.
func (w *world) eachInput(ctx context.Context, fn func(*kgo.Record, string)) {
	w.t.Helper()
	ends, err := w.adm.ListEndOffsets(ctx, w.d.Input)
	if err != nil {
		w.t.Fatal(err)
	}
	left := map[int32]int64{}
	ends.Each(func(o kadm.ListedOffset) {
		if o.Offset > 0 {
			left[o.Partition] = o.Offset
		}
	})
	cl, err := kgo.NewClient(kgo.SeedBrokers(w.seeds...), kgo.ConsumeTopics(w.d.Input), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		w.t.Fatal(err)
	}
	defer cl.Close()
	for len(left) > 0 {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			w.t.Fatal(ctx.Err())
		}
		fs.EachRecord(func(r *kgo.Record) {
			ev, err := w.codec.Decode(ctx, r.Value)
			if err != nil {
				w.t.Fatal(err)
			}
			fn(r, ev.ID)
			if r.Offset+1 >= left[r.Partition] {
				delete(left, r.Partition)
			}
		})
	}
}

// The short variant of `make chaos` (scale 0.3: an 18 s outage): every fault on three
// relay processes and a broker of its own, then the oracle and the state topic.
func TestChaosScenarioShortRealKafka(t *testing.T) {
	kafkatest.Brokers(t) // the same rules: java and the jars are there when the shared broker is
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	var out strings.Builder
	rep, err := chaos.RunScenario(ctx, chaos.ScenarioOptions{Orders: 1500, Scale: 0.3, Seed: 1, Dir: t.TempDir(), Out: &out, Binary: ucprelayBinary(t)})
	if err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	if b := rep.Broken(); len(b) > 0 {
		t.Fatalf("%v\n%s", b, out.String())
	}
	if rep.DeadBefore["http_rejected"] == 0 || rep.DeadAfter["unknown_framing"] <= rep.DeadBefore["unknown_framing"] || rep.Faults["kill -9"] == 0 {
		t.Errorf("the scenario did not exercise its faults: %+v", rep)
	}
	t.Log(out.String())
}
