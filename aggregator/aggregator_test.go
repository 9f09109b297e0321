package aggregator

import (
	"context"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/common/model"

	"github.com/fabrictelemetry/aggregator/config"
	"github.com/fabrictelemetry/aggregator/history"
	"github.com/fabrictelemetry/aggregator/ingest"
	"github.com/fabrictelemetry/aggregator/internal/testproc"
	"github.com/fabrictelemetry/aggregator/queryapi"
	"github.com/fabrictelemetry/aggregator/schema"
	"github.com/fabrictelemetry/aggregator/simulator"
	"github.com/fabrictelemetry/aggregator/snapshot"
)

var t0 = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)

// fakeSource is a simulator served on loopback whose time the test controls.
type fakeSource struct {
	sim  *simulator.Simulator
	url  string
	ufm  bool
	tick time.Time
}

func newFakeSource(t *testing.T, switches, ports int, seed uint64) *fakeSource {
	t.Helper()
	sim, err := simulator.New(simulator.Config{Switches: switches, Ports: ports, Seed: int64(seed)})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(sim.Handler())
	t.Cleanup(srv.Close)
	f := &fakeSource{sim: sim, url: srv.URL + "/counters", ufm: ports > 0, tick: t0}
	if f.ufm {
		f.url = srv.URL + "/csv/metrics"
	}
	f.advance()
	return f
}

// advance moves the source's fabric on by a second.
func (f *fakeSource) advance() {
	f.tick = f.tick.Add(time.Second)
	f.sim.Tick(f.tick)
}

// expected parses what the source serves now, as the aggregator must see it.
func (f *fakeSource) expected(t *testing.T) *snapshot.Snapshot {
	t.Helper()
	body, format := f.sim.Body(), ingest.FormatMatrix
	if f.ufm {
		body, format = f.sim.UFMBody(), ingest.FormatUFM
	}
	s, err := ingest.NewFormatParser(schema.Default(), format).Parse(body, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func sourceConfig(name, url string, labels map[string]string) config.Source {
	return config.Source{
		Name: name, URL: url, Format: config.FormatAuto, Shards: 1, Labels: labels,
		Interval: model.Duration(20 * time.Millisecond), Timeout: model.Duration(2 * time.Second), MaxBytes: 64 << 20,
	}
}

func testLogger(t *testing.T) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	return slog.New(slog.DiscardHandler)
}

// start runs an aggregator until the test ends.
func start(t *testing.T, cfg Config) *Aggregator {
	t.Helper()
	cfg.Logger = testLogger(t)
	a, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { _ = a.Run(ctx) })
	t.Cleanup(func() { cancel(); wg.Wait() })
	return a
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t *testing.T, what string, cond func() error) {
	t.Helper()
	var err error
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if err = cond(); err == nil {
			return
		}
	}
	t.Fatalf("%s: %v", what, err)
}

// containsSource checks that every row and value of want is in the view's
// part of the same kind, under want's labels plus the source's extra labels.
func containsSource(v *snapshot.View, want *snapshot.Snapshot, extra map[string]string) error {
	if v == nil {
		return fmt.Errorf("no view yet")
	}
	var part *snapshot.Snapshot
	for _, p := range v.Parts() {
		if snapshot.Subsystem(p.LabelNames()) == snapshot.Subsystem(want.LabelNames()) {
			part = p
		}
	}
	if part == nil {
		return fmt.Errorf("view has no %s part", snapshot.Subsystem(want.LabelNames()))
	}
	for row := range want.NumRows() {
		labels := map[string]string{}
		for i, name := range want.LabelNames() {
			labels[name] = want.RowLabels(row)[i]
		}
		for name, value := range extra {
			labels[name] = value
		}
		got := findRow(part, labels)
		if got < 0 {
			return fmt.Errorf("row %v missing", labels)
		}
		for col, name := range want.Columns() {
			c, ok := part.Column(name)
			if !ok {
				return fmt.Errorf("column %s missing", name)
			}
			if w, g := want.Value(row, col), part.Value(got, c); string(w.AppendText(nil)) != string(g.AppendText(nil)) || w.Present() != g.Present() {
				return fmt.Errorf("row %v column %s: have %s, want %s", labels, name, g.AppendText(nil), w.AppendText(nil))
			}
		}
	}
	return nil
}

func findRow(s *snapshot.Snapshot, labels map[string]string) int {
	start, end, ok := s.SwitchRows(labels[snapshot.SwitchLabel])
	if !ok {
		return -1
	}
	for row := start; row < end; row++ {
		match := true
		for i, name := range s.LabelNames() {
			if s.RowLabels(row)[i] != labels[name] {
				match = false
				break
			}
		}
		if match {
			return row
		}
	}
	return -1
}

// TestSourcesFailIndependently runs three sources: two per-port fabrics
// with the same switch names told apart by a fabric label, and a switch
// matrix. When one fails, the others keep updating and the failed one's
// last good part stays served, all in one view.
func TestSourcesFailIndependently(t *testing.T) {
	east := newFakeSource(t, 4, 3, 1)
	west := newFakeSource(t, 4, 3, 2)
	core := newFakeSource(t, 3, 0, 3)
	eastLabels, westLabels := map[string]string{"fabric": "east"}, map[string]string{"fabric": "west"}
	a := start(t, Config{Sources: []config.Source{
		sourceConfig("east", east.url, eastLabels),
		sourceConfig("west", west.url, westLabels),
		sourceConfig("core", core.url, nil),
	}})

	all := func() error {
		v := a.Store().Load()
		return errorsJoin(containsSource(v, east.expected(t), eastLabels),
			containsSource(v, west.expected(t), westLabels), containsSource(v, core.expected(t), nil))
	}
	eventually(t, "every source served", all)
	if parts := a.Store().Load().Parts(); len(parts) != 2 || !slices.Equal(parts[1].LabelNames(), []string{"switch_id", "port", "node_guid", "fabric"}) {
		t.Fatalf("view parts %d, per-port labels %v; want a switch part and a per-port part with the fabric label", len(parts), parts[len(parts)-1].LabelNames())
	}

	westBefore := west.expected(t)
	west.sim.SetMode(simulator.ModeError500)
	west.advance()
	east.advance()
	core.advance()
	eventually(t, "east and core updated while west fails", func() error {
		v := a.Store().Load()
		return errorsJoin(containsSource(v, east.expected(t), eastLabels), containsSource(v, core.expected(t), nil))
	})
	if err := containsSource(a.Store().Load(), westBefore, westLabels); err != nil {
		t.Errorf("west's last good part is not served while it fails: %v", err)
	}

	west.sim.SetMode(simulator.ModeOK)
	eventually(t, "west recovers", all)
}

func errorsJoin(errs ...error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// TestStorageSurvivesRestart: a second aggregator whose source is down
// serves the first one's last snapshot, with its original time, and a
// corrupt state file is reported and ignored.
func TestStorageSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	src := newFakeSource(t, 5, 0, 7)
	cfg := Config{Sources: []config.Source{sourceConfig("default", src.url, nil)}, StoragePath: dir}
	func() {
		first, err := New(withLogger(t, cfg))
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		done := make(chan struct{})
		go func() { _ = first.Run(ctx); close(done) }()
		want := src.expected(t)
		eventually(t, "first aggregator polled", func() error { return containsSource(first.Store().Load(), want, nil) })
		eventually(t, "state file written", func() error { _, err := os.Stat(filepath.Join(dir, "default.snapshot")); return err })
		cancel()
		<-done
	}()

	down := cfg
	down.Sources = []config.Source{sourceConfig("default", "http://127.0.0.1:1/counters", nil)}
	restarted := start(t, down)
	want := src.expected(t)
	eventually(t, "restored snapshot served", func() error { return containsSource(restarted.Store().Load(), want, nil) })
	if got := restarted.Store().Load().Time(); !got.Equal(want.Time()) {
		t.Errorf("restored snapshot has time %v, want the source's %v", got, want.Time())
	}

	if err := os.WriteFile(filepath.Join(dir, "default.snapshot"), []byte("FABRICSNAP\x01garbage"), 0o644); err != nil {
		t.Fatal(err)
	}
	var logs testproc.LockedBuffer
	corrupt := down
	corrupt.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	a, err := New(corrupt)
	if err != nil {
		t.Fatal(err)
	}
	a.restore()
	if a.Store().Load() != nil {
		t.Error("a corrupt state file was served")
	}
	if !strings.Contains(logs.String(), "Ignoring unreadable state file") {
		t.Errorf("corrupt state file not reported; logs:\n%s", logs.String())
	}
}

// TestStorageKeepsHistory: with a storage path, the sealed runs of a
// source's PromQL history survive a restart: the restarted aggregator's
// history is the first one's up to its newest sealed snapshot, then the
// restored last snapshot, before the first poll.
func TestStorageKeepsHistory(t *testing.T) {
	dir := t.TempDir()
	src := newFakeSource(t, 3, 0, 7)
	cfg := Config{Sources: []config.Source{sourceConfig("default", src.url, nil)}, StoragePath: dir}
	first, err := New(withLogger(t, cfg))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = first.Run(ctx); close(done) }()
	h := first.sources[0].history
	// Past one run: the small fabric's is sealed in the append that
	// completes it.
	for range history.DefaultCompression.RunBlocks + 5 {
		src.advance()
		eventually(t, "poll of the new time", func() error {
			if v := h.Load(); v.Len() == 0 || !v.Times()[v.Len()-1].Equal(src.tick) {
				return fmt.Errorf("history at %v, source at %s", v.Times(), src.tick)
			}
			return nil
		})
	}
	cancel()
	<-done
	disk := h.Disk()
	if disk == nil {
		t.Fatal("the history is not kept")
	}
	through := disk.Stats().SealedThrough
	var want []time.Time
	for _, ts := range h.Load().Times() {
		if !ts.After(through) {
			want = append(want, ts)
		}
	}
	if len(want) < history.DefaultCompression.RunBlocks {
		t.Fatalf("sealed through %s: %d snapshots", through, len(want))
	}
	want = append(want, src.tick) // the restored last snapshot

	down := cfg
	down.Sources = []config.Source{sourceConfig("default", "http://127.0.0.1:1/counters", nil)}
	restarted := start(t, down)
	eventually(t, "history kept", func() error {
		if got := restarted.sources[0].history.Load().Times(); !slices.Equal(got, want) {
			return fmt.Errorf("history after the restart:\n got  %v\n want %v", got, want)
		}
		return nil
	})
}

func withLogger(t *testing.T, cfg Config) Config {
	cfg.Logger = testLogger(t)
	return cfg
}

// TestMergeViewKeepsTheOtherKind: a poll of a switch-level source leaves
// the per-port merge as it was, so the caches built on it (the rendered
// exposition) survive.
func TestMergeViewKeepsTheOtherKind(t *testing.T) {
	ports1, ports2 := newFakeSource(t, 2, 2, 1), newFakeSource(t, 2, 2, 2)
	core := newFakeSource(t, 2, 0, 3)
	a := &Aggregator{cfg: Config{Logger: testLogger(t)}}
	for i, f := range []*fakeSource{ports1, ports2, core} {
		labelled, err := f.expected(t).WithLabels([]string{"fabric"}, []string{fmt.Sprint(i)}, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		a.sources = append(a.sources, &source{part: labelled})
	}
	a.served.Store(&a.sources)
	first := a.mergeView()
	core.advance()
	a.sources[2].part = core.expected(t)
	second := a.mergeView()
	if len(first.Parts()) != 2 || len(second.Parts()) != 2 {
		t.Fatalf("views have %d and %d parts, want 2", len(first.Parts()), len(second.Parts()))
	}
	if first.Parts()[0] == second.Parts()[0] {
		t.Error("the switch-level part was not merged again after its source polled")
	}
	if first.Parts()[1] != second.Parts()[1] {
		t.Error("a switch-level poll merged the per-port part again")
	}
}

// TestMethodNotAllowedSaysWhatIs: a 405's Allow header lists the methods
// of the path asked for.
func TestMethodNotAllowedSaysWhatIs(t *testing.T) {
	a, err := New(Config{Sources: []config.Source{sourceConfig("default", "http://127.0.0.1:1/counters", nil)}, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]string{
		"/metrics":               "GET, HEAD",
		"/api/v1/query?query=1":  "GET, POST",
		"/telemetry/ListMetrics": "GET, HEAD",
		"/api/v1/labels":         "GET, POST",
	} {
		rec := httptest.NewRecorder()
		a.Router().ServeHTTP(rec, httptest.NewRequest("PUT", path, nil))
		if rec.Code != 405 || rec.Header().Get("Allow") != want {
			t.Errorf("PUT %s: %d, Allow %q; want 405, Allow %q", path, rec.Code, rec.Header().Get("Allow"), want)
		}
	}
}

// TestExactRoutes: the fixed GET paths are served from the map, with the
// router's own handlers, and everything else still goes to the router.
func TestExactRoutes(t *testing.T) {
	a, err := New(Config{Sources: []config.Source{sourceConfig("default", "http://127.0.0.1:1/counters", nil)}, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	a.instrumentRoutes()
	e := newExactRoutes(a.Router())
	for _, path := range []string{"/telemetry/GetMetric", "/telemetry/ListMetrics", "/metrics", "/-/healthy", "/-/ready"} {
		if e.exact[path] == nil {
			t.Errorf("%s is not served from the map", path)
		}
	}
	for _, path := range []string{"/api/v1/query", "/api/v1/label/{name}/values"} {
		if e.exact[path] != nil {
			t.Errorf("%s is in the map, but takes POST or has variables", path)
		}
	}
	for _, tc := range []struct {
		method, target string
		want           int
	}{
		{"GET", "/-/healthy", 200},
		{"HEAD", "/-/healthy", 200},
		{"POST", "/-/healthy", 405},
		{"GET", "/telemetry/GetMetric?switch_id=SW-01", 400},
		{"GET", "/telemetry/GetMetric?switch_id=SW-01&metric_name=Rx_Bytes", 503},
		{"GET", "/nowhere", 404},
		{"GET", "/api/v1/query?query=1", 200},
	} {
		direct, fast := httptest.NewRecorder(), httptest.NewRecorder()
		a.Router().ServeHTTP(direct, httptest.NewRequest(tc.method, tc.target, nil))
		e.ServeHTTP(fast, httptest.NewRequest(tc.method, tc.target, nil))
		if fast.Code != tc.want || direct.Code != tc.want {
			t.Errorf("%s %s: %d through the map, %d through the router; want %d", tc.method, tc.target, fast.Code, direct.Code, tc.want)
		}
		if tc.target != "/api/v1/query?query=1" && fast.Body.String() != direct.Body.String() {
			t.Errorf("%s %s: answers differ:\n%s\n%s", tc.method, tc.target, fast.Body, direct.Body)
		}
	}
}

// TestReadyFollowsHistory: a source whose every snapshot is over its
// history's series budget is still served, but /-/ready fails once that has
// lasted historyDropPolls polls, naming the source and the reason. The same
// source within its budget stays ready however many polls it makes.
func TestReadyFollowsHistory(t *testing.T) {
	ready := func(a *Aggregator) (int, string) {
		rec := httptest.NewRecorder()
		a.ready(rec, httptest.NewRequest("GET", "/-/ready", nil))
		return rec.Code, rec.Body.String()
	}
	src := newFakeSource(t, 3, 0, 5) // 3 switches × 17 columns: 51 series
	cfg := func(budget int) Config {
		return Config{
			Sources:      []config.Source{sourceConfig("core", src.url, nil)},
			MaxStaleness: 100_000 * time.Hour, // the fake source's time is in the past
			Query:        queryapi.Options{MaxHistorySeries: budget},
		}
	}

	over := start(t, cfg(50))
	eventually(t, "/-/ready fails", func() error {
		if code, body := ready(over); code != 503 || !strings.Contains(body, `source "core"`) || !strings.Contains(body, "series_budget: a snapshot of 51 series") {
			return fmt.Errorf("%d %s", code, body)
		}
		return nil
	})
	if err := containsSource(over.Store().Load(), src.expected(t), nil); err != nil {
		t.Errorf("the snapshot over the budget is not served: %v", err)
	}
	if n := over.sources[0].history.Load().Len(); n != 0 {
		t.Errorf("the history holds %d snapshots over its budget", n)
	}

	within := start(t, cfg(51))
	for k := 1; k <= historyDropPolls+1; k++ {
		src.advance()
		eventually(t, "the history keeps the new snapshot", func() error {
			if n := within.sources[0].history.Load().Len(); n < k {
				return fmt.Errorf("%d snapshots", n)
			}
			return nil
		})
	}
	if code, body := ready(within); code != 200 {
		t.Errorf("within the budget: %d %s", code, body)
	}
}
