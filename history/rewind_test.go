package history

import (
	"slices"
	"testing"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"

	"github.com/fabrictelemetry/aggregator/ingest"
	"github.com/fabrictelemetry/aggregator/schema"
	"github.com/fabrictelemetry/aggregator/simulator"
	"github.com/fabrictelemetry/aggregator/snapshot"
)

// corrections are what a source sends after its clock went back: the
// simulator's polls (another seed, so the values differ from the ones they
// replace), 10s apart from at.
func corrections(tb testing.TB, at time.Time, n int) []*snapshot.Snapshot {
	return simSnapshots(tb, simulator.Config{Switches: 12, Seed: 8, IncidentRate: 0.05}, at, n)
}

// before returns the snapshots of snaps older than t.
func before(snaps []*snapshot.Snapshot, t time.Time) []*snapshot.Snapshot {
	var kept []*snapshot.Snapshot
	for _, s := range snaps {
		if s.Time().Before(t) {
			kept = append(kept, s)
		}
	}
	return kept
}

// A snapshot older than the newest block rewinds the history: afterwards
// every query over it answers what a history fed only the snapshots it
// kept answers (the oracle), while the corrections go on and the old
// blocks age into runs; the blocks after the new time are counted as
// rewound and the streak names the rewind.
func TestRewind(t *testing.T) {
	snaps := mixedSnapshots(t)
	runs := Compression{RunBlocks: 6, Spread: 1, MinRun: 1, MinBatch: 1}
	for _, tc := range []struct {
		name     string
		comp     Compression
		appended int           // snapshots appended before the rewind
		back     time.Duration // the correction's time, from simT0
	}{
		{"plain blocks only", Compression{}, 20, 14*step + 5*time.Second},
		// The run of blocks 6 to 11 keeps 6, 7 and 8.
		{"into encoded runs", runs, 40, 8*step + 5*time.Second},
		{"onto a block's time", runs, 40, 20 * step},
		{"past the whole history", runs, 40, -time.Minute},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := New(time.Hour).WithCompression(tc.comp)
			for _, s := range snaps[:tc.appended] {
				h.Append(s)
			}
			if st := h.Load().Stats(); (st.Runs > 0) != (tc.comp.RunBlocks > 0) {
				t.Fatalf("before the rewind: %+v", st)
			}
			at := simT0.Add(tc.back)
			fixes := corrections(t, at, 30)
			kept := before(snaps[:tc.appended], at)
			oracle := New(time.Hour).WithCompression(tc.comp)
			for _, s := range kept {
				oracle.Append(s)
			}

			h.Append(fixes[0])
			oracle.Append(fixes[0])
			later := tc.appended - len(kept)
			var wantTimes []time.Time
			for _, s := range append(kept, fixes[0]) {
				wantTimes = append(wantTimes, s.Time())
			}
			if got := h.Load().Times(); !slices.Equal(got, wantTimes) {
				t.Errorf("times after the rewind: %v, want %v", got, wantTimes)
			}
			if snaps[len(kept)].Time().Equal(at) {
				later-- // the block of that time is replaced
			}
			if got := h.Dropped(Rewound); got != uint64(later) {
				t.Errorf("Dropped(Rewound) = %d, want %d", got, later)
			}
			if st := h.Streak(); st.Appends != 1 || st.Reason != Rewound {
				t.Errorf("streak after the rewind: %+v", st)
			}
			compareHistories(t, oracle, h, 0)

			for k, s := range fixes[1:] {
				h.Append(s)
				oracle.Append(s)
				if k%10 == 9 {
					compareHistories(t, oracle, h, k+1)
				}
			}
			if st := h.Streak(); st.Appends != 0 {
				t.Errorf("streak after appends in order: %+v", st)
			}
			// Encoding went on over the rewound stretch: only the newest
			// blocks, a run's worth and the one being encoded, are plain.
			plain := 0
			for _, b := range h.Load().blocks {
				if b.values != nil {
					plain++
				}
			}
			if most := tc.comp.RunBlocks + tc.comp.Spread + 1; tc.comp.RunBlocks > 0 && plain > most {
				t.Errorf("%d plain blocks, want at most %d", plain, most)
			}
			if h.Dropped(Rewound) != uint64(later) || h.Dropped(SeriesBudget) != 0 {
				t.Errorf("counts moved without drops: rewound %d, series_budget %d", h.Dropped(Rewound), h.Dropped(SeriesBudget))
			}
		})
	}
}

// A rewind that drops blocks of the run being encoded abandons the run, and
// encoding starts again from its first block still there: the history then
// encodes the very runs the oracle does, so that nothing stays plain for
// good and no run holds dropped cells.
func TestRewindAbandonsPendingRun(t *testing.T) {
	snaps := mixedSnapshots(t)
	c := Compression{RunBlocks: 6, Spread: 3, MinRun: 1, MinBatch: 1}
	h := New(time.Hour).WithCompression(c)
	n := 0
	for ; n < 20 || h.pending == nil || len(h.pending.blocks) < 4 || h.pending.next == 0; n++ {
		h.Append(snaps[n])
	}
	p := h.pending
	at := time.UnixMilli(p.blocks[2].t).Add(-5 * time.Second) // the run keeps two blocks
	fixes := corrections(t, at, 40)
	h.Append(fixes[0])
	if h.pending == p {
		t.Fatal("the pending run outlived the rewind")
	}
	oracle := New(time.Hour).WithCompression(c)
	for _, s := range append(before(snaps[:n], at), fixes[0]) {
		oracle.Append(s)
	}
	for _, s := range fixes[1:] {
		h.Append(s)
		oracle.Append(s)
	}
	compareHistories(t, oracle, h, 0)
	got, want := h.Load().Stats(), oracle.Load().Stats()
	if got != want {
		t.Errorf("stats after the rewind:\n got  %+v\n want %+v", got, want)
	}
}

// The rows of the snapshot appended before a rewind are not taken for the
// rows of the layout the rewind leaves newest: a switch that sorts first
// joined in the dropped block, and the correction still has it.
func TestRewindToOtherRows(t *testing.T) {
	p := ingest.NewParser(schema.Default())
	parse := func(body string, at time.Duration) *snapshot.Snapshot {
		s, err := p.Parse([]byte("switch_id,Tx_Bytes\n"+body), t0.Add(at))
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	three := "SW-01,10\nSW-02,20\nSW-03,30\n"
	four := "SW-00,5\n" + three
	h := New(time.Hour)
	h.Append(parse(three, 0))
	h.Append(parse(three, step))
	h.Append(parse(four, 3*step))
	h.Append(parse(four, 2*step)) // the parser shares the rows of the last
	oracle := New(time.Hour)
	oracle.Append(parse(three, 0))
	oracle.Append(parse(three, step))
	oracle.Append(parse(four, 2*step))
	all := labels.MustNewMatcher(labels.MatchRegexp, model.MetricNameLabel, ".+")
	got := selectSamples(t, h.Queryable(), ms(0), ms(time.Hour), all)
	want := selectSamples(t, oracle.Queryable(), ms(0), ms(time.Hour), all)
	if len(got) != len(want) || len(want) != 4 {
		t.Fatalf("got %v, want %v", got, want)
	}
	for name, w := range want {
		if !sameSamples(got[name], w) {
			t.Errorf("%s: got %v, want %v", name, got[name], w)
		}
	}
}
