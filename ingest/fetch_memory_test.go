package ingest

import (
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strconv"
	"testing"
)

// memLimit is MaxBytes in the memory tests: large beside everything else a
// fetch allocates, so that the body dominates the figures.
const memLimit = 8 << 20

// memoryServer serves the bodies of the memory tests. None of its handlers
// allocates per byte served, so that the process's allocation counters
// show the fetcher's.
func memoryServer(t *testing.T) *httptest.Server {
	t.Helper()
	block := bytes.Repeat([]byte("SW-0001,1\n"), 6554) // 64 KiB of rows
	bomb := gzipMembers(t, 8*memLimit)
	good := append([]byte("switch_id,Rx_Bytes\n"), bytes.Repeat([]byte("SW-0001,1\n"), memLimit/40)...) // a quarter of the limit
	var goodGzip bytes.Buffer
	zw := gzip.NewWriter(&goodGzip)
	zw.Write(good)
	zw.Close()
	mux := http.NewServeMux()
	mux.HandleFunc("/good", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", strconv.Itoa(len(good)))
		w.Write(good)
	})
	mux.HandleFunc("/good-chunked", func(w http.ResponseWriter, r *http.Request) {
		for rest := good; len(rest) > 0; rest = rest[min(len(rest), len(block)):] {
			w.Write(rest[:min(len(rest), len(block))])
		}
	})
	mux.HandleFunc("/good-gzip", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Encoding", "gzip")
		w.Write(goodGzip.Bytes())
	})
	mux.HandleFunc("/small", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "switch_id,Rx_Bytes\nSW-01,1\n")
	})
	mux.HandleFunc("/gzip-bomb", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Encoding", "gzip")
		w.Write(bomb)
	})
	mux.HandleFunc("/endless", func(w http.ResponseWriter, r *http.Request) {
		for r.Context().Err() == nil {
			if _, err := w.Write(block); err != nil {
				return
			}
		}
	})
	for _, announced := range []int{memLimit, 1 << 40} {
		// A Content-Length that lies: a few bytes, then the connection
		// closes.
		mux.HandleFunc(fmt.Sprintf("/lying-%d", announced), func(w http.ResponseWriter, r *http.Request) {
			conn, buf, err := http.NewResponseController(w).Hijack()
			if err != nil {
				t.Error(err)
				return
			}
			defer conn.Close()
			fmt.Fprintf(buf, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\nswitch_id,Rx_Bytes\nSW-01,1\n", announced)
			buf.Flush()
		})
	}
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

// gzipMembers is a CSV header and size bytes of zeros, gzipped as one member
// of 1 MiB of zeros repeated (a gzip reader takes them as one stream).
func gzipMembers(t *testing.T, size int) []byte {
	t.Helper()
	var head, zeros bytes.Buffer
	for _, m := range []struct {
		into *bytes.Buffer
		data []byte
	}{{&head, []byte("switch_id,Rx_Bytes\n")}, {&zeros, make([]byte, 1<<20)}} {
		zw, err := gzip.NewWriterLevel(m.into, gzip.BestCompression)
		if err != nil {
			t.Fatal(err)
		}
		zw.Write(m.data)
		zw.Close()
	}
	return append(head.Bytes(), bytes.Repeat(zeros.Bytes(), size>>20)...)
}

func memFetcher(srv *httptest.Server, path string) *Fetcher {
	return &Fetcher{URL: srv.URL + path, MaxBytes: memLimit, Client: srv.Client()}
}

// allocated is how many bytes the process allocated while f ran.
func allocated(f func()) int64 {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return int64(after.TotalAlloc - before.TotalAlloc)
}

func fetchReason(t *testing.T, f *Fetcher) Reason {
	t.Helper()
	_, err := f.Fetch(context.Background())
	if err == nil {
		return ""
	}
	return ReasonOf(err)
}

// TestFetchMemoryOfHostileBodies: a body over the limit, inflated from a
// gzip bomb or endless, is rejected after allocating no more than the
// limit. Allocation counts every byte the process allocated during the
// fetch, so it bounds the peak too. (The reading loop that doubled its
// buffer allocated about four times the limit.)
func TestFetchMemoryOfHostileBodies(t *testing.T) {
	srv := memoryServer(t)
	for _, path := range []string{"/gzip-bomb", "/endless"} {
		t.Run(path, func(t *testing.T) {
			f := memFetcher(srv, path)
			var reason Reason
			n := allocated(func() { reason = fetchReason(t, f) })
			if reason != ReasonTooLarge {
				t.Fatalf("reason %q, want too_large", reason)
			}
			// Slack: the request, the transport, the inflater (about 50 KiB).
			if bound := int64(memLimit + 1<<20); n > bound {
				t.Errorf("one fetch allocated %d bytes (%.2f× the limit), want at most %d", n, float64(n)/memLimit, bound)
			}
			t.Logf("%s: %.2f MiB allocated for a limit of %d MiB", path, float64(n)/(1<<20), memLimit>>20)
		})
	}
}

// TestFetchLyingContentLength: a Content-Length is a hint, not a promise.
// One at the limit over a body of a few bytes costs a small first piece,
// not the limit; one over the limit is rejected before anything is read.
func TestFetchLyingContentLength(t *testing.T) {
	srv := memoryServer(t)
	for _, tc := range []struct {
		announced int
		reason    Reason
	}{{memLimit, ReasonTruncated}, {1 << 40, ReasonTooLarge}} {
		t.Run(strconv.Itoa(tc.announced), func(t *testing.T) {
			f := memFetcher(srv, fmt.Sprintf("/lying-%d", tc.announced))
			var reason Reason
			n := allocated(func() { reason = fetchReason(t, f) })
			if reason != tc.reason {
				t.Errorf("reason %q, want %q", reason, tc.reason)
			}
			if n > memLimit/8 {
				t.Errorf("a %d-byte body announced as %d bytes allocated %d bytes", 27, tc.announced, n)
			}
		})
	}
}

// TestFetchReusesBuffer: polls of a steady body read into the buffer kept
// from the first one, with or without Content-Length, gzipped or not:
// the same memory comes back, and nothing near the body's size is
// allocated.
func TestFetchReusesBuffer(t *testing.T) {
	srv := memoryServer(t)
	for _, path := range []string{"/good", "/good-chunked", "/good-gzip"} {
		t.Run(path, func(t *testing.T) {
			f := memFetcher(srv, path)
			first, err := f.Fetch(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			size := len(first)
			for range 3 {
				var body []byte
				n := allocated(func() { body, err = f.Fetch(context.Background()) })
				if err != nil {
					t.Fatal(err)
				}
				if len(body) != size || &body[0] != &first[0] {
					t.Fatalf("poll returned %d bytes in new memory; want the %d bytes in the kept buffer", len(body), size)
				}
				if n > int64(size)/16 {
					t.Errorf("a steady poll of %d bytes allocated %d bytes", size, n)
				}
			}
		})
	}
}

// TestFetchTooLargeGivesMemoryBack: after a too_large rejection, the
// fetcher keeps no more than it kept before, and the process holds no more
// heap memory than before: the pieces are collected and returned to the
// operating system at once, rather than left resident for the runtime to
// return over minutes.
func TestFetchTooLargeGivesMemoryBack(t *testing.T) {
	srv := memoryServer(t)
	f := memFetcher(srv, "/small")
	if reason := fetchReason(t, f); reason != "" {
		t.Fatalf("small body rejected: %s", reason)
	}
	kept := cap(f.buf)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	f.URL = srv.URL + "/endless"
	if reason := fetchReason(t, f); reason != ReasonTooLarge {
		t.Fatalf("reason %q, want too_large", reason)
	}
	runtime.ReadMemStats(&after)
	if cap(f.buf) > kept {
		t.Errorf("the fetcher keeps %d bytes after the rejection, %d before", cap(f.buf), kept)
	}
	// Retained: heap memory the process holds, in use or not yet returned.
	retained := func(m *runtime.MemStats) int64 { return int64(m.HeapSys - m.HeapReleased) }
	grew := retained(&after) - retained(&before)
	if grew > memLimit/4 {
		t.Errorf("the process retains %.1f MiB more heap after the rejection (limit %d MiB)",
			float64(grew)/(1<<20), memLimit>>20)
	}
	t.Logf("heap retained after the rejection: %+.1f MiB", float64(grew)/(1<<20))
}
