package restapi

import (
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/mux"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/fabrictelemetry/aggregator/cluster"
	"github.com/fabrictelemetry/aggregator/internal/clustertest"
	"github.com/fabrictelemetry/aggregator/snapshot"
)

// The partitioned fixture: the full view's switch-level part is the
// "matrix" source's, its per-port part the "ufm" source's, and each row
// lives on the replica that owns its switch's partition in its source, as
// the poll log splits them (so a switch's rows and its ports can be on two
// replicas).
var fanoutSources = []string{"matrix", "ufm"}

// restReplica is one replica of a partitioned aggregator in a test.
type restReplica struct {
	url    string
	router http.Handler
	served *clustertest.Handler // what its server serves: router, until a test breaks it
	view   *snapshot.View
	store  *snapshot.Store
	reg    *prometheus.Registry
	m      *cluster.Static
}

// restReplicas splits view between n replicas, each serving the REST API
// with its peers on a loopback server.
func restReplicas(t testing.TB, view *snapshot.View, n int, opts cluster.Options) []*restReplica {
	t.Helper()
	return restReplicasWith(t, view, n, opts, func(m *cluster.Static) cluster.Membership { return m })
}

// restReplicasWith is restReplicas with each replica's membership made by
// membership from its Static one.
func restReplicasWith(t testing.TB, view *snapshot.View, n int, opts cluster.Options, membership func(*cluster.Static) cluster.Membership) []*restReplica {
	t.Helper()
	handlers, members := clustertest.Replicas(t, n, fanoutSources)
	urls := members[0].PartitionOwners
	out := make([]*restReplica, n)
	for i, m := range members {
		var parts []*snapshot.Snapshot
		for k, p := range view.Parts() {
			parts = append(parts, owned(t, p, m, fanoutSources[k], urls[i]))
		}
		mine := snapshot.NewView(parts...)
		reg := prometheus.NewRegistry()
		o := opts
		o.Registerer = reg
		peers, err := cluster.New(membership(m), o)
		if err != nil {
			t.Fatal(err)
		}
		store := &snapshot.Store{}
		store.PublishView(mine)
		r := mux.NewRouter()
		New(store, time.Second, func() time.Time { return clockAt }).WithPeers(peers).Register(r)
		handlers[i].Set(r)
		out[i] = &restReplica{url: urls[i], router: r, served: handlers[i], view: mine, store: store, reg: reg, m: m}
	}
	return out
}

// owned is the rows of p whose switch's partition in source self owns,
// every column kept, as a replica's own view has them.
func owned(t testing.TB, p *snapshot.Snapshot, m cluster.Membership, source, self string) *snapshot.Snapshot {
	t.Helper()
	var mine []string
	for _, id := range p.Switches() {
		if m.Owner(source, id) == self {
			mine = append(mine, id)
		}
	}
	return subset(p, mine)
}

// fanoutTargets are the requests the replicas must answer as one box does.
func fanoutTargets() []string {
	var targets []string
	for _, id := range []string{"SW-01", "SW-02", "SW-10", "SW-20", "SW-99"} {
		for _, metric := range []string{"Rx_Bytes", "Latency_Avg_uSec", "Power_W", "PortXmitDataExtended", "VL15DroppedExtended", "Nope"} {
			targets = append(targets, "/telemetry/GetMetric?switch_id="+id+"&metric_name="+metric)
		}
		targets = append(targets,
			"/telemetry/GetMetric?switch_id="+id+"&metric_name=PortXmitDataExtended&port=1",
			"/telemetry/GetMetric?switch_id="+id+"&metric_name=Rx_Bytes&port=1",
			"/telemetry/ListMetrics?switch_id="+id)
	}
	return append(targets,
		"/telemetry/ListMetrics",
		"/telemetry/ListMetrics?switch_id=SW-01&switch_id=SW-20&switch_id=SW-10",
		"/telemetry/ListMetrics?switch_id=SW-02&switch_id=SW-02",
		"/telemetry/ListMetrics?metric_name=Rx_Bytes&metric_name=PortRcvDataExtended",
		"/telemetry/ListMetrics?port=1&port=10",
		"/telemetry/ListMetrics?port=1&metric_name=Power_W",
		"/telemetry/ListMetrics?port=99",
		"/telemetry/ListMetrics?metric_name=Nope",
		"/telemetry/GetMetric?switch_id=SW-01",
		"/telemetry/ListMetrics?switch_id=",
	)
}

// TestRESTFanoutEqualsSingleBox asks each of three replicas, each holding
// its partitions' rows, what one aggregator holding the whole view is
// asked: status and body are the same, byte for byte, 2^64-1 and every
// other exact value included, and no answer says it is partial.
func TestRESTFanoutEqualsSingleBox(t *testing.T) {
	full := fullView(t)
	replicas := restReplicas(t, full, 3, cluster.Options{})
	holding := 0
	for _, r := range replicas {
		if r.view.Series() > 0 {
			holding++
		}
	}
	if holding < 2 {
		t.Fatalf("%d replicas hold rows: the split must leave more than one a share", holding)
	}
	box := viewRouter(full, time.Second)
	for _, target := range fanoutTargets() {
		want := serve(box, http.MethodGet, target)
		for i, r := range replicas {
			got := serve(r.router, http.MethodGet, target)
			if got.Code != want.Code || got.Body.String() != want.Body.String() {
				t.Errorf("replica %d: %s:\n got  %d %s want %d %s", i, target, got.Code, got.Body, want.Code, want.Body)
			}
		}
	}
	// Replica 1 holds no row: everything it answered came from the others.
	for _, peer := range []string{replicas[0].url, replicas[2].url} {
		if n := testutil.ToFloat64(requestsOf(t, replicas[1].reg, "rows", peer, "success")); n == 0 {
			t.Errorf("no request for rows to %s counted", peer)
		}
	}
}

// requestsOf is fabric_fanout_requests_total of one peer.
func requestsOf(t *testing.T, reg *prometheus.Registry, api, peer, result string) prometheus.Collector {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: "x"})
	for _, mf := range mfs {
		if mf.GetName() != "fabric_fanout_requests_total" {
			continue
		}
	metrics:
		for _, m := range mf.GetMetric() {
			want := map[string]string{"api": api, "peer": peer, "result": result}
			for _, l := range m.GetLabel() {
				if want[l.GetName()] != l.GetValue() {
					continue metrics
				}
			}
			c.Add(m.GetCounter().GetValue())
		}
	}
	return c
}

// TestRESTFanoutPeerDown takes down the replica that holds SW-01's
// switch-level row: the others answer what they hold and say what is
// missing; a metric only that replica could have is a 503 naming it, not a
// 404; switches held elsewhere answer as before.
func TestRESTFanoutPeerDown(t *testing.T) {
	full := fullView(t)
	replicas := restReplicas(t, full, 3, cluster.Options{Timeout: 2 * time.Second})
	down, r := replicas[0], replicas[1]
	for _, c := range []struct{ source, id, owner string }{
		{"matrix", "SW-01", down.url}, {"ufm", "SW-01", replicas[2].url},
		{"matrix", "SW-02", replicas[2].url}, {"ufm", "SW-02", replicas[2].url},
		{"matrix", "SW-10", replicas[2].url}, {"ufm", "SW-10", r.url},
	} {
		if got := down.m.Owner(c.source, c.id); got != c.owner {
			t.Fatalf("the fixture's split changed: %s of %s is on %s", c.id, c.source, got)
		}
	}
	down.served.Set(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "down for maintenance", http.StatusServiceUnavailable)
	}))
	box := viewRouter(full, time.Second)
	reachable := viewRouter(mergeParts(append(slices.Clone(r.view.Parts()), replicas[2].view.Parts()...)), time.Second)
	for _, tc := range []struct {
		target string
		code   int
		want   []string // in the body
	}{
		{"/telemetry/GetMetric?switch_id=SW-01&metric_name=Rx_Bytes", 503, []string{
			`switch_id \"SW-01\" has no metric_name \"Rx_Bytes\", but not every replica answered: held by replica ` + down.url + " did not answer", "down for maintenance"}},
		{"/telemetry/ListMetrics?metric_name=Nope", 503, []string{`unknown metric_name \"Nope\", but not every replica answered`, down.url}},
		{"/telemetry/GetMetric?switch_id=SW-01&metric_name=PortXmitDataExtended", 200, []string{`"partial":true,"warnings":["peer ` + down.url}},
		{"/telemetry/ListMetrics?switch_id=SW-01", 200, []string{`"partial":true,"warnings":["peer ` + down.url}},
		{"/telemetry/ListMetrics", 200, []string{`"partial":true,"warnings":["peer ` + down.url, `"switch_id":"SW-01"`}},
	} {
		w := serve(r.router, http.MethodGet, tc.target)
		if w.Code != tc.code {
			t.Errorf("%s: %d %s, want %d", tc.target, w.Code, w.Body, tc.code)
			continue
		}
		for _, s := range tc.want {
			if !strings.Contains(w.Body.String(), s) {
				t.Errorf("%s: %s lacks %s", tc.target, w.Body, s)
			}
		}
		if tc.code == 503 && w.Header().Get("Retry-After") == "" {
			t.Errorf("%s: 503 without Retry-After", tc.target)
		}
		if tc.code == 200 {
			// The answer of one box holding what answered.
			want := serve(reachable, http.MethodGet, tc.target).Body.String()
			if got := withoutPartial(w.Body.String()); got != want {
				t.Errorf("%s:\n got  %s\n want %s", tc.target, got, want)
			}
		}
	}
	// Switches whose owners all answered are whole, as on one box.
	for _, target := range []string{"/telemetry/GetMetric?switch_id=SW-10&metric_name=Rx_Bytes", "/telemetry/ListMetrics?switch_id=SW-10&switch_id=SW-02",
		"/telemetry/GetMetric?switch_id=SW-02&metric_name=PortXmitDataExtended&port=1"} {
		if got, want := serve(r.router, http.MethodGet, target), serve(box, http.MethodGet, target); got.Code != want.Code || got.Body.String() != want.Body.String() {
			t.Errorf("%s: got %d %s, want %d %s", target, got.Code, got.Body, want.Code, want.Body)
		}
	}
	if n := testutil.ToFloat64(requestsOf(t, r.reg, "rows", down.url, "error")); n == 0 {
		t.Error("no failed request for rows counted")
	}
}

// withoutPartial removes the members of a partial answer.
func withoutPartial(body string) string {
	i := strings.Index(body, `,"partial":true,"warnings":[`)
	if i < 0 {
		return body
	}
	j := strings.Index(body[i:], `"]`)
	return body[:i] + body[i+j+2:]
}

// TestRESTFanoutNobodyOwns answers about a switch whose partition nobody
// holds as about one whose owner is down: the answer says so.
func TestRESTFanoutNobodyOwns(t *testing.T) {
	replicas := restReplicas(t, fullView(t), 3, cluster.Options{})
	r := replicas[1]
	r.m.PartitionOwners = []string{replicas[0].url, replicas[1].url, ""} // partition 2's owner left
	for _, tc := range []struct {
		target string
		code   int
		want   string
	}{
		// SW-02 is all in partition 2.
		{"/telemetry/GetMetric?switch_id=SW-02&metric_name=Rx_Bytes", 503, `unknown switch_id \"SW-02\", but not every replica answered: no replica holds its partition of source \"matrix\"`},
		{"/telemetry/ListMetrics?switch_id=SW-02", 503, `none of the switches asked for is available`},
		// SW-01's ports are in partition 2 of the ufm source.
		{"/telemetry/GetMetric?switch_id=SW-01&metric_name=Rx_Bytes", 200, `"partial":true,"warnings":["switch_id \"SW-01\": no replica holds its partition of source \"ufm\""]`},
	} {
		w := serve(r.router, http.MethodGet, tc.target)
		if w.Code != tc.code || !strings.Contains(w.Body.String(), tc.want) {
			t.Errorf("%s: got %d %s, want %d with %s", tc.target, w.Code, w.Body, tc.code, tc.want)
		}
	}
}

// TestRESTFanoutOpenAPI checks the answers only a partitioned aggregator
// gives against openapi.yaml: partial answers and the 503s naming a
// replica that did not answer.
func TestRESTFanoutOpenAPI(t *testing.T) {
	router := openAPIRouter(t)
	replicas := restReplicas(t, fullView(t), 3, cluster.Options{})
	replicas[0].served.Set(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "down for maintenance", http.StatusServiceUnavailable)
	}))
	r := replicas[1].router
	for _, tc := range []struct {
		target string
		status int
	}{
		{"/telemetry/GetMetric?switch_id=SW-01&metric_name=PortXmitDataExtended", 200},
		{"/telemetry/GetMetric?switch_id=SW-01&metric_name=PortXmitDataExtended&port=1", 200},
		{"/telemetry/GetMetric?switch_id=SW-02&metric_name=PortXmitDataExtended&port=1", 200},
		{"/telemetry/ListMetrics", 200},
		{"/telemetry/ListMetrics?switch_id=SW-01&port=1", 200},
		{"/telemetry/GetMetric?switch_id=SW-01&metric_name=Rx_Bytes", 503},
		{"/telemetry/ListMetrics?metric_name=Nope", 503},
	} {
		t.Run(tc.target, func(t *testing.T) { checkOpenAPI(t, router, r, tc.target, tc.status) })
	}
}

// servingStatic is a Static membership that says which partitions its
// replica holds, as a partitioned replica's does.
type servingStatic struct {
	*cluster.Static
	held atomic.Pointer[[]int32]
}

func (m *servingStatic) Serving() (int, []int32) { return len(m.PartitionOwners), *m.held.Load() }

// TestRESTFanoutPartitionInTransit: each replica says which partitions it
// holds. While one replica holds all it owns, the answers are one box's,
// whole. When one has given up its partition, or is still loading it (its
// view without the partition's rows, its Serving without the partition),
// every answer that needed that partition says so, on that replica and
// on the others, although the membership still names it the owner: a list
// of every switch is partial naming the partition, a switch in it is left
// out of a list with a warning, and what would be a 404 is a 503. Without
// the check they would be silently short, or a 404.
func TestRESTFanoutPartitionInTransit(t *testing.T) {
	full := fullView(t)
	memberships := map[*cluster.Static]*servingStatic{}
	replicas := restReplicasWith(t, full, 3, cluster.Options{}, func(m *cluster.Static) cluster.Membership {
		s := &servingStatic{Static: m}
		held := []int32{int32(slices.Index(m.PartitionOwners, m.SelfURL))}
		s.held.Store(&held)
		memberships[m] = s
		return s
	})
	box := viewRouter(full, time.Second)
	for _, target := range fanoutTargets() {
		want := serve(box, http.MethodGet, target)
		for i, r := range replicas {
			if got := serve(r.router, http.MethodGet, target); got.Code != want.Code || got.Body.String() != want.Body.String() {
				t.Errorf("replica %d, every partition held: %s:\n got  %d %s want %d %s", i, target, got.Code, got.Body, want.Code, want.Body)
			}
		}
	}

	// Replica 1 gives partition 1 up (or has not loaded it yet).
	loading := replicas[1]
	none := []int32{}
	memberships[loading.m].held.Store(&none)
	var empty []*snapshot.Snapshot
	for _, p := range loading.view.Parts() {
		empty = append(empty, subset(p, nil))
	}
	loading.store.PublishView(snapshot.NewView(empty...))
	// SW-10's switch-level row is in partition 2 of matrix, and it would
	// have its ports in partition 1 of ufm; SW-03 (which no source has)
	// would be in partition 1 of ufm; SW-01 and SW-02 are in partitions 0
	// and 2.
	for _, c := range []struct {
		source, id string
		owner      *restReplica
	}{
		{"matrix", "SW-10", replicas[2]}, {"ufm", "SW-10", loading}, {"ufm", "SW-03", loading},
		{"matrix", "SW-01", replicas[0]}, {"ufm", "SW-01", replicas[2]}, {"matrix", "SW-02", replicas[2]}, {"ufm", "SW-02", replicas[2]},
	} {
		if got := loading.m.Owner(c.source, c.id); got != c.owner.url {
			t.Fatalf("the fixture's split changed: %s of %s is on %s", c.id, c.source, got)
		}
	}
	const inTransit = `partition 1 of the poll log is held by no replica that answered`
	for _, r := range replicas {
		for _, tc := range []struct {
			target string
			code   int
			want   string
		}{
			{"/telemetry/ListMetrics", 200, `"partial":true,"warnings":["` + inTransit},
			{"/telemetry/ListMetrics?metric_name=Nope", 503, `unknown metric_name \"Nope\", but not every replica answered: ` + inTransit},
			{"/telemetry/GetMetric?switch_id=SW-10&metric_name=Rx_Bytes", 200, `"partial":true,"warnings":["switch_id \"SW-10\": its partition 1 of source \"ufm\" is held by no replica that answered`},
			{"/telemetry/GetMetric?switch_id=SW-10&metric_name=PortXmitDataExtended", 503, `but not every replica answered: its partition 1 of source \"ufm\"`},
			{"/telemetry/ListMetrics?switch_id=SW-03", 503, `switch_id \"SW-03\" left out: its partition 1 of source \"ufm\"`},
		} {
			w := serve(r.router, http.MethodGet, tc.target)
			if w.Code != tc.code || !strings.Contains(w.Body.String(), tc.want) {
				t.Errorf("%s: %s: got %d %s, want %d with %s", r.url, tc.target, w.Code, w.Body, tc.code, tc.want)
			}
		}
		// Switches of the partitions held are answered whole.
		target := "/telemetry/ListMetrics?switch_id=SW-01&switch_id=SW-02"
		if got, want := serve(r.router, http.MethodGet, target), serve(box, http.MethodGet, target); got.Body.String() != want.Body.String() {
			t.Errorf("%s: %s:\n got  %s\n want %s", r.url, target, got.Body, want.Body)
		}
	}
}
