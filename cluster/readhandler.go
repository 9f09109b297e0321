package cluster

import (
	"context"
	"log/slog"
	"net/http"

	promconfig "github.com/prometheus/prometheus/config"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/storage/remote"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
)

// DefaultMaxBytesInFrame is the most a streamed remote-read answer puts in
// one frame (one series, or part of one), Prometheus's default
// (--storage.remote.read-max-bytes-in-frame).
const DefaultMaxBytesInFrame = 1 << 20

// ReadLimits bound the remote reads a replica serves, as the query limits
// bound its queries.
type ReadLimits struct {
	// Samples is the most samples one answer of the samples type may hold
	// (--query.max-samples); a read over it is refused (400). Streamed
	// answers hold one frame at a time and are not counted.
	Samples int
	// Concurrency is how many reads are served at once; more wait. A gate
	// of its own, not the queries': a replica whose queries wait for
	// their peers' reads must never wait for its own query slots.
	Concurrency int
	// FrameBytes is the most a streamed answer puts in one frame;
	// 0 means DefaultMaxBytesInFrame.
	FrameBytes int
}

// NewReadHandler serves Prometheus's remote read (POST /api/v1/read): both
// answer types, samples and streamed XOR chunks, the latter encoded from the
// samples as Prometheus's own remote-read client encodes them for its chunk
// querier.
//
// A peer's read (marked with PeerHeader) is answered from local alone,
// never from a peer's data, so replicas reading each other never read
// anything twice nor fan out again. Any other reader, such as a Prometheus
// server using this replica as a remote_read target, reads fabric when it
// is not nil: the whole fabric, local and the peers', where a peer that
// fails fails the read with an error naming it (remote read has no
// warnings, and Prometheus turns a remote_read error into a warning of its
// own, so the gap is never silent). The two kinds of read have a gate each,
// so that peers' reads never wait behind reads that fan out to them.
//
// With serving (nil: none), a peer's read is answered with the partitions
// the data read holds whole in the PartitionsHeader trailer: those serving
// named before the read and still names after it, so that the peer can
// tell a partition this replica was giving up or still loading.
//
// A label-only read (hints.Func "series", as Prometheus's series API sends)
// answers each series with its first sample in the range: the labels are
// what was asked for, and a streamed answer cannot carry a series without a
// sample.
func NewReadHandler(local, fabric storage.Queryable, serving Serving, limits ReadLimits, logger *slog.Logger) http.Handler {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	frame := limits.FrameBytes
	if frame <= 0 {
		frame = DefaultMaxBytesInFrame
	}
	noConfig := func() promconfig.Config { return promconfig.Config{} } // no external labels
	handler := func(q storage.Queryable) http.Handler {
		return remote.NewReadHandler(logger, nil, readQueryable{q}, noConfig, limits.Samples, max(limits.Concurrency, 1), frame)
	}
	localRead, fabricRead := handler(local), http.Handler(nil)
	if fabric != nil {
		fabricRead = handler(fabric)
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if fabricRead != nil && !FromPeer(r) {
			fabricRead.ServeHTTP(flushWriter{w}, r)
			return
		}
		// A trailer: the histories are read while the answer is written.
		if c, ok := held(serving, func() { localRead.ServeHTTP(flushWriter{w}, r) }); ok {
			w.Header().Set(http.TrailerPrefix+PartitionsHeader, c.String())
		}
	})
}

// flushWriter gives the streamed answer the http.Flusher it requires even
// through a wrapper that does not implement one itself, such as the
// aggregator's request instrumentation, by reaching the connection through
// http.ResponseController.
type flushWriter struct{ http.ResponseWriter }

func (w flushWriter) Flush() { _ = http.NewResponseController(w.ResponseWriter).Flush() }

func (w flushWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// readQueryable is local as the storage.SampleAndChunkQueryable the
// remote-read handler takes.
type readQueryable struct{ storage.Queryable }

func (q readQueryable) Querier(mint, maxt int64) (storage.Querier, error) {
	querier, err := q.Queryable.Querier(mint, maxt)
	if err != nil {
		return nil, err
	}
	return labelOnlyQuerier{querier}, nil
}

func (q readQueryable) ChunkQuerier(mint, maxt int64) (storage.ChunkQuerier, error) {
	querier, err := q.Querier(mint, maxt)
	if err != nil {
		return nil, err
	}
	return chunkQuerier{querier}, nil
}

// chunkQuerier encodes a querier's series into XOR chunks, as Prometheus's
// remote-read client does for its own chunk querier (storage/remote's
// chunkQuerier): the history keeps its samples in its own encoding, not in
// chunks.
type chunkQuerier struct{ storage.Querier }

func (q chunkQuerier) Select(ctx context.Context, sortSeries bool, hints *storage.SelectHints, ms ...*labels.Matcher) storage.ChunkSeriesSet {
	return storage.NewSeriesSetToChunkSet(q.Querier.Select(ctx, sortSeries, hints, ms...))
}

// labelOnlyQuerier answers a label-only select with one sample per series.
type labelOnlyQuerier struct{ storage.Querier }

func (q labelOnlyQuerier) Select(ctx context.Context, sortSeries bool, hints *storage.SelectHints, ms ...*labels.Matcher) storage.SeriesSet {
	set := q.Querier.Select(ctx, sortSeries, hints, ms...)
	if hints == nil || hints.Func != "series" {
		return set
	}
	return firstSampleSet{set}
}

type firstSampleSet struct{ storage.SeriesSet }

func (s firstSampleSet) At() storage.Series { return firstSample{s.SeriesSet.At()} }

type firstSample struct{ storage.Series }

func (s firstSample) Iterator(it chunkenc.Iterator) chunkenc.Iterator {
	return &firstSampleIterator{Iterator: s.Series.Iterator(it)}
}

// firstSampleIterator ends after its first sample.
type firstSampleIterator struct {
	chunkenc.Iterator
	done bool
}

func (it *firstSampleIterator) Next() chunkenc.ValueType {
	if it.done {
		return chunkenc.ValNone
	}
	it.done = true
	return it.Iterator.Next()
}

// millis is a time in Unix milliseconds. Spelled so, Seek keeps
// chunkenc.Iterator's signature without go vet's stdmethods check taking it
// for a broken io.Seeker (it knows Seek(int64, int) by its spelling).
type millis = int64

func (it *firstSampleIterator) Seek(t millis) chunkenc.ValueType {
	if it.done {
		return chunkenc.ValNone
	}
	it.done = true
	return it.Iterator.Seek(t)
}
