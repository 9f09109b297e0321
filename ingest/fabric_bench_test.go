package ingest

import (
	"bytes"
	"sync"
	"testing"
	"time"

	"github.com/fabrictelemetry/aggregator/schema"
	"github.com/fabrictelemetry/aggregator/simulator"
	"github.com/fabrictelemetry/aggregator/snapshot"
)

// The per-port fabric: 2,000 switches × 64 ports = 128,000 rows in
// UFM Telemetry's layout. With -short (make bench-short) a tiny fabric keeps
// the benchmarks running in CI without their cost.
const (
	fabricSwitches = 2000
	fabricPorts    = 64
)

// fabricBody is the simulator's /csv/metrics body for the fabric, rendered
// once per test binary.
var fabricBody = sync.OnceValues(func() ([]byte, error) {
	switches, ports := fabricSwitches, fabricPorts
	if testing.Short() {
		switches, ports = 20, 4
	}
	sim, err := simulator.New(simulator.Config{Switches: switches, Ports: ports, Seed: 1})
	if err != nil {
		return nil, err
	}
	sim.Tick(time.Date(2026, 11, 25, 19, 30, 0, 0, time.UTC))
	return sim.UFMBody(), nil
})

func fabric(b *testing.B) (body []byte, rows int) {
	b.Helper()
	body, err := fabricBody()
	if err != nil {
		b.Fatal(err)
	}
	return body, bytes.Count(body, []byte{'\n'}) - 1
}

// BenchmarkFabricParse is the parser on the fabric's UFM body: validation,
// GUIDs, empty cells, quoted descriptions and the snapshot build included.
// Its baseline is BenchmarkFabricParseBaselineEncodingCSV.
func BenchmarkFabricParse(b *testing.B) {
	body, rows := fabric(b)
	p := NewParser(schema.Default())
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	var snap *snapshot.Snapshot
	for b.Loop() {
		var err error
		if snap, err = p.Parse(body, pollTime); err != nil {
			b.Fatal(err)
		}
	}
	if snap.NumRows() != rows {
		b.Fatalf("%d rows, want %d", snap.NumRows(), rows)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(rows), "ns/row")
}

// BenchmarkFabricParseBaselineEncodingCSV reads the same body with
// encoding/csv and strconv.ParseFloat on every counter cell (the seven
// identity columns are kept as the strings encoding/csv returns, empty
// cells skipped), nothing else kept.
func BenchmarkFabricParseBaselineEncodingCSV(b *testing.B) {
	body, rows := fabric(b)
	const identity = 7 // timestamp … node_description
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if n := readWithEncodingCSV(b, body, identity); n != rows {
			b.Fatalf("%d rows, want %d", n, rows)
		}
	}
}

// BenchmarkFabricPollCycle is one ingestion cycle of the fabric as the
// poller runs it: fetch over loopback, parse and validate, build, swap.
// Its baseline is BenchmarkFabricFetchOnly.
func BenchmarkFabricPollCycle(b *testing.B) {
	body, rows := fabric(b)
	if c := benchPoll(b, body, serveBody(b, body)); c.Snapshot.NumRows() != rows {
		b.Fatalf("%d rows published, want %d", c.Snapshot.NumRows(), rows)
	}
}

// BenchmarkFabricFetchOnly is the same fetch of the same body, then only
// its lines counted.
func BenchmarkFabricFetchOnly(b *testing.B) {
	body, rows := fabric(b)
	benchFetch(b, body, serveBody(b, body), rows+1)
}
