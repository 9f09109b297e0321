package queryapi

import (
	"cmp"
	"encoding/json"
	"maps"
	"net/http"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/alecthomas/kingpin/v2"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/promql/promqltest"
	"github.com/prometheus/prometheus/tsdb/index"

	"github.com/fabrictelemetry/aggregator/history"
	"github.com/fabrictelemetry/aggregator/internal/historytest"
)

// The union sources and Prometheus's own head loaded with the same samples
// (history's TestUnionSameAsPrometheus) give the same TSDB status: head
// statistics and every cardinality list, computed by Prometheus's postings
// statistics on one side and by the API from the histories on the other.
func TestTSDBStatusAsPrometheus(t *testing.T) {
	east, west, ports := history.New(time.Hour), history.New(time.Hour), history.New(time.Hour)
	historytest.UnionSources(t, east, west, ports)
	prom := promqltest.LoadedStorage(t, strings.ReplaceAll(historytest.FixturePromQL, "{switch_id=", `{fabric="east",switch_id=`)+historytest.UnionPromQL)
	a := newTestAPIs(t, []*history.History{east, west, ports}, Options{})

	got := decode[tsdbStatus](t, a.ok(t, "/api/v1/status/tsdb", "limit", "10000"))
	want := prom.Head().Stats(model.MetricNameLabel, 10000)
	if h := got.HeadStats; h.NumSeries != want.NumSeries || h.NumLabelPairs != want.IndexPostingStats.NumLabelPairs ||
		h.MinTime != want.MinTime || h.MaxTime != want.MaxTime || h.ChunkCount != 0 {
		t.Errorf("head stats %+v, want %d series, %d label pairs, time %d..%d", h, want.NumSeries, want.IndexPostingStats.NumLabelPairs, want.MinTime, want.MaxTime)
	}
	for _, l := range []struct {
		name string
		got  []tsdbStat
		want []index.Stat
	}{
		{"seriesCountByMetricName", got.SeriesCountByMetricName, want.IndexPostingStats.CardinalityMetricsStats},
		{"labelValueCountByLabelName", got.LabelValueCountByLabelName, want.IndexPostingStats.CardinalityLabelStats},
		{"memoryInBytesByLabelName", got.MemoryInBytesByLabelName, want.IndexPostingStats.LabelValueStats},
		{"seriesCountByLabelValuePair", got.SeriesCountByLabelValuePair, want.IndexPostingStats.LabelValuePairsStats},
	} {
		// Prometheus orders ties as its heap leaves them; compare sets.
		w := make([]tsdbStat, 0, len(l.want))
		for _, s := range l.want {
			w = append(w, tsdbStat{Name: s.Name, Value: s.Count})
		}
		byName := func(a, b tsdbStat) int { return cmp.Compare(a.Name, b.Name) }
		g := slices.Clone(l.got)
		slices.SortFunc(g, byName)
		slices.SortFunc(w, byName)
		if !slices.Equal(g, w) {
			t.Errorf("%s:\n got  %v\n want %v", l.name, g, w)
		}
		if !slices.IsSortedFunc(l.got, func(a, b tsdbStat) int { return cmp.Compare(b.Value, a.Value) }) {
			t.Errorf("%s not largest first: %v", l.name, l.got)
		}
	}

	// limit keeps the largest entries of each list.
	two := decode[tsdbStatus](t, a.ok(t, "/api/v1/status/tsdb", "limit", "2"))
	for _, l := range [][2][]tsdbStat{
		{two.SeriesCountByMetricName, got.SeriesCountByMetricName},
		{two.SeriesCountByLabelValuePair, got.SeriesCountByLabelValuePair},
	} {
		if len(l[0]) != 2 || l[0][0].Value != l[1][0].Value || l[0][1].Value != l[1][1].Value {
			t.Errorf("limit=2: %v of %v", l[0], l[1])
		}
	}
	// Prometheus's default limit is 10.
	if def := decode[tsdbStatus](t, a.ok(t, "/api/v1/status/tsdb")); len(def.SeriesCountByLabelValuePair) != min(10, len(got.SeriesCountByLabelValuePair)) {
		t.Errorf("default limit: %d pairs", len(def.SeriesCountByLabelValuePair))
	}
	// Prometheus's messages.
	checkError(t, 400, "bad_data", "limit must be a positive number")(a.get(t, "/api/v1/status/tsdb", "limit", "0"))
	checkError(t, 400, "bad_data", "limit must be a positive number")(a.get(t, "/api/v1/status/tsdb", "limit", "x"))
	checkError(t, 400, "bad_data", "limit must not exceed 10000")(a.get(t, "/api/v1/status/tsdb", "limit", "10001"))

	// An empty history has empty lists, [] rather than null.
	empty := newTestAPI(t, history.New(time.Hour), Options{})
	code, env := empty.get(t, "/api/v1/status/tsdb")
	if data := string(success(t, code, env)); !strings.Contains(data, `"seriesCountByMetricName":[]`) || !strings.Contains(data, `"numSeries":0`) {
		t.Errorf("empty: %s", data)
	}
}

func TestRuntimeInfo(t *testing.T) {
	t.Setenv("GOGC", "150")
	a := newTestAPI(t, fixtureHistory(t), Options{Retention: 90 * time.Minute})
	before := time.Now()
	var info map[string]any
	if err := json.Unmarshal(a.ok(t, "/api/v1/status/runtimeinfo"), &info); err != nil {
		t.Fatal(err)
	}
	// Every field Prometheus 3.16 has, no other.
	keys := slices.Sorted(maps.Keys(info))
	if want := []string{"CWD", "GODEBUG", "GOGC", "GOMAXPROCS", "GOMEMLIMIT", "corruptionCount", "goroutineCount", "hostname",
		"lastConfigTime", "reloadConfigSuccess", "serverTime", "startTime", "storageRetention"}; !slices.Equal(keys, want) {
		t.Errorf("keys %v, want %v", keys, want)
	}
	cwd, _ := os.Getwd()
	hostname, _ := os.Hostname()
	for k, want := range map[string]any{
		"CWD": cwd, "hostname": hostname, "GOGC": "150", "GOMAXPROCS": float64(runtime.GOMAXPROCS(0)),
		"storageRetention": "1h30m", "reloadConfigSuccess": true, "corruptionCount": float64(0),
	} {
		if info[k] != want {
			t.Errorf("%s = %v, want %v", k, info[k], want)
		}
	}
	started, err := time.Parse(time.RFC3339Nano, info["startTime"].(string))
	if err != nil || started.After(before) {
		t.Errorf("startTime %v (%v), after the request was sent at %v", info["startTime"], err, before)
	}
	if n, _ := info["goroutineCount"].(float64); n < 1 {
		t.Errorf("goroutineCount %v", info["goroutineCount"])
	}
}

// /api/v1/status/flags lists every flag of the binary with its value, set
// or default, without kingpin's own (help, version, completion).
func TestFlags(t *testing.T) {
	app := kingpin.New("test", "")
	app.Version("1")
	app.Flag("web.listen-address", "").Default(":8080").String()
	app.Flag("source.interval", "").Default("10s").Duration()
	AddFlags(app)
	if _, err := app.Parse([]string{"--source.interval=3s", "--query.timeout=1m"}); err != nil {
		t.Fatal(err)
	}
	flags := FlagValues(app)
	for k, want := range map[string]string{
		"web.listen-address": ":8080", "source.interval": "3s", "query.timeout": "1m0s",
		"query.max-samples": strconv.Itoa(DefaultMaxSamples), "query.self-metrics-job": DefaultSelfMetricsJob, "query.self-metrics-instance": "",
	} {
		if got, ok := flags[k]; !ok || got != want {
			t.Errorf("%s = %q (%v), want %q", k, got, ok, want)
		}
	}
	for _, k := range []string{"help", "version", "completion-bash", "completion-script-bash", "completion-script-zsh"} {
		if _, ok := flags[k]; ok {
			t.Errorf("kingpin's %s listed", k)
		}
	}
	a := newTestAPI(t, fixtureHistory(t), Options{Flags: flags})
	if got := decode[map[string]string](t, a.ok(t, "/api/v1/status/flags")); !maps.Equal(got, flags) {
		t.Errorf("served %v, want %v", got, flags)
	}
	// Without the binary's flags, the query settings.
	b := newTestAPI(t, fixtureHistory(t), Options{})
	if got := decode[map[string]string](t, b.ok(t, "/api/v1/status/flags")); got["query.timeout"] != "2m" {
		t.Errorf("settings %v", got)
	}
	code, _ := b.get(t, "/api/v1/status/flags")
	if code != http.StatusOK {
		t.Error(code)
	}
}
