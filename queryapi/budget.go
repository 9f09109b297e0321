package queryapi

import (
	"math"
	"runtime/debug"
)

// The memory budget of queries. A query at its limits holds at most its
// samples, its series and its encoded answer; MaxConcurrency such queries
// must fit in QueryMemoryShare of the Go memory limit, the rest being the
// history's, ingestion's and the other endpoints'. The per-sample and
// per-series figures were measured (TestQueryMemoryAtLimits fails if a
// query allocates more than they add up to).
const (
	// QueryMemoryShare is the share of the Go memory limit that queries
	// at their limits may take together.
	QueryMemoryShare = 0.5
	// MaxConcurrencyCap is the most queries derived for any memory limit,
	// Prometheus's default --query.max-concurrency.
	MaxConcurrencyCap = 20

	// bytesPerSample is what the engine allocates per sample it holds at
	// its peak (what --query.max-samples counts): a 16-byte point in a
	// slice sized for every step, rounded up to the allocator's size
	// class. Measured: 19.6 to 22.4 bytes (TestQueryMemoryAtLimits).
	bytesPerSample = 24
	// bytesPerSeries is what a query allocates per series its selectors
	// load (what --query.max-series counts): the history's reference and
	// label set, the engine's series, iterators and result sample.
	// Measured: 367 to 624 bytes.
	bytesPerSeries = 800
)

// QueryMemory is the most memory one query at the limits of o can hold: its
// samples and series in the engine, and its encoded answer, which exists
// beside the engine's result while it is encoded (the result is released
// then, before the answer is sent).
func (o Options) QueryMemory() int64 {
	return int64(o.MaxSamples)*bytesPerSample + int64(o.MaxSeries)*bytesPerSeries + o.MaxResponseBytes
}

// ConcurrencyFor is the default number of concurrent queries under the
// memory limit memLimit when one query may hold perQuery bytes: as many as
// fit in QueryMemoryShare of the limit, at least 1 and at most
// MaxConcurrencyCap. With no limit (0, or math.MaxInt64 as the Go runtime
// reports none) it is the cap.
func ConcurrencyFor(memLimit, perQuery int64) int {
	if memLimit <= 0 || memLimit == math.MaxInt64 || perQuery <= 0 {
		return MaxConcurrencyCap
	}
	n := int64(float64(memLimit) * QueryMemoryShare / float64(perQuery))
	return int(min(max(n, 1), MaxConcurrencyCap))
}

// goMemoryLimit is the Go runtime's memory limit (math.MaxInt64 if none).
func goMemoryLimit() int64 { return debug.SetMemoryLimit(-1) }
