package aggregator

import (
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"net/url"
	"testing"
	"time"

	"github.com/fabrictelemetry/aggregator/config"
	"github.com/fabrictelemetry/aggregator/queryapi"
)

// With --query.self-metrics-interval set, the query API answers for the
// aggregator's own metrics as Prometheus would after scraping it: the
// snapshot's time as fabric_snapshot_timestamp_seconds, the source's health,
// with the job and instance labels of the scrape.
func TestSelfMetricsInQueryAPI(t *testing.T) {
	src := newFakeSource(t, 3, 0, 1)
	a := start(t, Config{
		Sources: []config.Source{sourceConfig("default", src.url, nil)},
		Query:   queryapi.Options{SelfMetricsInterval: 10 * time.Millisecond, SelfMetricsInstance: "agg.example:8080"},
	})
	query := func(q string) (map[string]string, float64, error) {
		rec := httptest.NewRecorder()
		a.Router().ServeHTTP(rec, httptest.NewRequest("GET", "/api/v1/query?query="+url.QueryEscape(q), nil))
		var resp struct {
			Data struct {
				Result []struct {
					Metric map[string]string `json:"metric"`
					Value  [2]any            `json:"value"`
				} `json:"result"`
			} `json:"data"`
		}
		if err := json.Unmarshal(rec.Body.Bytes(), &resp); err != nil {
			return nil, 0, err
		}
		if len(resp.Data.Result) != 1 {
			return nil, 0, fmt.Errorf("%s: %s", q, rec.Body)
		}
		var v float64
		_, err := fmt.Sscan(resp.Data.Result[0].Value[1].(string), &v)
		return resp.Data.Result[0].Metric, v, err
	}
	eventually(t, "snapshot time in the query API", func() error {
		view := a.Store().Load()
		if view == nil {
			return fmt.Errorf("no view yet")
		}
		metric, v, err := query("fabric_snapshot_timestamp_seconds")
		if err != nil {
			return err
		}
		if want := float64(view.Time().UnixNano()) / 1e9; v != want {
			return fmt.Errorf("fabric_snapshot_timestamp_seconds %v, want %v", v, want)
		}
		if metric["job"] != queryapi.DefaultSelfMetricsJob || metric["instance"] != "agg.example:8080" {
			return fmt.Errorf("labels %v", metric)
		}
		return nil
	})
	eventually(t, "source up in the query API", func() error {
		metric, v, err := query(`fabric_source_up{source="default"}`)
		if err == nil && (v != 1 || metric["job"] != queryapi.DefaultSelfMetricsJob) {
			err = fmt.Errorf("%v %v", metric, v)
		}
		return err
	})
}
