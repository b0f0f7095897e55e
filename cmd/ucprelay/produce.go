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
	"time"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/ucprelay/ucprelay/avro"
	"github.com/ucprelay/ucprelay/internal/gen"
	"github.com/ucprelay/ucprelay/pkg/avrocodec"
	"github.com/ucprelay/ucprelay/pkg/orderevents"
)

func (a *app) produceCmd() *cobra.Command {
	var (
		sample      int
		partner     string
		file        string
		framing     string
		printSample bool
		seed        uint64
	)
	cmd := &cobra.Command{
		Use:   "produce",
		Short: "Publish sample or JSON-described order events as Avro to the input topic, to test an installation",
		Long: `produce writes order-domain events to kafka.input_topic, keyed by order id, as the
merchant's systems would: generated order lifecycles (--sample N: a placement, shipment,
delivery and for some orders a return and refund or a cancellation), or events described
in the Avro JSON encoding of the OrderEvent schema (--file, one per line or a JSON
array; --print-sample prints a template). Every event is validated before it is sent.
--framing single-object (default) needs no registry; confluent registers the schema
under <input_topic>-value in schema_registry.url.`,
		Example: `  ucprelay produce --config relay.yaml --sample 20 --partner google
  ucprelay produce --print-sample > event.json && ucprelay produce --config relay.yaml --file event.json
  jq -c '.[]' events.json | ucprelay produce --config relay.yaml --file - --framing confluent`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			codec, err := avrocodec.New()
			if err != nil {
				return err
			}
			if printSample {
				ev := gen.Placed("ord_sample_1", partnerOr(partner, "google"), seed, time.Now().UTC().Truncate(time.Second))
				b, err := codec.EncodeJSON(ev)
				if err != nil {
					return err
				}
				var pretty bytes.Buffer
				if err := json.Indent(&pretty, b, "", "  "); err != nil {
					return err
				}
				_, err = fmt.Fprintln(cmd.OutOrStdout(), pretty.String())
				return err
			}
			if (sample > 0) == (file != "") {
				return errors.New("produce: give --sample N or --file FILE (or --print-sample)")
			}
			cfg, err := a.loadKafkaConfig(cmd.Context(), cmd.Flags(), false)
			if err != nil {
				return err
			}
			var evs []orderevents.Event
			if sample > 0 {
				p := partnerOr(partner, cfg.DefaultPartner)
				at := time.Now().Add(-72 * time.Hour).UTC().Truncate(time.Second)
				for i := range sample {
					evs = append(evs, gen.Lifecycle(fmt.Sprintf("ord_%d_%04d", seed, i+1), p, seed*7919+uint64(i), at.Add(time.Duration(i)*time.Minute))...)
				}
			} else if evs, err = readEvents(cmd.InOrStdin(), file, codec); err != nil {
				return err
			}
			return produceEvents(cmd.Context(), cmd, cfg, codec, framing, evs)
		},
	}
	f := cmd.Flags()
	f.IntVar(&sample, "sample", 0, "generate this many order lifecycles")
	f.StringVar(&partner, "partner", "", "partner id of the generated orders (default: default_partner)")
	f.StringVar(&file, "file", "", `events in Avro JSON, one per line or a JSON array ("-" reads stdin)`)
	f.StringVar(&framing, "framing", "single-object", "single-object or confluent (needs schema_registry.url)")
	f.BoolVar(&printSample, "print-sample", false, "print a sample event in Avro JSON and exit")
	f.Uint64Var(&seed, "seed", uint64(time.Now().Unix()), "seed of the generated orders (ids and contents)")
	a.configFlags(cmd, toolKeys)
	return cmd
}

func partnerOr(p, def string) string {
	if p != "" {
		return p
	}
	return def
}

// readEvents reads Avro JSON events from a file or stdin: a JSON array, or one per line.
func readEvents(stdin io.Reader, file string, codec *avrocodec.Codec) ([]orderevents.Event, error) {
	in := stdin
	if file != "-" {
		f, err := os.Open(file)
		if err != nil {
			return nil, fmt.Errorf("produce: %w", err)
		}
		defer func() { _ = f.Close() }()
		in = f
	}
	data, err := io.ReadAll(in)
	if err != nil {
		return nil, fmt.Errorf("produce: read %s: %w", file, err)
	}
	var docs []json.RawMessage
	if t := bytes.TrimSpace(data); len(t) > 0 && t[0] == '[' {
		if err := json.Unmarshal(t, &docs); err != nil {
			return nil, fmt.Errorf("produce: %s: %w", file, err)
		}
	} else {
		sc := bufio.NewScanner(bytes.NewReader(data))
		sc.Buffer(make([]byte, 0, 64<<10), 16<<20)
		var cur bytes.Buffer
		for sc.Scan() {
			// A pretty-printed event spans lines: collect until the text is one JSON value.
			cur.Write(sc.Bytes())
			cur.WriteByte('\n')
			if json.Valid(cur.Bytes()) {
				docs = append(docs, append(json.RawMessage(nil), bytes.TrimSpace(cur.Bytes())...))
				cur.Reset()
			}
		}
		if rest := bytes.TrimSpace(cur.Bytes()); len(rest) > 0 {
			return nil, fmt.Errorf("produce: %s: event %d is not valid JSON", file, len(docs)+1)
		}
	}
	evs := make([]orderevents.Event, 0, len(docs))
	for i, d := range docs {
		ev, err := codec.DecodeJSON(d)
		if err != nil {
			return nil, fmt.Errorf("produce: %s: event %d: %w", file, i+1, err)
		}
		evs = append(evs, ev)
	}
	if len(evs) == 0 {
		return nil, fmt.Errorf("produce: %s holds no events", file)
	}
	return evs, nil
}

func produceEvents(ctx context.Context, cmd *cobra.Command, cfg *settings, codec *avrocodec.Codec, framing string, evs []orderevents.Event) error {
	encode := codec.EncodeSingleObject
	switch framing {
	case "single-object":
	case "confluent":
		if cfg.SchemaRegistry.URL == "" {
			return errors.New("produce: --framing confluent needs schema_registry.url")
		}
		reg, err := cfg.registryClient()
		if err != nil {
			return fmt.Errorf("produce: schema registry client: %w", err)
		}
		rc, err := avrocodec.New(avrocodec.WithRegistry(reg))
		if err != nil {
			return err
		}
		id, err := rc.Register(ctx, avro.Subject(cfg.Kafka.InputTopic))
		if err != nil {
			return err
		}
		encode = func(ev orderevents.Event) ([]byte, error) { return rc.EncodeConfluent(id, ev) }
	default:
		return fmt.Errorf("produce: --framing %q: want single-object or confluent", framing)
	}
	cl, err := kgo.NewClient(append(cfg.kafka, kgo.DefaultProduceTopic(cfg.Kafka.InputTopic), kgo.ProducerLinger(5*time.Millisecond))...)
	if err != nil {
		return fmt.Errorf("produce: kafka client: %w", err)
	}
	defer cl.Close()
	bar := newProgressBar(cmd.ErrOrStderr())
	orders := map[string]bool{}
	const chunk = 500
	for i := 0; i < len(evs); i += chunk {
		recs := make([]*kgo.Record, 0, chunk)
		for _, ev := range evs[i:min(i+chunk, len(evs))] {
			v, err := encode(ev)
			if err != nil {
				return err
			}
			recs = append(recs, &kgo.Record{Key: []byte(ev.OrderID), Value: v})
			orders[ev.OrderID] = true
		}
		if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
			return fmt.Errorf("produce to %s: %w", cfg.Kafka.InputTopic, err)
		}
		bar.show(int64(min(i+chunk, len(evs))), int64(len(evs)), "events", "")
	}
	bar.done()
	_, err = fmt.Fprintf(cmd.OutOrStdout(), "produced %d events of %d orders to %s (%s)\n", len(evs), len(orders), cfg.Kafka.InputTopic, framing)
	return err
}
