// Package bench measures ucprelay against the limits of the machine it runs on and
// against the peer a Go team would assemble instead, all in one run on the same data: a
// real broker, one generated topic of order lifecycles, one loopback partner. Every
// figure is reported as a ratio to a limit measured in the same run (a raw franz-go
// consumer for reading, raw keep-alive POSTs to the same sink for writing), the median
// of several runs; thresholds.json holds the ratios below which `make bench` fails.
package bench
