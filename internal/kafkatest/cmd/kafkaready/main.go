// Command kafkaready waits until a Kafka broker answers a metadata request. It is used by
// scripts/kafka.sh after the broker's port opens, since a port that accepts connections
// does not yet mean a broker that answers.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/ucprelay/ucprelay/internal/kafkatest"
)

func main() {
	brokers := flag.String("brokers", "127.0.0.1:39092", "comma-separated bootstrap addresses")
	timeout := flag.Duration("timeout", 60*time.Second, "how long to wait")
	flag.Parse()
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	if err := kafkatest.Ping(ctx, strings.Split(*brokers, ",")); err != nil {
		fmt.Fprintln(os.Stderr, "kafkaready:", err)
		os.Exit(1)
	}
}
