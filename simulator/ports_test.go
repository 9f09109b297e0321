package simulator

import (
	"bytes"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// wantPortHeader and wantUFMHeader are spelled out rather than taken from
// the constants so that a change to them breaks a test.
var (
	wantPortHeader = append([]string{"switch_id", "port"}, wantHeader[1:]...)
	wantUFMHeader  = []string{
		"timestamp", "source_id", "tag", "node_guid", "port_guid", "port_num", "node_description",
		"PortXmitDataExtended", "PortRcvDataExtended", "PortXmitPktsExtended", "PortRcvPktsExtended",
		"PortXmitWaitExtended", "SymbolErrorCounterExtended", "LinkErrorRecoveryCounterExtended",
		"LinkDownedCounterExtended", "PortRcvErrorsExtended", "PortRcvRemotePhysicalErrorsExtended",
		"PortXmitDiscardsExtended", "LocalLinkIntegrityErrorsExtended", "ExcessiveBufferOverrunErrorsExtended",
		"VL15DroppedExtended",
	}
	ufmCounters = wantUFMHeader[7:]
	guidRE      = regexp.MustCompile(`^0x[0-9a-f]{16}$`)
)

// ufmKey is how UFM rows are keyed: port GUID and port number.
func ufmKey(r row) string { return r["port_guid"] + "/" + r["port_num"] }

// portKey is how per-port /counters rows are keyed.
func portKey(r row) string { return r["switch_id"] + "/" + r["port"] }

// switchOf returns the switch ID a node_description starts with.
func switchOf(r row) string {
	id, _, _ := strings.Cut(r["node_description"], " ")
	return id
}

func TestPortRows(t *testing.T) {
	tests := []struct{ switches, ports int }{
		{1, 1}, {3, 4}, {50, 8}, {200, 32}, {101, 2},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprintf("%dx%d", tc.switches, tc.ports), func(t *testing.T) {
			s := newSim(t, Config{Switches: tc.switches, Ports: tc.ports, Seed: 3})
			s.Tick(t0)
			recs := parseBody(t, s.Body())
			if !slices.Equal(recs[0], wantPortHeader) {
				t.Fatalf("header = %v", recs[0])
			}
			if PortHeader != strings.Join(wantPortHeader, ",") {
				t.Error("PortHeader constant differs from the expected header")
			}
			rows := rowsByName(t, recs)
			if len(rows) != tc.switches*tc.ports {
				t.Fatalf("%d rows, want %d × %d", len(rows), tc.switches, tc.ports)
			}
			ids := switchIDs(tc.switches)
			for k, r := range rows {
				wantID, wantPort := string(ids[k/tc.ports]), strconv.Itoa(k%tc.ports+1)
				if r["switch_id"] != wantID || r["port"] != wantPort {
					t.Fatalf("row %d is %s port %s, want %s port %s", k, r["switch_id"], r["port"], wantID, wantPort)
				}
				if got := r.uint(t, "timestamp"); got != uint64(t0.UnixMilli()) {
					t.Fatalf("timestamp %d", got)
				}
				if r["Ports_Total"] != "1" || (r["Ports_Up"] != "0" && r["Ports_Up"] != "1") {
					t.Fatalf("%s: ports %s/%s, want 0 or 1 of 1", portKey(r), r["Ports_Up"], r["Ports_Total"])
				}
				for _, col := range []string{"Bandwidth_Util_Pct", "Buffer_Util_Pct"} {
					if v := r.float(t, col); v < 0 || v > 100 {
						t.Fatalf("%s: %s = %v", portKey(r), col, v)
					}
				}
				if avg, peak := r.float(t, "Latency_Avg_uSec"), r.float(t, "Latency_Max_uSec"); avg <= 0 || peak < avg {
					t.Fatalf("%s: latency avg %v max %v", portKey(r), avg, peak)
				}
				for _, col := range counterColumns {
					r.uint(t, col)
				}
			}
		})
	}
}

// TestPortsAddUpToSwitch checks that the switch-level gauges repeat on
// every port and that port traffic adds up to what the switch would have:
// the per-port model splits the switch's counters.
func TestPortsAddUpToSwitch(t *testing.T) {
	const switches, ports = 20, 16
	s := newSim(t, Config{Switches: switches, Ports: ports, Seed: 11, IncidentRate: 0.05, Interval: time.Second})
	for i := range 30 {
		s.Tick(t0.Add(time.Duration(i) * time.Second))
	}
	src := s.snap.Load().src
	if src != nil {
		t.Fatal("eagerly rendered snapshot keeps its source")
	}
	// Rebuild the sums from the fabric the snapshot was rendered from.
	rows := rowsByName(t, parseBody(t, s.Body()))
	bySwitch := map[string][]row{}
	for _, r := range rows {
		bySwitch[r["switch_id"]] = append(bySwitch[r["switch_id"]], r)
	}
	for i, sw := range s.fabric.switches {
		id := string(s.info.ids[i])
		rs := bySwitch[id]
		if !sw.present() {
			if len(rs) != 0 {
				t.Errorf("%s is absent but has %d rows", id, len(rs))
			}
			continue
		}
		if len(rs) != ports {
			t.Fatalf("%s has %d rows, want %d", id, len(rs), ports)
		}
		var tx, up uint64
		for _, r := range rs {
			tx += r.uint(t, "Tx_Bytes")
			up += r.uint(t, "Ports_Up")
			if r.float(t, "Temperature_C") != rs[0].float(t, "Temperature_C") || r["Power_W"] != rs[0]["Power_W"] {
				t.Fatalf("%s: temperature or power differs between ports", id)
			}
		}
		if tx > sw.txBytes || float64(tx) < float64(sw.txBytes)*(1-1e-9)-ports {
			t.Errorf("%s: ports send %d bytes in all, the switch %d", id, tx, sw.txBytes)
		}
		if up != uint64(sw.portsUp()) {
			t.Errorf("%s: %d ports up, the switch says %d", id, up, sw.portsUp())
		}
	}
}

func TestUFMLayout(t *testing.T) {
	tests := []struct {
		name      string
		cfg       Config
		wantPorts []int // the allowed port counts per switch
	}{
		{"switch matrix", Config{Switches: 30, Seed: 2}, []int{32, 40, 64}},
		{"ports", Config{Switches: 30, Ports: 8, Seed: 2}, []int{8}},
		{"wide IDs", Config{Switches: 120, Ports: 2, Seed: 2}, []int{2}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newSim(t, tc.cfg)
			s.Tick(t0)
			body := s.UFMBody()
			recs := parseBody(t, body)
			if !slices.Equal(recs[0], wantUFMHeader) || UFMHeader != strings.Join(wantUFMHeader, ",") {
				t.Fatalf("header = %v", recs[0])
			}
			if !bytes.HasSuffix(body, []byte("\n")) {
				t.Error("body does not end with a newline")
			}
			rows := rowsByName(t, recs)
			nodeOf := map[string]string{} // port_guid -> node_guid
			guidOf := map[string]string{} // switch -> port_guid
			ports := map[string][]int{}   // port_guid -> port numbers in order
			var tagged, commas int
			for _, r := range rows {
				if got := r.uint(t, "timestamp"); got != uint64(t0.UnixMicro()) {
					t.Fatalf("timestamp %d, want %d µs", got, t0.UnixMicro())
				}
				for _, col := range []string{"source_id", "node_guid", "port_guid"} {
					if !guidRE.MatchString(r[col]) {
						t.Fatalf("%s = %q is not a GUID", col, r[col])
					}
				}
				if r["source_id"] != rows[0]["source_id"] {
					t.Fatal("source_id differs between rows")
				}
				id := switchOf(r)
				if !strings.HasPrefix(id, "SW-") || !strings.Contains(r["node_description"], " MQM") {
					t.Fatalf("node_description %q lacks the switch ID and model", r["node_description"])
				}
				if strings.Contains(r["node_description"], ",") {
					commas++
				}
				if r["tag"] != "" {
					tagged++
				}
				if g, ok := guidOf[id]; ok && g != r["port_guid"] {
					t.Fatalf("%s has port GUIDs %s and %s", id, g, r["port_guid"])
				}
				guidOf[id] = r["port_guid"]
				if n, ok := nodeOf[r["port_guid"]]; ok && n != r["node_guid"] {
					t.Fatalf("port GUID %s has node GUIDs %s and %s", r["port_guid"], n, r["node_guid"])
				}
				nodeOf[r["port_guid"]] = r["node_guid"]
				if r["node_guid"] == r["port_guid"] {
					t.Fatalf("node and port GUID are both %s", r["node_guid"])
				}
				ports[r["port_guid"]] = append(ports[r["port_guid"]], int(r.uint(t, "port_num")))
			}
			if len(guidOf) != tc.cfg.Switches || len(ports) != tc.cfg.Switches {
				t.Fatalf("%d switches and %d port GUIDs, want %d distinct", len(guidOf), len(ports), tc.cfg.Switches)
			}
			nodes := map[string]bool{}
			for _, n := range nodeOf {
				nodes[n] = true
			}
			if len(nodes) != tc.cfg.Switches {
				t.Errorf("%d distinct node GUIDs, want %d", len(nodes), tc.cfg.Switches)
			}
			for g, ps := range ports {
				if !slices.Contains(tc.wantPorts, len(ps)) {
					t.Errorf("%s has %d ports, want one of %v", g, len(ps), tc.wantPorts)
				}
				for k, p := range ps {
					if p != k+1 {
						t.Fatalf("%s: ports %v, want 1..%d in order", g, ps, len(ps))
					}
				}
			}
			ids := slices.Collect(func(yield func(string) bool) {
				for _, r := range rows {
					if !yield(switchOf(r)) {
						return
					}
				}
			})
			if !slices.IsSorted(ids) {
				t.Error("rows are not in switch order")
			}
			if tagged == 0 || tagged == len(rows) {
				t.Errorf("%d of %d rows tagged, want some but not all", tagged, len(rows))
			}
			if commas == 0 || !bytes.Contains(body, []byte(`MQM`)) || !regexp.MustCompile(`,"SW-\d+ MQM[^"]*, rack \d+",`).Match(body) {
				t.Error("no quoted node_description with a comma")
			}
		})
	}
}

// TestUFMCells checks the counter cells: numbers, or empty in the same cells
// on every tick, and only in the columns some ports do not report.
func TestUFMCells(t *testing.T) {
	s := newSim(t, Config{Switches: 40, Ports: 8, Seed: 6, IncidentRate: 0.05, Interval: time.Second})
	isEmpty := map[string]bool{} // "port_guid/port column" -> whether it was empty when last seen
	for i := range 20 {
		s.Tick(t0.Add(time.Duration(i) * time.Second))
		empties := 0
		for _, r := range rowsByName(t, parseBody(t, s.UFMBody())) {
			for _, col := range ufmCounters {
				cell := ufmKey(r) + " " + col
				e := r[col] == ""
				if was, seen := isEmpty[cell]; seen && was != e {
					t.Fatalf("tick %d: %s was empty %v, is empty %v", i, cell, was, e)
				}
				isEmpty[cell] = e
				if !e {
					r.uint(t, col)
					continue
				}
				empties++
				if col != "VL15DroppedExtended" && col != "PortRcvRemotePhysicalErrorsExtended" {
					t.Fatalf("tick %d: unexpected empty cell %s", i, cell)
				}
			}
		}
		if empties == 0 {
			t.Fatalf("tick %d: no empty cells", i)
		}
	}
}

// TestUFMMatchesCounters checks that the two endpoints show one fabric: at
// the same tick the UFM data counters are the per-port byte counters in
// 4-octet words, and the other shared counters are equal.
func TestUFMMatchesCounters(t *testing.T) {
	s := newSim(t, Config{Switches: 25, Ports: 6, Seed: 8, IncidentRate: 0.05, Interval: time.Second})
	same := map[string]string{
		"PortXmitPktsExtended": "Tx_Packets", "PortRcvPktsExtended": "Rx_Packets",
		"PortXmitWaitExtended": "Xmit_Wait", "SymbolErrorCounterExtended": "Symbol_Errors",
		"LinkDownedCounterExtended": "Link_Down_Count", "PortRcvErrorsExtended": "Rx_Errors",
		"PortXmitDiscardsExtended": "Tx_Discards",
	}
	for i := range 20 {
		s.Tick(t0.Add(time.Duration(i) * time.Second))
		counters := rowsByName(t, parseBody(t, s.Body()))
		ufm := rowsByName(t, parseBody(t, s.UFMBody()))
		if len(counters) != len(ufm) {
			t.Fatalf("tick %d: %d port rows in /counters, %d in /csv/metrics", i, len(counters), len(ufm))
		}
		for k, u := range ufm {
			c := counters[k]
			if switchOf(u) != c["switch_id"] || u["port_num"] != c["port"] {
				t.Fatalf("tick %d row %d: %s port %s vs %s port %s", i, k, switchOf(u), u["port_num"], c["switch_id"], c["port"])
			}
			if u.uint(t, "PortXmitDataExtended") != c.uint(t, "Tx_Bytes")/4 || u.uint(t, "PortRcvDataExtended") != c.uint(t, "Rx_Bytes")/4 {
				t.Fatalf("%s: data words %s/%s, bytes %s/%s", portKey(c), u["PortXmitDataExtended"], u["PortRcvDataExtended"], c["Tx_Bytes"], c["Rx_Bytes"])
			}
			for ucol, ccol := range same {
				if u[ucol] != c[ccol] {
					t.Fatalf("%s: %s = %s, %s = %s", portKey(c), ucol, u[ucol], ccol, c[ccol])
				}
			}
		}
	}
}

// TestUFMMonotonic checks that every port counter only grows, in a steady
// fabric, and that with incidents it falls only when the whole port resets
// (a reboot: its traffic counter falls too).
func TestUFMMonotonic(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
	}{
		{"steady matrix", Config{Switches: 20, Seed: 4, Interval: 10 * time.Second}},
		{"steady ports", Config{Switches: 20, Ports: 12, Seed: 4, Interval: 10 * time.Second}},
		{"incidents", Config{Switches: 60, Ports: 4, Seed: 4, IncidentRate: 0.05, Interval: 10 * time.Second}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newSim(t, tc.cfg)
			prev := map[string]row{}
			resets, grew := 0, 0
			for i := range 60 {
				now := t0.Add(time.Duration(i) * 10 * time.Second)
				s.Tick(now)
				rows := rowsByName(t, parseBody(t, s.UFMBody()))
				if tc.cfg.IncidentRate == 0 && len(rows) == 0 {
					t.Fatal("no rows")
				}
				for _, r := range rows {
					key := ufmKey(r)
					p, ok := prev[key]
					prev[key] = r
					if !ok {
						continue
					}
					if r.uint(t, "PortXmitDataExtended") > p.uint(t, "PortXmitDataExtended") {
						grew++
					}
					reset := r.uint(t, "PortXmitDataExtended") < p.uint(t, "PortXmitDataExtended")
					if reset {
						resets++
					}
					for _, col := range ufmCounters {
						if r[col] == "" || p[col] == "" {
							continue
						}
						if r.uint(t, col) < p.uint(t, col) && !reset {
							t.Fatalf("tick %d %s %s: %s -> %s without a reset", i, key, col, p[col], r[col])
						}
					}
				}
			}
			if grew == 0 {
				t.Error("no port's traffic grew")
			}
			if steady := tc.cfg.IncidentRate == 0; steady != (resets == 0) {
				t.Errorf("%d resets, incident rate %v", resets, tc.cfg.IncidentRate)
			}
		})
	}
}

// TestUFMLazyMatchesMatrix checks the /csv/metrics body of the switch matrix
// (rendered on demand) against the matrix of the same tick: each switch's
// ports add up to its traffic, and absent switches are absent from both.
func TestUFMLazyMatchesMatrix(t *testing.T) {
	s := newSim(t, Config{Switches: 40, Seed: 12, IncidentRate: 0.05, Interval: time.Second})
	for i := range 30 {
		s.Tick(t0.Add(time.Duration(i) * time.Second))
		if i%4 != 0 {
			continue // some snapshots never render their UFM body
		}
		matrix := map[string]row{}
		for _, r := range rowsByName(t, parseBody(t, s.Body())) {
			matrix[r["switch_id"]] = r
		}
		sums := map[string]uint64{}
		ports := map[string]uint64{}
		for _, r := range rowsByName(t, parseBody(t, s.UFMBody())) {
			sums[switchOf(r)] += 4 * r.uint(t, "PortXmitDataExtended")
			ports[switchOf(r)]++
		}
		if len(sums) != len(matrix) {
			t.Fatalf("tick %d: %d switches in /csv/metrics, %d in /counters", i, len(sums), len(matrix))
		}
		for id, m := range matrix {
			tx := m.uint(t, "Tx_Bytes")
			if ports[id] != m.uint(t, "Ports_Total") {
				t.Errorf("%s: %d ports, Ports_Total %d", id, ports[id], m.uint(t, "Ports_Total"))
			}
			if got := sums[id]; got > tx || float64(got) < float64(tx)*(1-1e-9)-4*64 {
				t.Errorf("tick %d %s: ports send %d bytes, the switch %d", i, id, got, tx)
			}
		}
	}
}

func TestDeterministicPorts(t *testing.T) {
	cfg := Config{Switches: 30, Ports: 4, Seed: 42, IncidentRate: 0.05, Interval: time.Second}
	a, b := newSim(t, cfg), newSim(t, cfg)
	cfg.Seed = 43
	other := newSim(t, cfg)
	for i := range 30 {
		now := t0.Add(time.Duration(i) * time.Second)
		a.Tick(now)
		b.Tick(now)
		other.Tick(now)
		if !bytes.Equal(a.Body(), b.Body()) || !bytes.Equal(a.UFMBody(), b.UFMBody()) {
			t.Fatalf("tick %d: bodies differ for the same seed", i)
		}
		if bytes.Equal(a.UFMBody(), other.UFMBody()) || bytes.Equal(a.Body(), other.Body()) {
			t.Fatalf("tick %d: seeds 42 and 43 gave the same body", i)
		}
	}
	ga := rowsByName(t, parseBody(t, a.UFMBody()))[0]["port_guid"]
	gother := rowsByName(t, parseBody(t, other.UFMBody()))[0]["port_guid"]
	if ga == gother {
		t.Errorf("seeds 42 and 43 gave SW-01 the same GUID %s", ga)
	}
}

func TestPortsValidation(t *testing.T) {
	tests := []struct {
		name    string
		cfg     Config
		wantErr bool
	}{
		{"zero", Config{Ports: 0}, false},
		{"one", Config{Switches: 2, Ports: 1}, false},
		{"max", Config{Switches: 1, Ports: maxPorts}, false},
		{"negative", Config{Ports: -1}, true},
		{"too many", Config{Switches: 1, Ports: maxPorts + 1}, true},
		{"too many rows", Config{Switches: maxPortRows/64 + 1, Ports: 64}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(tc.cfg)
			if (err != nil) != tc.wantErr {
				t.Fatalf("New = %v, want error %v", err, tc.wantErr)
			}
			if err != nil && !strings.Contains(err.Error(), "ports") {
				t.Errorf("error %v does not mention ports", err)
			}
		})
	}
}

// TestQuirksFixture keeps the hand-written testdata/ufm_quirks.csv to what
// the package documentation promises of it.
func TestQuirksFixture(t *testing.T) {
	body, err := os.ReadFile("testdata/ufm_quirks.csv")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasSuffix(body, []byte("\n")) {
		t.Error("no trailing newline")
	}
	recs := parseBody(t, body)
	if !slices.Equal(recs[0], wantUFMHeader) {
		t.Fatalf("header = %v", recs[0])
	}
	rows := rowsByName(t, recs)
	if len(rows) < 5 || len(rows) > 10 {
		t.Errorf("%d rows, want 5 to 10", len(rows))
	}
	guids := map[string]bool{}
	var empty, tagged, commas int
	for _, r := range rows {
		guids[r["port_guid"]] = true
		if r["tag"] != "" {
			tagged++
		}
		if strings.Contains(r["node_description"], ",") {
			commas++
		}
		for _, col := range ufmCounters {
			if r[col] == "" {
				empty++
			} else {
				r.uint(t, col)
			}
		}
	}
	if len(guids) != 2 || empty == 0 || tagged == 0 || tagged == len(rows) || commas == 0 {
		t.Errorf("%d switches, %d empty cells, %d tagged rows, %d descriptions with commas", len(guids), empty, tagged, commas)
	}
}
