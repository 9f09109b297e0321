package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync"
	"testing"
	"time"
)

// clockSource is a switch-matrix source on loopback whose clock can be set
// a year ahead: it stamps its one row with its clock, and remembers every
// timestamp it served.
type clockSource struct {
	mu     sync.Mutex
	ahead  time.Duration
	value  int
	served map[string]bool // RFC 3339 ms text of each timestamp served
}

func (s *clockSource) ServeHTTP(w http.ResponseWriter, _ *http.Request) {
	s.mu.Lock()
	ts := time.Now().Add(s.ahead)
	s.value++
	s.served[ts.UTC().Format("2006-01-02T15:04:05.000Z07:00")] = true
	body := fmt.Sprintf("switch_id,timestamp,Rx_Bytes\nSW-01,%d,%d\n", ts.UnixMilli(), s.value)
	s.mu.Unlock()
	w.Header().Set("Content-Type", "text/csv")
	fmt.Fprint(w, body)
}

func (s *clockSource) setAhead(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ahead = d
}

func (s *clockSource) servedText(ts string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.served[ts]
}

// TestSourceClockAhead runs the real aggregator against a source whose
// clock is a year ahead, then right. While it is ahead, REST serves the poll
// time, not the source's, /metrics counts the clamped polls and the log
// says so; once it is right, its own times are served again and PromQL at
// the current time finds its series.
func TestSourceClockAhead(t *testing.T) {
	t.Parallel()
	src := &clockSource{ahead: 365 * 24 * time.Hour, served: map[string]bool{}}
	srv := httptest.NewServer(src)
	t.Cleanup(srv.Close)
	started := time.Now()
	agg := StartAggregator(t, "--source.url="+srv.URL, "--source.interval=100ms", "--source.timeout=2s")

	line, _ := agg.Logs.WaitFor(t, 0, 1, 20*time.Second, "clock warning", MsgIs(clockAhead))
	sourceTime, err := time.Parse(time.RFC3339, line.Str("source_time"))
	if err != nil || sourceTime.Before(started.AddDate(1, 0, -1)) {
		t.Errorf("warning's source_time %q (%v), want a year from now", line.Str("source_time"), err)
	}
	if line.Str("poll_time") == "" || line.Str("skew") == "" {
		t.Errorf("warning without poll time or skew: %s", line.Raw)
	}

	list := GetList(t, agg, "")
	served, err := time.Parse(time.RFC3339, list.Timestamp)
	if err != nil {
		t.Fatal(err)
	}
	if served.Before(started.Add(-time.Second)) || served.After(time.Now().Add(time.Second)) {
		t.Errorf("REST timestamp %s while the source is a year ahead, want the poll time (about now)", list.Timestamp)
	}
	if src.servedText(list.Timestamp) {
		t.Errorf("REST timestamp %s is the source's own", list.Timestamp)
	}
	Eventually(t, 10*time.Second, 20*time.Millisecond, func() error {
		n, err := scrapeValue(agg, "fabric_ingest_clock_skew_clamped_total", map[string]string{"source": "default"})
		if err != nil {
			return err
		}
		if n.Sign() <= 0 {
			return fmt.Errorf("fabric_ingest_clock_skew_clamped_total %s, want 1 or more", n)
		}
		return nil
	})

	// The clock is set right: the source's own times are served, and no
	// poll is clamped any more.
	src.setAhead(0)
	Eventually(t, 10*time.Second, 20*time.Millisecond, func() error {
		if l := GetList(t, agg, ""); !src.servedText(l.Timestamp) {
			return fmt.Errorf("REST timestamp %s is not one the source served", l.Timestamp)
		}
		return nil
	})
	_, cursor := agg.Logs.WaitFor(t, agg.Logs.Cursor(), 1, 10*time.Second, "an accepted poll", MsgIs(pollAccepted))
	before, err := scrapeValue(agg, "fabric_ingest_clock_skew_clamped_total", map[string]string{"source": "default"})
	if err != nil {
		t.Fatal(err)
	}
	agg.Logs.WaitFor(t, cursor, 3, 10*time.Second, "3 accepted polls", MsgIs(pollAccepted))
	after, err := scrapeValue(agg, "fabric_ingest_clock_skew_clamped_total", map[string]string{"source": "default"})
	if err != nil {
		t.Fatal(err)
	}
	if warnings := agg.Logs.Count(cursor, MsgIs(clockAhead)); after.Cmp(before) != 0 || warnings != 0 {
		t.Errorf("clamped polls %s → %s and %d clock warnings with the clock right, want none", before, after, warnings)
	}

	// PromQL at the current time sees the series: no sample a year ahead
	// hides the new ones.
	r := Get(t, agg.URL+"/api/v1/query?query="+url.QueryEscape(`fabric_switch_receive_bytes_total{switch_id="SW-01"}`))
	var answer struct {
		Status string `json:"status"`
		Data   struct {
			Result []json.RawMessage `json:"result"`
		} `json:"data"`
	}
	if err := json.Unmarshal(r.Body, &answer); err != nil || answer.Status != "success" || len(answer.Data.Result) != 1 {
		t.Errorf("PromQL at the current time: %d %s, want the one series", r.Status, r.Body)
	}
}

const clockAhead = "Source clock ahead of the poll"
