package main

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kversion"
)

// A broker older than Kafka 3.7 has no consumer protocol (KIP-848) and no
// ConsumerGroupDescribe: the guard then reads the classic protocol alone, it does not
// refuse every migration there.
func TestGroupIdleOnABrokerWithoutTheConsumerProtocol(t *testing.T) {
	t.Parallel()
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.MaxVersions(kversion.V3_6_0()))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	adm := kadm.NewClient(cl)
	if err := groupIdle(ctx, adm, "g"); err != nil {
		t.Fatalf("an idle group on a 3.6 broker: %v", err)
	}
	// A classic member is still seen.
	if _, err := adm.CreateTopic(ctx, 1, 1, nil, "t"); err != nil {
		t.Fatal(err)
	}
	member, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.ConsumerGroup("g"), kgo.ConsumeTopics("t"))
	if err != nil {
		t.Fatal(err)
	}
	defer member.Close()
	for {
		pctx, stop := context.WithTimeout(ctx, 200*time.Millisecond)
		member.PollFetches(pctx) // joins the group
		stop()
		if err := groupIdle(ctx, adm, "g"); errors.Is(err, ErrGroupActive) {
			return
		}
		if ctx.Err() != nil {
			t.Fatal("the classic member was not seen")
		}
	}
}
