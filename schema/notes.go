package schema

import (
	"strings"
	"sync"
)

// maxNoteSets bounds the column sets remembered for ReportNotes; a source
// whose schema keeps changing then logs again now and then, which is right.
const maxNoteSets = 64

// noteReporter passes Resolve's notes on once per distinct column set.
type noteReporter struct {
	report func(note string)
	mu     sync.Mutex
	seen   map[string]struct{}
}

// ReportNotes makes Resolve hand its notes (name clashes) to report, once
// per distinct set of columns: a source sending the same header every poll
// is logged about once, and again only when its columns change. report may
// be called from any goroutine that calls Resolve. Call it before the table
// is in use.
func (t *Table) ReportNotes(report func(note string)) {
	t.notes = &noteReporter{report: report, seen: map[string]struct{}{}}
}

func (r *noteReporter) notify(subsystem string, columns, notes []string) {
	if r == nil || len(notes) == 0 {
		return
	}
	key := subsystem + "\x00" + strings.Join(columns, "\x00")
	r.mu.Lock()
	_, done := r.seen[key]
	if !done {
		if len(r.seen) >= maxNoteSets {
			clear(r.seen)
		}
		r.seen[key] = struct{}{}
	}
	r.mu.Unlock()
	if done {
		return
	}
	for _, n := range notes {
		r.report(n)
	}
}
