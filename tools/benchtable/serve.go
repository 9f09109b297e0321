package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/mux"
	"github.com/prometheus/common/model"
	"github.com/prometheus/exporter-toolkit/web"

	"github.com/fabrictelemetry/aggregator/aggregator"
	"github.com/fabrictelemetry/aggregator/config"
	"github.com/fabrictelemetry/aggregator/ingest"
	"github.com/fabrictelemetry/aggregator/restapi"
	"github.com/fabrictelemetry/aggregator/schema"
	"github.com/fabrictelemetry/aggregator/snapshot"
)

// The serve subcommand is a server under load, run in its own process:
//
//	aggregator  the aggregator as the binary builds it (aggregator.New and
//	            ListenAndServe: instrumented router, history, /metrics)
//	rcu         restapi on a router over a snapshot.Store, fed by ingest.Poller
//	rwmutex     the same over lockedStore, whose writer holds a sync.RWMutex
//	            while it parses and builds (the design the seed warns against)
//	bare        a bare net/http server answering a constant body
//
// It prints one JSON line with its address once the first snapshot is
// served, serves until its standard input closes, then prints one JSON line
// with the ingestion cycles it ran.

type serveHello struct {
	Addr string `json:"addr"`
}

type serveStats struct {
	Cycles   int     `json:"cycles"`
	Rejected int     `json:"rejected"`
	MeanMs   float64 `json:"mean_ms"`
	MaxMs    float64 `json:"max_ms"`
}

func serveMain(args []string) int {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	mode := fs.String("mode", "aggregator", "aggregator, rcu, rwmutex or bare")
	source := fs.String("source", "", "CSV source URL")
	interval := fs.Duration("interval", 0, "poll interval; 0 polls once and then stays idle")
	bodyFile := fs.String("body", "", "bare: file holding the constant answer")
	pprof := fs.Bool("pprof", false, "aggregator: serve /debug/pprof/ (--web.enable-pprof)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { // the parent closes our stdin to stop us
		_, _ = io.Copy(io.Discard, os.Stdin)
		cancel()
	}()
	var cyc cycleStats
	var err error
	switch *mode {
	case "bare":
		err = serveBare(ctx, *bodyFile)
	case "aggregator":
		err = serveAggregator(ctx, *source, *interval, *pprof, &cyc)
	case "rcu", "rwmutex":
		err = serveREST(ctx, *mode, *source, *interval, &cyc)
	default:
		err = fmt.Errorf("unknown mode %q", *mode)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "benchtable serve:", err)
		return 1
	}
	_ = json.NewEncoder(os.Stdout).Encode(cyc.stats())
	return 0
}

// cycleStats counts the ingestion cycles a server ran.
type cycleStats struct {
	mu       sync.Mutex
	n, bad   int
	sum, max time.Duration
	first    chan struct{}
	once     sync.Once
}

func (c *cycleStats) init() { c.first = make(chan struct{}) }

func (c *cycleStats) add(d time.Duration, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err != nil {
		c.bad++
		return
	}
	c.n++
	c.sum += d
	c.max = max(c.max, d)
	c.once.Do(func() { close(c.first) })
}

func (c *cycleStats) stats() serveStats {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := serveStats{Cycles: c.n, Rejected: c.bad, MaxMs: c.max.Seconds() * 1e3}
	if c.n > 0 {
		s.MeanMs = c.sum.Seconds() * 1e3 / float64(c.n)
	}
	return s
}

func hello(addr string) {
	_ = json.NewEncoder(os.Stdout).Encode(serveHello{Addr: addr})
}

func serveBare(ctx context.Context, bodyFile string) error {
	body, err := os.ReadFile(bodyFile)
	if err != nil {
		return err
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header()["Content-Type"] = []string{"application/json"}
		_, _ = w.Write(body)
	}), ReadHeaderTimeout: 10 * time.Second}
	return serveUntil(ctx, srv, l)
}

func serveUntil(ctx context.Context, srv *http.Server, l net.Listener) error {
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(l) }()
	hello(l.Addr().String())
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	shutCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = srv.Shutdown(shutCtx)
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// serveAggregator runs the aggregator as cmd/telemetry-aggregator does, on
// a free loopback port, polling source every interval (or once).
func serveAggregator(ctx context.Context, source string, interval time.Duration, pprof bool, cyc *cycleStats) error {
	if interval <= 0 {
		interval = 24 * time.Hour // the first poll runs at once, the next never
	}
	cyc.init()
	a, err := aggregator.New(aggregator.Config{
		Sources: []config.Source{{
			Name: "bench", URL: source, Format: config.FormatAuto, Shards: 1,
			Interval: model.Duration(interval), Timeout: model.Duration(time.Minute), MaxBytes: 1 << 30,
		}},
		MaxStaleness: 24 * time.Hour,
		EnablePprof:  pprof,
		Logger:       slog.New(slog.DiscardHandler),
	})
	if err != nil {
		return err
	}
	a.OnCycle(func(c ingest.Cycle) { cyc.add(c.Total, c.Err) })
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	addr := l.Addr().String()
	_ = l.Close() // ListenAndServe listens itself; the port stays free meanwhile
	listen, systemd, webConfig := []string{addr}, false, ""
	errc := make(chan error, 1)
	go func() {
		errc <- a.ListenAndServe(ctx, &web.FlagConfig{WebListenAddresses: &listen, WebSystemdSocket: &systemd, WebConfigFile: &webConfig})
	}()
	select {
	case <-cyc.first:
	case err := <-errc:
		return fmt.Errorf("aggregator stopped before its first snapshot: %v", err)
	case <-time.After(5 * time.Minute):
		return errors.New("no snapshot after 5 minutes")
	}
	if err := waitReady("http://"+addr+"/-/ready", errc); err != nil {
		return err
	}
	hello(addr)
	return <-errc
}

func waitReady(url string, errc <-chan error) error {
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case err := <-errc:
			return fmt.Errorf("server stopped: %v", err)
		case <-time.After(20 * time.Millisecond):
		}
	}
	return fmt.Errorf("%s not ready after a minute", url)
}

// lockedStore is the design the seed warns against: one RWMutex around the
// current view, held by the writer for the whole parse and build, so every
// reader waits for the parse.
type lockedStore struct {
	mu   sync.RWMutex
	view *snapshot.View
}

// Load implements snapshot.Loader.
func (s *lockedStore) Load() *snapshot.View {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.view
}

func (s *lockedStore) parseAndPublish(p *ingest.Parser, body []byte, at time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	snap, err := p.Parse(body, at)
	if err != nil {
		return err
	}
	s.view = snapshot.NewView(snap)
	return nil
}

// serveREST serves the REST API alone, on the router the aggregator uses,
// over a read-copy-update store (rcu) or lockedStore (rwmutex).
func serveREST(ctx context.Context, mode, source string, interval time.Duration, cyc *cycleStats) error {
	cyc.init()
	fetcher := &ingest.Fetcher{URL: source, MaxBytes: 1 << 30, Client: &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone()}}
	parser := ingest.NewParser(schema.Default())
	var loader snapshot.Loader
	var poll func(context.Context)
	switch mode {
	case "rcu":
		store := &snapshot.Store{}
		p := &ingest.Poller{
			Source: "bench", Fetcher: fetcher, Parser: parser, Interval: time.Hour, Timeout: time.Minute,
			Publish: store.Publish, Logger: slog.New(slog.DiscardHandler),
		}
		loader = store
		poll = func(ctx context.Context) {
			c := p.Poll(ctx)
			cyc.add(c.Total, c.Err)
		}
	case "rwmutex":
		store := &lockedStore{}
		loader = store
		poll = func(ctx context.Context) {
			start := time.Now()
			body, err := fetcher.Fetch(ctx)
			if err == nil {
				err = store.parseAndPublish(parser, body, start)
			}
			cyc.add(time.Since(start), err)
		}
	}
	poll(ctx)
	if cyc.stats().Cycles == 0 {
		return errors.New("first poll failed")
	}
	var polling atomic.Bool
	done := make(chan struct{})
	if interval > 0 {
		polling.Store(true)
		go func() {
			defer close(done)
			t := time.NewTicker(interval)
			defer t.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case <-t.C:
					poll(ctx)
				}
			}
		}()
	}
	r := mux.NewRouter()
	restapi.New(loader, time.Second, nil).Register(r)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	err = serveUntil(ctx, &http.Server{Handler: r, ReadHeaderTimeout: 10 * time.Second}, l)
	if polling.Load() {
		<-done
	}
	return err
}
