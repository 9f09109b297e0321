package exporter

import (
	"bytes"
	"errors"
	"io"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"

	"github.com/fabrictelemetry/aggregator/snapshot"
)

type dtoFamily = dto.MetricFamily

func newPedantic(t testing.TB, cs ...prometheus.Collector) *prometheus.Registry {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	for _, c := range cs {
		if err := reg.Register(c); err != nil {
			t.Fatal(err)
		}
	}
	return reg
}

// decode parses an exposition in the given format with expfmt, failing on
// a duplicate family.
func decode(t testing.TB, body []byte, format expfmt.Format) map[string]*dto.MetricFamily {
	t.Helper()
	dec := expfmt.NewDecoder(bytes.NewReader(body), format)
	out := map[string]*dto.MetricFamily{}
	for {
		mf := &dto.MetricFamily{}
		err := dec.Decode(mf)
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatalf("decoding %s: %v\n%s", format, err, head(body))
		}
		if _, dup := out[mf.GetName()]; dup {
			t.Fatalf("family %s twice", mf.GetName())
		}
		out[mf.GetName()] = mf
	}
}

func head(b []byte) []byte {
	if len(b) > 2000 {
		return b[:2000]
	}
	return b
}

// canonical writes families as text in a fixed order (families by name,
// metrics by label set), so that two expositions can be compared whatever
// order their series came in.
func canonical(t testing.TB, fams map[string]*dto.MetricFamily) string {
	t.Helper()
	names := make([]string, 0, len(fams))
	for n := range fams {
		names = append(names, n)
	}
	slices.Sort(names)
	var b strings.Builder
	for _, n := range names {
		mf := fams[n]
		slices.SortFunc(mf.Metric, func(x, y *dto.Metric) int { return strings.Compare(labelKey(x), labelKey(y)) })
		if _, err := expfmt.MetricFamilyToText(&b, mf); err != nil {
			t.Fatal(err)
		}
	}
	return b.String()
}

func labelKey(m *dto.Metric) string {
	var b strings.Builder
	for _, lp := range m.Label {
		b.WriteString(lp.GetName() + "\x00" + lp.GetValue() + "\x00")
	}
	return b.String()
}

// gatherMap gathers g, ignoring errors (invalid metrics are reported and
// left out; what is left is what a ContinueOnError handler serves).
func gatherMap(t testing.TB, g prometheus.Gatherer) map[string]*dto.MetricFamily {
	t.Helper()
	mfs, _ := g.Gather()
	out := make(map[string]*dto.MetricFamily, len(mfs))
	for _, mf := range mfs {
		out[mf.GetName()] = mf
	}
	return out
}

// renderView renders the data part of /metrics for the store's current view
// as the handler serves it, and counts the series the rendering skipped.
func renderView(t testing.TB, store snapshot.Loader, openMetrics bool) (body []byte, skipped int) {
	t.Helper()
	c := &expositionCache{store: store, onRender: func(_ bool, n int) { skipped += n }}
	x := c.get()
	if x == nil {
		return nil, 0
	}
	enc := encText
	if openMetrics {
		enc = encOpenMetrics
	}
	var b bytes.Buffer
	if err := x.writeBody(&b, enc); err != nil {
		t.Fatal(err)
	}
	return b.Bytes(), skipped
}
