package queryapi

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"testing"
	"time"

	"github.com/fabrictelemetry/aggregator/simulator"

	"github.com/fabrictelemetry/aggregator/internal/testproc"
)

// TestEndToEnd builds the real aggregator, points it at a simulator on a
// loopback port, and checks PromQL answers against values read from the
// simulator's CSV bodies with encoding/csv.
func TestEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the aggregator binary")
	}
	sim, err := simulator.New(simulator.Config{Switches: 5, Interval: time.Hour, Seed: 42})
	if err != nil {
		t.Fatal(err)
	}
	src := httptest.NewServer(sim.Handler())
	t.Cleanup(src.Close)
	base := startAggregator(t, src.URL+"/counters")

	// Simulated polls 10s apart, after the one the simulator rendered at
	// start-up, so none is older than what the aggregator already has.
	start := time.Now().Add(time.Minute).Truncate(time.Second)
	var csvs []map[string]map[string]string
	for k := range 3 {
		at := start.Add(time.Duration(k) * 10 * time.Second)
		sim.Tick(at)
		csvs = append(csvs, parseCSV(t, sim.Body()))
		waitForSnapshot(t, base, at)
	}
	last := start.Add(20 * time.Second)

	// Instant values are the CSV's, scaled as /metrics scales them.
	for id, row := range csvs[2] {
		for _, c := range []struct {
			query string
			want  float64
		}{
			{`fabric_switch_transmit_bytes_total{switch_id="` + id + `"}`, csvFloat(t, row["Tx_Bytes"])},
			{`fabric_switch_latency_average_seconds{switch_id="` + id + `"}`, testproc.Scaled(t, row["Latency_Avg_uSec"], 1e-6)},
			// Two polls back, through the history.
			{`fabric_switch_receive_bytes_total{switch_id="` + id + `"} offset 20s`, csvFloat(t, csvs[0][id]["Rx_Bytes"])},
			// irate uses the last two polls: (v2 - v1) / 10s.
			{`irate(fabric_switch_transmit_bytes_total{switch_id="` + id + `"}[30s])`, (csvFloat(t, row["Tx_Bytes"]) - csvFloat(t, csvs[1][id]["Tx_Bytes"])) / 10},
			{`resets(fabric_switch_transmit_bytes_total{switch_id="` + id + `"}[1m])`, 0},
		} {
			if got := queryOne(t, base, c.query, last); !near(got, c.want) {
				t.Errorf("%s: got %v, want %v", c.query, got, c.want)
			}
		}
	}
	if got := queryOne(t, base, "count(fabric_switch_ports_up)", last); got != float64(len(csvs[2])) {
		t.Errorf("count: got %v, want %d", got, len(csvs[2]))
	}
}

// startAggregator builds the binary and runs it until the test ends.
func startAggregator(t *testing.T, sourceURL string) string {
	t.Helper()
	bin := testproc.Build(t, "github.com/fabrictelemetry/aggregator/cmd/telemetry-aggregator")
	addr := testproc.FreeAddr(t)
	// The simulated polls are stamped up to 80s ahead of the clock: keep
	// their times rather than the poll's.
	testproc.Start(t, bin, "--web.listen-address="+addr, "--source.url="+sourceURL,
		"--source.interval=50ms", "--source.timeout=1s", "--query.retention=10m", "--source.max-clock-skew=2m")
	return "http://" + addr
}

// parseCSV reads a simulator body into switch_id -> column -> text.
func parseCSV(t *testing.T, body []byte) map[string]map[string]string {
	t.Helper()
	recs, err := csv.NewReader(bytes.NewReader(body)).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]map[string]string{}
	for _, rec := range recs[1:] {
		row := map[string]string{}
		for i, name := range recs[0] {
			row[name] = rec[i]
		}
		out[row["switch_id"]] = row
	}
	return out
}

func csvFloat(t *testing.T, s string) float64 {
	t.Helper()
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// waitForSnapshot polls the query API until the aggregator has taken in the
// snapshot of time at; the aggregator runs in its own process, so there is
// nothing to wait on but its answers.
func waitForSnapshot(t *testing.T, base string, at time.Time) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	want := float64(at.UnixMilli()) / 1000
	for {
		if v, ok := tryQuery(ctx, base, "max(timestamp(fabric_switch_transmit_bytes_total))", at); ok && v == want {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("the aggregator did not take in the snapshot of %s", at)
		case <-tick.C:
		}
	}
}

func queryOne(t *testing.T, base, query string, at time.Time) float64 {
	t.Helper()
	v, ok := tryQuery(t.Context(), base, query, at)
	if !ok {
		t.Fatalf("%s: no single-sample answer", query)
	}
	return v
}

// tryQuery runs an instant query by form POST, as Grafana does, and returns
// the value of a one-sample vector.
func tryQuery(ctx context.Context, base, query string, at time.Time) (float64, bool) {
	form := url.Values{"query": {query}, "time": {strconv.FormatFloat(float64(at.UnixMilli())/1000, 'f', -1, 64)}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/api/v1/query", bytes.NewBufferString(form.Encode()))
	if err != nil {
		return 0, false
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, false
	}
	defer resp.Body.Close()
	var env struct {
		Data struct {
			Result []struct {
				Value [2]any `json:"value"`
			} `json:"result"`
		} `json:"data"`
	}
	if json.NewDecoder(resp.Body).Decode(&env) != nil || len(env.Data.Result) != 1 {
		return 0, false
	}
	s, _ := env.Data.Result[0].Value[1].(string)
	v, err := strconv.ParseFloat(s, 64)
	return v, err == nil
}
