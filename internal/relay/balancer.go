package relay

import (
	"fmt"
	"slices"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// copartitioned is the group balancer of a relay that reads several co-partitioned input
// topics (inputs.go): partition p of each of them holds the events of the same orders, and
// one transaction writes the state of partition p, so one member must own partition p of
// every one of them at once. Cooperative-sticky balances each topic on its own and would
// split them.
//
// It balances the lead co-partitioned topic (the one with the most partitions, then the
// first by name) and any other topic (the re-keyed ones, which hold no state) with
// cooperative-sticky, then gives each member partition p of every other co-partitioned
// topic exactly where it got partition p of the lead. The cooperative protocol carries
// over: a partition of the lead that moves is first revoked, with its siblings, and given
// to its new owner in the next round.
//
// Members that run it agree on the topics: a replica with other inputs names another
// protocol (ProtocolName carries no topics, but the relay refuses to process a unit whose
// topics are not all assigned to it; see assignment in inputs.go).
type copartitioned struct {
	inner kgo.GroupBalancer
	// mirrored are the co-partitioned topics (the lead among them is chosen per balance).
	mirrored []string
}

// protocolCopartitioned names the balancer in the group protocol.
const protocolCopartitioned = "ucprelay-copartitioned-sticky"

func newCopartitioned(topics []string) copartitioned {
	return copartitioned{inner: kgo.CooperativeStickyBalancer(), mirrored: slices.Clone(topics)}
}

func (c copartitioned) ProtocolName() string { return protocolCopartitioned }
func (c copartitioned) IsCooperative() bool  { return true }

func (c copartitioned) JoinGroupMetadata(interests []string, current map[string][]int32, gen int32) []byte {
	return c.inner.JoinGroupMetadata(interests, current, gen)
}

func (c copartitioned) ParseSyncAssignment(assignment []byte) (map[string][]int32, error) {
	return c.inner.ParseSyncAssignment(assignment)
}

func (c copartitioned) MemberBalancer(members []kmsg.JoinGroupResponseMember) (kgo.GroupMemberBalancer, map[string]struct{}, error) {
	// The inner balancer parses the members' metadata (and reports their topics); the
	// balance itself projects it first.
	_, topics, err := c.inner.MemberBalancer(members)
	if err != nil {
		return nil, nil, err
	}
	return &copartitionedMembers{c: c, members: members}, topics, nil
}

type copartitionedMembers struct {
	c       copartitioned
	members []kmsg.JoinGroupResponseMember
}

// Balance is never called by kgo, which calls BalanceOrError when a balancer has it; it
// gives no assignment rather than an unmirrored one.
func (m *copartitionedMembers) Balance(topics map[string]int32) kgo.IntoSyncAssignment {
	a, err := m.BalanceOrError(topics)
	if err != nil {
		return syncAssignment(nil)
	}
	return a
}

// BalanceOrError balances the lead and the unmirrored topics, then mirrors the lead.
func (m *copartitionedMembers) BalanceOrError(topics map[string]int32) (kgo.IntoSyncAssignment, error) {
	lead, mirror := leadOf(m.c.mirrored, topics)
	drop := func(t string) bool { return slices.Contains(mirror, t) }
	projected := make([]kmsg.JoinGroupResponseMember, len(m.members))
	for i, mem := range m.members {
		meta, err := projectMetadata(mem.ProtocolMetadata, drop)
		if err != nil {
			return nil, fmt.Errorf("relay: balance: member %s: %w", mem.MemberID, err)
		}
		projected[i] = mem
		projected[i].ProtocolMetadata = meta
	}
	mb, _, err := m.c.inner.MemberBalancer(projected)
	if err != nil {
		return nil, err
	}
	rest := make(map[string]int32, len(topics))
	for t, n := range topics {
		if !drop(t) {
			rest[t] = n
		}
	}
	var inner kgo.IntoSyncAssignment
	if be, ok := mb.(kgo.GroupMemberBalancerOrError); ok {
		if inner, err = be.BalanceOrError(rest); err != nil {
			return nil, err
		}
	} else {
		inner = mb.Balance(rest)
	}
	out := inner.IntoSyncAssignment()
	for i := range out {
		var a kmsg.ConsumerMemberAssignment
		if err := a.ReadFrom(out[i].MemberAssignment); err != nil {
			return nil, fmt.Errorf("relay: balance: assignment of %s: %w", out[i].MemberID, err)
		}
		var ps []int32
		for _, t := range a.Topics {
			if t.Topic == lead {
				ps = t.Partitions
			}
		}
		if len(ps) > 0 {
			for _, t := range mirror {
				mt := kmsg.NewConsumerMemberAssignmentTopic()
				mt.Topic = t
				for _, p := range ps {
					if p < topics[t] {
						mt.Partitions = append(mt.Partitions, p)
					}
				}
				a.Topics = append(a.Topics, mt)
			}
		}
		out[i].MemberAssignment = a.AppendTo(nil)
	}
	return syncAssignment(out), nil
}

// leadOf picks, among the co-partitioned topics the group consumes, the one with the most
// partitions (then the first by name); the others mirror it.
func leadOf(mirrored []string, topics map[string]int32) (lead string, mirror []string) {
	for _, t := range mirrored {
		n, ok := topics[t]
		if !ok {
			continue
		}
		if lead == "" || n > topics[lead] || (n == topics[lead] && t < lead) {
			lead = t
		}
	}
	for _, t := range mirrored {
		if _, ok := topics[t]; ok && t != lead {
			mirror = append(mirror, t)
		}
	}
	return lead, mirror
}

// projectMetadata removes the dropped topics from a member's consumer protocol metadata
// (its subscription, owned partitions and sticky user data).
func projectMetadata(raw []byte, drop func(string) bool) ([]byte, error) {
	var meta kmsg.ConsumerMemberMetadata
	if err := meta.ReadFrom(raw); err != nil {
		return nil, err
	}
	meta.Topics = slices.DeleteFunc(meta.Topics, drop)
	meta.OwnedPartitions = slices.DeleteFunc(meta.OwnedPartitions, func(o kmsg.ConsumerMemberMetadataOwnedPartition) bool { return drop(o.Topic) })
	if len(meta.UserData) > 0 {
		var sticky kmsg.StickyMemberMetadata
		if err := sticky.ReadFrom(meta.UserData); err == nil {
			sticky.CurrentAssignment = slices.DeleteFunc(sticky.CurrentAssignment, func(c kmsg.StickyMemberMetadataCurrentAssignment) bool { return drop(c.Topic) })
			meta.UserData = sticky.AppendTo(nil)
		}
	}
	return meta.AppendTo(nil), nil
}

type syncAssignment []kmsg.SyncGroupRequestGroupAssignment

func (s syncAssignment) IntoSyncAssignment() []kmsg.SyncGroupRequestGroupAssignment { return s }
