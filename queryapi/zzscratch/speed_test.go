package zzscratch

import (
	"fmt"
	"testing"
	"time"

	"github.com/fabrictelemetry/aggregator/ingest"
	"github.com/fabrictelemetry/aggregator/schema"
	"github.com/fabrictelemetry/aggregator/simulator"
)

func TestSpeed(t *testing.T) {
	t0 := time.Now()
	sim, _ := simulator.New(simulator.Config{Switches: 2000, Ports: 64, Seed: 1, IncidentRate: 0.002})
	p := ingest.NewParser(schema.Default())
	fmt.Println("new", time.Since(t0))
	start := time.Unix(1_800_000_000, 0)
	for k := range 3 {
		t1 := time.Now()
		sim.Tick(start.Add(time.Duration(k) * 10 * time.Second))
		t2 := time.Now()
		s, err := p.Parse(sim.Body(), start)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Println("tick", t2.Sub(t1), "parse", time.Since(t2), s.NumRows(), len(s.Metrics()), len(sim.Body()))
	}
}
