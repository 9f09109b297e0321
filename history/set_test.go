package history

import (
	"sync"
	"testing"
	"time"

	"github.com/fabrictelemetry/aggregator/internal/historytest"
)

// A set answers over the histories it holds when a query starts: a source
// added later is seen by the queries after it, the union of all answers
// as Union does, and a query already running keeps the list it loaded.
func TestSetGrows(t *testing.T) {
	east, west, ports := New(time.Hour), New(time.Hour), New(time.Hour)
	historytest.UnionSources(t, east, west, ports)
	engine := newEngine()
	s := NewSet()
	const count = "count(fabric_switch_transmit_bytes_total)"
	if v := evalInstant(t, engine, s.Queryable(), count, 30*time.Second); len(v) != 0 {
		t.Fatalf("empty set: %v", v)
	}
	s.Add(east)
	before, err := s.Queryable().Querier(0, t0.Add(time.Hour).UnixMilli())
	if err != nil {
		t.Fatal(err)
	}
	defer before.Close()
	if got, want := evalInstant(t, engine, s.Queryable(), count, 30*time.Second), evalInstant(t, engine, east.Queryable(), count, 30*time.Second); len(want) != 1 || !sameVector(got, want) {
		t.Fatalf("east alone: %v, east's history gives %v", got, want)
	}
	s.Add(west)
	s.Add(ports)
	for _, qs := range []string{count, "sum by (fabric) (fabric_switch_transmit_bytes_total)", "fabric_port_transmit_bytes_total"} {
		got := evalInstant(t, engine, s.Queryable(), qs, 30*time.Second)
		want := evalInstant(t, engine, Union(east, west, ports), qs, 30*time.Second)
		if len(want) == 0 || !sameVector(got, want) {
			t.Errorf("%s: %v, the union of the three gives %v", qs, got, want)
		}
	}
	if n := len(s.All()); n != 3 {
		t.Errorf("%d histories in the set", n)
	}
	// The querier opened with east alone still sees east alone.
	names, _, err := before.LabelValues(t.Context(), "fabric", nil)
	if err != nil || len(names) != 1 || names[0] != "east" {
		t.Errorf("querier opened before the additions: fabric values %v, %v", names, err)
	}

	// Removed, west is gone from the queries that start afterwards; a
	// querier opened before still sees it.
	withWest, err := s.Queryable().Querier(0, t0.Add(time.Hour).UnixMilli())
	if err != nil {
		t.Fatal(err)
	}
	defer withWest.Close()
	s.Remove(west)
	if got, want := evalInstant(t, engine, s.Queryable(), count, 30*time.Second), evalInstant(t, engine, Union(east, ports), count, 30*time.Second); !sameVector(got, want) {
		t.Errorf("west removed: %v, east and the ports give %v", got, want)
	}
	if names, _, err := withWest.LabelValues(t.Context(), "fabric", nil); err != nil || len(names) != 2 {
		t.Errorf("querier opened before the removal: fabric values %v, %v", names, err)
	}
	if n := len(s.All()); n != 2 {
		t.Errorf("%d histories in the set after a removal", n)
	}
}

// Readers load the list while sources are added, without locks and
// without a race (go test -race).
func TestSetConcurrentAdd(t *testing.T) {
	s := NewSet()
	var wg sync.WaitGroup
	wg.Go(func() {
		for range 100 {
			s.Add(New(time.Hour))
		}
	})
	for range 2 {
		wg.Go(func() {
			for range 100 {
				for _, h := range s.All() {
					_ = h.Load()
				}
				q, err := s.Queryable().Querier(0, 1)
				if err != nil {
					t.Error(err)
					return
				}
				q.Close()
			}
		})
	}
	wg.Wait()
	if n := len(s.All()); n != 100 {
		t.Errorf("%d histories, want 100", n)
	}
}
