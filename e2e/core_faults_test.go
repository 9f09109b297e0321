package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"testing"
	"time"
)

const (
	faultSwitches  = 30
	pollRejected   = "Poll rejected"
	pollAccepted   = "Ingestion cycle"
	faultSlowDelay = 100 * time.Millisecond
)

// TestFaultModes switches the running simulator through every fault mode
// with POST /admin/mode. A rejected mode must leave the last good snapshot
// in place, time and values, for poll after poll, with the expected reason
// logged; an accepted one (SLOW, PARTIAL, SCHEMA) must be served; and after
// mode=OK a newer snapshot appears.
func TestFaultModes(t *testing.T) {
	t.Parallel()
	sim := StartSimulator(t, "--switches="+strconv.Itoa(faultSwitches), "--interval=300ms", "--incident-rate=0",
		"--slow-delay="+faultSlowDelay.String())
	agg := StartAggregator(t, "--source.url="+sim.URL+"/counters", "--source.interval=100ms", "--source.timeout=400ms")
	WaitReady(t, agg, 20*time.Second)

	rejected := []struct{ mode, reason string }{
		{"ERROR_500", "http_status"},
		{"CORRUPT", "parse"},
		{"TRUNCATED", "truncated"},
		{"EMPTY", "empty"},
		{"GARBAGE", "parse"},
		{"TIMEOUT", "timeout"},
	}
	for _, tt := range rejected {
		t.Run(tt.mode, func(t *testing.T) {
			cursor := agg.Logs.Cursor()
			SetMode(t, sim, tt.mode)
			_, cursor = agg.Logs.WaitFor(t, cursor, 1, 5*time.Second, pollRejected+" "+tt.reason, MsgIs(pollRejected, "reason", tt.reason))
			// From the first rejection on, every poll meets the fault.
			before := GetList(t, agg, "")
			// Keep failing until the source has moved on, so that keeping
			// the old snapshot is visible, and for at least three polls.
			Eventually(t, 5*time.Second, 50*time.Millisecond, func() error {
				csv, err := FetchSimCSV(context.Background(), sim)
				if err != nil {
					return err
				}
				if csv.TimeText() <= before.Timestamp {
					return fmt.Errorf("simulator still at %s", csv.TimeText())
				}
				return nil
			})
			_, end := agg.Logs.WaitFor(t, cursor, 3, 5*time.Second, pollRejected+" "+tt.reason, MsgIs(pollRejected, "reason", tt.reason))
			after := GetList(t, agg, "")
			if err := sameSnapshot(before, after); err != nil {
				t.Errorf("snapshot changed while %s: %v", tt.mode, err)
			}
			for _, l := range agg.Logs.Lines(cursor)[:end-cursor] {
				if MsgIs(pollAccepted)(l) {
					t.Errorf("a poll was accepted in mode %s: %s", tt.mode, l.Raw)
				}
				if MsgIs(pollRejected)(l) && l.Str("reason") != tt.reason {
					t.Errorf("mode %s rejected with reason %q, want %q: %s", tt.mode, l.Str("reason"), tt.reason, l.Raw)
				}
			}
			recoverOK(t, sim, agg, before.Timestamp)
		})
	}

	t.Run("SLOW", func(t *testing.T) {
		cursor := agg.Logs.Cursor()
		before := GetList(t, agg, "")
		SetMode(t, sim, "SLOW")
		// A slow answer below the timeout is a good answer: new snapshots
		// keep coming, and their fetch takes at least the delay.
		Eventually(t, 5*time.Second, 50*time.Millisecond, func() error {
			for _, l := range agg.Logs.Lines(cursor) {
				if MsgIs(pollAccepted)(l) && logDuration(l, "fetch") >= faultSlowDelay && l.Str("snapshot_time") > before.Timestamp {
					return nil
				}
			}
			return errNotYet
		})
		if n := agg.Logs.Count(cursor, MsgIs(pollRejected)); n > 0 {
			t.Errorf("%d polls rejected in SLOW mode", n)
		}
		if after := GetList(t, agg, ""); after.Timestamp <= before.Timestamp {
			t.Errorf("ListMetrics still at %s", after.Timestamp)
		}
		recoverOK(t, sim, agg, "")
	})

	t.Run("PARTIAL", func(t *testing.T) {
		SetMode(t, sim, "PARTIAL")
		// Accepted: fewer switches, each with the simulator's values.
		Eventually(t, 5*time.Second, 30*time.Millisecond, func() error {
			list := GetList(t, agg, "")
			if list.SwitchCount >= faultSwitches || list.SwitchCount == 0 {
				return fmt.Errorf("%d switches served", list.SwitchCount)
			}
			csv, err := FetchSimCSV(context.Background(), sim)
			if err != nil {
				return err
			}
			if csv.TimeText() != list.Timestamp {
				return fmt.Errorf("simulator moved on to %s", csv.TimeText())
			}
			return matchesSubset(t, list, csv, nil)
		})
		recoverOK(t, sim, agg, "")
	})

	t.Run("SCHEMA", func(t *testing.T) {
		SetMode(t, sim, "SCHEMA")
		// Accepted: columns are found by name, and the extra column is served.
		const extra = "Fan_Speed_RPM"
		Eventually(t, 5*time.Second, 30*time.Millisecond, func() error {
			list := GetList(t, agg, "")
			if list.SwitchCount != faultSwitches {
				return fmt.Errorf("%d switches served", list.SwitchCount)
			}
			csv, err := FetchSimCSV(context.Background(), sim)
			if err != nil {
				return err
			}
			if csv.TimeText() != list.Timestamp {
				return fmt.Errorf("simulator moved on to %s", csv.TimeText())
			}
			return matchesSubset(t, list, csv, []string{extra})
		})
		r := Get(t, agg.URL+"/telemetry/GetMetric?switch_id=SW-07&metric_name="+extra)
		var got struct{ Value json.Number }
		if err := json.Unmarshal(r.Body, &got); r.Status != http.StatusOK || err != nil {
			t.Fatalf("GetMetric %s: %d %s", extra, r.Status, r.Body)
		}
		if v, err := strconv.ParseUint(string(got.Value), 10, 64); err != nil || v < 3000 || v >= 12000 {
			t.Errorf("%s = %s, want an integer in [3000, 12000)", extra, got.Value)
		}
		recoverOK(t, sim, agg, "")
		// A good body no longer has the column.
		Eventually(t, 5*time.Second, 30*time.Millisecond, func() error {
			if r := Get(t, agg.URL+"/telemetry/GetMetric?switch_id=SW-07&metric_name="+extra); r.Status != http.StatusNotFound {
				return fmt.Errorf("GetMetric %s after OK: %d", extra, r.Status)
			}
			return nil
		})
	})

	t.Run("FLAKY", func(t *testing.T) {
		cursor := agg.Logs.Cursor()
		SetMode(t, sim, "FLAKY")
		// A mix: some polls rejected, some accepted, and the answers never
		// go back in time or fail.
		last := ""
		Eventually(t, 15*time.Second, 50*time.Millisecond, func() error {
			list := GetList(t, agg, "")
			if list.Timestamp < last {
				t.Fatalf("ListMetrics went back from %s to %s", last, list.Timestamp)
			}
			last = list.Timestamp
			reasons := map[string]bool{}
			accepted := 0
			for _, l := range agg.Logs.Lines(cursor) {
				if MsgIs(pollRejected)(l) {
					reasons[l.Str("reason")] = true
				}
				if MsgIs(pollAccepted)(l) {
					accepted++
				}
			}
			if len(reasons) < 2 || accepted < 2 {
				return fmt.Errorf("%d accepted polls, rejected with %v", accepted, reasons)
			}
			return nil
		})
		recoverOK(t, sim, agg, last)
	})
}

// recoverOK sets mode OK and waits for a snapshot newer than after (any
// fresh snapshot when empty) with every switch, and for readiness.
func recoverOK(t *testing.T, sim, agg *Process, after string) {
	t.Helper()
	SetMode(t, sim, "OK")
	cursor := agg.Logs.Cursor()
	// The first accepted poll after the switch is a good body.
	line, _ := agg.Logs.WaitFor(t, cursor, 1, 5*time.Second, pollAccepted, MsgIs(pollAccepted))
	Eventually(t, 5*time.Second, 30*time.Millisecond, func() error {
		list := GetList(t, agg, "")
		if list.Timestamp <= after || list.Timestamp < line.Str("snapshot_time") || list.SwitchCount != faultSwitches {
			return fmt.Errorf("not recovered: %s with %d switches (after %s)", list.Timestamp, list.SwitchCount, after)
		}
		return nil
	})
	WaitReady(t, agg, 5*time.Second)
}

// matchesSubset checks a ListMetrics answer against a simulator body whose
// switches it may only partly have; extra lists metrics the body read with
// mode=OK lacks (SCHEMA's added column), which must be present.
func matchesSubset(t *testing.T, a *ListAnswer, s *SimCSV, extra []string) error {
	t.Helper()
	if a.SwitchCount != len(a.Switches) {
		return fmt.Errorf("switch_count %d with %d switches", a.SwitchCount, len(a.Switches))
	}
	ids := make([]string, 0, len(a.Switches))
	for _, sw := range a.Switches {
		ids = append(ids, sw.SwitchID)
		row, ok := s.Values[sw.SwitchID]
		if !ok {
			t.Fatalf("switch %s is not in the simulator's body", sw.SwitchID)
		}
		for _, m := range s.Metrics {
			if err := sameValue(row[m], sw.Metrics[m]); err != nil {
				t.Fatalf("%s %s: %v", sw.SwitchID, m, err)
			}
		}
		for _, m := range extra {
			if _, ok := sw.Metrics[m]; !ok {
				return fmt.Errorf("%s: no %s yet", sw.SwitchID, m)
			}
		}
		if len(sw.Metrics) != len(s.Metrics)+len(extra) {
			t.Fatalf("%s: %d metrics, want %d", sw.SwitchID, len(sw.Metrics), len(s.Metrics)+len(extra))
		}
	}
	if !slices.IsSorted(ids) {
		t.Fatalf("switches not sorted: %v", ids)
	}
	return nil
}

// logDuration reads a duration field of a JSON log line (slog writes
// durations as nanoseconds).
func logDuration(l LogLine, key string) time.Duration {
	switch v := l.Fields[key].(type) {
	case float64:
		return time.Duration(v)
	case string:
		d, _ := time.ParseDuration(v)
		return d
	}
	return 0
}
