package aggregator

import (
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/mux"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/common/model"

	"github.com/fabrictelemetry/aggregator/cluster"
	"github.com/fabrictelemetry/aggregator/config"
	"github.com/fabrictelemetry/aggregator/internal/historytest"
	"github.com/fabrictelemetry/aggregator/polllog"
	"github.com/fabrictelemetry/aggregator/snapshot"
)

// groupSource is a partitioned kafka:// source at a broker address where
// none listens: the group follower never joins, and the tests drive its
// callbacks themselves.
func groupSource() config.Source {
	return config.Source{Name: "log", URL: "kafka://127.0.0.1:1/polls?group=fabric",
		Interval: model.Duration(time.Second), Timeout: model.Duration(time.Second), MaxBytes: 1}
}

// TestPartitionedConfig: a partitioned source must be the only source, and
// needs an http(s) base URL to advertise; then the aggregator serves the
// peers' endpoints, rows and remote read.
func TestPartitionedConfig(t *testing.T) {
	http := sourceConfig("east", "http://127.0.0.1:1/counters", nil)
	for _, tc := range []struct {
		name string
		cfg  Config
		want string
	}{
		{"beside another source", Config{Sources: []config.Source{groupSource(), http}, ExternalURL: "http://a:8080"}, "must be the aggregator's only source"},
		{"demo", Config{Sources: []config.Source{groupSource()}, Demo: true, ExternalURL: "http://a:8080"}, "--demo"},
		{"no external URL", Config{Sources: []config.Source{groupSource()}}, "needs --web.external-url"},
		{"not http", Config{Sources: []config.Source{groupSource()}, ExternalURL: "a:8080"}, "not an http(s) base URL"},
		{"credentials", Config{Sources: []config.Source{groupSource()}, ExternalURL: "http://u:p@a:8080"}, "not an http(s) base URL"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.cfg.Logger = testLogger(t)
			if _, err := New(tc.cfg); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %v, want an error with %q", err, tc.want)
			}
		})
	}
	a, err := New(Config{Sources: []config.Source{groupSource()}, ExternalURL: "https://replica-1.example:8443/agg", Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	if got := a.peers.Membership().Self(); got != "https://replica-1.example:8443/agg" {
		t.Errorf("advertised %q", got)
	}
	routes := map[string][]string{}
	_ = a.Router().Walk(func(r *mux.Route, _ *mux.Router, _ []*mux.Route) error {
		tpl, _ := r.GetPathTemplate()
		routes[tpl], _ = r.GetMethods()
		return nil
	})
	for path, method := range map[string]string{cluster.RowsPath: "GET", cluster.ReadPath: "POST"} {
		if ms := routes[path]; len(ms) != 1 || ms[0] != method {
			t.Errorf("%s: methods %v, want %s", path, ms, method)
		}
	}
	if compressed(cluster.ReadPath) || !compressed(cluster.RowsPath) {
		t.Error("remote read must not be gzipped (its answer is streamed, its trailer last); rows may be")
	}

	for addr, want := range map[string]string{"127.0.0.1:9101": "http://127.0.0.1:9101", "127.0.0.1:0": "", "bad": ""} {
		if got := DefaultExternalURL(addr); got != want {
			t.Errorf("DefaultExternalURL(%q) = %q, want %q", addr, got, want)
		}
	}
	if got := DefaultExternalURL(":9101"); !strings.HasPrefix(got, "http://") || !strings.HasSuffix(got, ":9101") || got == "http://:9101" {
		t.Errorf("DefaultExternalURL(:9101) = %q, want this host's name and the port", got)
	}
}

// TestPartitionHistories drives a partitioned replica's callbacks as its
// group follower would: each partition's polls go to a PromQL history of
// their own, which the query API reads with the others and /metrics counts
// under the source; the view is the composed poll alone; a partition given
// up takes its history with it, and the next one taken over brings its
// past.
func TestPartitionHistories(t *testing.T) {
	a, err := New(Config{Sources: []config.Source{groupSource()}, ExternalURL: "http://a:8080", MaxStaleness: 100_000 * time.Hour, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	f := a.feeds[0]
	at := func(k int) time.Time { return historytest.T0.Add(time.Duration(k) * historytest.Step) }
	snap := func(k int, ids ...string) *snapshot.Snapshot {
		var sws []historytest.Switch
		for _, id := range ids {
			sws = append(sws, historytest.Switch{ID: id, Values: map[string]float64{"Tx_Bytes": float64(k)}})
		}
		return historytest.Switches(t, at(k), historytest.Columns(), sws...)
	}
	poll := func(k int, s *snapshot.Snapshot) *polllog.Poll {
		return &polllog.Poll{PollID: polllog.PollID{Source: "sim", Seq: uint64(k + 1)}, Snapshot: s}
	}
	for k := range 3 {
		a.applyPartitionPoll(f, 0, poll(k, snap(k, "SW-01", "SW-02")))
		a.applyPartitionPoll(f, 1, poll(k, snap(k, "SW-03")))
	}
	a.applyLogPoll(f, poll(2, snap(2, "SW-01", "SW-02", "SW-03")))

	count := func() string {
		t.Helper()
		return get(a, "/api/v1/query?"+url.Values{
			"query": {"count(count_over_time(fabric_switch_transmit_bytes_total[1h]))"},
			"time":  {strconv.FormatFloat(float64(at(2).UnixMilli())/1e3, 'f', 3, 64)},
		}.Encode())
	}
	if got := count(); !strings.Contains(got, `"3"`) {
		t.Errorf("the histories of both partitions: %s, want 3 series", got)
	}
	if n := len(a.histories.All()); n != 2 {
		t.Errorf("%d histories, want one per partition", n)
	}
	want := `
# HELP fabric_history_snapshots Snapshots the source's PromQL history holds.
# TYPE fabric_history_snapshots gauge
fabric_history_snapshots{source="sim"} 3
`
	if err := testutil.GatherAndCompare(a.exp.Registry(), strings.NewReader(want), "fabric_history_snapshots"); err != nil {
		t.Error(err)
	}
	if code, body := readyOf(a); code != 503 || !strings.Contains(body, "not a member of its group yet") {
		t.Errorf("/-/ready before the group: %d %s", code, body)
	}

	// Partition 1 is given up: the composed poll without it, then its
	// history goes.
	a.applyLogPoll(f, poll(2, snap(2, "SW-01", "SW-02")))
	a.releasePartitions(f, []int32{1})
	if got := count(); !strings.Contains(got, `"2"`) {
		t.Errorf("after partition 1 was given up: %s, want 2 series", got)
	}
	if n := len(a.histories.All()); n != 1 {
		t.Errorf("%d histories after the release, want 1", n)
	}
	if ids := a.Store().Load().Parts()[0].Switches(); len(ids) != 2 {
		t.Errorf("the view serves %v", ids)
	}
	// Partition 2 is taken over: its replay brings its past.
	for k := range 3 {
		a.applyPartitionPoll(f, 2, poll(k, snap(k, "SW-04")))
	}
	if got := count(); !strings.Contains(got, `"3"`) {
		t.Errorf("after partition 2 was taken over: %s, want 3 series", got)
	}
}
