package exporter

import (
	"math"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/fabrictelemetry/aggregator/schema"
	"github.com/fabrictelemetry/aggregator/snapshot"
)

// The renderer writes families in the Prometheus text format (0.0.4) or
// OpenMetrics 1.0 exactly as prometheus/common/expfmt writes the same
// families gathered from the Collector: same label order (sorted by name),
// same escaping, same float formatting, empty label values left out. It does
// so from a snapshot's columns directly, without building a dto.MetricFamily
// per series, which is what makes it tens of times cheaper than Gather at a
// million series.

// rowLabels holds every row's rendered label set, `{port="1",switch_id="a"}`,
// built once per set of rows and shared by all columns, and by every later
// snapshot with the same rows (snapshot.Snapshot.SameRows).
type rowLabels struct {
	text []byte
	off  []int  // row's labels are text[off[row]:off[row+1]]; empty for a row without labels
	skip []bool // rows that cannot be exported; nil when every row can
}

func renderRowLabels(snap *snapshot.Snapshot) *rowLabels {
	names := snap.LabelNames()
	order := make([]int, len(names)) // label indices sorted by name, as client_golang sorts label pairs
	for i := range order {
		order[i] = i
	}
	slices.SortFunc(order, func(a, b int) int { return strings.Compare(names[a], names[b]) })

	n := snap.NumRows()
	rl := &rowLabels{text: make([]byte, 0, n*32), off: make([]int, 1, n+1)}
	for row := range n {
		values := snap.RowLabels(row)
		start := len(rl.text)
		if !slices.ContainsFunc(values, func(v string) bool { return !utf8.ValidString(v) }) {
			for _, li := range order {
				if values[li] == "" {
					continue // a label the row's source does not have: absent, as Prometheus reads it
				}
				if len(rl.text) == start {
					rl.text = append(rl.text, '{')
				} else {
					rl.text = append(rl.text, ',')
				}
				rl.text = append(rl.text, names[li]...)
				rl.text = append(rl.text, '=', '"')
				rl.text = appendEscaped(rl.text, values[li], true)
				rl.text = append(rl.text, '"')
			}
			if len(rl.text) > start {
				rl.text = append(rl.text, '}')
			}
		} else {
			// client_golang rejects the row too: skip it, keep the rest.
			if rl.skip == nil {
				rl.skip = make([]bool, n)
			}
			rl.skip[row] = true
		}
		rl.off = append(rl.off, len(rl.text))
	}
	return rl
}

// get returns the rendered labels of a row, ok false if it is not exported.
func (rl *rowLabels) get(row int) (labels []byte, ok bool) {
	return rl.text[rl.off[row]:rl.off[row+1]], rl.skip == nil || !rl.skip[row]
}

// renderFamilies renders fams: data families of snap, whose rows' labels
// are rl, or view-level gauges (snap and rl nil). skipped counts the series
// left out because their labels are not valid UTF-8.
func renderFamilies(snap *snapshot.Snapshot, rl *rowLabels, fams []family, openMetrics bool) (out []byte, skipped int) {
	size := len(fams) * 256
	if snap != nil {
		// About name + labels + value per series; one growth at most.
		avgName := 0
		for _, f := range fams {
			avgName += len(f.name)
		}
		avgName /= max(len(fams), 1)
		series := snap.Series()
		size += len(rl.text)/max(snap.NumRows(), 1)*series + series*(avgName+24)
	}
	out = make([]byte, 0, size)

	for _, f := range fams {
		if f.col < 0 {
			out = appendHeader(out, f, openMetrics)
			out = append(out, f.name...)
			out = append(out, ' ')
			out = appendFloat(out, f.value, openMetrics)
			out = append(out, '\n')
			continue
		}
		start := len(out)
		out = appendHeader(out, f, openMetrics)
		n := 0
		for row := range snap.NumRows() {
			v := snap.Value(row, f.col)
			if !v.Present() {
				continue
			}
			labels, ok := rl.get(row)
			if !ok {
				skipped++
				continue
			}
			out = append(out, f.name...)
			out = append(out, labels...)
			out = append(out, ' ')
			out = appendFloat(out, schema.Scaled(v.Float64(), f.scale), openMetrics)
			out = append(out, '\n')
			n++
		}
		if n == 0 {
			out = out[:start] // Gather has no family without metrics
		}
	}
	return out, skipped
}

// appendHeader writes HELP and TYPE as expfmt does. OpenMetrics names a
// counter family without its _total suffix and escapes quotes in HELP.
func appendHeader(b []byte, f family, openMetrics bool) []byte {
	name, typ := f.name, string(f.typ)
	if openMetrics && f.typ == schema.Counter {
		if trimmed, ok := strings.CutSuffix(f.name, "_total"); ok {
			name = trimmed
		} else {
			typ = "unknown"
		}
	}
	b = append(b, "# HELP "...)
	b = append(b, name...)
	b = append(b, ' ')
	b = appendEscaped(b, f.help, openMetrics)
	b = append(b, "\n# TYPE "...)
	b = append(b, name...)
	b = append(b, ' ')
	b = append(b, typ...)
	return append(b, '\n')
}

// appendEscaped escapes backslash and newline, and the double quote when
// quote is set (label values; HELP in OpenMetrics).
func appendEscaped(b []byte, s string, quote bool) []byte {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '\\':
			b = append(b, `\\`...)
		case c == '\n':
			b = append(b, `\n`...)
		case c == '"' && quote:
			b = append(b, `\"`...)
		default:
			b = append(b, c)
		}
	}
	return b
}

// appendFloat formats a sample value as expfmt's writeFloat (text) and
// writeOpenMetricsFloat (OpenMetrics) do.
func appendFloat(b []byte, f float64, openMetrics bool) []byte {
	switch {
	case f == 1 && openMetrics:
		return append(b, "1.0"...)
	case f == 0 && openMetrics:
		return append(b, "0.0"...)
	case f == -1 && openMetrics:
		return append(b, "-1.0"...)
	case f == 1:
		return append(b, '1')
	case f == 0:
		return append(b, '0')
	case f == -1:
		return append(b, "-1"...)
	case math.IsNaN(f):
		return append(b, "NaN"...)
	case math.IsInf(f, 1):
		return append(b, "+Inf"...)
	case math.IsInf(f, -1):
		return append(b, "-Inf"...)
	}
	start := len(b)
	b = strconv.AppendFloat(b, f, 'g', -1, 64)
	if openMetrics && !slices.ContainsFunc(b[start:], func(c byte) bool { return c == 'e' || c == '.' }) {
		b = append(b, '.', '0')
	}
	return b
}
