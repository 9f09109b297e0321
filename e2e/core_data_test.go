package e2e

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// SimCSV is one simulator body, read independently of the aggregator's
// parser with encoding/csv: every cell as text.
type SimCSV struct {
	Timestamp int64 // the timestamp column, Unix milliseconds
	Metrics   []string
	IDs       []string                     // in string order
	Values    map[string]map[string]string // switch_id → column → text
}

// TimeText is the timestamp as the aggregator shows it, derived here
// without the aggregator's code.
func (s *SimCSV) TimeText() string {
	return time.UnixMilli(s.Timestamp).UTC().Format("2006-01-02T15:04:05.000Z")
}

func parseSimCSV(body []byte) (*SimCSV, error) {
	records, err := csv.NewReader(bytes.NewReader(body)).ReadAll()
	if err != nil {
		return nil, err
	}
	if len(records) < 2 {
		return nil, fmt.Errorf("%d records", len(records))
	}
	header := records[0]
	idCol, tsCol := slices.Index(header, "switch_id"), slices.Index(header, "timestamp")
	if idCol < 0 || tsCol < 0 {
		return nil, fmt.Errorf("header %q", header)
	}
	s := &SimCSV{Values: map[string]map[string]string{}}
	for i, h := range header {
		if i != idCol && i != tsCol {
			s.Metrics = append(s.Metrics, h)
		}
	}
	for _, rec := range records[1:] {
		ts, err := strconv.ParseInt(rec[tsCol], 10, 64)
		if err != nil {
			return nil, err
		}
		if s.Timestamp != 0 && ts != s.Timestamp {
			return nil, fmt.Errorf("two timestamps in one body: %d, %d", s.Timestamp, ts)
		}
		s.Timestamp = ts
		row := map[string]string{}
		for i, h := range header {
			if i != idCol && i != tsCol {
				row[h] = rec[i]
			}
		}
		s.Values[rec[idCol]] = row
		s.IDs = append(s.IDs, rec[idCol])
	}
	slices.Sort(s.IDs)
	return s, nil
}

// FetchSimCSV reads the simulator's good body (?mode=OK overrides any
// fault mode).
func FetchSimCSV(ctx context.Context, sim *Process) (*SimCSV, error) {
	body, err := fetchGoodBody(ctx, sim, "/counters")
	if err != nil {
		return nil, err
	}
	return parseSimCSV(body)
}

// fetchGoodBody reads one of the simulator's data endpoints with
// ?mode=OK, which overrides any fault mode.
func fetchGoodBody(ctx context.Context, sim *Process, path string) ([]byte, error) {
	r, err := TryDo(ctx, http.MethodGet, sim.URL+path+"?mode=OK")
	if err != nil {
		return nil, err
	}
	if r.Status != http.StatusOK {
		return nil, fmt.Errorf("%s: %d", path, r.Status)
	}
	return r.Body, nil
}

// ListAnswer is ListMetrics' answer with every value kept as written.
type ListAnswer struct {
	Timestamp   string      `json:"timestamp"`
	AgeSeconds  json.Number `json:"age_seconds"`
	SwitchCount int         `json:"switch_count"`
	Switches    []struct {
		SwitchID string                     `json:"switch_id"`
		Metrics  map[string]json.RawMessage `json:"metrics"`
	} `json:"switches"`
}

func decodeList(body []byte) (*ListAnswer, error) {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	var a ListAnswer
	if err := dec.Decode(&a); err != nil {
		return nil, fmt.Errorf("ListMetrics answer: %w", err)
	}
	return &a, nil
}

// GetList fetches and decodes ListMetrics (query may be empty).
func GetList(t testing.TB, agg *Process, query string) *ListAnswer {
	t.Helper()
	r := Get(t, agg.URL+"/telemetry/ListMetrics?"+query)
	if r.Status != http.StatusOK {
		t.Fatalf("ListMetrics: %d %s", r.Status, r.Body)
	}
	a, err := decodeList(r.Body)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// sameSnapshot compares the parts of two answers that come from the
// snapshot (the age moves on with the clock).
func sameSnapshot(a, b *ListAnswer) error {
	if a.Timestamp != b.Timestamp || a.SwitchCount != b.SwitchCount {
		return fmt.Errorf("timestamp %s/%s, switches %d/%d", a.Timestamp, b.Timestamp, a.SwitchCount, b.SwitchCount)
	}
	ja, _ := json.Marshal(a.Switches)
	jb, _ := json.Marshal(b.Switches)
	if !bytes.Equal(ja, jb) {
		return fmt.Errorf("same timestamp %s, different values", a.Timestamp)
	}
	return nil
}

// isInteger reports whether a CSV cell is written as an integer.
func isInteger(s string) bool {
	s = strings.TrimPrefix(s, "-")
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// sameValue checks that the JSON an API answer holds is the CSV cell:
// integers digit for digit, floats as the same float64, NaN and ±Inf as null.
func sameValue(csvText string, raw json.RawMessage) error {
	got := string(raw)
	if isInteger(csvText) {
		if got != csvText {
			return fmt.Errorf("integer %s served as %s", csvText, got)
		}
		return nil
	}
	want, err := strconv.ParseFloat(csvText, 64)
	if err != nil {
		return fmt.Errorf("CSV cell %q is not a number", csvText)
	}
	if math.IsNaN(want) || math.IsInf(want, 0) {
		if got != "null" {
			return fmt.Errorf("%s served as %s, want null", csvText, got)
		}
		return nil
	}
	var f float64
	if err := json.Unmarshal(raw, &f); err != nil || f != want {
		return fmt.Errorf("%s served as %s", csvText, got)
	}
	return nil
}

// matchesCSV checks a ListMetrics answer against a simulator body value for
// value: the same time, the same switches, every metric, nothing more.
func matchesCSV(a *ListAnswer, s *SimCSV) error {
	if a.Timestamp != s.TimeText() {
		return fmt.Errorf("timestamp %s, CSV has %s", a.Timestamp, s.TimeText())
	}
	if a.SwitchCount != len(s.IDs) || len(a.Switches) != len(s.IDs) {
		return fmt.Errorf("switch_count %d with %d switches, CSV has %d", a.SwitchCount, len(a.Switches), len(s.IDs))
	}
	for i, sw := range a.Switches {
		if sw.SwitchID != s.IDs[i] {
			return fmt.Errorf("switch %d is %s, want %s (string order)", i, sw.SwitchID, s.IDs[i])
		}
		row := s.Values[sw.SwitchID]
		present := 0
		for _, m := range s.Metrics {
			text := row[m]
			raw, ok := sw.Metrics[m]
			if text == "" {
				if ok {
					return fmt.Errorf("%s %s: empty in CSV, served as %s", sw.SwitchID, m, raw)
				}
				continue
			}
			present++
			if !ok {
				return fmt.Errorf("%s %s: missing", sw.SwitchID, m)
			}
			if err := sameValue(text, raw); err != nil {
				return fmt.Errorf("%s %s: %w", sw.SwitchID, m, err)
			}
		}
		if len(sw.Metrics) != present {
			return fmt.Errorf("%s: %d metrics served, CSV has %d", sw.SwitchID, len(sw.Metrics), present)
		}
	}
	return nil
}
