package cluster

import (
	"context"
	"errors"
	"math"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"

	"github.com/fabrictelemetry/aggregator/history"
	"github.com/fabrictelemetry/aggregator/schema"
	"github.com/fabrictelemetry/aggregator/snapshot"
)

// servingStatic is a Static membership whose replica says which
// partitions it holds, as a partitioned replica's does.
type servingStatic struct {
	Static
	held atomic.Pointer[[]int32]
}

func newServingStatic(m Static, held ...int32) *servingStatic {
	s := &servingStatic{Static: m}
	s.hold(held...)
	return s
}

func (s *servingStatic) hold(held ...int32) { s.held.Store(&held) }

func (s *servingStatic) Serving() (int, []int32) { return len(s.PartitionOwners), *s.held.Load() }

// shifting is a Serving whose answer changes at every call.
type shifting struct {
	answers [][]int32
	calls   int
}

func (s *shifting) Serving() (int, []int32) {
	held := s.answers[min(s.calls, len(s.answers)-1)]
	s.calls++
	return 8, held
}

func TestCoverageWire(t *testing.T) {
	for _, c := range []Coverage{{Partitions: 16, Held: []int32{0, 3, 15}}, {Partitions: 4, Held: []int32{}}} {
		got, err := ParseCoverage(c.String())
		if err != nil || got.Partitions != c.Partitions || !slices.Equal(got.Held, c.Held) {
			t.Errorf("%q read back as %+v, %v", c.String(), got, err)
		}
	}
	for _, bad := range []string{"", "16", "x:1", "-1:", "4:4", "4:1,,2", "4:-1"} {
		if _, err := ParseCoverage(bad); err == nil {
			t.Errorf("%q read without an error", bad)
		}
	}
	for _, tc := range []struct {
		answers []Coverage
		want    []int32
	}{
		{[]Coverage{{4, []int32{0, 2}}, {4, []int32{1}}}, []int32{3}},
		{[]Coverage{{4, []int32{0, 2}}, {4, []int32{1, 3}}}, nil},
		{[]Coverage{{4, nil}, {0, nil}}, []int32{0, 1, 2, 3}},
		{[]Coverage{{}, {}}, nil}, // no count known: nothing to name
	} {
		if got := Missing(tc.answers...); !slices.Equal(got, tc.want) {
			t.Errorf("Missing(%v) = %v, want %v", tc.answers, got, tc.want)
		}
		switch err := Uncovered(tc.answers...); {
		case len(tc.want) == 0 && tc.answers[0].Partitions > 0 && err != nil:
			t.Errorf("Uncovered(%v) = %v, want nil", tc.answers, err)
		case len(tc.want) > 0 && (err == nil || !slices.Equal(err.Partitions, tc.want)):
			t.Errorf("Uncovered(%v) = %v, want partitions %v", tc.answers, err, tc.want)
		}
	}
	// Before this replica joined its group, nobody knows the partitions:
	// every answer may lack any of them, and says so.
	if err := Uncovered(Coverage{}); err == nil || !strings.Contains(err.Error(), "not known yet") {
		t.Errorf("Uncovered with no partition count: %v", err)
	}
	if msg := (&MissingError{Partitions: []int32{3, 7}}).Error(); !strings.HasPrefix(msg, "partitions 3, 7 of the poll log are held by no replica") {
		t.Errorf("message %q", msg)
	}
}

// TestHeld keeps only the partitions held both before and after the load:
// one given up during it, or loaded during it, may or may not be in what
// was loaded.
func TestHeld(t *testing.T) {
	s := &shifting{answers: [][]int32{{0, 1, 2}, {1, 2, 3}}}
	p, _ := newPeers(t, &struct {
		Static
		*shifting
	}{Static{SelfURL: "http://self"}, s}, Options{})
	loaded := false
	c := p.Held(func() { loaded = s.calls == 1 })
	if !loaded || c.Partitions != 8 || !slices.Equal(c.Held, []int32{1, 2}) {
		t.Errorf("held %+v (loaded between the two calls: %v), want partitions 1 and 2 of 8", c, loaded)
	}
	if p, _ := newPeers(t, &Static{}, Options{}); p.Covers() || p.Held(func() {}).Partitions != 0 {
		t.Error("a membership without Serving covers something")
	}
}

// TestRowsCoverage: a replica's rows answer says which partitions its view
// held whole, and the asking replica reads it.
func TestRowsCoverage(t *testing.T) {
	switches, ports := rowsFixture(t)
	m := newServingStatic(Static{SelfURL: "http://peer", PartitionOwners: []string{"http://peer", "http://self", "http://peer"}}, 0, 2)
	srv := httptest.NewServer(RowsHandler(storeOf(switches, ports), m))
	t.Cleanup(srv.Close)
	p, _ := newPeers(t, &Static{SelfURL: "http://self"}, Options{})
	ans, err := p.Rows(context.Background(), srv.URL, []string{"SW-01"})
	if err != nil {
		t.Fatal(err)
	}
	if ans.Coverage == nil || ans.Coverage.Partitions != 3 || !slices.Equal(ans.Coverage.Held, []int32{0, 2}) {
		t.Errorf("coverage %+v, want partitions 0 and 2 of 3", ans.Coverage)
	}
	if len(ans.Parts) != 2 {
		t.Errorf("%d parts", len(ans.Parts))
	}
}

// TestRemoteReadCoverage queries through two replicas of two partitions,
// each holding one: while each holds its own, the answer is whole; while
// the peer holds nothing (it gave its partition up, or is still loading
// it), each select warns that its partition is held by no replica, though
// the peer answered, and a strict read (what a Prometheus server's
// remote_read gets) fails. The peer's answer says what it holds in a
// trailer of its remote-read answer.
func TestRemoteReadCoverage(t *testing.T) {
	peerHistory := history.New(time.Hour)
	localHistory := history.New(time.Hour)
	at := time.Date(2026, 11, 25, 19, 30, 0, 0, time.UTC)
	peerHistory.Append(oneSwitch(t, at, "SW-02"))
	localHistory.Append(oneSwitch(t, at, "SW-01"))

	var peerURL string
	peerServing := newServingStatic(Static{}, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		NewReadHandler(peerHistory.Queryable(), nil, peerServing, ReadLimits{Samples: 1000, Concurrency: 1}, nil).ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	peerURL = srv.URL
	self := newServingStatic(Static{SelfURL: "http://self", PeerURLs: []string{peerURL}, PartitionOwners: []string{"http://self", peerURL}}, 0)
	peerServing.PartitionOwners = self.PartitionOwners
	p, _ := newPeers(t, self, Options{Timeout: 5 * time.Second})
	q := p.Queryable(localHistory.Queryable(), 1<<20)

	all := labels.MustNewMatcher(labels.MatchRegexp, model.MetricNameLabel, ".+")
	read := func(qy storage.Queryable) (series int, warnings []string, err error) {
		querier, err := qy.Querier(math.MinInt64, math.MaxInt64)
		if err != nil {
			return 0, nil, err
		}
		defer querier.Close()
		set := querier.Select(context.Background(), true, nil, all)
		for set.Next() {
			series++
		}
		for _, w := range set.Warnings() {
			warnings = append(warnings, w.Error())
		}
		return series, warnings, set.Err()
	}
	whole, ws, err := read(q)
	if err != nil || len(ws) != 0 || whole == 0 {
		t.Fatalf("each replica holding its partition: %d series, warnings %q, %v", whole, ws, err)
	}

	peerServing.hold()
	n, ws, err := read(q)
	if err != nil || n != whole || len(ws) != 1 || !strings.Contains(ws[0], "partition 1 of the poll log is held by no replica that answered") {
		t.Errorf("the peer holding nothing: %d series, warnings %q, %v; want its series and a warning naming partition 1", n, ws, err)
	}
	var missing *MissingError
	if _, _, err := read(q.Strict()); !errors.As(err, &missing) || !slices.Equal(missing.Partitions, []int32{1}) {
		t.Errorf("strict read with the peer holding nothing: %v, want it to fail naming partition 1", err)
	}

	peerServing.hold(1)
	self.hold()
	if _, ws, _ := read(q); len(ws) != 1 || !strings.Contains(ws[0], "partition 0 of the poll log") {
		t.Errorf("this replica holding nothing: warnings %q, want one naming partition 0", ws)
	}
}

// oneSwitch is a snapshot of one switch's Rx_Bytes.
func oneSwitch(t *testing.T, at time.Time, id string) *snapshot.Snapshot {
	t.Helper()
	b := snapshot.NewBuilder([]string{snapshot.SwitchLabel}, []string{"Rx_Bytes"}, 1)
	b.AddRowValues([]string{id}, []snapshot.Value{snapshot.UintValue(7)})
	metrics, _ := schema.Default().Resolve(schema.SwitchSubsystem, []string{"Rx_Bytes"})
	s, err := b.Build(at, metrics)
	if err != nil {
		t.Fatal(err)
	}
	return s
}
