package ingest

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/fabrictelemetry/aggregator/snapshot"
)

// TestFetchHostileSources checks that each way a source can misbehave on
// the wire ends the poll with its reason, within the poll's bounds.
func TestFetchHostileSources(t *testing.T) {
	done := make(chan struct{})
	t.Cleanup(func() { close(done) })
	mux := http.NewServeMux()
	rows := bytes.Repeat([]byte("SW-01,1\n"), 8192)
	mux.HandleFunc("/endless", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "switch_id,Rx_Bytes\n")
		for {
			if _, err := w.Write(rows); err != nil {
				return
			}
		}
	})
	mux.HandleFunc("/drip", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "switch_id,Rx_Bytes\n")
		for {
			w.(http.Flusher).Flush()
			select {
			case <-r.Context().Done():
				return
			case <-done:
				return
			case <-time.After(20 * time.Millisecond):
				io.WriteString(w, "S")
			}
		}
	})
	var bomb bytes.Buffer
	zw := gzip.NewWriter(&bomb)
	io.WriteString(zw, "switch_id,Rx_Bytes\n")
	zw.Write(bytes.Repeat([]byte("0"), 8<<20)) // 8 MiB inflated, a few KiB on the wire
	zw.Close()
	mux.HandleFunc("/gzip-bomb", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Encoding", "gzip")
		w.Write(bomb.Bytes())
	})
	mux.HandleFunc("/gzip-ok", func(w http.ResponseWriter, r *http.Request) {
		zw := gzip.NewWriter(w)
		w.Header().Set("Content-Encoding", "gzip")
		io.WriteString(zw, "switch_id,Rx_Bytes\nSW-01,7\n")
		zw.Close()
	})
	mux.HandleFunc("/loop", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/loop", http.StatusFound)
	})
	mux.HandleFunc("/wide", func(w http.ResponseWriter, r *http.Request) {
		var b strings.Builder
		b.WriteString("switch_id")
		for i := range 10000 {
			fmt.Fprintf(&b, ",Column_%d", i)
		}
		b.WriteString("\nSW-01" + strings.Repeat(",1", 10000) + "\n")
		io.WriteString(w, b.String())
	})
	plain := httptest.NewServer(mux)
	t.Cleanup(plain.Close)
	tlsSrv := httptest.NewTLSServer(mux) // a certificate no client trusts
	t.Cleanup(tlsSrv.Close)

	tests := []struct {
		name, url string
		reason    Reason // empty: accepted
	}{
		{"endless body", plain.URL + "/endless", ReasonTooLarge},
		{"slow drip", plain.URL + "/drip", ReasonTimeout},
		{"gzip inflating past the limit", plain.URL + "/gzip-bomb", ReasonTooLarge},
		{"gzip within the limit", plain.URL + "/gzip-ok", ""},
		{"redirect loop", plain.URL + "/loop", ReasonConnection},
		{"untrusted TLS certificate", tlsSrv.URL + "/gzip-ok", ReasonConnection},
		{"10,000 columns", plain.URL + "/wide", ReasonLimit},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var got *snapshot.Snapshot
			p := newPoller(tc.url, 1, func(s *snapshot.Snapshot) { got = s })
			p.Fetcher.MaxBytes = 1 << 20
			p.Fetcher.Client = newTestClient()
			p.Timeout = 500 * time.Millisecond
			c := p.Poll(t.Context())
			if tc.reason == "" {
				if c.Err != nil || got == nil {
					t.Fatalf("rejected: %v", c.Err)
				}
				return
			}
			if ReasonOf(c.Err) != tc.reason || got != nil {
				t.Errorf("error %v, want reason %s and nothing published", c.Err, tc.reason)
			}
		})
	}
}

// newTestClient follows redirects like the aggregator's client does.
func newTestClient() *http.Client {
	return &http.Client{CheckRedirect: RedirectPolicy(nil)}
}
