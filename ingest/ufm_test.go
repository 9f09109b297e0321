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
