package main

import (
	"bytes"
	"log/slog"
	"math"
	"runtime/debug"
	"strconv"
	"strings"
	"testing"

	"github.com/KimMachineGun/automemlimit/memlimit"
)

// machineMemory is what automemlimit finds: the cgroup's limit, else the
// machine's memory.
func machineMemory(t *testing.T) uint64 {
	if limit, err := memlimit.FromCgroup(); err == nil {
		return limit
	}
	limit, err := memlimit.FromSystem()
	if err != nil {
		t.Skipf("no memory size: %v", err)
	}
	return limit
}

// TestSetGoMemLimit: the limit is the ratio of the machine's memory unless
// GOMEMLIMIT is set or the flag is off, and the log says which.
func TestSetGoMemLimit(t *testing.T) {
	for _, tc := range []struct {
		name     string
		env      string
		enabled  bool
		ratio    float64
		want     func() int64 // the limit afterwards
		wantFrom string
	}{
		{"half of the machine", "", true, 0.5, func() int64 { return int64(float64(machineMemory(t)) * 0.5) }, "memory"},
		{"GOMEMLIMIT wins", "1GiB", true, 0.5, func() int64 { return 1 << 30 }, "from=GOMEMLIMIT"},
		{"off", "", false, 0.9, func() int64 { return math.MaxInt64 }, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := debug.SetMemoryLimit(-1)
			t.Cleanup(func() { debug.SetMemoryLimit(before) })
			// The runtime applies GOMEMLIMIT when the process starts; here
			// the test applies it.
			t.Setenv("GOMEMLIMIT", tc.env)
			debug.SetMemoryLimit(math.MaxInt64)
			if tc.env != "" {
				debug.SetMemoryLimit(1 << 30)
			}
			var log bytes.Buffer
			if err := setGoMemLimit(tc.enabled, tc.ratio, slog.New(slog.NewTextHandler(&log, nil))); err != nil {
				t.Fatal(err)
			}
			want := tc.want()
			if got := debug.SetMemoryLimit(-1); got != want {
				t.Errorf("limit %d, want %d", got, want)
			}
			switch {
			case want == math.MaxInt64 && !strings.Contains(log.String(), "limit=none"):
				t.Errorf("no limit, logged as %s", log.String())
			case want != math.MaxInt64 && (!strings.Contains(log.String(), "limit_bytes="+strconv.FormatInt(want, 10)) || !strings.Contains(log.String(), tc.wantFrom)):
				t.Errorf("limit %d from %s, logged as %s", want, tc.wantFrom, log.String())
			}
		})
	}
}

func TestBadMemLimitRatio(t *testing.T) {
	for _, ratio := range []string{"0", "-0.5", "1.5", "NaN"} {
		if code := run([]string{"--auto-gomemlimit.ratio=" + ratio, "--web.listen-address=127.0.0.1:0"}); code != 2 {
			t.Errorf("--auto-gomemlimit.ratio=%s: exit %d, want 2", ratio, code)
		}
	}
}
