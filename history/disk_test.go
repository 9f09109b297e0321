package history

import (
	"fmt"
	"hash/crc32"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"

	"github.com/fabrictelemetry/aggregator/internal/historytest"
	"github.com/fabrictelemetry/aggregator/internal/testproc"
	"github.com/fabrictelemetry/aggregator/snapshot"
)

// shortRuns seals a run every six snapshots, in two appends, so that the
// mixed history has a dozen runs and every layout change.
var shortRuns = Compression{RunBlocks: 6, Spread: 2, MinRun: 3, MinBatch: 1}

// persisted appends snaps to a history kept in dir, each once the disk has
// written the view before (as at the aggregator's poll interval, which is
// much longer than a write), closes its Disk and returns the history.
func persisted(t *testing.T, dir string, retention time.Duration, c Compression, snaps []*snapshot.Snapshot) *History {
	t.Helper()
	h := New(retention).WithCompression(c)
	d, err := h.Persist(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range snaps {
		h.Append(s)
		waitSynced(t, h, d)
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	return h
}

// sameAfterHead checks a history reloaded from orig's directory: it holds
// orig's encoded blocks, and perhaps older blocks of their runs that orig
// had already let go (the retention counts back from the newest block,
// which the reload has not got), but none older than its retention; given
// the snapshots after them again, as the aggregator gets its last snapshot
// back and polls on, it is orig at every time.
func sameAfterHead(t *testing.T, orig, reloaded *History, snaps []*snapshot.Snapshot) {
	t.Helper()
	sealed, got := encodedTimes(orig.Load()), reloaded.Load().Times()
	if len(sealed) == 0 || len(got) < len(sealed) || !slices.Equal(got[len(got)-len(sealed):], sealed) ||
		got[len(got)-1].Sub(got[0]).Milliseconds() > reloaded.retention {
		t.Fatalf("reloaded times:\n got  %v\n want %v, or older blocks within the retention before them", got, sealed)
	}
	through := sealed[len(sealed)-1]
	for _, s := range snaps {
		if s.Time().After(through) {
			reloaded.Append(s)
		}
	}
	if got, want := reloaded.Load().Times(), orig.Load().Times(); !slices.Equal(got, want) {
		t.Fatalf("after the head again:\n got  %v\n want %v", got, want)
	}
	compareHistories(t, orig, reloaded, len(snaps)-1)
}

// reopen loads the history kept in dir, with a logger into logs when given.
func reopen(t *testing.T, dir string, retention time.Duration, c Compression, logs *testproc.LockedBuffer) (*History, *Disk) {
	t.Helper()
	h := New(retention).WithCompression(c)
	if logs != nil {
		h.WithLogger(slog.New(slog.NewTextHandler(logs, nil)))
	}
	d, err := h.Persist(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return h, d
}

// encodedTimes are the times of v's blocks that read an encoded run.
func encodedTimes(v *View) []time.Time {
	var ts []time.Time
	for _, b := range v.blocks {
		if b.enc != nil {
			ts = append(ts, msTime(b.t))
		}
	}
	return ts
}

// files lists dir's files with extension ext.
func files(t *testing.T, dir, ext string) []string {
	t.Helper()
	names, err := filepath.Glob(filepath.Join(dir, "*"+ext))
	if err != nil {
		t.Fatal(err)
	}
	return names
}

// sameUpTo checks that queries over got and want agree at every time up to
// through: raw samples, label lookups, and PromQL evaluated at and between
// the snapshots' times and over the whole range.
func sameUpTo(t *testing.T, want, got *History, through time.Time) {
	t.Helper()
	first := want.Load().Times()[0]
	all := labels.MustNewMatcher(labels.MatchRegexp, model.MetricNameLabel, ".+")
	mint, maxt := first.Add(-time.Hour).UnixMilli(), through.UnixMilli()
	w, g := selectSamples(t, want.Queryable(), mint, maxt, all), selectSamples(t, got.Queryable(), mint, maxt, all)
	if len(g) != len(w) {
		t.Fatalf("through %s: %d series, want %d", through, len(g), len(w))
	}
	for name, ws := range w {
		if !sameSamples(g[name], ws) {
			t.Fatalf("through %s, %s:\n got  %v\n want %v", through, name, g[name], ws)
		}
	}
	compareLabelLookups(t, want.Queryable(), got.Queryable(), first.UnixMilli(), maxt, 0)
	engine := newEngine()
	for _, qs := range []string{
		`{__name__=~".+"}`,
		"rate(fabric_switch_transmit_bytes_total[1m])",
		"resets(fabric_switch_transmit_bytes_total[5m])",
		"changes(fabric_switch_temperature_celsius[2m])",
		"count_over_time(fabric_switch_temperature_celsius[1m])",
		"timestamp(fabric_switch_latency_average_seconds)",
		"max_over_time(rate(fabric_switch_transmit_bytes_total[30s])[2m:10s])",
	} {
		for at := first; !at.After(through); at = at.Add(5 * time.Second) {
			if g, w := instantAt(t, engine, got.Queryable(), qs, at), instantAt(t, engine, want.Queryable(), qs, at); !identicalVectors(g, w) {
				t.Fatalf("%s at %s:\n got  %v\n want %v", qs, at, g, w)
			}
		}
		if g, w := rangeAt(t, engine, got.Queryable(), qs, first, through, 7*time.Second), rangeAt(t, engine, want.Queryable(), qs, first, through, 7*time.Second); !identicalMatrices(g, w) {
			t.Fatalf("%s over %s..%s differs", qs, first, through)
		}
	}
}

// A history reloaded from its directory holds exactly the encoded blocks
// the original held and answers every query the same at every time up to
// the newest of them; given the snapshots after it again, as the restarted
// aggregator gets its last snapshot back and polls on, it is the original
// at every time.
func TestPersistRoundTrip(t *testing.T) {
	snaps := mixedSnapshots(t)
	for _, c := range []Compression{shortRuns, DefaultCompression} {
		t.Run(fmt.Sprintf("runs-of-%d", c.RunBlocks), func(t *testing.T) {
			dir := t.TempDir()
			orig := persisted(t, dir, time.Hour, c, snaps)
			sealed := encodedTimes(orig.Load())
			if len(sealed) < c.RunBlocks {
				t.Fatalf("%d blocks sealed", len(sealed))
			}
			// Only the head is plain, the newest layout's blocks not yet
			// in a run: a stretch of fewer than MinRun snapshots (the
			// fabric changed twice within it) is encoded too, or a
			// restart would lose it.
			blocks := orig.Load().blocks
			for _, b := range blocks {
				if b.enc == nil && b.lay != blocks[len(blocks)-1].lay {
					t.Fatalf("a block of %s, before the head, is plain", msTime(b.t))
				}
			}
			h, d := reopen(t, dir, time.Hour, c, nil)
			if got := h.Load().Times(); !slices.Equal(got, sealed) {
				t.Fatalf("reloaded times:\n got  %v\n want %v", got, sealed)
			}
			through := sealed[len(sealed)-1]
			if st := d.Stats(); st.LoadedSnapshots != len(sealed) || !st.SealedThrough.Equal(through) || st.Unreadable != 0 {
				t.Errorf("stats after the reload: %+v", st)
			}
			sameUpTo(t, orig, h, through)
			sameAfterHead(t, orig, h, snaps)
		})
	}
}

// Runs are written as they seal, not only at Close: a process killed
// without one keeps every run written before.
func TestPersistWritesAsRunsSeal(t *testing.T) {
	snaps := mixedSnapshots(t)[:40]
	dir := t.TempDir()
	h := New(time.Hour).WithCompression(shortRuns)
	d, err := h.Persist(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	for _, s := range snaps {
		h.Append(s)
	}
	sealed := encodedTimes(h.Load())
	deadline := time.Now().Add(10 * time.Second)
	for !d.Stats().SealedThrough.Equal(sealed[len(sealed)-1]) {
		if time.Now().After(deadline) {
			t.Fatalf("sealed through %s, the history through %s", d.Stats().SealedThrough, sealed[len(sealed)-1])
		}
		time.Sleep(5 * time.Millisecond)
	}
	// Another history on the same directory, as after a crash: the
	// writer is still running, and has nothing left to write.
	copied := t.TempDir()
	for _, f := range files(t, dir, "") {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(copied, filepath.Base(f)), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	reloaded, _ := reopen(t, copied, time.Hour, shortRuns, nil)
	if got := reloaded.Load().Times(); !slices.Equal(got, sealed) {
		t.Fatalf("reloaded times:\n got  %v\n want %v", got, sealed)
	}
}

// runFileOf reads a run file.
func runFileOf(t *testing.T, path string) *runFile {
	t.Helper()
	payload, err := readFile(path, kindRunFile)
	if err != nil {
		t.Fatal(err)
	}
	f, err := decodeRun(payload)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// runsOf are the run files that damage to target takes with it: a run
// itself, or every run naming a layout.
func runsOf(t *testing.T, dir, target string) []*runFile {
	t.Helper()
	seq, ext, _ := parseFileName(filepath.Base(target))
	var runs []*runFile
	for _, name := range files(t, dir, extRun) {
		if rseq, _, _ := parseFileName(filepath.Base(name)); ext == extRun && rseq != seq {
			continue
		}
		if f := runFileOf(t, name); ext == extRun || f.layout == seq {
			runs = append(runs, f)
		}
	}
	return runs
}

// lostTimes are the block times of runsOf(target).
func lostTimes(t *testing.T, dir, target string) []time.Time {
	t.Helper()
	var lost []time.Time
	for _, f := range runsOf(t, dir, target) {
		for _, ms := range f.times {
			lost = append(lost, msTime(ms))
		}
	}
	return lost
}

// A damaged file is reported, counted and skipped, whole, and left in
// place: the reload has every other run, and nothing of the damaged one
// (or of the runs of a damaged layout); before the first block lost, it
// answers every query as the original does.
func TestPersistSkipsDamagedFiles(t *testing.T) {
	snaps := mixedSnapshots(t)
	for _, tc := range []struct {
		name   string
		ext    string // the kind of file damaged
		nth    int    // the nth oldest of them, from 1; 0 for the newest
		do     func(b []byte) []byte
		reason string // what the log says
	}{
		{"torn last run", extRun, 0, func(b []byte) []byte { return b[:len(b)-7] }, "truncated"},
		{"torn header", extRun, 2, func(b []byte) []byte { return b[:headerBytes-3] }, "truncated before its header"},
		{"corrupt run", extRun, 3, func(b []byte) []byte { b[len(b)/2] ^= 0x10; return b }, "checksum mismatch"},
		{"unknown version", extRun, 1, func(b []byte) []byte { b[len(fileMagic)] = fileVersion + 1; return b }, "unknown format version 2"},
		{"corrupt layout", extLayout, 1, func(b []byte) []byte { b[headerBytes+5] ^= 0xff; return b }, "checksum mismatch"},
		{"well-formed garbage", extRun, 2, func(b []byte) []byte {
			// A valid checksum over a run whose data is cut short.
			payload := b[headerBytes : len(b)-1]
			return append(header(kindRunFile, len(payload), crc32.Checksum(payload, castagnoli)), payload...)
		}, "malformed run data"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			orig := persisted(t, dir, time.Hour, shortRuns, snaps)
			names := files(t, dir, tc.ext)
			target := names[len(names)-1]
			if tc.nth > 0 {
				target = names[tc.nth-1]
			}
			lost := lostTimes(t, dir, target)
			var want []time.Time
			for _, ts := range encodedTimes(orig.Load()) {
				if !slices.Contains(lost, ts) {
					want = append(want, ts)
				}
			}
			b, err := os.ReadFile(target)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(target, tc.do(b), 0o644); err != nil {
				t.Fatal(err)
			}

			var logs testproc.LockedBuffer
			h, d := reopen(t, dir, time.Hour, shortRuns, &logs)
			if got := h.Load().Times(); !slices.Equal(got, want) || len(lost) == 0 {
				t.Errorf("reloaded times (lost %v):\n got  %v\n want %v", lost, got, want)
			}
			// The file, and each run that names a damaged layout.
			unreadable := uint64(1)
			if tc.ext == extLayout {
				unreadable += uint64(len(runsOf(t, dir, target)))
			}
			if st := d.Stats(); st.Unreadable != unreadable {
				t.Errorf("stats: %+v", st)
			}
			if l := logs.String(); !strings.Contains(l, "Skipping unreadable history file") || !strings.Contains(l, tc.reason) || !strings.Contains(l, filepath.Base(target)) {
				t.Errorf("not reported as %q; logs:\n%s", tc.reason, l)
			}
			if _, err := os.Stat(target); err != nil {
				t.Errorf("the damaged file was not left in place: %v", err)
			}
			if i := slices.IndexFunc(want, func(ts time.Time) bool { return !ts.Before(lost[0]) }); i != 0 && len(want) > 0 {
				if i < 0 {
					i = len(want)
				}
				sameUpTo(t, orig, h, want[i-1])
			}
		})
	}
}

// waitSynced waits until d has brought its directory in line with h's
// current view.
func waitSynced(t *testing.T, h *History, d *Disk) {
	t.Helper()
	v := h.Load()
	deadline := time.Now().Add(10 * time.Second)
	for d.synced.Load() != v {
		if time.Now().After(deadline) {
			t.Fatal("the disk did not catch up with the history")
		}
		time.Sleep(time.Millisecond)
	}
}

// layoutsOf counts the distinct layouts of v's encoded blocks.
func layoutsOf(v *View) int {
	seen := map[*layout]bool{}
	for _, b := range v.blocks {
		if b.enc != nil {
			seen[b.lay] = true
		}
	}
	return len(seen)
}

// The directory holds the runs the history holds and their layouts, no
// more: a run's file goes when its last block leaves the retention, and a
// shorter retention at the next start deletes the files it drops.
func TestPersistRetention(t *testing.T) {
	snaps := mixedSnapshots(t)
	dir := t.TempDir()
	h := New(3 * time.Minute).WithCompression(shortRuns)
	d, err := h.Persist(dir)
	if err != nil {
		t.Fatal(err)
	}
	for k, s := range snaps {
		h.Append(s)
		waitSynced(t, h, d)
		v := h.Load()
		if got, want := len(files(t, dir, extRun)), v.Stats().Runs; got != want {
			t.Fatalf("after %d appends: %d run files for %d runs", k+1, got, want)
		}
		if got, want := len(files(t, dir, extLayout)), layoutsOf(v); got != want {
			t.Fatalf("after %d appends: %d layout files for %d layouts", k+1, got, want)
		}
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	if runs := len(files(t, dir, extRun)); runs == 0 || runs > 5 {
		t.Errorf("%d run files for three minutes in runs of six snapshots", runs)
	}
	reloaded, d2 := reopen(t, dir, 3*time.Minute, shortRuns, nil)
	d2.Close()
	sealed := reloaded.Load().Times()
	sameAfterHead(t, h, reloaded, snaps)

	shorter, _ := reopen(t, dir, time.Minute, shortRuns, nil)
	v := shorter.Load()
	var want []time.Time
	for _, ts := range sealed {
		if !ts.Before(sealed[len(sealed)-1].Add(-time.Minute)) {
			want = append(want, ts)
		}
	}
	if got := v.Times(); !slices.Equal(got, want) {
		t.Fatalf("reloaded with a shorter retention:\n got  %v\n want %v", got, want)
	}
	if got, want := len(files(t, dir, extRun)), v.Stats().Runs; got != want {
		t.Errorf("%d run files left for the %d runs loaded", got, want)
	}
}

// A rewind or the series budget that drops blocks of sealed runs drops them
// on disk too: a restart does not bring them back, whether it comes before
// another run is sealed (the runs after the new time are deleted, the one
// it falls in is cut) or after, and even if the cut was lost (a load drops
// what a later run's time says was rewound).
func TestPersistDropsStayDropped(t *testing.T) {
	snaps := mixedSnapshots(t)
	for _, tc := range []struct {
		name    string
		back    time.Duration // the rewind's time, from simT0
		fixes   int           // snapshots appended from it on
		loseCut bool
	}{
		{"into a sealed run, restarted at once", 8*step + 5*time.Second, 2, false},
		{"onto a sealed block, restarted at once", 20 * step, 1, false},
		{"past the whole history", -time.Minute, 2, false},
		{"into a sealed run, runs sealed after", 8*step + 5*time.Second, 20, false},
		{"the cut lost in a crash", 8*step + 5*time.Second, 20, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			h := persisted(t, dir, time.Hour, shortRuns, append(slices.Clone(snaps[:40]), corrections(t, simT0.Add(tc.back), tc.fixes)...))
			if h.Dropped(Rewound) == 0 {
				t.Fatal("no rewind")
			}
			if tc.loseCut {
				cuts := files(t, dir, extCut)
				if len(cuts) == 0 {
					t.Fatal("no cut file")
				}
				for _, f := range cuts {
					os.Remove(f)
				}
			}
			sealed := encodedTimes(h.Load())
			reloaded, _ := reopen(t, dir, time.Hour, shortRuns, nil)
			if got := reloaded.Load().Times(); !slices.Equal(got, sealed) {
				t.Fatalf("reloaded times:\n got  %v\n want %v", got, sealed)
			}
			if len(sealed) > 0 {
				sameUpTo(t, h, reloaded, sealed[len(sealed)-1])
			}
		})
	}
	t.Run("series budget", func(t *testing.T) {
		dir := t.TempDir()
		h := New(time.Hour).WithCompression(Compression{RunBlocks: 2, Spread: 1, MinRun: 1, MinBatch: 1}).WithMaxSeries(30)
		d, err := h.Persist(dir)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range churn(t) {
			h.Append(s)
			waitSynced(t, h, d)
		}
		d.Close()
		if h.Dropped(SeriesBudget) == 0 {
			t.Fatal("nothing dropped")
		}
		sealed := encodedTimes(h.Load())
		reloaded, _ := reopen(t, dir, time.Hour, shortRuns, nil)
		if got := reloaded.Load().Times(); !slices.Equal(got, sealed) || len(sealed) == 0 {
			t.Fatalf("reloaded times:\n got  %v\n want %v", got, sealed)
		}
		if got, want := len(files(t, dir, extLayout)), layoutsOf(reloaded.Load()); got != want {
			t.Errorf("%d layout files for %d layouts", got, want)
		}
	})
}

// A directory that cannot be written costs the history nothing: appends
// go on, each failure is counted and the first logged, the runs that left
// the history meanwhile are counted as unwritten, and once the directory is
// back the runs still held are written, after diskRetry.
func TestPersistWriteFailures(t *testing.T) {
	snaps := mixedSnapshots(t)[:50]
	dir := filepath.Join(t.TempDir(), "history")
	var clock atomic.Int64
	clock.Store(simT0.UnixNano())
	var logs testproc.LockedBuffer
	h := New(2 * time.Minute).WithCompression(shortRuns).WithLogger(slog.New(slog.NewTextHandler(&logs, nil)))
	h.drops.now = func() time.Time { return time.Unix(0, clock.Load()) }
	d, err := h.Persist(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	for _, s := range snaps[:30] {
		h.Append(s)
		waitSynced(t, h, d)
	}
	st := d.Stats()
	if st.Failures == 0 || st.RunsWritten != 0 || st.Unwritten == 0 || h.Load().Stats().Runs == 0 {
		t.Fatalf("while the directory is gone: %+v, %+v", st, h.Load().Stats())
	}
	if n := strings.Count(logs.String(), "Writing a history run failed"); n != 1 {
		t.Errorf("failure logged %d times; logs:\n%s", n, logs.String())
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	h.Append(snaps[30])
	waitSynced(t, h, d)
	if got := d.Stats(); got.Failures != st.Failures || got.RunsWritten != 0 {
		t.Errorf("tried again within %s: %+v", diskRetry, got)
	}
	clock.Add(int64(diskRetry))
	for _, s := range snaps[31:] {
		h.Append(s)
		waitSynced(t, h, d)
	}
	d.Close()
	if st := d.Stats(); st.RunsWritten == 0 {
		t.Fatalf("nothing written once the directory was back: %+v", st)
	}
	reloaded, _ := reopen(t, dir, 2*time.Minute, shortRuns, nil)
	sameAfterHead(t, h, reloaded, snaps)
}

// What a restart may lose is the head: the blocks after the newest sealed
// one. With the default compression at fabric scale (a run's encoding
// spread over Spread appends), the disk is never more than RunBlocks +
// Spread - 1 snapshots behind the history's newest, and is that far just
// before each run seals.
func TestPersistLosesAtMostTheHead(t *testing.T) {
	c := DefaultCompression
	c.MinBatch = 1 // as at fabric scale, where Spread sets the batch
	h := New(time.Hour).WithCompression(c)
	d, err := h.Persist(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	cols := allColumns()
	switches := 15 * 4 // series a multiple of Spread: a run takes Spread appends
	var s *snapshot.Snapshot
	behind := 0
	for k := range 200 {
		s = historytest.BenchSnapshot(t, switches, k, cols, s)
		h.Append(s)
		waitSynced(t, h, d)
		n := 0
		for _, ts := range h.Load().Times() {
			if ts.After(d.Stats().SealedThrough) {
				n++
			}
		}
		behind = max(behind, n)
	}
	if want := c.RunBlocks + c.Spread - 1; behind != want {
		t.Errorf("the disk was up to %d snapshots behind, want %d", behind, want)
	}
}
