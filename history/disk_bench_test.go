package history

import (
	"math"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/fabrictelemetry/aggregator/ingest"
	"github.com/fabrictelemetry/aggregator/internal/historytest"
	"github.com/fabrictelemetry/aggregator/schema"
	"github.com/fabrictelemetry/aggregator/simulator"
)

// perPortFabric is the simulator's per-port fabric of the issue, 2,000
// switches × 64 ports (128k rows × 17 columns, 2.2M series), or 20 × 4
// ports with -short.
func perPortFabric() simulator.Config {
	return simulator.Config{Switches: historytest.BenchSize(2000, 20), Ports: historytest.BenchSize(64, 4), Seed: 1, IncidentRate: 0.002}
}

// BenchmarkDiskWriteRun writes one sealed run of the per-port fabric (30
// polls) as a Disk does when the run seals: the run's file (its blocks'
// times and its encoded data: temporary file, write, fsync, rename), and
// the file of its layout, which a steady fabric writes once. It reports
// run-MB and layout-MB, the files' sizes, and encode-ms, what encoding the
// same run took the history (spread over 15 appends): the write is on the
// Disk's goroutine, never on the poller's.
func BenchmarkDiskWriteRun(b *testing.B) {
	h := New(time.Hour).WithCompression(Compression{})
	for _, s := range simSnapshots(b, perPortFabric(), simT0, DefaultCompression.RunBlocks) {
		h.Append(s)
	}
	blocks := h.Load().blocks
	start := time.Now()
	p := newPendingRun(blocks, 0)
	p.encode(math.MaxInt)
	r := p.finish()
	encode := time.Since(start)
	for i, bl := range blocks {
		blocks[i] = &block{t: bl.t, lay: bl.lay, enc: r, idx: i}
	}
	lay := blocks[0].lay
	dir := b.TempDir()
	write := func(b *testing.B, name string, kind byte, parts ...[]byte) {
		var n int
		for b.Loop() {
			var err error
			if n, err = writeFile(filepath.Join(dir, name), kind, parts...); err != nil {
				b.Fatal(err)
			}
		}
		b.SetBytes(int64(n))
		b.ReportMetric(float64(n)/1e6, name+"-MB")
		b.ReportMetric(encode.Seconds()*1e3, "encode-ms")
	}
	b.Run("run", func(b *testing.B) {
		write(b, "run", kindRunFile, encodeRunHead(0, r, blocks), r.data)
	})
	b.Run("layout", func(b *testing.B) {
		write(b, "layout", kindLayoutFile, encodeLayout(lay))
	})
}

// BenchmarkDiskLoadHour appends an hour of the per-port fabric's polls
// (360 at 10s) to a history kept on disk, as the aggregator does with
// --storage.path, waits for the runs to be written, then loads a new
// history from the directory, as a restart does, and reports:
//
//	load-s            Persist's load: every file read, checked (CRC32C,
//	                  the runs' series) and its layout indexed
//	append-s          the 360 Appends that built the history (encoding
//	                  included, parsing not)
//	load/append       their ratio
//	append-max-ms     the slowest Append, its Disk running beside it
//	disk-MB           the directory's size
//	loaded-snapshots  the snapshots loaded (the sealed ones)
//
// The history written is let go and collected before the load, as in a
// new process. The files are in the page cache, as right after they were
// written; a cold start adds reading disk-MB from the disk. One iteration takes three to four
// minutes and holds about 4 GB at its peak. With -short: 20 × 4 ports, 40
// polls.
func BenchmarkDiskLoadHour(b *testing.B) {
	polls := historytest.BenchSize(360, 40)
	for b.Loop() {
		dir := b.TempDir()
		sim, err := simulator.New(perPortFabric())
		if err != nil {
			b.Fatal(err)
		}
		parser := ingest.NewParser(schema.Default())
		h := New(time.Hour)
		d, err := h.Persist(dir)
		if err != nil {
			b.Fatal(err)
		}
		var appending, slowest time.Duration
		for k := range polls {
			at := simT0.Add(time.Duration(k) * step)
			sim.Tick(at)
			s, err := parser.Parse(sim.Body(), at)
			if err != nil {
				b.Fatal(err)
			}
			start := time.Now()
			h.Append(s)
			took := time.Since(start)
			appending += took
			slowest = max(slowest, took)
		}
		if err := d.Close(); err != nil {
			b.Fatal(err)
		}
		sealed := len(encodedTimes(h.Load()))
		h, d = nil, nil // as in a new process: the history written is gone
		runtime.GC()

		start := time.Now()
		loaded := New(time.Hour)
		ld, err := loaded.Persist(dir)
		if err != nil {
			b.Fatal(err)
		}
		load := time.Since(start)
		ld.Close()
		if n := loaded.Load().Len(); n != sealed {
			b.Fatalf("loaded %d snapshots of %d sealed", n, sealed)
		}
		b.ReportMetric(load.Seconds(), "load-s")
		b.ReportMetric(appending.Seconds(), "append-s")
		b.ReportMetric(load.Seconds()/appending.Seconds(), "load/append")
		b.ReportMetric(slowest.Seconds()*1e3, "append-max-ms")
		b.ReportMetric(float64(dirBytes(b, dir))/1e6, "disk-MB")
		b.ReportMetric(float64(sealed), "loaded-snapshots")
	}
}

func dirBytes(b *testing.B, dir string) int64 {
	entries, err := os.ReadDir(dir)
	if err != nil {
		b.Fatal(err)
	}
	var n int64
	for _, e := range entries {
		if info, err := e.Info(); err == nil {
			n += info.Size()
		}
	}
	return n
}
