package ingest

import (
	"bufio"
	"compress/flate"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"runtime/debug"
	"strings"
)

// firstPiece is the most a fetch allocates before any byte of a body beyond
// the kept buffer has arrived.
const firstPiece = 64 << 10

// maxRedirects bounds the redirects of one fetch: a loop ends the poll with
// reason connection.
const maxRedirects = 5

// Fetcher reads a source's CSV body over HTTP. Its memory follows the bytes
// that really arrive and never passes MaxBytes, whatever the source says or
// sends: a gzip bomb, an endless body or a Content-Length that lies costs at
// most MaxBytes, and is given back at once. The body of the last accepted
// fetch stays in a buffer that the next fetch reuses, so a steady poll loop
// does not allocate a new body each cycle.
type Fetcher struct {
	URL      string
	MaxBytes int64 // counted after decompression
	Client   *http.Client

	// buf holds the last accepted body; cap(buf) <= MaxBytes.
	buf []byte
	// The gzip reader and its input buffer are reused: the inflater's
	// window and tables are tens of KiB.
	gzip  *gzip.Reader
	input *bufio.Reader
	probe [1]byte
}

// errTooLarge is a body over MaxBytes.
var errTooLarge = errors.New("body too large")

// Fetch gets the body. The returned slice is valid until the next Fetch. ctx
// bounds the whole exchange, body included, so a slow drip ends at the
// source timeout.
func (f *Fetcher) Fetch(ctx context.Context) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, f.URL, nil)
	if err != nil {
		return nil, errorf(ReasonConnection, "request: %w", err)
	}
	req.Header.Set("Accept", "text/csv")
	// Asked for, and inflated, here rather than by the transport: the
	// source's client (prometheus/common/config) disables the transport's
	// transparent gzip, as Prometheus inflates scrapes itself.
	req.Header.Set("Accept-Encoding", "gzip")
	resp, err := f.Client.Do(req)
	if err != nil {
		return nil, &Error{Reason: transportReason(ctx, err), Err: err}
	}
	defer resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4096)) // lets the connection be reused
		return nil, errorf(ReasonHTTPStatus, "HTTP status %s", resp.Status)
	}
	body, sizeHint, err := f.decoded(resp)
	if err != nil {
		return nil, bodyError(ctx, err, 0)
	}
	data, n, err := f.read(body, sizeHint)
	if errors.Is(err, errTooLarge) {
		// The pieces read so far (up to MaxBytes) are garbage now. Left to
		// the runtime, they would stay resident for minutes: the heap only
		// returns idle memory slowly. A too_large body is rare, so forcing
		// a collection and giving the memory back at once is cheap, and it
		// keeps a hostile source from holding MaxBytes of the host's
		// memory between polls.
		debug.FreeOSMemory()
		return nil, errorf(ReasonTooLarge, "body over %d bytes", f.MaxBytes)
	}
	if err != nil {
		return nil, bodyError(ctx, err, n)
	}
	return data, nil
}

// bodyError gives an error met while reading a body after n bytes its
// reason.
func bodyError(ctx context.Context, err error, n int64) error {
	var corrupt flate.CorruptInputError
	var rejected *Error
	switch {
	case errors.As(err, &rejected):
		return err
	case errors.Is(err, io.ErrUnexpectedEOF):
		return errorf(ReasonTruncated, "body cut short after %d bytes: %w", n, err)
	case errors.Is(err, gzip.ErrHeader), errors.Is(err, gzip.ErrChecksum), errors.As(err, &corrupt):
		return errorf(ReasonParse, "body is not valid gzip: %w", err)
	}
	return &Error{Reason: transportReason(ctx, err), Err: fmt.Errorf("reading body: %w", err)}
}

// decoded returns the body to read, inflated if the source gzipped it, and
// the size it announced, or -1 when it announced none (or only the
// compressed size).
func (f *Fetcher) decoded(resp *http.Response) (io.Reader, int64, error) {
	switch enc := strings.ToLower(resp.Header.Get("Content-Encoding")); enc {
	case "", "identity":
		if resp.ContentLength > f.MaxBytes {
			// The transport never reads past Content-Length, so this
			// body can only be too large or cut short.
			return nil, 0, errorf(ReasonTooLarge, "Content-Length %d is over %d bytes", resp.ContentLength, f.MaxBytes)
		}
		return resp.Body, resp.ContentLength, nil
	case "gzip", "x-gzip":
		if f.input == nil {
			f.input = bufio.NewReader(resp.Body)
		} else {
			f.input.Reset(resp.Body)
		}
		var err error
		if f.gzip == nil {
			f.gzip, err = gzip.NewReader(f.input)
		} else {
			err = f.gzip.Reset(f.input)
		}
		if errors.Is(err, io.EOF) {
			return strings.NewReader(""), 0, nil // an empty body: the parser says so
		}
		return f.gzip, -1, err
	default:
		return nil, 0, errorf(ReasonParse, "Content-Encoding %q not supported (only gzip)", enc)
	}
}

// read reads r to its end, first into the kept buffer and, once that is
// full, into further pieces. Each new piece is at most as large as what has
// arrived so far (and no larger than the rest that sizeHint announces), so
// memory grows only with bytes that really came, and the pieces together
// never hold more than MaxBytes: the byte that tells a body is over the
// limit is read into a probe, not a piece. It returns the body and how many
// bytes came, also when it fails.
func (f *Fetcher) read(r io.Reader, sizeHint int64) ([]byte, int64, error) {
	cur := f.buf[:0]
	var full [][]byte // the pieces filled before cur
	var total int64
	for {
		if len(cur) == cap(cur) {
			n, err := io.ReadFull(r, f.probe[:])
			if n == 0 {
				if err == io.EOF {
					break
				}
				return nil, total, err
			}
			if total >= f.MaxBytes {
				return nil, total, errTooLarge
			}
			full = append(full, cur)
			cur = make([]byte, 1, f.pieceSize(total, sizeHint))
			cur[0] = f.probe[0]
			total++
			continue
		}
		n, err := r.Read(cur[len(cur):cap(cur)])
		cur = cur[:len(cur)+n]
		total += int64(n)
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, total, err
		}
	}
	return f.keep(full, cur, total), total, nil
}

// pieceSize is the capacity of the piece that starts after total bytes.
func (f *Fetcher) pieceSize(total, sizeHint int64) int {
	size := max(total, firstPiece)
	if sizeHint > total {
		size = min(size, sizeHint-total)
	}
	return int(min(size, f.MaxBytes-total))
}

// keep makes the body one slice, kept for the next fetch, and returns it.
// last is the piece read last; full are the pieces before it.
func (f *Fetcher) keep(full [][]byte, last []byte, total int64) []byte {
	if int64(len(last)) == total && int64(cap(last)) <= 4*total+1<<20 {
		f.buf = last // the whole body is in one piece
		return f.buf
	}
	// Several pieces, or one far larger than the body (one huge answer
	// should not pin its buffer forever): one buffer of the body's size,
	// with room for a body that grows a little.
	joined := make([]byte, 0, min(total+total/8, f.MaxBytes))
	for _, p := range full {
		joined = append(joined, p...)
	}
	f.buf = append(joined, last...)
	return f.buf
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

// RedirectPolicy is an http.Client's CheckRedirect for a source. It follows
// at most 5 redirects, each to the scheme, host and port of the fetch's
// first URL (the source's) or to a host:port in allowedHosts, and refuses
// any other: a source that could send the poller anywhere could make it
// fetch what only the aggregator's host reaches, such as a cloud metadata
// service on a link-local address or an admin port on loopback.
func RedirectPolicy(allowedHosts []string) func(req *http.Request, via []*http.Request) error {
	allowed := make(map[string]bool, len(allowedHosts))
	for _, h := range allowedHosts {
		if host, port, err := net.SplitHostPort(h); err == nil {
			allowed[net.JoinHostPort(strings.ToLower(host), port)] = true
		}
	}
	return func(req *http.Request, via []*http.Request) error {
		if len(via) >= maxRedirects {
			return fmt.Errorf("stopped after %d redirects", len(via))
		}
		source, target := via[0].URL, req.URL
		if strings.EqualFold(source.Scheme, target.Scheme) && hostPort(source) == hostPort(target) {
			return nil
		}
		if allowed[hostPort(target)] {
			return nil
		}
		return fmt.Errorf("redirect to %s refused: not the source's scheme, host and port, and not in its redirect_hosts", hostPort(target))
	}
}

// hostPort is a URL's host, in lower case, and port, the scheme's default
// when the URL gives none.
func hostPort(u *url.URL) string {
	port := u.Port()
	if port == "" {
		port = "80"
		if strings.EqualFold(u.Scheme, "https") {
			port = "443"
		}
	}
	return net.JoinHostPort(strings.ToLower(u.Hostname()), port)
}
