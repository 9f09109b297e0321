package ingest

import (
	"bytes"
	"context"
	"encoding/csv"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	"github.com/fabrictelemetry/aggregator/schema"
	"github.com/fabrictelemetry/aggregator/simulator"
	"github.com/fabrictelemetry/aggregator/snapshot"
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
		readWithEncodingCSV(b, body, 1)
	}
}

// readWithEncodingCSV is the parse baseline: encoding/csv reads body, and
// strconv.ParseFloat every non-empty cell after the first identity
// columns, nothing kept. It returns the number of rows.
func readWithEncodingCSV(b *testing.B, body []byte, identity int) (rows int) {
	r := csv.NewReader(bytes.NewReader(body))
	if _, err := r.Read(); err != nil {
		b.Fatal(err)
	}
	for {
		rec, err := r.Read()
		if err == io.EOF {
			return rows
		}
		if err != nil {
			b.Fatal(err)
		}
		rows++
		for _, f := range rec[identity:] {
			if f == "" {
				continue
			}
			if _, err := strconv.ParseFloat(f, 64); err != nil {
				b.Fatal(err)
			}
		}
	}
}

// pollBench serves the simulator's body for n switches from a loopback
// httptest server and returns a fetcher for it.
func pollBench(b *testing.B, n int) (body []byte, f *Fetcher) {
	b.Helper()
	body = simulatorBody(b, n)
	return body, serveBody(b, body)
}

// serveBody serves body from a loopback httptest server, as a source would,
// and returns a keep-alive fetcher for it; the server and the client's
// connections are closed when the benchmark ends.
func serveBody(b *testing.B, body []byte) *Fetcher {
	b.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/csv")
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		_, _ = w.Write(body)
	}))
	client := srv.Client()
	b.Cleanup(func() { client.CloseIdleConnections(); srv.Close() })
	return &Fetcher{URL: srv.URL, MaxBytes: 1 << 30, Client: client}
}

// benchPoll runs the poller's whole cycle on f's body in a loop, publishing
// into a store, and returns the last cycle.
func benchPoll(b *testing.B, body []byte, f *Fetcher) (last Cycle) {
	b.Helper()
	store := &snapshot.Store{}
	p := &Poller{
		Fetcher: f, Parser: NewParser(schema.Default()), Interval: time.Hour, Timeout: time.Minute,
		Publish: store.Publish, Logger: slog.New(slog.DiscardHandler),
	}
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if last = p.Poll(context.Background()); last.Err != nil {
			b.Fatal(last.Err)
		}
	}
	return last
}

// benchFetch is benchPoll's baseline: the same fetch of the same body, then
// only its lines counted, which must be lines.
func benchFetch(b *testing.B, body []byte, f *Fetcher, lines int) {
	b.Helper()
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		got, err := f.Fetch(context.Background())
		if err != nil {
			b.Fatal(err)
		}
		if n := bytes.Count(got, []byte{'\n'}); n != lines {
			b.Fatalf("%d lines, want %d", n, lines)
		}
	}
}

// BenchmarkPollCycle is one whole ingestion cycle as the poller runs it:
// fetch over loopback (keep-alive), parse and validate, publish.
func BenchmarkPollCycle(b *testing.B) {
	for _, n := range []int{50, 2000} {
		b.Run(fmt.Sprintf("switches=%d", n), func(b *testing.B) {
			body, f := pollBench(b, n)
			if got := benchPoll(b, body, f).Snapshot.Switches(); len(got) != n {
				b.Fatalf("%d switches published, want %d", len(got), n)
			}
		})
	}
}

// BenchmarkFetchOnly is PollCycle's baseline: the same fetch of the same
// body, then only its lines counted.
func BenchmarkFetchOnly(b *testing.B) {
	for _, n := range []int{50, 2000} {
		b.Run(fmt.Sprintf("switches=%d", n), func(b *testing.B) {
			body, f := pollBench(b, n)
			benchFetch(b, body, f, n+1)
		})
	}
}
