package ingest

import (
	"context"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/fabrictelemetry/aggregator/schema"
	"github.com/fabrictelemetry/aggregator/simulator"
	"github.com/fabrictelemetry/aggregator/snapshot"
)

// BenchmarkPollSharded polls the per-port fabric (2,000 switches × 64
// ports, 128,000 UFM rows; 200 × 64 with -short) from the simulator's
// /csv/metrics as 1, 2 and 4 parallel shards. shards=1 is the baseline:
// on a machine with more than one core, more shards cut the cycle, since
// each shard's fetch and parse run on their own goroutine and only the
// merge is serial.
func BenchmarkPollSharded(b *testing.B) {
	switches := 2000
	if testing.Short() {
		switches = 200
	}
	sim, err := simulator.New(simulator.Config{Switches: switches, Ports: 64, Seed: 1})
	if err != nil {
		b.Fatal(err)
	}
	sim.Tick(time.Date(2026, 11, 25, 19, 30, 0, 0, time.UTC))
	srv := httptest.NewServer(sim.Handler())
	b.Cleanup(srv.Close)
	for _, shards := range []int{1, 2, 4} {
		b.Run(fmt.Sprintf("shards=%d", shards), func(b *testing.B) {
			store := &snapshot.Store{}
			client := srv.Client()
			b.Cleanup(client.CloseIdleConnections)
			p := &Poller{
				Fetcher: &Fetcher{URL: srv.URL + "/csv/metrics", MaxBytes: 1 << 30, Client: client},
				Parser:  NewFormatParser(schema.Default(), FormatUFM), Shards: shards,
				Interval: time.Hour, Timeout: time.Minute,
				Publish: store.Publish, Logger: slog.New(slog.DiscardHandler),
			}
			b.ReportAllocs()
			for b.Loop() {
				if c := p.Poll(context.Background()); c.Err != nil {
					b.Fatal(c.Err)
				}
			}
			if got := store.Load().Single().NumRows(); got != switches*64 {
				b.Fatalf("%d rows published, want %d", got, switches*64)
			}
		})
	}
}
