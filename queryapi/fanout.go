package queryapi

import (
	"net/http"

	"github.com/prometheus/prometheus/storage"

	"github.com/fabrictelemetry/aggregator/cluster"
)

// fanout is what queries read: local alone, or with Options.Peers local
// and every peer's data by Prometheus's remote read, a peer's answer bounded
// by --query.max-response-bytes (the engine's limits then count the merged
// series and samples, so they apply to the whole fan-out).
func fanout(local storage.Queryable, opts Options) storage.Queryable {
	if opts.Peers == nil {
		return local
	}
	return opts.Peers.Queryable(local, opts.MaxResponseBytes)
}

// queryableFor is what r reads: a request from another replica (its label
// lookups) reads this replica's data alone, so that it never fans out again.
func (a *API) queryableFor(r *http.Request) storage.Queryable {
	if cluster.FromPeer(r) {
		return a.local
	}
	return a.queryable
}

// RemoteReadHandler serves Prometheus's remote read: to a peer, this
// replica's own data (its histories and its self-metrics); to any other
// reader, such as a Prometheus server with a remote_read of this replica,
// what its queries read, the whole fabric with Options.Peers, failing
// rather than leaving a peer's data out (cluster.NewReadHandler). Its
// limits are the queries': an answer of samples holds at most
// --query.max-samples, --query.max-concurrency reads are served at once,
// and a streamed frame is at most 1 MiB (Prometheus's default).
// Register mounts it on /api/v1/read when Options.Peers is set.
func (a *API) RemoteReadHandler() http.Handler {
	var fabric storage.Queryable
	if q, ok := a.queryable.(*cluster.Queryable); ok {
		fabric = q.Strict()
	}
	return cluster.NewReadHandler(a.local, fabric, a.opts.Peers.Serving(), cluster.ReadLimits{
		Samples:     a.opts.MaxSamples,
		Concurrency: a.opts.MaxConcurrency,
		FrameBytes:  int(min(a.opts.MaxResponseBytes, cluster.DefaultMaxBytesInFrame)),
	}, a.logger.With("component", "remote_read"))
}
