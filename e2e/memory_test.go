package e2e

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
)

// The memory tests read the aggregator process's resident memory from
// /proc/<pid>/status: what it holds now (VmRSS) and its peak (VmHWM).

// memory is a process's resident memory now (VmRSS) and at its peak
// (VmHWM), in bytes.
type memory struct{ rss, hwm int64 }

func readMemory(t testing.TB, p *Process) memory {
	t.Helper()
	pid := p.Pid()
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var m memory
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		key, value, _ := strings.Cut(sc.Text(), ":")
		var into *int64
		switch key {
		case "VmRSS":
			into = &m.rss
		case "VmHWM":
			into = &m.hwm
		default:
			continue
		}
		kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(value), " kB"), 10, 64)
		if err != nil {
			t.Fatalf("/proc/%d/status: %s: %v", pid, sc.Text(), err)
		}
		*into = kb << 10
	}
	if err := sc.Err(); err != nil || m.rss == 0 || m.hwm == 0 {
		t.Fatalf("/proc/%d/status: VmRSS and VmHWM not read (%v)", pid, err)
	}
	return m
}

// resetPeak sets a process's VmHWM to its VmRSS (Linux 4.0 and later), so
// that each case reads its own peak. Where that is refused the peak is the
// process's whole life so far, which must stay within the bound as well.
func resetPeak(t testing.TB, p *Process) {
	t.Helper()
	pid := p.Pid()
	if err := os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", pid), []byte("5"), 0); err != nil {
		t.Logf("peak resident memory not reset, so it covers every case so far: %v", err)
	}
}

func mib(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }
