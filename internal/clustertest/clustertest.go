// Package clustertest starts the loopback servers of in-process partitioned
// replicas for the fan-out tests of the packages that serve them.
package clustertest

import (
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"

	"github.com/fabrictelemetry/aggregator/cluster"
)

// Handler serves the handler last given to Set: a replica's server starts
// before its API exists (the API needs the others' addresses), and a test
// may swap in a broken one.
type Handler struct{ h atomic.Pointer[http.Handler] }

// Set makes h what the server serves.
func (s *Handler) Set(h http.Handler) { s.h.Store(&h) }

func (s *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) { (*s.h.Load()).ServeHTTP(w, r) }

// Replicas starts n loopback servers, closed at the test's end, and
// returns their handlers and each replica's static membership: itself, the
// others as peers, and the topic's partitions owned one per replica in
// server order (partition i by replica i), for the given sources.
func Replicas(tb testing.TB, n int, sources []string) ([]*Handler, []*cluster.Static) {
	tb.Helper()
	handlers := make([]*Handler, n)
	urls := make([]string, n)
	for i := range n {
		handlers[i] = &Handler{}
		srv := httptest.NewServer(handlers[i])
		tb.Cleanup(srv.Close)
		urls[i] = srv.URL
	}
	members := make([]*cluster.Static, n)
	for i := range n {
		m := &cluster.Static{SelfURL: urls[i], PartitionOwners: urls, SourceNames: sources}
		for j, u := range urls {
			if j != i {
				m.PeerURLs = append(m.PeerURLs, u)
			}
		}
		members[i] = m
	}
	return handlers, members
}
