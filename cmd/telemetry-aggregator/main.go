// Command telemetry-aggregator polls a fabric telemetry source and serves its
// latest snapshot as REST answers, Prometheus metrics and PromQL queries.
package main

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"net/url"
	"os"
	"os/signal"
	"runtime/debug"
	"strconv"
	"syscall"

	"github.com/KimMachineGun/automemlimit/memlimit"
	"github.com/alecthomas/kingpin/v2"
	"github.com/prometheus/common/model"
	"github.com/prometheus/common/promslog"
	promslogflag "github.com/prometheus/common/promslog/flag"
	"github.com/prometheus/common/version"
	"github.com/prometheus/exporter-toolkit/web/kingpinflag"

	"github.com/fabrictelemetry/aggregator/aggregator"
	"github.com/fabrictelemetry/aggregator/cluster"
	"github.com/fabrictelemetry/aggregator/config"
	"github.com/fabrictelemetry/aggregator/exporter"
	"github.com/fabrictelemetry/aggregator/ingest"
	"github.com/fabrictelemetry/aggregator/kafkalog"
	"github.com/fabrictelemetry/aggregator/queryapi"
	"github.com/fabrictelemetry/aggregator/schema"
	"github.com/fabrictelemetry/aggregator/selfscrape"
)

const name = "telemetry-aggregator"

func main() { os.Exit(run(os.Args[1:])) }

func run(args []string) int {
	app := kingpin.New(name, "Polls fabric telemetry sources (switch-matrix or UFM Telemetry CSV over HTTP) and serves their latest snapshot: REST (/telemetry/GetMetric, /telemetry/ListMetrics), Prometheus metrics (/metrics) and a Prometheus-compatible query API (/api/v1/).")
	webFlags := kingpinflag.AddFlags(app, ":8080")
	var (
		cfg    aggregator.Config
		source = config.Source{Name: "default"}
	)
	configFile := app.Flag("config.file", "YAML file listing the sources to poll (name, url, format, interval, timeout, max_bytes, shards, sample_limit, column_limit, label_value_length_limit, max_clock_skew, labels, and a Prometheus scrape config's HTTP client settings: tls_config, basic_auth, authorization, proxy_url, follow_redirects, redirect_hosts...); settings a source leaves out come from the --source.* flags. Without it, the --source.* flags describe the one source, named \"default\". See docs/configuration.md.").String()
	app.Flag("source.url", "URL of the telemetry source's CSV, or kafka://HOST:PORT[,HOST:PORT...]/TOPIC to follow a poll log instead (its sources are served as published, replayed from now minus --query.retention; TLS and SASL from the --kafka.* flags), or kafka://HOST:PORT[,...]/TOPIC?group=NAME to be one of several partitioned replicas sharing it: a member of consumer group NAME, holding the switches of the partitions the group assigns it and answering for the whole fabric by asking the others (see docs/scale-out.md).").Default("http://127.0.0.1:9001/counters").StringVar(&source.URL)
	app.Flag("source.format", "CSV layout of the source: matrix (switch_id[,port],timestamp,...), ufm (UFM Telemetry) or auto (told from the header).").Default("auto").EnumVar(&source.Format, config.FormatAuto, config.FormatMatrix, config.FormatUFM)
	app.Flag("source.shards", "Poll the source as this many UFM shards in parallel (?num_shards=N&shard=i) and merge them.").Default("1").IntVar(&source.Shards)
	interval := app.Flag("source.interval", "How often to poll the source.").Default("10s").Duration()
	timeout := app.Flag("source.timeout", "Time limit of one poll, body included.").Default("5s").Duration()
	maxBytes := app.Flag("source.max-bytes", "Largest source body accepted, counted after decompression; per body, so each shard's has its own. A larger body costs at most this much memory before it is rejected.").Default("256MiB").Bytes()
	app.Flag("source.sample-limit", "Most values one poll may hold (rows × metric columns, empty cells included); a poll over it is rejected with reason limit. 0: no limit.").
		Default(strconv.Itoa(ingest.DefaultSampleLimit)).IntVar(&source.SampleLimit)
	app.Flag("source.column-limit", "Most columns the header of a body may have; a poll over it is rejected with reason limit. 0: no limit.").
		Default(strconv.Itoa(ingest.DefaultColumnLimit)).IntVar(&source.ColumnLimit)
	app.Flag("source.label-value-length-limit", "Most bytes of a label value (switch_id, port, node_guid); a poll over it is rejected with reason limit. 0: no limit.").
		Default(strconv.Itoa(ingest.DefaultLabelValueLengthLimit)).IntVar(&source.LabelValueLengthLimit)
	maxClockSkew := app.Flag("source.max-clock-skew", "How far ahead of the poll time a source's timestamp may be; a snapshot further ahead is stamped with the poll time instead, counted and logged. A timestamp in the past is kept. 0: never clamp.").
		Default("10s").Duration()
	app.Flag("source.max-staleness", "Age of the freshest data after which /-/ready fails (0: three times the longest poll interval). Stale data is still served, with its age.").Default("0s").DurationVar(&cfg.MaxStaleness)
	app.Flag("storage.path", "Directory where each source's last good snapshot is kept, written atomically after every accepted poll and served again at start-up with its original time, and its PromQL history: each run of 30 polls written once it is encoded, and loaded at start-up, so a restart loses at most the 43 polls before the last (about 7 minutes at 10s; see docs/configuration.md). Empty: nothing is kept.").StringVar(&cfg.StoragePath)
	app.Flag("demo", "Run a simulated fabric in-process on a free loopback port and poll it instead of --source.url or --config.file.").BoolVar(&cfg.Demo)
	app.Flag("demo.switches", "Switches in the --demo fabric.").Default("50").IntVar(&cfg.DemoSwitches)
	app.Flag("demo.ports", "Ports per switch in the --demo fabric; > 0 serves per-port counters in UFM's layout.").Default("0").IntVar(&cfg.DemoPorts)
	app.Flag("web.enable-pprof", "Serve Go runtime profiles (CPU, heap, goroutines) under /debug/pprof/.").BoolVar(&cfg.EnablePprof)
	app.Flag("web.external-url", "The base URL other replicas reach this aggregator at, as Prometheus's flag of that name: in partitioned mode (a kafka://…?group= source) it is advertised to the group, and must be reachable from every replica (https:// when serving TLS with --web.config.file). It also names the instance of the self-metrics in the query API unless --query.self-metrics-instance does. Default: http:// and the first --web.listen-address, with this host's name when the address names no host; required when that address's port is 0.").
		StringVar(&cfg.ExternalURL)
	schemaFile := app.Flag("metrics.schema-file", "CSV file (column,metric,type,scale,help) that adds or overrides metric names of source columns; see docs/metrics.md.").String()
	exporterOpts := exporter.AddFlags(app)
	queryOpts := queryapi.AddFlags(app)
	kafkaOpts := kafkalog.AddFlags(app)
	fanoutOpts := cluster.AddFlags(app)
	autoMemLimit := app.Flag("auto-gomemlimit", "Set the Go memory limit (GOMEMLIMIT) to a share of the cgroup's memory limit, or of the machine's memory without one; the default --query.max-concurrency is derived from it. A GOMEMLIMIT environment variable always wins. --no-auto-gomemlimit leaves the limit unset.").
		Default("true").Bool()
	autoMemLimitRatio := app.Flag("auto-gomemlimit.ratio", "Share of the cgroup's or the machine's memory the Go memory limit is set to, in (0, 1].").
		Default("0.9").Float64()
	logConfig := &promslog.Config{}
	promslogflag.AddFlags(app, logConfig)
	app.Version(version.Print(name))
	app.HelpFlag.Short('h')
	_, err := app.Parse(args)
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", name, err)
		return 2
	}
	source.Interval, source.Timeout, source.MaxBytes = model.Duration(*interval), model.Duration(*timeout), config.Bytes(*maxBytes)
	source.MaxClockSkew = model.Duration(*maxClockSkew)
	cfg.Query = *queryOpts
	cfg.Query.Flags = queryapi.FlagValues(app)
	if u, err := url.Parse(cfg.ExternalURL); err == nil && cfg.Query.SelfMetricsInstance == "" && u.Host != "" {
		cfg.Query.SelfMetricsInstance = u.Host // each replica its own, as the fan-out needs
	}
	if len(*webFlags.WebListenAddresses) > 0 {
		first := (*webFlags.WebListenAddresses)[0]
		if cfg.Query.SelfMetricsInstance == "" {
			cfg.Query.SelfMetricsInstance = selfscrape.Instance(first)
		}
		if cfg.ExternalURL == "" {
			cfg.ExternalURL = aggregator.DefaultExternalURL(first)
		}
	}
	cfg.Fanout = *fanoutOpts
	cfg.Logger = promslog.New(logConfig)
	cfg.Logger.Info("Starting "+name, "version", version.Info(), "build_context", version.BuildContext())
	if err := setGoMemLimit(*autoMemLimit, *autoMemLimitRatio, cfg.Logger); err != nil {
		cfg.Logger.Error("Invalid memory limit", "err", err)
		return 2
	}
	cfg.Exporter = *exporterOpts
	cfg.Kafka = *kafkaOpts
	if *schemaFile != "" {
		if cfg.Schema, err = schema.LoadFile(*schemaFile, schema.Default()); err != nil {
			cfg.Logger.Error("Invalid schema file", "err", err)
			return 2
		}
	}

	sources, err := loadSources(*configFile, source, cfg.Demo)
	if err != nil {
		cfg.Logger.Error("Invalid source configuration", "err", err)
		return 2
	}
	cfg.Sources = sources.Sources

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

// setGoMemLimit sets the Go memory limit as Prometheus 3 does, with
// automemlimit: ratio times the cgroup's memory limit, or times the
// machine's memory when the cgroup has none, unless GOMEMLIMIT is set (the
// runtime has applied it) or enabled is false. The runtime then collects
// garbage harder as the heap nears the limit instead of letting it double,
// and the query API derives its concurrency from the limit. The limit and
// where it came from are logged.
func setGoMemLimit(enabled bool, ratio float64, logger *slog.Logger) error {
	if !(ratio > 0 && ratio <= 1) {
		return fmt.Errorf("--auto-gomemlimit.ratio must be in (0, 1], not %v", ratio)
	}
	from := "none"
	switch {
	case os.Getenv("GOMEMLIMIT") != "":
		from = "GOMEMLIMIT"
	case enabled:
		machine := func() (uint64, error) {
			if limit, err := memlimit.FromCgroup(); err == nil {
				from = "cgroup"
				return limit, nil
			}
			from = "system memory"
			return memlimit.FromSystem()
		}
		if _, err := memlimit.Set(memlimit.WithRatio(ratio), memlimit.WithProvider(machine)); err != nil {
			logger.Warn("Could not set the Go memory limit", "err", err)
			from = "none"
		}
	}
	limit := debug.SetMemoryLimit(-1)
	if limit == math.MaxInt64 {
		logger.Info("Go memory limit", "limit", "none")
		return nil
	}
	logger.Info("Go memory limit", "limit", fmt.Sprintf("%.2fGiB", float64(limit)/(1<<30)), "limit_bytes", limit, "from", from)
	return nil
}

// loadSources reads --config.file, or makes the one source of the flags.
func loadSources(file string, flags config.Source, demo bool) (*config.Config, error) {
	if file != "" && !demo {
		return config.Load(file, flags)
	}
	if demo {
		flags.URL = "http://127.0.0.1/" // replaced by the in-process simulator's
	}
	return config.Single(flags)
}
