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
	var good bytes.Buffer
	zw = gzip.NewWriter(&good)
	io.WriteString(zw, "switch_id,Rx_Bytes\nSW-01,7\n")
	zw.Close()
	mux.HandleFunc("/gzip-cut", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Encoding", "gzip")
		w.Write(good.Bytes()[:good.Len()-10]) // the stream ends before its checksum
	})
	mux.HandleFunc("/gzip-corrupt", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Encoding", "gzip")
		corrupt := bytes.Clone(good.Bytes())
		corrupt[len(corrupt)-5] ^= 0xff // the length in the trailer
		w.Write(corrupt)
	})
	mux.HandleFunc("/gzip-not", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Encoding", "gzip")
		io.WriteString(w, "switch_id,Rx_Bytes\nSW-01,7\n")
	})
	mux.HandleFunc("/brotli", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Encoding", "br")
		io.WriteString(w, "switch_id,Rx_Bytes\nSW-01,7\n")
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
		{"gzip cut short", plain.URL + "/gzip-cut", ReasonTruncated},
		{"gzip with a wrong trailer", plain.URL + "/gzip-corrupt", ReasonParse},
		{"not gzip, said to be", plain.URL + "/gzip-not", ReasonParse},
		{"unsupported Content-Encoding", plain.URL + "/brotli", ReasonParse},
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

// TestRedirectPolicy: a redirect keeps to the source's scheme, host and
// port (default ports filled in, host names compared without case) or to a
// listed host:port, and a chain stops after 5 redirects.
func TestRedirectPolicy(t *testing.T) {
	tests := []struct {
		source, target string
		allowed        []string
		hops           int
		refused        string // what the error names; empty: followed
	}{
		{"http://127.0.0.1:9001/counters", "http://127.0.0.1:9001/other", nil, 1, ""},
		{"http://UFM.example/csv", "http://ufm.example:80/csv", nil, 1, ""},
		{"https://ufm.example/csv", "https://ufm.example:443/csv", nil, 1, ""},
		{"http://127.0.0.1:9001/counters", "http://localhost:9001/counters", nil, 1, "localhost:9001"},
		{"http://127.0.0.1:9001/counters", "http://127.0.0.1:9002/counters", nil, 1, "127.0.0.1:9002"},
		{"http://ufm.example/csv", "https://ufm.example/csv", nil, 1, "ufm.example:443"},
		{"http://ufm.example/csv", "http://169.254.169.254/latest/meta-data/", nil, 1, "169.254.169.254:80"},
		{"http://127.0.0.1:9001/counters", "http://localhost:9001/counters", []string{"LOCALHOST:9001"}, 1, ""},
		{"http://ufm.example/csv", "http://mirror.example/csv", []string{"mirror.example:80"}, 1, ""},
		{"http://ufm.example/csv", "http://mirror.example:8080/csv", []string{"mirror.example:80"}, 1, "mirror.example:8080"},
		{"http://[::1]:9001/csv", "http://[::1]:9001/other", nil, 1, ""},
		{"http://127.0.0.1:9001/counters", "http://127.0.0.1:9001/other", nil, 5, "5 redirects"},
	}
	for _, tc := range tests {
		t.Run(tc.source+" to "+tc.target, func(t *testing.T) {
			via := make([]*http.Request, tc.hops)
			for i := range via {
				via[i] = httptest.NewRequest(http.MethodGet, tc.source, nil)
			}
			err := RedirectPolicy(tc.allowed)(httptest.NewRequest(http.MethodGet, tc.target, nil), via)
			switch {
			case tc.refused == "" && err != nil:
				t.Errorf("refused: %v", err)
			case tc.refused != "" && (err == nil || !strings.Contains(err.Error(), tc.refused)):
				t.Errorf("error %v, want a refusal naming %s", err, tc.refused)
			}
		})
	}
}
