package cluster

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
)

// Serving is implemented by a Membership whose replicas hold the poll
// log's partitions whole or not at all (kafkalog.GroupFollower): it says
// which partitions this replica's data holds at the moment. A partition
// handed from one replica to another during a rebalance is, for a while,
// held by neither (given up by the one, still loading on the other), and
// two replicas learn of a rebalance at slightly different moments, so the
// owners the Membership names are not enough to know that an answer is
// whole. With Serving, every answer a replica gives a peer says which
// partitions it holds (PartitionsHeader), and an answer that, all replicas
// together, lacks a partition says it is partial, naming it.
type Serving interface {
	// Serving returns the topic's partition count (0 while unknown) and
	// the partitions, in order, whose switches this replica's data (its
	// view and its PromQL histories) holds whole now. It must never name a
	// partition the data lacks at that moment; callers take it before and
	// after they load the data and keep the partitions both name
	// (Peers.Held).
	Serving() (partitions int, served []int32)
}

// PartitionsHeader carries the partitions an answer to a peer holds,
// written by Coverage.String: a header of a rows answer, a trailer of a
// remote-read answer (whose data is read from the histories while the
// answer is written).
const PartitionsHeader = "X-Fabric-Partitions"

// Coverage is the poll-log partitions an answer holds whole.
type Coverage struct {
	Partitions int     // the topic's partition count; 0 when not known
	Held       []int32 // in order
}

// String writes the coverage as "COUNT:P,P,…" ("16:0,3,5"; "16:" for none).
func (c Coverage) String() string {
	var b strings.Builder
	b.WriteString(strconv.Itoa(c.Partitions))
	b.WriteByte(':')
	for i, p := range c.Held {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(strconv.Itoa(int(p)))
	}
	return b.String()
}

// ParseCoverage reads what String wrote.
func ParseCoverage(s string) (Coverage, error) {
	count, list, ok := strings.Cut(s, ":")
	n, err := strconv.Atoi(count)
	if !ok || err != nil || n < 0 {
		return Coverage{}, fmt.Errorf("%s %q: not COUNT:P,P,…", PartitionsHeader, s)
	}
	c := Coverage{Partitions: n, Held: []int32{}}
	if list == "" {
		return c, nil
	}
	for f := range strings.SplitSeq(list, ",") {
		p, err := strconv.ParseInt(f, 10, 32)
		if err != nil || p < 0 || int(p) >= n {
			return Coverage{}, fmt.Errorf("%s %q: partition %q is not one of %d", PartitionsHeader, s, f, n)
		}
		c.Held = append(c.Held, int32(p))
	}
	slices.Sort(c.Held)
	c.Held = slices.Compact(c.Held)
	return c, nil
}

// intersect returns the partitions both hold, of the larger count.
func (c Coverage) intersect(o Coverage) Coverage {
	out := Coverage{Partitions: max(c.Partitions, o.Partitions), Held: []int32{}}
	for _, p := range c.Held {
		if _, ok := slices.BinarySearch(o.Held, p); ok {
			out.Held = append(out.Held, p)
		}
	}
	return out
}

// Missing returns the partitions of the topic that none of the answers
// holds, in order; none when no answer knows the partition count.
func Missing(answers ...Coverage) []int32 {
	count := 0
	for _, c := range answers {
		count = max(count, c.Partitions)
	}
	held := make([]bool, count)
	for _, c := range answers {
		for _, p := range c.Held {
			if int(p) < count {
				held[p] = true
			}
		}
	}
	var out []int32
	for p, ok := range held {
		if !ok {
			out = append(out, int32(p))
		}
	}
	return out
}

// Uncovered returns what the answers lack between them: nil when they hold
// every partition of the topic, else a MissingError naming the partitions
// none holds, or naming none when no answer knows the topic's partition
// count (this replica has not joined its group yet).
func Uncovered(answers ...Coverage) *MissingError {
	count := 0
	for _, c := range answers {
		count = max(count, c.Partitions)
	}
	if count == 0 {
		return &MissingError{}
	}
	if missing := Missing(answers...); len(missing) > 0 {
		return &MissingError{Partitions: missing}
	}
	return nil
}

// MissingError is a partial answer: partitions no replica that answered
// holds whole, or, without Partitions, partitions not known yet.
type MissingError struct{ Partitions []int32 }

func (e *MissingError) Error() string {
	if len(e.Partitions) == 0 {
		return "the poll log's partitions are not known yet (this replica has not joined its group): the data of any switch may be missing"
	}
	ps := make([]string, len(e.Partitions))
	for i, p := range e.Partitions {
		ps[i] = strconv.Itoa(int(p))
	}
	noun := "partition " + ps[0] + " of the poll log is"
	if len(ps) > 1 {
		noun = "partitions " + strings.Join(ps, ", ") + " of the poll log are"
	}
	return noun + " held by no replica that answered (handed over in a rebalance, or their replica did not answer): the data of their switches is missing"
}

// Serving returns the membership's Serving, or nil when it has none.
func (p *Peers) Serving() Serving {
	if p == nil {
		return nil
	}
	s, _ := p.m.(Serving)
	return s
}

// Covers reports whether the membership says what each replica holds
// (Serving), so that answers can be checked for missing partitions.
func (p *Peers) Covers() bool { return p.Serving() != nil }

// Held runs load, which loads this replica's data, and returns the
// partitions that data holds whole: those Serving names both before and
// after it. (Serving never names a partition the data lacks at that
// moment, and a partition is not given up and loaded again within one
// load.) Without Serving it runs load and returns a zero Coverage.
func (p *Peers) Held(load func()) Coverage {
	c, _ := held(p.Serving(), load)
	return c
}

// held runs load and returns the partitions s names both before and after
// it; false, and a zero Coverage, when s is nil.
func held(s Serving, load func()) (Coverage, bool) {
	if s == nil {
		load()
		return Coverage{}, false
	}
	before := coverageOf(s)
	load()
	return before.intersect(coverageOf(s)), true
}

func coverageOf(s Serving) Coverage {
	n, held := s.Serving()
	return Coverage{Partitions: n, Held: held}
}

// coverageSink collects, for one select of a query, the coverage each
// peer's remote-read answer carried. Requests find it in their context.
type coverageSink struct {
	mu    sync.Mutex
	peers map[string]Coverage
}

type coverageSinkKey struct{}

func withCoverageSink(ctx context.Context, s *coverageSink) context.Context {
	return context.WithValue(ctx, coverageSinkKey{}, s)
}

// recordCoverage keeps the coverage a peer's answer to a request made
// with ctx carried (a header or trailer value), if ctx collects any.
func recordCoverage(ctx context.Context, peer, value string) {
	s, _ := ctx.Value(coverageSinkKey{}).(*coverageSink)
	if s == nil || value == "" {
		return
	}
	c, err := ParseCoverage(value)
	if err != nil {
		return // held nothing, as far as the check is concerned
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.peers[peer] = c
}

func (s *coverageSink) all() []Coverage {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Coverage, 0, len(s.peers))
	for _, c := range s.peers {
		out = append(out, c)
	}
	return out
}
