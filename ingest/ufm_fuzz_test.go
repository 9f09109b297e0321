package ingest

import (
	"errors"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"github.com/fabrictelemetry/aggregator/schema"
	"github.com/fabrictelemetry/aggregator/snapshot"
)

// FuzzParseUFM checks the parser on UFM Telemetry bodies (seed corpus in
// testdata/fuzz/FuzzParseUFM: the quirks UFM is known for). Whatever it
// does with a body, it must either reject it with a reason or produce a
// snapshot that encoding/csv reads the same way: the same rows, each keyed
// by the switch named in node_description (or the node GUID) and the port
// number, every value the cell's number, and every label valid UTF-8
// without control characters, so that neither the JSON answers nor the
// Prometheus exposition can break on it.
func FuzzParseUFM(f *testing.F) {
	f.Add([]byte(ufmHeader + "1764099000000000,s,,0x1,0x1,1,SW-01 X,1,2,3\n"))
	f.Add([]byte(ufmHeader + "1764099000000000,s,t,0x1,0x1,2,\"SW-01 X, rack 3\",,NaN,+Inf\r\n" +
		"1764099000001000,s,t,0x2,0x2,1,,18446744073709551615,-1,1e3\r\n"))
	f.Add([]byte(ufmHeader + "1764099000000000,s,,0x1,0x1,1,\"SW-\"\"01\"\" X\",1,2,3\n"))
	f.Add([]byte(repeatingLeadingFields))
	for _, cell := range []string{"0x1p4", "1_000", ".5", "18446744073709551616", "1e400", "+7"} {
		f.Add([]byte(ufmHeader + "1764099000000000,s,,0x1,0x1,1,SW-01 X,1," + cell + ",\"" + cell + "\"\n"))
	}
	for _, ts := range []string{"17640990000000000", "176409900000000000", "1764099000000000.5"} { // 17 and 18 digits; a float in µs
		f.Add([]byte(ufmHeader + ts + ",s,,0x1,0x1,1,SW-01 X,1,2,3\n"))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		snap, err := NewFormatParser(schema.Default(), FormatUFM).Parse(body, pollTime)
		if err != nil {
			var e *Error
			if !errors.As(err, &e) || e.Reason == "" {
				t.Fatalf("error without a reason: %v", err)
			}
			return
		}
		for row := range snap.NumRows() {
			for _, l := range snap.RowLabels(row) {
				if !utf8.ValidString(l) || strings.ContainsFunc(l, unicode.IsControl) || l == "" {
					t.Fatalf("row %d: label %q is empty, not UTF-8 or has a control character", row, l)
				}
			}
		}
		checkUFMRecords(t, snap, csvRecords(t, body))
	})
}

// checkUFMRecords compares a UFM snapshot with the records encoding/csv
// reads from the same body.
func checkUFMRecords(t *testing.T, snap *snapshot.Snapshot, recs [][]string) {
	t.Helper()
	header := recs[0]
	col := map[string]int{}
	for i, h := range header {
		col[strings.TrimSpace(h)] = i
	}
	guidCol, okGUID := col[ColumnNodeGUID]
	portCol, okPort := col[ColumnPortNum]
	if !okGUID || !okPort {
		t.Fatalf("accepted a header without node_guid and port_num: %q", header)
	}
	descCol, hasDesc := col[ColumnNodeDescription]
	rows := 0
	for _, rec := range recs[1:] {
		if len(rec) == 1 && rec[0] == "" {
			continue
		}
		rows++
		if len(rec) != len(header) {
			t.Fatalf("accepted a record of %d fields under a header of %d", len(rec), len(header))
		}
		guid, port := rec[guidCol], rec[portCol]
		id := ""
		if hasDesc {
			id = rec[descCol]
			if j := strings.IndexAny(id, " \t"); j >= 0 {
				id = id[:j]
			}
		}
		if id == "" {
			id = guid
		}
		row := findUFMRow(snap, id, port, guid)
		if row < 0 {
			t.Fatalf("no row for switch %q port %q node_guid %q", id, port, guid)
		}
		for i, h := range header {
			h = strings.TrimSpace(h)
			if _, identity := columnRoles[FormatUFM][h]; identity {
				continue
			}
			c, ok := snap.Column(h)
			if !ok {
				t.Fatalf("metric column %q missing", h)
			}
			got := snap.Value(row, c)
			want, ok := numberOracle(rec[i])
			if !ok {
				t.Fatalf("parser accepted %q, which the number grammar refuses", rec[i])
			}
			if got != want {
				t.Fatalf("%s/%s: %s, the number grammar reads %q as %s", id+" port "+port, h, describe(got), rec[i], describe(want))
			}
		}
	}
	if rows != snap.NumRows() {
		t.Fatalf("%d rows, encoding/csv reads %d", snap.NumRows(), rows)
	}
}

// findUFMRow returns the row of a switch's port, or -1.
func findUFMRow(snap *snapshot.Snapshot, id, port, guid string) int {
	start, end, ok := snap.SwitchRows(id)
	if !ok {
		return -1
	}
	for row := start; row < end; row++ {
		if l := snap.RowLabels(row); len(l) == 3 && l[0] == id && l[1] == port && l[2] == guid {
			return row
		}
	}
	return -1
}
