package queryapi

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/util/annotations"
)

func TestErrors(t *testing.T) {
	long := "sum(" + strings.Repeat("fabric_switch_ports_up + ", 700) + "1)" // over 16 KiB
	for _, tc := range []struct {
		name     string
		opts     Options
		path     string
		params   []string
		wantCode int
		wantType string
		wantMsg  string
	}{
		{"parse error", Options{}, "/api/v1/query", []string{"query", "sum(("}, 400, "bad_data", `invalid parameter "query"`},
		{"empty query", Options{}, "/api/v1/query", nil, 400, "bad_data", `invalid parameter "query"`},
		{"bad time", Options{}, "/api/v1/query", []string{"query", "1", "time", "yesterday"}, 400, "bad_data", `invalid parameter "time"`},
		{"bad timeout", Options{}, "/api/v1/query", []string{"query", "1", "timeout", "-1s"}, 400, "bad_data", `invalid parameter "timeout"`},
		{"too long", Options{}, "/api/v1/query", []string{"query", long}, 400, "bad_data", "--query.max-length"},
		{"bad lookback", Options{}, "/api/v1/query", []string{"query", "1", "lookback_delta", "x"}, 400, "bad_data", "lookback delta"},
		{"bad start", Options{}, "/api/v1/query_range", []string{"query", "1", "start", "x", "end", "10", "step", "1"}, 400, "bad_data", `invalid parameter "start"`},
		{"end before start", Options{}, "/api/v1/query_range", []string{"query", "1", "start", "10", "end", "5", "step", "1"}, 400, "bad_data", "end timestamp must not be before start time"},
		{"zero step", Options{}, "/api/v1/query_range", []string{"query", "1", "start", "0", "end", "10", "step", "0"}, 400, "bad_data", "zero or negative"},
		{"too many points", Options{}, "/api/v1/query_range", []string{"query", "1", "start", "0", "end", "11001", "step", "1"}, 400, "bad_data", "11,000 points"},
		// FuzzQuery's finding: the engine would run this for seconds past
		// the timeout.
		{"subquery resolution", Options{Timeout: 100 * time.Millisecond}, "/api/v1/query", []string{"query", "max_over_time(fabric_switch_temperature_celsius[10d:1ms])"}, 400, "bad_data", "points per timeseries in subquery"},
		{"nested subquery resolution", Options{}, "/api/v1/query_range", []string{"query", "max_over_time(max_over_time(rate(fabric_switch_transmit_bytes_total[1m])[1h:10s])[4h:1s])", "start", "0", "end", "60", "step", "10"}, 400, "bad_data", "in subquery"},
		{"default subquery step", Options{}, "/api/v1/query", []string{"query", "max_over_time(fabric_switch_temperature_celsius[8d:])"}, 400, "bad_data", "in subquery"},
		{"series without match", Options{}, "/api/v1/series", nil, 400, "bad_data", "no match[] parameter provided"},
		{"series matching everything", Options{}, "/api/v1/series", []string{"match[]", `{switch_id=~".*"}`}, 400, "bad_data", "non-empty matcher"},
		{"bad matcher", Options{}, "/api/v1/labels", []string{"match[]", "{"}, 400, "bad_data", `invalid parameter "match[]"`},
		{"bad limit", Options{}, "/api/v1/label/switch_id/values", []string{"limit", "-1"}, 400, "bad_data", `invalid parameter "limit"`},
		{"bad label name", Options{}, "/api/v1/label/U__%ff/values", nil, 400, "bad_data", "invalid label name"},
		{"bad metadata limit", Options{}, "/api/v1/metadata", []string{"limit", "x"}, 400, "bad_data", "limit must be a number"},
		// Three series loaded at once, over a limit of two.
		{"max samples", Options{MaxSamples: 2}, "/api/v1/query", []string{"query", "fabric_switch_transmit_bytes_total"}, 422, "execution", "query processing would load too many samples"},
		// Dropping the name leaves two series with one label set.
		{"evaluation error", Options{}, "/api/v1/query", []string{"query", `-{__name__=~"fabric_switch_t.*", switch_id="SW-01"}`}, 422, "execution", "same labelset"},
		// The test clock is long past, so any deadline from it has expired.
		{"timeout", Options{}, "/api/v1/query", []string{"query", "fabric_switch_transmit_bytes_total", "timeout", "1m"}, 503, "timeout", "query timed out"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := newTestAPI(t, fixtureHistory(t), tc.opts)
			checkError(t, tc.wantCode, tc.wantType, tc.wantMsg)(a.get(t, tc.path, tc.params...))
		})
	}
}

func checkError(t *testing.T, code int, typ, msg string) func(int, envelope) {
	return func(gotCode int, env envelope) {
		t.Helper()
		if gotCode != code || env.Status != "error" || env.ErrorType != typ || !strings.Contains(env.Error, msg) {
			t.Errorf("got %d %q %q %q, want %d error %q containing %q", gotCode, env.Status, env.ErrorType, env.Error, code, typ, msg)
		}
		if env.Data != nil {
			t.Errorf("error with data %s", env.Data)
		}
	}
}

func TestCanceledByClient(t *testing.T) {
	a := newTestAPI(t, fixtureHistory(t), Options{})
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	checkError(t, 499, "canceled", "query was canceled")(
		a.do(t, ctx, http.MethodGet, "/api/v1/query", values("query", "fabric_switch_transmit_bytes_total")))
}

// failingQueryable stands for storage that fails. Prometheus reports a
// promql.ErrStorage as internal and any other failure as execution.
type failingQueryable struct{ err error }

func (q failingQueryable) Querier(int64, int64) (storage.Querier, error) { return q, nil }

func (q failingQueryable) Select(context.Context, bool, *storage.SelectHints, ...*labels.Matcher) storage.SeriesSet {
	return storage.ErrSeriesSet(q.err)
}

func (failingQueryable) LabelValues(context.Context, string, *storage.LabelHints, ...*labels.Matcher) ([]string, annotations.Annotations, error) {
	return nil, nil, errors.New("disk on fire")
}

func (failingQueryable) LabelNames(context.Context, *storage.LabelHints, ...*labels.Matcher) ([]string, annotations.Annotations, error) {
	return nil, nil, errors.New("disk on fire")
}

func (failingQueryable) Close() error { return nil }

func TestStorageErrors(t *testing.T) {
	a := newTestAPI(t, fixtureHistory(t), Options{})
	a.queryable = failingQueryable{promql.ErrStorage{Err: errors.New("disk on fire")}}
	checkError(t, 500, "internal", "disk on fire")(a.get(t, "/api/v1/query", "query", "fabric_switch_transmit_bytes_total"))
	checkError(t, 422, "execution", "disk on fire")(a.get(t, "/api/v1/labels"))
	a.queryable = failingQueryable{errors.New("bad block")}
	checkError(t, 422, "execution", "expanding series: bad block")(a.get(t, "/api/v1/query", "query", "fabric_switch_transmit_bytes_total"))
	// A deadline that runs out while series are read is the client's
	// timeout, not a failed execution.
	a.queryable = failingQueryable{fmt.Errorf("reading history: %w", context.DeadlineExceeded)}
	checkError(t, 503, "timeout", "context deadline exceeded")(a.get(t, "/api/v1/query", "query", "fabric_switch_transmit_bytes_total"))
}

// Over --query.max-concurrency a query waits for a slot: it runs when one
// is freed, and fails as a timeout when its deadline comes first.
func TestConcurrencyLimit(t *testing.T) {
	a := newTestAPI(t, fixtureHistory(t), Options{MaxConcurrency: 1})
	queued := make(chan struct{}, 1)
	a.gate.queued = func() { queued <- struct{}{} }
	if _, err := a.gate.Insert(t.Context(), "held by the test"); err != nil {
		t.Fatal(err)
	}

	type answer struct {
		code int
		env  envelope
	}
	done := make(chan answer)
	go func() {
		code, env := a.do(t, t.Context(), http.MethodGet, "/api/v1/query", values("query", "count(fabric_switch_transmit_bytes_total)"))
		done <- answer{code, env}
	}()
	<-queued
	a.gate.Delete(0)
	got := <-done
	if res := decode[queryResult](t, success(t, got.code, got.env)); !strings.Contains(string(res.Result), `"3"`) {
		t.Errorf("queued query answered %s", res.Result)
	}

	if _, err := a.gate.Insert(t.Context(), "held by the test"); err != nil {
		t.Fatal(err)
	}
	defer a.gate.Delete(0)
	ctx, cancel := context.WithDeadline(t.Context(), time.Now().Add(20*time.Millisecond))
	defer cancel()
	checkError(t, 503, "timeout", "query timed out in query queue")(
		a.do(t, ctx, http.MethodGet, "/api/v1/query", values("query", "1")))
}
