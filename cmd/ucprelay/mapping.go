package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sr"

	"github.com/ucprelay/ucprelay/internal/mapping"
	"github.com/ucprelay/ucprelay/pkg/avrocodec"
	"github.com/ucprelay/ucprelay/pkg/orderevents"
)

func (a *app) mappingCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "mapping",
		Short: "Check the mapping of the merchant's own records to order events",
	}
	var (
		file      string
		fromTopic string
		limit     int
	)
	test := &cobra.Command{
		Use:   "test",
		Short: "Run the configuration's mapping on sample records and print what each becomes",
		Long: `mapping test applies the rules of the configuration's mapping: section to records and
prints, for each, the rule that matched and the order event it made (in the Avro JSON of
ucprelay's event schema, as ucprelay produce --file reads it), or why it failed; it exits
1 if any record fails. Nothing is written anywhere.

The records come from a file (--file, one JSON object per line) of the form
  {"topic": "shop.orders", "schema": "schemas/order_created.avsc", "key": "ord_1001",
   "headers": {"source-system": "oms"}, "timestamp": "2026-11-30T10:00:00Z",
   "value": {...the record in the standard JSON of its schema: unions not wrapped...}}
where schema is a path relative to the file (topic may be left out when the mapping
has one topic; key, headers and timestamp are optional), or from a topic (--from-topic,
read from its beginning without a consumer group, at most --limit records), decoded
with the schema registry of schema_registry.url.`,
		Example: `  ucprelay mapping test --config relay.yaml --file samples.jsonl
  ucprelay mapping test --config relay.yaml --from-topic shop.orders --limit 20`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if (file != "") == (fromTopic != "") {
				return errors.New("mapping test: give --file FILE or --from-topic TOPIC")
			}
			cfg, err := a.loadConfig(a.configFile, cmd.Flags(), false)
			if err != nil {
				return err
			}
			if cfg.mapper == nil {
				return errors.New("mapping test: the configuration has no mapping: section")
			}
			codec, reg, err := mappingCodec(cfg)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			t := &mappingTest{m: cfg.mapper, codec: codec, out: out}
			if file != "" {
				err = t.fromFile(cmd.Context(), cmd.InOrStdin(), file)
			} else {
				err = t.fromTopic(cmd.Context(), cfg, fromTopic, limit)
			}
			if err != nil {
				return err
			}
			if reg != nil {
				rctx, cancel := context.WithTimeout(cmd.Context(), 4*registryTimeout)
				ws, err := mapping.RegistryWriters(rctx, reg, cfg.mapper.Topics())
				cancel()
				if err != nil {
					fmt.Fprintf(out, "types: the registry's writer schemas are not read: %v\n", err)
				}
				t.writers = append(t.writers, ws...)
			}
			typesOK := t.checkTypes()
			fmt.Fprintf(out, "%d records: %d mapped, %d ignored, %d failed\n", t.n, t.mapped, t.ignored, t.failed)
			switch {
			case t.failed > 0:
				return fmt.Errorf("mapping test: %d of %d records failed", t.failed, t.n)
			case !typesOK:
				return errors.New("mapping test: the rules do not fit the writer schemas")
			}
			return nil
		},
	}
	f := test.Flags()
	f.StringVar(&file, "file", "", `sample records, one JSON object per line ("-" reads stdin)`)
	f.StringVar(&fromTopic, "from-topic", "", "read the records from this topic instead (read only, no consumer group)")
	f.IntVar(&limit, "limit", 20, "with --from-topic: at most this many records")
	a.configFlags(test, toolKeys)
	cmd.AddCommand(test)
	return cmd
}

// mappingCodec is the codec of the relay's records, with the schema registry when one
// is configured (then returned too, nil otherwise).
func mappingCodec(cfg *settings) (*avrocodec.Codec, *sr.Client, error) {
	if cfg.SchemaRegistry.URL == "" {
		c, err := avrocodec.New()
		return c, nil, err
	}
	reg, err := cfg.registryClient()
	if err != nil {
		return nil, nil, fmt.Errorf("schema registry client: %w", err)
	}
	c, err := avrocodec.New(avrocodec.WithRegistry(reg))
	return c, reg, err
}

type mappingTest struct {
	m                          *mapping.Mapper
	codec                      *avrocodec.Codec
	out                        io.Writer
	n, mapped, ignored, failed int
	// writers are the writer schemas the rules are type-checked against: the samples'
	// schema files and the registry's versions of the mapped topics.
	writers []mapping.Writer
}

// checkTypes type-checks the rules against the writer schemas and says so; false when
// they do not fit.
func (t *mappingTest) checkTypes() bool {
	if len(t.writers) == 0 {
		fmt.Fprintln(t.out, "types: no writer schema to check the rules against (they are checked on each record)")
		return true
	}
	if err := t.m.Check(t.writers); err != nil {
		fmt.Fprintf(t.out, "types: FAILED against %d writer schemas:\n%v\n", len(t.writers), err)
		return false
	}
	fmt.Fprintf(t.out, "types: the rules fit %d writer schemas\n", len(t.writers))
	return true
}

// report prints what record n became.
func (t *mappingTest) report(where string, res mapping.Result, err error) {
	t.n++
	switch {
	case err != nil:
		t.failed++
		fmt.Fprintf(t.out, "record %d (%s): FAILED: %v\n", t.n, where, err)
	case res.Ignored:
		t.ignored++
		fmt.Fprintf(t.out, "record %d (%s): ignored: no rule matches it and the topic ignores unmatched records\n", t.n, where)
	default:
		t.mapped++
		text, jerr := t.codec.EncodeJSON(res.Event)
		if jerr != nil {
			text = []byte(jerr.Error())
		}
		fmt.Fprintf(t.out, "record %d (%s): rule %s: %s %s of order %s\n  %s\n", t.n, where, res.Rule, kindOf(res.Event), res.Event.ID, res.Event.OrderID, text)
	}
}

func kindOf(ev orderevents.Event) string {
	if ev.Payload == nil {
		return "event"
	}
	return string(ev.Payload.Kind())
}

// sample is one line of a --file.
type sample struct {
	Topic     string            `json:"topic"`
	Schema    string            `json:"schema"`
	Key       string            `json:"key"`
	Headers   map[string]string `json:"headers"`
	Timestamp time.Time         `json:"timestamp"`
	Value     json.RawMessage   `json:"value"`
}

func (t *mappingTest) fromFile(_ context.Context, stdin io.Reader, file string) error {
	in, dir := stdin, "."
	if file != "-" {
		f, err := os.Open(file)
		if err != nil {
			return fmt.Errorf("mapping test: %w", err)
		}
		defer func() { _ = f.Close() }()
		in, dir = f, filepath.Dir(file)
	}
	topics := t.m.Topics()
	schemas := map[string]string{}
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 0, 1<<20), 16<<20)
	line := 0
	for sc.Scan() {
		line++
		text := bytes.TrimSpace(sc.Bytes())
		if len(text) == 0 || text[0] == '#' {
			continue
		}
		where := fmt.Sprintf("%s line %d", file, line)
		var s sample
		if err := json.Unmarshal(text, &s); err != nil {
			t.report(where, mapping.Result{}, fmt.Errorf("not a sample record: %w", err))
			continue
		}
		if s.Topic == "" && len(topics) == 1 {
			s.Topic = topics[0]
		}
		schema, ok := schemas[s.Schema]
		if !ok {
			b, err := os.ReadFile(filepath.Join(dir, s.Schema))
			if err != nil {
				t.report(where, mapping.Result{}, fmt.Errorf("its schema: %w", err))
				continue
			}
			schema = string(b)
			schemas[s.Schema] = schema
		}
		if w := (mapping.Writer{Topic: s.Topic, Source: "schema file " + s.Schema, Schema: schema}); !slices.Contains(t.writers, w) {
			t.writers = append(t.writers, w)
		}
		g, err := avrocodec.GenericFromJSON(schema, s.Value)
		if err != nil {
			t.report(where, mapping.Result{}, err)
			continue
		}
		res, err := t.m.Map(mapping.Input{Topic: s.Topic, Key: []byte(s.Key), Headers: s.Headers, Timestamp: s.Timestamp, Record: g})
		t.report(where, res, err)
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("mapping test: read %s: %w", file, err)
	}
	return nil
}

func (t *mappingTest) fromTopic(ctx context.Context, cfg *settings, topic string, limit int) error {
	cl, err := kgo.NewClient(append(append([]kgo.Opt{}, cfg.kafka...), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchIsolationLevel(kgo.ReadCommitted()))...)
	if err != nil {
		return fmt.Errorf("kafka client: %w", err)
	}
	defer cl.Close()
	ends, err := kadm.NewClient(cl).ListEndOffsets(ctx, topic)
	if err != nil {
		return fmt.Errorf("mapping test: end offsets of %s: %w", topic, err)
	}
	left := map[int32]int64{} // next offset to reach per partition
	ends.Each(func(o kadm.ListedOffset) {
		if o.Err == nil && o.Offset > 0 {
			left[o.Partition] = o.Offset
		}
	})
	records := mapping.Records{Mapper: t.m, Codec: t.codec}
	for len(left) > 0 && t.n < limit {
		pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		fs := cl.PollFetches(pctx)
		timedOut := pctx.Err() != nil
		cancel()
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if timedOut {
			break // nothing more within the end offsets (aborted transactions' records)
		}
		var ferr error
		fs.EachError(func(_ string, _ int32, err error) { ferr = err })
		if ferr != nil {
			return fmt.Errorf("mapping test: read %s: %w", topic, ferr)
		}
		fs.EachRecord(func(rec *kgo.Record) {
			if end, ok := left[rec.Partition]; !ok || rec.Offset >= end || t.n >= limit {
				return
			}
			if rec.Offset+1 >= left[rec.Partition] {
				delete(left, rec.Partition)
			}
			m, err := records.MapRecord(ctx, rec)
			t.report(fmt.Sprintf("%s/%d@%d, key %q", rec.Topic, rec.Partition, rec.Offset, rec.Key), m.Result, err)
		})
	}
	return nil
}
