package exporter

import (
	"bytes"
	"hash/crc32"
	"log/slog"
	"math/rand/v2"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
	"github.com/prometheus/common/expfmt"

	"github.com/fabrictelemetry/aggregator/schema"
	"github.com/fabrictelemetry/aggregator/snapshot"
)

// twoPartFixture is a view as two sources make it: a switch-level part whose
// rows carry the extra label fabric, except one from a source without it,
// and a per-port UFM part, newer, whose one row from a matrix source has no
// node_guid. Empty label values are labels a row's source does not have.
func twoPartFixture(t testing.TB) *snapshot.Store {
	switches := build(t, []string{"switch_id", "fabric"}, []string{"Temperature_C", "Rx_Bytes"},
		[][]any{
			{"sw-2", "", 41.0, nil},
			{"sw-1", "east", 40.5, uint64(100)},
		})
	ports := buildAt(t, fixtureTime.Add(time.Second), []string{"switch_id", "port", "node_guid", "fabric"},
		[]string{"PortXmitDataExtended", "LinkDownedCounterExtended"},
		[][]any{
			{"sw-1", "1", "0x0002c90300000001", "east", uint64(10), uint64(0)},
			{"sw-1", "2", "0x0002c90300000001", "east", uint64(20), uint64(1)},
			{"sw-3", "1", "", "west", uint64(30), nil},
		})
	store := &snapshot.Store{}
	store.PublishView(snapshot.NewView(switches, ports))
	return store
}

// twoPartExposition is twoPartFixture's data part, written out by hand:
// families in name order as Gather gives them (the per-port part, the view
// gauges, the switch-level part), each once; the gauges once for the view
// (the per-port part's newer time, switches sw-1 to sw-3, 8 series); no
// label with an empty value; UFM's 4-octet words as bytes.
const twoPartExposition = `# HELP fabric_port_link_downed_total Times the link went down (UFM LinkDownedCounterExtended). Cached from the last successful poll of the source.
# TYPE fabric_port_link_downed_total counter
fabric_port_link_downed_total{fabric="east",node_guid="0x0002c90300000001",port="1",switch_id="sw-1"} 0
fabric_port_link_downed_total{fabric="east",node_guid="0x0002c90300000001",port="2",switch_id="sw-1"} 1
# HELP fabric_port_transmit_bytes_total Bytes transmitted (UFM PortXmitDataExtended, 4-octet words, ×4). Cached from the last successful poll of the source.
# TYPE fabric_port_transmit_bytes_total counter
fabric_port_transmit_bytes_total{fabric="east",node_guid="0x0002c90300000001",port="1",switch_id="sw-1"} 40
fabric_port_transmit_bytes_total{fabric="east",node_guid="0x0002c90300000001",port="2",switch_id="sw-1"} 80
fabric_port_transmit_bytes_total{fabric="west",port="1",switch_id="sw-3"} 120
# HELP fabric_snapshot_series Data series (present values) in the snapshot parts served on this endpoint, all parts together, cached from the last successful polls.
# TYPE fabric_snapshot_series gauge
fabric_snapshot_series 8
# HELP fabric_snapshot_switches Distinct switches in the snapshot parts served on this endpoint (switch-level and per-port), cached from the last successful polls.
# TYPE fabric_snapshot_switches gauge
fabric_snapshot_switches 3
# HELP fabric_snapshot_timestamp_seconds Source time of the newest snapshot part served on this endpoint, in seconds since the epoch (its newest row timestamp, or its poll time if the source gives none).
# TYPE fabric_snapshot_timestamp_seconds gauge
fabric_snapshot_timestamp_seconds 1.7000000015e+09
# HELP fabric_switch_receive_bytes_total Bytes received (source column Rx_Bytes). Cached from the last successful poll of the source.
# TYPE fabric_switch_receive_bytes_total counter
fabric_switch_receive_bytes_total{fabric="east",switch_id="sw-1"} 100
# HELP fabric_switch_temperature_celsius Temperature in degrees Celsius (source column Temperature_C). Cached from the last successful poll of the source.
# TYPE fabric_switch_temperature_celsius gauge
fabric_switch_temperature_celsius{fabric="east",switch_id="sw-1"} 40.5
fabric_switch_temperature_celsius{switch_id="sw-2"} 41
`

// TestTwoPartView renders a two-part view and holds it to the hand-written
// exposition, to the Collector's Gather output (same series, text and
// OpenMetrics), to promlint and to promtool check metrics.
func TestTwoPartView(t *testing.T) {
	store := twoPartFixture(t)
	body, skipped := renderView(t, store, false)
	if skipped != 0 {
		t.Errorf("skipped %d series", skipped)
	}
	if string(body) != twoPartExposition {
		t.Errorf("rendered two-part view differs\n--- rendered\n%s\n--- want\n%s", body, twoPartExposition)
	}
	if err := testutil.CollectAndCompare(NewCollector(store), strings.NewReader(twoPartExposition)); err != nil {
		t.Errorf("collector: %v", err)
	}
	want := collectorFamilies(t, store)
	for _, format := range []expfmt.Format{expfmt.FmtText, expfmt.FmtOpenMetrics_1_0_0} {
		body, _ := renderView(t, store, format.FormatType() == expfmt.TypeOpenMetrics)
		if format.FormatType() == expfmt.TypeOpenMetrics {
			body = append(body, "# EOF\n"...)
		}
		if got := canonical(t, decode(t, body, format)); got != want { // decode fails on a family seen twice
			t.Errorf("%s: rendered content differs from the collector's\n--- rendered\n%s\n--- collector\n%s", format, got, want)
		}
		if bytes.Contains(body, []byte(`=""`)) {
			t.Errorf("%s: an empty label value is rendered", format)
		}
	}
	problems, err := promlint.New(bytes.NewReader(body)).Lint()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("lint: %s: %s", p.Metric, p.Text)
	}
	promtoolCheckMetrics(t, body)
}

// promtoolCheckMetrics pipes an exposition through promtool check metrics
// from the tools module. The first build of promtool takes minutes, so it
// is skipped with -short.
func promtoolCheckMetrics(t *testing.T, body []byte) {
	t.Helper()
	if testing.Short() {
		t.Log("-short: promtool check metrics skipped")
		return
	}
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "tools", "go.mod")); err != nil {
		t.Skip("tools/go.mod missing: promtool is not available")
	}
	cmd := exec.CommandContext(t.Context(), "go", "tool", "-modfile=tools/go.mod", "promtool", "check", "metrics")
	cmd.Dir = root
	cmd.Stdin = bytes.NewReader(body)
	out, err := cmd.CombinedOutput()
	if err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Errorf("promtool check metrics: %v\n%s", err, out)
	}
}

// pollAgain is s as the next poll of a steady source gives it: a new
// snapshot whose rows are shared with s.
func pollAgain(t testing.TB, s *snapshot.Snapshot) *snapshot.Snapshot {
	t.Helper()
	b := snapshot.NewBuilder(s.LabelNames(), s.Columns(), s.NumRows())
	for row := range s.NumRows() {
		r := b.AddRow(s.RowLabels(row)...)
		for col := range s.Columns() {
			b.Set(r, col, s.Value(row, col))
		}
	}
	b.ShareIndex(s)
	next, err := b.Build(s.Time(), s.Metrics())
	if err != nil {
		t.Fatal(err)
	}
	return next
}

// TestPartCache: a part the next view keeps is not rendered again, and a
// new part with the same rows takes over the rendered label sets.
func TestPartCache(t *testing.T) {
	store := twoPartFixture(t)
	switches, ports := store.Load().Parts()[0], store.Load().Parts()[1]
	renders := 0
	c := &expositionCache{store: store, onRender: func(bool, int) { renders++ }}
	render := func() *exposition {
		t.Helper()
		x := c.get()
		for _, s := range x.segs {
			s.body(encText)
			s.deflated(encText)
		}
		return x
	}
	segOf := func(x *exposition, snap *snapshot.Snapshot) *segment {
		t.Helper()
		for _, s := range x.segs {
			if s.snap == snap {
				return s
			}
		}
		t.Fatalf("no segment of %p", snap)
		return nil
	}

	x1 := render()
	if renders != 2 {
		t.Fatalf("first view: %d parts rendered, want 2", renders)
	}
	// The per-port source polls again: new values, the same rows.
	ports2 := pollAgain(t, ports)
	store.PublishView(snapshot.NewView(switches, ports2))
	renders = 0
	x2 := render()
	if renders != 1 {
		t.Errorf("second view: %d parts rendered, want the new one alone", renders)
	}
	if segOf(x2, switches) != segOf(x1, switches) {
		t.Error("the unchanged switch-level part got a new segment")
	}
	if segOf(x2, ports2).labels != segOf(x1, ports).labels {
		t.Error("the new per-port part with the same rows did not take over the label sets")
	}
	// The switch-level source sends other rows: nothing to carry over.
	switches3 := build(t, []string{"switch_id", "fabric"}, []string{"Temperature_C"}, [][]any{{"sw-9", "east", 30.0}})
	store.PublishView(snapshot.NewView(switches3, ports2))
	x3 := render()
	if segOf(x3, switches3).labels == segOf(x2, switches).labels {
		t.Error("a part with other rows shares the label sets")
	}
	if segOf(x3, ports2) != segOf(x2, ports2) {
		t.Error("the unchanged per-port part got a new segment")
	}
	body, _ := renderView(t, store, false)
	if !bytes.Contains(body, []byte(`fabric_switch_temperature_celsius{fabric="east",switch_id="sw-9"} 30`)) ||
		bytes.Contains(body, []byte(`switch_id="sw-2"`)) {
		t.Errorf("the exposition does not follow the new part:\n%s", body)
	}
}

// TestHandlerViews serves views through the handler in every format and
// encoding: the data equals the collector's, also for a two-part view.
func TestHandlerViews(t *testing.T) {
	for _, tc := range []struct {
		name  string
		store func(testing.TB) *snapshot.Store
	}{
		{"one part", oddFixture},
		{"two parts", twoPartFixture},
		{"no parts", func(testing.TB) *snapshot.Store {
			s := &snapshot.Store{}
			s.PublishView(snapshot.NewView())
			return s
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			store := tc.store(t)
			_, srv := newServer(t, store)
			want := collectorFamilies(t, store)
			for _, accept := range []string{"", acceptOpenMetrics} {
				for _, encoding := range []string{"identity", "gzip"} {
					r := scrape(t, srv.URL, accept, encoding) // gzip: CRC and length checked
					format := expfmt.Format(r.header.Get("Content-Type"))
					if got := servedData(t, r.body, format); got != want {
						t.Errorf("%s %s: served data differs from the collector's\n--- served\n%s\n--- collector\n%s", format, encoding, got, want)
					}
				}
			}
		})
	}
}

// TestFamilyClashBetweenParts: a schema file can give a column the same
// name in both kinds of source. The exposition must still list each family
// once: the switch-level part keeps the name, the per-port part's series of
// it are left out (by the Collector too), and a warning says so.
func TestFamilyClashBetweenParts(t *testing.T) {
	table := schema.Default().Clone()
	table.Add(schema.Metric{Column: "Fan", Name: "fabric_fan_speed_rpm", Type: schema.Gauge, Scale: 1, Help: "Fan speed.", Known: true})
	part := func(labelNames []string, rows ...[]string) *snapshot.Snapshot {
		b := snapshot.NewBuilder(labelNames, []string{"Fan", "Temperature_C"}, len(rows))
		for i, r := range rows {
			row := b.AddRow(r...)
			b.Set(row, 0, snapshot.IntValue(int64(1000+i)))
			b.Set(row, 1, snapshot.IntValue(int64(40+i)))
		}
		metrics, _ := table.Resolve(snapshot.Subsystem(labelNames), []string{"Fan", "Temperature_C"})
		s, err := b.Build(fixtureTime, metrics)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	store := &snapshot.Store{}
	store.PublishView(snapshot.NewView(
		part([]string{"switch_id"}, []string{"sw-1"}),
		part([]string{"switch_id", "port"}, []string{"sw-1", "1"}, []string{"sw-1", "2"}),
	))
	var logs bytes.Buffer
	e := New(store, Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	srv := httptest.NewServer(e.Handler())
	t.Cleanup(srv.Close)
	for range 2 {
		r := scrape(t, srv.URL, "", "gzip")
		got := servedData(t, r.body, expfmt.FmtText)
		if want := collectorFamilies(t, store); got != want {
			t.Errorf("served data differs from the collector's\n--- served\n%s\n--- collector\n%s", got, want)
		}
		fans := decode(t, r.body, expfmt.FmtText)["fabric_fan_speed_rpm"].GetMetric()
		if len(fans) != 1 || len(fans[0].GetLabel()) != 1 {
			t.Errorf("fabric_fan_speed_rpm: want the switch-level series alone, got %v", fans)
		}
		if !strings.Contains(got, "fabric_port_temperature_celsius") {
			t.Error("the per-port part's other families are missing")
		}
	}
	if n := strings.Count(logs.String(), "fabric_fan_speed_rpm"); n != 1 {
		t.Errorf("clash logged %d times, want once per change:\n%s", n, logs.String())
	}
}

// TestCRC32Combine holds crc32Combine to the CRC of the concatenation.
func TestCRC32Combine(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, n := range [][2]int{{0, 0}, {0, 5}, {5, 0}, {1, 1}, {3, 1000}, {1 << 16, 77}, {100, 1<<20 + 3}} {
		a, b := make([]byte, n[0]), make([]byte, n[1])
		for i := range a {
			a[i] = byte(rng.Uint32())
		}
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		want := crc32.ChecksumIEEE(append(append([]byte{}, a...), b...))
		if got := crc32Combine(crc32.ChecksumIEEE(a), crc32.ChecksumIEEE(b), len(b)); got != want {
			t.Errorf("lengths %v: %08x, want %08x", n, got, want)
		}
	}
}
