package kafkalog

import (
	"context"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// lease is a publisher's membership of its source's lease group: a
// consumer group over the one-partition lease topic, whose member assigned
// partition 0 is the active publisher. Kafka's group coordinator is the
// election; the cooperative-sticky balancer leaves the partition with its
// holder when a standby joins, so a standby never interrupts the active one.
//
// The lease only elects. It cannot stop a holder that lost it without
// noticing (paused, cut off) from writing: the transactional ID, shared by
// every publisher of the source and initialized anew by each holder, fences
// that zombie.
type lease struct {
	cl     *kgo.Client
	topic  string
	logger *slog.Logger
	wait   time.Duration // how long a revoke waits for the term to stop

	mu      sync.Mutex
	held    bool
	stop    context.CancelFunc // cancels the running term
	stopped chan struct{}      // closed when the running term has ended

	changed chan struct{} // a token whenever held changes
	lastOK  atomic.Int64  // unix nanos of the last answered request
}

func newLease(conn Conn, group, topic string, sessionTimeout time.Duration, logger *slog.Logger) (*lease, error) {
	l := &lease{topic: topic, logger: logger, wait: sessionTimeout, changed: make(chan struct{}, 1)}
	opts := append(conn.opts(logger),
		kgo.ConsumerGroup(group),
		kgo.ConsumeTopics(topic),
		kgo.Balancers(kgo.CooperativeStickyBalancer()),
		kgo.SessionTimeout(sessionTimeout),
		kgo.HeartbeatInterval(sessionTimeout/4),
		kgo.RebalanceTimeout(2*sessionTimeout),
		// A member that cannot heartbeat for a session timeout gives the
		// lease up on its side too, rather than retrying for the default
		// 30 s while the coordinator has handed it to a standby.
		kgo.RetryTimeoutFn(func(int16) time.Duration { return sessionTimeout }),
		kgo.DisableAutoCommit(),
		kgo.OnPartitionsAssigned(l.assigned),
		kgo.OnPartitionsRevoked(l.release),
		kgo.OnPartitionsLost(l.release),
		kgo.WithHooks(l),
	)
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, err
	}
	// Membership is all the lease needs: the lease topic's records (the
	// checkpoints) are read by the term, not fetched here.
	cl.PauseFetchTopics(topic)
	l.cl = cl
	return l, nil
}

// OnBrokerE2E records that Kafka answered, for reachable.
func (l *lease) OnBrokerE2E(_ kgo.BrokerMetadata, _ int16, e2e kgo.BrokerE2E) {
	if e2e.Err() == nil {
		l.lastOK.Store(time.Now().UnixNano())
	}
}

// reachable reports whether the group coordinator answered within d.
func (l *lease) reachable(d time.Duration) bool {
	return time.Since(time.Unix(0, l.lastOK.Load())) < d
}

func (l *lease) assigned(_ context.Context, _ *kgo.Client, parts map[string][]int32) {
	if !slices.Contains(parts[l.topic], 0) {
		return
	}
	l.mu.Lock()
	l.held = true
	l.mu.Unlock()
	l.signal()
}

// release gives the lease up: the running term is canceled and, so that
// the next holder never writes beside it, waited for (bounded, since a
// revoke must finish within the rebalance timeout).
func (l *lease) release(_ context.Context, _ *kgo.Client, parts map[string][]int32) {
	if !slices.Contains(parts[l.topic], 0) {
		return
	}
	l.mu.Lock()
	l.held = false
	stop, stopped := l.stop, l.stopped
	l.mu.Unlock()
	if stop != nil {
		stop()
		select {
		case <-stopped:
		case <-time.After(l.wait):
			l.logger.Warn("Publisher still writing after giving up the lease; transactional fencing stops it")
		}
	}
	l.signal()
}

func (l *lease) signal() {
	select {
	case l.changed <- struct{}{}:
	default:
	}
}

// begin starts a term if the lease is held: ctx is canceled when it is
// released, and end must be called when the term is over.
func (l *lease) begin(parent context.Context) (ctx context.Context, end func(), ok bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.held {
		return nil, nil, false
	}
	ctx, cancel := context.WithCancel(parent)
	stopped := make(chan struct{})
	l.stop, l.stopped = cancel, stopped
	return ctx, func() {
		cancel()
		l.mu.Lock()
		l.stop, l.stopped = nil, nil
		l.mu.Unlock()
		close(stopped)
	}, true
}

// close leaves the group, so that a standby takes over at once.
func (l *lease) close() { l.cl.Close() }
