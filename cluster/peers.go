package cluster

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/common/config"

	"github.com/fabrictelemetry/aggregator/schema"
)

// Peers is one replica's client of the others: it reads the Membership at
// each request and asks the replicas it names, within the limits of its
// Options, counting every request in its metrics. It is safe for
// concurrent use.
type Peers struct {
	m       Membership
	opts    Options
	metrics *metrics
	// transport carries the REST and label requests to every peer; the
	// remote-read clients have their own, made by Prometheus's client.
	transport http.RoundTripper
	// slots bounds the REST requests in flight (Options.MaxConcurrency).
	slots chan struct{}
	// table names the columns of the rows peers send, as the rows'
	// rebuilder would without one: made once, not at every request (it
	// was a tenth of a GetMetric of a peer's switch).
	table *schema.Table
}

// New returns the client of the replicas m names. It reads
// opts.HTTPConfigFile, if set, and registers the fan-out's metrics with
// opts.Registerer.
func New(m Membership, opts Options) (*Peers, error) {
	opts = opts.withDefaults()
	if opts.HTTPConfigFile != "" {
		cfg, _, err := config.LoadHTTPConfigFile(opts.HTTPConfigFile)
		if err != nil {
			return nil, fmt.Errorf("reading --fanout.http-config-file: %w", err)
		}
		opts.HTTPClient = *cfg
	}
	if err := opts.HTTPClient.Validate(); err != nil {
		return nil, fmt.Errorf("peer HTTP client configuration: %w", err)
	}
	rt, err := config.NewRoundTripperFromConfig(opts.HTTPClient, "fanout")
	if err != nil {
		return nil, fmt.Errorf("peer HTTP client: %w", err)
	}
	p := &Peers{m: m, opts: opts, transport: rt, slots: make(chan struct{}, opts.MaxConcurrency), table: schema.Default()}
	p.metrics = newMetrics(opts.Registerer, p.others)
	return p, nil
}

// Membership returns the membership the peers come from.
func (p *Peers) Membership() Membership { return p.m }

// others returns the peers of the membership, without this replica should
// the membership list it.
func (p *Peers) others() []string {
	peers := p.m.Peers()
	self := p.m.Self()
	for i, peer := range peers {
		if peer == self {
			out := make([]string, 0, len(peers)-1)
			out = append(out, peers[:i]...)
			return append(out, peers[i+1:]...)
		}
	}
	return peers
}

// client returns the HTTP client of the requests to peer for api, bounded
// to maxBytes of answer; the caller counts each request (observe).
func (p *Peers) client(peer, api string, maxBytes int64) *http.Client {
	return &http.Client{Transport: &peerTransport{next: p.transport, self: p.m.Self(), api: api, peer: peer, maxBytes: maxBytes}}
}

// countedTransport is rt for the requests to peer for api, bounded to
// maxBytes of answer and each counted as its answer ends: for Prometheus's
// remote-read client, which reads the answers itself.
func (p *Peers) countedTransport(rt http.RoundTripper, peer, api string, maxBytes int64) http.RoundTripper {
	p.metrics.seen(api, peer)
	return &peerTransport{next: rt, self: p.m.Self(), api: api, peer: peer, maxBytes: maxBytes, metrics: p.metrics}
}

// observe counts a request to peer for api that started at start and
// ended with *err.
func (p *Peers) observe(ctx context.Context, api, peer string, start time.Time, err *error) {
	p.metrics.seen(api, peer)
	result := resultSuccess
	if *err != nil {
		result = classify(ctx, *err)
	}
	p.metrics.done(api, peer, result, start)
}

// acquire takes one of the REST fan-out's slots, waiting at most until ctx
// is done.
func (p *Peers) acquire(ctx context.Context) error {
	select {
	case p.slots <- struct{}{}:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("waiting for one of the --fanout.max-concurrency slots: %w", context.Cause(ctx))
	}
}

func (p *Peers) release() { <-p.slots }

// endpoint is the URL of path on the replica whose base URL is peer.
func endpoint(peer, path string) string { return strings.TrimSuffix(peer, "/") + path }
