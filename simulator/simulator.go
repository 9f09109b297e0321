package simulator

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"sync"
	"sync/atomic"
	"time"
)

// Defaults for the zero values of Config.
const (
	DefaultSwitches  = 50
	DefaultInterval  = 10 * time.Second
	DefaultSlowDelay = 2 * time.Second

	// maxSwitches keeps a typo from allocating gigabytes.
	maxSwitches = 1_000_000
	// maxPorts and maxPortRows do the same for Config.Ports.
	maxPorts    = 4096
	maxPortRows = 10_000_000
	// minInterval keeps the ticker from spinning.
	minInterval = time.Millisecond
)

// Config configures a Simulator. The zero value is a steady fabric of
// DefaultSwitches switches serving good data every DefaultInterval.
type Config struct {
	// Switches is the number of switches, DefaultSwitches if zero.
	Switches int
	// Interval is how often a new snapshot is generated, DefaultInterval if
	// zero. Each tick adds one Interval's worth of traffic to the counters.
	Interval time.Duration
	// Ports, when positive, gives every switch that many ports and makes
	// /counters serve one row per switch port (PortHeader) instead of one
	// per switch (Header). Zero keeps the switch matrix, byte for byte as
	// before Ports existed; /csv/metrics is per port either way (see
	// UFMHeader).
	Ports int
	// Seed makes the whole sequence of snapshots deterministic.
	Seed int64
	// IncidentRate is the chance per switch and tick that an incident starts
	// (link flap, error burst, hot switch, congestion, drop-out, reboot).
	// Zero is a steady fabric: every switch in every snapshot, counters only
	// growing.
	IncidentRate float64
	// Mode is the fault mode of /counters and /csv/metrics until changed.
	Mode Mode
	// SlowDelay is how long ModeSlow waits before answering,
	// DefaultSlowDelay if zero.
	SlowDelay time.Duration
	// Logger receives the simulator's logs; nil discards them.
	Logger *slog.Logger
	// OnTick, if set, is called after each Tick has published its
	// snapshot (Body serves it then), from Tick's goroutine: it must
	// return quickly. The snapshot New renders gets no call.
	OnTick func()
}

// Simulator generates fabric snapshots and serves them over HTTP.
type Simulator struct {
	cfg    Config
	logger *slog.Logger
	info   *fabricInfo // what never changes: IDs, GUIDs, port count

	mu     sync.Mutex // serialises Tick: guards fabric
	fabric *fabric

	snap     atomic.Pointer[snapshot]
	mode     atomic.Int64 // the global Mode
	requests atomic.Uint64

	// stopped is closed when Run returns, so that held requests (TIMEOUT,
	// SLOW) end with the simulator instead of outliving it.
	stopped  chan struct{}
	stopOnce sync.Once
}

// New validates cfg, fills in defaults and renders the first snapshot,
// stamped with the current time. Only the timestamps depend on the clock:
// the values depend on Seed and the number of Tick calls alone.
func New(cfg Config) (*Simulator, error) {
	cfg, err := withDefaults(cfg)
	if err != nil {
		return nil, err
	}
	s := &Simulator{
		cfg:     cfg,
		logger:  cfg.Logger,
		info:    newFabricInfo(cfg.Switches, cfg.Seed),
		fabric:  newFabric(cfg.Switches, cfg.Ports, cfg.Seed, cfg.IncidentRate, cfg.Interval.Seconds()),
		stopped: make(chan struct{}),
	}
	s.mode.Store(int64(cfg.Mode))
	s.snap.Store(s.render(time.Now(), nil))
	return s, nil
}

func withDefaults(cfg Config) (Config, error) {
	if cfg.Switches == 0 {
		cfg.Switches = DefaultSwitches
	}
	if cfg.Interval == 0 {
		cfg.Interval = DefaultInterval
	}
	if cfg.SlowDelay == 0 {
		cfg.SlowDelay = DefaultSlowDelay
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}

	var errs []error
	if cfg.Switches < 0 || cfg.Switches > maxSwitches {
		errs = append(errs, fmt.Errorf("switches must be between 1 and %d, got %d", maxSwitches, cfg.Switches))
	}
	if cfg.Interval < minInterval {
		errs = append(errs, fmt.Errorf("interval must be at least %s, got %s", minInterval, cfg.Interval))
	}
	if cfg.Ports < 0 || cfg.Ports > maxPorts {
		errs = append(errs, fmt.Errorf("ports must be between 0 and %d, got %d", maxPorts, cfg.Ports))
	} else if cfg.Switches > 0 && cfg.Ports > maxPortRows/cfg.Switches {
		errs = append(errs, fmt.Errorf("switches × ports must be at most %d, got %d × %d", maxPortRows, cfg.Switches, cfg.Ports))
	}
	if math.IsNaN(cfg.IncidentRate) || cfg.IncidentRate < 0 || cfg.IncidentRate > 1 {
		errs = append(errs, fmt.Errorf("incident rate must be between 0 and 1, got %v", cfg.IncidentRate))
	}
	if !cfg.Mode.valid() {
		errs = append(errs, fmt.Errorf("invalid mode %d", int(cfg.Mode)))
	}
	if cfg.SlowDelay < 0 {
		errs = append(errs, fmt.Errorf("slow delay must not be negative, got %s", cfg.SlowDelay))
	}
	if err := errors.Join(errs...); err != nil {
		return cfg, fmt.Errorf("invalid simulator config: %w", err)
	}
	return cfg, nil
}

// Run generates a snapshot every Interval until ctx is done, then returns nil.
// Requests held by TIMEOUT or SLOW are released when Run returns.
func (s *Simulator) Run(ctx context.Context) error {
	defer s.stopOnce.Do(func() { close(s.stopped) })

	t := time.NewTicker(s.cfg.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case now := <-t.C:
			s.Tick(now)
		}
	}
}

// Tick advances the fabric by one Interval and publishes the snapshot,
// stamped with now. Tests call it directly to control time.
func (s *Simulator) Tick(now time.Time) {
	s.mu.Lock()
	s.fabric.tick()
	s.snap.Store(s.render(now, s.snap.Load()))
	s.mu.Unlock()
	if s.cfg.OnTick != nil {
		s.cfg.OnTick()
	}
}

// Body returns the current snapshot as a good /counters body: the switch
// matrix (Header), or one row per port (PortHeader) when Config.Ports is
// set. It is shared: callers must not modify it.
func (s *Simulator) Body() []byte {
	return s.snap.Load().counters.body
}

// UFMBody returns the current snapshot as a good /csv/metrics body, in UFM
// Telemetry's layout (UFMHeader). It is shared: callers must not modify it.
// With Config.Ports zero the first call after a tick renders it.
func (s *Simulator) UFMBody() []byte {
	return s.snap.Load().ufmTable().body
}

// SetMode changes the global fault mode. Invalid modes are ignored and
// logged.
func (s *Simulator) SetMode(m Mode) {
	if !m.valid() {
		s.logger.Warn("Ignoring invalid mode", "mode", int(m))
		return
	}
	if old := Mode(s.mode.Swap(int64(m))); old != m {
		s.logger.Info("Mode changed", "from", old, "to", m)
	}
}

// Mode returns the current global fault mode.
func (s *Simulator) Mode() Mode {
	return Mode(s.mode.Load())
}
