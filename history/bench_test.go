package history

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"runtime"
	"testing"
	"time"

	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/storage"

	"github.com/fabrictelemetry/aggregator/ingest"
	"github.com/fabrictelemetry/aggregator/internal/historytest"
	"github.com/fabrictelemetry/aggregator/schema"
	"github.com/fabrictelemetry/aggregator/simulator"
	"github.com/fabrictelemetry/aggregator/snapshot"
)

func allColumns() []string {
	var cols []string
	for _, m := range schema.Default().Known() {
		if m.Name[:len("fabric_switch_")] == "fabric_switch_" {
			cols = append(cols, m.Column)
		}
	}
	return cols
}

func runQuery(b *testing.B, ng *promql.Engine, q storage.Queryable, qs string, at time.Time, want int) {
	b.Helper()
	for b.Loop() {
		qry, err := ng.NewInstantQuery(context.Background(), q, nil, qs, at)
		if err != nil {
			b.Fatal(err)
		}
		v, err := qry.Exec(context.Background()).Vector()
		if err != nil || len(v) != want {
			b.Fatalf("%d samples, err %v", len(v), err)
		}
		qry.Close()
	}
}

// BenchmarkSelective compares x{switch_id="…"} with the label index and with
// a scan of every series' labels, at 100k series (100,000 switches with one
// transmit_bytes series each) × 6 snapshots.
func BenchmarkSelective(b *testing.B) {
	h := New(time.Hour)
	historytest.AppendBenchFabric(b, h, historytest.BenchSwitches(), 6, []string{"Tx_Bytes"})
	ng := newEngine()
	qs := `fabric_switch_transmit_bytes_total{switch_id="` + historytest.BenchMiddle() + `"}`
	at := t0.Add(50 * time.Second)
	b.Run("index", func(b *testing.B) { runQuery(b, ng, queryable{h: h}, qs, at, 1) })
	b.Run("fullscan", func(b *testing.B) { runQuery(b, ng, queryable{h: h, fullScan: true}, qs, at, 1) })
}

// BenchmarkTopkRate is the dashboard's heaviest panel, topk(10, rate[1m]):
//
//	switches-100k/one-source    100k series × 6 snapshots in one history
//	switches-100k/two-sources   the same series (labelled fabric="a" and
//	                            "b") from two histories of 50k: the union's
//	                            merge against one-source (also labelled)
//	ports-2000x64/plain         the simulator's per-port fabric (128k
//	                            series), 12 polls, at the 11th
//	ports-2000x64/encoded       the same with polls 1-11 in one encoded run:
//	                            the window is all encoded, and the seek to
//	                            its start decodes from the run's start
func BenchmarkTopkRate(b *testing.B) {
	ng := newEngine()
	b.Run("switches-100k", func(b *testing.B) {
		const qs = "topk(10, rate(fabric_switch_transmit_bytes_total[1m]))"
		at := t0.Add(50 * time.Second)
		labelled := func(n int, fabrics ...string) []*History {
			var hs []*History
			for _, f := range fabrics {
				h := New(time.Hour)
				var s *snapshot.Snapshot
				for k := range 6 {
					s = historytest.BenchSnapshot(b, n, k, []string{"Tx_Bytes"}, s)
					h.Append(historytest.WithFabric(b, s, f))
				}
				hs = append(hs, h)
			}
			return hs
		}
		n := historytest.BenchSwitches()
		b.Run("one-source", func(b *testing.B) { runQuery(b, ng, Union(labelled(n, "a")...), qs, at, 10) })
		b.Run("two-sources", func(b *testing.B) { runQuery(b, ng, Union(labelled(n/2, "a", "b")...), qs, at, 10) })
	})
	b.Run("ports-2000x64", func(b *testing.B) {
		const qs = "topk(10, rate(fabric_port_transmit_bytes_total[1m]))"
		cfg := simulator.Config{Switches: historytest.BenchSize(2000, 20), Ports: historytest.BenchSize(64, 4), Seed: 1, IncidentRate: 0.002}
		snaps := simSnapshots(b, cfg, simT0, 12)
		at := simT0.Add(10 * step)
		for _, c := range []struct {
			name string
			comp Compression
		}{
			{"plain", Compression{}},
			{"encoded", Compression{RunBlocks: 11, Spread: 1, MinRun: 1, MinBatch: 1}},
		} {
			h := New(time.Hour).WithCompression(c.comp)
			for _, s := range snaps {
				h.Append(s)
			}
			b.Run(c.name, func(b *testing.B) { runQuery(b, ng, h.Queryable(), qs, at, 10) })
		}
	})
}

// BenchmarkHistoryBytesPerSample measures the heap a history's head keeps
// per stored sample (plain values, no encoding): 10,000 switches × every
// switch column, over 6 snapshots and over 60 (10 minutes at a 10s poll),
// layout and index included.
func BenchmarkHistoryBytesPerSample(b *testing.B) {
	cols := allColumns()
	switches := historytest.BenchSize(10_000, 100)
	snaps := make([]*snapshot.Snapshot, 60)
	for k := range snaps {
		var prev *snapshot.Snapshot
		if k > 0 {
			prev = snaps[k-1]
		}
		snaps[k] = historytest.BenchSnapshot(b, switches, k, cols, prev)
	}
	for _, n := range []int{6, 60} {
		b.Run(fmt.Sprintf("snapshots-%d", n), func(b *testing.B) {
			var perSample float64
			for b.Loop() {
				before := heapInUse()
				h := New(time.Hour).WithCompression(Compression{})
				for _, s := range snaps[:n] {
					h.Append(s)
				}
				perSample = float64(heapInUse()-before) / float64(h.Load().Samples())
				runtime.KeepAlive(h)
			}
			b.ReportMetric(perSample, "bytes/sample")
			b.ReportMetric(float64(switches*len(cols)), "series")
		})
	}
}

// BenchmarkHistoryEncoded appends an hour of the simulator's polls (360 at
// 10s; seed 1, the demo's incident rate) to a history with the default
// compression, as the aggregator does, and reports:
//
//	encoded-B/sample  bytes per sample of the encoded runs
//	xor-B/sample      the same runs as Prometheus XOR chunks (chunkenc,
//	                  timestamps as cell indexes), for comparison
//	head-B/sample     bytes per sample of the head's plain values
//	heap-MB           the heap the history holds at the end (after GC)
//	heap-B/sample     that over every sample in the history
//	plain-MB          what the history would hold with no encoding (8 bytes
//	                  a sample, the head's rate)
//	append-ms, append-max-ms  mean and slowest Append, encoding included
//
// ports-2000x64 is the per-port fabric (128k rows × 17 columns, 2.2M series
// per poll); its one iteration takes two to four minutes on two shared
// cores, allocates about 40 GB in all (most of it the simulator's bodies and
// their parses) and holds 2.5 GB at the end. With -short: 20 × 4 ports and
// 40 polls.
func BenchmarkHistoryEncoded(b *testing.B) {
	fabric := simulator.Config{Switches: historytest.BenchSize(2000, 20), Ports: historytest.BenchSize(64, 4), Seed: 1, IncidentRate: 0.002}
	for _, tc := range []struct {
		name  string
		cfg   simulator.Config
		polls int
		comp  Compression
	}{
		{"switches-50", simulator.Config{Switches: 50, Seed: 1, IncidentRate: 0.002}, 360, DefaultCompression},
		{"ports-2000x64", fabric, 360, DefaultCompression},
		// The baseline: ten minutes (an hour without encoding would hold
		// 6.3 GB) with no encoding, for the append time and the heap of
		// plain blocks.
		{"ports-2000x64-unencoded-10m", fabric, 60, Compression{}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			for b.Loop() {
				benchEncoded(b, tc.cfg, historytest.BenchSize(tc.polls, 40), tc.comp)
			}
		})
	}
}

func benchEncoded(b *testing.B, cfg simulator.Config, polls int, c Compression) {
	sim, err := simulator.New(cfg)
	if err != nil {
		b.Fatal(err)
	}
	p := ingest.NewParser(schema.Default())
	parse := func(k int) *snapshot.Snapshot {
		at := simT0.Add(time.Duration(k) * step)
		sim.Tick(at)
		s, err := p.Parse(sim.Body(), at)
		if err != nil {
			b.Fatal(err)
		}
		return s
	}
	s := parse(0)
	before := heapInUse()
	h := New(time.Hour).WithCompression(c)
	var total, slowest time.Duration
	for k := range polls {
		if k > 0 {
			s = parse(k)
		}
		start := time.Now()
		h.Append(s)
		d := time.Since(start)
		total += d
		slowest = max(slowest, d)
	}
	s = nil
	heap := float64(heapInUse() - before)
	v := h.Load()
	st := v.Stats()
	if st.EncodedSamples > 0 {
		b.ReportMetric(float64(st.EncodedBytes)/float64(st.EncodedSamples), "encoded-B/sample")
		b.ReportMetric(xorBytesPerSample(v, 2), "xor-B/sample")
	}
	b.ReportMetric(float64(st.PlainBytes)/float64(st.PlainSamples), "head-B/sample")
	b.ReportMetric(heap/1e6, "heap-MB")
	b.ReportMetric(heap/float64(v.Samples()), "heap-B/sample")
	b.ReportMetric(float64(8*v.Samples())/1e6, "plain-MB")
	b.ReportMetric(total.Seconds()*1e3/float64(polls), "append-ms")
	b.ReportMetric(slowest.Seconds()*1e3, "append-max-ms")
	runtime.KeepAlive(h)
}

// xorBytesPerSample re-encodes the first runs of v as XOR chunks.
func xorBytesPerSample(v *View, runs int) float64 {
	var last *encoded
	var bytes, samples int
	var dec decoder
	for _, b := range v.blocks {
		if b.enc == nil || b.enc == last {
			continue
		}
		if last = b.enc; runs == 0 {
			break
		}
		runs--
		cells := make([]float64, b.enc.cells)
		for id := range int32(b.lay.numSeries()) {
			for i := range cells {
				cells[i] = dec.at(b.enc, b.lay, id, i)
			}
			bytes += len(encodeXOR(nil, cells)) + 4 // with an offset per series, as Prometheus keeps chunk references
			samples += len(cells)
		}
	}
	return float64(bytes) / float64(samples)
}

func heapInUse() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// BenchmarkEncodeRun encodes one run (30 polls) of the simulator's per-port
// fabric at 200 switches × 64 ports (218k series), the work compress spreads
// over 15 appends, and decodes it again.
func BenchmarkEncodeRun(b *testing.B) {
	cfg := simulator.Config{Switches: historytest.BenchSize(200, 20), Ports: historytest.BenchSize(64, 4), Seed: 1, IncidentRate: 0.002}
	h := New(time.Hour).WithCompression(Compression{})
	for _, s := range simSnapshots(b, cfg, simT0, DefaultCompression.RunBlocks) { // one run
		h.Append(s)
	}
	blocks := h.Load().blocks
	cells := float64(len(blocks) * blocks[0].lay.numSeries())
	p := newPendingRun(blocks, 0)
	p.encode(math.MaxInt)
	r := p.finish()
	b.Run("encode", func(b *testing.B) {
		for b.Loop() {
			p := newPendingRun(blocks, len(r.data)*21/20) // sized from the last run, as compress does
			p.encode(math.MaxInt)
			r = p.finish()
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/cells, "ns/cell")
		b.ReportMetric(float64(r.bytes())/cells, "B/cell")
	})
	b.Run("decode", func(b *testing.B) {
		var dec decoder
		lay := blocks[0].lay
		for b.Loop() {
			for id := range int32(lay.numSeries()) {
				for i := range len(blocks) {
					dec.at(r, lay, id, i)
				}
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/cells, "ns/cell")
	})
}

// BenchmarkHistoryChurn appends polls of the per-port fabric whose switches
// are renamed on every poll (a layout of 1.8M series each, UFM's layout) to
// a history with the default series budget, as the aggregator does, and
// reports:
//
//	heap-B/series   the heap the history grew by over polls 1 to 4 (after
//	                GC; the budget holds five), per series it added
//	stats/heap      what View.Stats (fabric_history_bytes) counted over the
//	                same polls, over that heap
//	snapshots       the snapshots held after all polls (the rest went to
//	                the budget)
//	append-ms       mean Append
//
// With -short: 20 × 4 ports and a budget of five polls' series.
func BenchmarkHistoryChurn(b *testing.B) {
	cfg := simulator.Config{Switches: historytest.BenchSize(2000, 20), Ports: historytest.BenchSize(64, 4), Seed: 1}
	const polls = 12
	for b.Loop() {
		sim, err := simulator.New(cfg)
		if err != nil {
			b.Fatal(err)
		}
		p := ingest.NewParser(schema.Default())
		var h *History
		var total time.Duration
		var heap [2]uint64
		var stats [2]Stats
		for k := range polls {
			at := simT0.Add(time.Duration(k) * step)
			sim.Tick(at)
			body := bytes.ReplaceAll(sim.UFMBody(), []byte(",SW-"), fmt.Appendf(nil, ",G%06d-SW-", k))
			s, err := p.Parse(body, at)
			if err != nil {
				b.Fatal(err)
			}
			if h == nil {
				budget := DefaultMaxSeries
				if testing.Short() {
					budget = 5 * s.NumRows() * len(s.Metrics())
				}
				h = New(time.Hour).WithMaxSeries(budget)
			}
			start := time.Now()
			h.Append(s)
			total += time.Since(start)
			if k == 1 || k == 4 {
				i := min(k-1, 1)
				heap[i], stats[i] = heapInUse(), h.Load().Stats()
			}
		}
		grew := float64(heap[1]) - float64(heap[0])
		b.ReportMetric(grew/float64(stats[1].Series-stats[0].Series), "heap-B/series")
		b.ReportMetric(float64(stats[1].Bytes()-stats[0].Bytes())/grew, "stats/heap")
		b.ReportMetric(float64(h.Load().Len()), "snapshots")
		b.ReportMetric(total.Seconds()*1e3/polls, "append-ms")
	}
}
