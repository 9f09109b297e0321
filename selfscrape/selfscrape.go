// Package selfscrape keeps the aggregator's own metrics the way a
// Prometheus server keeps them after scraping the aggregator, so that the
// query API can answer for them: the dashboards' "snapshot age", ingestion
// and HTTP panels then work on the aggregator as a data source, not only on
// Prometheus.
//
// Every interval a Store gathers the self-metrics (everything /metrics
// serves but the switch data, which the history already holds), writes them
// in the text exposition format, reads them back with Prometheus's own
// exposition parser (so classic histograms become _bucket, _sum and _count
// series with le labels written as Prometheus 3 writes them) and appends
// the samples, with the scrape's job and instance labels, to an in-memory
// TSDB head, Prometheus's own storage for recent samples. As a scrape does,
// it stamps every sample with the scrape's start time, ends a series that
// is no longer exposed with a staleness marker, and adds up,
// scrape_duration_seconds and scrape_samples_scraped. The head keeps the
// query retention and is read through storage.Queryable like the history.
package selfscrape

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"os"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/textparse"
	"github.com/prometheus/prometheus/model/timestamp"
	"github.com/prometheus/prometheus/model/value"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb"
)

// Options configure a Store.
type Options struct {
	Interval      time.Duration // between scrapes
	Retention     time.Duration // how long samples are kept
	Job, Instance string        // the target's labels
	Logger        *slog.Logger
}

// Store is the self-metrics of one process, scraped into a TSDB head. It is
// a storage.Queryable; before Run has made the head, and after Run has
// returned, it holds no series.
type Store struct {
	gatherer prometheus.Gatherer
	opts     Options
	target   labels.Labels

	// mu guards head, which is nil before Run opens it and after Run
	// closes it; readers counts the open queriers, which the head must
	// outlive.
	mu      sync.Mutex
	head    *tsdb.Head
	readers sync.WaitGroup

	// The scraper's own state: the series of the last scrape, by their
	// text in the exposition, with the head's reference.
	last map[string]series
}

type series struct {
	ref  storage.SeriesRef
	lset labels.Labels
}

// New returns a store of what g gathers; nothing is stored until Run.
func New(g prometheus.Gatherer, opts Options) *Store {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	return &Store{
		gatherer: g,
		opts:     opts,
		target:   labels.FromStrings(model.JobLabel, opts.Job, model.InstanceLabel, opts.Instance),
		last:     map[string]series{},
	}
}

// Instance is the instance label a Prometheus server on another host would
// give the aggregator listening on listenAddress: the address, with this
// host's name when it names no host (":8080", "0.0.0.0:8080"); the host's
// name alone for an empty address.
func Instance(listenAddress string) string {
	host, port, err := net.SplitHostPort(listenAddress)
	if err != nil && listenAddress != "" {
		return listenAddress
	}
	if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
		if host, err = os.Hostname(); err != nil {
			host = "localhost"
		}
	}
	if port == "" {
		return host
	}
	return net.JoinHostPort(host, port)
}

// Run makes the head (its chunk directory is a temporary one, which Run
// removes), scrapes at once and then every interval until ctx is done, then
// closes the head. A failure to make the head is logged and leaves the
// store empty: the aggregator serves on without its self-metrics in PromQL.
func (s *Store) Run(ctx context.Context) {
	dir, err := s.open()
	if err != nil {
		s.opts.Logger.Error("Self-metrics are not queryable: cannot create their storage", "err", err)
		return
	}
	defer s.close(dir)
	ticker := time.NewTicker(s.opts.Interval)
	defer ticker.Stop()
	for {
		if err := s.Scrape(ctx, time.Now()); err != nil {
			s.opts.Logger.Warn("Recording the self-metrics failed", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		}
	}
}

// open creates the head in a new temporary directory. The head keeps its
// chunks in memory: it writes chunk files only when a database flushes it,
// which never happens here.
func (s *Store) open() (string, error) {
	dir, err := os.MkdirTemp("", "telemetry-aggregator-self-metrics-")
	if err != nil {
		return "", err
	}
	opts := tsdb.DefaultHeadOptions()
	opts.ChunkDirRoot = dir
	head, err := tsdb.NewHead(nil, slog.New(warnOnly{s.opts.Logger.Handler()}), nil, nil, opts, nil)
	if err == nil {
		err = head.Init(math.MinInt64)
	}
	if err != nil {
		_ = os.RemoveAll(dir)
		return "", fmt.Errorf("self-metrics head: %w", err)
	}
	s.mu.Lock()
	s.head = head
	s.mu.Unlock()
	return dir, nil
}

// warnOnly passes on a handler's records from Warn up: the head logs its
// routine work (replaying nothing at start, each truncation's GC) at Info,
// which would say nothing useful every interval.
type warnOnly struct{ slog.Handler }

func (h warnOnly) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= slog.LevelWarn && h.Handler.Enabled(ctx, l)
}

func (h warnOnly) WithAttrs(as []slog.Attr) slog.Handler { return warnOnly{h.Handler.WithAttrs(as)} }

func (h warnOnly) WithGroup(name string) slog.Handler { return warnOnly{h.Handler.WithGroup(name)} }

// close waits for open queriers, closes the head and removes its directory.
func (s *Store) close(dir string) {
	head := s.loadHead()
	s.mu.Lock()
	s.head = nil // new queriers read nothing
	s.mu.Unlock()
	s.readers.Wait()
	if err := head.Close(); err != nil {
		s.opts.Logger.Warn("Closing the self-metrics storage", "err", err)
	}
	if err := os.RemoveAll(dir); err != nil {
		s.opts.Logger.Warn("Removing the self-metrics storage", "dir", dir, "err", err)
	}
}

// textFormat is the exposition format the store writes and reads back.
var textFormat = expfmt.NewFormat(expfmt.TypeTextPlain)

// Scrape records one scrape at t. Only Run's goroutine may call it (tests
// call it while Run is not running, after open).
func (s *Store) Scrape(ctx context.Context, t time.Time) error {
	head := s.loadHead()
	if head == nil {
		return errors.New("storage is closed")
	}
	start := time.Now()
	body, err := s.expose()
	if err != nil {
		return err
	}
	app := head.Appender(ctx)
	ts := timestamp.FromTime(t)
	scraped, err := s.appendBody(app, body, ts)
	if err != nil {
		_ = app.Rollback()
		return err
	}
	s.appendReport(app, ts, time.Since(start), scraped)
	if err := app.Commit(); err != nil {
		return fmt.Errorf("committing self-metrics: %w", err)
	}
	// Drop what is older than the retention (whole chunks, as the head
	// truncates).
	if mint := ts - s.opts.Retention.Milliseconds(); head.MinTime() < mint {
		if err := head.Truncate(mint); err != nil {
			return fmt.Errorf("dropping old self-metrics: %w", err)
		}
	}
	return nil
}

// expose gathers the self-metrics and writes them as /metrics would. A
// family that fails to gather or encode is logged and left out, as the
// exporter leaves it out of /metrics.
func (s *Store) expose() ([]byte, error) {
	mfs, err := s.gatherer.Gather()
	if err != nil {
		s.opts.Logger.Debug("Gathering self-metrics", "err", err)
	}
	var buf bytes.Buffer
	enc := expfmt.NewEncoder(&buf, textFormat)
	for _, mf := range mfs {
		if err := enc.Encode(mf); err != nil {
			s.opts.Logger.Debug("Encoding self-metric", "name", mf.GetName(), "err", err)
		}
	}
	return buf.Bytes(), nil
}

// appendBody appends every sample of the exposition body at ts and a
// staleness marker for every series of the last scrape that is gone; it
// returns the number of samples scraped.
func (s *Store) appendBody(app storage.Appender, body []byte, ts int64) (int, error) {
	p, err := textparse.New(body, string(textFormat), nil, textparse.ParserOptions{})
	if err != nil {
		return 0, fmt.Errorf("parsing self-metrics: %w", err)
	}
	seen := make(map[string]series, len(s.last))
	for {
		entry, err := p.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return 0, fmt.Errorf("parsing self-metrics: %w", err)
		}
		if entry != textparse.EntrySeries {
			continue
		}
		text, _, v := p.Series()
		key := string(text)
		ser, ok := s.last[key]
		if !ok {
			var lset labels.Labels
			p.Labels(&lset)
			ser.lset = s.withTarget(lset)
		}
		if ser.ref, err = app.Append(ser.ref, ser.lset, ts, v); err != nil {
			s.opts.Logger.Debug("Appending self-metric", "series", key, "err", err)
			continue
		}
		seen[key] = ser
	}
	for key, ser := range s.last {
		if _, ok := seen[key]; !ok {
			_, _ = app.Append(ser.ref, ser.lset, ts, math.Float64frombits(value.StaleNaN))
		}
	}
	s.last = seen
	return len(seen), nil
}

// withTarget adds the job and instance labels; as a scrape without
// honor_labels does, it keeps a label of the same name as exported_<name>.
func (s *Store) withTarget(lset labels.Labels) labels.Labels {
	b := labels.NewBuilder(lset)
	s.target.Range(func(l labels.Label) {
		if v := lset.Get(l.Name); v != "" {
			b.Set(model.ExportedLabelPrefix+l.Name, v)
		}
		b.Set(l.Name, l.Value)
	})
	return b.Labels()
}

// appendReport appends the series a scrape adds about itself.
func (s *Store) appendReport(app storage.Appender, ts int64, took time.Duration, scraped int) {
	for _, r := range []struct {
		name  string
		value float64
	}{
		{"up", 1},
		{"scrape_duration_seconds", took.Seconds()},
		{"scrape_samples_scraped", float64(scraped)},
	} {
		b := labels.NewBuilder(s.target)
		b.Set(model.MetricNameLabel, r.name)
		if _, err := app.Append(0, b.Labels(), ts, r.value); err != nil {
			s.opts.Logger.Debug("Appending self-metric", "series", r.name, "err", err)
		}
	}
}

func (s *Store) loadHead() *tsdb.Head {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.head
}

// Querier reads the head as of now; the store does not close the head
// until the querier is closed.
func (s *Store) Querier(mint, maxt int64) (storage.Querier, error) {
	s.mu.Lock()
	head := s.head
	if head != nil {
		s.readers.Add(1)
	}
	s.mu.Unlock()
	if head == nil {
		return storage.NoopQuerier(), nil
	}
	q, err := tsdb.NewBlockQuerier(tsdb.NewRangeHead(head, mint, maxt), mint, maxt)
	if err != nil {
		s.readers.Done()
		return nil, err
	}
	return &querier{Querier: q, release: sync.OnceFunc(s.readers.Done)}, nil
}

type querier struct {
	storage.Querier
	release func()
}

func (q *querier) Close() error {
	defer q.release()
	return q.Querier.Close()
}

// MinTime and MaxTime are the times of the oldest and newest samples, for
// the API's TSDB status; math.MaxInt64 and math.MinInt64 when there are
// none.
func (s *Store) MinTime() int64 {
	if head := s.loadHead(); head != nil && head.NumSeries() > 0 {
		return head.MinTime()
	}
	return math.MaxInt64
}

// MaxTime: see MinTime.
func (s *Store) MaxTime() int64 {
	if head := s.loadHead(); head != nil && head.NumSeries() > 0 {
		return head.MaxTime()
	}
	return math.MinInt64
}
