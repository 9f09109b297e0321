package queryapi

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/mux"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/config"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/storage/remote"
	"github.com/prometheus/prometheus/tsdb/chunkenc"

	"github.com/fabrictelemetry/aggregator/cluster"
	"github.com/fabrictelemetry/aggregator/history"
	"github.com/fabrictelemetry/aggregator/internal/clustertest"
	"github.com/fabrictelemetry/aggregator/internal/historytest"
	"github.com/fabrictelemetry/aggregator/schema"
	"github.com/fabrictelemetry/aggregator/snapshot"
)

// The partitioned fabric of the fan-out tests: fabricSwitches switches over
// fabricPolls polls, split between replicas as the poll log splits them
// (the partition of source/switch_id), one partition per replica.
const (
	fabricSwitches = 24
	fabricPolls    = 13 // two minutes
	fabricSource   = "default"
)

// fabricAt is the fabric's poll k. Every switch has its own rate and
// temperature; SW-07 is missing from polls 3 and 4 (its series go stale,
// then come back) and SW-11's counter resets at poll 6.
func fabricAt(tb testing.TB, k int) *snapshot.Snapshot {
	tb.Helper()
	var rows []historytest.Switch
	for i := 1; i <= fabricSwitches; i++ {
		id := fmt.Sprintf("SW-%02d", i)
		if i == 7 && (k == 3 || k == 4) {
			continue
		}
		tx := float64(1000*i + k*(i*37%23+1)*10)
		if i == 11 && k >= 6 {
			tx = float64((k - 6) * 50)
		}
		rows = append(rows, historytest.Switch{ID: id, Values: map[string]float64{
			"Tx_Bytes": tx, "Temperature_C": float64(30+i) + float64(k%3)/4, "Latency_Avg_uSec": float64(i) / 8,
		}})
	}
	return historytest.Switches(tb, historytest.T0.Add(time.Duration(k)*historytest.Step), historytest.Columns(), rows...)
}

// fabricNow is the time of the fabric's last poll, the tests' clock.
var fabricNow = historytest.T0.Add((fabricPolls - 1) * historytest.Step)

// replica is one replica of a partitioned aggregator in a test: its query
// API over its own partitions' history, served on a loopback server.
type replica struct {
	*testAPI
	url     string
	history *history.History
	reg     *prometheus.Registry
}

// servedHandler lets a server start (and give its URL) before its handler
// exists.
// partitionedReplicas splits the fabric between n replicas, each serving
// its query API (and /api/v1/read) on a loopback server and knowing the
// others through a static membership.
func partitionedReplicas(t *testing.T, n int, opts Options, fanout cluster.Options) []*replica {
	t.Helper()
	polls := make([]*snapshot.Snapshot, fabricPolls)
	for k := range polls {
		polls[k] = fabricAt(t, k)
	}
	replicas := replicasOf(t, n, polls, opts, fanout)
	for _, r := range replicas {
		r.now = func() time.Time { return fabricNow }
	}
	return replicas
}

// replicasOf splits polls between n replicas as partitionedReplicas does.
func replicasOf(tb testing.TB, n int, polls []*snapshot.Snapshot, opts Options, fanout cluster.Options) []*replica {
	tb.Helper()
	handlers, members := clustertest.Replicas(tb, n, []string{fabricSource})
	urls := members[0].PartitionOwners
	replicas := make([]*replica, n)
	for i, m := range members {
		h := history.New(time.Hour)
		for _, s := range polls {
			h.Append(partOf(tb, s, urls, i))
		}
		reg := prometheus.NewRegistry()
		fo := fanout
		fo.Registerer = reg
		peers, err := cluster.New(m, fo)
		if err != nil {
			tb.Fatal(err)
		}
		o := opts
		o.Peers = peers
		a := New(history.NewSet(h), schema.Default(), o)
		r := mux.NewRouter()
		a.Register(r)
		handlers[i].Set(r)
		replicas[i] = &replica{testAPI: &testAPI{API: a, router: r}, url: m.SelfURL, history: h, reg: reg}
	}
	return replicas
}

// partOf is the rows of s that replica i owns, the partition of each
// switch being the poll log's.
func partOf(tb testing.TB, s *snapshot.Snapshot, owners []string, i int) *snapshot.Snapshot {
	tb.Helper()
	m := &cluster.Static{PartitionOwners: owners}
	b := snapshot.NewBuilder(s.LabelNames(), s.Columns(), 0)
	values := make([]snapshot.Value, len(s.Columns()))
	for row := range s.NumRows() {
		if m.Owner(fabricSource, s.RowLabels(row)[0]) != owners[i] {
			continue
		}
		for col := range values {
			values[col] = s.Value(row, col)
		}
		b.AddRowValues(s.RowLabels(row), values)
	}
	part, err := b.Build(s.Time(), s.Metrics())
	if err != nil {
		tb.Fatal(err)
	}
	return part
}

// singleBox is the API of one aggregator holding the whole fabric.
func singleBox(t *testing.T, opts Options) *testAPI {
	t.Helper()
	h := history.New(time.Hour)
	for k := range fabricPolls {
		h.Append(fabricAt(t, k))
	}
	a := newTestAPIs(t, []*history.History{h}, opts)
	a.now = func() time.Time { return fabricNow }
	return a
}

// unionBox is one aggregator holding the replicas' histories, as the
// answer of those replicas alone must be.
func unionBox(t *testing.T, rs ...*replica) *testAPI {
	t.Helper()
	var hs []*history.History
	for _, r := range rs {
		hs = append(hs, r.history)
	}
	a := newTestAPIs(t, hs, Options{})
	a.now = func() time.Time { return fabricNow }
	return a
}

// fanoutQueries are the queries the replicas must answer as one box does.
var fanoutQueries = []struct {
	name, path string
	params     []string
}{
	{"count", "/api/v1/query", []string{"query", "count(fabric_switch_transmit_bytes_total)"}},
	{"sum by switch", "/api/v1/query", []string{"query", "sum by (switch_id) (fabric_switch_temperature_celsius)"}},
	{"topk rate", "/api/v1/query", []string{"query", "topk(10, rate(fabric_switch_transmit_bytes_total[1m]))"}},
	{"sum of rates", "/api/v1/query", []string{"query", "sum(rate(fabric_switch_transmit_bytes_total[1m]))"}},
	{"raw samples", "/api/v1/query", []string{"query", "fabric_switch_transmit_bytes_total[2m]"}},
	{"range", "/api/v1/query_range", []string{"query", "rate(fabric_switch_transmit_bytes_total[1m])", "start", "30", "end", "120", "step", "10"}},
	{"range with staleness", "/api/v1/query_range", []string{"query", "fabric_switch_latency_average_seconds", "start", "0", "end", "120", "step", "5"}},
	{"series", "/api/v1/series", []string{"match[]", `fabric_switch_temperature_celsius{switch_id=~"SW-1.*"}`}},
	{"label values", "/api/v1/label/switch_id/values", nil},
	{"label values matched", "/api/v1/label/switch_id/values", []string{"match[]", `fabric_switch_transmit_bytes_total{switch_id=~"SW-0.*"}`}},
	{"labels", "/api/v1/labels", nil},
}

// TestFanoutEqualsSingleBox asks each of three replicas, each holding a
// third of the fabric, what one aggregator holding all of it is asked: the
// answers are the same, value for value, and carry no warning.
func TestFanoutEqualsSingleBox(t *testing.T) {
	replicas := partitionedReplicas(t, 3, Options{}, cluster.Options{})
	for i := range replicas {
		if n := len(partOf(t, fabricAt(t, 0), urlsOf(replicas), i).Switches()); n < 2 || n == fabricSwitches {
			t.Fatalf("replica %d holds %d switches: the split must leave each a share", i, n)
		}
	}
	box := singleBox(t, Options{})
	for _, q := range fanoutQueries {
		want := canonicalData(t, box.ok(t, q.path, q.params...))
		for i, r := range replicas {
			t.Run(fmt.Sprintf("%s/replica %d", q.name, i), func(t *testing.T) {
				code, env := r.get(t, q.path, q.params...)
				if got := canonicalData(t, success(t, code, env)); got != want {
					t.Errorf("replica %d:\n got  %s\n want %s", i, got, want)
				}
				if len(env.Warnings) > 0 {
					t.Errorf("warnings: %v", env.Warnings)
				}
			})
		}
	}
	// Each replica read the other two by remote read, and each counted it.
	for _, r := range replicas {
		for _, peer := range urlsOf(replicas) {
			if peer == r.url {
				continue
			}
			if n := fanoutRequests(t, r.reg, "remote_read", peer, "success"); n == 0 {
				t.Errorf("replica %s: no successful remote read of %s counted", r.url, peer)
			}
			if n := fanoutRequests(t, r.reg, "labels", peer, "success"); n == 0 {
				t.Errorf("replica %s: no successful label lookup of %s counted", r.url, peer)
			}
		}
	}
}

func urlsOf(rs []*replica) []string {
	out := make([]string, len(rs))
	for i, r := range rs {
		out[i] = r.url
	}
	return out
}

// canonicalData is an answer's data with its series in label order, so
// that answers that list the same series differently compare equal.
func canonicalData(t *testing.T, data json.RawMessage) string {
	t.Helper()
	var res struct {
		ResultType string            `json:"resultType"`
		Result     []json.RawMessage `json:"result"`
	}
	if json.Unmarshal(data, &res) != nil || res.ResultType == "" {
		return string(data) // a list (series, labels, values): sorted already
	}
	sorted := slices.Clone(res.Result)
	slices.SortFunc(sorted, func(a, b json.RawMessage) int {
		var x, y struct {
			Metric map[string]string `json:"metric"`
		}
		_ = json.Unmarshal(a, &x)
		_ = json.Unmarshal(b, &y)
		return strings.Compare(toJSON(x.Metric), toJSON(y.Metric))
	})
	return res.ResultType + toJSON(sorted)
}

// fanoutRequests reads fabric_fanout_requests_total of one peer.
func fanoutRequests(t *testing.T, reg prometheus.Gatherer, api, peer, result string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "fabric_fanout_requests_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			if hasLabels(m, "api", api, "peer", peer, "result", result) {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}

func hasLabels(m *dto.Metric, kv ...string) bool {
	for i := 0; i < len(kv); i += 2 {
		found := false
		for _, l := range m.GetLabel() {
			if l.GetName() == kv[i] && l.GetValue() == kv[i+1] {
				found = true
			}
		}
		if !found {
			return false
		}
	}
	return true
}

// TestFanoutPeerFails makes one of three replicas unreachable, then hang
// past the fan-out's timeout: the others answer what they hold, with a
// warning naming the missing peer, never an error nor a silent gap.
func TestFanoutPeerFails(t *testing.T) {
	for _, tc := range []struct {
		name   string
		result string // its fabric_fanout_requests_total result
		breaks func(t *testing.T) string
	}{
		{"down", "error", func(t *testing.T) string {
			srv := httptest.NewServer(http.NotFoundHandler())
			srv.Close() // nothing listens there any more
			return srv.URL
		}},
		{"slow", "timeout", func(t *testing.T) string {
			release := make(chan struct{})
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				select {
				case <-r.Context().Done():
				case <-release:
				}
			}))
			t.Cleanup(srv.Close)
			t.Cleanup(func() { close(release) })
			return srv.URL
		}},
		{"error status", "error", func(t *testing.T) string {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				http.Error(w, "disk on fire", http.StatusInternalServerError)
			}))
			t.Cleanup(srv.Close)
			return srv.URL
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			replicas := partitionedReplicas(t, 3, Options{}, cluster.Options{Timeout: 300 * time.Millisecond})
			// Replica 2's partition is now held by a peer that fails.
			broken := tc.breaks(t)
			r := replicas[0]
			m := r.opts.Peers.Membership().(*cluster.Static)
			m.PeerURLs = []string{replicas[1].url, broken}
			rest := unionBox(t, replicas[0], replicas[1])
			for _, q := range fanoutQueries {
				if strings.HasPrefix(q.path, "/api/v1/label") {
					continue // label lookups: below
				}
				code, env := r.get(t, q.path, q.params...)
				got := canonicalData(t, success(t, code, env))
				if want := canonicalData(t, rest.ok(t, q.path, q.params...)); got != want {
					t.Errorf("%s:\n got  %s\n want %s", q.name, got, want)
				}
				if !slices.ContainsFunc(env.Warnings, func(w string) bool { return strings.Contains(w, "peer "+broken) }) {
					t.Errorf("%s: no warning names the failed peer %s: %v", q.name, broken, env.Warnings)
				}
			}
			code, env := r.get(t, "/api/v1/label/switch_id/values")
			got := decode[[]string](t, success(t, code, env))
			if want := decode[[]string](t, rest.ok(t, "/api/v1/label/switch_id/values")); !slices.Equal(got, want) {
				t.Errorf("label values: got %v, want %v", got, want)
			}
			if !slices.ContainsFunc(env.Warnings, func(w string) bool { return strings.Contains(w, "peer "+broken) }) {
				t.Errorf("label values: no warning names the failed peer: %v", env.Warnings)
			}
			if n := fanoutRequests(t, r.reg, "remote_read", broken, tc.result); n == 0 {
				t.Errorf("no remote read of the failed peer counted as %s", tc.result)
			}
		})
	}
}

// TestFanoutLimitsApplyToTheWhole refuses a query whose merged series are
// over --query.max-series although each replica's own are under it: the
// engine counts what the fan-out gathered.
func TestFanoutLimitsApplyToTheWhole(t *testing.T) {
	replicas := partitionedReplicas(t, 3, Options{MaxSeries: fabricSwitches - 1}, cluster.Options{})
	for _, r := range replicas {
		code, env := r.get(t, "/api/v1/query", "query", "count(fabric_switch_temperature_celsius)")
		if code != http.StatusUnprocessableEntity || env.ErrorType != string(errorCostLimit) {
			t.Errorf("replica %s: %d %s %s, want the series limit's 422", r.url, code, env.ErrorType, env.Error)
		}
		// Its own series alone are under the limit.
		req := httptest.NewRequest(http.MethodGet, "/api/v1/query?query=count(fabric_switch_temperature_celsius)", nil)
		req.Header.Set(cluster.PeerHeader, "http://test")
		rec := httptest.NewRecorder()
		r.router.ServeHTTP(rec, req)
		if rec.Code != http.StatusOK {
			t.Errorf("replica %s, its own data: %d %s", r.url, rec.Code, rec.Body)
		}
	}
}

// TestFanoutOffWithoutPeers serves no /api/v1/read without a membership,
// as before partitioned mode.
func TestFanoutOffWithoutPeers(t *testing.T) {
	a := singleBox(t, Options{})
	req := httptest.NewRequest(http.MethodPost, cluster.ReadPath, nil)
	var match mux.RouteMatch
	if a.router.Match(req, &match) && match.MatchErr == nil {
		t.Errorf("%s is served without peers", cluster.ReadPath)
	}
	if a.queryable != a.local {
		t.Error("queries read more than the local data without peers")
	}
}

// TestRemoteReadServed reads a replica's /api/v1/read with Prometheus's own
// remote-read client, with each answer type: another replica's read
// (marked) gets the replica's own series, a Prometheus server's read the
// whole fabric, sample for sample as one aggregator holding it has them;
// with a peer down, a Prometheus server's read fails naming it, since
// remote read cannot say an answer is partial.
func TestRemoteReadServed(t *testing.T) {
	replicas := partitionedReplicas(t, 3, Options{}, cluster.Options{Timeout: 300 * time.Millisecond})
	r := replicas[0]
	whole := historySamples(t, singleBox(t, Options{}).local)
	own := historySamples(t, r.history.Queryable())
	if len(own) == 0 || len(own) >= len(whole) {
		t.Fatalf("replica 0 holds %d of %d series", len(own), len(whole))
	}
	for _, typ := range []prompb.ReadRequest_ResponseType{prompb.ReadRequest_SAMPLES, prompb.ReadRequest_STREAMED_XOR_CHUNKS} {
		t.Run(typ.String(), func(t *testing.T) {
			if got := remoteRead(t, r.url, typ, nil); !sameSamples(got, whole) {
				t.Errorf("a Prometheus server's read: %d series, want the whole fabric's %d", len(got), len(whole))
			}
			peer := map[string]string{cluster.PeerHeader: replicas[1].url}
			if got := remoteRead(t, r.url, typ, peer); !sameSamples(got, own) {
				t.Errorf("a peer's read: %d series, want the replica's own %d", len(got), len(own))
			}
		})
	}
	m := r.opts.Peers.Membership().(*cluster.Static)
	srv := httptest.NewServer(http.NotFoundHandler())
	srv.Close()
	m.PeerURLs = []string{replicas[1].url, srv.URL}
	for _, typ := range []prompb.ReadRequest_ResponseType{prompb.ReadRequest_SAMPLES, prompb.ReadRequest_STREAMED_XOR_CHUNKS} {
		client := readClient(t, r.url, typ, nil)
		set, err := client.Read(context.Background(), readQuery(t), true)
		for err == nil && set.Next() {
		}
		if err == nil {
			err = set.Err()
		}
		if err == nil || !strings.Contains(err.Error(), "peer "+srv.URL) {
			t.Errorf("%s with a peer down: got %v, want an error naming %s", typ, err, srv.URL)
		}
	}
}

// sample is one sample, its value's bits kept (staleness markers are NaNs).
type sample struct {
	t int64
	v uint64
}

func readQuery(t *testing.T) *prompb.Query {
	t.Helper()
	q, err := remote.ToQuery(0, fabricNow.UnixMilli(), []*labels.Matcher{labels.MustNewMatcher(labels.MatchRegexp, model.MetricNameLabel, "fabric_switch_.*")}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return q
}

func readClient(t *testing.T, base string, typ prompb.ReadRequest_ResponseType, headers map[string]string) remote.ReadClient {
	t.Helper()
	u, _ := url.Parse(base + cluster.ReadPath)
	c, err := remote.NewReadClient("test", &remote.ClientConfig{
		URL: &config.URL{URL: u}, Timeout: model.Duration(10 * time.Second), Headers: headers,
		ChunkedReadLimit: 1 << 20, AcceptedResponseTypes: []prompb.ReadRequest_ResponseType{typ},
	})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// remoteRead reads every fabric_switch_* series up to the fabric's last poll.
func remoteRead(t *testing.T, base string, typ prompb.ReadRequest_ResponseType, headers map[string]string) map[string][]sample {
	t.Helper()
	set, err := readClient(t, base, typ, headers).Read(context.Background(), readQuery(t), true)
	if err != nil {
		t.Fatal(err)
	}
	return collect(t, set)
}

// historySamples selects what readQuery reads, straight from q.
func historySamples(t *testing.T, q storage.Queryable) map[string][]sample {
	t.Helper()
	querier, err := q.Querier(0, fabricNow.UnixMilli())
	if err != nil {
		t.Fatal(err)
	}
	defer querier.Close()
	return collect(t, querier.Select(context.Background(), true, nil, labels.MustNewMatcher(labels.MatchRegexp, model.MetricNameLabel, "fabric_switch_.*")))
}

func collect(t *testing.T, set storage.SeriesSet) map[string][]sample {
	t.Helper()
	out := map[string][]sample{}
	for set.Next() {
		s := set.At()
		it := s.Iterator(nil)
		var samples []sample
		for it.Next() != chunkenc.ValNone {
			ts, v := it.At()
			samples = append(samples, sample{ts, math.Float64bits(v)})
		}
		if err := it.Err(); err != nil {
			t.Fatal(err)
		}
		out[s.Labels().String()] = append(out[s.Labels().String()], samples...)
	}
	if err := set.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func sameSamples(a, b map[string][]sample) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if !slices.Equal(v, b[k]) {
			return false
		}
	}
	return true
}

// TestFanoutPeerCutMidStream cuts a peer's streamed answer halfway and
// then hangs past the fan-out's timeout: the series that arrived are used,
// and a warning says the peer's series are incomplete; the query does not
// fail.
func TestFanoutPeerCutMidStream(t *testing.T) {
	replicas := partitionedReplicas(t, 3, Options{}, cluster.Options{Timeout: 300 * time.Millisecond})
	release := make(chan struct{})
	cut := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		whole := httptest.NewRecorder()
		replicas[2].router.ServeHTTP(whole, r)
		for k, v := range whole.Header() {
			w.Header()[k] = v
		}
		body := whole.Body.Bytes()
		_, _ = w.Write(body[:len(body)/2])
		w.(http.Flusher).Flush()
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	t.Cleanup(cut.Close)
	t.Cleanup(func() { close(release) })
	r := replicas[0]
	r.opts.Peers.Membership().(*cluster.Static).PeerURLs = []string{replicas[1].url, cut.URL}
	code, env := r.get(t, "/api/v1/query", "query", "count(fabric_switch_transmit_bytes_total)")
	success(t, code, env)
	if !slices.ContainsFunc(env.Warnings, func(w string) bool {
		return strings.Contains(w, "peer "+cut.URL) && strings.Contains(w, "its series are incomplete")
	}) {
		t.Errorf("no warning says the cut peer's series are incomplete: %v", env.Warnings)
	}
}
