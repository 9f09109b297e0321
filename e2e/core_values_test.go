package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"testing"
	"time"
)

// TestValuesMatchSimulator checks ListMetrics and GetMetric against the
// simulator's own CSV, read with encoding/csv: same snapshot time, same
// switches in string order, every value (integers digit for digit).
func TestValuesMatchSimulator(t *testing.T) {
	t.Parallel()
	// A long interval keeps the body still while the test compares it.
	sim := StartSimulator(t, "--switches=120", "--interval=1h", "--incident-rate=0", "--seed=42")
	agg := StartAggregator(t, "--source.url="+sim.URL+"/counters", "--source.interval=200ms")
	WaitReady(t, agg, 20*time.Second)

	want, err := FetchSimCSV(context.Background(), sim)
	if err != nil {
		t.Fatal(err)
	}
	if len(want.IDs) != 120 {
		t.Fatalf("simulator serves %d switches, want 120", len(want.IDs))
	}
	var list *ListAnswer
	Eventually(t, 10*time.Second, 50*time.Millisecond, func() error {
		list = GetList(t, agg, "")
		if list.Timestamp != want.TimeText() {
			return fmt.Errorf("aggregator at %s, simulator at %s", list.Timestamp, want.TimeText())
		}
		return nil
	})

	t.Run("ListMetrics", func(t *testing.T) {
		if err := matchesCSV(list, want); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("ListMetrics filtered", func(t *testing.T) {
		ids := []string{want.IDs[7], want.IDs[0], want.IDs[len(want.IDs)-1]}
		metrics := []string{"Rx_Bytes", "Latency_Avg_uSec"}
		q := url.Values{"switch_id": ids, "metric_name": metrics}
		got := GetList(t, agg, q.Encode())
		if got.SwitchCount != len(ids) {
			t.Fatalf("switch_count %d, want %d", got.SwitchCount, len(ids))
		}
		sorted := []string{want.IDs[0], want.IDs[7], want.IDs[len(want.IDs)-1]}
		for i, sw := range got.Switches {
			if sw.SwitchID != sorted[i] {
				t.Errorf("switch %d: %s, want %s", i, sw.SwitchID, sorted[i])
			}
			if len(sw.Metrics) != len(metrics) {
				t.Errorf("%s: metrics %v, want only %v", sw.SwitchID, sw.Metrics, metrics)
			}
			for _, m := range metrics {
				if err := sameValue(want.Values[sw.SwitchID][m], sw.Metrics[m]); err != nil {
					t.Errorf("%s %s: %v", sw.SwitchID, m, err)
				}
			}
		}
	})
	t.Run("GetMetric every value", func(t *testing.T) {
		checked := 0
		for _, id := range want.IDs {
			for _, m := range want.Metrics {
				r := Get(t, agg.URL+"/telemetry/GetMetric?"+url.Values{"switch_id": {id}, "metric_name": {m}}.Encode())
				if r.Status != http.StatusOK {
					t.Fatalf("GetMetric %s %s: %d %s", id, m, r.Status, r.Body)
				}
				var got struct {
					SwitchID   string          `json:"switch_id"`
					MetricName string          `json:"metric_name"`
					Value      json.RawMessage `json:"value"`
					Timestamp  string          `json:"timestamp"`
					AgeSeconds float64         `json:"age_seconds"`
				}
				if err := json.Unmarshal(r.Body, &got); err != nil {
					t.Fatal(err)
				}
				if got.SwitchID != id || got.MetricName != m || got.Timestamp != want.TimeText() {
					t.Fatalf("GetMetric %s %s answered %s", id, m, r.Body)
				}
				if text := want.Values[id][m]; text == "" {
					if string(got.Value) != "null" {
						t.Errorf("%s %s: empty in CSV, GetMetric says %s", id, m, got.Value)
					}
				} else if err := sameValue(text, got.Value); err != nil {
					t.Errorf("GetMetric %s %s: %v", id, m, err)
				}
				// The snapshot's age is its source time to now; the
				// simulator stamped it when it started, within the test.
				if got.AgeSeconds < 0 || got.AgeSeconds > time.Since(time.UnixMilli(want.Timestamp)).Seconds()+1 {
					t.Errorf("age_seconds %v for a snapshot from %s", got.AgeSeconds, want.TimeText())
				}
				checked++
			}
		}
		t.Logf("%d values checked", checked)
	})
}
