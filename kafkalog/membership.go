package kafkalog

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// GroupProtocol names the group protocol of partitioned followers: Kafka's
// cooperative-sticky assignment, with each member's base URL in its join
// metadata and the group's whole membership in every member's assignment.
// A name of its own keeps other consumers out of the group by mistake:
// Kafka refuses a member that shares no protocol with the group.
const GroupProtocol = "fabric-cooperative-sticky-v1"

// GroupMember is one member of a partitioned followers' group, as the
// group's leader saw it at the latest rebalance.
type GroupMember struct {
	ID         string  `json:"id"`  // Kafka's member ID
	URL        string  `json:"url"` // the base URL it advertises; "" if none
	Partitions []int32 `json:"partitions"`
}

// memberData is the user data of a member's join metadata: its URL, and
// the cooperative-sticky balancer's own user data, kept for it.
type memberData struct {
	URL    string `json:"url"`
	Sticky []byte `json:"sticky,omitempty"`
}

// assignmentData is the user data of every member's assignment: the
// membership the leader balanced, which is how each member learns the
// others' URLs and partitions. Kafka Streams tells its instances where
// every partition lives the same way (its application.server endpoints).
type assignmentData struct {
	Partitions int           `json:"partitions"` // the topic's partition count
	Members    []GroupMember `json:"members"`
}

// membershipBalancer is the cooperative-sticky balancer with membership
// carried along: it advertises url in the member's join metadata and, when
// this member leads a rebalance, writes the membership into every
// assignment; onSync gets the membership of each assignment this member
// receives.
type membershipBalancer struct {
	inner  kgo.GroupBalancer
	topic  string
	url    string
	onSync func(*assignmentData)
}

func newMembershipBalancer(topic, url string, onSync func(*assignmentData)) *membershipBalancer {
	return &membershipBalancer{inner: kgo.CooperativeStickyBalancer(), topic: topic, url: url, onSync: onSync}
}

func (b *membershipBalancer) ProtocolName() string { return GroupProtocol }

func (b *membershipBalancer) IsCooperative() bool { return b.inner.IsCooperative() }

func (b *membershipBalancer) JoinGroupMetadata(interests []string, current map[string][]int32, generation int32) []byte {
	raw := b.inner.JoinGroupMetadata(interests, current, generation)
	var meta kmsg.ConsumerMemberMetadata
	if err := meta.ReadFrom(raw); err != nil {
		panic(fmt.Sprintf("kafkalog: the sticky balancer's own metadata does not parse: %v", err))
	}
	meta.UserData = mustJSON(memberData{URL: b.url, Sticky: meta.UserData})
	return meta.AppendTo(nil)
}

func (b *membershipBalancer) ParseSyncAssignment(assignment []byte) (map[string][]int32, error) {
	assigned, err := b.inner.ParseSyncAssignment(assignment)
	if err != nil {
		return nil, err
	}
	var a kmsg.ConsumerMemberAssignment
	var data *assignmentData
	if a.ReadFrom(assignment) == nil && len(a.UserData) > 0 {
		data = new(assignmentData)
		if err := json.Unmarshal(a.UserData, data); err != nil {
			return nil, fmt.Errorf("membership in the group assignment: %w", err)
		}
	}
	b.onSync(data)
	return assigned, nil
}

// MemberBalancer takes each member's URL out of its metadata and gives the
// cooperative-sticky balancer the metadata it wrote.
func (b *membershipBalancer) MemberBalancer(members []kmsg.JoinGroupResponseMember) (kgo.GroupMemberBalancer, map[string]struct{}, error) {
	round := &memberBalancer{topic: b.topic, urls: map[string]string{}}
	restored := slices.Clone(members)
	for i, m := range members {
		var meta kmsg.ConsumerMemberMetadata
		if meta.ReadFrom(m.ProtocolMetadata) != nil {
			continue // the sticky balancer says what is wrong with it
		}
		var data memberData
		if json.Unmarshal(meta.UserData, &data) == nil {
			round.urls[m.MemberID] = data.URL
			meta.UserData = data.Sticky
			restored[i].ProtocolMetadata = meta.AppendTo(nil)
		}
	}
	inner, topics, err := b.inner.MemberBalancer(restored)
	if err != nil {
		return nil, nil, err
	}
	round.inner = inner
	return round, topics, nil
}

// memberBalancer is one rebalance led by this member.
type memberBalancer struct {
	inner kgo.GroupMemberBalancer
	topic string
	urls  map[string]string
}

func (m *memberBalancer) Balance(topics map[string]int32) kgo.IntoSyncAssignment {
	into, _ := m.BalanceOrError(topics)
	return into
}

func (m *memberBalancer) BalanceOrError(topics map[string]int32) (kgo.IntoSyncAssignment, error) {
	var into kgo.IntoSyncAssignment
	if e, ok := m.inner.(kgo.GroupMemberBalancerOrError); ok {
		var err error
		if into, err = e.BalanceOrError(topics); err != nil {
			return nil, err
		}
	} else {
		into = m.inner.Balance(topics)
	}
	return m.withMembership(into, int(topics[m.topic]))
}

func (m *memberBalancer) SetBalanceInfo(info kgo.BalanceInfo) {
	if i, ok := m.inner.(kgo.GroupMemberBalancerInfo); ok {
		i.SetBalanceInfo(info)
	}
}

// withMembership writes the membership the plan makes into every member's
// assignment (the plan has one for every member, with partitions or not).
func (m *memberBalancer) withMembership(into kgo.IntoSyncAssignment, partitions int) (kgo.IntoSyncAssignment, error) {
	plan := into.IntoSyncAssignment()
	data := assignmentData{Partitions: partitions}
	decoded := make([]kmsg.ConsumerMemberAssignment, len(plan))
	for i, a := range plan {
		if err := decoded[i].ReadFrom(a.MemberAssignment); err != nil {
			return nil, fmt.Errorf("reading the balance plan of member %s: %w", a.MemberID, err)
		}
		member := GroupMember{ID: a.MemberID, URL: m.urls[a.MemberID], Partitions: []int32{}}
		for _, t := range decoded[i].Topics {
			if t.Topic == m.topic {
				member.Partitions = append(member.Partitions, t.Partitions...)
			}
		}
		slices.Sort(member.Partitions)
		data.Members = append(data.Members, member)
	}
	slices.SortFunc(data.Members, func(a, b GroupMember) int { return strings.Compare(a.ID, b.ID) })
	userData := mustJSON(data)
	for i := range plan {
		decoded[i].UserData = userData
		plan[i].MemberAssignment = decoded[i].AppendTo(nil)
	}
	return syncAssignment(plan), nil
}

type syncAssignment []kmsg.SyncGroupRequestGroupAssignment

func (s syncAssignment) IntoSyncAssignment() []kmsg.SyncGroupRequestGroupAssignment { return s }

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err) // plain structs of strings and numbers
	}
	return b
}

// membership is the group as the latest assignment described it.
type membership struct {
	partitions int
	members    []GroupMember
	owner      []int // index in members by partition, -1 where nobody owns it
}

func newMembership(data *assignmentData) *membership {
	m := &membership{partitions: data.Partitions, members: data.Members, owner: make([]int, data.Partitions)}
	for p := range m.owner {
		m.owner[p] = -1
	}
	for i, member := range data.Members {
		for _, p := range member.Partitions {
			if p >= 0 && int(p) < len(m.owner) {
				m.owner[p] = i
			}
		}
	}
	return m
}

// ownerURL returns the base URL of the member that owns partition p.
func (m *membership) ownerURL(p int32) string {
	if p < 0 || int(p) >= len(m.owner) || m.owner[p] < 0 {
		return ""
	}
	return m.members[m.owner[p]].URL
}

// unowned counts the partitions no member owns.
func (m *membership) unowned() int {
	n := 0
	for _, i := range m.owner {
		if i < 0 {
			n++
		}
	}
	return n
}
