package simulator

import (
	"bytes"
	"encoding/csv"
	"strconv"
	"testing"
	"time"
)

// wantHeader is spelled out rather than taken from Header so that a change to
// the constant breaks a test.
var wantHeader = []string{
	"switch_id", "timestamp", "Latency_Avg_uSec", "Latency_Max_uSec", "Bandwidth_Util_Pct", "Buffer_Util_Pct",
	"Rx_Bytes", "Tx_Bytes", "Rx_Packets", "Tx_Packets", "Rx_Errors", "Tx_Discards", "Symbol_Errors",
	"Link_Down_Count", "Xmit_Wait", "Temperature_C", "Power_W", "Ports_Up", "Ports_Total",
}

// t0 is an arbitrary fixed start time for ticks.
var t0 = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)

func newSim(t testing.TB, cfg Config) *Simulator {
	t.Helper()
	s, err := New(cfg)
	if err != nil {
		t.Fatalf("New(%+v): %v", cfg, err)
	}
	return s
}

// parseBody reads a good body with encoding/csv, which also checks that
// every row has as many fields as the header.
func parseBody(t testing.TB, body []byte) [][]string {
	t.Helper()
	recs, err := csv.NewReader(bytes.NewReader(body)).ReadAll()
	if err != nil {
		t.Fatalf("body is not valid CSV: %v\n%s", err, body)
	}
	if len(recs) == 0 {
		t.Fatal("body has no header")
	}
	return recs
}

// row is one parsed CSV record, by column name.
type row map[string]string

func rowsByName(t testing.TB, recs [][]string) []row {
	t.Helper()
	out := make([]row, 0, len(recs)-1)
	for _, rec := range recs[1:] {
		r := row{}
		for i, name := range recs[0] {
			r[name] = rec[i]
		}
		out = append(out, r)
	}
	return out
}

func (r row) uint(t testing.TB, col string) uint64 {
	t.Helper()
	v, err := strconv.ParseUint(r[col], 10, 64)
	if err != nil {
		t.Fatalf("%s %s: %v", r["switch_id"], col, err)
	}
	return v
}

func (r row) float(t testing.TB, col string) float64 {
	t.Helper()
	v, err := strconv.ParseFloat(r[col], 64)
	if err != nil {
		t.Fatalf("%s %s: %v", r["switch_id"], col, err)
	}
	return v
}

var counterColumns = []string{
	"Rx_Bytes", "Tx_Bytes", "Rx_Packets", "Tx_Packets",
	"Rx_Errors", "Tx_Discards", "Symbol_Errors", "Link_Down_Count", "Xmit_Wait",
}
