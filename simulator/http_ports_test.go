package simulator

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// endpoint is a data endpoint in one configuration, with what tells its
// rows apart and which switch a row belongs to.
type endpoint struct {
	name     string
	cfg      Config
	path     string
	header   []string
	switchOf func(row) string
	good     func(*Simulator) []byte
}

var endpoints = []endpoint{
	{"counters matrix", Config{Switches: 40, Seed: 5}, "/counters", wantHeader,
		func(r row) string { return r["switch_id"] }, (*Simulator).Body},
	{"counters ports", Config{Switches: 40, Ports: 4, Seed: 5}, "/counters", wantPortHeader,
		func(r row) string { return r["switch_id"] }, (*Simulator).Body},
	{"ufm matrix", Config{Switches: 40, Seed: 5}, "/csv/metrics", wantUFMHeader,
		func(r row) string { return r["port_guid"] }, (*Simulator).UFMBody},
	{"ufm ports", Config{Switches: 40, Ports: 4, Seed: 5}, "/csv/metrics", wantUFMHeader,
		func(r row) string { return r["port_guid"] }, (*Simulator).UFMBody},
}

// sortedRecords returns the records after the header, sorted, for
// comparing sets of rows.
func sortedRecords(recs [][]string) []string {
	out := make([]string, 0, len(recs))
	for _, rec := range recs[1:] {
		out = append(out, strings.Join(rec, "\x00"))
	}
	slices.Sort(out)
	return out
}

// TestSharding checks that the shards of every data endpoint are disjoint,
// hold whole switches and together are exactly the unsharded body.
func TestSharding(t *testing.T) {
	for _, ep := range endpoints {
		t.Run(ep.name, func(t *testing.T) {
			s, srv := newServer(t, ep.cfg)
			s.Tick(t0)
			full := do(t, srv, http.MethodGet, ep.path)
			wantStatus(t, full, http.StatusOK)
			if !bytes.Equal(full.body, ep.good(s)) {
				t.Fatal("unsharded body differs from the snapshot's")
			}
			all := parseBody(t, full.body)
			for _, n := range []int{1, 2, 3, 7} {
				var union [][]string
				shardOf := map[string]int{}
				nonEmpty := 0
				for i := range n {
					query := fmt.Sprintf("?num_shards=%d&shard=%d", n, i)
					if i%2 == 1 {
						query += "&sharding_field=port_guid"
					}
					resp := do(t, srv, http.MethodGet, ep.path+query)
					wantStatus(t, resp, http.StatusOK)
					recs := parseBody(t, resp.body)
					if !slices.Equal(recs[0], ep.header) {
						t.Fatalf("shard %d/%d header = %v", i, n, recs[0])
					}
					if len(recs) > 1 {
						nonEmpty++
					}
					for _, r := range rowsByName(t, recs) {
						sw := ep.switchOf(r)
						if j, ok := shardOf[sw]; ok && j != i {
							t.Fatalf("%d shards: switch %s in shards %d and %d", n, sw, j, i)
						}
						shardOf[sw] = i
					}
					union = append(union, recs[1:]...)
				}
				if got, want := sortedRecords(append([][]string{nil}, union...)), sortedRecords(all); !slices.Equal(got, want) {
					t.Fatalf("%d shards: union has %d rows, unsharded %d, or they differ", n, len(got), len(want))
				}
				if n > 1 && nonEmpty < 2 {
					t.Errorf("%d shards: only %d hold rows", n, nonEmpty)
				}
			}
		})
	}
}

func TestShardParams(t *testing.T) {
	tests := []struct {
		query string
		want  int
	}{
		{"?num_shards=1&shard=0", 200},
		{"?num_shards=4&shard=3&sharding_field=port_guid", 200},
		{"?sharding_field=port_guid", 200},
		{"?num_shards=0&shard=0", 400},
		{"?num_shards=-2&shard=0", 400},
		{"?num_shards=abc&shard=0", 400},
		{"?num_shards=2.5&shard=0", 400},
		{"?num_shards=&shard=0", 400},
		{"?num_shards=2&shard=2", 400},
		{"?num_shards=2&shard=-1", 400},
		{"?num_shards=2&shard=x", 400},
		{"?num_shards=2", 400},
		{"?shard=0", 400},
		{"?num_shards=2&shard=0&sharding_field=node_guid", 400},
		{"?sharding_field=", 400},
		{"?num_shards=2&shard=0&mode=bogus", 400},
	}
	s, srv := newServer(t, Config{Switches: 6, Ports: 2})
	for _, path := range []string{"/counters", "/csv/metrics"} {
		for _, tc := range tests {
			t.Run(path+tc.query, func(t *testing.T) {
				resp := do(t, srv, http.MethodGet, path+tc.query)
				wantStatus(t, resp, tc.want)
				if tc.want == http.StatusBadRequest {
					if ct := resp.header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
						t.Errorf("400 Content-Type = %q", ct)
					}
					if len(resp.body) == 0 {
						t.Error("400 without a reason")
					}
				}
			})
		}
	}
	if resp := do(t, srv, http.MethodGet, "/csv/metrics?num_shards=1&shard=0"); !bytes.Equal(resp.body, s.UFMBody()) {
		t.Error("one shard differs from the whole body")
	}
}

// TestDataEndpointModes checks each fault mode on every data endpoint, in
// the endpoint's own layout.
func TestDataEndpointModes(t *testing.T) {
	modes := []Mode{ModeOK, ModeError500, ModeCorrupt, ModeTruncated, ModeEmpty, ModeGarbage, ModePartial, ModeSchema}
	for _, ep := range endpoints {
		for _, mode := range modes {
			t.Run(ep.name+"/"+mode.String(), func(t *testing.T) {
				s, srv := newServer(t, ep.cfg)
				s.Tick(t0)
				good := ep.good(s)
				for k := range 4 {
					// Global mode on odd requests, per request on even ones.
					path := ep.path + "?mode=" + mode.String()
					if k%2 == 1 {
						s.SetMode(mode)
						path = ep.path
					}
					resp := do(t, srv, http.MethodGet, path)
					s.SetMode(ModeOK)
					if got := resp.header.Get(ModeHeader); got != mode.String() {
						t.Fatalf("%s = %q, want %s", ModeHeader, got, mode)
					}
					checkMode(t, ep, mode, good, resp)
				}
			})
		}
	}
}

func checkMode(t *testing.T, ep endpoint, mode Mode, good []byte, resp response) {
	t.Helper()
	switch mode {
	case ModeOK:
		wantStatus(t, resp, http.StatusOK)
		if !bytes.Equal(resp.body, good) {
			t.Error("body differs from the snapshot's")
		}
	case ModeError500:
		wantStatus(t, resp, http.StatusInternalServerError)
	case ModeEmpty:
		wantStatus(t, resp, http.StatusOK)
		if len(resp.body) != 0 {
			t.Error("EMPTY body is not empty")
		}
	case ModeGarbage:
		wantStatus(t, resp, http.StatusOK)
		if bytes.Contains(resp.body, []byte(ep.header[0])) {
			t.Error("garbage contains the header")
		}
	case ModeCorrupt:
		wantStatus(t, resp, http.StatusOK)
		recs := readLoose(t, resp.body)
		if !slices.Equal(recs[0], ep.header) {
			t.Fatalf("header = %v", recs[0])
		}
		// The first value column: after the identity columns.
		first := slices.Index(ep.header, "Latency_Avg_uSec")
		if first < 0 {
			first = slices.Index(ep.header, "PortXmitDataExtended")
		}
		wrongCount, nonNumeric := 0, 0
		for _, rec := range recs[1:] {
			if len(rec) != len(ep.header) {
				wrongCount++
				continue
			}
			if slices.ContainsFunc(rec[first:], func(v string) bool { return v != "" && !isNumber(v) }) {
				nonNumeric++
			}
		}
		if wrongCount == 0 || nonNumeric == 0 {
			t.Errorf("%d rows with a wrong field count and %d with non-numeric values, want some of each", wrongCount, nonNumeric)
		}
	case ModeTruncated:
		wantStatus(t, resp, http.StatusOK)
		if !resp.chunked || bytes.HasSuffix(resp.body, []byte("\n")) {
			t.Error("truncated body has a Content-Length or ends with a newline")
		}
		if !bytes.HasPrefix(good, resp.body) || len(resp.body) >= len(good) || len(resp.body) <= len(ep.header[0]) {
			t.Error("truncated body is not a proper prefix of the good body past the header")
		}
	case ModePartial:
		wantStatus(t, resp, http.StatusOK)
		all := rowsByName(t, parseBody(t, good))
		recs := parseBody(t, resp.body)
		if !slices.Equal(recs[0], ep.header) {
			t.Fatalf("header = %v", recs[0])
		}
		rowsOf := func(rows []row) map[string][]string {
			m := map[string][]string{}
			for _, r := range rows {
				m[ep.switchOf(r)] = append(m[ep.switchOf(r)], fmt.Sprint(r))
			}
			return m
		}
		want, got := rowsOf(all), rowsOf(rowsByName(t, recs))
		if len(got) == 0 || len(got) >= len(want) {
			t.Fatalf("%d switches of %d, want a non-empty proper subset", len(got), len(want))
		}
		for sw, rows := range got {
			if !slices.Equal(rows, want[sw]) {
				t.Fatalf("switch %s: %d rows, want all its %d rows unchanged", sw, len(rows), len(want[sw]))
			}
		}
	case ModeSchema:
		wantStatus(t, resp, http.StatusOK)
		all := rowsByName(t, parseBody(t, good))
		recs := parseBody(t, resp.body)
		header := recs[0]
		if header[0] == ep.header[0] {
			t.Errorf("%s is still first", ep.header[0])
		}
		extra := slices.DeleteFunc(slices.Clone(header), func(c string) bool { return slices.Contains(ep.header, c) })
		if len(extra) != 1 || len(header) != len(ep.header)+1 {
			t.Fatalf("header = %v, want a reordering plus one unknown column", header)
		}
		got := rowsByName(t, recs)
		if len(got) != len(all) {
			t.Fatalf("%d rows, want %d", len(got), len(all))
		}
		for i, r := range got {
			for _, col := range ep.header {
				if r[col] != all[i][col] {
					t.Fatalf("row %d %s = %q, want %q", i, col, r[col], all[i][col])
				}
			}
			r.uint(t, extra[0])
		}
	}
}

// TestShardedFault checks that a fault applies to the shard asked for.
func TestShardedFault(t *testing.T) {
	s, srv := newServer(t, Config{Switches: 40, Ports: 3, Seed: 5})
	shard := do(t, srv, http.MethodGet, "/csv/metrics?num_shards=2&shard=1").body
	resp := do(t, srv, http.MethodGet, "/csv/metrics?num_shards=2&shard=1&mode=PARTIAL")
	ep := endpoints[3]
	checkMode(t, ep, ModePartial, shard, resp)
	if bytes.Equal(shard, s.UFMBody()) {
		t.Fatal("the shard is the whole body")
	}
}

func TestUFMFlaky(t *testing.T) {
	_, srv := newServer(t, Config{Switches: 10, Ports: 2, Mode: ModeFlaky, SlowDelay: time.Millisecond})
	seen := map[string]int{}
	for range 200 {
		ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+"/csv/metrics", nil)
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
	if seen["OK"] < 30 || len(seen) < 6 {
		t.Errorf("FLAKY on /csv/metrics served %v", seen)
	}
}

// TestConcurrentUFMAndTicks reads /csv/metrics, sharded and not, in every
// mode while the simulator ticks, lazily rendered and not, for the race
// detector.
func TestConcurrentUFMAndTicks(t *testing.T) {
	for _, ports := range []int{0, 4} {
		t.Run(fmt.Sprint(ports), func(t *testing.T) {
			s, srv := newServer(t, Config{Switches: 30, Ports: ports, IncidentRate: 0.05, SlowDelay: time.Millisecond})
			var wg sync.WaitGroup
			for _, m := range Modes() {
				if m == ModeTimeout {
					continue
				}
				wg.Go(func() {
					for i := range 6 {
						path := "/csv/metrics?mode=" + m.String()
						if i%2 == 1 {
							path += fmt.Sprintf("&num_shards=3&shard=%d", i%3)
						}
						resp, err := srv.Client().Get(srv.URL + path)
						if err != nil {
							t.Errorf("%s: %v", path, err)
							return
						}
						_, _ = io.Copy(io.Discard, resp.Body)
						resp.Body.Close()
					}
				})
			}
			wg.Go(func() {
				for i := range 40 {
					s.Tick(t0.Add(time.Duration(i) * time.Second))
				}
			})
			wg.Wait()
		})
	}
}

func TestIndexDescribesUFM(t *testing.T) {
	_, srv := newServer(t, Config{Switches: 2, Ports: 3})
	index := do(t, srv, http.MethodGet, "/")
	for _, want := range []string{"/csv/metrics", "num_shards", "sharding_field=port_guid", "ports: 3 per switch"} {
		if !bytes.Contains(index.body, []byte(want)) {
			t.Errorf("index page lacks %q:\n%s", want, index.body)
		}
	}
	for _, tc := range []struct {
		method string
		want   int
	}{{http.MethodHead, 200}, {http.MethodPost, 405}, {http.MethodDelete, 405}} {
		wantStatus(t, do(t, srv, tc.method, "/csv/metrics"), tc.want)
	}
	wantStatus(t, do(t, srv, http.MethodGet, "/csv/metrics/"), 404)
}
