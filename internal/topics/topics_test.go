package topics_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/ucprelay/ucprelay/internal/kafkatest"
	"github.com/ucprelay/ucprelay/internal/topics"
)

// The same contract runs against the real broker and kfake.
func TestLayoutRealKafka(t *testing.T) {
	t.Parallel()
	testLayout(t, kafkatest.Brokers(t))
}

func TestLayoutKfake(t *testing.T) {
	t.Parallel()
	c := kafkatest.Fake(t, 1)
	testLayout(t, c.ListenAddrs())
}

func testLayout(t *testing.T, seeds []string) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(seeds...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	adm := kadm.NewClient(cl)
	ta := topics.NewAdmin(cl)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	n := kafkatest.NewNames(t)
	l := topics.Layout{Input: []string{n.Topic("input")}, State: n.Topic("state"), DeadLetter: n.Topic("dlq")}

	if _, err := topics.Check(ctx, ta, l); !errors.Is(err, topics.ErrMissingTopic) {
		t.Fatalf("no input topic: want ErrMissingTopic, got %v", err)
	}
	kafkatest.CreateTopic(t, adm, l.Input[0], 3, nil)
	if _, err := topics.Check(ctx, ta, l); !errors.Is(err, topics.ErrMissingTopic) {
		t.Fatalf("no state topic: want ErrMissingTopic, got %v", err)
	}
	created, err := topics.Create(ctx, ta, l, 1, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = adm.DeleteTopics(context.Background(), l.State, l.DeadLetter) })
	if len(created) != 2 || created[0].Partitions != 3 || created[0].Existed {
		t.Fatalf("created %+v", created)
	}
	got, err := topics.Check(ctx, ta, l)
	if err != nil || got != 3 {
		t.Fatalf("check after create: %d, %v", got, err)
	}
	again, err := topics.Create(ctx, ta, l, 1, 0)
	if err != nil || !again[0].Existed || !again[1].Existed {
		t.Fatalf("create twice: %+v, %v", again, err)
	}

	if _, err := adm.CreatePartitions(ctx, 3, l.Input[0]); err != nil {
		t.Fatal(err)
	}
	waitPartitions(t, ta, l, 6)
	if _, err := topics.Check(ctx, ta, l); !errors.Is(err, topics.ErrPartitionMismatch) {
		t.Fatalf("grown input: want ErrPartitionMismatch, got %v", err)
	}

	bad := topics.Layout{Input: l.Input, State: n.Topic("state-delete"), DeadLetter: l.DeadLetter}
	kafkatest.CreateTopic(t, adm, bad.State, 6, nil)
	if _, err := topics.Check(ctx, ta, bad); !errors.Is(err, topics.ErrNotCompacted) {
		t.Fatalf("delete-policy state: want ErrNotCompacted, got %v", err)
	}
	// compact,delete deletes state older than the retention: refused too.
	both := topics.Layout{Input: l.Input, State: n.Topic("state-compact-delete"), DeadLetter: l.DeadLetter}
	kafkatest.CreateTopic(t, adm, both.State, 6, map[string]*string{"cleanup.policy": ptr("compact,delete")})
	if _, err := topics.Check(ctx, ta, both); !errors.Is(err, topics.ErrNotCompacted) {
		t.Fatalf("compact,delete state: want ErrNotCompacted, got %v", err)
	}
}

// waitPartitions waits until the grown input topic's new partitions show in metadata.
func waitPartitions(t *testing.T, ta *topics.Admin, l topics.Layout, want int32) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		n, err := topics.Check(context.Background(), ta, topics.Layout{Input: l.Input})
		if err == nil && n == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("input never reached %d partitions: %d, %v", want, n, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
func ptr(s string) *string { return &s }
