package ingest

import (
	"bytes"
	"encoding/csv"
	"io"
	"strconv"
	"testing"
	"time"

	"github.com/fabrictelemetry/aggregator/schema"
	"github.com/fabrictelemetry/aggregator/simulator"
)

// simulatorBody is the simulator's CSV for n switches, the body every parse
// benchmark reads.
func simulatorBody(b *testing.B, n int) []byte {
	b.Helper()
	sim, err := simulator.New(simulator.Config{Switches: n, Seed: 1})
	if err != nil {
		b.Fatal(err)
	}
	sim.Tick(time.Date(2026, 11, 25, 19, 30, 0, 0, time.UTC))
	return sim.Body()
}

// BenchmarkParse is the aggregator's parser: validation and the snapshot
// build included.
func BenchmarkParse(b *testing.B) {
	body := simulatorBody(b, 2000)
	p := NewParser(schema.Default())
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := p.Parse(body, pollTime); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkParseBaselineEncodingCSV is the baseline: encoding/csv and
// strconv.ParseFloat on every field after the id, nothing kept.
func BenchmarkParseBaselineEncodingCSV(b *testing.B) {
	body := simulatorBody(b, 2000)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		r := csv.NewReader(bytes.NewReader(body))
		if _, err := r.Read(); err != nil {
			b.Fatal(err)
		}
		for {
			rec, err := r.Read()
			if err == io.EOF {
				break
			}
			if err != nil {
				b.Fatal(err)
			}
			for _, f := range rec[1:] {
				if _, err := strconv.ParseFloat(f, 64); err != nil {
					b.Fatal(err)
				}
			}
		}
	}
}
