// Package aggregator assembles the telemetry aggregator: one poller per
// HTTP source (and its poll log publisher, with --kafka.publish), one
// follower per kafka:// source (in partitioned mode, a member of the
// replicas' group, with the fan-out to the other replicas), the snapshot
// store, and the HTTP endpoints that read it. cmd/ only parses flags and calls into this package, so
// tests can build the same thing.
package aggregator

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/mux"
	"github.com/prometheus/client_golang/prometheus"
	promconfig "github.com/prometheus/common/config"
	"github.com/prometheus/common/version"

	"github.com/fabrictelemetry/aggregator/cluster"
	"github.com/fabrictelemetry/aggregator/config"
	"github.com/fabrictelemetry/aggregator/exporter"
	"github.com/fabrictelemetry/aggregator/history"
	"github.com/fabrictelemetry/aggregator/ingest"
	"github.com/fabrictelemetry/aggregator/kafkalog"
	"github.com/fabrictelemetry/aggregator/queryapi"
	"github.com/fabrictelemetry/aggregator/schema"
	"github.com/fabrictelemetry/aggregator/selfscrape"
	"github.com/fabrictelemetry/aggregator/simulator"
	"github.com/fabrictelemetry/aggregator/snapshot"
)

// demoIncidentRate makes incidents visible on dashboards within minutes.
const demoIncidentRate = 0.002

// Config is what the aggregator is told on start-up.
type Config struct {
	// Sources are polled each by its own poller; at least one. In demo
	// mode the first one's URL is replaced by the in-process simulator's.
	Sources []config.Source
	// MaxStaleness is how old the freshest data may get before /-/ready
	// fails; zero means three times the longest poll interval.
	MaxStaleness time.Duration
	// Demo runs a simulator in-process on a free loopback port and polls it.
	Demo         bool
	DemoSwitches int
	// DemoPorts > 0 makes the demo fabric per-port, served in UFM's layout.
	DemoPorts int
	// StoragePath, if set, is a directory where each source's last good
	// snapshot and the sealed runs of its PromQL history are kept across
	// restarts.
	StoragePath string
	// EnablePprof serves net/http/pprof under /debug/pprof/.
	EnablePprof bool
	Schema      *schema.Table
	// Query configures the PromQL API (its Logger is set from Logger).
	Query queryapi.Options
	// Exporter configures /metrics (its Logger is set from Logger).
	Exporter exporter.Options
	// Kafka are the --kafka.* settings: the publisher of the HTTP
	// sources' polls (Publish), and the TLS and SASL of every kafka://
	// source (see docs/scale-out.md).
	Kafka kafkalog.Options
	// ExternalURL is the base URL other replicas reach this one at
	// (--web.external-url), advertised to the group of a partitioned
	// source (kafka://…?group=); required then.
	ExternalURL string
	// Fanout bounds the requests to the other replicas in partitioned
	// mode (--fanout.*); its Registerer and Logger are set here.
	Fanout cluster.Options
	Logger *slog.Logger
}

// Aggregator is the assembled service.
type Aggregator struct {
	cfg   Config
	store *snapshot.Store
	// sources are the HTTP sources, each polled by its poller.
	sources []*source
	// feeds are the kafka:// sources, each a follower of a poll log.
	feeds []*feed
	// peers are the other replicas in partitioned mode; nil otherwise.
	peers *cluster.Peers
	// served is every source whose part is in the view: the HTTP sources,
	// then the sources the feeds learn from the log as their first polls
	// arrive. Replaced (never changed) under mu; read without locks.
	served atomic.Pointer[[]*source]
	// histories are the served sources' PromQL histories, for the query API.
	histories *history.Set
	// refused counts the polls of log sources whose name is taken.
	refused *prometheus.CounterVec
	router  *mux.Router
	demo    *simulator.Simulator
	exp     *exporter.Exporter
	// self records the self-metrics for the query API; nil when
	// --query.self-metrics-interval is 0.
	self *selfscrape.Store
	// mu serialises the writers of several sources while they merge their
	// parts into the next view. Readers never take it.
	mu     sync.Mutex
	merged [2]*snapshot.Snapshot // the last switch-level and per-port merges
	// mergedFrom are the parts each merge was made of.
	mergedFrom [2][]*snapshot.Snapshot
	dropped    [2]int // rows the merges dropped, logged when it changes
	onPublish  []func(*snapshot.View)
	observers  []func(ingest.Cycle)
	now        func() time.Time
}

// New builds the aggregator; nothing runs until Run.
func New(cfg Config) (*Aggregator, error) {
	if err := cfg.check(); err != nil {
		return nil, err
	}
	partitioned, err := cfg.checkPartitioned()
	if err != nil {
		return nil, err
	}
	if cfg.Schema == nil {
		cfg.Schema = schema.Default()
	}
	a := &Aggregator{cfg: cfg, store: &snapshot.Store{}, histories: history.NewSet(), router: mux.NewRouter(), now: time.Now}
	if cfg.Demo {
		sim, err := simulator.New(simulator.Config{
			Switches: cfg.DemoSwitches, Ports: cfg.DemoPorts, Interval: time.Duration(cfg.Sources[0].Interval),
			Seed: time.Now().UnixNano(), IncidentRate: demoIncidentRate, Logger: cfg.Logger.With("component", "simulator"),
		})
		if err != nil {
			return nil, fmt.Errorf("demo simulator: %w", err)
		}
		a.demo = sim
	}
	expOpts := cfg.Exporter
	expOpts.Logger = cfg.Logger.With("component", "exporter")
	a.exp = exporter.New(a.store, expOpts)
	a.OnCycle(a.exp.Observe)
	if q := cfg.Query; q.SelfMetricsInterval > 0 {
		a.self = selfscrape.New(a.exp.SelfGatherer(), selfscrape.Options{
			Interval:  q.SelfMetricsInterval,
			Retention: cmp.Or(q.Retention, history.DefaultRetention),
			Job:       cmp.Or(q.SelfMetricsJob, queryapi.DefaultSelfMetricsJob),
			Instance:  cmp.Or(q.SelfMetricsInstance, selfscrape.Instance("")),
			Logger:    cfg.Logger.With("component", "selfscrape"),
		})
	}
	conns, err := a.kafkaConns()
	if err != nil {
		return nil, err
	}
	for _, sc := range cfg.Sources {
		if sc.Kafka() {
			f, err := a.newFeed(sc, conns[sc.Name])
			if err != nil {
				return nil, err
			}
			a.feeds = append(a.feeds, f)
			if partitioned {
				if a.peers, err = a.newPeers(f); err != nil {
					return nil, err
				}
			}
			continue
		}
		src, err := a.newSource(sc)
		if err != nil {
			return nil, err
		}
		if cfg.Kafka.Publish {
			if src.publisher, err = a.newPublisher(sc.Name, conns[""]); err != nil {
				return nil, err
			}
		}
		a.sources = append(a.sources, src)
		a.histories.Add(src.history)
		a.exp.AddSource(sc.Name) // its self-metrics exist, at zero, before its first poll
		a.exp.AddHistory(sc.Name, src.history)
	}
	served := slices.Clone(a.sources)
	a.served.Store(&served)
	cfg.Schema.ReportNotes(func(note string) {
		cfg.Logger.Warn("Metric name clash resolved", "component", "schema", "note", note)
	})
	a.routes()
	return a, nil
}

func (cfg *Config) check() error {
	if len(cfg.Sources) == 0 {
		return errors.New("no source configured")
	}
	var longest time.Duration
	for _, s := range cfg.Sources {
		if s.Interval <= 0 || s.Timeout <= 0 || s.MaxBytes <= 0 {
			return fmt.Errorf("source %q: interval, timeout and max bytes must be positive", s.Name)
		}
		longest = max(longest, time.Duration(s.Interval))
	}
	if cfg.MaxStaleness <= 0 {
		cfg.MaxStaleness = 3 * longest
	}
	return nil
}

// Store is the store readers load from.
func (a *Aggregator) Store() *snapshot.Store { return a.store }

// Router is where the endpoints are mounted.
func (a *Aggregator) Router() *mux.Router { return a.router }

// OnPublish adds a step that runs in a writer after each view is swapped
// in. Call before Run.
func (a *Aggregator) OnPublish(f func(*snapshot.View)) { a.onPublish = append(a.onPublish, f) }

// OnCycle adds an observer of every poll of every source, accepted or
// rejected. Call before Run.
func (a *Aggregator) OnCycle(f func(ingest.Cycle)) { a.observers = append(a.observers, f) }

func (a *Aggregator) observe(c ingest.Cycle) {
	for _, f := range a.observers {
		f(c)
	}
}

// Run polls every HTTP source, follows every poll log and publishes to
// one, until ctx is done (and, in demo mode, runs the simulator it polls).
func (a *Aggregator) Run(ctx context.Context) error {
	if a.demo != nil {
		url, stop, err := a.startDemo(ctx)
		if err != nil {
			return err
		}
		defer stop()
		a.sources[0].poller.Fetcher.URL = url
	}
	closeHistories := a.openHistories()
	defer closeHistories()
	a.restore()
	var wg sync.WaitGroup
	if a.self != nil {
		wg.Go(func() { a.self.Run(ctx) })
	}
	for _, src := range a.sources {
		p := src.poller
		a.cfg.Logger.Info("Polling source", append([]any{"source_name", src.cfg.Name, "url", p.Fetcher.URL, "format", src.cfg.Format,
			"shards", p.Shards, "interval", p.Interval, "timeout", p.Timeout, "max_bytes", p.Fetcher.MaxBytes},
			clientLogAttrs(src.cfg.HTTPClientConfig, src.cfg.RedirectHosts)...)...)
		wg.Go(func() { p.Run(ctx) })
		if src.publisher != nil {
			a.cfg.Logger.Info("Publishing the source's accepted polls to the poll log", "source_name", src.cfg.Name,
				"brokers", a.cfg.Kafka.Brokers, "topic", a.cfg.Kafka.Topic, "tls", a.cfg.Kafka.TLS.Enable, "sasl", a.cfg.Kafka.SASL.Mechanism)
			wg.Go(func() { _ = src.publisher.Run(ctx) })
		}
	}
	for _, f := range a.feeds {
		attrs := []any{"source_name", f.cfg.Name, "url", f.cfg.URL, "replay", f.replay,
			"tls", a.cfg.Kafka.TLS.Enable, "sasl", a.cfg.Kafka.SASL.Mechanism}
		if f.group != nil {
			attrs = append(attrs, "external_url", a.cfg.ExternalURL, "session_timeout", a.cfg.Kafka.SessionTimeout)
		}
		a.cfg.Logger.Info("Following poll log", attrs...)
		wg.Go(func() { _ = f.run(ctx) })
	}
	wg.Wait()
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
	path := "/counters"
	if a.cfg.DemoPorts > 0 {
		path = "/csv/metrics"
	}
	url = "http://" + l.Addr().String() + path
	a.cfg.Logger.Info("Demo simulator started", "url", url)
	return url, func() {
		cancel()
		_ = srv.Close()
		<-done
		<-done
	}, nil
}

// newSourceClient returns a source's HTTP client, made by
// prometheus/common/config from the source's settings as a Prometheus
// scrape's is (TLS, credentials, proxy, HTTP/2). Its transport keeps
// connections alive between polls (idle up to 5 minutes, up to 1,000 per
// host: every shard keeps its own), sets no time limit of its own but the
// TLS handshake's 10 s, so the poll's context bounds the whole exchange,
// body included, and leaves gzip to the fetcher, which counts max_bytes
// after inflating. Redirects, when followed, keep to ingest.RedirectPolicy.
func newSourceClient(sc config.Source) (*http.Client, error) {
	client, err := promconfig.NewClientFromConfig(sc.HTTPClientConfig, sc.Name,
		promconfig.WithUserAgent(version.ComponentUserAgent("telemetry-aggregator")))
	if err != nil {
		return nil, fmt.Errorf("source %q: HTTP client: %w", sc.Name, err)
	}
	if sc.HTTPClientConfig.FollowRedirects {
		client.CheckRedirect = ingest.RedirectPolicy(sc.RedirectHosts)
	}
	return client, nil
}

// clientLogAttrs describe a source's HTTP client for the start-up log
// without any secret: the kind of credentials, never their value.
func clientLogAttrs(c promconfig.HTTPClientConfig, redirectHosts []string) []any {
	auth := "none"
	switch {
	case c.BasicAuth != nil:
		auth = "basic_auth"
	case c.OAuth2 != nil:
		auth = "oauth2"
	case c.Authorization != nil:
		auth = "authorization " + c.Authorization.Type
	}
	return []any{"auth", auth, "tls_ca_file", c.TLSConfig.CAFile, "proxy_url", c.ProxyURL.Redacted(),
		"follow_redirects", c.FollowRedirects, "redirect_hosts", redirectHosts}
}
