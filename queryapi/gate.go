package queryapi

import (
	"context"
	"errors"
	"sync/atomic"

	"github.com/prometheus/prometheus/promql"
)

// gate bounds the queries the engine evaluates at once. It is the engine's
// QueryTracker, so the engine takes a slot before it evaluates and gives it
// back after; a query waits for a slot at most until its deadline (the query
// timeout), and then fails as a timeout (503), never hanging the server.
type gate struct {
	slots   chan struct{}
	waiting atomic.Int64
	// queued, if set, is called when a query starts to wait (for tests).
	queued func()
}

func newGate(n int) *gate { return &gate{slots: make(chan struct{}, n)} }

// Insert takes a slot. A context that is already done never gets one, so a
// canceled request is not evaluated even when slots are free.
func (g *gate) Insert(ctx context.Context, _ string) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, queueError(err)
	}
	select {
	case g.slots <- struct{}{}:
		return 0, nil
	default:
	}
	g.waiting.Add(1)
	defer g.waiting.Add(-1)
	if g.queued != nil {
		g.queued()
	}
	select {
	case g.slots <- struct{}{}:
		return 0, nil
	case <-ctx.Done():
		return 0, queueError(ctx.Err())
	}
}

// queueEnv is where a query that timed out waiting for a slot was.
const queueEnv = "query queue"

// queueError names a wait that ended as the errors the API maps to timeout
// and canceled; the engine passes the tracker's error on as is.
func queueError(err error) error {
	if errors.Is(err, context.Canceled) {
		return promql.ErrQueryCanceled(queueEnv)
	}
	return promql.ErrQueryTimeout(queueEnv)
}

func (g *gate) Delete(int) { <-g.slots }

func (g *gate) GetMaxConcurrent() int { return cap(g.slots) }

func (*gate) Close() error { return nil }
