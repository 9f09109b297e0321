package simulator

import (
	"bytes"
	"math/rand/v2"
	"strconv"
)

// The bodies of the faulty modes are derived from a snapshot's rendered
// rows rather than from the fabric, so they cost nothing unless asked for
// and never touch the fabric's lock.

// badValues are non-numeric values that neither strconv.ParseUint nor
// strconv.ParseFloat accept ("NaN" and "inf" would parse as floats).
var badValues = [...]string{"abc", "12x", "1.2.3", "N/A", "#VALUE!", "--"}

// corruptBody keeps the header but breaks some rows: some get the wrong
// number of fields, some a non-numeric value. At least one row of each kind
// is always there, added if the table has too few rows.
func corruptBody(t *table, r *rand.Rand) []byte {
	out := make([]byte, 0, len(t.body)+64)
	out = append(out, t.layout.header...)
	out = append(out, '\n')

	n := t.numRows()
	wrongCount, nonNumeric := -1, -1
	if n >= 2 {
		wrongCount = r.IntN(n)
		nonNumeric = (wrongCount + 1 + r.IntN(n-1)) % n
	} else if n == 1 {
		nonNumeric = 0
	}
	for i := range n {
		row := t.row(i)
		switch {
		case i == wrongCount || (i != nonNumeric && r.IntN(20) == 0):
			out = appendWrongFieldCount(out, row, r)
		case i == nonNumeric || r.IntN(20) == 0:
			out = appendNonNumeric(out, row, t.layout.valueCol, r)
		default:
			out = append(out, row...)
		}
	}
	if wrongCount < 0 {
		out = append(out, "SW-00,1\n"...)
	}
	if nonNumeric < 0 {
		out = appendNonNumeric(out, fallbackRow(t.layout), t.layout.valueCol, r)
	}
	return out
}

// fallbackRow is a made-up row of the right width: SW-00, then numbers.
func fallbackRow(l *layout) []byte {
	row := []byte("SW-00")
	for i := range bytes.Count([]byte(l.header), []byte(",")) {
		row = append(row, ',')
		row = strconv.AppendInt(row, int64(i), 10)
	}
	return append(row, '\n')
}

// appendWrongFieldCount appends row with fields dropped from or added to its
// end.
func appendWrongFieldCount(out, row []byte, r *rand.Rand) []byte {
	fields := splitRow(row)
	if r.IntN(2) == 0 {
		fields = fields[:len(fields)-1-r.IntN(3)]
	} else {
		fields = append(fields, []byte("999"))
	}
	return appendFields(out, fields)
}

// appendNonNumeric appends row with one value from column valueCol on
// replaced by text that is not a number.
func appendNonNumeric(out, row []byte, valueCol int, r *rand.Rand) []byte {
	fields := splitRow(row)
	fields[valueCol+r.IntN(len(fields)-valueCol)] = []byte(badValues[r.IntN(len(badValues))])
	return appendFields(out, fields)
}

// truncatedBody cuts the body inside one row, before that row's last comma,
// so the last line is short by at least one field and has no newline.
func truncatedBody(t *table, r *rand.Rand) []byte {
	if t.numRows() == 0 {
		return t.body[:len(t.layout.header)/2]
	}
	idx := r.IntN(t.numRows())
	lastComma := bytes.LastIndexByte(t.row(idx), ',')
	return t.body[:t.rowStart(idx)+1+r.IntN(lastComma)]
}

// garbageBody returns random bytes that no CSV reader should accept as the
// counters: it starts with invalid UTF-8 and control bytes so that it is
// never mistaken for a header.
func garbageBody(r *rand.Rand) []byte {
	out := make([]byte, 0, 4096)
	out = append(out, 0xff, 0xfe, 0x00, 0x1b, 0x80, 0xc3, 0x28)
	for n := 256 + r.IntN(3584); len(out) < n; {
		out = append(out, byte(r.Uint32()))
	}
	return out
}

// partialBody drops a random non-empty proper subset of the switches, each
// with all its rows. With fewer than two switches there is no such subset
// and it drops them all.
func partialBody(t *table, r *rand.Rand) []byte {
	n := len(t.groupEnds)
	keep := make([]bool, n)
	kept := 0
	dropChance := 0.1 + 0.4*r.Float64()
	for i := range keep {
		keep[i] = r.Float64() >= dropChance
		if keep[i] {
			kept++
		}
	}
	switch {
	case n < 2:
		clear(keep)
	case kept == n:
		keep[r.IntN(n)] = false
	case kept == 0:
		keep[r.IntN(n)] = true
	}
	return t.filter(func(g int) bool { return keep[g] }).body
}

// schemaBody serves the same data with the columns shuffled, the first
// column never first, and the layout's extra column inserted somewhere.
func schemaBody(t *table, r *rand.Rand) []byte {
	names := append(splitRow([]byte(t.layout.header)), []byte(t.layout.extraColumn))
	perm := r.Perm(len(names))
	if perm[0] == 0 {
		j := 1 + r.IntN(len(perm)-1)
		perm[0], perm[j] = perm[j], perm[0]
	}

	out := make([]byte, 0, len(t.body)+t.numRows()*8+64)
	out = appendPermuted(out, names, perm)
	for i := range t.numRows() {
		fields := append(splitRow(t.row(i)), strconv.AppendInt(nil, 3000+r.Int64N(9000), 10))
		out = appendPermuted(out, fields, perm)
	}
	return out
}

func appendPermuted(out []byte, fields [][]byte, perm []int) []byte {
	for i, p := range perm {
		if i > 0 {
			out = append(out, ',')
		}
		out = append(out, fields[p]...)
	}
	return append(out, '\n')
}

// splitRow splits a rendered row, with or without its newline, into fields.
// A quoted field (a node_description with a comma) stays whole, quotes
// included, so that joining the fields again gives valid CSV. Rendered rows
// never contain newlines inside quotes.
func splitRow(row []byte) [][]byte {
	row = bytes.TrimSuffix(row, []byte("\n"))
	fields := make([][]byte, 0, 24)
	start, quoted := 0, false
	for i, c := range row {
		switch {
		case c == '"':
			quoted = !quoted
		case c == ',' && !quoted:
			fields = append(fields, row[start:i])
			start = i + 1
		}
	}
	return append(fields, row[start:])
}

func appendFields(out []byte, fields [][]byte) []byte {
	out = append(out, bytes.Join(fields, []byte(","))...)
	return append(out, '\n')
}

// flakyWeights says how often ModeFlaky picks each mode. OK is the most
// common so that a consumer sees good data between faults; TIMEOUT is rare
// because each one holds the client for its whole timeout.
var flakyWeights = [...]struct {
	mode   Mode
	weight int
}{
	{ModeOK, 40},
	{ModeError500, 8},
	{ModeCorrupt, 8},
	{ModeTruncated, 8},
	{ModePartial, 8},
	{ModeSchema, 8},
	{ModeEmpty, 6},
	{ModeGarbage, 6},
	{ModeSlow, 6},
	{ModeTimeout, 2},
}

// pickFlaky draws the mode a FLAKY request is served with.
func pickFlaky(r *rand.Rand) Mode {
	total := 0
	for _, w := range flakyWeights {
		total += w.weight
	}
	pick := r.IntN(total)
	for _, w := range flakyWeights {
		if pick < w.weight {
			return w.mode
		}
		pick -= w.weight
	}
	return ModeOK
}
