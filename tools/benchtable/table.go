package main

import (
	"fmt"
	"io"
	"math"
	"strings"
	"time"
)

// row is one line of the table: a figure, its baseline from the same run
// and the ratio the target is about.
type row struct {
	item     string // the item number
	figure   string
	value    string
	baseline string // what the baseline is and its value; empty when none
	ratio    float64
	target   target
}

// target is what the ratio must satisfy; a zero target means the row is
// reported, not judged.
type target struct {
	op    string // ">=" or "<="
	limit float64
}

func atLeast(x float64) target { return target{">=", x} }
func atMost(x float64) target  { return target{"<=", x} }

func (t target) String() string {
	switch t.op {
	case ">=":
		return fmt.Sprintf("≥ %s×", trimFloat(t.limit))
	case "<=":
		return fmt.Sprintf("≤ %s×", trimFloat(t.limit))
	}
	return "—"
}

func (r row) result() string {
	switch {
	case math.IsNaN(r.ratio):
		if r.target.op == "" {
			return "info"
		}
		return "n/a"
	case r.target.op == "":
		return "info"
	case r.target.op == ">=" && r.ratio >= r.target.limit, r.target.op == "<=" && r.ratio <= r.target.limit:
		return "pass"
	}
	return "**miss**"
}

func writeTable(w io.Writer, rows []row) {
	fmt.Fprintln(w, "| # | figure | value | baseline (same run) | ratio | target | result |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|---|")
	for _, r := range rows {
		ratio := "—"
		if !math.IsNaN(r.ratio) {
			ratio = fmt.Sprintf("%.2f×", r.ratio)
		}
		base := r.baseline
		if base == "" {
			base = "—"
		}
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s | %s |\n", r.item, esc(r.figure), esc(r.value), esc(base), ratio, r.target, r.result())
	}
}

func esc(s string) string { return strings.ReplaceAll(s, "|", `\|`) }

func trimFloat(x float64) string {
	s := fmt.Sprintf("%.2f", x)
	s = strings.TrimRight(s, "0")
	return strings.TrimSuffix(s, ".")
}

// fmtDur prints a duration with three significant digits.
func fmtDur(d time.Duration) string { return fmtSeconds(d.Seconds()) }

func fmtSeconds(s float64) string {
	switch {
	case s == 0:
		return "0"
	case s < 1e-6:
		return sig3(s*1e9) + " ns"
	case s < 1e-3:
		return sig3(s*1e6) + " µs"
	case s < 1:
		return sig3(s*1e3) + " ms"
	}
	return sig3(s) + " s"
}

func fmtBytes(b float64) string {
	switch {
	case b < 1<<10:
		return sig3(b) + " B"
	case b < 1<<20:
		return sig3(b/(1<<10)) + " KiB"
	case b < 1<<30:
		return sig3(b/(1<<20)) + " MiB"
	}
	return sig3(b/(1<<30)) + " GiB"
}

func fmtCount(x float64) string {
	switch {
	case x >= 1e6:
		return sig3(x/1e6) + "M"
	case x >= 1e4:
		return sig3(x/1e3) + "k"
	}
	return fmt.Sprintf("%.0f", x)
}

func sig3(x float64) string {
	switch ax := math.Abs(x); {
	case ax >= 100:
		return fmt.Sprintf("%.0f", x)
	case ax >= 10:
		return fmt.Sprintf("%.1f", x)
	}
	return fmt.Sprintf("%.2f", x)
}
