package main

import (
	"context"
	"fmt"
	"io"
	"time"
)

// blockingRun is item 3: GetMetric p99 at a fixed rate while the per-port
// fabric is re-ingested every second, against the same with ingestion idle
// (one poll at start), for three stacks:
//
//	aggregator  as built: instrumented router, per-source history, /metrics cache
//	rcu         the REST API alone over snapshot.Store, fed by ingest.Poller
//	rwmutex     the REST API alone over lockedStore (writer holds the lock while parsing)
func blockingRun(ctx context.Context, o options, rate float64, log io.Writer) (*blockingFigures, error) {
	src, err := newSource(o.fabricSwitches, o.fabricPorts, 2)
	if err != nil {
		return nil, err
	}
	defer src.close()
	f := &blockingFigures{rate: rate, dur: o.blockDur, switches: o.fabricSwitches, ports: o.fabricPorts, bodyLen: len(src.bodies[0])}
	width := max(2, len(fmt.Sprint(o.fabricSwitches)))
	query := fmt.Sprintf("/telemetry/GetMetric?switch_id=SW-%0*d&metric_name=PortXmitDataExtended&port=3", width, o.fabricSwitches/2)
	for _, mode := range []string{"aggregator", "rcu", "rwmutex"} {
		for _, ingesting := range []bool{false, true} {
			interval := "0s"
			if ingesting {
				interval = "1s"
			}
			srv, err := startServer(ctx, log, "-mode", mode, "-source", src.url, "-interval", interval)
			if err != nil {
				return nil, err
			}
			url := "http://" + srv.addr + query
			_, err = get(url)
			if err == nil {
				_, err = attack(url, rate, 0, min(time.Second, o.blockDur/4)) // warm up
			}
			var r blockingResult
			if err == nil {
				r.start = time.Now()
				var m *vegetaSummary
				m, err = summarize(attack(url, rate, 0, o.blockDur))
				if m != nil {
					r.m = *m
				}
			}
			var st serveStats
			if serr := srv.stop(&st); err == nil {
				err = serr
			}
			if err != nil {
				return nil, fmt.Errorf("%s (ingesting %v): %w", mode, ingesting, err)
			}
			r.stats = st
			fmt.Fprintf(log, "%-10s ingesting=%-5v at %.0f req/s: sent %.0f req/s, p50 %s, p99 %s, max %s; %d cycles (mean %.0f ms, max %.0f ms)\n",
				mode, ingesting, rate, r.m.rate, r.m.p50, r.m.p99, r.m.max, st.Cycles, st.MeanMs, st.MaxMs)
			f.results = append(f.results, blockingKey{mode, ingesting})
			f.byKey(mode, ingesting, r)
		}
	}
	if o.profileDir != "" {
		if err := profileUnderLoad(ctx, o, log, src.url, "1s", query, rate, "aggregator-reingesting.cpu.prof"); err != nil {
			return nil, err
		}
	}
	return f, nil
}

type blockingKey struct {
	mode      string
	ingesting bool
}

type blockingResult struct {
	start time.Time
	m     vegetaSummary
	stats serveStats
}

type blockingFigures struct {
	rate            float64
	dur             time.Duration
	switches, ports int
	bodyLen         int
	results         []blockingKey
	res             map[blockingKey]blockingResult
}

func (f *blockingFigures) byKey(mode string, ingesting bool, r blockingResult) {
	if f.res == nil {
		f.res = map[blockingKey]blockingResult{}
	}
	f.res[blockingKey{mode, ingesting}] = r
}

func (f *blockingFigures) rows() []row {
	names := map[string]string{
		"aggregator": "aggregator as built",
		"rcu":        "REST API alone, read-copy-update store",
		"rwmutex":    "REST API alone, store holding a sync.RWMutex during each parse",
	}
	var rows []row
	for _, mode := range []string{"aggregator", "rcu", "rwmutex"} {
		idle, busy := f.res[blockingKey{mode, false}], f.res[blockingKey{mode, true}]
		r := row{item: "3",
			figure: fmt.Sprintf("GetMetric p99 at %.0f req/s while the %s-row fabric (%s CSV) is re-ingested every second, %s",
				f.rate, fmtCount(float64(f.switches*f.ports)), fmtBytes(float64(f.bodyLen)), names[mode]),
			value: fmt.Sprintf("p99 %s (p50 %s, max %s; %d polls of %.0f ms mean, %.0f ms max%s)",
				fmtDur(busy.m.p99), fmtDur(busy.m.p50), fmtDur(busy.m.max), busy.stats.Cycles, busy.stats.MeanMs, busy.stats.MaxMs, behind(f.rate, busy.m.rate)),
			baseline: fmt.Sprintf("ingestion idle: p99 %s (p50 %s, max %s%s)", fmtDur(idle.m.p99), fmtDur(idle.m.p50), fmtDur(idle.m.max), behind(f.rate, idle.m.rate)),
			ratio:    busy.m.p99.Seconds() / idle.m.p99.Seconds(),
		}
		if mode != "rwmutex" {
			r.target = atMost(1.2)
		}
		rows = append(rows, r)
	}
	rcu, rw := f.res[blockingKey{"rcu", true}], f.res[blockingKey{"rwmutex", true}]
	rows = append(rows, row{item: "3",
		figure:   "GetMetric p99 while re-ingesting: RWMutex store vs read-copy-update store (same REST stack, same load)",
		value:    "RWMutex: p99 " + fmtDur(rw.m.p99),
		baseline: "read-copy-update: p99 " + fmtDur(rcu.m.p99),
		ratio:    rw.m.p99.Seconds() / rcu.m.p99.Seconds(),
	})
	return rows
}
