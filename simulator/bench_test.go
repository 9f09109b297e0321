package simulator

import (
	"net/http/httptest"
	"testing"
	"time"
)

func BenchmarkTick(b *testing.B) {
	s := newSim(b, Config{Switches: 2000, Interval: 200 * time.Millisecond, IncidentRate: 0.002})
	now := t0
	b.ReportAllocs()
	for b.Loop() {
		now = now.Add(200 * time.Millisecond)
		s.Tick(now)
	}
	b.ReportMetric(float64(len(s.Body())), "body_bytes")
}

func BenchmarkServeCounters(b *testing.B) {
	s := newSim(b, Config{Switches: 2000})
	h := s.Handler()
	req := httptest.NewRequest("GET", "/counters", nil)
	b.ReportAllocs()
	for b.Loop() {
		h.ServeHTTP(httptest.NewRecorder(), req)
	}
}

// BenchmarkTickPorts is the fabric: 2,000 switches × 64 ports,
// 128,000 rows in each of /counters and /csv/metrics, both rendered every
// tick.
func BenchmarkTickPorts(b *testing.B) {
	s := newSim(b, Config{Switches: 2000, Ports: 64, Interval: 200 * time.Millisecond, IncidentRate: 0.002})
	now := t0
	b.ReportAllocs()
	for b.Loop() {
		now = now.Add(200 * time.Millisecond)
		s.Tick(now)
	}
	b.ReportMetric(float64(len(s.Body())), "counters_bytes")
	b.ReportMetric(float64(len(s.UFMBody())), "ufm_bytes")
}

// BenchmarkRenderUFM renders the /csv/metrics body of the seed's switch
// matrix (Ports zero), as the first request after a tick does.
func BenchmarkRenderUFM(b *testing.B) {
	s := newSim(b, Config{Switches: 2000})
	src := s.snap.Load().src
	b.ReportAllocs()
	for b.Loop() {
		src.renderUFM(0)
	}
}

func BenchmarkServeUFMShard(b *testing.B) {
	s := newSim(b, Config{Switches: 2000, Ports: 64})
	h := s.Handler()
	req := httptest.NewRequest("GET", "/csv/metrics?num_shards=4&shard=1", nil)
	b.ReportAllocs()
	for b.Loop() {
		h.ServeHTTP(httptest.NewRecorder(), req)
	}
}
