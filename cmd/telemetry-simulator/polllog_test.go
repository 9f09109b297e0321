package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/fabrictelemetry/aggregator/ingest"
	"github.com/fabrictelemetry/aggregator/internal/testproc"
	"github.com/fabrictelemetry/aggregator/kafkalog"
	"github.com/fabrictelemetry/aggregator/polllog"
	"github.com/fabrictelemetry/aggregator/schema"
	"github.com/fabrictelemetry/aggregator/simulator"
	"github.com/fabrictelemetry/aggregator/snapshot"
)

// TestWritesToPollLog runs the simulator with --kafka.brokers against a
// kfake cluster: a follower of the topic reads, under the --kafka.source
// name, exactly the snapshots an aggregator polling /counters would parse,
// one per tick.
func TestWritesToPollLog(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(3))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	logs := &testproc.LockedBuffer{}
	done := make(chan int, 1)
	go func() {
		done <- runContext(ctx, []string{
			"--web.listen-address=127.0.0.1:0", "--switches=3", "--ports=2", "--interval=300ms",
			"--kafka.brokers=" + strings.Join(c.ListenAddrs(), ","), "--kafka.topic=polls", "--kafka.source=lab", "--kafka.partitions=4",
		}, io.Discard, logs)
	}()
	addr := waitForLog(t, logs, `address=(127\.0\.0\.1:\d+)`)
	waitForLog(t, logs, `Writing each snapshot to the poll log.*topic=polls source_name=lab`)

	var mu sync.Mutex
	got := map[int64]*polllog.Poll{} // by snapshot time
	f, err := kafkalog.NewFollower(kafkalog.FollowerConfig{
		Conn: kafkalog.Conn{Brokers: c.ListenAddrs()}, Topic: "polls", Replay: time.Hour,
		OnPoll: func(p *polllog.Poll) { mu.Lock(); got[p.Snapshot.Time().UnixNano()] = p; mu.Unlock() },
	})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Go(func() { _ = f.Run(ctx) })
	defer wg.Wait()
	defer cancel()

	client := &http.Client{Transport: &http.Transport{}}
	defer client.CloseIdleConnections()
	parser := ingest.NewFormatParser(schema.Default(), ingest.FormatMatrix)
	matched := 0
	for deadline := time.Now().Add(20 * time.Second); matched < 3 && time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		resp, err := client.Get("http://" + addr + "/counters")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		want, err := parser.Parse(body, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		for wait := time.Now().Add(5 * time.Second); time.Now().Before(wait); time.Sleep(20 * time.Millisecond) {
			mu.Lock()
			p := got[want.Time().UnixNano()]
			mu.Unlock()
			if p == nil {
				continue
			}
			if p.Source != "lab" {
				t.Fatalf("poll of source %q, want lab", p.Source)
			}
			if err := sameSnapshot(p.Snapshot, want); err != nil {
				t.Fatal(err)
			}
			matched++
			break
		}
	}
	if matched < 3 {
		t.Fatalf("%d bodies found in the log, want 3", matched)
	}
	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Errorf("exit code %d", code)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("did not stop after its context was cancelled")
	}
}

func sameSnapshot(got, want *snapshot.Snapshot) error {
	if !got.Time().Equal(want.Time()) || !slices.Equal(got.LabelNames(), want.LabelNames()) ||
		!slices.Equal(got.Columns(), want.Columns()) || got.NumRows() != want.NumRows() {
		return fmt.Errorf("snapshot %v %v %v %d rows, want %v %v %v %d rows", got.Time(), got.LabelNames(), got.Columns(), got.NumRows(),
			want.Time(), want.LabelNames(), want.Columns(), want.NumRows())
	}
	for row := range want.NumRows() {
		if !slices.Equal(got.RowLabels(row), want.RowLabels(row)) {
			return fmt.Errorf("row %d: %v, want %v", row, got.RowLabels(row), want.RowLabels(row))
		}
		for col := range want.Columns() {
			if g, w := got.Value(row, col), want.Value(row, col); g != w {
				return fmt.Errorf("row %d column %s: %v, want %v", row, want.Columns()[col], g.Float64(), w.Float64())
			}
		}
	}
	return nil
}

// TestOwnBodyParserHasNoSourceLimits: the simulator writes to the log what
// it generated, whatever its size, where an aggregator's parser refuses a
// body over its source limits (here the label value length, the limit a
// small body can pass; the sample limit refused the 10,000 × 64-port
// fabric the same way).
func TestOwnBodyParserHasNoSourceLimits(t *testing.T) {
	sim, err := simulator.New(simulator.Config{Switches: 2, Ports: 1})
	if err != nil {
		t.Fatal(err)
	}
	long := "SW-" + strings.Repeat("9", ingest.DefaultLabelValueLengthLimit)
	body := strings.ReplaceAll(string(sim.Body()), "SW-01", long)
	if _, err := ingest.NewFormatParser(schema.Default(), ingest.FormatMatrix).Parse([]byte(body), time.Now()); err == nil {
		t.Fatalf("an aggregator's parser accepted a switch ID of %d bytes; the test needs a body over its limits", len(long))
	}
	s, err := ownBodyParser().Parse([]byte(body), time.Now())
	if err != nil {
		t.Fatalf("the simulator's own body refused: %v", err)
	}
	if !slices.Contains(s.Switches(), long) {
		t.Errorf("switches %v lack the long ID", s.Switches())
	}
}
