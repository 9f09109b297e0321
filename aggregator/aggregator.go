// Package aggregator assembles the telemetry aggregator: the source poller,
// the snapshot store, and the HTTP endpoints that read it. cmd/ only parses
// flags and calls into this package, so tests can build the same thing.
package aggregator

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/gorilla/mux"

	"github.com/fabrictelemetry/aggregator/exporter"
	"github.com/fabrictelemetry/aggregator/ingest"
	"github.com/fabrictelemetry/aggregator/queryapi"
	"github.com/fabrictelemetry/aggregator/schema"
	"github.com/fabrictelemetry/aggregator/simulator"
	"github.com/fabrictelemetry/aggregator/snapshot"
)

// demoIncidentRate makes incidents visible on dashboards within minutes.
const demoIncidentRate = 0.002

// Config is what the aggregator is told on start-up.
type Config struct {
	SourceURL      string
	SourceInterval time.Duration
	SourceTimeout  time.Duration
	SourceMaxBytes int64
	// MaxStaleness is how old the snapshot may get before /-/ready fails;
	// zero means three poll intervals.
	MaxStaleness time.Duration
	// Demo runs a simulator in-process on a free loopback port and polls it.
	Demo         bool
	DemoSwitches int
	Schema       *schema.Table
	// Query configures the PromQL API (its Logger is set from Logger).
	Query queryapi.Options
	// Exporter configures /metrics (its Logger is set from Logger).
	Exporter exporter.Options
	Logger   *slog.Logger
}

// Aggregator is the assembled service.
type Aggregator struct {
	cfg    Config
	store  *snapshot.Store
	poller *ingest.Poller
	router *mux.Router
	demo   *simulator.Simulator
	// history keeps the accepted snapshots for PromQL.
	history *queryapi.History
	exp     *exporter.Exporter
	// onPublish runs in the writer after each swap (history, caches).
	onPublish []func(*snapshot.Snapshot)
	observers []func(ingest.Cycle)
	now       func() time.Time
}

// New builds the aggregator; nothing runs until Run.
func New(cfg Config) (*Aggregator, error) {
	if cfg.SourceInterval <= 0 || cfg.SourceTimeout <= 0 || cfg.SourceMaxBytes <= 0 {
		return nil, errors.New("source interval, timeout and max bytes must be positive")
	}
	if cfg.MaxStaleness <= 0 {
		cfg.MaxStaleness = 3 * cfg.SourceInterval
	}
	if cfg.Schema == nil {
		cfg.Schema = schema.Default()
	}
	a := &Aggregator{cfg: cfg, store: &snapshot.Store{}, router: mux.NewRouter(), now: time.Now}
	if cfg.Demo {
		sim, err := simulator.New(simulator.Config{
			Switches: cfg.DemoSwitches, Interval: cfg.SourceInterval, Seed: time.Now().UnixNano(),
			IncidentRate: demoIncidentRate, Logger: cfg.Logger.With("component", "simulator"),
		})
		if err != nil {
			return nil, fmt.Errorf("demo simulator: %w", err)
		}
		a.demo = sim
	}
	a.history = queryapi.NewHistory(cfg.Query.Retention)
	a.OnPublish(a.history.Append)
	a.poller = &ingest.Poller{
		Fetcher:  &ingest.Fetcher{URL: cfg.SourceURL, MaxBytes: cfg.SourceMaxBytes, Client: newSourceClient()},
		Parser:   ingest.NewParser(cfg.Schema),
		Interval: cfg.SourceInterval,
		Timeout:  cfg.SourceTimeout,
		Publish:  a.publish,
		Observe:  a.observe,
		Logger:   cfg.Logger.With("component", "ingest"),
	}
	expOpts := cfg.Exporter
	expOpts.Logger = cfg.Logger.With("component", "exporter")
	a.exp = exporter.New(a.store, expOpts)
	a.OnCycle(a.exp.Observe)
	cfg.Schema.ReportNotes(func(note string) {
		cfg.Logger.Warn("Metric name clash resolved", "component", "schema", "note", note)
	})
	a.routes()
	return a, nil
}

// Store is the snapshot store readers load from.
func (a *Aggregator) Store() *snapshot.Store { return a.store }

// Router is where the endpoints are mounted.
func (a *Aggregator) Router() *mux.Router { return a.router }

// OnPublish adds a step that runs in the writer after each accepted snapshot
// is swapped in. Call before Run.
func (a *Aggregator) OnPublish(f func(*snapshot.Snapshot)) { a.onPublish = append(a.onPublish, f) }

// OnCycle adds an observer of every poll, accepted or rejected. Call before Run.
func (a *Aggregator) OnCycle(f func(ingest.Cycle)) { a.observers = append(a.observers, f) }

func (a *Aggregator) publish(s *snapshot.Snapshot) {
	a.store.Publish(s)
	for _, f := range a.onPublish {
		f(s)
	}
}

func (a *Aggregator) observe(c ingest.Cycle) {
	for _, f := range a.observers {
		f(c)
	}
}

// Run polls the source until ctx is done (and, in demo mode, runs the
// simulator it polls).
func (a *Aggregator) Run(ctx context.Context) error {
	if a.demo != nil {
		url, stop, err := a.startDemo(ctx)
		if err != nil {
			return err
		}
		defer stop()
		a.poller.Fetcher.URL = url
	}
	a.cfg.Logger.Info("Polling source", "url", a.poller.Fetcher.URL, "interval", a.cfg.SourceInterval, "timeout", a.cfg.SourceTimeout)
	a.poller.Run(ctx)
	return nil
}

// startDemo serves the in-process simulator on a free loopback port.
func (a *Aggregator) startDemo(ctx context.Context) (url string, stop func(), err error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, fmt.Errorf("demo simulator listener: %w", err)
	}
	srv := &http.Server{Handler: a.demo.Handler(), ReadHeaderTimeout: 5 * time.Second}
	simCtx, cancel := context.WithCancel(ctx)
	done := make(chan struct{}, 2)
	go func() { _ = srv.Serve(l); done <- struct{}{} }()
	go func() { _ = a.demo.Run(simCtx); done <- struct{}{} }()
	url = "http://" + l.Addr().String() + "/counters"
	a.cfg.Logger.Info("Demo simulator started", "url", url)
	return url, func() {
		cancel()
		_ = srv.Close()
		<-done
		<-done
	}, nil
}

// newSourceClient returns the HTTP client for polling: its own transport so
// connections to the source are kept alive between polls, and redirects
// bounded.
func newSourceClient() *http.Client {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConnsPerHost = 4
	t.ResponseHeaderTimeout = 0 // the poll's context bounds the whole exchange
	return &http.Client{
		Transport: t,
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if len(via) >= 5 {
				return fmt.Errorf("stopped after %d redirects", len(via))
			}
			return nil
		},
	}
}
