package cluster

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"time"
)

// PeerHeader marks a request one replica makes to another. Its value is
// the asking replica's base URL. A replica answers a request that carries
// it from its own data alone, so a fan-out never fans out again.
const PeerHeader = "X-Fabric-Peer"

// FromPeer reports whether r was made by another replica.
func FromPeer(r *http.Request) bool { return r.Header.Get(PeerHeader) != "" }

// errTooLarge is a peer's answer over its size limit.
var errTooLarge = errors.New("answer too large")

// peerTransport is the transport of the requests to one peer for one api:
// it marks them with PeerHeader, bounds the bytes of the answer (after
// decompression) and, with metrics, counts each request in the fan-out
// metrics once its answer is read to the end or given up. (Without, the
// caller counts it, when it knows whether the answer was good.)
type peerTransport struct {
	next     http.RoundTripper
	self     string
	api      string
	peer     string
	maxBytes int64
	metrics  *metrics // nil: not counted here
}

func (t *peerTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	req = req.Clone(req.Context()) // a RoundTripper must not change the request
	req.Header.Set(PeerHeader, t.self)
	start := time.Now()
	done := func(result string) {
		if t.metrics != nil {
			t.metrics.done(t.api, t.peer, result, start)
		}
	}
	resp, err := t.next.RoundTrip(req)
	if err != nil {
		done(classify(req.Context(), err))
		return nil, err
	}
	body := &meteredBody{rc: resp.Body, ctx: req.Context(), left: t.maxBytes, limit: t.maxBytes, done: done}
	body.onEOF = func() { recordCoverage(req.Context(), t.peer, resp.Trailer.Get(PartitionsHeader)) }
	if resp.StatusCode/100 != 2 {
		body.result = resultError // whatever the body says
	}
	if resp.ContentLength > t.maxBytes {
		_ = resp.Body.Close()
		body.finish(resultTooLarge)
		return nil, body.tooLarge()
	}
	resp.Body = body
	return resp, nil
}

// classify names the result of a request that failed with err.
func classify(ctx context.Context, err error) string {
	var netErr net.Error
	switch {
	case errors.Is(err, errTooLarge):
		return resultTooLarge
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &netErr) && netErr.Timeout(),
		errors.Is(ctx.Err(), context.DeadlineExceeded):
		return resultTimeout
	}
	return resultError
}

// meteredBody is an answer's body: it fails a read past the size limit and
// reports the request's result once, at the end of the body, at a read
// error, or when it is closed before either.
type meteredBody struct {
	rc     io.ReadCloser
	ctx    context.Context
	left   int64 // bytes the answer may still have
	limit  int64
	result string // set for an error status: the result whatever the body does
	done   func(result string)
	once   sync.Once
	// onEOF runs when the whole body was read, its trailers with it.
	onEOF func()
}

func (b *meteredBody) Read(p []byte) (int, error) {
	if b.left < 0 {
		return 0, b.tooLarge()
	}
	if int64(len(p)) > b.left+1 {
		p = p[:b.left+1] // one byte past the limit says the answer goes on
	}
	n, err := b.rc.Read(p)
	b.left -= int64(n)
	if b.left < 0 {
		b.finish(resultTooLarge)
		return n - int(-b.left), b.tooLarge()
	}
	switch {
	case errors.Is(err, io.EOF):
		if b.onEOF != nil && b.result == "" {
			b.onEOF()
		}
		b.finish(resultSuccess)
	case err != nil:
		b.finish(classify(b.ctx, err))
	}
	return n, err
}

func (b *meteredBody) tooLarge() error {
	return fmt.Errorf("%w: more than %d bytes", errTooLarge, b.limit)
}

// Close ends a body read only in part: the reader had what it needed,
// unless the request's deadline is what stopped it.
func (b *meteredBody) Close() error {
	result := resultSuccess
	if errors.Is(b.ctx.Err(), context.DeadlineExceeded) {
		result = resultTimeout
	}
	b.finish(result)
	return b.rc.Close()
}

func (b *meteredBody) finish(result string) {
	b.once.Do(func() {
		if b.result != "" {
			result = b.result
		}
		b.done(result)
	})
}
