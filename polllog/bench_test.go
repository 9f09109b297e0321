package polllog

import (
	"sync"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"

	"github.com/fabrictelemetry/aggregator/ingest"
	"github.com/fabrictelemetry/aggregator/schema"
	"github.com/fabrictelemetry/aggregator/simulator"
	"github.com/fabrictelemetry/aggregator/snapshot"
)

// The fabric: 2,000 switches × 64 ports in UFM Telemetry's layout,
// parsed by the aggregator's parser. -short (make bench-short) uses a tiny
// one so that CI runs the benchmarks without their cost.
var fabric = sync.OnceValues(func() (*fabricPoll, error) {
	switches, ports := 2000, 64
	if testing.Short() {
		switches, ports = 20, 4
	}
	sim, err := simulator.New(simulator.Config{Switches: switches, Ports: ports, Seed: 1})
	if err != nil {
		return nil, err
	}
	at := time.Date(2026, 11, 25, 19, 30, 0, 0, time.UTC)
	parser := ingest.NewParser(schema.Default())
	sim.Tick(at)
	body := sim.UFMBody()
	snap, err := parser.Parse(body, at)
	if err != nil {
		return nil, err
	}
	sim.Tick(at.Add(time.Minute))
	next, err := parser.Parse(sim.UFMBody(), at.Add(time.Minute))
	if err != nil {
		return nil, err
	}
	return &fabricPoll{body: body, snap: snap, next: next}, nil
})

type fabricPoll struct {
	body []byte
	snap *snapshot.Snapshot
	next *snapshot.Snapshot // the same fabric a minute later: same rows, new values
}

func fabricSnapshot(b *testing.B) *fabricPoll {
	b.Helper()
	f, err := fabric()
	if err != nil {
		b.Fatal(err)
	}
	return f
}

var fabricEncoder = Encoder{Partitions: 16}

func fabricID(seq uint64) PollID {
	return PollID{Source: "ufm", Seq: seq, PublishTime: time.Date(2026, 11, 25, 19, 30, 1, 0, time.UTC)}
}

// BenchmarkEncodeFabric encodes one poll of the fabric into its records
// for a 16-partition topic. SetBytes is the CSV body the poll came from.
func BenchmarkEncodeFabric(b *testing.B) {
	f := fabricSnapshot(b)
	b.SetBytes(int64(len(f.body)))
	b.ReportAllocs()
	var recs []Record
	for b.Loop() {
		var err error
		if recs, err = fabricEncoder.Encode(fabricID(1), f.snap); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(len(recs)), "records/poll")
}

// BenchmarkAssembleFabric rebuilds the fabric's snapshot from its records,
// decoding and checking every one, with a fresh Assembler each time: the
// cold case, with no previous snapshot to share rows with.
func BenchmarkAssembleFabric(b *testing.B) {
	f := fabricSnapshot(b)
	recs, err := fabricEncoder.Encode(fabricID(1), f.snap)
	if err != nil {
		b.Fatal(err)
	}
	log := newTestLog(fabricEncoder.Partitions)
	log.append(recs)
	b.SetBytes(int64(len(f.body)))
	b.ReportAllocs()
	for b.Loop() {
		polls, rejected := log.readAll(NewAssembler(AssemblerConfig{}))
		if len(polls) != 1 || len(rejected) > 0 || polls[0].Snapshot.NumRows() != f.snap.NumRows() {
			b.Fatalf("%d polls, rejected %v", len(polls), rejected)
		}
	}
}

// BenchmarkAssembleFabricWarm is the steady case of a replica: the same
// fabric, new values, assembled by an Assembler that applied the fabric's
// previous poll, so that the rows' labels and index are the previous
// snapshot's. Each poll is encoded with the timer stopped.
func BenchmarkAssembleFabricWarm(b *testing.B) {
	f := fabricSnapshot(b)
	a := NewAssembler(AssemblerConfig{})
	encode := func(seq uint64) *testLog {
		snap := f.snap
		if seq%2 == 0 {
			snap = f.next
		}
		recs, err := fabricEncoder.Encode(fabricID(seq), snap)
		if err != nil {
			b.Fatal(err)
		}
		log := newTestLog(fabricEncoder.Partitions)
		log.append(recs)
		return log
	}
	first, _ := encode(1).readAll(a)
	if len(first) != 1 {
		b.Fatal("the first poll was not assembled")
	}
	b.SetBytes(int64(len(f.body)))
	b.ReportAllocs()
	for seq := uint64(2); b.Loop(); seq++ {
		b.StopTimer()
		log := encode(seq)
		b.StartTimer()
		polls, rejected := log.readAll(a)
		if len(polls) != 1 || len(rejected) > 0 || !polls[0].Snapshot.SameRows(first[0].Snapshot) {
			b.Fatalf("%d polls, rejected %v, or the rows were not shared", len(polls), rejected)
		}
	}
}

// BenchmarkFabricLogBytes measures what one poll of the fabric costs in
// the log: the CSV body it came from, the record values as written, and
// those values compressed with zstd as franz-go's producer compresses a
// batch (64 KiB window, default level, batches of up to 1 MB per
// partition). The time is the compression's.
func BenchmarkFabricLogBytes(b *testing.B) {
	f := fabricSnapshot(b)
	recs, err := fabricEncoder.Encode(fabricID(1), f.snap)
	if err != nil {
		b.Fatal(err)
	}
	const batchBytes = 1_000_000 // franz-go's default ProducerBatchMaxBytes
	var batches [][]byte
	open := map[int32]int{}
	raw := 0
	for _, r := range recs {
		raw += len(r.Key) + len(r.Value)
		i, ok := open[r.Partition]
		if !ok || len(batches[i])+len(r.Value) > batchBytes {
			i = len(batches)
			open[r.Partition] = i
			batches = append(batches, nil)
		}
		batches[i] = append(append(batches[i], r.Key...), r.Value...)
	}
	enc, err := zstd.NewWriter(nil, zstd.WithWindowSize(64<<10), zstd.WithEncoderConcurrency(1), zstd.WithZeroFrames(true))
	if err != nil {
		b.Fatal(err)
	}
	var buf []byte
	compressed := 0
	b.SetBytes(int64(raw))
	for b.Loop() {
		compressed = 0
		for _, batch := range batches {
			buf = enc.EncodeAll(batch, buf[:0])
			compressed += len(buf)
		}
	}
	b.ReportMetric(float64(len(f.body)), "csv-bytes/poll")
	b.ReportMetric(float64(raw), "log-bytes/poll")
	b.ReportMetric(float64(compressed), "zstd-bytes/poll")
	b.ReportMetric(float64(compressed)/float64(len(f.body)), "zstd/csv")
}
