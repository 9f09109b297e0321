package e2e

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/fabrictelemetry/aggregator/internal/testproc"
)

// TestSourceRestartsMidStream stops the source while the aggregator polls
// it and starts a new one on the same address: during the outage every
// poll is rejected as a connection failure, the last good snapshot is
// served unchanged and readiness fails once it is older than
// --source.max-staleness; when the source is back, its new data is served
// and the aggregator is ready again, without a restart.
func TestSourceRestartsMidStream(t *testing.T) {
	t.Parallel()
	addr := FreeAddr(t)
	first := StartSimulator(t, "--web.listen-address="+addr, "--switches=10", "--interval=200ms", "--incident-rate=0", "--seed=1")
	agg := StartAggregator(t, "--source.url=http://"+addr+"/counters", "--source.interval=100ms", "--source.timeout=1s",
		"--source.max-staleness=1s")
	WaitReady(t, agg, 20*time.Second)

	first.Stop(t)
	cursor := agg.Logs.Cursor()
	_, cursor = agg.Logs.WaitFor(t, cursor, 1, 5*time.Second, "connection failure", MsgIs(pollRejected, "reason", "connection"))
	last := GetList(t, agg, "")
	agg.Logs.WaitFor(t, cursor, 5, 5*time.Second, "5 connection failures", MsgIs(pollRejected, "reason", "connection"))
	if err := sameSnapshot(last, GetList(t, agg, "")); err != nil {
		t.Errorf("the snapshot changed while the source was down: %v", err)
	}
	Eventually(t, 5*time.Second, 50*time.Millisecond, func() error {
		if r := Get(t, agg.URL+"/-/ready"); r.Status != http.StatusServiceUnavailable {
			return fmt.Errorf("/-/ready %d with the source down", r.Status)
		}
		return nil
	})
	if r := Get(t, agg.URL+"/telemetry/GetMetric?switch_id=SW-03&metric_name=Rx_Bytes"); r.Status != http.StatusOK {
		t.Errorf("stale data not served: %d %s", r.Status, r.Body)
	}

	second := StartSimulator(t, "--web.listen-address="+addr, "--switches=12", "--interval=1h", "--incident-rate=0", "--seed=2")
	WaitReady(t, agg, 10*time.Second)
	want, err := FetchSimCSV(context.Background(), second)
	if err != nil {
		t.Fatal(err)
	}
	Eventually(t, 5*time.Second, 50*time.Millisecond, func() error {
		return matchesCSV(GetList(t, agg, ""), want)
	})
}

// TestShutdownFinishesInFlight sends SIGTERM, and SIGINT, while a request
// is in flight (a two-second CPU profile): the aggregator must stop
// polling and accepting connections at once, answer that request in full,
// and then exit 0 well within its shutdown bound.
func TestShutdownFinishesInFlight(t *testing.T) {
	t.Parallel()
	for name, sig := range map[string]syscall.Signal{"SIGTERM": syscall.SIGTERM, "SIGINT": syscall.SIGINT} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			agg := StartAggregator(t, "--demo", "--demo.switches=20", "--source.interval=100ms", "--web.enable-pprof")
			WaitReady(t, agg, 20*time.Second)

			const profile = 2 * time.Second
			type answer struct {
				status int
				body   []byte
				err    error
			}
			answered := make(chan answer, 1)
			sent := make(chan struct{})
			var once sync.Once // a retried request is written twice
			began := time.Now()
			go func() {
				ctx := httptrace.WithClientTrace(context.Background(), &httptrace.ClientTrace{
					WroteRequest: func(httptrace.WroteRequestInfo) { once.Do(func() { close(sent) }) },
				})
				r, err := TryDo(ctx, http.MethodGet, fmt.Sprintf("%s/debug/pprof/profile?seconds=%d", agg.URL, int(profile.Seconds())))
				answered <- answer{r.Status, r.Body, err}
			}()
			<-sent
			time.Sleep(200 * time.Millisecond) // the handler is running
			cursor := agg.Logs.Cursor()
			agg.stopping = true
			if err := agg.cmd.Process.Signal(sig); err != nil {
				t.Fatal(err)
			}
			_, afterShutdown := agg.Logs.WaitFor(t, cursor, 1, 5*time.Second, "shutting down", MsgIs("Shutting down"))
			Eventually(t, 2*time.Second, 20*time.Millisecond, func() error {
				if c, err := net.DialTimeout("tcp", agg.Addr, time.Second); err == nil {
					c.Close()
					return fmt.Errorf("still accepting connections after %s", name)
				}
				return nil
			})

			a := <-answered
			if a.err != nil || a.status != http.StatusOK || !bytes.HasPrefix(a.body, []byte{0x1f, 0x8b}) {
				t.Fatalf("in-flight request: %d %v, %d bytes: not a whole profile", a.status, a.err, len(a.body))
			}
			if took := time.Since(began); took < profile {
				t.Errorf("in-flight request answered after %s, before its %s profile was done", took, profile)
			}
			select {
			case <-agg.exited:
			case <-time.After(5 * time.Second):
				t.Fatalf("still running 5s after the in-flight request was answered")
			}
			if agg.exitErr != nil {
				t.Errorf("exit after %s: %v", name, agg.exitErr)
			}
			if n := agg.Logs.Count(afterShutdown, MsgIs(pollAccepted)); n > 1 {
				t.Errorf("%d polls accepted after shutdown began", n)
			}
			agg.Logs.WaitFor(t, afterShutdown, 1, time.Second, "Stopped", MsgIs("Stopped"))
		})
	}
}

// TestWebConfigEveryEndpoint serves TLS with basic auth (--web.config.file)
// and asks every route the router has: without credentials, with a wrong
// password or user, each is 401; over plain HTTP, 400; with the right
// credentials, it answers.
func TestWebConfigEveryEndpoint(t *testing.T) {
	t.Parallel()
	routes := aggregatorRoutes(t, false)
	webConfig, pool := testproc.WebConfig(t, t.TempDir(), "operator", "s3cret")
	agg := StartAggregator(t, "--demo", "--demo.switches=5", "--source.interval=200ms", "--web.enable-pprof", "--web.config.file="+webConfig)
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	client := &http.Client{Transport: tr, Timeout: 15 * time.Second}
	t.Cleanup(client.CloseIdleConnections)
	base := "https://" + agg.Addr
	get := func(url, user, pass string) (int, error) {
		req, err := http.NewRequest(http.MethodGet, url, nil)
		if err != nil {
			return 0, err
		}
		if user != "" {
			req.SetBasicAuth(user, pass)
		}
		resp, err := client.Do(req)
		if err != nil {
			return 0, err
		}
		defer resp.Body.Close()
		_, _ = io.Copy(io.Discard, resp.Body)
		return resp.StatusCode, nil
	}
	Eventually(t, 20*time.Second, 50*time.Millisecond, func() error {
		if code, err := get(base+"/-/ready", "operator", "s3cret"); err != nil || code != http.StatusOK {
			return fmt.Errorf("/-/ready over TLS: %d %v", code, err)
		}
		return nil
	})

	for _, r := range routes {
		path := r.Path()
		switch r.Template {
		case "/debug/pprof/profile", "/debug/pprof/trace":
			path += "?seconds=1"
		}
		t.Run(path, func(t *testing.T) {
			for _, c := range []struct {
				name, user, pass string
			}{{"no credentials", "", ""}, {"wrong password", "operator", "guess"}, {"wrong user", "admin", "s3cret"}} {
				if code, err := get(base+path, c.user, c.pass); err != nil || code != http.StatusUnauthorized {
					t.Errorf("%s: %d %v, want 401", c.name, code, err)
				}
			}
			if code, err := get(base+path, "operator", "s3cret"); err != nil || code == http.StatusUnauthorized || code >= 500 {
				t.Errorf("right credentials: %d %v", code, err)
			}
			if code, err := get("http://"+agg.Addr+path, "operator", "s3cret"); err != nil || code != http.StatusBadRequest {
				t.Errorf("plain HTTP to the TLS port: %d %v, want 400", code, err)
			}
		})
	}
}

// TestRestartKeepsSnapshot restarts the aggregator with --storage.path
// while its source is down: the restarted process serves the last good
// snapshot at once, with its original time, and /-/ready says how old it
// really is (503 once past --source.max-staleness). A corrupt state file is
// reported and ignored: the process starts, without data, and becomes ready
// when the source is back.
func TestRestartKeepsSnapshot(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	simAddr := FreeAddr(t)
	sim := StartSimulator(t, "--web.listen-address="+simAddr, "--switches=8", "--interval=1h", "--incident-rate=0", "--seed=3")
	args := []string{"--source.url=http://" + simAddr + "/counters", "--source.interval=100ms", "--source.timeout=1s",
		"--source.max-staleness=2s", "--storage.path=" + dir}
	agg := StartAggregator(t, args...)
	WaitReady(t, agg, 20*time.Second)
	want, err := FetchSimCSV(context.Background(), sim)
	if err != nil {
		t.Fatal(err)
	}
	Eventually(t, 5*time.Second, 50*time.Millisecond, func() error { return matchesCSV(GetList(t, agg, ""), want) })
	agg.Stop(t)
	sim.Stop(t)

	restarted := StartAggregator(t, args...)
	// The source is down: whatever is served comes from the state file.
	Eventually(t, 5*time.Second, 20*time.Millisecond, func() error {
		r := Get(t, restarted.URL+"/telemetry/ListMetrics")
		if r.Status != http.StatusOK {
			return fmt.Errorf("ListMetrics after the restart: %d %s", r.Status, r.Body)
		}
		l, err := decodeList(r.Body)
		if err != nil {
			t.Fatal(err)
		}
		if err := matchesCSV(l, want); err != nil {
			t.Fatalf("after the restart: %v", err)
		}
		return nil
	})
	restarted.Logs.WaitFor(t, 0, 1, 5*time.Second, "restored", MsgIs("Restored last good snapshot"))
	// Ready while the restored data is younger than 2s would be a lie
	// once it is older: the simulator stamped it when the test began.
	Eventually(t, 5*time.Second, 50*time.Millisecond, func() error {
		if r := Get(t, restarted.URL+"/-/ready"); r.Status != http.StatusServiceUnavailable {
			return fmt.Errorf("/-/ready %d for a snapshot from %s", r.Status, want.TimeText())
		}
		return nil
	})
	restarted.Stop(t)

	files, _ := filepath.Glob(filepath.Join(dir, "*.snapshot"))
	if len(files) == 0 {
		t.Fatal("no state file written")
	}
	for _, f := range files {
		if err := os.WriteFile(f, []byte("FABRICSNAP\x01truncated"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	corrupt := StartAggregator(t, args...)
	corrupt.Logs.WaitFor(t, 0, 1, 5*time.Second, "unreadable state file reported", func(l LogLine) bool {
		return strings.Contains(l.Msg(), "state file") && l.Str("level") == "ERROR"
	})
	if r := Get(t, corrupt.URL+"/telemetry/ListMetrics"); r.Status != http.StatusServiceUnavailable {
		t.Errorf("ListMetrics with a corrupt state file and no source: %d %s", r.Status, r.Body)
	}
	StartSimulator(t, "--web.listen-address="+simAddr, "--switches=8", "--interval=1h", "--incident-rate=0", "--seed=3")
	WaitReady(t, corrupt, 10*time.Second)
}
