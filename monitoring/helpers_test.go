package monitoring_test

import (
	"bufio"
	"bytes"
	"context"
	"log/slog"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/fabrictelemetry/aggregator/cluster"
	"github.com/fabrictelemetry/aggregator/exporter"
	"github.com/fabrictelemetry/aggregator/ingest"
	"github.com/fabrictelemetry/aggregator/kafkalog"
	"github.com/fabrictelemetry/aggregator/polllog"
	"github.com/fabrictelemetry/aggregator/schema"
	"github.com/fabrictelemetry/aggregator/simulator"
	"github.com/fabrictelemetry/aggregator/snapshot"
)

// repoRoot is the directory of the root module's go.mod, found upwards from
// the test's directory.
func repoRoot(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && bytes.Contains(b, []byte("module github.com/fabrictelemetry/aggregator\n")) {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no go.mod of github.com/fabrictelemetry/aggregator above the test directory")
		}
		dir = parent
	}
}

// glob returns the files matching pattern under the repository root, and
// fails when there are none.
func glob(t testing.TB, pattern string) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(repoRoot(t), pattern))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatalf("no file matches %s", pattern)
	}
	return files
}

var (
	toolsMu    sync.Mutex
	toolsBuilt = map[string]string{}
	toolsDir   string
)

// toolPackages are the tools of tools/go.mod the tests run.
var toolPackages = map[string]string{
	"promtool": "github.com/prometheus/prometheus/cmd/promtool",
	"amtool":   "github.com/prometheus/alertmanager/cmd/amtool",
}

// tool builds a tool pinned in tools/go.mod once per test binary and returns
// the path of the binary. A tool that cannot be built fails the test: these
// checks are the point of the package, skipping them would hide a broken
// stack. On a cold build cache promtool takes minutes to compile.
func tool(t *testing.T, name string) string {
	t.Helper()
	toolsMu.Lock()
	defer toolsMu.Unlock()
	if bin, ok := toolsBuilt[name]; ok {
		return bin
	}
	if toolsDir == "" {
		dir, err := os.MkdirTemp("", "monitoring-tools-")
		if err != nil {
			t.Fatal(err)
		}
		toolsDir = dir
	}
	bin := filepath.Join(toolsDir, name)
	root := repoRoot(t)
	start := time.Now()
	cmd := exec.CommandContext(testContext(t), "go", "build", "-modfile="+filepath.Join(root, "tools", "go.mod"), "-o", bin, toolPackages[name])
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building %s from tools/go.mod: %v\n%s", name, err, out)
	}
	t.Logf("built %s in %s", name, time.Since(start).Round(time.Millisecond))
	toolsBuilt[name] = bin
	return bin
}

// testContext ends shortly before the test binary's deadline, so that a
// hanging tool fails the test with its output instead of a panic.
func testContext(t *testing.T) context.Context {
	ctx := t.Context()
	if d, ok := t.Deadline(); ok {
		c, cancel := context.WithDeadline(ctx, d.Add(-10*time.Second))
		t.Cleanup(cancel)
		return c
	}
	return ctx
}

// run runs a built tool in the repository root and returns its combined
// output, failing the test on a non-zero exit.
func run(t *testing.T, bin string, args ...string) string {
	t.Helper()
	cmd := exec.CommandContext(testContext(t), bin, args...)
	cmd.Dir = repoRoot(t)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", filepath.Base(bin), strings.Join(args, " "), err, out)
	}
	return string(out)
}

// rel makes paths relative to the repository root, for tool arguments and
// messages.
func rel(t testing.TB, paths ...string) []string {
	t.Helper()
	root := repoRoot(t)
	out := make([]string, len(paths))
	for i, p := range paths {
		r, err := filepath.Rel(root, p)
		if err != nil {
			t.Fatal(err)
		}
		out[i] = r
	}
	return out
}

// ruleFile is one parsed and validated rule file.
type ruleFile struct {
	path   string
	groups []rulefmt.RuleGroup
}

func loadRules(t testing.TB) []ruleFile {
	t.Helper()
	var files []ruleFile
	for _, path := range glob(t, "prometheus/*.yml") {
		rgs, errs := rulefmt.ParseFile(path, false, model.UTF8Validation, newParser(), slog.New(slog.DiscardHandler))
		for _, err := range errs {
			t.Errorf("%s: %v", path, err)
		}
		if rgs == nil {
			t.FailNow()
		}
		files = append(files, ruleFile{path: path, groups: rgs.Groups})
	}
	return files
}

func newParser() parser.Parser { return parser.NewParser(parser.Options{}) }

var (
	exposedOnce sync.Once
	exposed     map[string]bool
	exposedErr  string
)

// exposedNames is every sample and family name on the real exporter's
// /metrics, serving a snapshot parsed from a real simulator body by the real
// parser with schema.Default(): the data metrics, the snapshot gauges and the
// self-metrics (after one instrumented request, so the HTTP metrics exist).
// Histograms and summaries contribute their family name and their _bucket,
// _sum and _count series.
func exposedNames(t *testing.T) map[string]bool {
	t.Helper()
	exposedOnce.Do(func() {
		exposed, exposedErr = scrapeExporter()
		if exposedErr != "" {
			return
		}
		var pollLog, partitioned map[string]bool
		if pollLog, exposedErr = pollLogNames(); exposedErr == "" {
			maps.Copy(exposed, pollLog)
		}
		if partitioned, exposedErr = partitionedNames(); exposedErr == "" {
			maps.Copy(exposed, partitioned)
		}
	})
	if exposedErr != "" {
		t.Fatal(exposedErr)
	}
	return exposed
}

func scrapeExporter() (map[string]bool, string) {
	sim, err := simulator.New(simulator.Config{Switches: 5, Seed: 1})
	if err != nil {
		return nil, "simulator: " + err.Error()
	}
	snap, err := ingest.NewParser(schema.Default()).Parse(sim.Body(), time.Now())
	if err != nil {
		return nil, "parsing the simulator's body: " + err.Error()
	}
	store := &snapshot.Store{}
	store.Publish(snap)
	exp := exporter.New(store, exporter.Options{})
	exp.AddSource("default") // the ingestion self-metrics exist per source
	srv := httptest.NewServer(exp.Instrument("metrics", exp.Handler()))
	defer srv.Close()

	var body []byte
	for range 2 { // the first request creates the HTTP metrics' series
		req, _ := http.NewRequest(http.MethodGet, srv.URL, nil)
		req.Header.Set("Accept", "text/plain; version=0.0.4")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return nil, "GET /metrics: " + err.Error()
		}
		var buf bytes.Buffer
		_, err = buf.ReadFrom(resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusOK {
			return nil, "GET /metrics: " + resp.Status
		}
		body = buf.Bytes()
	}

	names := map[string]bool{}
	sc := bufio.NewScanner(bytes.NewReader(body))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "# TYPE "):
			if f := strings.Fields(line); len(f) >= 3 {
				names[f[2]] = true
			}
		case line == "" || strings.HasPrefix(line, "#"):
		default:
			if i := strings.IndexAny(line, "{ "); i > 0 {
				names[line[:i]] = true
			}
		}
	}
	if len(names) == 0 {
		return nil, "no metrics on /metrics"
	}
	return names, ""
}

// pollLogNames is every name the poll log's self-metrics (package kafkalog)
// give: a Publisher's (its series exist once it is made) and a Follower's
// after it has read a topic of an in-process kfake cluster on loopback (its
// per-partition lag exists only then). Histograms contribute their _bucket,
// _sum and _count series.
func pollLogNames() (map[string]bool, string) {
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(2, "fabric-telemetry"))
	if err != nil {
		return nil, "kfake: " + err.Error()
	}
	defer cluster.Close()
	reg := prometheus.NewRegistry()
	conn := kafkalog.Conn{Brokers: cluster.ListenAddrs()}
	if _, err := kafkalog.NewPublisher(kafkalog.PublisherConfig{Conn: conn, Topic: "fabric-telemetry", Source: "ufm", Registerer: reg}); err != nil {
		return nil, "publisher: " + err.Error()
	}
	f, err := kafkalog.NewFollower(kafkalog.FollowerConfig{Conn: conn, Topic: "fabric-telemetry", Name: "ufm", OnPoll: func(*polllog.Poll) {}, Registerer: reg})
	if err != nil {
		return nil, "follower: " + err.Error()
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = f.Run(ctx)
	}()
	for !f.Ready() && ctx.Err() == nil {
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	<-done
	if !f.Ready() {
		return nil, "the follower did not read the kfake topic within a minute"
	}
	return gatheredNames(reg, "the poll log's")
}

// gatheredNames is every name of reg's metrics; histograms contribute their
// _bucket, _sum and _count series.
func gatheredNames(reg prometheus.Gatherer, whose string) (map[string]bool, string) {
	families, err := reg.Gather()
	if err != nil {
		return nil, "gathering " + whose + " metrics: " + err.Error()
	}
	names := map[string]bool{}
	for _, mf := range families {
		names[mf.GetName()] = true
		if mf.GetType() == dto.MetricType_HISTOGRAM {
			for _, suffix := range []string{"_bucket", "_sum", "_count"} {
				names[mf.GetName()+suffix] = true
			}
		}
	}
	return names, ""
}

// partitionedNames is every name the self-metrics of a partitioned replica
// give beside the poll log's: a GroupFollower's (its series exist once it
// is made) and the fan-out's (package cluster) after one request for a
// peer's rows, served on loopback.
func partitionedNames() (map[string]bool, string) {
	reg := prometheus.NewRegistry()
	_, err := kafkalog.NewGroupFollower(kafkalog.GroupFollowerConfig{
		Conn: kafkalog.Conn{Brokers: []string{"127.0.0.1:9"}}, Topic: "fabric-telemetry", Group: "replicas",
		URL: "http://127.0.0.1:8080", Name: "default", OnPoll: func(*polllog.Poll) {}, Registerer: reg,
	})
	if err != nil {
		return nil, "group follower: " + err.Error()
	}
	peer := httptest.NewServer(cluster.RowsHandler(&snapshot.Store{}, nil))
	defer peer.Close()
	peers, err := cluster.New(&cluster.Static{SelfURL: "http://127.0.0.1:8080", PeerURLs: []string{peer.URL}}, cluster.Options{Registerer: reg})
	if err != nil {
		return nil, "fan-out: " + err.Error()
	}
	if _, err := peers.Rows(context.Background(), peer.URL, nil); err != nil {
		return nil, "a peer's rows: " + err.Error()
	}
	return gatheredNames(reg, "a partitioned replica's")
}
