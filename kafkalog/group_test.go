package kafkalog

import (
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/fabrictelemetry/aggregator/internal/testproc"
	"github.com/fabrictelemetry/aggregator/polllog"
)

// The fabric of the group tests: a topic of 8 partitions, 48 switches.
const (
	groupPartitions = 8
	fleetSwitches   = 48
)

// membershipAPI is the fan-out's view of the replicas, which GroupFollower
// implements.
type membershipAPI interface {
	Self() string
	Peers() []string
	Sources() []string
	Owner(source, switchID string) string
}

var _ membershipAPI = (*GroupFollower)(nil)

// replica is a group follower under test and what it delivered.
type replica struct {
	url string
	f   *GroupFollower
	reg *prometheus.Registry

	mu        sync.Mutex
	polls     []*polllog.Poll
	partPolls map[int32][]uint64 // seqs OnPartitionPoll got, per partition
	released  []int32
	// overstated are the moments Serving named a partition that the
	// snapshot served before, or the one being handed over, lacked.
	overstated []string
}

func startReplica(t *testing.T, brokers []string, name string, opts ...kgo.Opt) *replica {
	t.Helper()
	r := &replica{url: "http://" + name + ".replicas.test:9101", reg: prometheus.NewRegistry(), partPolls: map[int32][]uint64{}}
	f, err := NewGroupFollower(GroupFollowerConfig{
		Conn:           Conn{Brokers: brokers, ClientOpts: opts},
		Topic:          "polls",
		Group:          "replicas",
		URL:            r.url,
		Name:           "log",
		Replay:         time.Hour,
		SessionTimeout: testSession,
		OnPoll: func(p *polllog.Poll) {
			r.mu.Lock()
			defer r.mu.Unlock()
			_, serving := r.f.Serving()
			for _, held := range [][]int32{partitionsOf(r.latestLocked()), partitionsOf(p)} {
				if !isSubset(serving, held) {
					r.overstated = append(r.overstated, fmt.Sprintf("serving %v while handing over a snapshot of %v after one of %v",
						serving, partitionsOf(p), partitionsOf(r.latestLocked())))
				}
			}
			r.polls = append(r.polls, p)
		},
		OnPartitionPoll: func(part int32, p *polllog.Poll) {
			r.mu.Lock()
			defer r.mu.Unlock()
			r.partPolls[part] = append(r.partPolls[part], p.Seq)
		},
		OnRelease: func(parts []int32) {
			r.mu.Lock()
			defer r.mu.Unlock()
			r.released = append(r.released, parts...)
		},
		Logger:     testLogger(t, "replica "+name),
		Registerer: r.reg,
	})
	if err != nil {
		t.Fatal(err)
	}
	r.f = f
	run(t, f.Run)
	return r
}

// delivered returns the polls delivered, from the k-th on.
func (r *replica) delivered(from int) []*polllog.Poll {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.polls[min(from, len(r.polls)):])
}

func (r *replica) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.polls)
}

func (r *replica) releasedCount() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.released)
}

func (r *replica) latest() *polllog.Poll {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.latestLocked()
}

func (r *replica) latestLocked() *polllog.Poll {
	if len(r.polls) == 0 {
		return nil
	}
	return r.polls[len(r.polls)-1]
}

// partitionsOf returns the partitions whose rows a delivered poll holds
// (by the switches in it, not by its offsets); none for nil.
func partitionsOf(p *polllog.Poll) []int32 {
	if p == nil {
		return nil
	}
	var out []int32
	for _, sw := range p.Snapshot.Switches() {
		out = append(out, switchPartition(sw))
	}
	return sorted(out)
}

// checkServing checks that Serving never named a partition the snapshots
// lacked, and that once the replica is settled it names those its latest
// snapshot holds, with the topic's partition count.
func checkServing(t *testing.T, r *replica) {
	t.Helper()
	r.mu.Lock()
	overstated := slices.Clone(r.overstated)
	r.mu.Unlock()
	for _, o := range overstated {
		t.Errorf("%s: %s", r.url, o)
	}
	n, serving := r.f.Serving()
	if held := partitionsOf(r.latest()); n != groupPartitions || !slices.Equal(serving, held) {
		t.Errorf("%s: serving %v of %d partitions, its snapshot holds %v of %d", r.url, serving, n, held, groupPartitions)
	}
}

// serves reports whether the replica is ready and its latest snapshot is
// fleet poll i.
func (r *replica) serves(t *testing.T, i int) bool {
	p := r.latest()
	return r.f.Ready() && p != nil && p.Snapshot.Time().Equal(fleetSnapshot(t, i, fleetSwitches).Time())
}

func (r *replica) owned() []int32 {
	owned, _ := r.f.Partitions()
	return owned
}

// fleetPublisher publishes fleet polls to the 8-partition topic.
type fleetPublisher struct {
	p    *Publisher
	reg  prometheus.Registerer
	sent int
}

func startFleetPublisher(t *testing.T, c *kfake.Cluster) *fleetPublisher {
	t.Helper()
	cfg := publisherConfig(t, c, "polls", "sim")
	cfg.Partitions = groupPartitions
	p, _ := startPublisher(t, cfg)
	waitFor(t, "the publisher to become active", p.Active)
	return &fleetPublisher{p: p, reg: cfg.Registerer}
}

// publish writes fleet poll i and waits for its commit.
func (fp *fleetPublisher) publish(t *testing.T, i int) {
	t.Helper()
	fp.p.Publish(fleetSnapshot(t, i, fleetSwitches))
	fp.sent++
	want := float64(fp.sent)
	waitFor(t, "poll "+strconv.Itoa(i)+" written", func() bool {
		return counter(t, fp.reg, "fabric_polllog_polls_written_total", "source", "sim") >= want
	})
}

// checkWhole checks every poll: rows of one fleet poll only (found by its
// time), each partition whole; it returns the partitions of each.
func checkWhole(t *testing.T, polls []*polllog.Poll) [][]int32 {
	t.Helper()
	var out [][]int32
	for _, p := range polls {
		i := int(p.Snapshot.Time().Sub(t0) / time.Second)
		out = append(out, wholePartitions(t, p.Snapshot, fleetSnapshot(t, i, fleetSwitches), groupPartitions))
	}
	return out
}

// split reports whether the replicas' partitions are disjoint, cover the
// topic, each replica holding some, and every replica is ready.
func split(rs ...*replica) bool {
	var all []int32
	for _, r := range rs {
		owned := r.owned()
		if len(owned) == 0 || !r.f.Ready() {
			return false
		}
		all = append(all, owned...)
	}
	slices.Sort(all)
	return len(all) == groupPartitions && len(slices.Compact(all)) == groupPartitions
}

func switchPartition(sw string) int32 {
	return polllog.Partition(polllog.Key("sim", sw), groupPartitions)
}

// checkOwners checks that every replica names the replica holding each
// switch's partition as its owner.
func checkOwners(t *testing.T, rs ...*replica) {
	t.Helper()
	holder := map[int32]string{}
	for _, r := range rs {
		for _, p := range r.owned() {
			holder[p] = r.url
		}
	}
	for _, sw := range fleetSnapshot(t, 0, fleetSwitches).Switches() {
		for _, r := range rs {
			if got, want := r.f.Owner("sim", sw), holder[switchPartition(sw)]; got != want {
				t.Fatalf("%s: owner of %s is %q, want %q", r.url, sw, got, want)
			}
		}
	}
}

// TestGroupSplitsPartitions runs two replicas in one group: they split the
// partitions, each serves the rows of its own whole, the two together are
// the published snapshot, and each knows the other and who owns what.
func TestGroupSplitsPartitions(t *testing.T) {
	c := newCluster(t)
	pub := startFleetPublisher(t, c)
	pub.publish(t, 0)
	a := startReplica(t, c.ListenAddrs(), "a")
	b := startReplica(t, c.ListenAddrs(), "b")
	waitFor(t, "the replicas to split the partitions", func() bool { return split(a, b) })
	for i := 1; i <= 3; i++ {
		pub.publish(t, i)
		waitFor(t, "both replicas to serve poll "+strconv.Itoa(i), func() bool { return a.serves(t, i) && b.serves(t, i) })
		want := fleetSnapshot(t, i, fleetSwitches)
		rows := 0
		for _, r := range []*replica{a, b} {
			snap := r.latest().Snapshot
			ps := wholePartitions(t, snap, want, groupPartitions)
			if owned := r.owned(); !isSubset(ps, owned) {
				t.Errorf("%s serves partitions %v, owns %v", r.url, ps, owned)
			}
			rows += snap.NumRows()
		}
		if rows != want.NumRows() {
			t.Fatalf("the replicas serve %d rows together, the poll has %d", rows, want.NumRows())
		}
	}
	checkWhole(t, a.delivered(0))
	checkWhole(t, b.delivered(0))

	checkOwners(t, a, b)
	for _, pair := range [][2]*replica{{a, b}, {b, a}} {
		self, other := pair[0], pair[1]
		if got := self.f.Peers(); !slices.Equal(got, []string{other.url}) {
			t.Errorf("%s: peers %v, want %s", self.url, got, other.url)
		}
		if self.f.Self() != self.url || !slices.Equal(self.f.Sources(), []string{"sim"}) || len(self.f.Members()) != 2 {
			t.Errorf("%s: self %s, sources %v, members %v", self.url, self.f.Self(), self.f.Sources(), self.f.Members())
		}
	}
	owned, switches := 0.0, 0.0
	for _, r := range []*replica{a, b} {
		owned += counter(t, r.reg, "fabric_polllog_partitions_owned", "source", "log")
		switches += counter(t, r.reg, "fabric_polllog_switches_owned", "source", "log")
		for name, want := range map[string]float64{
			"fabric_polllog_partitions_unowned": 0,
			"fabric_polllog_group_members":      2,
			"fabric_polllog_follower_ready":     1,
		} {
			if got := counter(t, r.reg, name, "source", "log"); got != want {
				t.Errorf("%s: %s %v, want %v", r.url, name, got, want)
			}
		}
		if n := counter(t, r.reg, "fabric_polllog_group_rebalances_total", "source", "log"); n < 1 {
			t.Errorf("%s: %v rebalances", r.url, n)
		}
	}
	if owned != groupPartitions || switches != fleetSwitches {
		t.Errorf("the replicas own %v partitions and %v switches together, want %d and %d", owned, switches, groupPartitions, fleetSwitches)
	}
	checkServing(t, a)
	checkServing(t, b)
}

// TestGroupKilledMemberTakenOver cuts a replica off (it stops heartbeating,
// as a killed process does, without leaving the group): within the session
// timeout the other takes its partitions over, replays their history,
// serves every switch, and never stopped serving its own meanwhile.
func TestGroupKilledMemberTakenOver(t *testing.T) {
	c := newCluster(t)
	pub := startFleetPublisher(t, c)
	pub.publish(t, 0)
	var cutA cuttableDialer
	a := startReplica(t, c.ListenAddrs(), "a", cutA.opt())
	b := startReplica(t, c.ListenAddrs(), "b")
	waitFor(t, "the replicas to split the partitions", func() bool { return split(a, b) })
	pub.publish(t, 1)
	waitFor(t, "both replicas to serve poll 1", func() bool { return a.serves(t, 1) && b.serves(t, 1) })
	kept, taken := b.owned(), a.owned()
	from := b.count()

	cutA.setCut(true)
	cut := time.Now()
	waitFor(t, "b to serve every partition", func() bool {
		owned, loaded := b.f.Partitions()
		return len(owned) == groupPartitions && len(loaded) == groupPartitions && b.f.Ready()
	})
	t.Logf("b took a's partitions over %v after a was cut off (session timeout %v)", time.Since(cut).Round(time.Millisecond), testSession)
	// Ready means loaded: the latest poll, every switch in it, is served.
	assertSameSnapshot(t, b.latest().Snapshot, fleetSnapshot(t, 1, fleetSwitches))
	pub.publish(t, 2)
	waitFor(t, "b to serve poll 2", func() bool { return b.serves(t, 2) })
	assertSameSnapshot(t, b.latest().Snapshot, fleetSnapshot(t, 2, fleetSwitches))

	for k, ps := range checkWhole(t, b.delivered(from)) {
		if !isSubset(kept, ps) {
			t.Fatalf("b's poll %d after the cut serves partitions %v, lacking some of its own %v", k, ps, kept)
		}
	}
	b.mu.Lock()
	for _, p := range taken {
		if got := b.partPolls[p]; len(got) < 2 || !slices.IsSorted(got) {
			t.Errorf("partition %d taken over: polls %v, want its history from the replay window on, in order", p, got)
		}
	}
	b.mu.Unlock()
	if got := b.f.Peers(); len(got) != 0 {
		t.Errorf("peers %v after the other died", got)
	}
	checkOwners(t, b)
	if n := counter(t, b.reg, "fabric_polllog_partitions_unowned", "source", "log"); n != 0 {
		t.Errorf("%v partitions unowned", n)
	}

	// a, cut off, lost its session; it cannot tell whether Kafka is down
	// for everyone, so it serves its last poll, whole, until the group
	// assigns it partitions again.
	if owned, _ := a.f.Partitions(); len(owned) != 0 || !a.f.Ready() {
		t.Errorf("a cut off: owns %v, ready %v; want nothing, serving its last poll", owned, a.f.Ready())
	}
	if ps := checkWhole(t, []*polllog.Poll{a.latest()})[0]; !slices.Equal(ps, taken) || !a.latest().Snapshot.Time().Equal(fleetSnapshot(t, 1, fleetSwitches).Time()) {
		t.Errorf("a cut off serves partitions %v of %v, want %v of poll 1", ps, a.latest().Snapshot.Time(), taken)
	}
	cutA.setCut(false)
	waitFor(t, "a to rejoin and the two to split the partitions again", func() bool { return split(a, b) })
	pub.publish(t, 3)
	waitFor(t, "both replicas to serve poll 3", func() bool { return a.serves(t, 3) && b.serves(t, 3) })
	rows := 0
	for _, r := range []*replica{a, b} {
		if ps := checkWhole(t, []*polllog.Poll{r.latest()})[0]; !isSubset(ps, r.owned()) {
			t.Errorf("%s serves %v, owns %v", r.url, ps, r.owned())
		}
		rows += r.latest().Snapshot.NumRows()
	}
	if rows != fleetSwitches {
		t.Errorf("the replicas serve %d rows together after a rejoined, want %d", rows, fleetSwitches)
	}
	a.mu.Lock()
	released := sorted(a.released[len(a.released)-len(taken):])
	a.mu.Unlock()
	if !slices.Equal(released, taken) {
		t.Errorf("a released %v on rejoining, want the partitions it lost, %v", released, taken)
	}
	checkServing(t, a)
	checkServing(t, b)
}

// TestGroupThirdMemberJoins adds a replica to two while polls keep coming:
// it takes a share, cooperatively (the others give up only what moves and
// serve everything they keep throughout), its partitions appear whole, and
// no delivered snapshot ever mixes polls.
func TestGroupThirdMemberJoins(t *testing.T) {
	c := newCluster(t)
	pub := startFleetPublisher(t, c)
	pub.publish(t, 0)
	a := startReplica(t, c.ListenAddrs(), "a")
	b := startReplica(t, c.ListenAddrs(), "b")
	waitFor(t, "the replicas to split the partitions", func() bool { return split(a, b) })
	pub.publish(t, 1)
	waitFor(t, "both replicas to serve poll 1", func() bool { return a.serves(t, 1) && b.serves(t, 1) })
	before := map[*replica][]int32{a: a.owned(), b: b.owned()}
	from := map[*replica]int{a: a.count(), b: b.count()}
	releasedBefore := map[*replica]int{a: a.releasedCount(), b: b.releasedCount()}

	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := 2; ; i++ {
			select {
			case <-stop:
				return
			case <-time.After(50 * time.Millisecond):
				pub.p.Publish(fleetSnapshot(t, i, fleetSwitches))
			}
		}
	})
	r3 := startReplica(t, c.ListenAddrs(), "c")
	waitFor(t, "three replicas to split the partitions", func() bool { return split(a, b, r3) })
	close(stop)
	wg.Wait()
	pub.publish(t, 1000)
	waitFor(t, "the three to serve the last poll", func() bool { return a.serves(t, 1000) && b.serves(t, 1000) && r3.serves(t, 1000) })

	rows := 0
	for _, r := range []*replica{a, b} {
		after := r.owned()
		kept := intersect(before[r], after)
		during := r.delivered(from[r])
		for k, ps := range checkWhole(t, during) {
			if !isSubset(kept, ps) {
				t.Fatalf("%s: poll %d while c joined serves %v, lacking some of the partitions it kept, %v", r.url, k, ps, kept)
			}
		}
		t.Logf("%s delivered %d polls while c joined, keeping partitions %v of %v", r.url, len(during), kept, before[r])
		r.mu.Lock()
		released := slices.Clone(r.released[releasedBefore[r]:])
		r.mu.Unlock()
		if gave := difference(before[r], after); !slices.Equal(sorted(released), gave) {
			t.Errorf("%s released %v, owned %v then %v", r.url, released, before[r], after)
		}
		rows += r.latest().Snapshot.NumRows()
	}
	for _, ps := range checkWhole(t, r3.delivered(0)) {
		if !isSubset(ps, r3.owned()) {
			t.Errorf("c serves %v, owns %v", ps, r3.owned())
		}
	}
	if rows += r3.latest().Snapshot.NumRows(); rows != fleetSwitches {
		t.Errorf("the replicas serve %d rows together, want %d", rows, fleetSwitches)
	}
	checkOwners(t, a, b, r3)
	if got := a.f.Peers(); !slices.Equal(got, sorted2(b.url, r3.url)) {
		t.Errorf("a's peers %v", got)
	}
	for _, r := range []*replica{a, b, r3} {
		checkServing(t, r)
	}
}

// TestGroupUnreachableAtStart starts a replica before any broker listens:
// it says so, is not ready, and gets going once the cluster appears.
func TestGroupUnreachableAtStart(t *testing.T) {
	ports, addrs := testproc.FreePorts(t, 3)
	var logs testproc.LockedBuffer
	r := &replica{partPolls: map[int32][]uint64{}}
	f, err := NewGroupFollower(GroupFollowerConfig{
		Conn: Conn{Brokers: addrs, ClientOpts: []kgo.Opt{kgo.MetadataMinAge(250 * time.Millisecond)}}, Topic: "polls", Group: "replicas", URL: "http://a.replicas.test:9101",
		Replay: time.Hour, SessionTimeout: testSession,
		OnPoll: func(p *polllog.Poll) {
			r.mu.Lock()
			defer r.mu.Unlock()
			r.polls = append(r.polls, p)
		},
		Logger: slog.New(slog.NewTextHandler(&logs, nil)), setupTimeout: 500 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	r.f = f
	run(t, f.Run)
	waitFor(t, "the replica to say it cannot read the log", func() bool {
		return strings.Contains(logs.String(), "Cannot read the poll log; not ready, retrying")
	})
	if f.Ready() {
		t.Fatal("ready without brokers")
	}
	c := newCluster(t, kfake.Ports(ports...))
	pub := startFleetPublisher(t, c)
	pub.publish(t, 0)
	waitFor(t, "the replica to serve the poll", func() bool { return r.serves(t, 0) })
	assertSameSnapshot(t, r.latest().Snapshot, fleetSnapshot(t, 0, fleetSwitches))
}

func isSubset(sub, set []int32) bool {
	for _, p := range sub {
		if !slices.Contains(set, p) {
			return false
		}
	}
	return true
}

func intersect(a, b []int32) []int32 {
	var out []int32
	for _, p := range a {
		if slices.Contains(b, p) {
			out = append(out, p)
		}
	}
	return out
}

func difference(a, b []int32) []int32 {
	var out []int32
	for _, p := range a {
		if !slices.Contains(b, p) {
			out = append(out, p)
		}
	}
	return sorted(out)
}

func sorted(ps []int32) []int32 {
	out := slices.Clone(ps)
	slices.Sort(out)
	return slices.Compact(out)
}

func sorted2(a, b string) []string {
	out := []string{a, b}
	slices.Sort(out)
	return out
}
