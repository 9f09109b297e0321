package history

import (
	"slices"
	"sync"
	"sync/atomic"

	"github.com/prometheus/prometheus/storage"
)

// Set is the histories of every source, one per source, which may grow
// while it is read: an aggregator fed from the poll log learns a source
// when its first poll arrives. Readers load the current list with one
// atomic read and never lock; Add publishes a new list (copy-on-write), so
// a list once loaded never changes.
type Set struct {
	mu    sync.Mutex // serialises Add
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
