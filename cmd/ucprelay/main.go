// Command ucprelay relays a merchant's order-domain events from Kafka to the order
// webhooks of agent platforms (UCP), always as the complete, current order entity.
//
// This package is wiring only: configuration, clients and components are built here and
// handed to the packages that do the work.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/propagation"
)

// exitCode is what a command's error makes the process return.
type exitCode interface{ ExitCode() int }

func main() {
	// Trace context travels from Kafka headers to the webhook POST (W3C traceparent).
	otel.SetTextMapPropagator(propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{}))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := newRootCmd(os.Stdout, os.Stderr, os.Environ()).ExecuteContext(ctx)
	stop()
	if err == nil {
		return
	}
	fmt.Fprintln(os.Stderr, "ucprelay:", err)
	var ec exitCode
	if errors.As(err, &ec) {
		os.Exit(ec.ExitCode())
	}
	os.Exit(1)
}
