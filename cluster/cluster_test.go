package cluster

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/common/config"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/storage/remote"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"go.uber.org/goleak"

	"github.com/fabrictelemetry/aggregator/history"
	"github.com/fabrictelemetry/aggregator/internal/historytest"
	"github.com/fabrictelemetry/aggregator/polllog"
	"github.com/fabrictelemetry/aggregator/schema"
	"github.com/fabrictelemetry/aggregator/snapshot"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestStaticOwner finds a switch's owner by the poll log's partition of its
// key, as the Kafka membership will.
func TestStaticOwner(t *testing.T) {
	m := &Static{PartitionOwners: []string{"http://a", "", "http://c"}}
	seen := map[string]bool{}
	for i := range 50 {
		id := fmt.Sprintf("SW-%02d", i)
		want := m.PartitionOwners[polllog.Partition(polllog.Key("east", id), 3)]
		if got := m.Owner("east", id); got != want {
			t.Errorf("%s: owner %q, want %q", id, got, want)
		}
		seen[m.Owner("east", id)] = true
	}
	if len(seen) != 3 {
		t.Errorf("owners seen %v: the test's switches must fall in every partition", seen)
	}
	if got := (&Static{}).Owner("east", "SW-01"); got != "" {
		t.Errorf("owner without partitions: %q", got)
	}
}

// noFlusher hides the writer's http.Flusher behind Unwrap, as the
// aggregator's request instrumentation does.
type noFlusher struct{ w http.ResponseWriter }

func (n *noFlusher) Header() http.Header         { return n.w.Header() }
func (n *noFlusher) Write(b []byte) (int, error) { return n.w.Write(b) }
func (n *noFlusher) WriteHeader(code int)        { n.w.WriteHeader(code) }
func (n *noFlusher) Unwrap() http.ResponseWriter { return n.w }

func fixtureQueryable(t testing.TB) storage.Queryable {
	return historytest.FixtureHistory(t, history.New(time.Hour)).Queryable()
}

// serveRead serves NewReadHandler over the fixture history behind the
// flusher-hiding wrapper.
func serveRead(t *testing.T, limits ReadLimits) string {
	t.Helper()
	h := NewReadHandler(fixtureQueryable(t), nil, nil, limits, nil)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.ServeHTTP(&noFlusher{w}, r)
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

func readClient(t *testing.T, base string, typ prompb.ReadRequest_ResponseType) remote.ReadClient {
	t.Helper()
	u, _ := url.Parse(base + ReadPath)
	c, err := remote.NewReadClient("test", &remote.ClientConfig{
		URL: &config.URL{URL: u}, Timeout: model.Duration(10 * time.Second),
		ChunkedReadLimit: 1 << 20, AcceptedResponseTypes: []prompb.ReadRequest_ResponseType{typ},
	})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

var answerTypes = []prompb.ReadRequest_ResponseType{prompb.ReadRequest_SAMPLES, prompb.ReadRequest_STREAMED_XOR_CHUNKS}

// points reads a series set as "labels: t=v ..." lines, values by their
// bits (staleness markers are NaNs).
func points(t *testing.T, set storage.SeriesSet) string {
	t.Helper()
	var b strings.Builder
	for set.Next() {
		s := set.At()
		fmt.Fprintf(&b, "%s:", s.Labels())
		it := s.Iterator(nil)
		for it.Next() != chunkenc.ValNone {
			ts, v := it.At()
			fmt.Fprintf(&b, " %d=%x", ts, math.Float64bits(v))
		}
		b.WriteByte('\n')
	}
	if err := set.Err(); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// TestReadHandler reads the fixture history with Prometheus's remote-read
// client, each answer type, through a writer that hides its Flusher: every
// sample arrives, staleness markers included; a label-only read carries one
// sample per series; a read of samples over the sample limit is refused.
func TestReadHandler(t *testing.T) {
	base := serveRead(t, ReadLimits{Samples: 1000, Concurrency: 2})
	all := labels.MustNewMatcher(labels.MatchRegexp, model.MetricNameLabel, ".+")
	q, err := fixtureQueryable(t).Querier(0, math.MaxInt64)
	if err != nil {
		t.Fatal(err)
	}
	want := points(t, q.Select(context.Background(), true, nil, all))
	if !strings.Contains(want, fmt.Sprintf("%x", math.Float64bits(math.Float64frombits(0x7ff0000000000002)))) {
		t.Fatalf("the fixture has no staleness marker:\n%s", want)
	}
	for _, typ := range answerTypes {
		t.Run(typ.String(), func(t *testing.T) {
			c := readClient(t, base, typ)
			query, _ := remote.ToQuery(0, historytest.T0.Add(time.Minute).UnixMilli(), []*labels.Matcher{all}, nil)
			set, err := c.Read(context.Background(), query, true)
			if err != nil {
				t.Fatal(err)
			}
			if got := points(t, set); got != want {
				t.Errorf("read:\n%s\nwant\n%s", got, want)
			}
			query, _ = remote.ToQuery(0, historytest.T0.Add(time.Minute).UnixMilli(), []*labels.Matcher{all}, &storage.SelectHints{Func: "series"})
			set, err = c.Read(context.Background(), query, true)
			if err != nil {
				t.Fatal(err)
			}
			series := 0
			for set.Next() {
				series++
				it := set.At().Iterator(nil)
				n := 0
				for it.Next() != chunkenc.ValNone {
					n++
				}
				if n != 1 {
					t.Errorf("label-only read: %s has %d samples, want 1", set.At().Labels(), n)
				}
			}
			if want := strings.Count(want, "\n"); series != want {
				t.Errorf("label-only read: %d series, want %d", series, want)
			}
		})
	}
	c := readClient(t, serveRead(t, ReadLimits{Samples: 10, Concurrency: 1}), prompb.ReadRequest_SAMPLES)
	query, _ := remote.ToQuery(0, historytest.T0.Add(time.Minute).UnixMilli(), []*labels.Matcher{all}, nil)
	if _, err := c.Read(context.Background(), query, true); err == nil || !strings.Contains(err.Error(), "exceeded sample limit (10)") {
		t.Errorf("over the sample limit: %v", err)
	}
}

// newPeers returns a Peers over m with its metrics in a registry of their own.
func newPeers(t *testing.T, m Membership, opts Options) (*Peers, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	opts.Registerer = reg
	p, err := New(m, opts)
	if err != nil {
		t.Fatal(err)
	}
	return p, reg
}

func requests(p *Peers, api, peer, result string) float64 {
	return testutil.ToFloat64(p.metrics.requests.WithLabelValues(api, peer, result))
}

// storeOf is a store holding a view of parts.
func storeOf(parts ...*snapshot.Snapshot) *snapshot.Store {
	s := &snapshot.Store{}
	s.PublishView(snapshot.NewView(parts...))
	return s
}

var rowsTime = time.Date(2026, 11, 25, 19, 30, 0, 123_000_000, time.UTC)

// rowsFixture is a switch-level part with values JSON and float64 get
// wrong, and a per-port part.
func rowsFixture(t testing.TB) (switches, ports *snapshot.Snapshot) {
	t.Helper()
	build := func(labelNames, cols []string, rows [][]string, values func(row int) []snapshot.Value) *snapshot.Snapshot {
		b := snapshot.NewBuilder(labelNames, cols, len(rows))
		for i, r := range rows {
			b.AddRowValues(r, values(i))
		}
		metrics, _ := schema.Default().Resolve(snapshot.Subsystem(labelNames), cols)
		s, err := b.Build(rowsTime, metrics)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	switches = build([]string{snapshot.SwitchLabel}, []string{"Rx_Bytes", "Temperature_C"},
		[][]string{{"SW-01"}, {"SW-02"}, {"SW-03"}}, func(row int) []snapshot.Value {
			return []snapshot.Value{snapshot.UintValue(math.MaxUint64 - uint64(row)), snapshot.FloatValue(40.5 + float64(row))}
		})
	ports = build([]string{snapshot.SwitchLabel, snapshot.PortLabel}, []string{"PortXmitDataExtended"},
		[][]string{{"SW-01", "1"}, {"SW-01", "2"}, {"SW-03", "1"}}, func(row int) []snapshot.Value {
			return []snapshot.Value{snapshot.UintValue(1<<53 + 1 + uint64(row))}
		})
	return switches, ports
}

// TestRows fetches a peer's rows through RowsHandler: each part of its
// view comes back as it holds it, exact, for the switches asked (every
// switch without a filter; none when it has none or no view at all).
func TestRows(t *testing.T) {
	switches, ports := rowsFixture(t)
	srv := httptest.NewServer(RowsHandler(storeOf(switches, ports), nil))
	t.Cleanup(srv.Close)
	empty := httptest.NewServer(RowsHandler(&snapshot.Store{}, nil))
	t.Cleanup(empty.Close)
	p, _ := newPeers(t, &Static{SelfURL: "http://self"}, Options{})
	for _, tc := range []struct {
		name     string
		peer     string
		switches []string
		want     []*snapshot.Snapshot
	}{
		{"all", srv.URL, nil, []*snapshot.Snapshot{switches, ports}},
		{"one switch", srv.URL, []string{"SW-03"}, []*snapshot.Snapshot{only(t, switches, "SW-03"), only(t, ports, "SW-03")}},
		{"a switch without ports", srv.URL, []string{"SW-02", "SW-99"}, []*snapshot.Snapshot{only(t, switches, "SW-02")}},
		{"none of them", srv.URL, []string{"SW-99"}, nil},
		{"no view", empty.URL, nil, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ans, err := p.Rows(context.Background(), tc.peer, tc.switches)
			if err != nil {
				t.Fatal(err)
			}
			got := ans.Parts
			if ans.Coverage != nil {
				t.Errorf("coverage %v from a replica that does not say what it holds", ans.Coverage)
			}
			if len(got) != len(tc.want) {
				t.Fatalf("%d snapshots, want %d", len(got), len(tc.want))
			}
			for i := range got {
				sameSnapshot(t, got[i], tc.want[i])
			}
		})
	}
	if n := requests(p, apiRows, srv.URL, resultSuccess); n != 4 {
		t.Errorf("%v successful requests for rows counted, want 4", n)
	}
}

// only is s restricted to some switches' rows.
func only(t testing.TB, s *snapshot.Snapshot, switches ...string) *snapshot.Snapshot {
	t.Helper()
	out, err := s.OfSwitches(switches)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func sameSnapshot(t *testing.T, got, want *snapshot.Snapshot) {
	t.Helper()
	if !got.Time().Equal(want.Time()) || fmt.Sprint(got.LabelNames(), got.Columns()) != fmt.Sprint(want.LabelNames(), want.Columns()) || got.NumRows() != want.NumRows() {
		t.Fatalf("got %v %v %v %d rows, want %v %v %v %d rows", got.Time(), got.LabelNames(), got.Columns(), got.NumRows(),
			want.Time(), want.LabelNames(), want.Columns(), want.NumRows())
	}
	for row := range want.NumRows() {
		for col := range want.Columns() {
			if g, w := got.Value(row, col), want.Value(row, col); g != w || fmt.Sprint(got.RowLabels(row)) != fmt.Sprint(want.RowLabels(row)) {
				t.Errorf("row %d col %d: %v %s, want %v %s", row, col, got.RowLabels(row), g.AppendJSON(nil), want.RowLabels(row), w.AppendJSON(nil))
			}
		}
	}
}

// TestRowsFailures fails a peer's answer that is cut, too large, late or an
// error, each counted with its result, and never takes a cut answer for
// a whole one.
func TestRowsFailures(t *testing.T) {
	switches, ports := rowsFixture(t)
	whole := httptest.NewRecorder()
	RowsHandler(storeOf(switches, ports), nil).ServeHTTP(whole, httptest.NewRequest(http.MethodGet, RowsPath, nil))
	body := whole.Body.Bytes()
	serve := func(h http.HandlerFunc) string {
		srv := httptest.NewServer(h)
		t.Cleanup(srv.Close)
		return srv.URL
	}
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	for _, tc := range []struct {
		name   string
		peer   string
		opts   Options
		err    string
		result string
	}{
		{"cut at a record's end", serve(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write(body[:len(body)-1]) }),
			Options{}, "unexpected EOF", resultError},
		{"cut in a record", serve(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write(body[:len(body)/2]) }),
			Options{}, "unexpected EOF", resultError},
		{"too large", serve(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write(body) }),
			Options{MaxAnswerBytes: int64(len(body) - 1)}, "--fanout.max-answer-bytes", resultTooLarge},
		{"error status", serve(func(w http.ResponseWriter, _ *http.Request) {
			http.Error(w, "disk on fire", http.StatusInternalServerError)
		}),
			Options{}, "disk on fire", resultError},
		{"slow", serve(func(w http.ResponseWriter, r *http.Request) {
			select {
			case <-r.Context().Done():
			case <-release:
			}
		}), Options{Timeout: 100 * time.Millisecond}, "deadline exceeded", resultTimeout},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, _ := newPeers(t, &Static{SelfURL: "http://self"}, tc.opts)
			_, err := p.Rows(context.Background(), tc.peer, nil)
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("got %v, want an error with %q", err, tc.err)
			}
			if n := requests(p, apiRows, tc.peer, tc.result); n != 1 {
				t.Errorf("%v requests counted as %s, want 1", n, tc.result)
			}
		})
	}
}

// TestRowsConcurrency holds the only --fanout.max-concurrency slot with a
// request to a peer that hangs: another request waits for the slot and
// gives up at its own deadline, without reaching its peer.
func TestRowsConcurrency(t *testing.T) {
	hung := make(chan struct{})
	release := make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(hung)
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	t.Cleanup(slow.Close)
	var reached atomic.Bool
	fast := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { reached.Store(true) }))
	t.Cleanup(fast.Close)
	p, _ := newPeers(t, &Static{SelfURL: "http://self"}, Options{MaxConcurrency: 1, Timeout: time.Minute})
	done := make(chan error)
	go func() {
		_, err := p.Rows(context.Background(), slow.URL, nil)
		done <- err
	}()
	<-hung
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	_, err := p.Rows(ctx, fast.URL, nil)
	if err == nil || !strings.Contains(err.Error(), "--fanout.max-concurrency") {
		t.Errorf("second request: %v, want it to wait for the slot and time out", err)
	}
	if reached.Load() {
		t.Error("the second request reached its peer without a slot")
	}
	close(release)
	<-done
}

// TestTransportMarksAndLimits checks what every request to a peer gets: the
// marker header with this replica's URL, and an answer cut at its size
// limit, announced or not.
func TestTransportMarksAndLimits(t *testing.T) {
	var header string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		header = r.Header.Get(PeerHeader)
		if r.URL.Query().Get("length") == "" {
			w.(http.Flusher).Flush() // no Content-Length
		}
		_, _ = w.Write(bytes.Repeat([]byte("x"), 100))
	}))
	t.Cleanup(srv.Close)
	p, _ := newPeers(t, &Static{SelfURL: "http://self"}, Options{})
	client := &http.Client{Transport: p.countedTransport(p.transport, srv.URL, apiLabels, 99)}
	for _, path := range []string{"/?length=1", "/"} {
		resp, err := client.Get(srv.URL + path)
		if err == nil {
			_, err = readBody(resp)
		}
		if !errors.Is(err, errTooLarge) {
			t.Errorf("%s: got %v, want the answer refused as too large", path, err)
		}
	}
	if header != "http://self" {
		t.Errorf("%s: %q, want this replica's URL", PeerHeader, header)
	}
	if n := requests(p, apiLabels, srv.URL, resultTooLarge); n != 2 {
		t.Errorf("%v requests counted too_large, want 2", n)
	}
	resp, err := (&http.Client{Transport: p.countedTransport(p.transport, srv.URL, apiLabels, 100)}).Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := readBody(resp); err != nil {
		t.Errorf("an answer of exactly the limit: %v", err)
	}
}

func readBody(resp *http.Response) ([]byte, error) {
	defer resp.Body.Close()
	return io.ReadAll(resp.Body)
}

// movingMembership is a Membership whose peers a test changes.
type movingMembership struct {
	Static
	peers atomic.Pointer[[]string]
}

func (m *movingMembership) Peers() []string { return *m.peers.Load() }

// TestPeerGauges checks fabric_fanout_peers and fabric_fanout_peer_up: the
// peers the membership names at the scrape (never this replica), each up
// until a request to it fails or times out and again once one succeeds,
// an answer only too large counting as up; a peer that left is forgotten.
func TestPeerGauges(t *testing.T) {
	switches, _ := rowsFixture(t)
	good := httptest.NewServer(RowsHandler(storeOf(switches), nil))
	t.Cleanup(good.Close)
	gone := httptest.NewServer(http.NotFoundHandler())
	gone.Close() // its address refuses connections
	m := &movingMembership{Static: Static{SelfURL: "http://self"}}
	m.peers.Store(&[]string{gone.URL, good.URL, "http://self"})
	p, reg := newPeers(t, m, Options{})
	gauges := func(up map[string]int) string {
		s := fmt.Sprintf(`# HELP fabric_fanout_peers Other replicas the membership names now: in partitioned mode, the group's other members as of its latest rebalance.
# TYPE fabric_fanout_peers gauge
fabric_fanout_peers %d
# HELP fabric_fanout_peer_up Per peer the membership names now: 0 when this replica's latest request to it timed out or failed, 1 otherwise (it answered, its answer was only too large, or it has not been asked since it joined).
# TYPE fabric_fanout_peer_up gauge
`, len(up))
		for _, peer := range []string{gone.URL, good.URL} {
			if v, ok := up[peer]; ok {
				s += fmt.Sprintf("fabric_fanout_peer_up{peer=%q} %d\n", peer, v)
			}
		}
		return s
	}
	checkOf := func(reg prometheus.Gatherer) func(when string, up map[string]int) {
		return func(when string, up map[string]int) {
			t.Helper()
			if err := testutil.GatherAndCompare(reg, strings.NewReader(gauges(up)), "fabric_fanout_peers", "fabric_fanout_peer_up"); err != nil {
				t.Errorf("%s: %v", when, err)
			}
		}
	}
	check := checkOf(reg)
	check("before any request", map[string]int{gone.URL: 1, good.URL: 1})

	if _, err := p.Rows(context.Background(), gone.URL, nil); err == nil {
		t.Fatal("a request to a closed server succeeded")
	}
	if _, err := p.Rows(context.Background(), good.URL, nil); err != nil {
		t.Fatal(err)
	}
	check("after a failed and a good request", map[string]int{gone.URL: 0, good.URL: 1})

	tight, tightReg := newPeers(t, m, Options{MaxAnswerBytes: 10})
	if _, err := tight.Rows(context.Background(), good.URL, nil); !errors.Is(err, errTooLarge) {
		t.Fatalf("got %v, want an answer too large", err)
	}
	checkOf(tightReg)("after an answer too large", map[string]int{gone.URL: 1, good.URL: 1})

	m.peers.Store(&[]string{good.URL})
	check("after the failed peer left", map[string]int{good.URL: 1})
	m.peers.Store(&[]string{gone.URL, good.URL})
	check("once it is back, not asked yet", map[string]int{gone.URL: 1, good.URL: 1})
}
