// Command ucprelay-bench is `make bench`: it measures ucprelay end to end on the real
// broker against the limits (raw consume, raw HTTP) and the Watermill peer on the same
// generated data, prints the Markdown table of medians and ratios, and exits 1 when a
// ratio falls below bench/thresholds.json.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"runtime/pprof"
	"strings"
	"syscall"
	"time"

	"github.com/ucprelay/ucprelay/bench"
)

func main() {
	orders := flag.Int("orders", 63000, "orders (≈3.2 events each: 63000 orders make ≥ 200k events)")
	partitions := flag.Int("partitions", 12, "input partitions")
	runs := flag.Int("runs", 3, "runs; every figure is the median")
	lats := flag.String("sink-latency", "0s,20ms,100ms", "sink latencies of the end-to-end cases")
	peerLimit := flag.Duration("peer-limit", 30*time.Second, "upper bound of each Watermill throughput case")
	thresholds := flag.String("thresholds", "bench/thresholds.json", "ratio thresholds; empty: no guard")
	out := flag.String("out", "", "also write the table to this file")
	mapped := flag.String("mapped", "../examples/three-topics", "example whose mapping the mapped case runs through (sink 0 ms); empty: none")
	onlyMapped := flag.Bool("only-mapped", false, "run the mapped case alone (the own-schema history and the mapped records on one topic, then on three): to profile the mapping; no guard")
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile of the whole run (relay and peer run in this process)")
	flag.Parse()
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err != nil {
			fail(err)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			fail(err)
		}
		defer pprof.StopCPUProfile()
	}
	brokers := os.Getenv("UCPRELAY_TEST_BROKERS")
	if brokers == "" {
		fail(fmt.Errorf("UCPRELAY_TEST_BROKERS is not set (make bench starts the broker)"))
	}
	var latencies []time.Duration
	for _, s := range strings.Split(*lats, ",") {
		d, err := time.ParseDuration(strings.TrimSpace(s))
		if err != nil {
			fail(err)
		}
		latencies = append(latencies, d)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	res, err := bench.Run(ctx, bench.Options{Seeds: strings.Split(brokers, ","), Orders: *orders, Partitions: int32(*partitions), Runs: *runs,
		Latencies: latencies, PeerLimit: *peerLimit, LatencyEvents: 3000, LatencyRate: 300, MappedDir: *mapped, OnlyMapped: *onlyMapped, Log: os.Stderr})
	if err != nil {
		fail(err)
	}
	fmt.Println()
	res.Table(os.Stdout, latencies)
	if *out != "" {
		f, err := os.Create(*out)
		if err != nil {
			fail(err)
		}
		res.Table(f, latencies)
		_ = f.Close()
	}
	if *thresholds == "" || *onlyMapped {
		return
	}
	below, err := res.Guard(*thresholds, latencies)
	if err != nil {
		fail(err)
	}
	if len(below) > 0 {
		fmt.Fprintln(os.Stderr, "\nbench: REGRESSION:")
		for _, b := range below {
			fmt.Fprintln(os.Stderr, "  "+b)
		}
		pprof.StopCPUProfile()
		os.Exit(1)
	}
	fmt.Fprintf(os.Stderr, "\nbench: every ratio at or above %s\n", *thresholds)
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "ucprelay-bench:", err)
	os.Exit(1)
}
