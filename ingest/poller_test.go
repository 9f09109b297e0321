package ingest

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/fabrictelemetry/aggregator/schema"
	"github.com/fabrictelemetry/aggregator/snapshot"
)

// shardedSource serves rows switch SW-<i> for i < n, and with
// ?num_shards=N&shard=s only the rows with i % N == s.
func shardedSource(t *testing.T, n int) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		shards, shard := 1, 0
		if q := r.URL.Query(); q.Has("num_shards") {
			shards, _ = strconv.Atoi(q.Get("num_shards"))
			shard, _ = strconv.Atoi(q.Get("shard"))
		}
		var b strings.Builder
		b.WriteString("switch_id,port,timestamp,Rx_Bytes,Temperature_C\n")
		for i := range n {
			if i%shards == shard {
				fmt.Fprintf(&b, "SW-%03d,%d,%d,%d,%d.5\n", i, i%4, 1764099000000+i, i*1000, i)
			}
		}
		io.WriteString(w, b.String())
	}))
	t.Cleanup(srv.Close)
	return srv
}

func newPoller(url string, shards int, publish func(*snapshot.Snapshot)) *Poller {
	return &Poller{
		Fetcher:  &Fetcher{URL: url, MaxBytes: 1 << 20, Client: &http.Client{}},
		Parser:   NewParser(schema.Default()),
		Shards:   shards,
		Interval: time.Second,
		Timeout:  2 * time.Second,
		Publish:  publish,
		Logger:   slog.New(slog.DiscardHandler),
	}
}

func TestPollerShardsEqualUnsharded(t *testing.T) {
	srv := shardedSource(t, 100)
	var whole, sharded *snapshot.Snapshot
	if c := newPoller(srv.URL, 1, func(s *snapshot.Snapshot) { whole = s }).Poll(t.Context()); c.Err != nil {
		t.Fatal(c.Err)
	}
	p := newPoller(srv.URL, 3, func(s *snapshot.Snapshot) { sharded = s })
	for range 2 { // the second poll shares the first merge's index
		if c := p.Poll(t.Context()); c.Err != nil {
			t.Fatal(c.Err)
		}
	}
	if whole.NumRows() != 100 || sharded.NumRows() != whole.NumRows() {
		t.Fatalf("%d rows sharded, %d whole, want 100", sharded.NumRows(), whole.NumRows())
	}
	if !sharded.Time().Equal(whole.Time()) {
		t.Errorf("sharded time %v, whole %v", sharded.Time(), whole.Time())
	}
	for row := range whole.NumRows() {
		if got, want := sharded.RowLabels(row), whole.RowLabels(row); strings.Join(got, ",") != strings.Join(want, ",") {
			t.Fatalf("row %d: %v sharded, %v whole", row, got, want)
		}
		for col, name := range whole.Columns() {
			sc, _ := sharded.Column(name)
			if got, want := sharded.Value(row, sc), whole.Value(row, col); got != want {
				t.Fatalf("row %d %s: %v sharded, %v whole", row, name, got.Float64(), want.Float64())
			}
		}
	}
}

func TestPollerRejectedPoll(t *testing.T) {
	slow := make(chan struct{})
	t.Cleanup(func() { close(slow) })
	mux := http.NewServeMux()
	mux.HandleFunc("/500", func(w http.ResponseWriter, _ *http.Request) { http.Error(w, "boom", 500) })
	mux.HandleFunc("/hang", func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-slow:
		}
	})
	mux.HandleFunc("/short", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Length", "1000")
		io.WriteString(w, "switch_id,Rx_Bytes\nSW-01,1\n")
	})
	mux.HandleFunc("/big", func(w http.ResponseWriter, _ *http.Request) {
		io.WriteString(w, "switch_id,Rx_Bytes\n"+strings.Repeat("SW-01,1\n", 1<<18))
	})
	mux.HandleFunc("/garbage", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "\x00\xff\xfe") })
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	closed, _ := net.Listen("tcp", "127.0.0.1:0")
	closedURL := "http://" + closed.Addr().String()
	closed.Close()

	tests := []struct {
		url    string
		reason Reason
	}{
		{srv.URL + "/500", ReasonHTTPStatus},
		{srv.URL + "/hang", ReasonTimeout},
		{srv.URL + "/short", ReasonTruncated},
		{srv.URL + "/big", ReasonTooLarge},
		{srv.URL + "/garbage", ReasonParse},
		{closedURL, ReasonConnection},
	}
	for _, tc := range tests {
		t.Run(string(tc.reason), func(t *testing.T) {
			published := false
			var observed []Cycle
			p := newPoller(tc.url, 1, func(*snapshot.Snapshot) { published = true })
			p.Timeout = 300 * time.Millisecond
			p.Observe = func(c Cycle) { observed = append(observed, c) }
			c := p.Poll(context.Background())
			if published || c.Snapshot != nil {
				t.Fatal("a rejected poll was published")
			}
			if got := ReasonOf(c.Err); got != tc.reason {
				t.Errorf("reason %s (%v), want %s", got, c.Err, tc.reason)
			}
			if len(observed) != 1 || observed[0].Err == nil {
				t.Errorf("observer saw %d cycles, want the one failure", len(observed))
			}
		})
	}
}

func TestPollerShardFailureRejectsAll(t *testing.T) {
	good := shardedSource(t, 10)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("shard") == "1" {
			http.Error(w, "shard down", http.StatusBadGateway)
			return
		}
		http.Redirect(w, r, good.URL+"?"+r.URL.RawQuery, http.StatusFound)
	}))
	t.Cleanup(srv.Close)
	published := false
	c := newPoller(srv.URL, 2, func(*snapshot.Snapshot) { published = true }).Poll(t.Context())
	if published || ReasonOf(c.Err) != ReasonHTTPStatus || !strings.Contains(c.Err.Error(), "shard 2 of 2") {
		t.Errorf("published %v, error %v: want the poll rejected, naming shard 2", published, c.Err)
	}
	if n := strings.Count(c.Err.Error(), string(ReasonHTTPStatus)); n != 1 {
		t.Errorf("error %q names its reason %d times, want once", c.Err, n)
	}
}

// TestPollerClampsSourceClockAhead polls sources whose clock is a year
// ahead, a little ahead, right, or behind, with the poll's clock fixed: only
// a source time more than MaxClockSkew ahead of the poll is replaced by the
// poll time, and that cycle says so and logs it.
func TestPollerClampsSourceClockAhead(t *testing.T) {
	now := time.Date(2026, 11, 25, 19, 30, 0, 0, time.UTC)
	const skew = 10 * time.Second
	tests := []struct {
		name    string
		source  time.Time
		maxSkew time.Duration
		clamped bool
	}{
		{"a year ahead", now.AddDate(1, 0, 0), skew, true},
		{"just over the skew", now.Add(skew + time.Millisecond), skew, true},
		{"at the skew", now.Add(skew), skew, false},
		{"a little ahead", now.Add(time.Second), skew, false},
		{"right", now, skew, false},
		{"a year behind", now.AddDate(-1, 0, 0), skew, false},
		{"a year ahead, clamping off", now.AddDate(1, 0, 0), 0, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
				fmt.Fprintf(w, "switch_id,timestamp,Rx_Bytes\nSW-01,%d,1\n", tc.source.UnixMilli())
			}))
			t.Cleanup(srv.Close)
			var logs bytes.Buffer
			var published *snapshot.Snapshot
			p := newPoller(srv.URL, 1, func(s *snapshot.Snapshot) { published = s })
			p.Now = func() time.Time { return now }
			p.MaxClockSkew = tc.maxSkew
			p.Logger = slog.New(slog.NewJSONHandler(&logs, nil))
			c := p.Poll(t.Context())
			if c.Err != nil {
				t.Fatal(c.Err)
			}
			want, clampedFrom := tc.source, time.Time{}
			if tc.clamped {
				want, clampedFrom = now, tc.source
			}
			if !published.Time().Equal(want) || published.TimeText() != snapshot.FormatTime(want) {
				t.Errorf("published with time %v (%s), want %v", published.Time(), published.TimeText(), want)
			}
			if !c.ClampedFrom.Equal(clampedFrom) {
				t.Errorf("cycle's ClampedFrom %v, want %v", c.ClampedFrom, clampedFrom)
			}
			warned := strings.Contains(logs.String(), `"msg":"Source clock ahead of the poll; snapshot stamped with the poll time"`)
			if warned != tc.clamped {
				t.Errorf("clock warning logged %v, want %v:\n%s", warned, tc.clamped, logs.String())
			}
			if tc.clamped {
				for _, field := range []string{
					`"source_time":"` + snapshot.FormatTime(tc.source) + `"`,
					`"poll_time":"` + snapshot.FormatTime(now) + `"`,
					`"skew":` + strconv.FormatInt(int64(tc.source.Sub(now)), 10),
				} {
					if !strings.Contains(logs.String(), field) {
						t.Errorf("clock warning without %s:\n%s", field, logs.String())
					}
				}
			}
		})
	}
}

// TestPollerClampKeepsRows: a clamped snapshot is the parsed one with
// another time: the same rows and values, its index shared.
func TestPollerClampKeepsRows(t *testing.T) {
	srv := shardedSource(t, 10)
	var published *snapshot.Snapshot
	p := newPoller(srv.URL, 1, func(s *snapshot.Snapshot) { published = s })
	p.Now = func() time.Time { return time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC) } // the source is a year ahead
	p.MaxClockSkew = time.Second
	c := p.Poll(t.Context())
	if c.Err != nil || c.ClampedFrom.IsZero() {
		t.Fatalf("error %v, clamped from %v: want a clamped poll", c.Err, c.ClampedFrom)
	}
	parsed := p.Parser.prev
	if !published.SameRows(parsed) || published.NumRows() != 10 || published.Value(3, 0) != parsed.Value(3, 0) {
		t.Errorf("the clamped snapshot does not share the parsed one's rows")
	}
}

// TestPollerShardedSampleLimit: each shard is within the sample limit, the
// merged poll is not.
func TestPollerShardedSampleLimit(t *testing.T) {
	srv := shardedSource(t, 100)
	p := newPoller(srv.URL, 2, func(*snapshot.Snapshot) { t.Error("published over the limit") })
	p.Parser.Limits = Limits{Samples: 150} // 2 metric columns: 75 rows; a shard has 50
	c := p.Poll(t.Context())
	if ReasonOf(c.Err) != ReasonLimit || !strings.Contains(c.Err.Error(), "merging shards: 100 rows × 2 metric columns") {
		t.Errorf("error %v, want the merge over the sample limit", c.Err)
	}
}
