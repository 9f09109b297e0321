// Package benchsink is the http.ResponseWriter that the exporter
// benchmarks and tools/benchtable serve /metrics into: it copies what is
// written into a scratch buffer, as a socket write copies into the kernel,
// so that every method measured pays for moving its bytes.
package benchsink

import "net/http"

// Writer discards what is written after copying it. The zero value works;
// Header returns nil until New is used.
type Writer struct {
	header  http.Header
	scratch [32 << 10]byte
	// N counts the bytes written; the caller may reset it.
	N int64
}

// New returns a Writer with an empty header map, for handlers that set
// headers.
func New() *Writer { return &Writer{header: http.Header{}} }

// Header returns the header map.
func (w *Writer) Header() http.Header { return w.header }

// WriteHeader does nothing: the status is not measured.
func (w *Writer) WriteHeader(int) {}

// Write copies p in chunks of the scratch buffer's size.
func (w *Writer) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		p = p[copy(w.scratch[:], p):]
	}
	w.N += int64(n)
	return n, nil
}
