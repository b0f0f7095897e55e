// Package avro embeds the Avro schemas of the order-domain events, the source of truth
// for producers and for ucprelay's decoder, with every version ever shipped (history/)
// and the check that a new version keeps the evolution rules (Compatible). See README.md
// in this folder for the rules by which the schemas evolve.
package avro

import (
	"embed"
	"fmt"
	"io/fs"
	"sort"
	"strconv"
	"strings"
)

// OrderEvent is the schema of an order-domain event (record dev.ucprelay.order.v1.OrderEvent).
//
//go:embed order_event.avsc
var OrderEvent string

// Subject is the schema registry subject producers register OrderEvent under when they
// use the default TopicNameStrategy for a topic named "orders": "<topic>-value".
func Subject(topic string) string { return topic + "-value" }

//go:embed history
var history embed.FS

// Version is one shipped version of OrderEvent.
type Version struct {
	// N numbers the versions from 1 in the order they shipped.
	N int
	// File is its file name under history/.
	File string
	// Schema is the schema, byte for byte as shipped.
	Schema string
}

// History returns every version of OrderEvent ever shipped, oldest first; the last is
// OrderEvent. The files are never edited (history/SHA256SUMS, checked by the tests): a
// relay of any version decodes events stored by any other, since each knows every
// version before its own and learns newer ones from the state topic.
func History() []Version {
	entries, err := fs.Glob(history, "history/order_event.v*.avsc")
	if err != nil {
		panic(err) // a constant pattern
	}
	out := make([]Version, 0, len(entries))
	for _, e := range entries {
		name := strings.TrimPrefix(e, "history/")
		n, err := strconv.Atoi(strings.TrimSuffix(strings.TrimPrefix(name, "order_event.v"), ".avsc"))
		if err != nil {
			panic(fmt.Sprintf("avro: history file %s is not order_event.v<N>.avsc", name))
		}
		b, err := history.ReadFile(e)
		if err != nil {
			panic(err)
		}
		out = append(out, Version{N: n, File: name, Schema: string(b)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].N < out[j].N })
	return out
}

// HistorySums returns history/SHA256SUMS: the digest of every shipped version.
func HistorySums() string {
	b, err := history.ReadFile("history/SHA256SUMS")
	if err != nil {
		panic(err)
	}
	return string(b)
}
