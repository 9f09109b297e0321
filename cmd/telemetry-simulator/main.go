// Command telemetry-simulator serves synthetic switch fabric counters as CSV
// at /counters (one row per switch, or per port with --ports) and the same
// fabric per port in NVIDIA UFM Telemetry's CSV layout at /csv/metrics, for
// developing and testing the aggregator without a fabric. It can be told to
// fail in the ways the real endpoint does; see the simulator package for the
// modes and the layouts. With --kafka.brokers it also writes each snapshot
// straight to a poll log topic (docs/scale-out.md).
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/alecthomas/kingpin/v2"
	"github.com/prometheus/common/promslog"
	"github.com/prometheus/common/promslog/flag"
	"github.com/prometheus/common/version"

	"github.com/fabrictelemetry/aggregator/kafkalog"
	"github.com/fabrictelemetry/aggregator/simulator"
)

const (
	name = "telemetry-simulator"
	// shutdownTimeout bounds how long in-flight requests may take to finish
	// after a signal.
	shutdownTimeout = 10 * time.Second
)

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

// run serves until SIGINT or SIGTERM and returns the exit code.
func run(args []string, stdout, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return runContext(ctx, args, stdout, stderr)
}

// options are the parsed command line.
type options struct {
	listenAddress string
	sim           simulator.Config
	logConfig     promslog.Config
	kafka         *kafkalog.Options
}

// runContext is run with the lifetime given by ctx, so tests can stop it.
func runContext(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	opts, code, ok := parseArgs(args, stdout, stderr)
	if !ok {
		return code
	}
	logger := promslog.New(&opts.logConfig)
	opts.sim.Logger = logger
	var log *pollLog
	if opts.kafka.Brokers != "" {
		var err error
		if log, err = newPollLog(opts.kafka, logger); err != nil {
			logger.Error("Invalid poll log configuration", "err", err)
			return 1
		}
		opts.sim.OnTick = log.tick
	}

	sim, err := simulator.New(opts.sim)
	if err != nil {
		logger.Error("Invalid configuration", "err", err)
		return 1
	}
	ln, err := net.Listen("tcp", opts.listenAddress)
	if err != nil {
		logger.Error("Cannot listen", "address", opts.listenAddress, "err", err)
		return 1
	}
	logger.Info("Starting "+name,
		"version", version.Info(),
		"address", ln.Addr().String(),
		"switches", opts.sim.Switches,
		"ports", opts.sim.Ports,
		"interval", opts.sim.Interval,
		"seed", opts.sim.Seed,
		"incident_rate", opts.sim.IncidentRate,
		"mode", opts.sim.Mode,
		"slow_delay", opts.sim.SlowDelay,
	)
	stopLog := func() {}
	if log != nil {
		stopLog = log.start(ctx, sim)
	}
	err = serve(ctx, ln, sim, logger)
	stopLog()
	if err != nil {
		logger.Error("Server failed", "err", err)
		return 1
	}
	logger.Info("Stopped")
	return 0
}

// parseArgs parses the command line. When ok is false the program must exit
// with code: after --help or --version (0) or on a usage error (2).
func parseArgs(args []string, stdout, stderr io.Writer) (opts options, code int, ok bool) {
	app := kingpin.New(name, "Serves synthetic switch fabric counters as CSV at /counters (per switch, or per port with --ports) "+
		"and per port in UFM Telemetry's layout at /csv/metrics (sharded with ?num_shards=N&shard=i), optionally failing on purpose.")
	app.UsageWriter(stdout).ErrorWriter(stderr)
	app.HelpFlag.Short('h')
	app.Version(version.Print(name))
	exitCode := -1
	app.Terminate(func(c int) {
		if exitCode < 0 {
			exitCode = c
		}
	})

	modes := strings.Join(simulator.ModeNames(), ", ")
	var modeFlagSet bool
	app.Flag("web.listen-address", "Address on which to serve the counters.").
		Default(":9001").StringVar(&opts.listenAddress)
	app.Flag("switches", "Number of simulated switches.").
		Default("50").IntVar(&opts.sim.Switches)
	app.Flag("ports", "Ports per switch. 0 keeps /counters one row per switch (the original switch matrix) and gives each switch 32, 40 or 64 ports in /csv/metrics; N > 0 gives every switch N ports and makes /counters one row per port.").
		Default("0").IntVar(&opts.sim.Ports)
	app.Flag("interval", "How often a new snapshot is generated.").
		Default("10s").DurationVar(&opts.sim.Interval)
	app.Flag("seed", "Seed of the simulation. The same seed gives the same fabric; it is fixed by default so that runs are reproducible.").
		Default("1").Int64Var(&opts.sim.Seed)
	app.Flag("incident-rate", "Chance per switch and snapshot that an incident starts (link flap, error burst, hot switch, congestion, drop-out, reboot). 0 is a steady fabric.").
		Default("0.002").Float64Var(&opts.sim.IncidentRate)
	modeFlag := app.Flag("mode", "Fault mode of /counters and /csv/metrics, one of: "+modes+".").
		Default("OK").IsSetByUser(&modeFlagSet).String()
	app.Flag("slow-delay", "How long the SLOW mode waits before answering.").
		Default("2s").DurationVar(&opts.sim.SlowDelay)
	modeArg := app.Arg("mode", "Fault mode, as with --mode; kept for compatibility with the original simulator.").String()
	opts.kafka = kafkalog.AddProducerFlags(app)
	flag.AddFlags(app, &opts.logConfig)
	opts.logConfig.Writer = stderr

	_, err := app.Parse(args)
	if exitCode >= 0 {
		return opts, exitCode, false
	}
	if err == nil {
		err = checkPositive(opts.sim)
	}
	if err == nil {
		opts.sim.Mode, err = chooseMode(*modeFlag, modeFlagSet, *modeArg)
	}
	if err == nil && opts.kafka.Brokers != "" {
		_, err = opts.kafka.BrokerList()
	}
	if err != nil {
		fmt.Fprintf(stderr, "%s: error: %v, try --help\n", name, err)
		return opts, 2, false
	}
	return opts, 0, true
}

// checkPositive rejects the zero values that simulator.Config would
// silently replace with defaults: on the command line they are mistakes.
func checkPositive(cfg simulator.Config) error {
	switch {
	case cfg.Switches <= 0:
		return fmt.Errorf("--switches must be positive, got %d", cfg.Switches)
	case cfg.Ports < 0:
		return fmt.Errorf("--ports must not be negative, got %d", cfg.Ports)
	case cfg.Interval <= 0:
		return fmt.Errorf("--interval must be positive, got %s", cfg.Interval)
	case cfg.SlowDelay <= 0:
		return fmt.Errorf("--slow-delay must be positive, got %s", cfg.SlowDelay)
	}
	return nil
}

// chooseMode reconciles --mode with the positional mode. Either may be
// given; both only if they agree.
func chooseMode(flagValue string, flagSet bool, arg string) (simulator.Mode, error) {
	mode, err := simulator.ParseMode(flagValue)
	if err != nil {
		return 0, fmt.Errorf("--mode: %w", err)
	}
	if arg == "" {
		return mode, nil
	}
	argMode, err := simulator.ParseMode(arg)
	if err != nil {
		return 0, fmt.Errorf("mode argument: %w", err)
	}
	if flagSet && argMode != mode {
		return 0, fmt.Errorf("mode argument %s contradicts --mode=%s", argMode, mode)
	}
	return argMode, nil
}

// serve runs the simulator and its HTTP server on ln until ctx is done, then
// shuts both down. Held requests (TIMEOUT, SLOW) are released first, so that
// the shutdown does not wait for them.
func serve(ctx context.Context, ln net.Listener, sim *simulator.Simulator, logger *slog.Logger) error {
	srv := &http.Server{
		Handler:           sim.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		// No WriteTimeout: TIMEOUT and SLOW hold responses on purpose, and
		// a write timeout would end them on the server's terms, not the
		// client's.
		ErrorLog: slog.NewLogLogger(logger.Handler(), slog.LevelError),
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()

	runCtx, stopRun := context.WithCancel(ctx)
	runDone := make(chan struct{})
	go func() {
		defer close(runDone)
		_ = sim.Run(runCtx)
	}()

	var err error
	select {
	case <-ctx.Done():
		logger.Info("Shutting down")
	case err = <-serveErr:
		err = fmt.Errorf("serving: %w", err)
	}
	stopRun()
	<-runDone

	shutdownCtx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	if shutErr := srv.Shutdown(shutdownCtx); shutErr != nil {
		err = errors.Join(err, fmt.Errorf("shutting down: %w", shutErr))
	}
	return err
}
