package exporter

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"

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

// sink copies what is written into a scratch buffer, as a socket write
// copies into the kernel, so that every method pays for moving its bytes.
type sink struct {
	header  http.Header
	scratch [32 << 10]byte
	n       int64
}

func (s *sink) Header() http.Header { return s.header }
func (s *sink) WriteHeader(int)     {}
func (s *sink) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		p = p[copy(s.scratch[:], p):]
	}
	s.n += int64(n)
	return n, nil
}

// onlyReader hides bytes.Reader's WriteTo so io.Copy moves the bytes.
type onlyReader struct{ io.Reader }

func BenchmarkMetrics(b *testing.B) {
	store := benchStore()
	b.Logf("%d series", store.Load().Series())

	b.Run("floor_copy_rendered", func(b *testing.B) {
		data, _ := renderSnapshot(store.Load(), false)
		w := &sink{}
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
			h := e.Handler()
			req := httptest.NewRequest(http.MethodGet, "/metrics", nil)
			req.Header.Set("Accept", tc.accept)
			req.Header.Set("Accept-Encoding", tc.encoding)
			w := &sink{header: http.Header{}}
			h.ServeHTTP(w, req) // renders the snapshot: the first scrape's cost, measured below
			b.SetBytes(w.n)
			b.ReportAllocs()
			for b.Loop() {
				w.n = 0
				h.ServeHTTP(w, req)
			}
		})
	}
	b.Run("render_text_once_per_snapshot", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			renderSnapshot(store.Load(), false)
		}
	})
	b.Run("gzip_once_per_snapshot", func(b *testing.B) {
		b.ReportAllocs()
		x := &exposition{snap: store.Load()}
		x.body(encText)
		for b.Loop() {
			x.gzip[encText] = lazy[gzipPart]{}
			x.gzipped(encText)
		}
	})
	b.Run("gather_and_encode", func(b *testing.B) {
		reg := prometheus.NewRegistry()
		reg.MustRegister(NewCollector(store))
		w := &sink{}
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
