package main

import (
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"
	"unicode/utf8"

	"github.com/spf13/cobra"

	"github.com/ucprelay/ucprelay/internal/deadletter"
)

// dlqFilter holds the selection flags shared by dlq inspect and dlq replay.
type dlqFilter struct {
	reasons, stages, orders, partners []string
	since, until                      string
}

func (f *dlqFilter) flags(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.StringSliceVar(&f.reasons, "reason", nil, "only these reasons, e.g. circuit_open,http_rejected")
	fl.StringSliceVar(&f.stages, "stage", nil, "only these stages: decode, fold, deliver")
	fl.StringSliceVar(&f.orders, "order", nil, "only these order ids")
	fl.StringSliceVar(&f.partners, "partner", nil, "only these partner ids")
	fl.StringVar(&f.since, "since", "", "only failures at or after this time (RFC 3339) or this long ago (e.g. 2h)")
	fl.StringVar(&f.until, "until", "", "only failures before this time (RFC 3339) or this long ago")
}

func (f *dlqFilter) build(now time.Time) (deadletter.Filter, error) {
	out := deadletter.Filter{Reasons: f.reasons, OrderIDs: f.orders, Partners: f.partners}
	for _, s := range f.stages {
		switch st := deadletter.Stage(s); st {
		case deadletter.StageDecode, deadletter.StageFold, deadletter.StageDeliver:
			out.Stages = append(out.Stages, st)
		default:
			return out, fmt.Errorf("--stage %q: want decode, fold or deliver", s)
		}
	}
	var err error
	if out.Since, err = parseWhen("--since", f.since, now); err != nil {
		return out, err
	}
	if out.Until, err = parseWhen("--until", f.until, now); err != nil {
		return out, err
	}
	return out, nil
}

// parseWhen reads an RFC 3339 time or a duration before now.
func parseWhen(flag, v string, now time.Time) (time.Time, error) {
	if v == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339, v); err == nil {
		return t, nil
	}
	if d, err := time.ParseDuration(v); err == nil && d > 0 {
		return now.Add(-d), nil
	}
	return time.Time{}, fmt.Errorf("%s %q: want an RFC 3339 time (2026-11-30T08:00:00Z) or a duration ago (2h)", flag, v)
}

func (a *app) dlqCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "dlq", Short: "Inspect the dead-letter topic and replay records from it"}
	var (
		inspectSel dlqFilter
		samples    int
		asJSON     bool
	)
	inspect := &cobra.Command{
		Use:   "inspect",
		Short: "Summarise dead-letter records: counts by reason, stage and partner, oldest and newest, samples",
		Example: `  ucprelay dlq inspect --config relay.yaml
  ucprelay dlq inspect --config relay.yaml --reason circuit_open --since 6h --samples 5
  ucprelay dlq inspect --config relay.yaml --order ord_10452 --json | jq .samples`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := a.loadKafkaConfig(cmd.Context(), cmd.Flags(), false)
			if err != nil {
				return err
			}
			f, err := inspectSel.build(time.Now())
			if err != nil {
				return err
			}
			s, err := deadletter.Inspect(cmd.Context(), cfg.kafka, cfg.Kafka.DeadLetterTopic, f, samples)
			if err != nil {
				return err
			}
			if asJSON {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(s)
			}
			return printSummary(cmd.OutOrStdout(), s)
		},
	}
	inspectSel.flags(inspect)
	inspect.Flags().IntVar(&samples, "samples", 3, "sample records shown per reason")
	inspect.Flags().BoolVar(&asJSON, "json", false, "print the summary as JSON")

	var (
		sel       dlqFilter
		group     string
		fromStart bool
		dryRun    bool
		rate      float64
	)
	replay := &cobra.Command{
		Use:   "replay",
		Short: "Send dead-letter records back through the relays, which deliver each order's current snapshot",
		Long: `replay writes the selected dead-letter records back to the input topic, keyed by order id
into the partition that owns the order, where the running relays process them again:

  - a record that failed to decode or fold is processed again as the event it was (fix the
    cause first, e.g. configure the missing partner; a still-bad event is dead-lettered again);
  - a failed delivery makes the relay send the order's CURRENT snapshot, never the stale one
    that failed, and nothing when the partner already acknowledged the current one.

So a replay is safe while relays run, and replaying twice is harmless. Progress is kept in
a consumer group (--group; by default one per filter), so an interrupted replay resumes
where it stopped; --from-start reads the whole topic again.`,
		Example: `  ucprelay dlq replay --config relay.yaml --reason circuit_open --dry-run
  ucprelay dlq replay --config relay.yaml --reason circuit_open,retries_exhausted --rate 50
  ucprelay dlq replay --config relay.yaml --order ord_10452 --from-start`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := a.loadKafkaConfig(cmd.Context(), cmd.Flags(), false)
			if err != nil {
				return err
			}
			f, err := sel.build(time.Now())
			if err != nil {
				return err
			}
			out, errOut := cmd.OutOrStdout(), cmd.ErrOrStderr()
			bar := newProgressBar(errOut)
			_, _, repartition := inputs(cfg.Config)
			rc := deadletter.ReplayConfig{
				KafkaOpts: cfg.kafka, Topic: cfg.Kafka.DeadLetterTopic, InputTopic: cfg.Kafka.InputTopic, RepartitionTopic: repartition,
				Partitioner: cfg.Kafka.Partitioner, Filter: f, Group: group, FromStart: fromStart, DryRun: dryRun, Rate: rate,
				Progress: func(s deadletter.ReplayStats) {
					bar.show(s.Position, s.Span, "offsets", fmt.Sprintf("%d records read, %d replayed", s.Scanned, s.Replayed))
				},
			}
			if dryRun {
				rc.OnRecord = func(r deadletter.Record) {
					fmt.Fprintf(out, "would replay order %s (%s/%s, partner %s)\n", r.OrderID, r.Stage, r.Reason, r.Partner)
				}
			}
			st, err := deadletter.Replay(cmd.Context(), rc)
			bar.done()
			if err != nil {
				return fmt.Errorf("dlq replay (progress kept in group %s; run again to resume): %w", st.Group, err)
			}
			verb := "replayed"
			if dryRun {
				verb = "would replay"
			}
			_, err = fmt.Fprintf(out, "%s %d of %d records read (%d not selected, %d unroutable) in %s; progress group %s\n",
				verb, st.Replayed, st.Scanned, st.Skipped, st.Unroutable, st.Took.Round(time.Millisecond), st.Group)
			if err == nil && st.Refetched+st.Unavailable > 0 {
				_, err = fmt.Fprintf(out, "%d records had their value omitted (too large for the dead-letter topic): %d read back from their source, %d no longer there and not replayed\n",
					st.Refetched+st.Unavailable, st.Refetched, st.Unavailable)
			}
			return err
		},
	}
	sel.flags(replay)
	fl := replay.Flags()
	fl.StringVar(&group, "group", "", "consumer group that keeps the replay's progress (default: one per filter)")
	fl.BoolVar(&fromStart, "from-start", false, "ignore the kept progress and read the whole dead-letter topic")
	fl.BoolVar(&dryRun, "dry-run", false, "list what would be replayed; write nothing")
	fl.Float64Var(&rate, "rate", 0, "records per second at most (0: no limit)")
	a.configFlags(inspect, toolKeys)
	a.configFlags(replay, toolKeys)
	cmd.AddCommand(inspect, replay)
	return cmd
}

func printSummary(w io.Writer, s *deadletter.Summary) error {
	fmt.Fprintf(w, "dead-letter topic %s: %d records read, %d selected", s.Topic, s.Scanned, s.Matched)
	if s.Malformed > 0 {
		fmt.Fprintf(w, ", %d without dead-letter headers", s.Malformed)
	}
	fmt.Fprintln(w)
	if s.Matched == 0 {
		return nil
	}
	fmt.Fprintf(w, "oldest failure %s, newest %s\n\n", s.Oldest.UTC().Format(time.RFC3339), s.Newest.UTC().Format(time.RFC3339))
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, t := range []struct {
		title string
		m     map[string]int
	}{{"REASON", s.ByReason}, {"STAGE", s.ByStage}, {"PARTNER", s.ByPartner}} {
		fmt.Fprintf(tw, "%s\tRECORDS\n", t.title)
		keys := make([]string, 0, len(t.m))
		for k := range t.m {
			keys = append(keys, k)
		}
		sort.Slice(keys, func(i, j int) bool {
			return t.m[keys[i]] > t.m[keys[j]] || t.m[keys[i]] == t.m[keys[j]] && keys[i] < keys[j]
		})
		for _, k := range keys {
			fmt.Fprintf(tw, "%s\t%d\n", k, t.m[k])
		}
		fmt.Fprintln(tw, "\t")
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, sm := range s.Samples {
		r := sm.Record
		fmt.Fprintf(w, "- %s/%d@%d order %s: %s/%s", s.Topic, sm.Partition, sm.Offset, r.OrderID, r.Stage, r.Reason)
		if r.Partner != "" {
			fmt.Fprintf(w, " partner %s", r.Partner)
		}
		if r.HTTPStatus != 0 {
			fmt.Fprintf(w, " http %d", r.HTTPStatus)
		}
		if r.Attempts != 0 {
			fmt.Fprintf(w, " attempts %d", r.Attempts)
		}
		fmt.Fprintf(w, "\n    source %s/%d@%d, relay %s\n", r.SourceTopic, r.SourcePartition, r.SourceOffset, r.RelayVersion)
		if r.Error != "" {
			fmt.Fprintf(w, "    error: %s\n", r.Error)
		}
		fmt.Fprintf(w, "    value: %s\n", printable(r.Value, 160))
	}
	return nil
}

// printable shows a value as text when it is UTF-8 text, else as hex, cut at n bytes.
func printable(v []byte, n int) string {
	cut := v
	if len(cut) > n {
		cut = cut[:n]
	}
	s := ""
	if utf8.Valid(cut) && !strings.ContainsFunc(string(cut), func(r rune) bool { return r < 0x20 && r != '\n' && r != '\t' }) {
		s = string(cut)
	} else {
		s = fmt.Sprintf("(%d bytes) %x", len(v), cut)
	}
	if len(v) > n {
		s += "…"
	}
	return s
}
