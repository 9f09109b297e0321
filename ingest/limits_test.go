package ingest

import (
	"fmt"
	"runtime"
	"strings"
	"testing"

	"github.com/fabrictelemetry/aggregator/schema"
	"github.com/fabrictelemetry/aggregator/simulator"
)

// TestParseLimits checks each limit at its value (accepted) and one over
// (rejected with reason limit, the message naming the limit, its value and
// the flag and field that raise it).
func TestParseLimits(t *testing.T) {
	long := func(n int) string { return strings.Repeat("x", n) }
	rows := func(n int, row func(i int) string) string {
		var b strings.Builder
		for i := range n {
			b.WriteString(row(i))
		}
		return b.String()
	}
	header := func(columns int) string { return "switch_id" + metricColumns(columns-1) }
	tests := []struct {
		name   string
		limits Limits
		body   string
		over   bool
		says   string // in the error when over
	}{
		{"columns at the limit", Limits{Columns: 4}, header(4) + "SW-1,1,2,3\n", false, ""},
		{"columns over the limit", Limits{Columns: 4}, header(5) + "SW-1,1,2,3,4\n", true, "5 columns, over the column limit of 4 (--source.column-limit, column_limit)"},
		{"quoted commas are not columns", Limits{Columns: 3}, "switch_id,\"M,1\",\"M\"\"2,\"\nSW-1,1,2\n", false, ""},
		{"columns over the limit, quoted", Limits{Columns: 2}, "switch_id,\"M,1\",\"M\"\"2,\"\nSW-1,1,2\n", true, "3 columns"},
		{"samples at the limit", Limits{Samples: 6}, "switch_id,A,B\n" + rows(3, func(i int) string { return fmt.Sprintf("SW-%d,1,\n", i) }), false, ""},
		{"samples over the limit", Limits{Samples: 6}, "switch_id,A,B\n" + rows(4, func(i int) string { return fmt.Sprintf("SW-%d,1,\n", i) }),
			true, "line 5: 4 rows × 2 metric columns are over the sample limit of 6 (--source.sample-limit, sample_limit)"},
		{"rows without metrics at the limit", Limits{Samples: 3}, "switch_id\n" + rows(3, func(i int) string { return fmt.Sprintf("SW-%d\n", i) }), false, ""},
		{"rows without metrics over the limit", Limits{Samples: 3}, "switch_id\n" + rows(4, func(i int) string { return fmt.Sprintf("SW-%d\n", i) }), true, "sample limit of 3"},
		{"switch_id at the limit", Limits{LabelValueLength: 8}, "switch_id,A\n" + long(8) + ",1\n", false, ""},
		{"switch_id over the limit", Limits{LabelValueLength: 8}, "switch_id,A\nSW-1,1\n" + long(9) + ",1\n",
			true, `line 3: column "switch_id": value of 9 bytes ("xxxxxxxxx"…) is over the label value length limit of 8 (--source.label-value-length-limit, label_value_length_limit)`},
		{"quoted switch_id over the limit", Limits{LabelValueLength: 8}, "switch_id,A\n\"x\"\"" + long(8) + "\",1\n", true, "value of 10 bytes"},
		{"port over the limit", Limits{LabelValueLength: 8}, "switch_id,port,A\nSW-1," + long(9) + ",1\n", true, `column "port"`},
		{"UFM description's first word at the limit", Limits{LabelValueLength: 8}, ufmHeader + "1764099000000000,s,,0x1,0x1,1," + long(8) + " " + long(100) + ",1,2,3\n", false, ""},
		{"UFM description's first word over the limit", Limits{LabelValueLength: 8}, ufmHeader + "1764099000000000,s,,0x1,0x1,1," + long(9) + " X,1,2,3\n", true, `column "node_description"`},
		{"UFM node_guid over the limit", Limits{LabelValueLength: 8}, ufmHeader + "1764099000000000,s,,0x" + long(7) + ",0x1,1,SW-01 X,1,2,3\n", true, `column "node_guid"`},
		{"UFM ignored columns are not labels", Limits{LabelValueLength: 8}, ufmHeader + "1764099000000000," + long(100) + "," + long(100) + ",0x1," + long(100) + ",1,SW-01 X,1,2,3\n", false, ""},
		{"no limits", Limits{}, header(10001) + "SW-1" + strings.Repeat(",1", 10000) + "\n" + long(1<<20) + strings.Repeat(",1", 10000) + "\n", false, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := NewParser(schema.Default())
			p.Limits = tc.limits
			snap, err := p.Parse([]byte(tc.body), pollTime)
			if !tc.over {
				if err != nil {
					t.Fatalf("rejected: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("accepted %d rows", snap.NumRows())
			}
			if ReasonOf(err) != ReasonLimit || !strings.Contains(err.Error(), tc.says) {
				t.Errorf("error %q, want reason limit saying %q", err, tc.says)
			}
		})
	}
}

// TestParseSampleLimitBeforeAllocation: a body of many rows over the sample
// limit is refused before its rows are allocated. Without the limit on the
// builder's size hint, the parser reserves room for every line of the body
// (9 bytes a value) before reading the first row.
func TestParseSampleLimitBeforeAllocation(t *testing.T) {
	const lines, columns = 200_000, 10
	var b strings.Builder
	b.WriteString("switch_id" + metricColumns(columns))
	for i := range lines {
		fmt.Fprintf(&b, "SW-%d%s\n", i, strings.Repeat(",1", columns))
	}
	body := []byte(b.String())
	p := NewParser(schema.Default())
	p.Limits = Limits{Samples: 1000}
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	_, err := p.Parse(body, pollTime)
	runtime.ReadMemStats(&after)
	if ReasonOf(err) != ReasonLimit {
		t.Fatalf("error %v, want reason limit", err)
	}
	// Room for every line would be lines × columns × 9 bytes.
	if allocated := after.TotalAlloc - before.TotalAlloc; allocated > lines*columns {
		t.Errorf("%d bytes allocated for a body of %d lines over the limit: rows were reserved before the limit was checked", allocated, lines)
	}
}

// metricColumns is the rest of a header: n metric columns and the newline.
func metricColumns(n int) string {
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, ",M%d", i)
	}
	return b.String() + "\n"
}

// TestDefaultLimitsAdmitFabric parses the 2,000-switch × 64-port
// fabric, as UFM Telemetry and as the per-port switch matrix, with the
// default limits.
func TestDefaultLimitsAdmitFabric(t *testing.T) {
	if testing.Short() {
		t.Skip("renders and parses 128,000 rows twice")
	}
	sim, err := simulator.New(simulator.Config{Switches: fabricSwitches, Ports: fabricPorts, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	sim.Tick(pollTime)
	for name, body := range map[string][]byte{"ufm": sim.UFMBody(), "matrix": sim.Body()} {
		snap, err := NewParser(schema.Default()).Parse(body, pollTime)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if snap.NumRows() != fabricSwitches*fabricPorts {
			t.Errorf("%s: %d rows, want %d", name, snap.NumRows(), fabricSwitches*fabricPorts)
		}
		t.Logf("%s: %d rows × %d metric columns = %d samples, %.1f%% of the default limit",
			name, snap.NumRows(), len(snap.Columns()), snap.NumRows()*len(snap.Columns()),
			100*float64(snap.NumRows()*len(snap.Columns()))/DefaultSampleLimit)
	}
}
