package queryapi

import (
	"bytes"
	"context"
	"errors"
	"math"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"testing"
	"time"

	"github.com/alecthomas/units"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/storage"
)

// bigMatrix is a matrix of n series of 100 points each.
func bigMatrix(n int) promql.Matrix {
	m := make(promql.Matrix, n)
	for i := range m {
		m[i].Metric = labels.FromStrings("__name__", "fabric_port_transmit_bytes_total", "switch_id", "SW-0001", "port", string(rune('a'+i%26)))
		for k := range 100 {
			m[i].Floats = append(m[i].Floats, promql.FPoint{T: int64(k) * 1000, F: float64(i*k) + 0.5})
		}
	}
	return m
}

// An answer is refused as soon as it passes the limit: the body never
// holds more than the limit and one more point. At the limit it passes.
func TestBodyLimit(t *testing.T) {
	m := bigMatrix(200) // about 290 KB: several chunks
	full, err := encodeBody(t, queryResponse(m), math.MaxInt64)
	if err != nil {
		t.Fatal(err)
	}
	n := int64(len(full))
	if n < 3*chunkSize {
		t.Fatalf("answer of %d bytes: too small to test chunking", n)
	}
	if got, err := encodeBody(t, queryResponse(m), n); err != nil || !bytes.Equal(got, full) {
		t.Errorf("at the limit: %v, %d bytes of %d", err, len(got), n)
	}
	if _, err := encodeBody(t, queryResponse(m), n-1); !errors.Is(err, errTooLarge) {
		t.Errorf("one byte over the limit: %v", err)
	}
	for _, limit := range []int64{0, 1, 100, chunkSize - 1, chunkSize, n / 2} {
		b := newBody(newChunkPool(4), limit)
		if err := b.response(queryResponse(m)); !errors.Is(err, errTooLarge) {
			t.Fatalf("limit %d: %v", limit, err)
		}
		// One point or one label set (with the envelope's opening, for
		// the smallest limits) past the limit at most.
		if over := b.Len() - limit; over > 200 {
			t.Errorf("limit %d: stopped %d bytes past it", limit, over)
		}
		b.release()
	}
}

// The pool keeps at most its size in chunks, whatever the answers were.
func TestChunkPoolBounded(t *testing.T) {
	pool := newChunkPool(4)
	b := newBody(pool, math.MaxInt64)
	if err := b.response(queryResponse(bigMatrix(400))); err != nil {
		t.Fatal(err)
	}
	if len(b.full) < 6 {
		t.Fatalf("%d chunks: too few to test the bound", len(b.full)+1)
	}
	b.release()
	if got := len(pool.free); got != cap(pool.free) {
		t.Errorf("pool holds %d chunks, want %d", got, cap(pool.free))
	}
	for range cap(pool.free) {
		if c := pool.get(); cap(c) != chunkSize || len(c) != 0 {
			t.Fatalf("pooled chunk of len %d cap %d", len(c), cap(c))
		}
	}
	pool.put(make([]byte, 0, 2*chunkSize)) // a chunk that grew is not kept
	if len(pool.free) != 0 {
		t.Error("the pool kept a chunk larger than its chunks")
	}
}

// Each limit refuses a query over it with Prometheus's envelope, the error
// type Prometheus uses and a message naming the flag, counts the refusal,
// and lets a query at the limit through.
func TestQueryLimits(t *testing.T) {
	const (
		tx   = "fabric_switch_transmit_bytes_total"                                     // 3 series in the fixture at t0+50s
		both = "fabric_switch_transmit_bytes_total + fabric_switch_temperature_celsius" // 3 + 3 series loaded
	)
	// The size of tx's answer, to set the limit at and one byte under.
	size := int64(len(rawAnswer(t, newTestAPI(t, fixtureHistory(t), Options{}), tx)))
	for _, tc := range []struct {
		name     string
		opts     Options
		query    string
		wantCode int
		wantType string
		wantMsg  string
		limit    string
	}{
		{"samples at the limit", Options{MaxSamples: 3}, tx, 200, "", "", ""},
		{"samples over the limit", Options{MaxSamples: 2}, tx, 422, "execution", "too many samples into memory in query execution (limit: 2 samples, --query.max-samples)", limitSamples},
		{"series at the limit", Options{MaxSeries: 3}, tx, 200, "", "", ""},
		{"series over the limit", Options{MaxSeries: 2}, tx, 422, "cost_limit", "too many series into memory in query execution (limit: 2 series, --query.max-series)", limitSeries},
		{"series of all selectors at the limit", Options{MaxSeries: 6}, both, 200, "", "", ""},
		{"series of all selectors over the limit", Options{MaxSeries: 5}, both, 422, "cost_limit", "--query.max-series", limitSeries},
		{"response at the limit", Options{MaxResponseBytes: size}, tx, 200, "", "", ""},
		{"response over the limit", Options{MaxResponseBytes: size - 1}, tx, 422, "execution", "larger than " + units.Base2Bytes(size-1).String() + " (--query.max-response-bytes)", limitResponseBytes},
	} {
		t.Run(tc.name, func(t *testing.T) {
			reg := prometheus.NewPedanticRegistry()
			tc.opts.Registerer = reg
			a := newTestAPI(t, fixtureHistory(t), tc.opts)
			code, env := a.get(t, "/api/v1/query", "query", tc.query, "time", unix(50*time.Second))
			if tc.wantCode == 200 {
				success(t, code, env)
			} else {
				checkError(t, tc.wantCode, tc.wantType, tc.wantMsg)(code, env)
			}
			checkRefused(t, reg, tc.limit)
		})
	}
}

// rawAnswer is the body of a successful instant query at t0+50s.
func rawAnswer(t *testing.T, a *testAPI, query string) []byte {
	t.Helper()
	req := httptest.NewRequest(http.MethodGet, "/api/v1/query?"+url.Values{"query": {query}, "time": {unix(50 * time.Second)}}.Encode(), nil)
	rec := httptest.NewRecorder()
	a.router.ServeHTTP(rec, req)
	if rec.Code != http.StatusOK {
		t.Fatalf("%s: %d %s", query, rec.Code, rec.Body)
	}
	if cl := rec.Header().Get("Content-Length"); cl != strconv.Itoa(rec.Body.Len()) {
		t.Errorf("Content-Length %s for %d bytes", cl, rec.Body.Len())
	}
	return rec.Body.Bytes()
}

// checkRefused checks that fabric_query_refused_total counts one refusal
// by limit (none if limit is ""), and none by any other.
func checkRefused(t *testing.T, reg *prometheus.Registry, limit string) {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	seen := 0
	for _, f := range families {
		if f.GetName() != "fabric_query_refused_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			seen++
			l, want := m.GetLabel()[0].GetValue(), 0.0
			if l == limit {
				want = 1
			}
			if got := m.GetCounter().GetValue(); got != want {
				t.Errorf("fabric_query_refused_total{limit=%q} = %v, want %v", l, got, want)
			}
		}
	}
	if seen != 5 {
		t.Errorf("fabric_query_refused_total has %d series, want one per limit (5)", seen)
	}
}

// A query that times out, evaluating or waiting for a slot, is counted by
// where it was.
func TestTimeoutsCounted(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	a := newTestAPI(t, fixtureHistory(t), Options{MaxConcurrency: 1, Registerer: reg})
	// The test clock is long past, so any deadline from it has expired
	// before the query gets to its slot.
	checkError(t, 503, "timeout", "query timed out")(a.get(t, "/api/v1/query", "query", "fabric_switch_transmit_bytes_total", "timeout", "1m"))
	if got := testutil.ToFloat64(a.metrics.refused.WithLabelValues(limitQueue)); got != 1 {
		t.Errorf("queue: %v", got)
	}

	// A storage that blocks until the deadline: the query times out while
	// evaluating.
	a.queryable = blockingQueryable{}
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	checkError(t, 503, "timeout", "")(a.do(t, ctx, http.MethodGet, "/api/v1/query", values("query", "fabric_switch_transmit_bytes_total")))
	if got := testutil.ToFloat64(a.metrics.refused.WithLabelValues(limitTimeout)); got != 1 {
		t.Errorf("timeout: %v", got)
	}
}

// blockingQueryable is storage whose selects wait for the query's deadline.
type blockingQueryable struct{ failingQueryable }

func (q blockingQueryable) Querier(int64, int64) (storage.Querier, error) { return q, nil }

func (blockingQueryable) Select(ctx context.Context, _ bool, _ *storage.SelectHints, _ ...*labels.Matcher) storage.SeriesSet {
	<-ctx.Done()
	return storage.ErrSeriesSet(ctx.Err())
}
