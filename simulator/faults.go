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
// is always there, added if the snapshot has too few rows.
func corruptBody(snap *snapshot, r *rand.Rand) []byte {
	out := make([]byte, 0, len(snap.body)+64)
	out = append(out, Header...)
	out = append(out, '\n')

	wrongCount, nonNumeric := -1, -1
	if n := len(snap.rows); n >= 2 {
		wrongCount = r.IntN(n)
		nonNumeric = (wrongCount + 1 + r.IntN(n-1)) % n
	} else if n == 1 {
		nonNumeric = 0
	}
	for i, row := range snap.rows {
		switch {
		case i == wrongCount || (i != nonNumeric && r.IntN(20) == 0):
			out = appendWrongFieldCount(out, row, r)
		case i == nonNumeric || r.IntN(20) == 0:
			out = appendNonNumeric(out, row, r)
		default:
			out = append(out, row...)
		}
	}
	if wrongCount < 0 {
		out = append(out, "SW-00,1\n"...)
	}
	if nonNumeric < 0 {
		out = appendNonNumeric(out, []byte("SW-00,0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17\n"), r)
	}
	return out
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

// appendNonNumeric appends row with one value after switch_id replaced by
// text that is not a number.
func appendNonNumeric(out, row []byte, r *rand.Rand) []byte {
	fields := splitRow(row)
	fields[1+r.IntN(len(fields)-1)] = []byte(badValues[r.IntN(len(badValues))])
	return appendFields(out, fields)
}

// truncatedBody cuts the body inside one row, before that row's last comma,
// so the last line is short by at least one field and has no newline.
func truncatedBody(snap *snapshot, r *rand.Rand) []byte {
	if len(snap.rows) == 0 {
		return snap.body[:len(Header)/2]
	}
	idx := r.IntN(len(snap.rows))
	offset := len(Header) + 1
	for _, row := range snap.rows[:idx] {
		offset += len(row)
	}
	lastComma := bytes.LastIndexByte(snap.rows[idx], ',')
	return snap.body[:offset+1+r.IntN(lastComma)]
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

// partialBody drops a random non-empty proper subset of the rows. With fewer
// than two rows there is no such subset and it drops them all.
func partialBody(snap *snapshot, r *rand.Rand) []byte {
	n := len(snap.rows)
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

	out := make([]byte, 0, len(snap.body))
	out = append(out, Header...)
	out = append(out, '\n')
	for i, row := range snap.rows {
		if keep[i] {
			out = append(out, row...)
		}
	}
	return out
}

// extraColumn is the column ModeSchema adds, one the consumer does not know.
const extraColumn = "Fan_Speed_RPM"

// schemaBody serves the same data with the columns shuffled, switch_id never
// first, and extraColumn inserted somewhere.
func schemaBody(snap *snapshot, r *rand.Rand) []byte {
	names := append(splitRow([]byte(Header)), []byte(extraColumn))
	perm := r.Perm(len(names))
	if perm[0] == 0 {
		j := 1 + r.IntN(len(perm)-1)
		perm[0], perm[j] = perm[j], perm[0]
	}

	out := make([]byte, 0, len(snap.body)+len(snap.rows)*8+32)
	out = appendPermuted(out, names, perm)
	for _, row := range snap.rows {
		fields := append(splitRow(row), strconv.AppendInt(nil, 3000+r.Int64N(9000), 10))
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
// Rendered rows never contain quotes, so a plain split is exact.
func splitRow(row []byte) [][]byte {
	return bytes.Split(bytes.TrimSuffix(row, []byte("\n")), []byte(","))
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
