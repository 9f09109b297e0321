package kafkalog

import (
	"slices"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// TestMembershipBalancer balances three members over two partitions
// without Kafka: the leader reads each member's URL from its metadata,
// every member's assignment (the one left without partitions included)
// carries the whole membership, and each member parses its own partitions
// and the membership back.
func TestMembershipBalancer(t *testing.T) {
	urls := []string{"http://a.replicas.test:9101", "http://b.replicas.test:9101", "http://c.replicas.test:9101"}
	var members []kmsg.JoinGroupResponseMember
	for i, url := range urls {
		b := newMembershipBalancer("polls", url, func(*assignmentData) {})
		m := kmsg.NewJoinGroupResponseMember()
		m.MemberID = string(rune('a' + i))
		m.ProtocolMetadata = b.JoinGroupMetadata([]string{"polls"}, nil, -1)
		members = append(members, m)
	}
	leader := newMembershipBalancer("polls", urls[0], func(*assignmentData) {})
	mb, topics, err := leader.MemberBalancer(members)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := topics["polls"]; !ok {
		t.Fatalf("topics %v", topics)
	}
	into, err := mb.(kgo.GroupMemberBalancerOrError).BalanceOrError(map[string]int32{"polls": 2})
	if err != nil {
		t.Fatal(err)
	}
	plan := into.IntoSyncAssignment()
	if len(plan) != len(urls) {
		t.Fatalf("%d assignments for %d members", len(plan), len(urls))
	}
	var all []int32
	for _, a := range plan {
		var got *assignmentData
		member := newMembershipBalancer("polls", "", func(d *assignmentData) { got = d })
		parts, err := member.ParseSyncAssignment(a.MemberAssignment)
		if err != nil {
			t.Fatalf("member %s: %v", a.MemberID, err)
		}
		all = append(all, parts["polls"]...)
		if got == nil || got.Partitions != 2 || len(got.Members) != len(urls) {
			t.Fatalf("member %s got membership %+v", a.MemberID, got)
		}
		m := newMembership(got)
		for i, gm := range got.Members {
			if gm.ID != string(rune('a'+i)) || gm.URL != urls[i] {
				t.Errorf("member %d of the membership: %+v", i, gm)
			}
			if gm.ID == a.MemberID && !slices.Equal(gm.Partitions, sorted(parts["polls"])) {
				t.Errorf("member %s: assigned %v, the membership says %v", a.MemberID, parts["polls"], gm.Partitions)
			}
		}
		if m.unowned() != 0 || m.ownerURL(0) == "" || m.ownerURL(1) == "" || m.ownerURL(2) != "" {
			t.Errorf("owners %q %q %q, unowned %d", m.ownerURL(0), m.ownerURL(1), m.ownerURL(2), m.unowned())
		}
	}
	if slices.Sort(all); !slices.Equal(all, []int32{0, 1}) {
		t.Errorf("partitions assigned %v, want each once", all)
	}
}
