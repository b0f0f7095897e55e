// Command chaos is `make chaos`: it runs chaos.RunScenario (three relay processes on a
// broker of its own, every fault of the design's promises, an oracle of each order's
// final entity), prints the report and exits 1 when a promise was broken.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/ucprelay/ucprelay/internal/chaos"
)

func main() {
	orders := flag.Int("orders", 5000, "orders in the workload")
	scale := flag.Float64("scale", 1, "phase length factor: 1 is the full run (a 60 s outage)")
	seed := flag.Uint64("seed", uint64(time.Now().Unix()), "workload and fault seed (printed, to rerun a failure)")
	dir := flag.String("dir", "", "keep configs and replica logs here (default: a temporary directory, removed on success)")
	port := flag.Int("port", 29192, "first of the four ports of the scenario's broker")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, 15*time.Minute)
	defer cancel()
	keep := *dir != ""
	if !keep {
		d, err := os.MkdirTemp("", "ucprelay-chaos")
		if err != nil {
			fmt.Fprintln(os.Stderr, "chaos:", err)
			os.Exit(1)
		}
		*dir = d
	}
	fmt.Printf("chaos: seed %d, %d orders, scale %.2f, logs in %s\n", *seed, *orders, *scale, *dir)
	rep, err := chaos.RunScenario(ctx, chaos.ScenarioOptions{Orders: *orders, Scale: *scale, Seed: *seed, Dir: *dir, Out: os.Stdout, BrokerPort: *port})
	if err != nil {
		fmt.Fprintln(os.Stderr, "chaos:", err, "(logs kept in", *dir+")")
		os.Exit(1)
	}
	if len(rep.Broken()) > 0 {
		fmt.Fprintln(os.Stderr, "chaos: promises broken (logs kept in", *dir+")")
		os.Exit(1)
	}
	if !keep {
		_ = os.RemoveAll(*dir)
	}
}
