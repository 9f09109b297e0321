package simulator

import (
	"bytes"
	"context"
	"math"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestNewValidation(t *testing.T) {
	tests := []struct {
		name    string
		cfg     Config
		wantErr string
	}{
		{name: "zero config", cfg: Config{}},
		{name: "one switch", cfg: Config{Switches: 1}},
		{name: "negative switches", cfg: Config{Switches: -1}, wantErr: "switches"},
		{name: "too many switches", cfg: Config{Switches: maxSwitches + 1}, wantErr: "switches"},
		{name: "negative interval", cfg: Config{Interval: -time.Second}, wantErr: "interval"},
		{name: "tiny interval", cfg: Config{Interval: time.Microsecond}, wantErr: "interval"},
		{name: "negative rate", cfg: Config{IncidentRate: -0.1}, wantErr: "incident rate"},
		{name: "rate above one", cfg: Config{IncidentRate: 1.5}, wantErr: "incident rate"},
		{name: "NaN rate", cfg: Config{IncidentRate: math.NaN()}, wantErr: "incident rate"},
		{name: "bad mode", cfg: Config{Mode: Mode(42)}, wantErr: "mode"},
		{name: "negative slow delay", cfg: Config{SlowDelay: -time.Second}, wantErr: "slow delay"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, err := New(tc.cfg)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("New: %v", err)
				}
				if len(s.Body()) == 0 {
					t.Fatal("New did not render a first snapshot")
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("New error = %v, want one mentioning %q", err, tc.wantErr)
			}
		})
	}
}

func TestDefaults(t *testing.T) {
	s := newSim(t, Config{})
	if s.cfg.Switches != 50 || s.cfg.Interval != 10*time.Second || s.cfg.SlowDelay != 2*time.Second {
		t.Errorf("defaults = %d switches, %s interval, %s slow delay", s.cfg.Switches, s.cfg.Interval, s.cfg.SlowDelay)
	}
}

func TestHeader(t *testing.T) {
	s := newSim(t, Config{Switches: 3})
	first, _, _ := bytes.Cut(s.Body(), []byte("\n"))
	if got, want := string(first), strings.Join(wantHeader, ","); got != want {
		t.Errorf("header =\n%s\nwant\n%s", got, want)
	}
	if Header != strings.Join(wantHeader, ",") {
		t.Error("Header constant differs from the expected header")
	}
}

func TestSwitchIDs(t *testing.T) {
	tests := []struct {
		switches    int
		first, last string
	}{
		{switches: 1, first: "SW-01", last: "SW-01"},
		{switches: 9, first: "SW-01", last: "SW-09"},
		{switches: 50, first: "SW-01", last: "SW-50"},
		{switches: 99, first: "SW-01", last: "SW-99"},
		{switches: 100, first: "SW-001", last: "SW-100"},
		{switches: 1000, first: "SW-0001", last: "SW-1000"},
		{switches: 9999, first: "SW-0001", last: "SW-9999"},
		{switches: 10000, first: "SW-00001", last: "SW-10000"},
	}
	for _, tc := range tests {
		t.Run(strconv.Itoa(tc.switches), func(t *testing.T) {
			recs := parseBody(t, newSim(t, Config{Switches: tc.switches}).Body())
			if got := len(recs) - 1; got != tc.switches {
				t.Fatalf("got %d rows, want %d", got, tc.switches)
			}
			if recs[1][0] != tc.first || recs[len(recs)-1][0] != tc.last {
				t.Errorf("IDs run %s..%s, want %s..%s", recs[1][0], recs[len(recs)-1][0], tc.first, tc.last)
			}
			ids := make([]string, 0, len(recs)-1)
			for _, rec := range recs[1:] {
				ids = append(ids, rec[0])
			}
			if !slices.IsSorted(ids) {
				t.Error("rows are not in ID order")
			}
		})
	}
}

func TestDeterministic(t *testing.T) {
	cfg := Config{Switches: 200, Seed: 42, IncidentRate: 0.05, Interval: time.Second}
	a, b := newSim(t, cfg), newSim(t, cfg)
	other := newSim(t, Config{Switches: 200, Seed: 43, IncidentRate: 0.05, Interval: time.Second})
	for i := range 100 {
		now := t0.Add(time.Duration(i) * time.Second)
		a.Tick(now)
		b.Tick(now)
		other.Tick(now)
		if !bytes.Equal(a.Body(), b.Body()) {
			t.Fatalf("tick %d: bodies differ for the same seed", i)
		}
		if bytes.Equal(a.Body(), other.Body()) {
			t.Fatalf("tick %d: seeds 42 and 43 gave the same body", i)
		}
	}
}

// TestSteadyFabric checks that with no incidents every switch is in every
// snapshot, counters only grow (bytes and packets strictly) and gauges stay
// in their ranges.
func TestSteadyFabric(t *testing.T) {
	const switches, ticks = 100, 300
	s := newSim(t, Config{Switches: switches, Seed: 7, Interval: 10 * time.Second})
	prev := rowsByName(t, parseBody(t, s.Body()))
	above53 := 0
	for _, r := range prev {
		if r.uint(t, "Tx_Bytes") > 1<<53 {
			above53++
		}
	}
	if above53 == 0 {
		t.Error("no switch starts with byte counters above 2^53")
	}

	strict := []string{"Rx_Bytes", "Tx_Bytes", "Rx_Packets", "Tx_Packets"}
	for i := range ticks {
		now := t0.Add(time.Duration(i) * 10 * time.Second)
		s.Tick(now)
		cur := rowsByName(t, parseBody(t, s.Body()))
		if len(cur) != switches {
			t.Fatalf("tick %d: %d switches, want %d", i, len(cur), switches)
		}
		for j, r := range cur {
			if r["switch_id"] != prev[j]["switch_id"] {
				t.Fatalf("tick %d: row %d is %s, was %s", i, j, r["switch_id"], prev[j]["switch_id"])
			}
			if got := r.uint(t, "timestamp"); got != uint64(now.UnixMilli()) {
				t.Fatalf("tick %d: timestamp %d, want %d", i, got, now.UnixMilli())
			}
			for _, col := range counterColumns {
				was, is := prev[j].uint(t, col), r.uint(t, col)
				if is < was || (is == was && slices.Contains(strict, col)) {
					t.Fatalf("tick %d %s %s: %d -> %d", i, r["switch_id"], col, was, is)
				}
			}
			if r["Link_Down_Count"] != prev[j]["Link_Down_Count"] {
				t.Fatalf("tick %d %s: link went down in a steady fabric", i, r["switch_id"])
			}
			checkGauges(t, r, 72)
		}
		prev = cur
	}
}

// checkGauges checks the ranges every snapshot must respect; maxTemp is lower
// for a steady fabric, which never has a hot switch.
func checkGauges(t *testing.T, r row, maxTemp float64) {
	t.Helper()
	id := r["switch_id"]
	avg, peak := r.float(t, "Latency_Avg_uSec"), r.float(t, "Latency_Max_uSec")
	if avg <= 0 || peak < avg {
		t.Fatalf("%s: latency avg %v max %v", id, avg, peak)
	}
	for _, col := range []string{"Bandwidth_Util_Pct", "Buffer_Util_Pct"} {
		if v := r.float(t, col); v < 0 || v > 100 {
			t.Fatalf("%s: %s = %v", id, col, v)
		}
	}
	if v := r.float(t, "Temperature_C"); v < 20 || v > maxTemp {
		t.Fatalf("%s: temperature %v", id, v)
	}
	if v := r.float(t, "Power_W"); v < 100 || v > 650 {
		t.Fatalf("%s: power %v", id, v)
	}
	up, total := r.uint(t, "Ports_Up"), r.uint(t, "Ports_Total")
	if up > total || !slices.Contains([]uint64{32, 40, 64}, total) {
		t.Fatalf("%s: ports %d/%d", id, up, total)
	}
	for _, col := range wantHeader[2:] {
		if v := r[col]; strings.Contains(v, ".") && len(v)-strings.Index(v, ".")-1 > 3 {
			t.Fatalf("%s: %s = %s has more than 3 decimals", id, col, v)
		}
	}
}

// TestIncidents checks that a fabric with incidents shows each kind of them
// over a long enough run, and still keeps its gauges in range.
func TestIncidents(t *testing.T) {
	const switches, ticks = 200, 300
	s := newSim(t, Config{Switches: switches, Seed: 3, IncidentRate: 0.02, Interval: 10 * time.Second})
	prev := map[string]row{}
	var absent, resets, flaps, portsDown, hot, congested, errorBursts int
	for i := range ticks {
		s.Tick(t0.Add(time.Duration(i) * 10 * time.Second))
		cur := rowsByName(t, parseBody(t, s.Body()))
		absent += switches - len(cur)
		for _, r := range cur {
			checkGauges(t, r, 99)
			id := r["switch_id"]
			if r.float(t, "Temperature_C") > 80 {
				hot++
			}
			if r.float(t, "Latency_Avg_uSec") > 8 {
				congested++
			}
			if r.uint(t, "Ports_Up")+3 < r.uint(t, "Ports_Total") {
				portsDown++
			}
			p, ok := prev[id]
			prev[id] = r
			if !ok {
				continue
			}
			if r.uint(t, "Tx_Bytes") < p.uint(t, "Tx_Bytes") {
				resets++
				continue
			}
			if r.uint(t, "Link_Down_Count") > p.uint(t, "Link_Down_Count") {
				flaps++
			}
			if r.uint(t, "Symbol_Errors")-p.uint(t, "Symbol_Errors") >= 1000 {
				errorBursts++
			}
		}
	}
	for name, n := range map[string]int{
		"absent rows": absent, "counter resets": resets, "link flaps": flaps, "ports down": portsDown,
		"hot switches": hot, "congestion": congested, "error bursts": errorBursts,
	} {
		if n == 0 {
			t.Errorf("no %s in %d ticks of %d switches", name, ticks, switches)
		}
	}
}

func TestRun(t *testing.T) {
	s := newSim(t, Config{Switches: 5, Interval: 5 * time.Millisecond})
	first := s.Body()
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()

	deadline := time.Now().Add(10 * time.Second)
	for bytes.Equal(s.Body(), first) {
		if time.Now().After(deadline) {
			t.Fatal("Run did not tick within 10s")
		}
		time.Sleep(time.Millisecond)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run returned %v, want nil", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
}

// TestOnTick: the hook is called after each tick, when Body already serves
// the tick's snapshot.
func TestOnTick(t *testing.T) {
	var s *Simulator
	var bodies [][]byte
	s = newSim(t, Config{Switches: 3, OnTick: func() { bodies = append(bodies, s.Body()) }})
	first := s.Body()
	s.Tick(time.Unix(1_800_000_000, 0))
	s.Tick(time.Unix(1_800_000_010, 0))
	if len(bodies) != 2 || bytes.Equal(bodies[0], first) || bytes.Equal(bodies[0], bodies[1]) || !bytes.Equal(bodies[1], s.Body()) {
		t.Fatalf("%d calls; want two, each seeing its tick's body", len(bodies))
	}
	if !bytes.Contains(bodies[0], []byte("1800000000000")) {
		t.Errorf("the first call's body is not the first tick's:\n%s", bodies[0])
	}
}
