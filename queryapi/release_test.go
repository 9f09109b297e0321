package queryapi

import (
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
)

// countingReleaser is a releaser with short waits that counts its releases
// instead of collecting.
type countingReleaser struct {
	*releaser
	mu    sync.Mutex
	times []time.Time
}

func newCountingReleaser(t *testing.T, quiet, interval time.Duration) *countingReleaser {
	c := &countingReleaser{releaser: newReleaser()}
	c.quiet, c.interval = quiet, interval
	c.free = func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		c.times = append(c.times, time.Now())
	}
	t.Cleanup(c.stop)
	return c
}

func (c *countingReleaser) released() []time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]time.Time(nil), c.times...)
}

// waitReleases waits until n releases happened.
func (c *countingReleaser) waitReleases(t *testing.T, n int) []time.Time {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		if got := c.released(); len(got) >= n {
			return got
		}
	}
	t.Fatalf("%d releases within 5s, want %d", len(c.released()), n)
	return nil
}

// Memory is released once the heavy queries are over (none in flight), not
// while one runs, not after light queries, and not twice within the
// interval.
func TestReleaseAfterHeavyQueries(t *testing.T) {
	const quiet, interval = 5 * time.Millisecond, 200 * time.Millisecond
	r := newCountingReleaser(t, quiet, interval)

	r.start()
	r.end(false)
	if r.due || r.timer != nil {
		t.Fatal("a light query scheduled a release")
	}

	// A heavy query ends while another runs: nothing until that one ends.
	r.start()
	r.start()
	r.end(true)
	r.release() // as the timer would, had one been set
	if got := r.released(); len(got) != 0 {
		t.Fatalf("released with a query in flight: %v", got)
	}
	ended := time.Now()
	r.end(false)
	first := r.waitReleases(t, 1)[0]
	if first.Sub(ended) < quiet {
		t.Errorf("released %s after the last query ended, before the quiet period of %s", first.Sub(ended), quiet)
	}

	// The next heavy query right after: released no sooner than the
	// interval after the first.
	r.start()
	r.end(true)
	if second := r.waitReleases(t, 2)[1]; second.Sub(first) < interval {
		t.Errorf("second release %s after the first, within the interval of %s", second.Sub(first), interval)
	}
}

// A query whose answer reaches the heavy size is released after it is sent.
func TestHeavyAnswerReleased(t *testing.T) {
	a := newTestAPI(t, fixtureHistory(t), Options{})
	r := newCountingReleaser(t, time.Millisecond, time.Millisecond)
	a.release = r.releaser
	a.heavyBytes = 100 // the fixture's answers are a few hundred bytes
	a.get(t, "/api/v1/query", "query", "1")
	if r.due || len(r.released()) != 0 {
		t.Fatal("a 60-byte answer counted as heavy")
	}
	a.ok(t, "/api/v1/query", "query", "fabric_switch_transmit_bytes_total", "time", unix(50*time.Second))
	r.waitReleases(t, 1)
}

// The engine's result is released (qry.Close) once encoded, before the
// client reads the answer: a slow client holds only the answer.
func TestResultReleasedBeforeSend(t *testing.T) {
	a := newTestAPI(t, fixtureHistory(t), Options{})
	closed := false
	h := a.wrap(func(*http.Request) result {
		v := promql.Vector{{Metric: labels.FromStrings("a", "b"), T: 1000, F: 1}}
		return result{data: queryData{ResultType: v.Type(), Result: v}, finalizer: func() { closed = true }}
	})
	w := &watchingWriter{ResponseRecorder: httptest.NewRecorder(), onWrite: func() {
		if !closed {
			t.Error("the answer is being written and the result is not released")
		}
	}}
	h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/api/v1/query", nil))
	if w.Code != http.StatusOK || !closed {
		t.Errorf("%d, released %v", w.Code, closed)
	}
}

type watchingWriter struct {
	*httptest.ResponseRecorder
	onWrite func()
}

func (w *watchingWriter) Write(p []byte) (int, error) {
	w.onWrite()
	return w.ResponseRecorder.Write(p)
}
