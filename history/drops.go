package history

import (
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/fabrictelemetry/aggregator/snapshot"
)

// DropReason says why the history dropped snapshots: a fixed set, so that
// it can be a metric label.
type DropReason string

// The reasons the history drops snapshots. Retention is not one: a block
// older than the retention is the history working as configured.
const (
	// Rewound: the source's time went back, and the blocks after the new
	// time were dropped so that the history ends with what is served.
	Rewound DropReason = "rewound"
	// SeriesBudget: the oldest blocks were dropped to keep the history
	// within its series budget, or a snapshot that alone has more series
	// than the budget was not appended.
	SeriesBudget DropReason = "series_budget"
)

// DropReasons lists every reason, for metrics that show each from start-up.
var DropReasons = [...]DropReason{Rewound, SeriesBudget}

// Dropped counts the snapshots dropped for reason r since the history was
// made: blocks dropped, and snapshots not appended. Any goroutine may call
// it.
func (h *History) Dropped(r DropReason) uint64 {
	for i, reason := range DropReasons {
		if reason == r {
			return h.drops.counts[i].Load()
		}
	}
	return 0
}

// Streak is how many appends in a row, up to the newest, dropped snapshots
// (0 when the newest dropped none), and what the newest of them dropped. A
// history whose every append drops something does not follow its source:
// its source keeps rewinding, or keeps changing its rows beyond the budget.
type Streak struct {
	Appends int
	Reason  DropReason
	Detail  string // what was dropped, for a person: "the source's time went back from … to …; 2 later snapshots dropped"
}

// Streak returns the history's current streak of appends that dropped
// snapshots. Any goroutine may call it.
func (h *History) Streak() Streak {
	if s := h.drops.streak.Load(); s != nil {
		return *s
	}
	return Streak{}
}

// dropLogInterval is the least time between two log lines of one kind of
// drop: a source that churns on every poll logs its first drop, then a
// summary a minute, not a line a poll.
const dropLogInterval = time.Minute

// The kinds of drop, each logged on its own schedule.
const (
	kindRewound = iota
	kindEvicted
	kindRefused
	numDropKinds
)

// drops counts, logs and tracks the streak of what a history drops. The
// counts and the streak are read by any goroutine; the rest is the
// writer's.
type drops struct {
	counts [len(DropReasons)]atomic.Uint64 // by DropReasons index
	streak atomic.Pointer[Streak]

	logger *slog.Logger
	now    func() time.Time
	logs   [numDropKinds]dropLog
	// this is what the append under way dropped, if anything.
	this *Streak
}

// dropLog is one kind of drop's log: the first drop is logged at once, the
// ones after it summed up into a line at most every dropLogInterval.
type dropLog struct {
	logged    time.Time // the last line, zero before the first
	events    int       // drops since then
	snapshots int       // snapshots they dropped
	msg       string    // the newest drop's message and attributes
	attrs     []any
}

func (d *drops) init() { d.now = time.Now }

func (d *drops) count(r DropReason, n int) {
	for i, reason := range DropReasons {
		if reason == r {
			d.counts[i].Add(uint64(n))
		}
	}
}

// note records a drop of n snapshots by the append under way.
func (d *drops) note(kind int, r DropReason, n int, detail, msg string, attrs ...any) {
	d.count(r, n)
	d.this = &Streak{Reason: r, Detail: detail}
	l := &d.logs[kind]
	l.events++
	l.snapshots += n
	l.msg, l.attrs = msg, attrs
	if l.logged.IsZero() || d.now().Sub(l.logged) >= dropLogInterval {
		d.emit(l)
	}
}

// flush logs the drops held back once their interval has passed; the
// writer calls it at every append, so a summary is at most an append late.
func (d *drops) flush() {
	for i := range d.logs {
		if l := &d.logs[i]; l.events > 0 && d.now().Sub(l.logged) >= dropLogInterval {
			d.emit(l)
		}
	}
}

func (d *drops) emit(l *dropLog) {
	if d.logger != nil {
		args := append([]any{"drops", l.events, "dropped_snapshots", l.snapshots}, l.attrs...)
		d.logger.Warn(l.msg, args...)
	}
	l.logged, l.events, l.snapshots = d.now(), 0, 0
}

// appended ends an append: it extends the streak if the append dropped
// something, and ends it if not.
func (d *drops) appended() {
	if d.this == nil {
		if d.streak.Load() != nil {
			d.streak.Store(nil)
		}
		return
	}
	s := d.this
	d.this = nil
	if prev := d.streak.Load(); prev != nil {
		s.Appends = prev.Appends + 1
	} else {
		s.Appends = 1
	}
	d.streak.Store(s)
}

func (d *drops) rewound(newest, t int64, n int) {
	from, to := msTime(newest), msTime(t)
	d.note(kindRewound, Rewound, n,
		fmt.Sprintf("the source's time went back from %s to %s; %d later snapshots dropped", from.Format(time.RFC3339Nano), to.Format(time.RFC3339Nano), n),
		"History rewound: the source's time went back, and the samples after it are dropped so that PromQL follows what is served",
		"newest", from, "time", to)
}

func (d *drops) evicted(n int, kept []*block, t int64, series, budget int) {
	oldest := msTime(t)
	if len(kept) > 0 {
		oldest = msTime(kept[0].t)
	}
	d.note(kindEvicted, SeriesBudget, n,
		fmt.Sprintf("the %d oldest snapshots dropped to keep %d series within the budget of %d", n, series, budget),
		"History over its series budget: the oldest snapshots are dropped",
		"oldest_kept", oldest, "series", series, "max_series", budget)
}

// refused records a snapshot not appended, and ends the append.
func (d *drops) refused(s *snapshot.Snapshot, series, budget int) {
	d.note(kindRefused, SeriesBudget, 1,
		fmt.Sprintf("a snapshot of %d series, over the budget of %d, was not kept", series, budget),
		"Snapshot over the history's series budget not kept for PromQL; REST and /metrics serve it",
		"time", s.Time(), "series", series, "max_series", budget)
	d.appended()
}

func msTime(ms int64) time.Time { return time.UnixMilli(ms).UTC() }
