package cluster

import (
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/fabrictelemetry/aggregator/schema"
)

// The api label: what a request to a peer was for.
const (
	apiRemoteRead = "remote_read" // PromQL's remote read of /api/v1/read
	apiLabels     = "labels"      // PromQL's label names and values
	apiRows       = "rows"        // REST's rows
)

// The result label of a request to a peer.
const (
	resultSuccess  = "success"
	resultTimeout  = "timeout"   // its deadline passed: --fanout.timeout or the asking request's
	resultTooLarge = "too_large" // its answer was over its size limit
	resultError    = "error"     // anything else: refused, reset, an error status, a bad answer
)

var results = []string{resultSuccess, resultTimeout, resultTooLarge, resultError}

// metrics are the fan-out's own metrics, per peer.
type metrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	health   *peerHealth
}

// newMetrics makes the fan-out's metrics; peers lists the peers the
// membership names at each scrape, for the peers gauges.
func newMetrics(reg prometheus.Registerer, peers func() []string) *metrics {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: schema.Namespace, Subsystem: "fanout", Name: "requests_total",
			Help: "Requests this replica made to another replica (peer, its base URL) to answer for the whole fabric, " +
				"by what they were for (api: remote_read and labels for PromQL, rows for REST) and result " +
				"(success, timeout: --fanout.timeout or the asking request's deadline, too_large: over its size limit, error: anything else).",
		}, []string{"api", "peer", "result"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: schema.Namespace, Subsystem: "fanout", Name: "request_duration_seconds",
			Help:    "Time of the requests to other replicas, from sending to the end of the answer, whatever their result.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"api", "peer"}),
		health: newPeerHealth(peers),
	}
	if reg != nil {
		reg.MustRegister(m.requests, m.duration, m.health)
	}
	return m
}

// seen creates a peer's series at zero, so that increase() sees its first
// failure.
func (m *metrics) seen(api, peer string) {
	for _, r := range results {
		m.requests.WithLabelValues(api, peer, r)
	}
}

func (m *metrics) done(api, peer, result string, start time.Time) {
	m.requests.WithLabelValues(api, peer, result).Inc()
	m.duration.WithLabelValues(api, peer).Observe(time.Since(start).Seconds())
	m.health.observe(peer, result)
}

// peerHealth collects the peers gauges: how many peers the membership
// names, and whether each answered its latest request. It is passive: a
// peer is judged by the requests queries make, so one not asked since it
// joined counts as up.
type peerHealth struct {
	peers     func() []string
	countDesc *prometheus.Desc
	upDesc    *prometheus.Desc

	mu     sync.Mutex
	failed map[string]bool // by peer: its latest request timed out or failed
}

func newPeerHealth(peers func() []string) *peerHealth {
	return &peerHealth{
		peers: peers,
		countDesc: prometheus.NewDesc(prometheus.BuildFQName(schema.Namespace, "fanout", "peers"),
			"Other replicas the membership names now: in partitioned mode, the group's other members as of its latest rebalance.", nil, nil),
		upDesc: prometheus.NewDesc(prometheus.BuildFQName(schema.Namespace, "fanout", "peer_up"),
			"Per peer the membership names now: 0 when this replica's latest request to it timed out or failed, 1 otherwise "+
				"(it answered, its answer was only too large, or it has not been asked since it joined).", []string{"peer"}, nil),
		failed: map[string]bool{},
	}
}

func (h *peerHealth) observe(peer, result string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.failed[peer] = result == resultTimeout || result == resultError
}

func (h *peerHealth) Describe(ch chan<- *prometheus.Desc) {
	ch <- h.countDesc
	ch <- h.upDesc
}

// Collect reports the peers listed now, and forgets the others.
func (h *peerHealth) Collect(ch chan<- prometheus.Metric) {
	peers := h.peers()
	h.mu.Lock()
	defer h.mu.Unlock()
	ch <- prometheus.MustNewConstMetric(h.countDesc, prometheus.GaugeValue, float64(len(peers)))
	for _, peer := range peers {
		up := 1.0
		if h.failed[peer] {
			up = 0
		}
		ch <- prometheus.MustNewConstMetric(h.upDesc, prometheus.GaugeValue, up, peer)
	}
	for peer := range h.failed {
		if !slices.Contains(peers, peer) {
			delete(h.failed, peer)
		}
	}
}
