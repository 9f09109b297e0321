package ingest

import (
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/fabrictelemetry/aggregator/schema"
)

const ufmHeader = "timestamp,source_id,tag,node_guid,port_guid,port_num,node_description,PortXmitDataExtended,PortRcvErrorsExtended,VL15DroppedExtended\n"

func TestParseUFM(t *testing.T) {
	ts := time.Date(2026, 11, 25, 19, 30, 0, 0, time.UTC)
	micros := func(d time.Duration) string { return strconv.FormatInt(ts.Add(d).UnixMicro(), 10) }
	body := ufmHeader +
		micros(0) + ",src,,0x0002c90300000005,0x0002c90300000005,2,SW-05 MQM9790/U1,100,0,\n" +
		micros(0) + ",src,t1,0x0002c90300000005,0x0002c90300000005,10,SW-05 MQM9790/U1,200,1,3\n" +
		micros(time.Millisecond) + ",src,,0x0002c90300000007,0x0002c90300000007,1,\"SW-07 MQM9790/U1, rack 3\",300,2,4\n" +
		micros(0) + ",src,,0x0002c9030000000a,0x0002c9030000000a,1,,400,0,0\n"
	snap := mustParse(t, body)

	if got, want := snap.LabelNames(), []string{"switch_id", "port", "node_guid"}; !slices.Equal(got, want) {
		t.Fatalf("labels %v, want %v", got, want)
	}
	if !snap.Time().Equal(ts.Add(time.Millisecond)) {
		t.Errorf("time %v, want the newest row's, in microseconds", snap.Time())
	}
	// A switch without a description is named by its node GUID.
	if got, want := snap.Switches(), []string{"0x0002c9030000000a", "SW-05", "SW-07"}; !slices.Equal(got, want) {
		t.Fatalf("switches %v, want %v", got, want)
	}
	start, end, _ := snap.SwitchRows("SW-05")
	if end-start != 2 || snap.RowLabels(start)[1] != "2" || snap.RowLabels(start + 1)[1] != "10" {
		t.Errorf("SW-05 ports not in numeric order: %v %v", snap.RowLabels(start), snap.RowLabels(end-1))
	}
	if v := value(t, snap, "SW-05", "VL15DroppedExtended"); v.Present() {
		t.Errorf("empty cell read as %v", v.Float64())
	}
	col, _ := snap.Column("PortXmitDataExtended")
	if m := snap.Metrics()[col]; m.Name != "fabric_port_transmit_bytes_total" || m.Scale != 4 {
		t.Errorf("PortXmitDataExtended exported as %s ×%v, want bytes (words × 4)", m.Name, m.Scale)
	}
}

func TestParseFormats(t *testing.T) {
	matrix := "switch_id,timestamp,Rx_Bytes\nSW-01,1764099000000,5\n"
	ufm := ufmHeader + "1764099000000000,s,,0x1,0x1,1,SW-01 X,1,2,3\n"
	tests := []struct {
		name   string
		format Format
		body   string
		reason Reason // empty: accepted
	}{
		{"auto matrix", FormatAuto, matrix, ""},
		{"auto ufm", FormatAuto, ufm, ""},
		{"ufm told matrix", FormatMatrix, ufm, ReasonSchema},
		{"matrix told ufm", FormatUFM, matrix, ReasonSchema},
		{"ufm without port_num", FormatUFM, "timestamp,node_guid,X\n1,0x1,2\n", ReasonSchema},
		{"ufm with empty port", FormatUFM, ufmHeader + "1764099000000000,s,,0x1,0x1,,SW-01,1,2,3\n", ReasonParse},
		{"ufm duplicate port", FormatUFM, ufm + "1764099000000000,s,,0x1,0x1,1,SW-01 X,1,2,3\n", ReasonParse},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := NewFormatParser(schema.Default(), tc.format).Parse([]byte(tc.body), pollTime)
			if tc.reason == "" && err != nil {
				t.Fatalf("rejected: %v", err)
			}
			if tc.reason != "" && ReasonOf(err) != tc.reason {
				t.Fatalf("error %v, want reason %s", err, tc.reason)
			}
		})
	}
}

func TestParseMatrixPerPort(t *testing.T) {
	snap := mustParse(t, "switch_id,port,timestamp,Rx_Bytes\nSW-01,10,1764099000000,5\nSW-01,9,1764099000000,6\n")
	if got := snap.RowLabels(0)[1]; got != "9" {
		t.Errorf("first port %q, want 9 (numeric order)", got)
	}
	col, _ := snap.Column("Rx_Bytes")
	if m := snap.Metrics()[col]; m.Name != "fabric_port_receive_bytes_total" {
		t.Errorf("per-port Rx_Bytes exported as %s", m.Name)
	}
}

func TestParseKnownColumnsClash(t *testing.T) {
	// Both are known and both are transmitted bytes of a port.
	snap := mustParse(t, "switch_id,port,Tx_Bytes,PortXmitDataExtended\nSW-01,1,8,2\n")
	names := map[string]bool{}
	for _, m := range snap.Metrics() {
		if names[m.Name] {
			t.Fatalf("two columns exported as %s", m.Name)
		}
		names[m.Name] = true
	}
}

// TestParserAfterChangedBody parses a sequence of bodies with one parser,
// which reuses what the previous body had at each row (labels, the
// timestamp) when it is the same, and checks each snapshot against a fresh
// parser's: whatever changed between bodies must be read anew.
func TestParserAfterChangedBody(t *testing.T) {
	row := func(ts int64, guid, port, desc string, v int) string {
		return strconv.FormatInt(ts, 10) + ",src,," + guid + "," + guid + "," + port + "," + desc + "," + strconv.Itoa(v) + ",0,0\n"
	}
	const t0 = 1795635000000000
	const descFirst = "node_description,timestamp,source_id,tag,node_guid,port_guid,port_num,PortXmitDataExtended,PortRcvErrorsExtended,VL15DroppedExtended\n"
	descRow := func(desc string, ts int64, port string, v int) string {
		return desc + "," + strconv.FormatInt(ts, 10) + ",src,,0x01,0x01," + port + "," + strconv.Itoa(v) + ",0,0\n"
	}
	bodies := []string{
		ufmHeader + row(t0, "0x01", "1", "SW-01 a", 1) + row(t0, "0x01", "2", "SW-01 a", 2) + row(t0, "0x02", "1", "SW-02 b", 3),
		// A switch renamed and a port renumbered at the same row positions.
		ufmHeader + row(t0+1, "0x01", "1", "SW-09 a", 4) + row(t0+1, "0x01", "3", "SW-09 a", 5) + row(t0+1, "0x02", "1", "SW-02 b", 6),
		// Records that only encoding/csv reads (an escaped quote before
		// the timestamp), whose timestamps differ: the text of the one
		// reused must not alias encoding/csv's buffer.
		descFirst + descRow(`"SW-""1"" a"`, t0+2, "1", 7) + descRow(`"SW-""1"" a"`, t0+5, "3", 8) + descRow("SW-02", t0+3, "1", 9),
		// A row dropped, and an empty description (named by its GUID).
		ufmHeader + row(t0+4, "0x01", "1", "SW-09 a", 10) + row(t0+4, "0x02", "1", "", 11),
	}
	newest := []int64{t0, t0 + 1, t0 + 5, t0 + 4} // µs, each body's newest row
	p := NewParser(schema.Default())
	for i, body := range bodies {
		got, err := p.Parse([]byte(body), pollTime)
		if err != nil {
			t.Fatalf("body %d: %v", i, err)
		}
		if want := time.UnixMicro(newest[i]); !got.Time().Equal(want) {
			t.Errorf("body %d: time %v, want its newest row's, %v", i, got.Time(), want)
		}
		want, err := NewParser(schema.Default()).Parse([]byte(body), pollTime)
		if err != nil {
			t.Fatalf("body %d, fresh parser: %v", i, err)
		}
		if !got.Time().Equal(want.Time()) {
			t.Errorf("body %d: time %v, a fresh parser reads %v", i, got.Time(), want.Time())
		}
		if got.NumRows() != want.NumRows() {
			t.Fatalf("body %d: %d rows, a fresh parser reads %d", i, got.NumRows(), want.NumRows())
		}
		for r := range want.NumRows() {
			if !slices.Equal(got.RowLabels(r), want.RowLabels(r)) {
				t.Errorf("body %d row %d: labels %v, a fresh parser reads %v", i, r, got.RowLabels(r), want.RowLabels(r))
			}
			for c := range want.Columns() {
				if got.Value(r, c) != want.Value(r, c) {
					t.Errorf("body %d row %d column %d: %v, a fresh parser reads %v", i, r, c, got.Value(r, c), want.Value(r, c))
				}
			}
		}
	}
}

// repeatingLeadingFields is a UFM body whose rows repeat the previous row's
// leading fields (timestamp, source, tag, GUIDs) in part: whole, up to the
// port, up to a field that is the previous one's prefix, or not at all.
const repeatingLeadingFields = ufmHeader +
	"1764099000000000,s,,0x1,0x1,1,SW-01 X,1,2,3\n" +
	"1764099000000000,s,,0x1,0x1,2,SW-01 X,4,5,6\n" + // the same but the port
	"1764099000000000,s,,0x1,0x1,3,\"SW-01 X\",7,8,9\n" +
	"1764099000000000,s,,0x1,0x1,4,\"SW-\"\"01\"\" X\",1,2,3\n" + // read by encoding/csv
	"1764099000000000,s,,0x1,0x1,5,SW-01 X,1,2,3\n" +
	"1764099000005000,s,,0x1,0x1,6,SW-01 X,1,2,3\n" + // a newer timestamp
	"1764099000005000,s,,0x10,0x1,1,SW-02 X,1,2,3\n" + // a GUID the last one's prefix
	"1764099000005000,s,,0x1,0x1,1,SW-03 X,1,2,3\n" + // and back
	"1764099000005000,s,t,0x1,0x1,2,SW-03 X,1,2,3\n" + // an ignored field differs
	"1764099000003000,s,t,0x1,0x1,3,SW-03 X,1,2,3\n" // an older timestamp

// TestParseRepeatingLeadingFields checks rows that repeat the previous
// row's leading bytes, which the scanner does not read again, against
// encoding/csv's reading of the same body.
func TestParseRepeatingLeadingFields(t *testing.T) {
	snap, err := NewFormatParser(schema.Default(), FormatUFM).Parse([]byte(repeatingLeadingFields), pollTime)
	if err != nil {
		t.Fatal(err)
	}
	if want := time.UnixMicro(1764099000005000); !snap.Time().Equal(want) {
		t.Errorf("time %v, want the newest row's, %v", snap.Time(), want)
	}
	checkUFMRecords(t, snap, csvRecords(t, []byte(repeatingLeadingFields)))
}
