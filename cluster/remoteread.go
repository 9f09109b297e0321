package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/common/config"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/storage/remote"
	"github.com/prometheus/prometheus/util/annotations"
)

// ReadPath is where a replica serves remote read (NewReadHandler).
const ReadPath = "/api/v1/read"

// Queryable returns a storage.Queryable over local and every peer: each
// querier reads local as the primary and, as secondaries, each peer the
// Membership names at that moment through Prometheus's remote-read client,
// merged by Prometheus's merge querier. A peer that fails, is slow past
// Options.Timeout (or the query's own deadline) or sends more than maxBytes
// becomes a warning naming it, and the answer is the others'; it never fails
// the query. Without peers, a querier is local's own.
//
// maxBytes bounds each peer's answer to one select, after decompression
// (the query API gives --query.max-response-bytes): the engine's limits
// count the merged series and samples, but only once they are read, so this
// bounds what a peer can make the query hold before then.
func (p *Peers) Queryable(local storage.Queryable, maxBytes int64) *Queryable {
	return &Queryable{peers: p, local: local, maxBytes: maxBytes, readers: map[string]*peerReader{}}
}

// Queryable is local's and the peers' data (Peers.Queryable).
type Queryable struct {
	peers    *Peers
	local    storage.Queryable
	maxBytes int64

	mu      sync.Mutex
	readers map[string]*peerReader // by base URL
}

// peerReader is what reads one peer: Prometheus's remote-read client, and
// a client for the label lookups remote read does not have.
type peerReader struct {
	peer   string
	client *remote.Client
	labels *http.Client
	err    error // the client could not be made
}

// Querier opens local's querier and one per peer. When the membership
// says what each replica holds (Serving), every select checks that local
// and the peers that answered hold every partition of the poll log between
// them, and warns naming the partitions none holds (MissingError).
func (f *Queryable) Querier(mint, maxt int64) (storage.Querier, error) {
	var local storage.Querier
	var err error
	held := f.peers.Held(func() { local, err = f.local.Querier(mint, maxt) })
	if err != nil {
		return nil, err
	}
	peers := f.readersOf(f.peers.others())
	if len(peers) == 0 {
		return local, nil
	}
	var secondaries []storage.Querier
	for _, r := range peers {
		if r.err != nil {
			secondaries = append(secondaries, failedQuerier{&PeerError{Peer: r.peer, Err: r.err}})
			continue
		}
		secondaries = append(secondaries, &peerQuerier{reader: r, peers: f.peers, mint: mint, maxt: maxt})
	}
	merged := storage.NewMergeQuerier([]storage.Querier{heldQuerier{local}}, secondaries, storage.ChainedSeriesMerge)
	if !f.peers.Covers() {
		return merged, nil
	}
	return &coveredQuerier{Querier: merged, local: held}, nil
}

// coveredQuerier checks each select for partitions that neither local nor
// any peer's answer held: the peers' remote-read answers say what they hold
// in a trailer, which the transport records in the select's context.
type coveredQuerier struct {
	storage.Querier
	local Coverage
}

func (q *coveredQuerier) Select(ctx context.Context, sortSeries bool, hints *storage.SelectHints, ms ...*labels.Matcher) storage.SeriesSet {
	sink := &coverageSink{peers: map[string]Coverage{}}
	set := q.Querier.Select(withCoverageSink(ctx, sink), sortSeries, hints, ms...)
	return &coveredSet{SeriesSet: set, local: q.local, sink: sink}
}

// coveredSet adds a MissingError to the warnings of a set read to its end:
// only then has every peer's answer, trailer and all, been read.
type coveredSet struct {
	storage.SeriesSet
	local Coverage
	sink  *coverageSink
	done  bool
}

func (s *coveredSet) Next() bool {
	if s.SeriesSet.Next() {
		return true
	}
	s.done = true
	return false
}

func (s *coveredSet) Warnings() annotations.Annotations {
	ws := s.SeriesSet.Warnings()
	if !s.done || s.SeriesSet.Err() != nil {
		return ws
	}
	if err := Uncovered(append(s.sink.all(), s.local)...); err != nil {
		ws = ws.Add(err)
	}
	return ws
}

// heldQuerier is the local querier as the merge querier takes it: its sets
// hold the series At returns until the next Next. The merge querier's heap
// calls At at every comparison, and the history's sets return a copy at
// each call, as the engine needs (it keeps the series it reads): without
// this, a fan-out query over 100,000 switches allocated a series at each
// of some 14 comparisons per local series.
type heldQuerier struct{ storage.Querier }

func (q heldQuerier) Select(ctx context.Context, sortSeries bool, hints *storage.SelectHints, ms ...*labels.Matcher) storage.SeriesSet {
	return &heldSet{SeriesSet: q.Querier.Select(ctx, sortSeries, hints, ms...)}
}

// heldSet asks its set for each series once.
type heldSet struct {
	storage.SeriesSet
	cur storage.Series
}

func (s *heldSet) Next() bool {
	s.cur = nil
	if !s.SeriesSet.Next() {
		return false
	}
	s.cur = s.SeriesSet.At()
	return true
}

func (s *heldSet) At() storage.Series { return s.cur }

// Strict returns the same data where a peer that fails fails the select
// (its series set's error) instead of being a warning: for the remote reads
// this replica serves to others, since remote read has no warnings to tell
// a reader that an answer is partial.
func (f *Queryable) Strict() storage.Queryable {
	return storage.QueryableFunc(func(mint, maxt int64) (storage.Querier, error) {
		q, err := f.Querier(mint, maxt)
		if err != nil {
			return nil, err
		}
		return strictQuerier{q}, nil
	})
}

// PeerError is a peer that did not answer, or not in full.
type PeerError struct {
	Peer string
	Err  error
}

func (e *PeerError) Error() string { return "peer " + e.Peer + ": " + e.Err.Error() }

func (e *PeerError) Unwrap() error { return e.Err }

// strictQuerier fails a select on a peer's failure, which the merge querier
// reports as a warning. A peer's failure to answer at all is known at the
// merged set's first Next (the merge opens every set then), before anything
// of the answer is written.
type strictQuerier struct{ storage.Querier }

func (q strictQuerier) Select(ctx context.Context, sortSeries bool, hints *storage.SelectHints, ms ...*labels.Matcher) storage.SeriesSet {
	return &strictSet{SeriesSet: q.Querier.Select(ctx, sortSeries, hints, ms...)}
}

type strictSet struct {
	storage.SeriesSet
	err error
}

func (s *strictSet) Next() bool {
	if s.err != nil {
		return false
	}
	next := s.SeriesSet.Next()
	for _, w := range s.SeriesSet.Warnings() {
		var pe *PeerError
		var me *MissingError
		if errors.As(w, &pe) || errors.As(w, &me) {
			s.err = w
			return false
		}
	}
	return next
}

func (s *strictSet) Err() error {
	if s.err != nil {
		return s.err
	}
	return s.SeriesSet.Err()
}

// readersOf returns the readers of peers, made on first use, and forgets
// those of replicas no longer among them.
func (f *Queryable) readersOf(peers []string) []*peerReader {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]*peerReader, 0, len(peers))
	for _, peer := range peers {
		r, ok := f.readers[peer]
		if !ok {
			r = f.newReader(peer)
			f.readers[peer] = r
		}
		out = append(out, r)
	}
	if len(f.readers) > len(peers) {
		for peer, r := range f.readers {
			if !slices.Contains(peers, peer) {
				if r.client != nil {
					r.client.Client.CloseIdleConnections()
				}
				delete(f.readers, peer)
			}
		}
	}
	return out
}

func (f *Queryable) newReader(peer string) *peerReader {
	r := &peerReader{peer: peer}
	u, err := url.Parse(endpoint(peer, ReadPath))
	if err != nil {
		r.err = fmt.Errorf("remote read URL: %w", err)
		return r
	}
	opts := f.peers.opts
	rc, err := remote.NewReadClient(peer, &remote.ClientConfig{
		URL:              &config.URL{URL: u},
		Timeout:          model.Duration(opts.Timeout),
		HTTPClientConfig: opts.HTTPClient,
		// A frame holds one series (Prometheus's servers, and ours,
		// send at most about 1 MiB in one): it cannot be larger than the
		// whole answer.
		ChunkedReadLimit: uint64(f.maxBytes),
	})
	if err != nil {
		r.err = fmt.Errorf("remote read client: %w", err)
		return r
	}
	client, ok := rc.(*remote.Client)
	if !ok {
		r.err = fmt.Errorf("remote read client of type %T", rc)
		return r
	}
	base := client.Client.Transport
	client.Client.Transport = f.peers.countedTransport(base, peer, apiRemoteRead, f.maxBytes)
	r.client = client
	r.labels = &http.Client{Transport: &peerTransport{next: base, self: f.peers.m.Self(), api: apiLabels, peer: peer, maxBytes: f.maxBytes}}
	return r
}

// peerQuerier reads one peer, as the merge querier takes a secondary: its
// series through Prometheus's remote-read client, its label names and
// values from its query API (remote read has no label lookups), marked as
// a peer's request so that it answers from its own data. Its errors name
// the peer.
//
// It asks the client itself rather than through the remote storage's
// querier (remote.NewSampleAndChunkQueryableClient), which is the same
// request and answer plus the removal of the external labels a peer's
// series do not have, made at each series' Labels call by building its
// labels twice and a builder (a tenth of a fan-out query's allocations).
type peerQuerier struct {
	reader     *peerReader
	peers      *Peers
	mint, maxt int64
}

// Select returns the peer's series. An error before the first series is
// the set's error, which the merge querier turns into a warning, all or
// nothing for the peer (its secondaryQuerier); an error once series came
// (a stream cut, a deadline passed while reading, an answer over the size
// limit) is a warning too, since the engine would fail the whole query on a
// set's error.
func (q *peerQuerier) Select(ctx context.Context, sortSeries bool, hints *storage.SelectHints, ms ...*labels.Matcher) storage.SeriesSet {
	return &peerSeriesSet{SeriesSet: q.read(ctx, sortSeries, hints, ms), peer: q.reader.peer}
}

// read asks the peer for the series of ms over the querier's time range,
// as the remote storage's querier does (with the same error messages).
func (q *peerQuerier) read(ctx context.Context, sortSeries bool, hints *storage.SelectHints, ms []*labels.Matcher) storage.SeriesSet {
	query, err := remote.ToQuery(q.mint, q.maxt, ms, hints)
	if err != nil {
		return storage.ErrSeriesSet(fmt.Errorf("toQuery: %w", err))
	}
	set, err := q.reader.client.Read(ctx, query, sortSeries)
	if err != nil {
		return storage.ErrSeriesSet(fmt.Errorf("remote_read: %w", err))
	}
	return set
}

// Close has nothing to release: each set's answer is closed at its end.
func (*peerQuerier) Close() error { return nil }

type peerSeriesSet struct {
	storage.SeriesSet
	peer    string
	cur     *labelledSeries
	started bool
	err     error
	warning error
}

// labelledSeries is a series with its labels built once: the remote-read
// client builds them anew at each Labels call (from the protobuf, then
// without the external labels), and the merge querier's heap calls it at
// every comparison (a fifth of a fan-out query's time before this). One is
// made per series and kept until the next (the engine keeps the series it
// reads), however often the heap asks for it.
type labelledSeries struct {
	storage.Series
	lset labels.Labels
}

func (s *labelledSeries) Labels() labels.Labels { return s.lset }

func (s *peerSeriesSet) Next() bool {
	if s.SeriesSet.Next() {
		s.started = true
		series := s.SeriesSet.At()
		s.cur = &labelledSeries{Series: series, lset: series.Labels()}
		return true
	}
	if err := s.SeriesSet.Err(); err != nil {
		if s.started {
			s.warning = &PeerError{Peer: s.peer, Err: fmt.Errorf("%w (its series are incomplete)", err)}
		} else {
			s.err = &PeerError{Peer: s.peer, Err: err}
		}
	}
	return false
}

// At returns the series Next read, the same until the next Next.
func (s *peerSeriesSet) At() storage.Series { return s.cur }

func (s *peerSeriesSet) Err() error { return s.err }

func (s *peerSeriesSet) Warnings() annotations.Annotations {
	ws := s.SeriesSet.Warnings()
	if s.warning != nil {
		ws = ws.Add(s.warning)
	}
	return ws
}

func (q *peerQuerier) LabelNames(ctx context.Context, hints *storage.LabelHints, ms ...*labels.Matcher) ([]string, annotations.Annotations, error) {
	return q.lookup(ctx, "/api/v1/labels", hints, ms)
}

func (q *peerQuerier) LabelValues(ctx context.Context, name string, hints *storage.LabelHints, ms ...*labels.Matcher) ([]string, annotations.Annotations, error) {
	if !model.LegacyValidation.IsValidLabelName(name) {
		name = model.EscapeName(name, model.ValueEncodingEscaping)
	}
	return q.lookup(ctx, "/api/v1/label/"+url.PathEscape(name)+"/values", hints, ms)
}

// labelAnswer is the envelope of the peer's answer to a label lookup.
type labelAnswer struct {
	Status    string   `json:"status"`
	Data      []string `json:"data"`
	ErrorType string   `json:"errorType"`
	Error     string   `json:"error"`
	Warnings  []string `json:"warnings"`
}

// lookup asks the peer's query API for label names or values over the
// querier's time range.
func (q *peerQuerier) lookup(ctx context.Context, path string, hints *storage.LabelHints, ms []*labels.Matcher) (_ []string, _ annotations.Annotations, err error) {
	ctx, cancel := context.WithTimeout(ctx, q.peers.opts.Timeout)
	defer cancel()
	defer q.peers.observe(ctx, apiLabels, q.reader.peer, time.Now(), &err)
	params := url.Values{}
	if len(ms) > 0 {
		params.Set("match[]", selector(ms))
	}
	if s, ok := formatTime(q.mint); ok {
		params.Set("start", s)
	}
	if s, ok := formatTime(q.maxt); ok {
		params.Set("end", s)
	}
	if hints != nil && hints.Limit > 0 {
		params.Set("limit", strconv.Itoa(hints.Limit))
	}
	u := endpoint(q.reader.peer, path)
	if len(params) > 0 {
		u += "?" + params.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, nil, &PeerError{Peer: q.reader.peer, Err: err}
	}
	resp, err := q.reader.labels.Do(req)
	if err != nil {
		return nil, nil, &PeerError{Peer: q.reader.peer, Err: err}
	}
	defer resp.Body.Close()
	var ans labelAnswer
	if err := json.NewDecoder(resp.Body).Decode(&ans); err != nil {
		return nil, nil, &PeerError{Peer: q.reader.peer, Err: fmt.Errorf("%s answered %s: %w", path, resp.Status, err)}
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	if ans.Status != "success" {
		return nil, nil, &PeerError{Peer: q.reader.peer, Err: fmt.Errorf("%s answered %s: %s: %s", path, resp.Status, ans.ErrorType, ans.Error)}
	}
	var ws annotations.Annotations
	for _, w := range ans.Warnings {
		ws = ws.Add(&PeerError{Peer: q.reader.peer, Err: errors.New(w)})
	}
	return ans.Data, ws, nil
}

// selector writes matchers as one series selector.
func selector(ms []*labels.Matcher) string {
	parts := make([]string, len(ms))
	for i, m := range ms {
		parts[i] = m.String()
	}
	return "{" + strings.Join(parts, ",") + "}"
}

// formatTime writes a millisecond time as RFC 3339 when it has a four-digit
// year; the bounds an open range stands for have none, and the query API
// takes an absent start or end for them.
func formatTime(ms int64) (string, bool) {
	t := time.UnixMilli(ms).UTC()
	if t.Year() < 0 || t.Year() > 9999 {
		return "", false
	}
	return t.Format(time.RFC3339Nano), true
}

// failedQuerier is a peer that could not be asked: every lookup fails with
// err, which the merge querier turns into a warning.
type failedQuerier struct{ err error }

func (q failedQuerier) Select(context.Context, bool, *storage.SelectHints, ...*labels.Matcher) storage.SeriesSet {
	return storage.ErrSeriesSet(q.err)
}

func (q failedQuerier) LabelValues(context.Context, string, *storage.LabelHints, ...*labels.Matcher) ([]string, annotations.Annotations, error) {
	return nil, nil, q.err
}

func (q failedQuerier) LabelNames(context.Context, *storage.LabelHints, ...*labels.Matcher) ([]string, annotations.Annotations, error) {
	return nil, nil, q.err
}

func (failedQuerier) Close() error { return nil }
