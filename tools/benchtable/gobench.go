package main

import (
	"bytes"
	"cmp"
	"context"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"golang.org/x/perf/benchfmt"
)

// benchResults are go test -bench results by package (last path element),
// benchmark name (without Benchmark and the -GOMAXPROCS suffix) and unit as
// printed (ns/op, B/op, or a b.ReportMetric unit); several -count runs keep
// every value.
type benchResults struct {
	values map[string]map[string]map[string][]float64
	order  []benchKey // first appearance, for the rows picked up by name
}

type benchKey struct{ pkg, name string }

// goBench runs go test -bench in the product module, copying its output to
// o.out (and to log), and reads the results back.
func goBench(ctx context.Context, o options, log io.Writer) (*benchResults, error) {
	out := o.out
	if !filepath.IsAbs(out) {
		out = filepath.Join(o.root, out)
	}
	if !o.reuse {
		args := []string{"test", "-run", "^$", "-bench", o.bench, "-benchmem",
			"-benchtime", o.benchtime, "-count", fmt.Sprint(o.count), "-timeout", "60m"}
		if o.short {
			args = append(args, "-short")
		}
		args = append(args, strings.Fields(o.pkgs)...)
		fmt.Fprintln(log, "go "+strings.Join(args, " "))
		f, err := os.Create(out)
		if err != nil {
			return nil, err
		}
		cmd := exec.CommandContext(ctx, "go", args...)
		cmd.Dir = o.root
		cmd.Stdout = io.MultiWriter(f, log)
		cmd.Stderr = log
		err = cmd.Run()
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			// A package that fails still leaves the others' results:
			// read them, and report the failure after the table.
			runErr := fmt.Errorf("go test -bench: %w (output in %s)", err, out)
			data, rerr := os.ReadFile(out)
			if rerr != nil {
				return nil, runErr
			}
			res, perr := parseBench(data, out)
			if perr != nil {
				return nil, runErr
			}
			return res, runErr
		}
	}
	data, err := os.ReadFile(out)
	if err != nil {
		return nil, err
	}
	return parseBench(data, out)
}

func parseBench(data []byte, name string) (*benchResults, error) {
	res := &benchResults{values: map[string]map[string]map[string][]float64{}}
	r := benchfmt.NewReader(bytes.NewReader(data), name)
	for r.Scan() {
		rec, ok := r.Result().(*benchfmt.Result)
		if !ok {
			continue // unit metadata and syntax errors: test logs mixed into the output
		}
		pkg := path.Base(rec.GetConfig("pkg"))
		bench := string(rec.Name.Full())
		if i := strings.LastIndexByte(bench, '-'); i > 0 && isDigits(bench[i+1:]) {
			bench = bench[:i] // benchfmt keeps the -GOMAXPROCS suffix in Full
		}
		byName := res.values[pkg]
		if byName == nil {
			byName = map[string]map[string][]float64{}
			res.values[pkg] = byName
		}
		units := byName[bench]
		if units == nil {
			units = map[string][]float64{}
			byName[bench] = units
			res.order = append(res.order, benchKey{pkg, bench})
		}
		for _, v := range rec.Values {
			unit, x := v.Unit, v.Value
			if v.OrigUnit != "" {
				unit, x = v.OrigUnit, v.OrigValue
			}
			units[unit] = append(units[unit], x)
		}
	}
	if err := r.Err(); err != nil {
		return nil, err
	}
	return res, nil
}

func isDigits(s string) bool {
	return s != "" && strings.Trim(s, "0123456789") == ""
}

// get returns the median of a benchmark's values in unit, or NaN.
func (b *benchResults) get(pkg, name, unit string) float64 {
	if b == nil {
		return math.NaN()
	}
	return median(b.values[pkg][name][unit])
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	s := slices.Clone(xs)
	sort.Float64s(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// pair is a figure read from two benchmarks: a measured one and its
// baseline from the same run.
type pair struct {
	item, figure   string
	pkg            string
	bench, unit    string
	base, baseName string // the baseline benchmark and how to call it
	// basePkg and baseUnit are the baseline's package and unit when they
	// are not pkg's and unit.
	basePkg, baseUnit string
	speedup           bool // ratio = baseline ÷ value (how many times faster); otherwise value ÷ baseline
	target            target
}

// benchPairs are the in-process figures of the issue. A benchmark missing
// from the output (renamed, or not in -bench) gives a row saying so.
var benchPairs = []pair{
	{item: "1", figure: "CSV parse, switch matrix 2,000 switches: speedup over encoding/csv + ParseFloat", pkg: "ingest",
		bench: "Parse", unit: "ns/op", base: "ParseBaselineEncodingCSV", baseName: "encoding/csv + ParseFloat", speedup: true, target: atLeast(3)},
	{item: "1", figure: "CSV parse, fabric (UFM body): speedup over encoding/csv + ParseFloat", pkg: "ingest",
		bench: "FabricParse", unit: "ns/op", base: "FabricParseBaselineEncodingCSV", baseName: "encoding/csv + ParseFloat", speedup: true, target: atLeast(3)},
	{item: "1", figure: "ingest cycle, 50 switches: cost vs fetch + count lines", pkg: "ingest",
		bench: "PollCycle/switches=50", unit: "ns/op", base: "FetchOnly/switches=50", baseName: "fetch + count lines", target: atMost(3)},
	{item: "1", figure: "ingest cycle, 2,000 switches: cost vs fetch + count lines", pkg: "ingest",
		bench: "PollCycle/switches=2000", unit: "ns/op", base: "FetchOnly/switches=2000", baseName: "fetch + count lines", target: atMost(3)},
	{item: "1", figure: "ingest cycle, fabric: cost vs fetch + count lines", pkg: "ingest",
		bench: "FabricPollCycle", unit: "ns/op", base: "FabricFetchOnly", baseName: "fetch + count lines", target: atMost(3)},
	{item: "2", figure: "GetMetric over loopback, go test, one client, 50 switches: throughput vs bare handler", pkg: "restapi",
		bench: "GetMetricHTTP/switches=50/router", unit: "ns/op", base: "GetMetricHTTP/switches=50/bare_router", baseName: "constant body, same router", speedup: true, target: atLeast(0.9)},
	{item: "4", figure: "/metrics served, 1M series: cost vs copying the rendered bytes", pkg: "exporter",
		bench: "Metrics/served_text", unit: "ns/op", base: "Metrics/floor_copy_rendered", baseName: "copy of the rendered bytes", target: atMost(10)},
	{item: "4", figure: "/metrics served, 1M series: speedup over client_golang Gather + text encoding", pkg: "exporter",
		bench: "Metrics/served_text", unit: "ns/op", base: "Metrics/gather_and_encode", baseName: "Gather + expfmt", speedup: true, target: atLeast(10)},
	{item: "4", figure: "/metrics, 1M series: times less memory allocated by a scrape than by Gather + encode", pkg: "exporter",
		bench: "Metrics/served_text", unit: "B/op", base: "Metrics/gather_and_encode", baseName: "Gather + expfmt", speedup: true},
	{item: "4", figure: "/metrics, 1M series: memory allocated by the first scrape after a poll (render)", pkg: "exporter",
		bench: "Metrics/render_text_once_per_snapshot", unit: "B/op"},
	{item: "5", figure: "PromQL selective query: speedup of the label index over a full scan", pkg: "history",
		bench: "Selective/index", unit: "ns/op", base: "Selective/fullscan", baseName: "full scan", speedup: true, target: atLeast(50)},
	// Issue 13, the poll log on Kafka (kfake in-process: see kafkalog/bench_test.go).
	{item: "13", figure: "poll log: publishing a fabric poll (encode, zstd, produce and commit to an in-process kfake) vs the ingest cycle it follows", pkg: "kafkalog",
		bench: "PublishFabric", unit: "ns/op", basePkg: "ingest", base: "FabricPollCycle", baseName: "ingest cycle, fabric"},
	{item: "13", figure: "poll log: CPU time of publishing a fabric poll, the client's and kfake's together (unlike the time above, other load does not inflate it)", pkg: "kafkalog",
		bench: "PublishFabric", unit: "cpu-s/poll"},
	{item: "13", figure: "poll log: zstd bytes of a fabric poll in the log vs the CSV body it came from", pkg: "kafkalog",
		bench: "PublishFabric", unit: "zstd-bytes/poll", base: "PublishFabric", baseUnit: "csv-bytes/poll", baseName: "CSV body"},
	{item: "13", figure: "poll log: assembling a fabric poll after the previous one (a replica's steady work) vs parsing its CSV", pkg: "polllog",
		bench: "AssembleFabricWarm", unit: "ns/op", basePkg: "ingest", base: "FabricParse", baseName: "ingest parse, fabric"},
	{item: "13", figure: "poll log: assembling a fabric poll cold (a replica's first) vs parsing its CSV", pkg: "polllog",
		bench: "AssembleFabric", unit: "ns/op", basePkg: "ingest", base: "FabricParse", baseName: "ingest parse, fabric"},
	{item: "13", figure: "poll log: replay rate of the fabric from kfake (12 polls, to ready)", pkg: "kafkalog",
		bench: "ReplayFabric/fabric", unit: "polls/s"},
	{item: "13", figure: "poll log: CPU time of replaying a fabric poll, the client's and kfake's together", pkg: "kafkalog",
		bench: "ReplayFabric/fabric", unit: "cpu-s/poll"},
	{item: "13", figure: "poll log: time to ready with an hour (360 polls) of the fabric, estimated from the replay rate of 12 polls", pkg: "kafkalog",
		bench: "ReplayFabric/fabric", unit: "s/hour-of-polls"},
	{item: "13", figure: "poll log: a tenth of the fabric (200 × 64 ports): time to ready with an hour, measured, vs estimated from 12 polls", pkg: "kafkalog",
		bench: "ReplayFabric/tenth-fabric-hour", unit: "s/hour-of-polls", base: "ReplayFabric/tenth-fabric", baseName: "estimated from 12 polls"},
}

// benchRows turns the results into rows: the pairs above, then every
// history and queryapi benchmark by name (those packages' benchmarks are
// still being reworked, so they are listed as they come), encoded bytes per
// sample judged against item 6's 2 bytes per sample.
func benchRows(b *benchResults) []row {
	var rows []row
	for _, p := range benchPairs {
		rows = append(rows, p.row(b))
	}
	used := map[benchKey]bool{}
	for _, p := range benchPairs {
		used[benchKey{p.pkg, p.bench}] = true
		used[benchKey{cmp.Or(p.basePkg, p.pkg), p.base}] = true
	}
	for _, k := range b.order {
		if (k.pkg != "history" && k.pkg != "queryapi") || used[k] {
			continue
		}
		units := b.values[k.pkg][k.name]
		r := row{item: "5–6", figure: "PromQL " + k.name, ratio: math.NaN()}
		var parts []string
		if v := median(units["ns/op"]); !math.IsNaN(v) {
			parts = append(parts, fmtSeconds(v/1e9)+"/op")
		}
		if v := median(units["B/op"]); !math.IsNaN(v) {
			parts = append(parts, fmtBytes(v)+"/op")
		}
		custom := make([]string, 0, len(units))
		for u := range units {
			if u != "ns/op" && u != "B/op" && u != "allocs/op" && !strings.HasSuffix(u, "/s") {
				custom = append(custom, u)
			}
		}
		sort.Strings(custom)
		for _, u := range custom {
			parts = append(parts, fmt.Sprintf("%s %s", trimFloat(median(units[u])), u))
			switch u {
			case "encoded-B/sample":
				// Item 6's target is for samples that have left the head.
				r.item, r.ratio, r.target = "6", median(units[u])/2, atMost(1)
				r.baseline = "item 6's 2 bytes/sample, for snapshots that left the head"
			case "bytes/sample":
				r.item, r.baseline = "6", "the plain head: 8 bytes a sample by design"
			}
		}
		r.value = strings.Join(parts, ", ")
		rows = append(rows, r)
	}
	return rows
}

func (p pair) row(b *benchResults) row {
	r := row{item: p.item, figure: p.figure, target: p.target, ratio: math.NaN()}
	v := b.get(p.pkg, p.bench, p.unit)
	r.value = p.pkg + " " + p.bench + ": " + fmtUnit(v, p.unit)
	if math.IsNaN(v) {
		r.value = p.pkg + " " + p.bench + ": not in the output"
	}
	if p.base == "" {
		return r
	}
	basePkg, baseUnit := cmp.Or(p.basePkg, p.pkg), cmp.Or(p.baseUnit, p.unit)
	base := b.get(basePkg, p.base, baseUnit)
	name := p.base
	if basePkg != p.pkg {
		name = basePkg + " " + name
	}
	r.baseline = p.baseName + " (" + name + "): " + fmtUnit(base, baseUnit)
	if math.IsNaN(base) {
		r.baseline = p.baseName + " (" + name + "): not in the output"
	}
	if p.speedup {
		r.ratio = base / v
	} else {
		r.ratio = v / base
	}
	return r
}

func fmtUnit(v float64, unit string) string {
	switch {
	case math.IsNaN(v):
		return "—"
	case unit == "ns/op":
		return fmtSeconds(v/1e9) + "/op"
	case unit == "B/op":
		return fmtBytes(v) + "/op"
	}
	return trimFloat(v) + " " + unit
}
