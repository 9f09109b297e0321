package aggregator

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"

	"github.com/fabrictelemetry/aggregator/config"
)

// TestCompression: the query API and ListMetrics answer gzip to a client
// that accepts it, the same JSON as the plain answer once decoded, with
// Vary: Accept-Encoding; a client that does not ask gets plain JSON, and
// GetMetric's small answers are never compressed.
func TestCompression(t *testing.T) {
	src := newFakeSource(t, 4, 64, 1)
	a := start(t, Config{Sources: []config.Source{sourceConfig("default", src.url, nil)}})
	eventually(t, "a view", func() error { return containsSource(a.Store().Load(), src.expected(t), nil) })
	a.instrumentRoutes()
	srv := httptest.NewServer(newExactRoutes(a.Router()))
	t.Cleanup(srv.Close)
	// The default transport would ask for gzip and decode it unseen.
	client := &http.Client{Transport: &http.Transport{DisableCompression: true}}
	t.Cleanup(client.CloseIdleConnections)
	get := func(path, acceptEncoding string) (*http.Response, []byte) {
		t.Helper()
		req, err := http.NewRequest(http.MethodGet, srv.URL+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		if acceptEncoding != "" {
			req.Header.Set("Accept-Encoding", acceptEncoding)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET %s: %d %s", path, resp.StatusCode, body)
		}
		return resp, body
	}

	at := strconv.FormatInt(src.expected(t).Time().Unix(), 10)
	query := "/api/v1/query?" + url.Values{"query": {"fabric_port_transmit_bytes_total"}, "time": {at}}.Encode()
	for _, path := range []string{query, "/telemetry/ListMetrics"} {
		plainResp, plain := get(path, "")
		if enc := plainResp.Header.Get("Content-Encoding"); enc != "" || !json.Valid(plain) {
			t.Errorf("%s without Accept-Encoding: Content-Encoding %q, valid JSON %v", path, enc, json.Valid(plain))
		}
		for _, accept := range []string{"gzip", "gzip, deflate, br, zstd", "br;q=1.0, gzip;q=0.8"} {
			gzResp, gz := get(path, accept)
			if enc := gzResp.Header.Get("Content-Encoding"); enc != "gzip" {
				t.Errorf("%s with Accept-Encoding %q: Content-Encoding %q", path, accept, enc)
				continue
			}
			if !strings.Contains(strings.Join(gzResp.Header.Values("Vary"), ","), "Accept-Encoding") {
				t.Errorf("%s: Vary %q", path, gzResp.Header.Values("Vary"))
			}
			zr, err := gzip.NewReader(bytes.NewReader(gz))
			if err != nil {
				t.Fatal(err)
			}
			decoded, err := io.ReadAll(zr)
			if err != nil {
				t.Fatal(err)
			}
			if len(gz) >= len(decoded) {
				t.Errorf("%s: %d bytes gzipped, %d plain", path, len(gz), len(decoded))
			}
			if got, want := withoutAge(t, decoded), withoutAge(t, plain); got != want {
				t.Errorf("%s: gzipped answer decodes to\n%.300s\nthe plain one is\n%.300s", path, got, want)
			}
		}
	}

	// A refused gzip (identity only) is plain.
	if resp, body := get(query, "gzip;q=0, identity"); resp.Header.Get("Content-Encoding") != "" || !json.Valid(body) {
		t.Errorf("gzip;q=0: Content-Encoding %q", resp.Header.Get("Content-Encoding"))
	}
	// GetMetric stays uncompressed even for a client that accepts gzip,
	// even an answer long enough to be (every port of a switch).
	ports := "/telemetry/GetMetric?switch_id=SW-01&metric_name=PortXmitDataExtended"
	if resp, body := get(ports, "gzip"); resp.Header.Get("Content-Encoding") != "" || !json.Valid(body) || len(body) < 2048 {
		t.Errorf("GetMetric: Content-Encoding %q, %d bytes", resp.Header.Get("Content-Encoding"), len(body))
	}
}

// withoutAge drops ListMetrics' age_seconds, which moves between two
// requests, and returns the JSON in a canonical form.
func withoutAge(t *testing.T, b []byte) string {
	t.Helper()
	var v map[string]any
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatal(err)
	}
	delete(v, "age_seconds")
	out, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}
