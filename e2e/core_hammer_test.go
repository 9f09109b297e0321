package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/url"
	"sync"
	"testing"
	"time"
)

// simHistory keeps every simulator body the test has seen, by timestamp,
// so that an answer can be checked against the snapshot it claims to be.
type simHistory struct {
	mu     sync.Mutex
	bodies map[string]*SimCSV
	added  chan struct{} // closed and replaced on every new body
}

func (h *simHistory) add(s *SimCSV) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, ok := h.bodies[s.TimeText()]; !ok {
		h.bodies[s.TimeText()] = s
		close(h.added)
		h.added = make(chan struct{})
	}
}

// lookup returns the body with timestamp ts, waiting up to wait for the
// collector to fetch it.
func (h *simHistory) lookup(ts string, wait time.Duration) *SimCSV {
	deadline := time.NewTimer(wait)
	defer deadline.Stop()
	for {
		h.mu.Lock()
		s, added := h.bodies[ts], h.added
		h.mu.Unlock()
		if s != nil {
			return s
		}
		select {
		case <-added:
		case <-deadline.C:
			return nil
		}
	}
}

// TestReadersDuringFastIngestion hammers the API from several goroutines
// while a 2,000-switch source is polled every 200 ms: no answer may be a
// 5xx, and every answer must be one whole simulator snapshot, the one its
// timestamp names, value for value (never a mix of two polls).
func TestReadersDuringFastIngestion(t *testing.T) {
	const (
		switches = 2000
		readers  = 4
		duration = 3 * time.Second
	)
	sim := StartSimulator(t, fmt.Sprintf("--switches=%d", switches), "--interval=200ms", "--incident-rate=0")
	agg := StartAggregator(t, "--source.url="+sim.URL+"/counters", "--source.interval=200ms", "--source.timeout=2s")
	WaitReady(t, agg, 20*time.Second)

	ctx, cancel := context.WithTimeout(context.Background(), duration)
	defer cancel()
	history := &simHistory{bodies: map[string]*SimCSV{}, added: make(chan struct{})}
	var wg sync.WaitGroup
	wg.Go(func() { // the collector: every body the simulator serves
		for ctx.Err() == nil {
			if s, err := FetchSimCSV(ctx, sim); err == nil {
				history.add(s)
			} else if ctx.Err() == nil {
				t.Errorf("collector: %v", err)
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
	})

	// Readers only ask and keep the answers; checking them afterwards keeps
	// the pressure on the server.
	answers := make([][]answer, readers)
	for i := range readers {
		wg.Go(func() {
			rnd := rand.New(rand.NewPCG(uint64(i), 1))
			for ctx.Err() == nil {
				// Half the readers list the whole fabric, half look up values.
				a, err := ask(ctx, agg, rnd, i%2 == 0)
				if err != nil {
					t.Errorf("reader %d: %v", i, err)
					return
				}
				if a.body != nil {
					answers[i] = append(answers[i], a)
				}
			}
		})
	}
	wg.Wait()

	var lists, gets, unverified int
	seen := map[string]bool{}
	// Lists with the same timestamp must be the same bytes after the age:
	// one of each is checked against the simulator, the rest against it.
	checkedLists := map[string][]byte{}
	for _, as := range answers {
		for _, a := range as {
			if a.list {
				if ts, rest, err := splitList(a.body); err != nil {
					t.Fatal(err)
				} else if prev, ok := checkedLists[ts]; ok {
					if !bytes.Equal(prev, rest) {
						t.Fatalf("two ListMetrics answers at %s differ", ts)
					}
					lists++
					continue
				}
			}
			ts, err := a.check(history)
			if a.list && err == nil && ts != "" {
				_, rest, _ := splitList(a.body)
				checkedLists[ts] = rest
			}
			switch {
			case err != nil:
				t.Fatal(err)
			case ts == "":
				unverified++
			case a.list:
				lists++
			default:
				gets++
			}
			seen[ts] = true
		}
	}
	total := lists + gets + unverified
	t.Logf("%d ListMetrics and %d GetMetric answers verified, %d unverifiable, %d snapshots seen by readers, %d bodies collected",
		lists, gets, unverified, len(seen), len(history.bodies))
	if lists < 5 || gets < 100 {
		t.Errorf("too few answers verified to mean anything")
	}
	if unverified*5 > total {
		t.Errorf("%d of %d answers could not be matched to a simulator body", unverified, total)
	}
	if len(seen) < 3 {
		t.Errorf("readers saw only %d snapshots: ingestion did not run during the test", len(seen))
	}
}

// answer is one 200 answer kept for checking.
type answer struct {
	list       bool
	id, metric string // GetMetric's parameters
	body       []byte
}

// ask sends one request. Any status but 200 is an error (every request is
// valid and the aggregator is ready); a request cut off by the end of the
// test gives no answer and no error.
func ask(ctx context.Context, agg *Process, rnd *rand.Rand, list bool) (answer, error) {
	a := answer{list: list}
	target := agg.URL + "/telemetry/ListMetrics"
	if !list {
		a.id = fmt.Sprintf("SW-%04d", 1+rnd.IntN(2000))
		metrics := []string{"Rx_Bytes", "Tx_Packets", "Latency_Avg_uSec", "Temperature_C", "Ports_Up"}
		a.metric = metrics[rnd.IntN(len(metrics))]
		target = agg.URL + "/telemetry/GetMetric?" + url.Values{"switch_id": {a.id}, "metric_name": {a.metric}}.Encode()
	}
	r, err := TryDo(ctx, http.MethodGet, target)
	if err != nil {
		if ctx.Err() != nil {
			return answer{}, nil
		}
		return answer{}, err
	}
	if r.Status != http.StatusOK {
		return answer{}, fmt.Errorf("%s: %d %s", target, r.Status, r.Body)
	}
	a.body = r.Body
	return a, nil
}

// check compares the answer with the simulator body of its timestamp and
// returns that timestamp, or "" when the collector never saw that body.
func (a answer) check(h *simHistory) (string, error) {
	if a.list {
		l, err := decodeList(a.body)
		if err != nil {
			return "", err
		}
		body := h.lookup(l.Timestamp, 0)
		if body == nil {
			return "", nil
		}
		if err := matchesCSV(l, body); err != nil {
			return "", fmt.Errorf("ListMetrics at %s is not the simulator's body of that time: %w", l.Timestamp, err)
		}
		return l.Timestamp, nil
	}
	var got struct {
		Value     json.RawMessage `json:"value"`
		Timestamp string          `json:"timestamp"`
	}
	if err := json.Unmarshal(a.body, &got); err != nil {
		return "", err
	}
	body := h.lookup(got.Timestamp, 0)
	if body == nil {
		return "", nil
	}
	if err := sameValue(body.Values[a.id][a.metric], got.Value); err != nil {
		return "", fmt.Errorf("GetMetric %s %s at %s: %w", a.id, a.metric, got.Timestamp, err)
	}
	return got.Timestamp, nil
}

// splitList returns a ListMetrics answer's timestamp and its bytes from
// switch_count on, which depend on the snapshot alone.
func splitList(body []byte) (string, []byte, error) {
	var head struct {
		Timestamp string `json:"timestamp"`
	}
	i := bytes.Index(body, []byte(`"switch_count"`))
	if i < 0 {
		return "", nil, fmt.Errorf("ListMetrics answer without switch_count: %.200s", body)
	}
	if err := json.Unmarshal(append(append([]byte(nil), body[:i]...), `"x":0}`...), &head); err != nil {
		return "", nil, fmt.Errorf("ListMetrics head %.200s: %w", body, err)
	}
	return head.Timestamp, body[i:], nil
}
