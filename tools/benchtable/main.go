// Command benchtable runs the aggregator's benchmark suite (issue 7) and
// prints one table of figures, each beside the baseline measured in the same
// run, the ratio, the target and whether it was met.
//
// It lives in the tools module so that vegeta, the load generator of the
// HTTP figures, stays out of the product's go.mod; tools/go.mod points the
// product module at the working tree (replace ../), so the servers under
// load are built from the product's own packages.
//
// The suite, in order:
//
//   - go test -bench over every package, raw output kept in a file for
//     benchstat (in-process figures: parser, ingest cycle, /metrics, PromQL);
//   - GetMetric over HTTP with keep-alive against a bare net/http server
//     returning a body of the same size: maximum throughput of each at a
//     fixed worker count, then p99 of each at half the bare server's maximum;
//   - zero blocking: GetMetric p99 at a tenth of the bare server's maximum
//     with the 128,000-row per-port fabric re-ingested every second vs
//     idle, for the aggregator as built, the same REST stack on a bare
//     read-copy-update store, and on a store that holds a sync.RWMutex for
//     the duration of each parse;
//   - growth: ingest time, scrape time, snapshot heap and process RSS at 50,
//     500 and 5,000 switches, a tenth of the fabric and the per-port fabric,
//     each in a fresh process; /metrics at fabric scale against the copy of
//     its bytes and against client_golang's Gather.
//
// Every server under load runs in a child process (this binary re-executed
// with the serve subcommand), so the load generator's garbage collector and
// the server's do not stop each other, as with a real client.
//
// Usage (from the repository root, as make bench does):
//
//	cd tools && go run ./benchtable -root .. [-short] [-benchtime 1s] [-count 1]
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

func main() { os.Exit(run(os.Args[1:])) }

func run(args []string) int {
	if len(args) > 0 {
		switch args[0] {
		case "serve":
			return serveMain(args[1:])
		case "growth":
			return growthMain(args[1:])
		}
	}
	var o options
	fs := flag.NewFlagSet("benchtable", flag.ContinueOnError)
	fs.StringVar(&o.root, "root", "..", "repository root (the product module)")
	fs.StringVar(&o.out, "out", "bench.out", "file for the raw go test -bench output (benchstat input), relative to -root")
	fs.StringVar(&o.markdown, "markdown", "", "also write the tables as Markdown to this file, relative to -root")
	fs.StringVar(&o.bench, "bench", ".", "go test -bench pattern")
	fs.StringVar(&o.benchtime, "benchtime", "1s", "go test -benchtime")
	fs.IntVar(&o.count, "count", 1, "go test -count")
	fs.StringVar(&o.pkgs, "pkgs", "./...", "packages to benchmark (space-separated)")
	fs.BoolVar(&o.reuse, "reuse", false, "read the existing -out file instead of running go test")
	fs.BoolVar(&o.short, "short", false, "tiny sizes and durations, for CI: every benchmark and HTTP run once, nothing asserted")
	fs.DurationVar(&o.maxDur, "http.max-duration", 5*time.Second, "length of each maximum-throughput run")
	fs.DurationVar(&o.latDur, "http.latency-duration", 10*time.Second, "length of each fixed-rate p99 run")
	fs.DurationVar(&o.blockDur, "blocking.duration", 15*time.Second, "length of each zero-blocking run")
	fs.IntVar(&o.workers, "http.workers", 4, "vegeta workers (= keep-alive connections) of the maximum-throughput runs")
	fs.IntVar(&o.rounds, "http.rounds", 2, "rounds of each HTTP comparison, the two servers alternating; the best round of each is kept")
	fs.Float64Var(&o.blockRate, "blocking.rate", 0, "requests per second of the zero-blocking runs (0: a tenth of the bare server's maximum, a load that leaves the cores room for ingestion)")
	fs.IntVar(&o.fabricSwitches, "fabric.switches", 2000, "switches of the per-port fabric")
	fs.IntVar(&o.fabricPorts, "fabric.ports", 64, "ports per switch of the per-port fabric")
	fs.StringVar(&o.profileDir, "profile.dir", "", "if set, after the measured runs take CPU profiles of the aggregator (pprof) under the maximum GetMetric load and while re-ingesting the fabric, into this directory")
	fs.StringVar(&o.skip, "skip", "", "comma-separated steps to leave out: gotest, http, blocking, growth")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if o.short {
		o.benchtime, o.count = "1x", 1
		o.maxDur, o.latDur, o.blockDur = 500*time.Millisecond, 500*time.Millisecond, time.Second
		o.rounds, o.fabricSwitches, o.fabricPorts = 1, 20, 4
		if o.blockRate <= 0 {
			o.blockRate = 200
		}
	}
	root, err := filepath.Abs(o.root)
	if err != nil {
		fmt.Fprintln(os.Stderr, "benchtable:", err)
		return 2
	}
	o.root = root
	if o.profileDir != "" && !filepath.IsAbs(o.profileDir) {
		o.profileDir = filepath.Join(root, o.profileDir)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := suite(ctx, o, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "benchtable:", err)
		return 1
	}
	return 0
}

type options struct {
	root, out, markdown, bench, benchtime, pkgs, skip string
	profileDir                                        string
	count, workers, rounds                            int
	reuse, short                                      bool
	maxDur, latDur, blockDur                          time.Duration
	blockRate                                         float64
	fabricSwitches, fabricPorts                       int
}

func (o options) skips(step string) bool {
	for _, s := range strings.Split(o.skip, ",") {
		if strings.TrimSpace(s) == step {
			return true
		}
	}
	return false
}

// suite runs every step and prints the tables to stdout; progress goes to
// log.
func suite(ctx context.Context, o options, stdout, log io.Writer) error {
	start := time.Now()
	step := func(name string) {
		fmt.Fprintf(log, "== %s (at %s)\n", name, time.Since(start).Round(time.Second))
	}
	var rows []row
	var results *benchResults
	var failed error // a step that failed but left results to print
	if !o.skips("gotest") {
		step("go test -bench, raw output in " + o.out)
		var err error
		results, err = goBench(ctx, o, log)
		if results == nil {
			return err
		}
		failed = err
		rows = append(rows, benchRows(results)...)
	}
	var bare *httpFigures
	if !o.skips("http") {
		step("GetMetric over HTTP vs a bare net/http server (vegeta)")
		var err error
		if bare, err = httpFiguresRun(ctx, o, log); err != nil {
			return fmt.Errorf("HTTP figures: %w", err)
		}
		rows = append(rows, bare.rows()...)
	}
	if !o.skips("blocking") {
		step("zero blocking: GetMetric p99 while the fabric is re-ingested every second")
		rate := o.blockRate
		if rate <= 0 {
			rate = 200 // without the HTTP step: a light load
			if bare != nil {
				rate = math.Round(bare.bareMax / 10)
			}
		}
		b, err := blockingRun(ctx, o, rate, log)
		if err != nil {
			return fmt.Errorf("zero-blocking figures: %w", err)
		}
		rows = append(rows, b.rows()...)
	}
	var growth []growthResult
	if !o.skips("growth") {
		step("growth: ingest, scrape, heap and RSS by fabric size")
		var err error
		if growth, err = growthRun(ctx, o, log); err != nil {
			return fmt.Errorf("growth figures: %w", err)
		}
		rows = append(rows, growthRows(growth)...)
	}
	var md strings.Builder
	fmt.Fprintf(&md, "Suite: %d figures in %s.\n\n", len(rows), time.Since(start).Round(time.Second))
	writeTable(&md, rows)
	if len(growth) > 0 {
		md.WriteString("\nGrowth (each size in a fresh process; per series = per present value):\n\n")
		writeGrowthTable(&md, growth)
	}
	fmt.Fprint(stdout, "\n"+md.String())
	if o.markdown != "" {
		path := o.markdown
		if !filepath.IsAbs(path) {
			path = filepath.Join(o.root, path)
		}
		if err := os.WriteFile(path, []byte(md.String()), 0o644); err != nil {
			return err
		}
	}
	return failed
}
