package snapshot

import (
	"sync/atomic"
	"time"
)

// Store publishes views by read-copy-update: one writer builds a new View
// off to the side and swaps it in with a single atomic store; readers load
// the pointer once per request and never lock. A reader that loaded the old
// view keeps a consistent picture until it is done with it.
type Store struct {
	current atomic.Pointer[View]
}

// Loader is what readers depend on: the REST API, the collector and the
// benchmarks' lock-based baseline all load a View this way.
type Loader interface {
	// Load returns the current view, or nil before the first publish.
	Load() *View
}

// Load returns the current view, or nil before the first publish.
func (s *Store) Load() *View { return s.current.Load() }

// Publish makes snap, alone, the view every later Load returns.
func (s *Store) Publish(snap *Snapshot) { s.current.Store(NewView(snap)) }

// PublishView makes v the view every later Load returns.
func (s *Store) PublishView(v *View) { s.current.Store(v) }

// View is everything the aggregator serves at one moment: the fabric's
// switch-level rows in one snapshot and its per-port rows in another (either
// may be missing), each merged from every source of that kind. Keeping the
// two apart keeps each snapshot's rows uniform, and since their metrics are
// fabric_switch_* and fabric_port_*, no metric name spans both.
type View struct {
	parts    []*Snapshot
	time     time.Time
	timeText string
}

// NewView returns the view of these snapshots; nil ones are left out. The
// switch-level snapshot should come first: readers that look a switch up
// try the parts in order.
func NewView(parts ...*Snapshot) *View {
	v := &View{parts: make([]*Snapshot, 0, len(parts))}
	for _, p := range parts {
		if p == nil {
			continue
		}
		v.parts = append(v.parts, p)
		if p.time.After(v.time) || v.timeText == "" {
			v.time, v.timeText = p.time, p.timeText
		}
	}
	return v
}

// Parts are the view's snapshots, switch-level first.
func (v *View) Parts() []*Snapshot { return v.parts }

// Time is the newest part's time: how fresh the freshest data is.
func (v *View) Time() time.Time { return v.time }

// TimeText is Time as the API writes it, formatted once by its part.
func (v *View) TimeText() string { return v.timeText }

// Single returns the view's only snapshot, or nil when it has none or
// several; for callers that serve one source of one kind.
func (v *View) Single() *Snapshot {
	if v == nil || len(v.parts) != 1 {
		return nil
	}
	return v.parts[0]
}

// Series counts the present values of every part.
func (v *View) Series() int {
	n := 0
	for _, p := range v.parts {
		n += p.Series()
	}
	return n
}

// Switches counts the distinct switch ids of every part.
func (v *View) Switches() int {
	if len(v.parts) == 1 {
		return len(v.parts[0].switches)
	}
	seen := map[string]struct{}{}
	for _, p := range v.parts {
		for _, id := range p.switches {
			seen[id] = struct{}{}
		}
	}
	return len(seen)
}
