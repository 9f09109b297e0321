package ingest

import (
	"bytes"
	"encoding/csv"
	"math"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/fabrictelemetry/aggregator/schema"
	"github.com/fabrictelemetry/aggregator/snapshot"
)

var pollTime = time.Date(2026, 11, 25, 19, 30, 0, 0, time.UTC)

func parse(t *testing.T, body string) (*snapshot.Snapshot, error) {
	t.Helper()
	return NewParser(schema.Default()).Parse([]byte(body), pollTime)
}

func mustParse(t *testing.T, body string) *snapshot.Snapshot {
	t.Helper()
	snap, err := parse(t, body)
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return snap
}

func value(t *testing.T, snap *snapshot.Snapshot, id, column string) snapshot.Value {
	t.Helper()
	row, _, ok := snap.SwitchRows(id)
	if !ok {
		t.Fatalf("no switch %q", id)
	}
	col, ok := snap.Column(column)
	if !ok {
		t.Fatalf("no column %q", column)
	}
	return snap.Value(row, col)
}

func TestParseRejects(t *testing.T) {
	const header = "switch_id,timestamp,Rx_Bytes,Temperature_C\n"
	tests := []struct {
		name   string
		body   string
		reason Reason
	}{
		{"empty body", "", ReasonEmpty},
		{"whitespace body", " \n\r\n", ReasonEmpty},
		{"header without rows", header, ReasonEmpty},
		{"header without rows or newline", "switch_id,Rx_Bytes", ReasonEmpty},
		{"no switch_id column", "id,Rx_Bytes\nSW-01,1\n", ReasonSchema},
		{"duplicate column", "switch_id,Rx_Bytes,Rx_Bytes\nSW-01,1,2\n", ReasonSchema},
		{"unnamed column", "switch_id,,Rx_Bytes\nSW-01,1,2\n", ReasonSchema},
		{"too few fields", header + "SW-01,1764099000000,5\n", ReasonParse},
		{"too many fields", header + "SW-01,1764099000000,5,40,1\n", ReasonParse},
		{"non-numeric value", header + "SW-01,1764099000000,abc,40\n", ReasonParse},
		{"number with junk", header + "SW-01,1764099000000,12x,40\n", ReasonParse},
		{"duplicate switch", header + "SW-01,1764099000000,1,40\nSW-01,1764099000000,2,41\n", ReasonParse},
		{"empty switch id", header + ",1764099000000,1,40\n", ReasonParse},
		{"control character in id", header + "SW\x01,1764099000000,1,40\n", ReasonParse},
		{"tab in id", header + "SW\t01,1764099000000,1,40\n", ReasonParse},
		{"C1 control in id", header + "SW\u008501,1764099000000,1,40\n", ReasonParse},
		{"invalid UTF-8 in id", header + "SW-\xff,1764099000000,1,40\n", ReasonParse},
		{"bad timestamp", header + "SW-01,yesterday,1,40\n", ReasonParse},
		{"negative timestamp", header + "SW-01,-5,1,40\n", ReasonParse},
		{"cut mid-row", header + "SW-01,1764099000000,1,40\nSW-02,17640990", ReasonTruncated},
		{"garbage", "\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\xff\xfe", ReasonParse},
		{"unterminated quote", header + "\"SW-01,1764099000000,1,40\n", ReasonParse},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			snap, err := parse(t, tc.body)
			if err == nil {
				t.Fatalf("accepted %q: %d rows", tc.body, snap.NumRows())
			}
			if got := ReasonOf(err); got != tc.reason {
				t.Errorf("reason %q (%v), want %q", got, err, tc.reason)
			}
		})
	}
}

func TestParseValues(t *testing.T) {
	body := "switch_id,timestamp,Rx_Bytes,Tx_Bytes,Temperature_C,Power_W,Latency_Avg_uSec,Buffer_Util_Pct,Rx_Errors\r\n" +
		"SW-02,1764099000123,18446744073709551615,9007199254740993,NaN,+Inf,-Inf,,-7\r\n" +
		"SW-01,1764099000000,0,12,41.25, 300.5 ,1e-3,55,3\r\n"
	snap := mustParse(t, body)

	if got, want := snap.Switches(), []string{"SW-01", "SW-02"}; !equal(got, want) {
		t.Fatalf("switches %v, want sorted %v", got, want)
	}
	if got, want := snap.Time(), time.UnixMilli(1764099000123).UTC(); !got.Equal(want) {
		t.Errorf("snapshot time %v, want the newest row timestamp %v", got, want)
	}
	if u, ok := value(t, snap, "SW-02", "Rx_Bytes").Uint64(); !ok || u != math.MaxUint64 {
		t.Errorf("2^64-1 read as %d (exact %v)", u, ok)
	}
	if u, _ := value(t, snap, "SW-02", "Tx_Bytes").Uint64(); u != 1<<53+1 {
		t.Errorf("2^53+1 read as %d: lost precision", u)
	}
	if f := value(t, snap, "SW-02", "Temperature_C").Float64(); !math.IsNaN(f) {
		t.Errorf("NaN read as %v", f)
	}
	if f := value(t, snap, "SW-02", "Power_W").Float64(); !math.IsInf(f, 1) {
		t.Errorf("+Inf read as %v", f)
	}
	if f := value(t, snap, "SW-02", "Latency_Avg_uSec").Float64(); !math.IsInf(f, -1) {
		t.Errorf("-Inf read as %v", f)
	}
	if v := value(t, snap, "SW-02", "Buffer_Util_Pct"); v.Present() {
		t.Errorf("empty cell read as %v, want absent", v.Float64())
	}
	if f := value(t, snap, "SW-02", "Rx_Errors").Float64(); f != -7 {
		t.Errorf("-7 read as %v", f)
	}
	if f := value(t, snap, "SW-01", "Power_W").Float64(); f != 300.5 {
		t.Errorf("padded 300.5 read as %v", f)
	}
	if f := value(t, snap, "SW-01", "Latency_Avg_uSec").Float64(); f != 1e-3 {
		t.Errorf("1e-3 read as %v", f)
	}
}

func TestParseColumnsByName(t *testing.T) {
	// SCHEMA mode: reordered columns and an unknown one are accepted.
	snap := mustParse(t, "Rx_Bytes,Fan_Speed_RPM,timestamp,switch_id\n5,1200,1764099000000,SW-01\n")
	if got := value(t, snap, "SW-01", "Rx_Bytes").Float64(); got != 5 {
		t.Errorf("Rx_Bytes %v, want 5", got)
	}
	if got := value(t, snap, "SW-01", "Fan_Speed_RPM").Float64(); got != 1200 {
		t.Errorf("Fan_Speed_RPM %v, want 1200", got)
	}
	col, _ := snap.Column("Fan_Speed_RPM")
	if m := snap.Metrics()[col]; m.Name != "fabric_switch_fan_speed_rpm" || m.Type != schema.Gauge {
		t.Errorf("unknown column exported as %s (%s)", m.Name, m.Type)
	}
}

func TestParseQuotedFields(t *testing.T) {
	body := "switch_id,\"Rx_Bytes\",Temperature_C\n" +
		"\"SW-01\",1,40\n" +
		"\"SW,\"\"02\"\"\",\"2\",41\n" +
		"\"SW\n03\",3,42\n" +
		"SW-04,4,43\n"
	_, err := parse(t, body)
	if ReasonOf(err) != ReasonParse {
		t.Fatalf("newline inside an id: got %v, want a parse error (control character)", err)
	}
	body = strings.Replace(body, "\"SW\n03\",3,42\n", "", 1)
	snap := mustParse(t, body)
	if got, want := snap.Switches(), []string{"SW,\"02\"", "SW-01", "SW-04"}; !equal(got, want) {
		t.Fatalf("switches %q, want %q", got, want)
	}
	if got := value(t, snap, "SW,\"02\"", "Rx_Bytes").Float64(); got != 2 {
		t.Errorf("quoted value %v, want 2", got)
	}
	if got := value(t, snap, "SW-04", "Temperature_C").Float64(); got != 43 {
		t.Errorf("row after quoted rows %v, want 43", got)
	}
}

func TestParseTimestampUnits(t *testing.T) {
	want := time.Date(2026, 11, 25, 19, 30, 1, 0, time.UTC)
	for _, ts := range []int64{want.Unix(), want.UnixMilli(), want.UnixMicro(), want.UnixNano()} {
		snap := mustParse(t, "switch_id,timestamp,Rx_Bytes\nSW-01,"+strconv.FormatInt(ts, 10)+",1\n")
		if !snap.Time().Equal(want) {
			t.Errorf("timestamp %d read as %v, want %v", ts, snap.Time(), want)
		}
	}
	snap := mustParse(t, "switch_id,Rx_Bytes\nSW-01,1\n")
	if !snap.Time().Equal(pollTime) {
		t.Errorf("no timestamp column: time %v, want the poll time %v", snap.Time(), pollTime)
	}
}

func TestParserReusesIDs(t *testing.T) {
	p := NewParser(schema.Default())
	body := []byte("switch_id,Rx_Bytes\nSW-01,1\nSW-02,2\n")
	if _, err := p.Parse(body, pollTime); err != nil {
		t.Fatal(err)
	}
	allocs := testing.AllocsPerRun(20, func() {
		if _, err := p.Parse(body, pollTime); err != nil {
			t.Fatal(err)
		}
	})
	// The same body parsed again: switch ids come from the intern table.
	// Count what a fresh parser allocates for comparison.
	fresh := testing.AllocsPerRun(20, func() {
		if _, err := NewParser(schema.Default()).Parse(body, pollTime); err != nil {
			t.Fatal(err)
		}
	})
	if allocs >= fresh {
		t.Errorf("steady parse allocates %v times, a fresh parser %v: ids are not reused", allocs, fresh)
	}
}

// FuzzParseMatchesEncodingCSV checks the byte scanner against encoding/csv:
// whatever the scanner accepts, encoding/csv must read to the same cells.
func FuzzParseMatchesEncodingCSV(f *testing.F) {
	f.Add([]byte("switch_id,timestamp,Rx_Bytes\nSW-01,1764099000000,5\n"))
	f.Add([]byte("switch_id,Rx_Bytes,Power_W\n\"SW,1\",\"7\",1.5\r\nSW-2,,NaN\n"))
	f.Add([]byte("Rx_Bytes,switch_id\n18446744073709551615,a\n-3,b"))
	// Quoted fields: the scanner reads plain ones, encoding/csv the rest.
	f.Add([]byte("switch_id,Rx_Bytes,Tx_Bytes\n\"SW-1 x,y\",1,\n\"a\"\"b\",2,3\n\"c\nd\",4,5\r\n\"e\"f,6,7\n"))
	f.Add([]byte("switch_id,Rx_Bytes\nx\"y,1\n\"z\",\"\"\n"))
	// Rows that repeat the previous row's leading fields, which the scanner
	// does not read again, in whole or in part.
	f.Add([]byte("timestamp,switch_id,Rx_Bytes\n1764099000,SW-1,5\n1764099000,SW-2,6\n1764099000,SW-21,7\n1764099000001,SW-3,8\n1764099000,\"SW-4\",9\n"))
	// The number grammar's rejections (each a body of its own, so that one
	// does not hide the next), and what it accepts that strconv reads
	// otherwise.
	for _, cell := range []string{"0x1p4", "1_000", ".5", "5.", "18446744073709551616", "-9223372036854775809", "1e400", "+7", " 7 ", "+Inf", "Infinity"} {
		f.Add([]byte("switch_id,Rx_Bytes,Tx_Bytes\nSW-1," + cell + ",1\n\"SW-2\",\"" + cell + "\",2\n"))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		snap, err := NewFormatParser(schema.Default(), FormatMatrix).Parse(body, pollTime)
		if err != nil {
			if ReasonOf(err) == "" {
				t.Fatalf("error without a reason: %v", err)
			}
			return
		}
		checkAgainstRecords(t, snap, csvRecords(t, body))
	})
}

// csvRecords reads an accepted body with encoding/csv, and fails the test
// if encoding/csv rejects it: the parser must not accept more.
func csvRecords(t *testing.T, body []byte) [][]string {
	t.Helper()
	r := csv.NewReader(bytes.NewReader(bytes.TrimPrefix(body, []byte("\xef\xbb\xbf"))))
	r.FieldsPerRecord = -1
	recs, err := r.ReadAll()
	if err != nil {
		t.Fatalf("parser accepted what encoding/csv rejects (%v): %q", err, body)
	}
	return recs
}

func checkAgainstRecords(t *testing.T, snap *snapshot.Snapshot, recs [][]string) {
	header := recs[0]
	idCol := -1
	for i, h := range header {
		if strings.TrimSpace(h) == "switch_id" {
			idCol = i
		}
	}
	rows := 0
	for _, rec := range recs[1:] {
		if len(rec) == 1 && rec[0] == "" {
			continue
		}
		rows++
		row, _, ok := snap.SwitchRows(rec[idCol])
		if !ok {
			t.Fatalf("switch %q missing", rec[idCol])
		}
		for i, h := range header {
			col, ok := snap.Column(strings.TrimSpace(h))
			if !ok {
				continue
			}
			got := snap.Value(row, col)
			want, ok := numberOracle(rec[i])
			if !ok {
				t.Fatalf("parser accepted %q, which the number grammar refuses", rec[i])
			}
			if got != want {
				t.Fatalf("%s/%s: %s, the number grammar reads %q as %s", rec[idCol], h, describe(got), rec[i], describe(want))
			}
		}
	}
	if rows != snap.NumRows() {
		t.Fatalf("%d rows, encoding/csv reads %d", snap.NumRows(), rows)
	}
}

func equal(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
