// Command telemetry-aggregator polls a fabric telemetry source and serves its
// latest snapshot as REST answers, Prometheus metrics and PromQL queries.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/alecthomas/kingpin/v2"
	"github.com/prometheus/common/promslog"
	promslogflag "github.com/prometheus/common/promslog/flag"
	"github.com/prometheus/common/version"
	"github.com/prometheus/exporter-toolkit/web/kingpinflag"

	"github.com/fabrictelemetry/aggregator/aggregator"
	"github.com/fabrictelemetry/aggregator/exporter"
	"github.com/fabrictelemetry/aggregator/queryapi"
	"github.com/fabrictelemetry/aggregator/schema"
)

const name = "telemetry-aggregator"

func main() { os.Exit(run(os.Args[1:])) }

func run(args []string) int {
	app := kingpin.New(name, "Polls a fabric telemetry source (CSV over HTTP) and serves its latest snapshot: REST (/telemetry/GetMetric, /telemetry/ListMetrics), Prometheus metrics (/metrics) and a Prometheus-compatible query API (/api/v1/).")
	webFlags := kingpinflag.AddFlags(app, ":8080")
	var cfg aggregator.Config
	app.Flag("source.url", "URL of the telemetry source's CSV matrix.").Default("http://127.0.0.1:9001/counters").StringVar(&cfg.SourceURL)
	app.Flag("source.interval", "How often to poll the source.").Default("10s").DurationVar(&cfg.SourceInterval)
	app.Flag("source.timeout", "Time limit of one poll, body included.").Default("5s").DurationVar(&cfg.SourceTimeout)
	maxBytes := app.Flag("source.max-bytes", "Largest source body accepted, counted after decompression.").Default("256MiB").Bytes()
	app.Flag("source.max-staleness", "Snapshot age after which /-/ready fails (0: three poll intervals). Stale data is still served, with its age.").Default("0s").DurationVar(&cfg.MaxStaleness)
	app.Flag("demo", "Run a simulated fabric in-process on a free loopback port and poll it instead of --source.url.").BoolVar(&cfg.Demo)
	app.Flag("demo.switches", "Switches in the --demo fabric.").Default("50").IntVar(&cfg.DemoSwitches)
	schemaFile := app.Flag("metrics.schema-file", "CSV file (column,metric,type,scale,help) that adds or overrides metric names of source columns; see docs/metrics.md.").String()
	exporterOpts := exporter.AddFlags(app)
	queryOpts := queryapi.AddFlags(app)
	logConfig := &promslog.Config{}
	promslogflag.AddFlags(app, logConfig)
	app.Version(version.Print(name))
	app.HelpFlag.Short('h')
	_, err := app.Parse(args)
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", name, err)
		return 2
	}
	cfg.SourceMaxBytes = int64(*maxBytes)
	cfg.Query = *queryOpts
	cfg.Logger = promslog.New(logConfig)
	cfg.Logger.Info("Starting "+name, "version", version.Info(), "build_context", version.BuildContext())
	cfg.Exporter = *exporterOpts
	if *schemaFile != "" {
		if cfg.Schema, err = schema.LoadFile(*schemaFile, schema.Default()); err != nil {
			cfg.Logger.Error("Invalid schema file", "err", err)
			return 2
		}
	}

	agg, err := aggregator.New(cfg)
	if err != nil {
		cfg.Logger.Error("Invalid configuration", "err", err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := agg.ListenAndServe(ctx, webFlags); err != nil {
		cfg.Logger.Error("Aggregator failed", "err", err)
		return 1
	}
	cfg.Logger.Info("Stopped")
	return 0
}
