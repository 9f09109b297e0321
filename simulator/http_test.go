package simulator

import (
	"bytes"
	"context"
	"encoding/csv"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"
)

func newServer(t *testing.T, cfg Config) (*Simulator, *httptest.Server) {
	t.Helper()
	s := newSim(t, cfg)
	srv := httptest.NewServer(s.Handler())
	t.Cleanup(srv.Close)
	return s, srv
}

type response struct {
	status int
	header http.Header
	body   []byte
	// chunked is true when the response had no Content-Length.
	chunked bool
}

func do(t *testing.T, srv *httptest.Server, method, path string) response {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, srv.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading body: %v", method, path, err)
	}
	return response{
		status:  resp.StatusCode,
		header:  resp.Header,
		body:    body,
		chunked: slices.Contains(resp.TransferEncoding, "chunked"),
	}
}

// readLoose parses a body that may have rows of the wrong length.
func readLoose(t *testing.T, body []byte) [][]string {
	t.Helper()
	r := csv.NewReader(bytes.NewReader(body))
	r.FieldsPerRecord = -1
	recs, err := r.ReadAll()
	if err != nil {
		t.Fatalf("body is not CSV: %v\n%s", err, body)
	}
	return recs
}

func isNumber(s string) bool {
	_, err := strconv.ParseFloat(s, 64)
	return err == nil
}

// TestCountersModes checks each fault mode's observable property over HTTP,
// with the mode set globally.
func TestCountersModes(t *testing.T) {
	tests := []struct {
		mode  Mode
		check func(t *testing.T, good []byte, resp response)
	}{
		{ModeOK, func(t *testing.T, good []byte, resp response) {
			wantStatus(t, resp, http.StatusOK)
			if !bytes.Equal(resp.body, good) {
				t.Error("body differs from Body()")
			}
			if resp.header.Get("Content-Length") != strconv.Itoa(len(good)) {
				t.Errorf("Content-Length = %q", resp.header.Get("Content-Length"))
			}
		}},
		{ModeError500, func(t *testing.T, _ []byte, resp response) {
			wantStatus(t, resp, http.StatusInternalServerError)
			if len(resp.body) == 0 {
				t.Error("empty error body")
			}
		}},
		{ModeCorrupt, func(t *testing.T, _ []byte, resp response) {
			wantStatus(t, resp, http.StatusOK)
			recs := readLoose(t, resp.body)
			if !slices.Equal(recs[0], wantHeader) {
				t.Fatalf("header = %v", recs[0])
			}
			wrongCount, nonNumeric := 0, 0
			for _, rec := range recs[1:] {
				if len(rec) != len(wantHeader) {
					wrongCount++
					continue
				}
				if slices.ContainsFunc(rec[1:], func(v string) bool { return !isNumber(v) }) {
					nonNumeric++
				}
			}
			if wrongCount == 0 || nonNumeric == 0 {
				t.Errorf("%d rows with a wrong field count and %d with non-numeric values, want some of each", wrongCount, nonNumeric)
			}
		}},
		{ModeTruncated, func(t *testing.T, good []byte, resp response) {
			wantStatus(t, resp, http.StatusOK)
			if !resp.chunked {
				t.Error("truncated body was sent with a Content-Length")
			}
			if bytes.HasSuffix(resp.body, []byte("\n")) {
				t.Error("truncated body ends with a newline")
			}
			if !bytes.HasPrefix(good, resp.body) || len(resp.body) >= len(good) {
				t.Error("truncated body is not a proper prefix of the good body")
			}
			lines := strings.Split(string(resp.body), "\n")
			if got := len(strings.Split(lines[len(lines)-1], ",")); got >= len(wantHeader) {
				t.Errorf("last line has %d fields, want fewer than %d", got, len(wantHeader))
			}
		}},
		{ModeEmpty, func(t *testing.T, _ []byte, resp response) {
			wantStatus(t, resp, http.StatusOK)
			if len(resp.body) != 0 {
				t.Errorf("body has %d bytes, want none", len(resp.body))
			}
		}},
		{ModeGarbage, func(t *testing.T, _ []byte, resp response) {
			wantStatus(t, resp, http.StatusOK)
			if len(resp.body) == 0 || utf8.Valid(resp.body) || !bytes.ContainsAny(resp.body, "\x00\x1b") {
				t.Error("garbage should be non-empty, invalid UTF-8 and hold control bytes")
			}
			if bytes.Contains(resp.body, []byte("switch_id")) {
				t.Error("garbage contains switch_id")
			}
			if rec, err := csv.NewReader(bytes.NewReader(resp.body)).Read(); err == nil && slices.Contains(rec, "switch_id") {
				t.Errorf("garbage parsed as a header: %q", rec)
			}
		}},
		{ModePartial, func(t *testing.T, good []byte, resp response) {
			wantStatus(t, resp, http.StatusOK)
			all := parseBody(t, good)
			got := parseBody(t, resp.body)
			if !slices.Equal(got[0], wantHeader) {
				t.Fatalf("header = %v", got[0])
			}
			if len(got) <= 1 || len(got) >= len(all) {
				t.Fatalf("%d switches of %d, want a non-empty proper subset", len(got)-1, len(all)-1)
			}
			for _, rec := range got[1:] {
				if !slices.ContainsFunc(all[1:], func(a []string) bool { return slices.Equal(a, rec) }) {
					t.Errorf("row %v is not in the snapshot", rec)
				}
			}
		}},
		{ModeSchema, func(t *testing.T, good []byte, resp response) {
			wantStatus(t, resp, http.StatusOK)
			all := rowsByName(t, parseBody(t, good))
			recs := parseBody(t, resp.body)
			header := recs[0]
			if header[0] == "switch_id" {
				t.Error("switch_id is still first")
			}
			wantCols := append(slices.Clone(wantHeader), "Fan_Speed_RPM")
			if slices.Equal(header, wantCols) || !slices.Equal(slices.Sorted(slices.Values(header)), slices.Sorted(slices.Values(wantCols))) {
				t.Fatalf("header = %v, want a reordering of %v", header, wantCols)
			}
			got := rowsByName(t, recs)
			if len(got) != len(all) {
				t.Fatalf("%d rows, want %d", len(got), len(all))
			}
			for i, r := range got {
				for _, col := range wantHeader {
					if r[col] != all[i][col] {
						t.Errorf("%s %s = %s, want %s", all[i]["switch_id"], col, r[col], all[i][col])
					}
				}
				r.uint(t, "Fan_Speed_RPM")
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.mode.String(), func(t *testing.T) {
			s, srv := newServer(t, Config{Switches: 50, Seed: 5, Mode: tc.mode})
			s.Tick(t0)
			// Several requests, since each draws its own randomness.
			for range 5 {
				resp := do(t, srv, http.MethodGet, "/counters")
				if ct := resp.header.Get("Content-Type"); resp.status == http.StatusOK && ct != "text/csv; charset=utf-8" {
					t.Errorf("Content-Type = %q", ct)
				}
				if got := resp.header.Get(ModeHeader); got != tc.mode.String() {
					t.Errorf("%s = %q, want %s", ModeHeader, got, tc.mode)
				}
				tc.check(t, s.Body(), resp)
			}
		})
	}
}

func wantStatus(t *testing.T, resp response, want int) {
	t.Helper()
	if resp.status != want {
		t.Fatalf("status %d, want %d: %s", resp.status, want, resp.body)
	}
}

// TestFaultsWithFewSwitches checks the edge cases where a snapshot has too
// few rows for the usual fault.
func TestFaultsWithFewSwitches(t *testing.T) {
	for _, mode := range []Mode{ModeCorrupt, ModeTruncated, ModePartial, ModeSchema} {
		t.Run(mode.String(), func(t *testing.T) {
			_, srv := newServer(t, Config{Switches: 1, Mode: mode})
			if resp := do(t, srv, http.MethodGet, "/counters"); resp.status != http.StatusOK {
				t.Fatalf("status %d", resp.status)
			}
		})
	}
}

func TestTimeoutHoldsUntilClientGivesUp(t *testing.T) {
	const wait = 50 * time.Millisecond
	_, srv := newServer(t, Config{Switches: 3, Mode: ModeTimeout})
	ctx, cancel := context.WithTimeout(t.Context(), wait)
	defer cancel()
	start := time.Now()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+"/counters", nil)
	resp, err := srv.Client().Do(req)
	if err == nil {
		resp.Body.Close()
		t.Fatalf("got status %d, want the request to hang", resp.StatusCode)
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("error = %v, want deadline exceeded", err)
	}
	if elapsed := time.Since(start); elapsed < wait {
		t.Errorf("returned after %s, before the client's %s deadline", elapsed, wait)
	}
}

// TestTimeoutReleasedWhenRunStops checks that a held request does not
// outlive the simulator.
func TestTimeoutReleasedWhenRunStops(t *testing.T) {
	s, srv := newServer(t, Config{Switches: 3, Mode: ModeTimeout, Interval: time.Hour})
	ctx, cancel := context.WithCancel(t.Context())
	runDone := make(chan error, 1)
	go func() { runDone <- s.Run(ctx) }()

	reqDone := make(chan error, 1)
	go func() {
		resp, err := srv.Client().Get(srv.URL + "/counters")
		if err == nil {
			resp.Body.Close()
		}
		reqDone <- err
	}()
	waitFor(t, "the request to arrive", func() bool { return s.requests.Load() > 0 })
	cancel()
	select {
	case err := <-reqDone:
		if err == nil {
			t.Error("held request got a response, want the connection dropped")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("held request not released when Run stopped")
	}
	if err := <-runDone; err != nil {
		t.Errorf("Run = %v", err)
	}
}

func TestSlow(t *testing.T) {
	const delay = 50 * time.Millisecond
	s, srv := newServer(t, Config{Switches: 3, Mode: ModeSlow, SlowDelay: delay})
	start := time.Now()
	resp := do(t, srv, http.MethodGet, "/counters")
	if elapsed := time.Since(start); elapsed < delay {
		t.Errorf("answered after %s, want at least %s", elapsed, delay)
	}
	wantStatus(t, resp, http.StatusOK)
	if !bytes.Equal(resp.body, s.Body()) {
		t.Error("slow body differs from Body()")
	}
}

func TestSlowClientGivesUp(t *testing.T) {
	_, srv := newServer(t, Config{Switches: 3, Mode: ModeSlow, SlowDelay: time.Hour})
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+"/counters", nil)
	resp, err := srv.Client().Do(req)
	if err == nil {
		resp.Body.Close()
		t.Fatal("slow request answered before its hour")
	}
	// srv.Close in Cleanup would block if the handler were still waiting.
}

func TestFlakyServesManyModes(t *testing.T) {
	_, srv := newServer(t, Config{Switches: 10, Mode: ModeFlaky, SlowDelay: time.Millisecond})
	seen := map[string]int{}
	for range 300 {
		ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+"/counters", nil)
		resp, err := srv.Client().Do(req)
		if err != nil {
			seen["no answer"]++
			cancel()
			continue
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		cancel()
		seen[resp.Header.Get(ModeHeader)]++
	}
	if seen["OK"] < 50 {
		t.Errorf("OK served %d times of 300, want it the most common", seen["OK"])
	}
	if seen["FLAKY"] > 0 {
		t.Error("FLAKY picked itself")
	}
	if len(seen) < 8 {
		t.Errorf("only %d distinct outcomes: %v", len(seen), seen)
	}
}

func TestPerRequestMode(t *testing.T) {
	tests := []struct {
		name       string
		global     Mode
		query      string
		wantStatus int
		wantMode   string
	}{
		{name: "OK overrides a global fault", global: ModeError500, query: "?mode=OK", wantStatus: 200, wantMode: "OK"},
		{name: "lower case", global: ModeOK, query: "?mode=corrupt", wantStatus: 200, wantMode: "CORRUPT"},
		{name: "fault over global OK", global: ModeOK, query: "?mode=ERROR_500", wantStatus: 500, wantMode: "ERROR_500"},
		{name: "no override", global: ModeEmpty, query: "", wantStatus: 200, wantMode: "EMPTY"},
		{name: "unknown", global: ModeOK, query: "?mode=bogus", wantStatus: 400},
		{name: "empty", global: ModeOK, query: "?mode=", wantStatus: 400},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, srv := newServer(t, Config{Switches: 4, Mode: tc.global})
			resp := do(t, srv, http.MethodGet, "/counters"+tc.query)
			wantStatus(t, resp, tc.wantStatus)
			if tc.wantStatus == http.StatusBadRequest {
				for _, name := range ModeNames() {
					if !bytes.Contains(resp.body, []byte(name)) {
						t.Errorf("400 body %q does not name mode %s", resp.body, name)
					}
				}
				return
			}
			if got := resp.header.Get(ModeHeader); got != tc.wantMode {
				t.Errorf("served %s, want %s", got, tc.wantMode)
			}
			if tc.wantMode == "OK" && !bytes.Equal(resp.body, s.Body()) {
				t.Error("?mode=OK body differs from Body()")
			}
			if s.Mode() != tc.global {
				t.Errorf("a request changed the global mode to %s", s.Mode())
			}
		})
	}
}

func TestAdminMode(t *testing.T) {
	s, srv := newServer(t, Config{Switches: 4})
	post := func(form url.Values, query string) response {
		t.Helper()
		resp, err := srv.Client().PostForm(srv.URL+"/admin/mode"+query, form)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return response{status: resp.StatusCode, header: resp.Header, body: body}
	}

	resp := post(nil, "?mode=error_500")
	wantStatus(t, resp, http.StatusOK)
	if string(resp.body) != "ERROR_500\n" {
		t.Errorf("body = %q, want the new mode", resp.body)
	}
	if s.Mode() != ModeError500 {
		t.Errorf("mode = %s", s.Mode())
	}
	wantStatus(t, do(t, srv, http.MethodGet, "/counters"), http.StatusInternalServerError)

	// The mode can also come as a form body.
	wantStatus(t, post(url.Values{"mode": {"ok"}}, ""), http.StatusOK)
	wantStatus(t, do(t, srv, http.MethodGet, "/counters"), http.StatusOK)

	resp = post(nil, "?mode=bogus")
	wantStatus(t, resp, http.StatusBadRequest)
	if !bytes.Contains(resp.body, []byte("FLAKY")) {
		t.Errorf("400 body %q does not list the modes", resp.body)
	}
	wantStatus(t, post(nil, ""), http.StatusBadRequest)
	if s.Mode() != ModeOK {
		t.Errorf("a rejected request changed the mode to %s", s.Mode())
	}
}

func TestRouting(t *testing.T) {
	tests := []struct {
		method, path string
		want         int
	}{
		{http.MethodGet, "/", 200},
		{http.MethodHead, "/", 200},
		{http.MethodGet, "/-/healthy", 200},
		{http.MethodGet, "/counters", 200},
		{http.MethodHead, "/counters", 200},
		{http.MethodPost, "/counters", 405},
		{http.MethodDelete, "/counters", 405},
		{http.MethodGet, "/admin/mode", 405},
		{http.MethodPut, "/admin/mode", 405},
		{http.MethodPost, "/", 405},
		{http.MethodPost, "/-/healthy", 405},
		{http.MethodGet, "/nope", 404},
		{http.MethodGet, "/counters/", 404},
		{http.MethodPost, "/nope", 404},
	}
	_, srv := newServer(t, Config{Switches: 2})
	for _, tc := range tests {
		t.Run(tc.method+" "+tc.path, func(t *testing.T) {
			wantStatus(t, do(t, srv, tc.method, tc.path), tc.want)
		})
	}
	index := do(t, srv, http.MethodGet, "/")
	if !bytes.Contains(index.body, []byte("/admin/mode")) || !bytes.Contains(index.body, []byte("testing only")) {
		t.Errorf("index page does not describe the admin endpoint:\n%s", index.body)
	}
}

// TestConcurrentRequestsAndTicks runs requests of every mode against a
// ticking simulator, for the race detector.
func TestConcurrentRequestsAndTicks(t *testing.T) {
	s, srv := newServer(t, Config{Switches: 100, IncidentRate: 0.05, SlowDelay: time.Millisecond})
	var wg sync.WaitGroup
	for _, m := range Modes() {
		if m == ModeTimeout {
			continue
		}
		wg.Go(func() {
			for range 10 {
				resp, err := srv.Client().Get(srv.URL + "/counters?mode=" + m.String())
				if err != nil {
					t.Errorf("%s: %v", m, err)
					return
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		})
	}
	wg.Go(func() {
		for i := range 50 {
			s.Tick(t0.Add(time.Duration(i) * time.Second))
			s.SetMode(Modes()[i%len(Modes())])
		}
	})
	wg.Wait()
}

// waitFor polls cond until it holds, failing the test after a deadline.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}
