package relay_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/ucprelay/ucprelay/internal/kafkatest"
	"github.com/ucprelay/ucprelay/internal/sink"
)

// Every assigned partition gets its lag before any record arrives, even when the
// broker's first answers to the end-offset lookup fail: seeding retries until it knows
// (a loaded broker or a leader not yet elected must not leave a partition without a
// lag for good; fetches carry the high watermark only with records). kfake fails the
// first end-offset lookups of the input topic.
func TestLagSeededAfterFailedLookupsKfake(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c := kafkatest.Fake(t, 2)
	e := newEnv(t, c.ListenAddrs(), 2, sink.Config{})
	var failed atomic.Int32
	c.ControlKey(kmsg.ListOffsets.Int16(), func(req kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		r := req.(*kmsg.ListOffsetsRequest)
		latest := false
		for _, rt := range r.Topics {
			for _, rp := range rt.Partitions {
				latest = latest || (rt.Topic == e.input && rp.Timestamp == -1)
			}
		}
		if !latest || failed.Load() >= 3 {
			return nil, nil, false
		}
		failed.Add(1)
		resp := r.ResponseKind().(*kmsg.ListOffsetsResponse)
		for _, rt := range r.Topics {
			st := kmsg.NewListOffsetsResponseTopic()
			st.Topic = rt.Topic
			for _, rp := range rt.Partitions {
				sp := kmsg.NewListOffsetsResponseTopicPartition()
				sp.Partition = rp.Partition
				sp.ErrorCode = kerr.UnknownServerError.Code
				st.Partitions = append(st.Partitions, sp)
			}
			resp.Topics = append(resp.Topics, st)
		}
		return resp, nil, true
	})
	run := e.start(e.config("a"))
	for p := range int32(2) {
		for {
			if n, ok := run.r.Lag(e.input, p); ok {
				if n != 0 {
					t.Fatalf("partition %d: lag %d on an empty topic", p, n)
				}
				break
			}
			select {
			case <-ctx.Done():
				t.Fatalf("partition %d has no lag after %d failed lookups", p, failed.Load())
			case <-time.After(20 * time.Millisecond):
			}
		}
	}
	if failed.Load() < 1 {
		t.Fatal("no end-offset lookup was failed: the test proves nothing")
	}
}
