package e2e

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// rawExchange writes request, as given, on a new connection to addr and
// reads one answer: for requests net/http's client would refuse to send
// (bad encodings, control characters, odd methods). The request is written
// from a goroutine, so a server that answers before reading it all (431)
// is still heard.
func rawExchange(addr, request string, timeout time.Duration) (Response, error) {
	conn, err := net.DialTimeout("tcp", addr, timeout)
	if err != nil {
		return Response{}, err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(timeout))
	go func() { _, _ = io.WriteString(conn, request) }()
	method, _, _ := strings.Cut(request, " ")
	resp, err := http.ReadResponse(bufio.NewReader(conn), &http.Request{Method: method})
	if err != nil {
		return Response{}, fmt.Errorf("%.80q: reading the answer: %w", request, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return Response{}, fmt.Errorf("%.80q: reading the body: %w", request, err)
	}
	return Response{Status: resp.StatusCode, Header: resp.Header, Body: body}, nil
}

// rawGet is rawExchange of a GET of target (sent as is) with extra header
// lines.
func rawGet(addr, target string, headers ...string) (Response, error) {
	req := "GET " + target + " HTTP/1.1\r\nHost: " + addr + "\r\n"
	for _, h := range headers {
		req += h + "\r\n"
	}
	return rawExchange(addr, req+"Connection: close\r\n\r\n", 15*time.Second)
}

func itoa(n int) string { return strconv.Itoa(n) }

// raiseFDLimit raises this process's soft limit on open files towards
// need (up to the hard limit) and returns the limit it got. The limit is
// per process; a binary the test starts afterwards inherits it.
func raiseFDLimit(t testing.TB, need uint64) uint64 {
	t.Helper()
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	if lim.Cur >= need || lim.Cur >= lim.Max {
		return lim.Cur
	}
	lim.Cur = min(need, lim.Max)
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatalf("raising the open file limit to %d: %v", lim.Cur, err)
	}
	return lim.Cur
}

// scrape reads the aggregator's /metrics into sample lines: the series
// (name and labels, as written) → value.
func scrape(agg *Process) (map[string]float64, error) { return scrapeWith(Client, agg) }

// scrapeWith is scrape with another client.
func scrapeWith(c *http.Client, agg *Process) (map[string]float64, error) {
	req, err := http.NewRequestWithContext(context.Background(), http.MethodGet, agg.URL+"/metrics", nil)
	if err != nil {
		return nil, err
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("/metrics: %d", resp.StatusCode)
	}
	out := map[string]float64{}
	for line := range strings.Lines(string(body)) {
		line = strings.TrimSpace(line)
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			return nil, fmt.Errorf("/metrics: bad line %q", line)
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			return nil, fmt.Errorf("/metrics: bad value in %q", line)
		}
		out[line[:i]] = v
	}
	return out, nil
}

// sumOf adds up the samples of metric name whose labels include every
// label pair of match (written as in the exposition: reason="parse").
func sumOf(samples map[string]float64, name string, match ...string) float64 {
	total := 0.0
	for series, v := range samples {
		n, labels, _ := strings.Cut(series, "{")
		if n != name {
			continue
		}
		ok := true
		for _, m := range match {
			ok = ok && strings.Contains(labels, m)
		}
		if ok {
			total += v
		}
	}
	return total
}
