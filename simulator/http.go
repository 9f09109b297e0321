package simulator

import (
	"fmt"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gorilla/mux"
)

const (
	contentTypeCSV  = "text/csv; charset=utf-8"
	contentTypeText = "text/plain; charset=utf-8"

	// ModeHeader names the response header that tells which mode answered a
	// /counters request, useful when the mode is FLAKY. TIMEOUT never
	// answers, so it never appears there.
	ModeHeader = "X-Simulator-Mode"

	// maxHold bounds how long TIMEOUT holds a request whose client never
	// gives up, so that nothing leaks forever.
	maxHold = 10 * time.Minute
)

// Handler returns the simulator's HTTP API:
//
//	GET  /counters       the current snapshot as CSV, in the current mode; ?mode=NAME overrides the mode for one request
//	POST /admin/mode     set the global mode with ?mode=NAME (for testing only)
//	GET  /-/healthy      liveness
//	GET  /               a short text page describing the above
//
// Wrong methods get 405 and unknown paths 404.
func (s *Simulator) Handler() http.Handler {
	r := mux.NewRouter()
	r.HandleFunc("/counters", s.handleCounters).Methods(http.MethodGet, http.MethodHead)
	r.HandleFunc("/admin/mode", s.handleAdminMode).Methods(http.MethodPost)
	r.HandleFunc("/-/healthy", handleHealthy).Methods(http.MethodGet, http.MethodHead)
	r.HandleFunc("/", s.handleIndex).Methods(http.MethodGet, http.MethodHead)
	r.NotFoundHandler = http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "404 page not found", http.StatusNotFound)
	})
	r.MethodNotAllowedHandler = http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "405 method not allowed", http.StatusMethodNotAllowed)
	})
	return r
}

func (s *Simulator) handleCounters(w http.ResponseWriter, r *http.Request) {
	mode := s.Mode()
	if q := r.URL.Query(); q.Has("mode") {
		m, err := ParseMode(q.Get("mode"))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		mode = m
	}
	rnd := s.requestRand()
	if mode == ModeFlaky {
		mode = pickFlaky(rnd)
	}
	s.logger.Debug("Serving counters", "mode", mode, "remote", r.RemoteAddr)
	s.serveMode(w, r, mode, rnd)
}

// requestRand returns a random source for one request. Each request gets its
// own, seeded from Seed and a request counter, so concurrent requests never
// share one and a sequence of requests is reproducible.
func (s *Simulator) requestRand() *rand.Rand {
	return rand.New(rand.NewPCG(uint64(s.cfg.Seed)^0x5851f42d4c957f2d, s.requests.Add(1)))
}

func (s *Simulator) serveMode(w http.ResponseWriter, r *http.Request, mode Mode, rnd *rand.Rand) {
	// A held request that is given up on gets no response at all: aborting
	// drops the connection, where returning would send an empty 200.
	if mode == ModeTimeout {
		s.hold(r, maxHold)
		panic(http.ErrAbortHandler)
	}
	if mode == ModeSlow && !s.hold(r, s.cfg.SlowDelay) {
		panic(http.ErrAbortHandler)
	}

	w.Header().Set(ModeHeader, mode.String())
	snap := s.snap.Load()
	switch mode {
	case ModeError500:
		http.Error(w, "simulated internal server error", http.StatusInternalServerError)
	case ModeCorrupt:
		writeCSV(w, corruptBody(snap, rnd))
	case ModeTruncated:
		writeTruncated(w, truncatedBody(snap, rnd))
	case ModeEmpty:
		writeCSV(w, nil)
	case ModeGarbage:
		writeCSV(w, garbageBody(rnd))
	case ModePartial:
		writeCSV(w, partialBody(snap, rnd))
	case ModeSchema:
		writeCSV(w, schemaBody(snap, rnd))
	default: // ModeOK, ModeSlow
		writeCSV(w, snap.body)
	}
}

// hold waits for d, and reports whether it did: it gives up early when the
// client goes away or the simulator stops running.
func (s *Simulator) hold(r *http.Request, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-r.Context().Done():
	case <-s.stopped:
	}
	return false
}

func writeCSV(w http.ResponseWriter, body []byte) {
	w.Header().Set("Content-Type", contentTypeCSV)
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	_, _ = w.Write(body)
}

// writeTruncated sends body without a Content-Length and flushes it, so the
// response is chunked and the client sees a well-formed HTTP response whose
// CSV simply stops, as when a producer dies mid-write.
func writeTruncated(w http.ResponseWriter, body []byte) {
	w.Header().Set("Content-Type", contentTypeCSV)
	_, _ = w.Write(body)
	_ = http.NewResponseController(w).Flush()
}

func (s *Simulator) handleAdminMode(w http.ResponseWriter, r *http.Request) {
	m, err := ParseMode(r.FormValue("mode"))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	s.SetMode(m)
	w.Header().Set("Content-Type", contentTypeText)
	fmt.Fprintln(w, m)
}

func handleHealthy(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", contentTypeText)
	fmt.Fprintln(w, "Healthy.")
}

func (s *Simulator) handleIndex(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", contentTypeText)
	fmt.Fprintf(w, `Telemetry simulator

Switches: %d, interval: %s, incident rate: %g, mode: %s

GET  /counters            current counters as CSV (?mode=NAME for one request)
POST /admin/mode?mode=X   change the global mode (for testing only)
GET  /-/healthy           liveness

Modes: %s
`, s.cfg.Switches, s.cfg.Interval, s.cfg.IncidentRate, s.Mode(), strings.Join(ModeNames(), ", "))
}
