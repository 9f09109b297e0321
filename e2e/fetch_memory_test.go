package e2e

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync/atomic"
	"testing"
	"time"
)

// hostileMaxBytes is --source.max-bytes in TestHostileBodyMemory: large
// enough that the body dominates the process's memory, small enough for CI.
const hostileMaxBytes = 64 << 20

// Bounds of TestHostileBodyMemory, over the process's resident memory once
// it has polled a good body.
//
// peakSlack: a rejected body is read into pieces that together never hold
// more than --source.max-bytes, so the peak is the limit plus what is not
// the body: the transport's and the inflater's buffers (under 1 MiB), the
// runtime's span and GC metadata for the pieces (about 1%), and pages the
// runtime has not yet returned from the previous rejection's pieces (it
// returns them right after each rejection, but RSS lags a little). A quarter
// of the limit covers these with room; the old reading loop, whose buffer
// doubled past the limit, peaked at about four times the limit above the
// baseline.
//
// settleSlack: after a rejection the pieces are dropped and the memory
// returned to the operating system, so the process falls back to about
// where it was before (measured: 1.5 MiB above); an eighth of the limit
// covers the pages the runtime keeps for the good polls that follow. The
// old reading loop kept its doubled buffer, and the process stayed about
// four times the limit above where it was.
const (
	peakSlack   = hostileMaxBytes / 4
	settleSlack = hostileMaxBytes / 8
)

// TestHostileBodyMemory runs the real aggregator (built without the race
// detector, whose shadow memory would multiply the figures) against a
// source that serves a gzip bomb and then an endless body, each several
// times, with --source.max-bytes=64MiB. Every such poll must be rejected as
// too_large; the process's peak resident memory (VmHWM) must stay within
// the limit plus peakSlack of its resident memory before; and once the
// source serves good bodies again, its resident memory (VmRSS) must fall
// back within settleSlack of where it was.
func TestHostileBodyMemory(t *testing.T) {
	src := newHostileSource(t, 1<<30) // a gzip bomb of 1 GiB inflated
	agg := StartAggregatorBinary(t, PlainAggregator(t), "--source.url="+src.URL+"/counters",
		"--source.interval=250ms", "--source.timeout=10s", fmt.Sprintf("--source.max-bytes=%dMiB", hostileMaxBytes>>20))
	WaitReady(t, agg, 20*time.Second)
	base := readMemory(t, agg)
	t.Logf("after a good poll: VmRSS %s, VmHWM %s", mib(base.rss), mib(base.hwm))

	for _, mode := range []string{"gzip-bomb", "endless"} {
		resetPeak(t, agg)
		cursor := agg.Logs.Cursor()
		src.mode.Store(mode)
		_, cursor = agg.Logs.WaitFor(t, cursor, 3, 60*time.Second, "3 too_large rejections of the "+mode,
			MsgIs("Poll rejected", "reason", "too_large"))
		src.mode.Store("good")
		agg.Logs.WaitFor(t, cursor, 1, 20*time.Second, "a good poll after the "+mode, MsgIs("Ingestion cycle"))

		peak := readMemory(t, agg).hwm
		t.Logf("%s: peak VmHWM %s, %s over the baseline VmRSS (bound %s over it)",
			mode, mib(peak), mib(peak-base.rss), mib(hostileMaxBytes+peakSlack))
		if peak > base.rss+hostileMaxBytes+peakSlack {
			t.Errorf("%s: peak resident memory %s, more than the limit %s plus %s over the %s before",
				mode, mib(peak), mib(hostileMaxBytes), mib(peakSlack), mib(base.rss))
		}
		Eventually(t, 20*time.Second, 50*time.Millisecond, func() error {
			if rss := readMemory(t, agg).rss; rss > base.rss+settleSlack {
				return fmt.Errorf("after the %s: VmRSS %s, want at most %s (%s before + %s)",
					mode, mib(rss), mib(base.rss+settleSlack), mib(base.rss), mib(settleSlack))
			}
			return nil
		})
		t.Logf("%s: VmRSS back to %s", mode, mib(readMemory(t, agg).rss))
	}
}

// hostileSource serves, on loopback, a small valid body ("good"), a gzip
// bomb ("gzip-bomb") or a body that never ends ("endless"), as mode says.
type hostileSource struct {
	*httptest.Server
	mode atomic.Value
}

func newHostileSource(t *testing.T, bombBytes int) *hostileSource {
	t.Helper()
	bomb := gzipBomb(t, bombBytes)
	block := bytes.Repeat([]byte("SW-0001,1\n"), 6554) // 64 KiB of rows
	s := &hostileSource{}
	s.mode.Store("good")
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch s.mode.Load() {
		case "gzip-bomb":
			w.Header().Set("Content-Encoding", "gzip")
			w.Header().Set("Content-Length", strconv.Itoa(len(bomb)))
			_, _ = w.Write(bomb)
		case "endless":
			_, _ = w.Write([]byte("switch_id,Rx_Bytes\n"))
			for r.Context().Err() == nil {
				if _, err := w.Write(block); err != nil {
					return
				}
			}
		default:
			_, _ = w.Write([]byte("switch_id,Rx_Bytes\nSW-0001,1\n"))
		}
	}))
	t.Cleanup(s.Close)
	return s
}

// gzipBomb is a CSV header followed by size bytes of zeros, gzipped: one
// gzip member of 1 MiB of zeros repeated (readers take concatenated members
// as one stream), about a thousandth of size on the wire.
func gzipBomb(t *testing.T, size int) []byte {
	t.Helper()
	member := func(data []byte) []byte {
		var b bytes.Buffer
		zw, err := gzip.NewWriterLevel(&b, gzip.BestCompression)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := zw.Write(data); err != nil {
			t.Fatal(err)
		}
		if err := zw.Close(); err != nil {
			t.Fatal(err)
		}
		return b.Bytes()
	}
	zeros := member(bytes.Repeat([]byte("0"), 1<<20))
	bomb := member([]byte("switch_id,Rx_Bytes\n"))
	for range size >> 20 {
		bomb = append(bomb, zeros...)
	}
	return bomb
}
