// Package ingest polls a telemetry source, parses and validates its CSV body
// and publishes each accepted body as a new snapshot. All of it runs in the
// source's one writer goroutine, off the read path; a rejected poll changes
// nothing readers can see.
package ingest

import (
	"context"
	"log/slog"
	"time"

	"github.com/fabrictelemetry/aggregator/snapshot"
)

// Cycle is the outcome of one poll.
type Cycle struct {
	Source   string // the Poller's Source
	Start    time.Time
	Fetch    time.Duration
	Parse    time.Duration
	Swap     time.Duration
	Total    time.Duration
	Bytes    int
	Snapshot *snapshot.Snapshot // the published snapshot; nil when rejected
	Err      error              // an *Error when rejected
	// ClampedFrom is the source's own time when it was more than
	// MaxClockSkew ahead of the poll and the snapshot was stamped with the
	// poll time instead; zero otherwise.
	ClampedFrom time.Time
}

// Poller runs one source's poll loop: never two polls at once, a slow poll
// delays the next instead of overlapping it.
type Poller struct {
	// Source names the source in cycles and logs (the config file's name).
	Source  string
	Fetcher *Fetcher
	Parser  *Parser
	// Shards > 1 polls the source as that many UFM shards in parallel
	// (?num_shards=N&shard=i&sharding_field=port_guid) and merges them; a
	// failed shard rejects the whole poll.
	Shards   int
	Interval time.Duration
	Timeout  time.Duration
	// MaxClockSkew is how far ahead of the poll time a snapshot's source
	// time may be. A snapshot further ahead is stamped with the poll time
	// (the moment its body arrived) instead, and the cycle says so: one
	// poll from a source whose clock jumped a year ahead must not pin the
	// served time there. A source time in the past is kept, so that a stuck
	// source shows its age. Zero never clamps.
	MaxClockSkew time.Duration
	// Publish makes an accepted snapshot visible; it is timed as the swap phase.
	Publish func(*snapshot.Snapshot)
	// Observe, if set, is called after every cycle (self-metrics).
	Observe func(Cycle)
	Logger  *slog.Logger
	Now     func() time.Time // defaults to time.Now

	shards []shard
	merged *snapshot.Snapshot // the last merge of the shards
}

// Run polls at once and then every Interval until ctx is done.
func (p *Poller) Run(ctx context.Context) {
	ticker := time.NewTicker(p.Interval)
	defer ticker.Stop()
	for {
		p.Poll(ctx)
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		}
	}
}

// Poll runs one cycle: fetch, parse and validate, then publish.
func (p *Poller) Poll(ctx context.Context) Cycle {
	now := p.Now
	if now == nil {
		now = time.Now
	}
	c := Cycle{Source: p.Source, Start: now()}
	c.Err = p.cycle(ctx, &c, now)
	c.Total = now().Sub(c.Start)
	if ctx.Err() != nil && c.Err != nil {
		return c // shutting down: not the source's fault
	}
	p.log(c)
	if p.Observe != nil {
		p.Observe(c)
	}
	return c
}

func (p *Poller) cycle(ctx context.Context, c *Cycle, now func() time.Time) error {
	shards := p.shardList()
	fetchCtx, cancel := context.WithTimeout(ctx, p.Timeout)
	err := eachShard(shards, func(s *shard) error {
		var err error
		s.body, err = s.fetcher.Fetch(fetchCtx)
		return err
	})
	cancel()
	t := now()
	c.Fetch = t.Sub(c.Start)
	for i := range shards {
		c.Bytes += len(shards[i].body)
	}
	if err != nil {
		return err
	}
	// The poll time is when the body arrived: a source cannot have stamped
	// its data any later.
	err = eachShard(shards, func(s *shard) error {
		var err error
		s.snap, err = s.parser.Parse(s.body, t)
		return err
	})
	var snap *snapshot.Snapshot
	if err == nil {
		snap, err = p.merge(shards)
	}
	if err == nil {
		snap = p.clamp(c, snap, t)
	}
	t2 := now()
	c.Parse = t2.Sub(t)
	if err != nil {
		return err
	}
	p.Publish(snap)
	c.Swap = now().Sub(t2)
	c.Snapshot = snap
	return nil
}

// clamp stamps snap with the poll time when its source time is more than
// MaxClockSkew ahead of it, and records the source time in c.
func (p *Poller) clamp(c *Cycle, snap *snapshot.Snapshot, pollTime time.Time) *snapshot.Snapshot {
	if p.MaxClockSkew <= 0 || snap.Time().Sub(pollTime) <= p.MaxClockSkew {
		return snap
	}
	c.ClampedFrom = snap.Time()
	return snap.WithTime(pollTime)
}

// merge joins the shards' snapshots. Each shard was held to the sample
// limit; so is their sum.
func (p *Poller) merge(shards []shard) (*snapshot.Snapshot, error) {
	if len(shards) == 1 {
		return shards[0].snap, nil
	}
	parts := make([]*snapshot.Snapshot, len(shards))
	rows, widest := 0, 0
	for i := range shards {
		parts[i] = shards[i].snap
		rows += parts[i].NumRows()
		widest = max(widest, len(parts[i].Columns()))
	}
	// The merge has at least the widest shard's columns: refuse before
	// copying what is over already.
	if err := p.Parser.Limits.checkSamples(rows, widest); err != nil {
		return nil, errorf(ReasonLimit, "merging shards: %w", err)
	}
	merged, err := snapshot.Merge(parts, p.merged)
	if err != nil {
		return nil, errorf(ReasonParse, "merging shards: %w", err)
	}
	if err := p.Parser.Limits.checkSamples(merged.NumRows(), len(merged.Columns())); err != nil {
		return nil, errorf(ReasonLimit, "merging shards: %w", err)
	}
	p.merged = merged
	return merged, nil
}

func (p *Poller) log(c Cycle) {
	if c.Err != nil {
		p.Logger.Warn("Poll rejected; keeping the last good snapshot",
			"reason", ReasonOf(c.Err), "err", c.Err, "duration", c.Total, "url", p.Fetcher.URL)
		return
	}
	if !c.ClampedFrom.IsZero() {
		p.Logger.Warn("Source clock ahead of the poll; snapshot stamped with the poll time",
			"source_time", snapshot.FormatTime(c.ClampedFrom), "poll_time", c.Snapshot.TimeText(),
			"skew", c.ClampedFrom.Sub(c.Snapshot.Time()), "max_clock_skew", p.MaxClockSkew, "url", p.Fetcher.URL)
	}
	p.Logger.Info("Ingestion cycle",
		"duration", c.Total, "fetch", c.Fetch, "parse", c.Parse, "swap", c.Swap,
		"bytes", c.Bytes, "switches", len(c.Snapshot.Switches()), "rows", c.Snapshot.NumRows(),
		"snapshot_time", c.Snapshot.TimeText())
}
