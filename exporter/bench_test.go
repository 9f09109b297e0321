package exporter

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"

	"github.com/fabrictelemetry/aggregator/internal/benchsink"
	"github.com/fabrictelemetry/aggregator/schema"
	"github.com/fabrictelemetry/aggregator/snapshot"
)

const (
	benchSwitches = 60_000 // × 17 default columns ≈ 1M series
)

var benchStore = sync.OnceValue(func() *snapshot.Store {
	// The switch matrix's 17 columns, as the simulator sends them.
	table := schema.Default()
	var columns []string
	var known []schema.Metric
	for _, m := range table.Known() {
		if strings.HasPrefix(m.Name, schema.Namespace+"_"+schema.SwitchSubsystem+"_") {
			columns = append(columns, m.Column)
			known = append(known, m)
		}
	}
	b := snapshot.NewBuilder([]string{snapshot.SwitchLabel}, columns, benchSwitches)
	for i := range benchSwitches {
		row := b.AddRow(fmt.Sprintf("switch-%05d", i))
		for col, m := range known {
			v := snapshot.UintValue(uint64(i)*1_000_003 + uint64(col)*7919)
			if m.Type == schema.Gauge {
				v = snapshot.FloatValue(float64(i%1000)/7 + float64(col))
			}
			b.Set(row, col, v)
		}
	}
	metrics, _ := table.Resolve(schema.SwitchSubsystem, columns)
	snap, err := b.Build(time.Unix(1700000000, 0), metrics)
	if err != nil {
		panic(err)
	}
	s := &snapshot.Store{}
	s.Publish(snap)
	return s
})

// onlyReader hides bytes.Reader's WriteTo so io.Copy moves the bytes.
type onlyReader struct{ io.Reader }

// The fabric at scale: 2,000 switches × 64 ports, as a switch matrix source
// and a per-port UFM Telemetry source with a fabric label make it. The view
// has two parts: 2,000 rows × the matrix's 17 columns, and 128,000 port
// rows × UFM's 14 counters (1,826,000 series in all). With -short (make
// bench-short runs every benchmark once, so that none rots) 50 switches.
const (
	fabricSwitches = 2_000
	fabricPorts    = 64
)

var fabricStore = sync.OnceValue(func() *snapshot.Store {
	fabricSwitches := fabricSwitches
	if testing.Short() {
		fabricSwitches = 50
	}
	table := schema.Default()
	var switchCols, portCols []string
	for _, m := range table.Known() {
		switch {
		case strings.HasPrefix(m.Name, schema.Namespace+"_"+schema.SwitchSubsystem+"_"):
			switchCols = append(switchCols, m.Column)
		case strings.HasPrefix(m.Name, schema.Namespace+"_"+schema.PortSubsystem+"_"):
			portCols = append(portCols, m.Column)
		}
	}
	sw := snapshot.NewBuilder([]string{snapshot.SwitchLabel, "fabric"}, switchCols, fabricSwitches)
	ports := snapshot.NewBuilder([]string{snapshot.SwitchLabel, snapshot.PortLabel, "node_guid", "fabric"}, portCols, fabricSwitches*fabricPorts)
	for i := range fabricSwitches {
		id := fmt.Sprintf("SW-%04d", i+1)
		row := sw.AddRow(id, "east")
		for col := range switchCols {
			sw.Set(row, col, snapshot.UintValue(uint64(i)*1_000_003+uint64(col)*7919))
		}
		guid := fmt.Sprintf("0x%016x", 0x0002c90300000000+uint64(i))
		for port := range fabricPorts {
			row := ports.AddRow(id, strconv.Itoa(port+1), guid, "east")
			for col := range portCols {
				ports.Set(row, col, snapshot.UintValue(uint64(i*fabricPorts+port)*1_000_003+uint64(col)*7919))
			}
		}
	}
	switchMetrics, _ := table.Resolve(schema.SwitchSubsystem, switchCols)
	portMetrics, _ := table.Resolve(schema.PortSubsystem, portCols)
	swSnap, err := sw.Build(time.Unix(1700000000, 0), switchMetrics)
	if err != nil {
		panic(err)
	}
	portSnap, err := ports.Build(time.Unix(1700000001, 0), portMetrics)
	if err != nil {
		panic(err)
	}
	s := &snapshot.Store{}
	s.PublishView(snapshot.NewView(swSnap, portSnap))
	return s
})

// BenchmarkMetrics measures /metrics at 1M series in one part.
func BenchmarkMetrics(b *testing.B) { benchMetrics(b, benchStore()) }

// BenchmarkMetricsFabric measures /metrics at fabric scale, a view of a
// switch-level and a per-port part, and the first scrape after one source
// published a new part while the other part stayed.
func BenchmarkMetricsFabric(b *testing.B) {
	store := fabricStore()
	benchMetrics(b, store)
	for _, tc := range []struct{ name, encoding string }{
		{"served_text_after_switch_poll", ""},
		{"served_text_gzip_after_switch_poll", "gzip"},
	} {
		b.Run(tc.name, func(b *testing.B) {
			// A store of its own, so the shared one keeps its view.
			parts := store.Load().Parts()
			own := &snapshot.Store{}
			own.PublishView(snapshot.NewView(parts...))
			e := New(own, Options{})
			e.AddSource("default")
			h := e.Handler()
			req := httptest.NewRequest(http.MethodGet, "/metrics", nil)
			req.Header.Set("Accept-Encoding", tc.encoding)
			w := benchsink.New()
			h.ServeHTTP(w, req) // the port part is rendered (and compressed) once, here
			b.SetBytes(w.N)
			b.ReportAllocs()
			// The switch source's next polls: new snapshots, the same rows.
			polls := [2]*snapshot.Snapshot{pollAgain(b, parts[0]), pollAgain(b, parts[0])}
			for i := 0; b.Loop(); i++ {
				own.PublishView(snapshot.NewView(polls[i%2], parts[1]))
				w.N = 0
				h.ServeHTTP(w, req)
			}
		})
	}
}

func benchMetrics(b *testing.B, store *snapshot.Store) {
	b.Logf("%d series in %d parts", store.Load().Series(), len(store.Load().Parts()))

	b.Run("floor_copy_rendered", func(b *testing.B) {
		data, _ := renderView(b, store, false)
		w := &benchsink.Writer{}
		b.SetBytes(int64(len(data)))
		b.ReportAllocs()
		for b.Loop() {
			if _, err := io.Copy(w, onlyReader{bytes.NewReader(data)}); err != nil {
				b.Fatal(err)
			}
		}
	})
	for _, tc := range []struct{ name, accept, encoding string }{
		{"served_text", "", ""},
		{"served_openmetrics", acceptOpenMetrics, ""},
		{"served_text_gzip", "", "gzip"},
	} {
		b.Run(tc.name, func(b *testing.B) {
			e := New(store, Options{})
			e.AddSource("default") // self-metrics as the aggregator serves them
			h := e.Handler()
			req := httptest.NewRequest(http.MethodGet, "/metrics", nil)
			req.Header.Set("Accept", tc.accept)
			req.Header.Set("Accept-Encoding", tc.encoding)
			w := benchsink.New()
			h.ServeHTTP(w, req) // renders the view: the first scrape's cost, measured below
			b.SetBytes(w.N)
			b.ReportAllocs()
			for b.Loop() {
				w.N = 0
				h.ServeHTTP(w, req)
			}
		})
	}
	b.Run("render_text_once_per_snapshot", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			// Every part anew, label sets included, as a first scrape.
			for _, s := range (&expositionCache{store: store}).get().segs {
				s.body(encText)
			}
		}
	})
	b.Run("gzip_once_per_snapshot", func(b *testing.B) {
		b.ReportAllocs()
		x := (&expositionCache{store: store}).get()
		for _, s := range x.segs {
			s.body(encText)
		}
		for b.Loop() {
			for _, s := range x.segs {
				s.flate[encText] = lazy[deflated]{}
				s.deflated(encText)
			}
		}
	})
	b.Run("gather_and_encode", func(b *testing.B) {
		reg := prometheus.NewRegistry()
		reg.MustRegister(NewCollector(store))
		w := &benchsink.Writer{}
		b.ReportAllocs()
		for b.Loop() {
			mfs, err := reg.Gather()
			if err != nil {
				b.Fatal(err)
			}
			enc := expfmt.NewEncoder(w, expfmt.FmtText)
			for _, mf := range mfs {
				if err := enc.Encode(mf); err != nil {
					b.Fatal(err)
				}
			}
		}
	})
}
