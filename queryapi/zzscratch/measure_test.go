package zzscratch

import (
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/prometheus/prometheus/tsdb/chunkenc"

	"github.com/fabrictelemetry/aggregator/ingest"
	"github.com/fabrictelemetry/aggregator/schema"
	"github.com/fabrictelemetry/aggregator/simulator"
	"github.com/fabrictelemetry/aggregator/snapshot"
)

func snaps(t *testing.T, switches, ports, n int, rate float64) []*snapshot.Snapshot {
	sim, err := simulator.New(simulator.Config{Switches: switches, Ports: ports, Seed: 1, IncidentRate: rate})
	if err != nil {
		t.Fatal(err)
	}
	p := ingest.NewParser(schema.Default())
	start := time.Unix(1_800_000_000, 0)
	var out []*snapshot.Snapshot
	for k := range n {
		at := start.Add(time.Duration(k)*10*time.Second + time.Duration(k*7%13)*time.Millisecond)
		sim.Tick(at)
		s, err := p.Parse(sim.Body(), at)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, s)
	}
	return out
}

var absent = math.Float64frombits(0x7ff00000000000a5)

func TestMeasure(t *testing.T) {
	for _, cfg := range []struct{ sw, ports int; rate float64 }{{50, 0, 0.002}, {50, 0, 0}, {20, 64, 0.002}} {
		ss := snaps(t, cfg.sw, cfg.ports, 120, cfg.rate)
		first := ss[0]
		fmt.Printf("== %d switches %d ports rate %v rows %d\n", cfg.sw, cfg.ports, cfg.rate, first.NumRows())
		for _, L := range []int{30, 60, 120} {
			var totX, totX2, totXr, totN float64
			for c, m := range first.Metrics() {
				var bx, bx2, bxr, n float64
				for row := range first.NumRows() {
					lab := first.RowLabels(row)
					for start := 0; start+L <= len(ss); start += L {
						x := chunkenc.NewXORChunk()
						xa, _ := x.Appender()
						x2 := chunkenc.NewXOR2Chunk()
						x2a, _ := x2.Appender()
						xr := chunkenc.NewXORChunk()
						xra, _ := xr.Appender()
						for k := start; k < start+L; k++ {
							s := ss[k]
							v := absent
							// find row by labels (rows may shift)
							if r, ok := findRow(s, lab); ok {
								if val := s.Value(r, c); val.Present() {
									v = val.Float64() * scale(m.Scale)
								}
							}
							xa.Append(0, int64(k-start), v)
							x2a.Append(0, int64(k-start), v)
							xra.Append(0, s.Time().UnixMilli(), v)
							n++
						}
						bx += float64(len(x.Bytes()))
						bx2 += float64(len(x2.Bytes()))
						bxr += float64(len(xr.Bytes()))
					}
				}
				if L == 120 {
					fmt.Printf("  %-50s xor %.2f xor2 %.2f xor-realts %.2f\n", m.Name, bx/n, bx2/n, bxr/n)
				}
				totX += bx; totX2 += bx2; totXr += bxr; totN += n
			}
			fmt.Printf(" L=%d total: xor %.3f xor2 %.3f xor-realts %.3f bytes/sample\n", L, totX/totN, totX2/totN, totXr/totN)
		}
	}
}

func scale(s float64) float64 {
	if s == 0 {
		return 1
	}
	return s
}

func findRow(s *snapshot.Snapshot, lab []string) (int, bool) {
	for r := range s.NumRows() {
		rl := s.RowLabels(r)
		eq := true
		for i := range rl {
			if rl[i] != lab[i] {
				eq = false
				break
			}
		}
		if eq {
			return r, true
		}
	}
	return 0, false
}

func zz(x int64) uint64 { return uint64((x << 1) ^ (x >> 63)) }

func cost(x int64) float64 {
	if x == 0 {
		return 1
	}
	n := 64 - leading(zz(x))
	return float64(1 + 6 + n - 1)
}

func leading(u uint64) int {
	n := 0
	for i := 63; i >= 0; i-- {
		if u>>uint(i)&1 != 0 {
			break
		}
		n++
	}
	return n
}

func TestMeasureDecimal(t *testing.T) {
	for _, cfg := range []struct{ sw, ports int; rate float64 }{{50, 0, 0}, {20, 64, 0}} {
		ss := snaps(t, cfg.sw, cfg.ports, 120, cfg.rate)
		first := ss[0]
		L := 60
		var tot, totN float64
		for c, m := range first.Metrics() {
			var bits, n float64
			for row := range first.NumRows() {
				for start := 0; start+L <= len(ss); start += L {
					var ks []int64
					for k := start; k < start+L; k++ {
						val := ss[k].Value(row, c)
						var ki int64
						if u, ok := val.Uint64(); ok {
							ki = int64(u)
						} else if val.Present() {
							ki = int64(math.Round(val.Float64() * 1000))
						}
						ks = append(ks, ki)
					}
					var cd, cdd float64
					for i := 1; i < len(ks); i++ {
						d := ks[i] - ks[i-1]
						cd += cost(d)
						if i > 1 {
							cdd += cost(d - (ks[i-1] - ks[i-2]))
						} else {
							cdd += cost(d)
						}
					}
					bits += math.Min(cd, cdd) + 64 + 16
					n += float64(L)
				}
			}
			fmt.Printf("  %-50s %.2f\n", m.Name, bits/8/n)
			tot += bits / 8
			totN += n
		}
		fmt.Printf(" %d/%d total %.3f\n", cfg.sw, cfg.ports, tot/totN)
	}
}
