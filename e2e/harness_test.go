package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The binaries under test are built once per test run, on first use, by
// Binaries. (The package's TestMain belongs to whichever test file needs
// one; the harness does not need it.)
var (
	buildOnce                   sync.Once
	buildErr                    error
	aggregatorBin, simulatorBin string
)

// StopTimeout bounds how long a process may take to exit after SIGTERM.
const StopTimeout = 10 * time.Second

// Binaries builds telemetry-aggregator and telemetry-simulator once per
// test run and returns their paths. They go beside the test binary, in the
// work directory that go test removes afterwards (a temporary directory
// when the test binary was built elsewhere, e.g. with go test -c).
func Binaries(t testing.TB) (aggregator, simulator string) {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := binDir()
		if err != nil {
			buildErr = err
			return
		}
		aggregatorBin = filepath.Join(dir, "telemetry-aggregator")
		simulatorBin = filepath.Join(dir, "telemetry-simulator")
		var wg sync.WaitGroup
		var errs [2]error
		wg.Go(func() { errs[0] = build(aggregatorBin, "./cmd/telemetry-aggregator", raceEnabled) })
		wg.Go(func() { errs[1] = build(simulatorBin, "./cmd/telemetry-simulator", raceEnabled) })
		wg.Wait()
		buildErr = errors.Join(errs[:]...)
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return aggregatorBin, simulatorBin
}

// binDir is go test's work directory of this test binary
// ($TMPDIR/go-buildNNN/bNNN), which go test deletes when the run ends.
func binDir() (string, error) {
	exe, err := os.Executable()
	if err == nil {
		dir := filepath.Dir(exe)
		if strings.HasPrefix(filepath.Base(filepath.Dir(dir)), "go-build") {
			return dir, nil
		}
	}
	return os.MkdirTemp("", "e2e-bin-")
}

// PlainAggregator builds telemetry-aggregator without the race detector,
// once per test run, for the tests that measure the process's memory: the
// race detector's shadow memory would multiply every figure they read.
func PlainAggregator(t testing.TB) string {
	t.Helper()
	plainOnce.Do(func() {
		dir, err := binDir()
		if err != nil {
			plainErr = err
			return
		}
		plainBin = filepath.Join(dir, "telemetry-aggregator-norace")
		plainErr = build(plainBin, "./cmd/telemetry-aggregator", false)
	})
	if plainErr != nil {
		t.Fatal(plainErr)
	}
	return plainBin
}

var (
	plainOnce sync.Once
	plainBin  string
	plainErr  error
)

// build compiles a command of this module, with the race detector if race.
func build(out, pkg string, race bool) error {
	goBin := os.Getenv("GO")
	if goBin == "" {
		goBin = "go"
	}
	args := []string{"build", "-o", out}
	if race {
		args = append(args, "-race")
	}
	cmd := exec.Command(goBin, append(args, pkg)...)
	cmd.Dir = ".." // the module root
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go %s: %v\n%s", strings.Join(cmd.Args[1:], " "), err, b)
	}
	return nil
}

// LogLine is one structured log line of a process (they run with
// --log.format=json); Raw is the line as written, for lines that are not
// JSON (panics, race reports).
type LogLine struct {
	Raw    string
	Fields map[string]any
}

// Msg is the log message.
func (l LogLine) Msg() string { return l.Str("msg") }

// Str returns a field as text ("" when absent).
func (l LogLine) Str(key string) string {
	switch v := l.Fields[key].(type) {
	case nil:
		return ""
	case string:
		return v
	default:
		return fmt.Sprint(v)
	}
}

// Logs collects a process's output line by line and lets tests wait for a
// line; a cursor (the number of lines seen so far) marks "after this point".
type Logs struct {
	mu      sync.Mutex
	lines   []LogLine
	changed chan struct{} // closed and replaced on every new line and at EOF
	eof     bool
}

func newLogs() *Logs { return &Logs{changed: make(chan struct{})} }

func (l *Logs) read(r io.Reader) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	for sc.Scan() {
		line := LogLine{Raw: sc.Text()}
		_ = json.Unmarshal(sc.Bytes(), &line.Fields)
		l.mu.Lock()
		l.lines = append(l.lines, line)
		close(l.changed)
		l.changed = make(chan struct{})
		l.mu.Unlock()
	}
	l.mu.Lock()
	l.eof = true
	close(l.changed)
	l.changed = make(chan struct{})
	l.mu.Unlock()
}

// Cursor is the number of lines so far.
func (l *Logs) Cursor() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.lines)
}

// Lines returns a copy of the lines from cursor on.
func (l *Logs) Lines(from int) []LogLine {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]LogLine(nil), l.lines[min(from, len(l.lines)):]...)
}

// Count counts the lines from cursor on that match.
func (l *Logs) Count(from int, match func(LogLine) bool) int {
	n := 0
	for _, line := range l.Lines(from) {
		if match(line) {
			n++
		}
	}
	return n
}

// WaitFor waits until n lines from cursor on match, and returns the last of
// them and the cursor after it. It fails the test at the deadline or when
// the output ends first.
func (l *Logs) WaitFor(t testing.TB, from, n int, timeout time.Duration, what string, match func(LogLine) bool) (LogLine, int) {
	t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		l.mu.Lock()
		found := 0
		for i := min(from, len(l.lines)); i < len(l.lines); i++ {
			if match(l.lines[i]) {
				if found++; found == n {
					line := l.lines[i]
					l.mu.Unlock()
					return line, i + 1
				}
			}
		}
		changed, eof := l.changed, l.eof
		l.mu.Unlock()
		if eof {
			t.Fatalf("output ended before %d× %s", n, what)
		}
		select {
		case <-changed:
		case <-deadline.C:
			t.Fatalf("no %d× %s within %s (saw %d)", n, what, timeout, found)
		}
	}
}

// Tail is the last n lines as written.
func (l *Logs) Tail(n int) string {
	lines := l.Lines(0)
	lines = lines[max(0, len(lines)-n):]
	var b strings.Builder
	for _, line := range lines {
		b.WriteString(line.Raw)
		b.WriteByte('\n')
	}
	return b.String()
}

// MsgIs matches lines by message, and optionally by fields (key, value,
// key, value…).
func MsgIs(msg string, kv ...string) func(LogLine) bool {
	return func(l LogLine) bool {
		if !strings.HasPrefix(l.Msg(), msg) {
			return false
		}
		for i := 0; i+1 < len(kv); i += 2 {
			if l.Str(kv[i]) != kv[i+1] {
				return false
			}
		}
		return true
	}
}

// Process is a running binary under test.
type Process struct {
	Name string
	Addr string // host:port it serves on
	URL  string // http://Addr
	Logs *Logs

	cmd      *exec.Cmd
	exited   chan struct{}
	exitErr  error
	stopping bool
}

// start runs bin with args, its stdout and stderr collected in Logs, and
// stops it (SIGTERM, then SIGKILL) when the test ends; the test fails if it
// then exits non-zero or reports a data race. listenMsg is the log message
// that carries the listening address in its address field.
func start(t testing.TB, name, bin, listenMsg string, args ...string) *Process {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = w, w
	cmd.Env = append(os.Environ(), "GORACE=halt_on_error=1")
	p := &Process{Name: name, Logs: newLogs(), cmd: cmd, exited: make(chan struct{})}
	if err := cmd.Start(); err != nil {
		r.Close()
		w.Close()
		t.Fatalf("starting %s: %v", name, err)
	}
	w.Close()
	readDone := make(chan struct{})
	go func() { p.Logs.read(r); r.Close(); close(readDone) }()
	go func() { p.exitErr = cmd.Wait(); close(p.exited) }()
	t.Cleanup(func() {
		p.Stop(t)
		<-readDone
		Client.CloseIdleConnections() // no connection outlives its server
		if strings.Contains(p.Logs.Tail(1<<30), "WARNING: DATA RACE") {
			t.Errorf("%s reported a data race:\n%s", name, p.Logs.Tail(200))
		} else if t.Failed() {
			t.Logf("%s output (tail):\n%s", name, p.Logs.Tail(40))
		}
	})
	if listenMsg != "" {
		line, _ := p.Logs.WaitFor(t, 0, 1, 30*time.Second, name+" "+listenMsg, MsgIs(listenMsg))
		p.Addr = line.Str("address")
		if _, _, err := net.SplitHostPort(p.Addr); err != nil {
			t.Fatalf("%s: bad address in %q", name, line.Raw)
		}
		p.URL = "http://" + p.Addr
	}
	return p
}

// Pid is the process's id, for reading /proc/<pid>/status.
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// Stop sends SIGTERM and waits for the process to exit within StopTimeout
// (then kills it). It fails the test if the exit is not a clean 0, and
// returns how long the exit took.
func (p *Process) Stop(t testing.TB) time.Duration {
	t.Helper()
	select {
	case <-p.exited:
		if !p.stopping {
			t.Errorf("%s exited by itself: %v", p.Name, p.exitErr)
		}
		p.stopping = true
		return 0
	default:
	}
	p.stopping = true
	began := time.Now()
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(StopTimeout):
		_ = p.cmd.Process.Kill()
		<-p.exited
		t.Errorf("%s did not exit within %s of SIGTERM", p.Name, StopTimeout)
	}
	if p.exitErr != nil {
		t.Errorf("%s exited with %v after SIGTERM", p.Name, p.exitErr)
	}
	return time.Since(began)
}

// Kill ends the process with SIGKILL, as a crash or the OOM killer would:
// no shutdown, nothing closed or left behind cleanly. It waits for the
// exit.
func (p *Process) Kill(t testing.TB) {
	t.Helper()
	p.stopping = true
	if err := p.cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
		t.Fatalf("killing %s: %v", p.Name, err)
	}
	<-p.exited
}

// StartSimulator runs telemetry-simulator on a free loopback port (unless
// args give --web.listen-address) with JSON logs.
func StartSimulator(t testing.TB, args ...string) *Process {
	t.Helper()
	_, bin := Binaries(t)
	return start(t, "simulator", bin, "Starting telemetry-simulator", withDefaults(args)...)
}

// StartAggregator runs telemetry-aggregator on a free loopback port with
// JSON logs; it does not wait for readiness (see WaitReady).
func StartAggregator(t testing.TB, args ...string) *Process {
	t.Helper()
	bin, _ := Binaries(t)
	return StartAggregatorBinary(t, bin, args...)
}

// StartAggregatorBinary is StartAggregator with another build of the
// aggregator, such as PlainAggregator's.
func StartAggregatorBinary(t testing.TB, bin string, args ...string) *Process {
	t.Helper()
	return start(t, "aggregator", bin, "Listening on", withDefaults(args)...)
}

func withDefaults(args []string) []string {
	out := append([]string{"--log.format=json"}, args...)
	for _, a := range args {
		if strings.HasPrefix(a, "--web.listen-address") {
			return out
		}
	}
	return append(out, "--web.listen-address=127.0.0.1:0")
}

// FreeAddr returns a loopback address that was free a moment ago, for a
// process that must start after its client knows where it will be.
func FreeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// Client is the HTTP client of the tests: keep-alive, bounded.
var Client = &http.Client{Timeout: 15 * time.Second}

// Response is an answer read in full.
type Response struct {
	Status int
	Header http.Header
	Body   []byte
}

// Do sends a request and reads the whole answer; transport errors fail the
// test.
func Do(t testing.TB, method, url string) Response {
	t.Helper()
	r, err := TryDo(context.Background(), method, url)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// TryDo is Do without the test: for goroutines and polling loops.
func TryDo(ctx context.Context, method, url string) (Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, url, nil)
	if err != nil {
		return Response{}, err
	}
	resp, err := Client.Do(req)
	if err != nil {
		return Response{}, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return Response{}, fmt.Errorf("%s %s: reading body: %w", method, url, err)
	}
	return Response{Status: resp.StatusCode, Header: resp.Header, Body: body}, nil
}

// Get is Do with GET.
func Get(t testing.TB, url string) Response { t.Helper(); return Do(t, http.MethodGet, url) }

// Eventually calls check every interval until it returns nil, and fails the
// test with check's last error at the deadline.
func Eventually(t testing.TB, timeout, interval time.Duration, check func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := check()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("not within %s: %v", timeout, err)
		}
		time.Sleep(interval)
	}
}

// WaitReady waits until /-/ready answers 200.
func WaitReady(t testing.TB, agg *Process, timeout time.Duration) {
	t.Helper()
	Eventually(t, timeout, 20*time.Millisecond, func() error {
		r, err := TryDo(context.Background(), http.MethodGet, agg.URL+"/-/ready")
		if err != nil {
			return err
		}
		if r.Status != http.StatusOK {
			return fmt.Errorf("/-/ready: %d %s", r.Status, strings.TrimSpace(string(r.Body)))
		}
		return nil
	})
}

// SetMode switches the simulator's fault mode at run time.
func SetMode(t testing.TB, sim *Process, mode string) {
	t.Helper()
	r := Do(t, http.MethodPost, sim.URL+"/admin/mode?mode="+mode)
	if r.Status != http.StatusOK {
		t.Fatalf("POST /admin/mode?mode=%s: %d %s", mode, r.Status, r.Body)
	}
}

var errNotYet = errors.New("not yet")
