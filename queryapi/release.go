package queryapi

import (
	"runtime"
	"runtime/debug"
	"sync"
	"time"
)

// Nothing holds a query's result or answer once it is sent, but the memory
// does not leave the process by itself: the garbage collector sets its next
// goal at twice the heap it found live, which a few heavy queries raise to
// gigabytes, and only returns freed pages to the operating system slowly.
// Measured on the 2,000 × 64-port fabric (tools/query-rss.sh): a minute
// after 40 heavy queries the process was still 7,384 MiB resident with
// 2,869 MiB of heap in use, against 1,578 MiB and 1,003 MiB before them;
// with the release it is 987 MiB five seconds after. So once the heavy
// queries are over, the API collects and returns the memory at once
// (debug.FreeOSMemory), at most once per releaseInterval, since it costs
// two collections of the whole heap (the history included). A query is heavy
// when its engine memory or its answer reached an eighth of what one query
// may hold (Options.QueryMemory).
const (
	// heavyShare is the share of QueryMemory from which a query is heavy.
	heavyShare = 8
	// releaseQuiet is how long the API must have had no query in flight
	// before it releases: the heavy queries are over, not between two.
	releaseQuiet = time.Second
	// releaseInterval is the least time between two releases, bounding
	// what a client sending heavy queries one at a time can make the
	// collector do.
	releaseInterval = 30 * time.Second
)

// releaser returns the memory of heavy queries to the operating system once
// no query is in flight.
type releaser struct {
	quiet, interval time.Duration
	free            func() // debug.FreeOSMemory; a test's counter

	mu       sync.Mutex
	inflight int
	due      bool      // a heavy query ran since the last release
	last     time.Time // the last release
	timer    *time.Timer
}

func newReleaser() *releaser {
	return &releaser{quiet: releaseQuiet, interval: releaseInterval, free: freeMemory}
}

// freeMemory collects twice, since the engine's pools of point slices
// (sync.Pools) survive one collection, then returns the free pages.
func freeMemory() {
	runtime.GC()
	debug.FreeOSMemory()
}

// start records a query (any request of the API) starting.
func (r *releaser) start() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.inflight++
	if r.timer != nil {
		r.timer.Stop()
	}
}

// end records a query ending, heavy or not; the last one to end schedules
// the release if one is due.
func (r *releaser) end(heavy bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.inflight--
	r.due = r.due || heavy
	if r.inflight > 0 || !r.due {
		return
	}
	wait := max(r.quiet, time.Until(r.last.Add(r.interval)))
	if r.timer == nil {
		r.timer = time.AfterFunc(wait, r.release)
		return
	}
	r.timer.Reset(wait)
}

func (r *releaser) release() {
	r.mu.Lock()
	if r.inflight > 0 || !r.due {
		r.mu.Unlock()
		return
	}
	r.due, r.last = false, time.Now()
	r.mu.Unlock()
	r.free()
}

// stop cancels a pending release (for tests and shutdown).
func (r *releaser) stop() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.timer != nil {
		r.timer.Stop()
	}
}
