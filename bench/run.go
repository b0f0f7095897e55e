package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"slices"
	"sort"
	"strings"
	"time"
)

// Options size a benchmark.
type Options struct {
	Seeds      []string
	Orders     int
	Partitions int32
	Runs       int
	// Latencies of the sink for the end-to-end cases.
	Latencies []time.Duration
	// PeerLimit bounds each Watermill throughput case.
	PeerLimit time.Duration
	// LatencyEvents and LatencyRate feed the latency cases: placements at a steady rate.
	LatencyEvents int
	LatencyRate   float64
	// MappedDir is the example whose mapping the mapped case runs through (its
	// relay.yaml and schemas); empty: no mapped case.
	MappedDir string
	// OnlyMapped runs the mapped case alone (its own-schema history and the mapped
	// one): to profile or tune the mapping without the hour of the other cases.
	OnlyMapped bool
	Log        io.Writer
}

// Sample is one run's figures by case name.
type Sample map[string]float64

// Result is the median of every figure over the runs.
type Result struct {
	Orders, Events int
	// MappedRecords are the records of the mapped case (the workload's events the
	// example's schemas can say).
	MappedRecords int
	Partitions    int32
	Runs          int
	Median        map[string]float64
	Samples       []Sample
}

// Run measures every case Runs times on one generated topic.
func Run(ctx context.Context, o Options) (*Result, error) {
	prefix := fmt.Sprintf("bench.%d", time.Now().Unix())
	fmt.Fprintf(o.Log, "bench: producing %d orders of lifecycles to %d partitions...\n", o.Orders, o.Partitions)
	e, err := NewEnv(ctx, o.Seeds, prefix, o.Orders, o.Partitions)
	if err != nil {
		return nil, err
	}
	defer e.Close()
	res := &Result{Orders: o.Orders, Events: e.Events, Partitions: o.Partitions, Runs: o.Runs, Median: map[string]float64{}}
	fmt.Fprintf(o.Log, "bench: %d events of %d orders; body %d bytes\n", e.Events, o.Orders, len(e.Body))
	var mapped *Mapped
	if o.OnlyMapped && o.MappedDir == "" {
		return nil, fmt.Errorf("bench: the mapped case alone needs the example to map (MappedDir)")
	}
	if o.MappedDir != "" {
		if mapped, err = e.NewMapped(ctx, o.MappedDir); err != nil {
			return nil, err
		}
		res.MappedRecords = mapped.Records
		fmt.Fprintf(o.Log, "bench: mapped case: %d records of the shop's own schemas on 3 topics, and the same history in ucprelay's\n", mapped.Records)
	}
	for run := range o.Runs {
		s := Sample{}
		step := func(name string, f func() (float64, error)) error {
			t := time.Now()
			v, err := f()
			if err != nil {
				return fmt.Errorf("bench: run %d, %s: %w", run+1, name, err)
			}
			s[name] = v
			fmt.Fprintf(o.Log, "bench: run %d  %-40s %12.1f   (%s)\n", run+1, name, v, time.Since(t).Round(100*time.Millisecond))
			return nil
		}
		if o.OnlyMapped {
			if err := mappedCase(ctx, e, mapped, s, step, fmt.Sprintf("r%d.m", run)); err != nil {
				return nil, err
			}
			res.Samples = append(res.Samples, s)
			continue
		}
		if err := step("limit/consume records/s", func() (float64, error) { return e.RawConsume(ctx) }); err != nil {
			return nil, err
		}
		for _, lat := range o.Latencies {
			l := lat.String()
			tag := fmt.Sprintf("r%d.%s", run, strings.ReplaceAll(l, ".", "_"))
			if err := step("limit/http sink="+l+" posts/s", func() (float64, error) { return e.RawHTTP(ctx, lat) }); err != nil {
				return nil, err
			}
			var posts int64
			if err := step("ucprelay sink="+l+" events/s", func() (float64, error) {
				rate, p, err := e.Relay(ctx, "u"+tag, lat)
				posts = p
				return rate, err
			}); err != nil {
				return nil, err
			}
			s["ucprelay sink="+l+" posts"] = float64(posts)
			if err := step("watermill sink="+l+" events/s", func() (float64, error) { return e.Watermill(ctx, "w"+tag, lat, o.PeerLimit) }); err != nil {
				return nil, err
			}
			if err := step("ucprelay sink="+l+" p50 ms", func() (float64, error) {
				p50, p99, err := e.RelayLatency(ctx, "ul"+tag, lat, o.LatencyEvents, o.LatencyRate)
				s["ucprelay sink="+l+" p99 ms"] = ms(p99)
				return ms(p50), err
			}); err != nil {
				return nil, err
			}
			if err := step("watermill sink="+l+" p50 ms", func() (float64, error) {
				p50, p99, err := e.WatermillLatency(ctx, "wl"+tag, lat, o.LatencyEvents, o.LatencyRate)
				s["watermill sink="+l+" p99 ms"] = ms(p99)
				return ms(p50), err
			}); err != nil {
				return nil, err
			}
			if lat == 0 {
				if err := step("restore records/s", func() (float64, error) {
					rate, _, err := e.Restore(ctx, "u"+tag)
					return rate, err
				}); err != nil {
					return nil, err
				}
				if err := step("resident bytes/order", func() (float64, error) { return e.ResidentPerOrder(ctx, "u"+tag) }); err != nil {
					return nil, err
				}
				if mapped != nil {
					if err := mappedCase(ctx, e, mapped, s, step, tag); err != nil {
						return nil, err
					}
				}
			}
		}
		res.Samples = append(res.Samples, s)
	}
	for name := range res.Samples[0] {
		var vs []float64
		for _, s := range res.Samples {
			vs = append(vs, s[name])
		}
		slices.Sort(vs)
		res.Median[name] = vs[len(vs)/2]
	}
	return res, nil
}

// mappedCase runs the own-schema history on one topic, the shop's records on one topic
// through all of the mapping's rules, the own-schema history on three topics and the
// mapped one on the example's three, in that order.
func mappedCase(ctx context.Context, e *Env, mapped *Mapped, s Sample, step func(string, func() (float64, error)) error, tag string) error {
	for _, c := range []struct {
		name, short string
		relay       func(context.Context, *Mapped, string) (float64, int64, error)
	}{
		{"ucprelay own-schema history", "mo", e.RelayOwn},
		{"ucprelay mapped on 1 topic", "m1", e.RelayMappedOneTopic},
		{"ucprelay own-schema history on 3 topics", "ms", e.RelayOwnSplit},
		{"ucprelay mapped", "mm", e.RelayMapped},
	} {
		if err := step(c.name+" sink=0s events/s", func() (float64, error) {
			rate, p, err := c.relay(ctx, mapped, c.short+tag)
			s[c.name+" sink=0s posts"] = float64(p)
			return rate, err
		}); err != nil {
			return err
		}
	}
	return nil
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// Ratios returns the ratios the table and the guard use, from the medians.
func (r *Result) Ratios(latencies []time.Duration) map[string]float64 {
	m := r.Median
	out := map[string]float64{}
	consume := m["limit/consume records/s"]
	for _, lat := range latencies {
		l := lat.String()
		http := m["limit/http sink="+l+" posts/s"]
		u, w := m["ucprelay sink="+l+" events/s"], m["watermill sink="+l+" events/s"]
		limit := min(consume, http)
		out["ucprelay/limit sink="+l] = u / limit
		out["watermill/limit sink="+l] = w / limit
		if w > 0 {
			out["ucprelay/watermill sink="+l] = u / w
		}
	}
	out["restore/limit-consume"] = m["restore records/s"] / consume
	if own := m["ucprelay own-schema history sink=0s events/s"]; own > 0 {
		out["mapped/own-schema sink=0s"] = m["ucprelay mapped sink=0s events/s"] / own
		out["mapped 1 topic/own-schema sink=0s"] = m["ucprelay mapped on 1 topic sink=0s events/s"] / own
		out["own-schema 3 topics/1 topic sink=0s"] = m["ucprelay own-schema history on 3 topics sink=0s events/s"] / own
	}
	if split := m["ucprelay own-schema history on 3 topics sink=0s events/s"]; split > 0 {
		out["mapped/own-schema 3 topics sink=0s"] = m["ucprelay mapped sink=0s events/s"] / split
	}
	return out
}

// Table writes the result as a Markdown table.
func (r *Result) Table(w io.Writer, latencies []time.Duration) {
	m, ratios := r.Median, r.Ratios(latencies)
	fmt.Fprintf(w, "%d events, %d orders, %d partitions, real broker; median of %d runs; ucprelay signs every request (RFC 9421, ES256).\n\n",
		r.Events, r.Orders, r.Partitions, r.Runs)
	if _, ran := m["limit/consume records/s"]; ran { // not with only the mapped case
		fmt.Fprintf(w, "| case | sink latency | rate | p50 / p99 event→2xx | ratio to limit | ucprelay / watermill |\n|---|---|---|---|---|---|\n")
		fmt.Fprintf(w, "| limit: raw franz-go group consumer | – | %.0f records/s | – | 1 (reading) | |\n", m["limit/consume records/s"])
		for _, lat := range latencies {
			l := lat.String()
			fmt.Fprintf(w, "| limit: raw HTTP, 64 keep-alive workers | %s | %.0f posts/s | – | 1 (writing) | |\n", l, m["limit/http sink="+l+" posts/s"])
			fmt.Fprintf(w, "| **ucprelay** (%.0f POSTs) | %s | %.0f events/s | %.0f / %.0f ms | **%.2f** | **%.2f** |\n",
				m["ucprelay sink="+l+" posts"], l, m["ucprelay sink="+l+" events/s"], m["ucprelay sink="+l+" p50 ms"], m["ucprelay sink="+l+" p99 ms"],
				ratios["ucprelay/limit sink="+l], ratios["ucprelay/watermill sink="+l])
			fmt.Fprintf(w, "| Watermill + watermill-kafka | %s | %.0f events/s | %.0f / %.0f ms | %.2f | |\n",
				l, m["watermill sink="+l+" events/s"], m["watermill sink="+l+" p50 ms"], m["watermill sink="+l+" p99 ms"], ratios["watermill/limit sink="+l])
		}
		fmt.Fprintf(w, "| ucprelay restore of the state topic | – | %.0f records/s | – | %.2f of consume | |\n", m["restore records/s"], ratios["restore/limit-consume"])
		fmt.Fprintf(w, "| ucprelay resident heap per restored order | – | %.0f bytes | – | | |\n", m["resident bytes/order"])
	}
	if r.MappedRecords == 0 {
		return
	}
	fmt.Fprintf(w, "\nMapped case (sink 0 ms): %d records, the workload's events the schemas of examples/three-topics can say, median of %d runs.\n\n", r.MappedRecords, r.Runs)
	fmt.Fprintf(w, "| case | rate | / own schema, one topic (aim: mapped ≥ 0.8) | / own schema, three topics |\n|---|---|---|---|\n")
	fmt.Fprintf(w, "| ucprelay, the history in its own schema, one topic (%.0f POSTs) | %.0f events/s | 1 | |\n",
		m["ucprelay own-schema history sink=0s posts"], m["ucprelay own-schema history sink=0s events/s"])
	fmt.Fprintf(w, "| **ucprelay through all of the example's rules on one topic**, the shop's records keyed by order id (%.0f POSTs) | %.0f events/s | **%.2f** | |\n",
		m["ucprelay mapped on 1 topic sink=0s posts"], m["ucprelay mapped on 1 topic sink=0s events/s"], ratios["mapped 1 topic/own-schema sink=0s"])
	fmt.Fprintf(w, "| ucprelay, the history in its own schema on three topics split as the shop's, keyed by order id (%.0f POSTs) | %.0f events/s | %.2f | 1 |\n",
		m["ucprelay own-schema history on 3 topics sink=0s posts"], m["ucprelay own-schema history on 3 topics sink=0s events/s"], ratios["own-schema 3 topics/1 topic sink=0s"])
	fmt.Fprintf(w, "| **ucprelay through the example's mapping**: orders, shipments and refunds topics, the last two re-keyed (%.0f POSTs) | %.0f events/s | **%.2f** | %.2f |\n",
		m["ucprelay mapped sink=0s posts"], m["ucprelay mapped sink=0s events/s"], ratios["mapped/own-schema sink=0s"], ratios["mapped/own-schema 3 topics sink=0s"])
}

// Guard compares the ratios with the thresholds file (ratio name → minimum) and returns
// the ones below their threshold.
func (r *Result) Guard(path string, latencies []time.Duration) ([]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var min map[string]float64
	if err := json.Unmarshal(b, &min); err != nil {
		return nil, fmt.Errorf("bench: %s: %w", path, err)
	}
	ratios := r.Ratios(latencies)
	var below []string
	names := make([]string, 0, len(min))
	for n := range min {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		got, ok := ratios[n]
		switch {
		case !ok:
			below = append(below, fmt.Sprintf("%s: not measured", n))
		case got < min[n]:
			below = append(below, fmt.Sprintf("%s: %.3f below the threshold %.3f", n, got, min[n]))
		}
	}
	return below, nil
}
