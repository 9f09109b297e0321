package exporter

import (
	"bytes"
	"math"
	"testing"

	"github.com/prometheus/common/expfmt"

	"github.com/fabrictelemetry/aggregator/snapshot"
)

// oddFixture has label values that need escaping and values at the edges of
// float formatting, under one label so that the snapshot's row order is the
// order Gather sorts metrics in, and the outputs can be compared byte for byte.
func oddFixture(t testing.TB) *snapshot.Store {
	store := &snapshot.Store{}
	publish(t, store, []string{"switch_id"},
		[]string{"Latency_Avg_uSec", "Bandwidth_Util_Pct", "Rx_Bytes", "Temperature_C", "Odd Column \"x\"\\y"},
		[][]any{
			{`quote"d`, uint64(1234), 99.9, uint64(math.MaxUint64), math.NaN(), 1.0},
			{`back\slash`, 1.5, 0.0, uint64(1), math.Inf(1), -1.0},
			{"new\nline", uint64(0), math.Copysign(0, -1), uint64(123456789), math.Inf(-1), 5e-324},
			{"plain", nil, 1e23, uint64(9007199254740993), -40.25, 1e21},
			{"ünïcödé", uint64(7), 100.0, nil, 1e-7, 123456.0},
		})
	return store
}

func TestRenderEqualsCollectorBytes(t *testing.T) {
	store := oddFixture(t)
	mfs, err := newPedantic(t, NewCollector(store)).Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name        string
		openMetrics bool
		encode      func(*bytes.Buffer, *dtoFamily) error
	}{
		{"text", false, func(b *bytes.Buffer, mf *dtoFamily) error { _, err := expfmt.MetricFamilyToText(b, mf); return err }},
		{"openmetrics", true, func(b *bytes.Buffer, mf *dtoFamily) error {
			_, err := expfmt.MetricFamilyToOpenMetrics(b, mf)
			return err
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var want bytes.Buffer
			for _, mf := range mfs {
				if err := tc.encode(&want, mf); err != nil {
					t.Fatal(err)
				}
			}
			got, skipped := renderView(t, store, tc.openMetrics)
			if skipped != 0 {
				t.Errorf("skipped %d series", skipped)
			}
			if !bytes.Equal(got, want.Bytes()) {
				t.Errorf("rendered exposition differs from expfmt's\n--- rendered\n%s\n--- expfmt\n%s", got, want.Bytes())
			}
		})
	}
}

// TestRenderEqualsCollectorContent covers several labels, where Gather orders
// series differently from the snapshot, and a row client_golang rejects.
func TestRenderEqualsCollectorContent(t *testing.T) {
	store := &snapshot.Store{}
	publish(t, store, []string{"switch_id", "port"}, []string{"Rx_Bytes", "Xmit_Wait", "Latency_Max_uSec"},
		[][]any{
			{"sw-2", "10", uint64(10), uint64(3), 0.5},
			{"sw-2", "9", uint64(9), nil, 1.0},
			{"sw-1", "1", uint64(1), uint64(4), 2.0},
			{"sw-1", "bad\xff", uint64(1), uint64(4), 2.0},
			{"sw-\"1\"", "2", uint64(2), uint64(5), 3.0},
		})
	want := canonical(t, gatherMap(t, newPedantic(t, NewCollector(store))))
	for _, format := range []expfmt.Format{expfmt.FmtText, expfmt.FmtOpenMetrics_1_0_0} {
		body, skipped := renderView(t, store, format.FormatType() == expfmt.TypeOpenMetrics)
		if skipped != 3 {
			t.Errorf("%s: skipped %d series, want the 3 of the bad row", format, skipped)
		}
		if format.FormatType() == expfmt.TypeOpenMetrics {
			body = append(body, "# EOF\n"...)
		}
		if got := canonical(t, decode(t, body, format)); got != want {
			t.Errorf("%s: rendered content differs from the collector's\n--- rendered\n%s\n--- collector\n%s", format, got, want)
		}
	}
}

func TestRenderEmptyColumnHasNoFamily(t *testing.T) {
	store := &snapshot.Store{}
	publish(t, store, []string{"switch_id"}, []string{"Power_W", "Rx_Bytes"}, [][]any{{"a", nil, uint64(1)}})
	body, _ := renderView(t, store, false)
	if bytes.Contains(body, []byte("power_watts")) {
		t.Errorf("family of an all-absent column rendered:\n%s", body)
	}
}
