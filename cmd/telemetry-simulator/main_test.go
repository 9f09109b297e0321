package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/fabrictelemetry/aggregator/internal/testproc"
	"github.com/fabrictelemetry/aggregator/simulator"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func TestStartupErrors(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		wantErr string
	}{
		{name: "positional contradicts --mode", args: []string{"--mode=CORRUPT", "ERROR_500"}, wantErr: "contradicts"},
		{name: "unknown positional mode", args: []string{"BOGUS"}, wantErr: `unknown mode "BOGUS"`},
		{name: "unknown --mode", args: []string{"--mode=nope"}, wantErr: `unknown mode "nope"`},
		{name: "zero switches", args: []string{"--switches=0"}, wantErr: "--switches"},
		{name: "zero interval", args: []string{"--interval=0s"}, wantErr: "--interval"},
		{name: "negative ports", args: []string{"--ports=-1"}, wantErr: "--ports"},
		{name: "too many ports", args: []string{"--ports=5000"}, wantErr: "ports must be between"},
		{name: "non-numeric ports", args: []string{"--ports=many"}, wantErr: `"many"`},
		{name: "unknown flag", args: []string{"--no-such-flag"}, wantErr: "unknown long flag"},
		{name: "two positionals", args: []string{"OK", "OK"}, wantErr: "unexpected"},
		{name: "bad kafka brokers", args: []string{"--kafka.brokers=kafka-1"}, wantErr: `broker "kafka-1" is not HOST:PORT`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := runContext(t.Context(), append(tc.args, "--web.listen-address=127.0.0.1:0"), &stdout, &stderr)
			if code == 0 {
				t.Fatalf("exit code 0, want an error")
			}
			if !strings.Contains(stderr.String(), tc.wantErr) {
				t.Errorf("stderr %q does not mention %q", stderr.String(), tc.wantErr)
			}
		})
	}
}

func TestChooseMode(t *testing.T) {
	tests := []struct {
		flag    string
		flagSet bool
		arg     string
		want    simulator.Mode
		wantErr bool
	}{
		{flag: "OK", want: simulator.ModeOK},
		{flag: "OK", arg: "error_500", want: simulator.ModeError500},
		{flag: "corrupt", flagSet: true, want: simulator.ModeCorrupt},
		{flag: "CORRUPT", flagSet: true, arg: "corrupt", want: simulator.ModeCorrupt},
		{flag: "CORRUPT", flagSet: true, arg: "OK", wantErr: true},
		{flag: "OK", flagSet: true, arg: "SLOW", wantErr: true},
		{flag: "OK", arg: "bogus", wantErr: true},
	}
	for _, tc := range tests {
		got, err := chooseMode(tc.flag, tc.flagSet, tc.arg)
		if (err != nil) != tc.wantErr || (!tc.wantErr && got != tc.want) {
			t.Errorf("chooseMode(%q, %v, %q) = %v, %v; want %v, error %v", tc.flag, tc.flagSet, tc.arg, got, err, tc.want, tc.wantErr)
		}
	}
}

func TestHelpAndVersion(t *testing.T) {
	for _, arg := range []string{"--help", "--version"} {
		var stdout, stderr bytes.Buffer
		if code := runContext(t.Context(), []string{arg}, &stdout, &stderr); code != 0 {
			t.Errorf("%s: exit code %d, stderr %s", arg, code, stderr.String())
		}
		if !strings.Contains(stdout.String(), "telemetry-simulator") {
			t.Errorf("%s printed %q", arg, stdout.String())
		}
		if arg == "--help" {
			for _, want := range []string{"--ports", "/csv/metrics", "num_shards"} {
				if !strings.Contains(stdout.String(), want) {
					t.Errorf("--help does not mention %s", want)
				}
			}
		}
	}
}

// TestServeAndShutdown starts the program on a free port with the mode given
// positionally, fetches the counters and stops it as a signal would.
func TestServeAndShutdown(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	logs := &testproc.LockedBuffer{}
	done := make(chan int, 1)
	go func() {
		done <- runContext(ctx, []string{
			"--web.listen-address=127.0.0.1:0", "--switches=20", "--interval=50ms", "--slow-delay=1h", "--log.level=debug", "error_500",
		}, io.Discard, logs)
	}()

	addr := waitForLog(t, logs, `address=(127\.0\.0\.1:\d+)`)
	for _, want := range []string{"switches=20", "interval=50ms", "mode=ERROR_500", "seed=1"} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("start-up line lacks %s:\n%s", want, logs.String())
		}
	}

	client := &http.Client{Transport: &http.Transport{}}
	defer client.CloseIdleConnections()
	get := func(path string) int {
		t.Helper()
		resp, err := client.Get("http://" + addr + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		_, _ = io.Copy(io.Discard, resp.Body)
		return resp.StatusCode
	}
	if code := get("/counters"); code != http.StatusInternalServerError {
		t.Errorf("/counters in ERROR_500 mode: %d", code)
	}
	if code := get("/counters?mode=OK"); code != http.StatusOK {
		t.Errorf("/counters?mode=OK: %d", code)
	}

	// A request held by SLOW must not keep the program from stopping.
	held := make(chan error, 1)
	go func() {
		resp, err := client.Get("http://" + addr + "/counters?mode=SLOW")
		if err == nil {
			resp.Body.Close()
		}
		held <- err
	}()
	waitForLog(t, logs, "mode=SLOW")
	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Errorf("exit code %d after shutdown, want 0; logs:\n%s", code, logs.String())
		}
	case <-time.After(15 * time.Second):
		t.Fatal("did not stop after its context was cancelled")
	}
	<-held
}

// waitForLog polls the logs until pattern matches and returns its first
// group, or the whole match if it has none.
func waitForLog(t *testing.T, logs *testproc.LockedBuffer, pattern string) string {
	t.Helper()
	re := regexp.MustCompile(pattern)
	deadline := time.Now().Add(10 * time.Second)
	for {
		if m := re.FindStringSubmatch(logs.String()); m != nil {
			return m[len(m)-1]
		}
		if time.Now().After(deadline) {
			t.Fatalf("no log line matching %s:\n%s", pattern, logs.String())
		}
		time.Sleep(time.Millisecond)
	}
}

// TestServePorts runs the program with --ports and checks both data
// endpoints' headers, a shard and a bad shard parameter.
func TestServePorts(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	logs := &testproc.LockedBuffer{}
	done := make(chan int, 1)
	go func() {
		done <- runContext(ctx, []string{
			"--web.listen-address=127.0.0.1:0", "--switches=6", "--ports=4", "--interval=20ms", "--incident-rate=0",
		}, io.Discard, logs)
	}()
	addr := waitForLog(t, logs, `address=(127\.0\.0\.1:\d+)`)
	if !strings.Contains(logs.String(), "ports=4") {
		t.Errorf("start-up line lacks ports=4:\n%s", logs.String())
	}

	client := &http.Client{Transport: &http.Transport{}}
	defer client.CloseIdleConnections()
	get := func(path string) (int, string) {
		t.Helper()
		resp, err := client.Get("http://" + addr + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	tests := []struct {
		path       string
		wantStatus int
		wantPrefix string
		wantLines  int // 0: do not check
	}{
		{"/counters", 200, simulator.PortHeader + "\n", 1 + 6*4},
		{"/csv/metrics", 200, simulator.UFMHeader + "\n", 1 + 6*4},
		{"/csv/metrics?num_shards=1&shard=0&sharding_field=port_guid", 200, simulator.UFMHeader + "\n", 1 + 6*4},
		{"/csv/metrics?num_shards=3&shard=3", 400, "shard must be", 0},
	}
	for _, tc := range tests {
		code, body := get(tc.path)
		if code != tc.wantStatus || !strings.HasPrefix(body, tc.wantPrefix) {
			t.Errorf("%s: %d %.80q, want %d and a body starting %.40q", tc.path, code, body, tc.wantStatus, tc.wantPrefix)
		}
		if n := strings.Count(body, "\n"); tc.wantLines > 0 && n != tc.wantLines {
			t.Errorf("%s: %d lines, want %d", tc.path, n, tc.wantLines)
		}
	}
	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Errorf("exit code %d", code)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("did not stop after its context was cancelled")
	}
}
