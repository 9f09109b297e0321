package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"

	"github.com/fabrictelemetry/aggregator/exporter"
	"github.com/fabrictelemetry/aggregator/ingest"
	"github.com/fabrictelemetry/aggregator/internal/benchsink"
	"github.com/fabrictelemetry/aggregator/schema"
	"github.com/fabrictelemetry/aggregator/snapshot"
)

// growthResult is one size of the growth table, measured by the growth
// subcommand in a fresh process: the source is served by the parent, so
// the child's memory is the aggregator's alone.
type growthResult struct {
	Name      string  `json:"name"`
	PerPort   bool    `json:"per_port"` // the UFM layout, else the switch matrix
	Rows      int     `json:"rows"`
	Series    int     `json:"series"`
	BodyBytes int     `json:"body_bytes"`
	Cycles    int     `json:"cycles"`
	IngestNs  float64 `json:"ingest_ns"` // median poll cycle: fetch, parse, build, swap
	ParseNs   float64 `json:"parse_ns"`  // its parse and build phase
	// The /metrics handler, text format, into a sink that copies every
	// byte as a socket write would.
	FirstScrapeNs    float64 `json:"first_scrape_ns"` // the first scrape after a poll renders the snapshot
	FirstScrapeAlloc float64 `json:"first_scrape_alloc"`
	ScrapeNs         float64 `json:"scrape_ns"` // later scrapes serve the rendered bytes
	ScrapeAlloc      float64 `json:"scrape_alloc"`
	ScrapeBytes      int     `json:"scrape_bytes"`
	CopyNs           float64 `json:"copy_ns"`   // copying the rendered bytes into the same sink
	GatherNs         float64 `json:"gather_ns"` // client_golang Registry.Gather + expfmt text
	GatherAlloc      float64 `json:"gather_alloc"`
	SnapshotHeap     float64 `json:"snapshot_heap"` // live heap of the published snapshot
	RSS              float64 `json:"rss"`           // after the polls and scrapes, before Gather
	PeakRSS          float64 `json:"peak_rss"`
}

// growthRun measures every size, each in its own process.
func growthRun(ctx context.Context, o options, log io.Writer) ([]growthResult, error) {
	type size struct {
		name            string
		switches, ports int
	}
	// The switch matrix at three sizes, then the per-port UFM layout at a
	// tenth of the fabric and at the fabric: linearity is judged between
	// sizes of one layout, since a UFM row costs more than a matrix row.
	sizes := []size{{"50 switches", 50, 0}, {"500 switches", 500, 0}, {"5,000 switches", 5000, 0},
		{fmt.Sprintf("per-port %d × %d", max(o.fabricSwitches/10, 1), o.fabricPorts), max(o.fabricSwitches/10, 1), o.fabricPorts},
		{fmt.Sprintf("fabric %d × %d ports", o.fabricSwitches, o.fabricPorts), o.fabricSwitches, o.fabricPorts}}
	if o.short {
		sizes[0], sizes[1], sizes[2] = size{"5 switches", 5, 0}, size{"50 switches", 50, 0}, size{"200 switches", 200, 0}
	}
	minTime := "1s"
	if o.short {
		minTime = "10ms"
	}
	var out []growthResult
	for _, sz := range sizes {
		src, err := newSource(sz.switches, sz.ports, 2)
		if err != nil {
			return nil, err
		}
		c, err := startChild(ctx, log, "growth", "-source", src.url, "-name", sz.name, "-mintime", minTime)
		if err != nil {
			src.close()
			return nil, err
		}
		var r growthResult
		err = c.read(&r)
		if serr := c.stop(nil); err == nil {
			err = serr
		}
		src.close()
		if err != nil {
			return nil, err
		}
		fmt.Fprintf(log, "%-24s %8d series: ingest %s, first scrape %s, scrape %s, heap %s, RSS %s\n", r.Name, r.Series,
			fmtSeconds(r.IngestNs/1e9), fmtSeconds(r.FirstScrapeNs/1e9), fmtSeconds(r.ScrapeNs/1e9), fmtBytes(r.SnapshotHeap), fmtBytes(r.RSS))
		r.PerPort = sz.ports > 0
		out = append(out, r)
	}
	return out, nil
}

func growthMain(args []string) int {
	fs := flag.NewFlagSet("growth", flag.ContinueOnError)
	src := fs.String("source", "", "CSV source URL")
	name := fs.String("name", "", "name of this size")
	minTime := fs.Duration("mintime", time.Second, "least time spent on each repeated measurement")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	r, err := growthMeasure(*src, *minTime)
	if err != nil {
		fmt.Fprintln(os.Stderr, "benchtable growth:", err)
		return 1
	}
	r.Name = *name
	_ = json.NewEncoder(os.Stdout).Encode(r)
	_, _ = io.Copy(io.Discard, os.Stdin)
	return 0
}

func growthMeasure(src string, minTime time.Duration) (*growthResult, error) {
	r := &growthResult{}
	base := heapLive()
	store := &snapshot.Store{}
	p := &ingest.Poller{
		Source:  "bench",
		Fetcher: &ingest.Fetcher{URL: src, MaxBytes: 1 << 30, Client: &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone()}},
		Parser:  ingest.NewParser(schema.Default()), Interval: time.Hour, Timeout: time.Minute,
		Publish: store.Publish, Logger: slog.New(slog.DiscardHandler),
	}
	var totals, parses []float64
	err := repeat(minTime, 3, func() error {
		c := p.Poll(context.Background())
		if c.Err != nil {
			return c.Err
		}
		totals = append(totals, float64(c.Total))
		parses = append(parses, float64(c.Parse))
		r.BodyBytes = c.Bytes
		return nil
	})
	if err != nil {
		return nil, err
	}
	r.Cycles, r.IngestNs, r.ParseNs = len(totals), median(totals), median(parses)
	view := store.Load()
	r.Series = view.Series()
	for _, part := range view.Parts() {
		r.Rows += part.NumRows()
	}
	p.Fetcher.Client.CloseIdleConnections()
	p = nil // the fetch buffer and the parser's state go; the store keeps the snapshot
	r.SnapshotHeap = heapLive() - base

	e := exporter.New(store, exporter.Options{})
	h := e.Handler()
	req := httptest.NewRequest(http.MethodGet, "/metrics", nil)
	w := benchsink.New()
	a0 := totalAlloc()
	t0 := time.Now()
	h.ServeHTTP(w, req)
	r.FirstScrapeNs = float64(time.Since(t0))
	r.FirstScrapeAlloc = totalAlloc() - a0
	r.ScrapeBytes = int(w.N)
	var scrapes []float64
	a0 = totalAlloc()
	_ = repeat(minTime, 3, func() error {
		t := time.Now()
		w.N = 0
		h.ServeHTTP(w, req)
		scrapes = append(scrapes, float64(time.Since(t)))
		return nil
	})
	r.ScrapeAlloc = (totalAlloc() - a0) / float64(len(scrapes))
	r.ScrapeNs = median(scrapes)

	var rendered bytes.Buffer
	h.ServeHTTP(&bufWriter{header: http.Header{}, buf: &rendered}, req)
	data := rendered.Bytes()
	var copies []float64
	_ = repeat(minTime, 3, func() error {
		t := time.Now()
		_, err := io.Copy(w, onlyReader{bytes.NewReader(data)})
		copies = append(copies, float64(time.Since(t)))
		return err
	})
	r.CopyNs = median(copies)
	rendered = bytes.Buffer{}
	data = nil
	r.RSS, r.PeakRSS = procStatus("VmRSS"), procStatus("VmHWM")

	reg := prometheus.NewRegistry()
	reg.MustRegister(exporter.NewCollector(store))
	var gathers []float64
	a0 = totalAlloc()
	err = repeat(minTime, 1, func() error {
		t := time.Now()
		mfs, err := reg.Gather()
		if err != nil {
			return err
		}
		enc := expfmt.NewEncoder(w, expfmt.NewFormat(expfmt.TypeTextPlain))
		for _, mf := range mfs {
			if err := enc.Encode(mf); err != nil {
				return err
			}
		}
		gathers = append(gathers, float64(time.Since(t)))
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("gather: %w", err)
	}
	r.GatherAlloc = (totalAlloc() - a0) / float64(len(gathers))
	r.GatherNs = median(gathers)
	return r, nil
}

// repeat runs f at least n times and until minTime has passed (at most
// 10,000 times).
func repeat(minTime time.Duration, n int, f func() error) error {
	start := time.Now()
	for i := 0; i < n || (time.Since(start) < minTime && i < 10_000); i++ {
		if err := f(); err != nil {
			return err
		}
	}
	return nil
}

func heapLive() float64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return float64(m.HeapAlloc)
}

func totalAlloc() float64 {
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return float64(m.TotalAlloc)
}

// procStatus reads a kB field of /proc/self/status, in bytes (NaN where
// there is no such file).
func procStatus(field string) float64 {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return math.NaN()
	}
	for _, line := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, field+":"); ok {
			kb, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 64)
			if err == nil {
				return kb * 1024
			}
		}
	}
	return math.NaN()
}

type bufWriter struct {
	header http.Header
	buf    *bytes.Buffer
}

func (b *bufWriter) Header() http.Header         { return b.header }
func (b *bufWriter) WriteHeader(int)             {}
func (b *bufWriter) Write(p []byte) (int, error) { return b.buf.Write(p) }

// onlyReader hides bytes.Reader's WriteTo so io.Copy moves the bytes in
// 32 KiB chunks.
type onlyReader struct{ io.Reader }

// growthRows judges linearity: at each size, the cost per series must be
// at most 1.5× the previous size's (fixed costs make small sizes dearer per
// series, so only a rise is a problem). One row per measure, its worst
// step; then the fabric's /metrics figures (item 4 at fabric scale).
func growthRows(rs []growthResult) []row {
	measures := []struct {
		name string
		get  func(growthResult) float64
		unit func(float64) string
	}{
		{"ingest time (poll cycle)", func(r growthResult) float64 { return r.IngestNs / 1e9 }, fmtSeconds},
		{"scrape time (first scrape after a poll: render + write)", func(r growthResult) float64 { return r.FirstScrapeNs / 1e9 }, fmtSeconds},
		{"scrape time (cached exposition)", func(r growthResult) float64 { return r.ScrapeNs / 1e9 }, fmtSeconds},
		{"snapshot heap", func(r growthResult) float64 { return r.SnapshotHeap }, fmtBytes},
		{"process RSS", func(r growthResult) float64 { return r.RSS }, fmtBytes},
	}
	var rows []row
	var chains []string
	for i, r := range rs {
		switch {
		case i == 0:
			chains = append(chains, r.Name)
		case r.PerPort != rs[i-1].PerPort:
			chains = append(chains, "; "+r.Name)
		default:
			chains = append(chains, " → "+r.Name)
		}
	}
	for _, m := range measures {
		worst, at := math.Inf(-1), 0
		for i := 1; i < len(rs); i++ {
			if rs[i].PerPort != rs[i-1].PerPort {
				continue // another layout: not a step of the same work
			}
			prev := m.get(rs[i-1]) / float64(rs[i-1].Series)
			cur := m.get(rs[i]) / float64(rs[i].Series)
			if step := cur / prev; step > worst {
				worst, at = step, i
			}
		}
		if at == 0 {
			continue
		}
		a, b := rs[at-1], rs[at]
		rows = append(rows, row{item: "7",
			figure:   fmt.Sprintf("growth of %s per series, worst step of %s", m.name, strings.Join(chains, "")),
			value:    fmt.Sprintf("%s: %s per series (%s)", b.Name, m.unit(m.get(b)/float64(b.Series)), m.unit(m.get(b))),
			baseline: fmt.Sprintf("%s: %s per series (%s)", a.Name, m.unit(m.get(a)/float64(a.Series)), m.unit(m.get(a))),
			ratio:    worst, target: atMost(1.5)})
	}
	last := rs[len(rs)-1]
	series := fmtCount(float64(last.Series))
	rows = append(rows,
		row{item: "4", figure: fmt.Sprintf("/metrics, %s (%s series, %s): cached scrape vs copying the rendered bytes", last.Name, series, fmtBytes(float64(last.ScrapeBytes))),
			value: fmtSeconds(last.ScrapeNs / 1e9), baseline: "copy: " + fmtSeconds(last.CopyNs/1e9),
			ratio: last.ScrapeNs / last.CopyNs, target: atMost(10)},
		row{item: "4", figure: fmt.Sprintf("/metrics, %s: first scrape after a poll (render) vs copying the rendered bytes", last.Name),
			value: fmtSeconds(last.FirstScrapeNs / 1e9), baseline: "copy: " + fmtSeconds(last.CopyNs/1e9),
			ratio: last.FirstScrapeNs / last.CopyNs},
		row{item: "4", figure: fmt.Sprintf("/metrics, %s: speedup of a cached scrape over client_golang Gather + text encoding", last.Name),
			value: fmtSeconds(last.ScrapeNs / 1e9), baseline: "Gather + expfmt: " + fmtSeconds(last.GatherNs/1e9),
			ratio: last.GatherNs / last.ScrapeNs, target: atLeast(10)},
		row{item: "4", figure: fmt.Sprintf("/metrics, %s: speedup of the first scrape (render included) over Gather + text encoding", last.Name),
			value: fmtSeconds(last.FirstScrapeNs / 1e9), baseline: "Gather + expfmt: " + fmtSeconds(last.GatherNs/1e9),
			ratio: last.GatherNs / last.FirstScrapeNs, target: atLeast(10)},
		row{item: "4", figure: fmt.Sprintf("/metrics, %s: memory allocated by the first scrape (render) / by a cached scrape; ratio: times less than Gather + encode", last.Name),
			value:    fmtBytes(last.FirstScrapeAlloc) + " / " + fmtBytes(last.ScrapeAlloc),
			baseline: "Gather + expfmt: " + fmtBytes(last.GatherAlloc),
			ratio:    last.GatherAlloc / last.FirstScrapeAlloc},
	)
	return rows
}

func writeGrowthTable(w io.Writer, rs []growthResult) {
	fmt.Fprintln(w, "| size | rows | series | CSV | ingest | per series | first scrape | per series | cached scrape | snapshot heap | per series | RSS (peak) |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|---|---|---|---|---|---|")
	for _, r := range rs {
		s := float64(r.Series)
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s (%s) |\n",
			r.Name, fmtCount(float64(r.Rows)), fmtCount(s), fmtBytes(float64(r.BodyBytes)),
			fmtSeconds(r.IngestNs/1e9), fmtSeconds(r.IngestNs/1e9/s),
			fmtSeconds(r.FirstScrapeNs/1e9), fmtSeconds(r.FirstScrapeNs/1e9/s),
			fmtSeconds(r.ScrapeNs/1e9), fmtBytes(r.SnapshotHeap), fmtBytes(r.SnapshotHeap/s), fmtBytes(r.RSS), fmtBytes(r.PeakRSS))
	}
}
