package queryapi

import (
	"cmp"
	"errors"
	"fmt"
	"math"
	"net/http"
	"os"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"time"

	"github.com/alecthomas/kingpin/v2"
	"github.com/alecthomas/units"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/timestamp"
	"github.com/prometheus/prometheus/storage"
)

// FlagValues returns every flag of app with its value, as Prometheus lists
// its own on /api/v1/status/flags: kingpin's built-in flags (help,
// version, completion) left out. Call it after app.Parse.
func FlagValues(app *kingpin.Application) map[string]string {
	builtin := kingpin.New("", "").Version("")
	out := map[string]string{}
	for _, f := range app.Model().Flags {
		if builtin.GetFlag(f.Name) != nil {
			continue
		}
		out[f.Name] = f.Value.String()
	}
	return out
}

// flags lists the binary's flags (Options.Flags), or without them the
// query service's own settings.
func (a *API) flags(*http.Request) result {
	if a.opts.Flags != nil {
		return result{data: a.opts.Flags}
	}
	o := a.opts
	return result{data: map[string]string{
		"query.retention":          model.Duration(o.Retention).String(),
		"query.timeout":            model.Duration(o.Timeout).String(),
		"query.max-samples":        strconv.Itoa(o.MaxSamples),
		"query.max-series":         strconv.Itoa(o.MaxSeries),
		"query.max-response-bytes": units.Base2Bytes(o.MaxResponseBytes).String(),
		"query.max-concurrency":    strconv.Itoa(o.MaxConcurrency),
		"query.max-length":         strconv.Itoa(o.MaxQueryLength),
		"query.lookback-delta":     model.Duration(o.LookbackDelta).String(),
		"query.max-history-series": strconv.Itoa(o.MaxHistorySeries),
	}}
}

// runtimeInfo is Prometheus's RuntimeInfo. The aggregator loads its
// configuration once, at start-up, has no WAL to find corrupt, and keeps
// --query.retention of samples.
type runtimeInfo struct {
	StartTime           time.Time `json:"startTime"`
	CWD                 string    `json:"CWD"`
	Hostname            string    `json:"hostname"`
	ServerTime          time.Time `json:"serverTime"`
	ReloadConfigSuccess bool      `json:"reloadConfigSuccess"`
	LastConfigTime      time.Time `json:"lastConfigTime"`
	CorruptionCount     int64     `json:"corruptionCount"`
	GoroutineCount      int       `json:"goroutineCount"`
	GOMAXPROCS          int       `json:"GOMAXPROCS"`
	GOMEMLIMIT          int64     `json:"GOMEMLIMIT"`
	GOGC                string    `json:"GOGC"`
	GODEBUG             string    `json:"GODEBUG"`
	StorageRetention    string    `json:"storageRetention"`
}

func (a *API) runtimeInfo(*http.Request) result {
	info := runtimeInfo{
		StartTime:           a.started,
		CWD:                 a.cwd,
		ServerTime:          a.now().UTC(),
		ReloadConfigSuccess: true, // the only load, at start-up, succeeded
		LastConfigTime:      a.started.Truncate(time.Second).UTC(),
		GoroutineCount:      runtime.NumGoroutine(),
		GOMAXPROCS:          runtime.GOMAXPROCS(0),
		GOMEMLIMIT:          debug.SetMemoryLimit(-1),
		GOGC:                os.Getenv("GOGC"),
		GODEBUG:             os.Getenv("GODEBUG"),
		StorageRetention:    model.Duration(a.opts.Retention).String(),
	}
	hostname, err := os.Hostname()
	if err != nil {
		return result{err: &apiError{errorInternal, fmt.Errorf("error getting hostname: %w", err)}}
	}
	info.Hostname = hostname
	return result{data: info}
}

// The TSDB status, as Prometheus 3 gives it: head statistics and the top
// `limit` entries of each cardinality list.
type (
	tsdbStat struct {
		Name  string `json:"name"`
		Value uint64 `json:"value"`
	}
	headStats struct {
		NumSeries     uint64 `json:"numSeries"`
		NumLabelPairs int    `json:"numLabelPairs"`
		ChunkCount    int64  `json:"chunkCount"`
		MinTime       int64  `json:"minTime"`
		MaxTime       int64  `json:"maxTime"`
	}
	tsdbStatus struct {
		HeadStats                   headStats  `json:"headStats"`
		SeriesCountByMetricName     []tsdbStat `json:"seriesCountByMetricName"`
		LabelValueCountByLabelName  []tsdbStat `json:"labelValueCountByLabelName"`
		MemoryInBytesByLabelName    []tsdbStat `json:"memoryInBytesByLabelName"`
		SeriesCountByLabelValuePair []tsdbStat `json:"seriesCountByLabelValuePair"`
	}
)

// maxTSDBLimit is Prometheus's bound on the limit parameter.
const maxTSDBLimit = 10000

// tsdbStatus answers /api/v1/status/tsdb over everything queryable: the
// series with a sample in the retention, counted one metric name at a time
// so that the labels of only one metric's series are held at once (the
// per-port fabric has about 130,000 series a name). chunkCount is 0: the
// history keeps snapshots, not chunks.
func (a *API) tsdbStatus(r *http.Request) result {
	limit := 10
	if s := r.FormValue("limit"); s != "" {
		var err error
		if limit, err = strconv.Atoi(s); err != nil || limit < 1 {
			return result{err: badData(errors.New("limit must be a positive number"))}
		}
		if limit > maxTSDBLimit {
			return result{err: badData(fmt.Errorf("limit must not exceed %d", maxTSDBLimit))}
		}
	}
	mint, maxt := a.timeBounds()
	q, err := a.local.Querier(mint, maxt) // this replica's storage, as Prometheus's is its own
	if err != nil {
		return result{err: &apiError{errorInternal, err}}
	}
	defer q.Close()
	ctx := r.Context()
	names, _, err := q.LabelValues(ctx, model.MetricNameLabel, nil)
	if err != nil {
		return result{err: &apiError{errorInternal, err}}
	}
	var (
		c       = newCardinality()
		byName  = make([]tsdbStat, 0, len(names))
		total   uint64
		matcher = labels.MustNewMatcher(labels.MatchEqual, model.MetricNameLabel, "")
	)
	for _, name := range names {
		if err := ctx.Err(); err != nil {
			return result{err: evalError(err)}
		}
		matcher.Value = name
		set := q.Select(ctx, false, &storage.SelectHints{Start: mint, End: maxt, Func: "series"}, matcher)
		n := c.add(set)
		if err := set.Err(); err != nil {
			return result{err: evalError(err)}
		}
		byName = append(byName, tsdbStat{Name: name, Value: n})
		total += n
	}
	st := tsdbStatus{
		HeadStats:               headStats{NumSeries: total, NumLabelPairs: c.pairs(), MinTime: mint, MaxTime: maxt},
		SeriesCountByMetricName: top(byName, limit),
	}
	st.LabelValueCountByLabelName, st.MemoryInBytesByLabelName, st.SeriesCountByLabelValuePair = c.stats(limit)
	return result{data: st}
}

// timeBounds returns the times of the oldest and newest samples the API
// can query: of the histories, and of the self-metrics if they say.
func (a *API) timeBounds() (mint, maxt int64) {
	mint, maxt = math.MaxInt64, math.MinInt64
	for _, h := range a.histories.All() {
		if ts := h.Load().Times(); len(ts) > 0 {
			mint = min(mint, timestamp.FromTime(ts[0]))
			maxt = max(maxt, timestamp.FromTime(ts[len(ts)-1]))
		}
	}
	if b, ok := a.opts.SelfMetrics.(interface{ MinTime() int64 }); ok {
		mint = min(mint, b.MinTime())
	}
	if b, ok := a.opts.SelfMetrics.(interface{ MaxTime() int64 }); ok {
		maxt = max(maxt, b.MaxTime())
	}
	if mint > maxt { // nothing stored yet
		return 0, 0
	}
	return mint, maxt
}

// cardinality counts series per label pair.
type cardinality struct {
	series map[string]map[string]uint64 // label name -> value -> series
}

func newCardinality() *cardinality {
	return &cardinality{series: map[string]map[string]uint64{}}
}

// add counts the series of set and returns how many there were.
func (c *cardinality) add(set storage.SeriesSet) uint64 {
	var n uint64
	for set.Next() {
		n++
		set.At().Labels().Range(func(l labels.Label) {
			values := c.series[l.Name]
			if values == nil {
				values = map[string]uint64{}
				c.series[l.Name] = values
			}
			values[l.Value]++
		})
	}
	return n
}

// pairs is the number of distinct label pairs, __name__ ones included.
func (c *cardinality) pairs() int {
	n := 0
	for _, values := range c.series {
		n += len(values)
	}
	return n
}

// stats returns the top entries of each list: distinct values per label
// name, the memory the values of a label take in the series that carry them
// (Prometheus's labels.SizeOfLabels), and series per label pair.
func (c *cardinality) stats(limit int) (valueCount, memory, pairSeries []tsdbStat) {
	for name, values := range c.series {
		valueCount = append(valueCount, tsdbStat{Name: name, Value: uint64(len(values))})
		var size uint64
		for v, n := range values {
			size += labels.SizeOfLabels(name, v, n)
			pairSeries = append(pairSeries, tsdbStat{Name: name + "=" + v, Value: n})
		}
		memory = append(memory, tsdbStat{Name: name, Value: size})
	}
	return top(valueCount, limit), top(memory, limit), top(pairSeries, limit)
}

// top returns the limit largest stats, largest first, ties by name; never
// nil, so that an empty list is [] as in Prometheus.
func top(s []tsdbStat, limit int) []tsdbStat {
	slices.SortFunc(s, func(a, b tsdbStat) int {
		return cmp.Or(cmp.Compare(b.Value, a.Value), cmp.Compare(a.Name, b.Name))
	})
	if len(s) > limit {
		s = s[:limit]
	}
	if s == nil {
		return []tsdbStat{}
	}
	return s
}
