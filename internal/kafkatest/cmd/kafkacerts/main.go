// Command kafkacerts writes the test broker's TLS material into a directory
// (kafkatest.WriteTLS says which files). scripts/kafka.sh runs it; it is test tooling,
// not part of ucprelay.
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/ucprelay/ucprelay/internal/kafkatest"
)

func main() {
	dir := flag.String("dir", "", "output directory")
	flag.Parse()
	if err := kafkatest.WriteTLS(*dir); err != nil {
		fmt.Fprintln(os.Stderr, "kafkacerts:", err)
		os.Exit(1)
	}
}
