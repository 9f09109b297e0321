package restapi

import (
	"bytes"
	"encoding/json"
	"math"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/gorilla/mux"

	"github.com/fabrictelemetry/aggregator/schema"
	"github.com/fabrictelemetry/aggregator/snapshot"
)

// snapTime is the fixture's source time; clockAt is the injected clock,
// 2.5 s later, so every answer's age_seconds is exactly 2.5.
var (
	snapTime = time.Date(2026, 11, 25, 19, 30, 0, 123_000_000, time.UTC)
	clockAt  = snapTime.Add(2500 * time.Millisecond)
)

const (
	snapTimeText = "2026-11-25T19:30:00.123Z"
	maxUint64    = "18446744073709551615"
)

// cell is a fixture value: its snapshot.Value and the JSON a client must
// read for it (empty when absent, so the key is omitted).
type cell struct {
	v    snapshot.Value
	json string
}

var fixtureColumns = []string{"Rx_Bytes", "Latency_Avg_uSec", "Temperature_C", "Delta", "Power_W"}

// fixtureRows are given out of order on purpose; the API must sort them.
var fixtureRows = []struct {
	id     string
	values []cell
}{
	{"SW-10", []cell{
		{snapshot.UintValue(math.MaxUint64), maxUint64},
		{snapshot.FloatValue(1.234), "1.234"},
		{snapshot.FloatValue(math.NaN()), "null"},
		{snapshot.IntValue(-5), "-5"},
		{snapshot.FloatValue(math.Inf(1)), "null"},
	}},
	{"SW-01", []cell{
		{snapshot.UintValue(1<<53 + 1), "9007199254740993"},
		{snapshot.FloatValue(0.5), "0.5"},
		{snapshot.FloatValue(41.25), "41.25"},
		{snapshot.IntValue(0), "0"},
		{snapshot.FloatValue(math.Inf(-1)), "null"},
	}},
	{"SW-02", []cell{
		{snapshot.Value{}, ""}, // the source left it empty
		{snapshot.FloatValue(1e-7), "1e-7"},
		{snapshot.FloatValue(1e21), "1e+21"},
		{snapshot.Value{}, ""},
		{snapshot.FloatValue(250), "250"},
	}},
}

// fixtureIDs are the fixture's switch ids in string order.
var fixtureIDs = []string{"SW-01", "SW-02", "SW-10"}

func fixtureSnapshot(t testing.TB) *snapshot.Snapshot {
	t.Helper()
	b := snapshot.NewBuilder([]string{snapshot.SwitchLabel}, fixtureColumns, len(fixtureRows))
	for _, r := range fixtureRows {
		row := b.AddRow(r.id)
		for col, c := range r.values {
			if c.v.Present() {
				b.Set(row, col, c.v)
			}
		}
	}
	s, err := b.Build(snapTime, make([]schema.Metric, len(fixtureColumns)))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func fixtureCell(id, metric string) cell {
	for _, r := range fixtureRows {
		if r.id != id {
			continue
		}
		for col, name := range fixtureColumns {
			if name == metric {
				return r.values[col]
			}
		}
	}
	panic("no fixture cell " + id + " " + metric)
}

// newRouter serves the API as the aggregator does, on a gorilla/mux router,
// over a store holding snap alone (nil: before the first snapshot).
func newRouter(snap *snapshot.Snapshot, retryAfter time.Duration) http.Handler {
	if snap == nil {
		return viewRouter(nil, retryAfter)
	}
	return viewRouter(snapshot.NewView(snap), retryAfter)
}

// viewRouter is newRouter over a store holding view.
func viewRouter(view *snapshot.View, retryAfter time.Duration) http.Handler {
	store := &snapshot.Store{}
	if view != nil {
		store.PublishView(view)
	}
	r := mux.NewRouter()
	New(store, retryAfter, func() time.Time { return clockAt }).Register(r)
	return r
}

func serve(h http.Handler, method, target string) *httptest.ResponseRecorder {
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest(method, target, nil))
	return w
}

// decodeObject decodes a JSON object keeping numbers as written.
func decodeObject(t testing.TB, body []byte) map[string]any {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		t.Fatalf("body is not a JSON object: %v\n%s", err, body)
	}
	if dec.More() {
		t.Fatalf("trailing data after the JSON object: %s", body)
	}
	return m
}

// raw returns the JSON text of a decoded value: a json.Number's digits,
// "null" for nil.
func raw(v any) string {
	if n, ok := v.(json.Number); ok {
		return string(n)
	}
	b, _ := json.Marshal(v)
	return string(b)
}

// checkError checks an error answer: the status, a JSON {"error": "..."}
// body and nothing else, and that the message contains each of want.
func checkError(t testing.TB, w *httptest.ResponseRecorder, code int, want ...string) {
	t.Helper()
	if w.Code != code {
		t.Fatalf("status %d, want %d; body %s", w.Code, code, w.Body)
	}
	if ct := w.Header().Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q, want application/json", ct)
	}
	if !json.Valid(w.Body.Bytes()) {
		t.Fatalf("error body is not valid JSON: %q", w.Body)
	}
	var e map[string]string
	if err := json.Unmarshal(w.Body.Bytes(), &e); err != nil || len(e) != 1 || e["error"] == "" {
		t.Fatalf(`error body is not {"error": "..."}: %s (%v)`, w.Body, err)
	}
	for _, s := range want {
		if !bytes.Contains([]byte(e["error"]), []byte(s)) {
			t.Errorf("error %q does not mention %q", e["error"], s)
		}
	}
}

func newStore(t testing.TB) *snapshot.Store {
	store := &snapshot.Store{}
	store.Publish(fixtureSnapshot(t))
	return store
}

// routerAt serves store with the clock stopped at now.
func routerAt(store *snapshot.Store, now time.Time) http.Handler {
	r := mux.NewRouter()
	New(store, time.Second, func() time.Time { return now }).Register(r)
	return r
}
