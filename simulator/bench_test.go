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
