package ingest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
)

// Fetcher reads a source's CSV body over HTTP into a buffer it reuses, so a
// steady poll loop does not allocate a new body each cycle.
type Fetcher struct {
	URL      string
	MaxBytes int64 // counted after decompression
	Client   *http.Client
	buf      bytes.Buffer
}

// Fetch gets the body. The returned slice is valid until the next Fetch. ctx
// bounds the whole exchange, body included, so a slow drip ends at the
// source timeout.
func (f *Fetcher) Fetch(ctx context.Context) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, f.URL, nil)
	if err != nil {
		return nil, errorf(ReasonConnection, "request: %w", err)
	}
	req.Header.Set("Accept", "text/csv")
	resp, err := f.Client.Do(req)
	if err != nil {
		return nil, &Error{Reason: transportReason(ctx, err), Err: err}
	}
	defer resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4096)) // lets the connection be reused
		return nil, errorf(ReasonHTTPStatus, "HTTP status %s", resp.Status)
	}
	f.buf.Reset()
	if resp.ContentLength > 0 && resp.ContentLength <= f.MaxBytes {
		f.buf.Grow(int(resp.ContentLength))
	}
	n, err := f.buf.ReadFrom(io.LimitReader(resp.Body, f.MaxBytes+1))
	switch {
	case n > f.MaxBytes:
		return nil, errorf(ReasonTooLarge, "body over %d bytes", f.MaxBytes)
	case errors.Is(err, io.ErrUnexpectedEOF):
		return nil, errorf(ReasonTruncated, "body ended after %d of %d bytes", n, resp.ContentLength)
	case err != nil:
		return nil, &Error{Reason: transportReason(ctx, err), Err: fmt.Errorf("reading body: %w", err)}
	}
	if f.buf.Cap() > 4*f.buf.Len()+1<<20 {
		// One huge answer should not pin its buffer forever.
		defer func() { f.buf = bytes.Buffer{} }()
		return bytes.Clone(f.buf.Bytes()), nil
	}
	return f.buf.Bytes(), nil
}

func transportReason(ctx context.Context, err error) Reason {
	var ne net.Error
	switch {
	case errors.Is(err, context.DeadlineExceeded), errors.Is(ctx.Err(), context.DeadlineExceeded),
		errors.Is(err, os.ErrDeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return ReasonTimeout
	}
	return ReasonConnection
}
