package history

import (
	"slices"
	"sync"
	"sync/atomic"

	"github.com/prometheus/prometheus/storage"
)

// Set is the histories of every source, one per source (one per source and
// partition on a partitioned replica), which may change while it is read:
// an aggregator fed from the poll log learns a source when its first poll
// arrives, and a partitioned replica takes partitions and gives them up.
// Readers load the current list with one atomic read and never lock; Add
// and Remove publish a new list (copy-on-write), so a list once loaded
// never changes.
type Set struct {
	mu    sync.Mutex // serialises Add and Remove
	list  atomic.Pointer[[]*History]
	empty *History // queried while the set is empty
}

// NewSet returns a set of the given histories.
func NewSet(histories ...*History) *Set {
	s := &Set{empty: New(0)}
	list := slices.Clone(histories)
	s.list.Store(&list)
	return s
}

// Add adds a history; the queries that start afterwards see it.
func (s *Set) Add(h *History) {
	s.mu.Lock()
	defer s.mu.Unlock()
	list := append(slices.Clone(*s.list.Load()), h)
	s.list.Store(&list)
}

// Remove takes a history out (a partitioned replica's history of a
// partition it gave up); the queries that start afterwards do not see it,
// and those already running keep the list they loaded.
func (s *Set) Remove(h *History) {
	s.mu.Lock()
	defer s.mu.Unlock()
	list := slices.DeleteFunc(slices.Clone(*s.list.Load()), func(x *History) bool { return x == h })
	s.list.Store(&list)
}

// All returns the histories as of now. The slice is shared: callers must
// not modify it.
func (s *Set) All() []*History { return *s.list.Load() }

// Queryable returns a storage.Queryable over the set: each querier is the
// Union of the histories in the set when it is opened.
func (s *Set) Queryable() storage.Queryable { return setQueryable{s} }

type setQueryable struct{ s *Set }

func (q setQueryable) Querier(mint, maxt int64) (storage.Querier, error) {
	hs := q.s.All()
	if len(hs) == 0 {
		return q.s.empty.Queryable().Querier(mint, maxt)
	}
	return Union(hs...).Querier(mint, maxt)
}
