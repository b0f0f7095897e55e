package relay

import (
	"fmt"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// balanceRound runs one balance of the copartitioned balancer for members that own
// owned (member → topic → partitions), and returns each member's assignment.
func balanceRound(t *testing.T, b copartitioned, interests []string, owned map[string]map[string][]int32, gen int32, counts map[string]int32) map[string]map[string][]int32 {
	t.Helper()
	var members []kmsg.JoinGroupResponseMember
	for _, id := range []string{"a", "b", "c"} {
		cur, ok := owned[id]
		if !ok {
			continue
		}
		m := kmsg.NewJoinGroupResponseMember()
		m.MemberID = id
		m.ProtocolMetadata = b.JoinGroupMetadata(interests, cur, gen)
		members = append(members, m)
	}
	mb, topics, err := b.MemberBalancer(members)
	if err != nil {
		t.Fatal(err)
	}
	for _, tn := range interests {
		if _, ok := topics[tn]; !ok {
			t.Fatalf("member topics %v miss %s", topics, tn)
		}
	}
	sa, err := mb.(kgo.GroupMemberBalancerOrError).BalanceOrError(counts)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]map[string][]int32{}
	for _, a := range sa.IntoSyncAssignment() {
		got, err := b.ParseSyncAssignment(a.MemberAssignment)
		if err != nil {
			t.Fatal(err)
		}
		out[a.MemberID] = got
	}
	return out
}

// TestCopartitionedBalancer: partition p of every co-partitioned input goes to one member,
// the re-keyed input is balanced on its own, and a move is cooperative (revoked before it
// is given).
func TestCopartitionedBalancer(t *testing.T) {
	direct := []string{"orders", "lines", "orders.repartition"}
	interests := append(append([]string{}, direct...), "shipments")
	counts := map[string]int32{"orders": 6, "lines": 6, "orders.repartition": 6, "shipments": 5}
	b := newCopartitioned(direct)
	if b.ProtocolName() != protocolCopartitioned || !b.IsCooperative() {
		t.Fatal("protocol")
	}
	check := func(plan map[string]map[string][]int32) {
		t.Helper()
		owner := map[string]string{}
		for m, a := range plan {
			for tn, ps := range a {
				for _, p := range ps {
					key := fmt.Sprintf("%s/%d", tn, p)
					if owner[key] != "" {
						t.Fatalf("%s given to %s and %s", key, owner[key], m)
					}
					owner[key] = m
				}
			}
		}
		for p := range int32(6) {
			first := owner[fmt.Sprintf("orders/%d", p)]
			for _, tn := range direct {
				if o := owner[fmt.Sprintf("%s/%d", tn, p)]; o != first {
					t.Fatalf("partition %d: %s owned by %q, orders by %q: %v", p, tn, o, first, plan)
				}
			}
		}
	}
	// One member takes everything.
	plan := balanceRound(t, b, interests, map[string]map[string][]int32{"a": nil}, 1, counts)
	check(plan)
	if n := len(plan["a"]["orders"]) + len(plan["a"]["shipments"]); n != 11 {
		t.Fatalf("a alone got %v", plan["a"])
	}
	// b joins: a keeps what it keeps, nothing is given to b that a still owns.
	plan = balanceRound(t, b, interests, map[string]map[string][]int32{"a": plan["a"], "b": nil}, 2, counts)
	check(plan)
	if len(plan["b"]["orders"]) != 0 || len(plan["b"]["lines"]) != 0 {
		t.Fatalf("first cooperative round gave b partitions a still owns: %v", plan["b"])
	}
	if len(plan["a"]["orders"]) != 3 {
		t.Fatalf("a should keep 3 of 6 orders partitions, kept %v", plan["a"]["orders"])
	}
	// Second round: a revoked; b gets the freed units, all inputs alike.
	plan = balanceRound(t, b, interests, map[string]map[string][]int32{"a": plan["a"], "b": plan["b"]}, 3, counts)
	check(plan)
	if len(plan["b"]["orders"]) != 3 || len(plan["b"]["orders.repartition"]) != 3 {
		t.Fatalf("b after the second round: %v", plan["b"])
	}
	if s := len(plan["a"]["shipments"]) + len(plan["b"]["shipments"]); s != 5 {
		t.Fatalf("shipments assigned %d of 5: %v", s, plan)
	}
}
