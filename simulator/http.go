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
	// /counters or /csv/metrics request, useful when the mode is FLAKY.
	// TIMEOUT never answers, so it never appears there.
	ModeHeader = "X-Simulator-Mode"

	// maxHold bounds how long TIMEOUT holds a request whose client never
	// gives up, so that nothing leaks forever.
	maxHold = 10 * time.Minute
)

// Handler returns the simulator's HTTP API:
//
//	GET  /counters       the current snapshot as CSV (Header, or PortHeader with Config.Ports), in the current mode
//	GET  /csv/metrics    the same fabric per port in UFM Telemetry's layout (UFMHeader), in the current mode
//	POST /admin/mode     set the global mode with ?mode=NAME (for testing only)
//	GET  /-/healthy      liveness
//	GET  /               a short text page describing the above
//
// The data endpoints take ?mode=NAME, which overrides the mode for one
// request, and UFM's ?num_shards=N&shard=i (with an optional
// sharding_field=port_guid), which serves only the switches whose port_guid
// hash modulo N is i, each with all its ports; the fault, if any, applies to
// the shard. Bad parameters get 400. Wrong methods get 405 and unknown paths
// 404.
func (s *Simulator) Handler() http.Handler {
	r := mux.NewRouter()
	r.Handle("/counters", s.dataHandler("counters", func(sn *snapshot) *table { return sn.counters })).
		Methods(http.MethodGet, http.MethodHead)
	r.Handle("/csv/metrics", s.dataHandler("UFM metrics", (*snapshot).ufmTable)).
		Methods(http.MethodGet, http.MethodHead)
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

// dataHandler serves the table that pick chooses from the current snapshot,
// in the request's or the global mode.
func (s *Simulator) dataHandler(what string, pick func(*snapshot) *table) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		mode := s.Mode()
		if q.Has("mode") {
			m, err := ParseMode(q.Get("mode"))
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			mode = m
		}
		shard, err := parseShard(q)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		rnd := s.requestRand()
		if mode == ModeFlaky {
			mode = pickFlaky(rnd)
		}
		s.logger.Debug("Serving "+what, "mode", mode, "remote", r.RemoteAddr)
		s.serveMode(w, r, mode, rnd, func() *table { return shard.apply(pick(s.snap.Load())) })
	})
}

// requestRand returns a random source for one request. Each request gets its
// own, seeded from Seed and a request counter, so concurrent requests never
// share one and a sequence of requests is reproducible.
func (s *Simulator) requestRand() *rand.Rand {
	return rand.New(rand.NewPCG(uint64(s.cfg.Seed)^0x5851f42d4c957f2d, s.requests.Add(1)))
}

// serveMode answers in mode. data gives the table to serve, loaded only
// once the mode's hold, if any, is over, so that SLOW serves fresh data.
func (s *Simulator) serveMode(w http.ResponseWriter, r *http.Request, mode Mode, rnd *rand.Rand, data func() *table) {
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
	switch mode {
	case ModeError500:
		http.Error(w, "simulated internal server error", http.StatusInternalServerError)
	case ModeCorrupt:
		writeCSV(w, corruptBody(data(), rnd))
	case ModeTruncated:
		writeTruncated(w, truncatedBody(data(), rnd))
	case ModeEmpty:
		writeCSV(w, nil)
	case ModeGarbage:
		writeCSV(w, garbageBody(rnd))
	case ModePartial:
		writeCSV(w, partialBody(data(), rnd))
	case ModeSchema:
		writeCSV(w, schemaBody(data(), rnd))
	default: // ModeOK, ModeSlow
		writeCSV(w, data().body)
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

Switches: %d, ports: %s, interval: %s, incident rate: %g, mode: %s

GET  /counters            current counters as CSV, %s
GET  /csv/metrics         the same fabric per port in UFM Telemetry's CSV layout
POST /admin/mode?mode=X   change the global mode (for testing only)
GET  /-/healthy           liveness

Parameters of /counters and /csv/metrics:
  mode=NAME                       serve this request in mode NAME
  num_shards=N&shard=I            UFM sharding: only the switches whose port_guid hash mod N is I
  sharding_field=port_guid        optional, the only supported field

Modes: %s
`, s.cfg.Switches, portsText(s.cfg.Ports), s.cfg.Interval, s.cfg.IncidentRate, s.Mode(), countersText(s.cfg.Ports),
		strings.Join(ModeNames(), ", "))
}

func portsText(ports int) string {
	if ports == 0 {
		return "as drawn per switch (32, 40 or 64)"
	}
	return strconv.Itoa(ports) + " per switch"
}

func countersText(ports int) string {
	if ports == 0 {
		return "one row per switch"
	}
	return "one row per switch port"
}
