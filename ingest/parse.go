package ingest

import (
	"bytes"
	"encoding/csv"
	"errors"
	"fmt"
	"math"
	"strconv"
	"time"
	"unicode/utf8"
	"unsafe"

	"github.com/fabrictelemetry/aggregator/schema"
	"github.com/fabrictelemetry/aggregator/snapshot"
)

// Identity columns of the switch matrix. Every other column is a metric.
const (
	ColumnSwitchID  = snapshot.SwitchLabel
	ColumnPort      = "port"
	ColumnTimestamp = "timestamp"
)

// Parser turns a CSV body into a snapshot, all or nothing. It keeps the switch
// ids of the previous body so that a steady fabric allocates no new strings;
// a Parser therefore belongs to one writer.
type Parser struct {
	table  *schema.Table
	intern map[string]string
}

// NewParser returns a parser that names columns with table.
func NewParser(table *schema.Table) *Parser {
	return &Parser{table: table, intern: map[string]string{}}
}

type role uint8

const (
	roleMetric role = iota
	roleLabel
	roleTimestamp
)

// layout is what the header says about each field of a row.
type layout struct {
	roles      []role
	slot       []int // label index, or metric column index
	labelNames []string
	columns    []string
}

// Parse validates body and builds a snapshot from it. Columns are found by
// header name, never position. pollTime stands in for the snapshot time when
// the body has no timestamp column. A rejected body returns an *Error whose
// reason says why; nothing of it is kept.
func (p *Parser) Parse(body []byte, pollTime time.Time) (*snapshot.Snapshot, error) {
	body = bytes.TrimPrefix(body, []byte("\xef\xbb\xbf"))
	if len(bytes.TrimSpace(body)) == 0 {
		return nil, errorf(ReasonEmpty, "empty body")
	}
	headerLine, rest, _ := bytes.Cut(body, []byte{'\n'})
	lay, err := p.parseHeader(headerLine)
	if err != nil {
		return nil, err
	}
	b := snapshot.NewBuilder(lay.labelNames, lay.columns, bytes.Count(rest, []byte{'\n'})+1)
	newest, err := p.parseRows(rest, lay, b)
	if err != nil {
		return nil, err
	}
	if b.NumRows() == 0 {
		return nil, errorf(ReasonEmpty, "header and no rows")
	}
	t := pollTime
	if newest > 0 {
		t = newest.time()
	}
	metrics, _ := p.table.Resolve(schema.SwitchSubsystem, lay.columns)
	snap, err := b.Build(t, metrics)
	if err != nil {
		return nil, errorf(ReasonParse, "%w", err)
	}
	p.remember(snap)
	return snap, nil
}

// remember keeps this snapshot's switch ids for the next parse.
func (p *Parser) remember(snap *snapshot.Snapshot) {
	if len(p.intern) > 2*len(snap.Switches())+1024 {
		clear(p.intern) // a fabric that shrank: do not hold old ids forever
	}
	for _, id := range snap.Switches() {
		p.intern[id] = id
	}
}

func (p *Parser) parseHeader(line []byte) (*layout, error) {
	line = bytes.TrimSuffix(line, []byte{'\r'})
	if !utf8.Valid(line) || hasControl(line) {
		return nil, errorf(ReasonParse, "header is not CSV text")
	}
	names, err := splitLine(line)
	if err != nil {
		return nil, errorf(ReasonParse, "header: %w", err)
	}
	lay := &layout{roles: make([]role, len(names)), slot: make([]int, len(names))}
	seen := make(map[string]bool, len(names))
	for i, name := range names {
		switch {
		case name == "":
			return nil, errorf(ReasonSchema, "column %d has no name", i+1)
		case seen[name]:
			return nil, errorf(ReasonSchema, "duplicate column %q", name)
		}
		seen[name] = true
		switch name {
		case ColumnTimestamp:
			lay.roles[i] = roleTimestamp
		case ColumnSwitchID, ColumnPort:
			lay.roles[i] = roleLabel
		default:
			lay.roles[i] = roleMetric
			lay.slot[i] = len(lay.columns)
			lay.columns = append(lay.columns, name)
		}
	}
	if !seen[ColumnSwitchID] {
		return nil, errorf(ReasonSchema, "no %s column", ColumnSwitchID)
	}
	// switch_id first, then port, whatever the column order.
	for _, label := range []string{ColumnSwitchID, ColumnPort} {
		for i, name := range names {
			if name == label {
				lay.slot[i] = len(lay.labelNames)
				lay.labelNames = append(lay.labelNames, label)
			}
		}
	}
	return lay, nil
}

// rowScratch holds one row's fields while it is checked, reused across rows.
type rowScratch struct {
	labels []string
	values []snapshot.Value
	fields [][]byte
}

func (p *Parser) parseRows(body []byte, lay *layout, b *snapshot.Builder) (newest timestamp, err error) {
	sc := rowScratch{
		labels: make([]string, len(lay.labelNames)),
		values: make([]snapshot.Value, len(lay.columns)),
		fields: make([][]byte, 0, len(lay.roles)),
	}
	lineNo := 1
	for len(body) > 0 {
		lineNo++
		line, rest, complete := bytes.Cut(body, []byte{'\n'})
		if bytes.IndexByte(line, '"') >= 0 {
			// Quoted fields may hold commas and newlines: let encoding/csv
			// read this one record from here.
			var n int
			sc.fields, n, err = readQuotedRecord(body, sc.fields[:0])
			if err != nil {
				return 0, errorf(ReasonParse, "line %d: %w", lineNo, err)
			}
			line, rest, complete = nil, body[n:], n > 0 && body[n-1] == '\n'
		} else {
			line = bytes.TrimSuffix(line, []byte{'\r'})
			if len(line) == 0 {
				body = rest
				continue
			}
			sc.fields = splitFields(line, sc.fields[:0])
		}
		body = rest
		if len(sc.fields) != len(lay.roles) {
			if !complete && len(sc.fields) < len(lay.roles) {
				return 0, errorf(ReasonTruncated, "line %d: body ends mid-row (%d of %d fields)", lineNo, len(sc.fields), len(lay.roles))
			}
			return 0, errorf(ReasonParse, "line %d: %d fields, header has %d", lineNo, len(sc.fields), len(lay.roles))
		}
		ts, err := p.parseRow(lay, &sc)
		if err != nil {
			return 0, errorf(ReasonParse, "line %d: %w", lineNo, err)
		}
		newest = max(newest, ts)
		row := b.AddRow(sc.labels...)
		for col, v := range sc.values {
			if v.Present() {
				b.Set(row, col, v)
			}
		}
	}
	return newest, nil
}

func (p *Parser) parseRow(lay *layout, sc *rowScratch) (ts timestamp, err error) {
	for i, f := range sc.fields {
		switch lay.roles[i] {
		case roleMetric:
			v, ok := parseValue(f)
			if !ok {
				return 0, fmt.Errorf("column %q: %q is not a number", lay.columns[lay.slot[i]], truncate(f))
			}
			sc.values[lay.slot[i]] = v
		case roleLabel:
			s, err := p.label(f)
			if err != nil {
				return 0, fmt.Errorf("column %q: %w", lay.labelNames[lay.slot[i]], err)
			}
			sc.labels[lay.slot[i]] = s
		case roleTimestamp:
			if ts, err = parseTimestamp(f); err != nil {
				return 0, err
			}
		}
	}
	return ts, nil
}

// label validates an identity value and returns it as a string, reusing the
// previous body's copy when there is one.
func (p *Parser) label(f []byte) (string, error) {
	if s, ok := p.intern[string(f)]; ok { // no allocation: the compiler reuses f
		return s, nil
	}
	switch {
	case len(f) == 0:
		return "", errors.New("empty value")
	case !utf8.Valid(f):
		return "", errors.New("invalid UTF-8")
	case hasControl(f):
		return "", fmt.Errorf("control character in %q", truncate(f))
	}
	return string(f), nil
}

// parseValue reads one metric cell. Plain decimal integers, the bulk of any
// counter body, take a digit loop that is several times faster than
// strconv.ParseFloat and stays exact to 2^64-1; everything else falls back to
// strconv. An empty cell is an absent value.
func parseValue(f []byte) (snapshot.Value, bool) {
	if len(f) == 0 {
		return snapshot.Value{}, true
	}
	if len(f) <= 19 {
		var u uint64
		digits := true
		for _, c := range f {
			if c < '0' || c > '9' {
				digits = false
				break
			}
			u = u*10 + uint64(c-'0')
		}
		if digits {
			return snapshot.UintValue(u), true
		}
	}
	f = bytes.TrimSpace(f)
	if len(f) == 0 {
		return snapshot.Value{}, true
	}
	s := unsafe.String(unsafe.SliceData(f), len(f)) // not retained
	if u, err := strconv.ParseUint(s, 10, 64); err == nil {
		return snapshot.UintValue(u), true
	}
	if i, err := strconv.ParseInt(s, 10, 64); err == nil {
		return snapshot.IntValue(i), true
	}
	x, err := strconv.ParseFloat(s, 64)
	if err != nil && !errors.Is(err, strconv.ErrRange) {
		return snapshot.Value{}, false
	}
	return snapshot.FloatValue(x), true
}

// timestamp is a source timestamp normalised to Unix nanoseconds.
type timestamp int64

func (t timestamp) time() time.Time { return time.Unix(0, int64(t)).UTC() }

// parseTimestamp reads a Unix timestamp in seconds, milliseconds,
// microseconds or nanoseconds, told apart by magnitude (any date between
// 1973 and 5138 is read right). An empty cell means none.
func parseTimestamp(f []byte) (timestamp, error) {
	if len(f) == 0 {
		return 0, nil
	}
	s := unsafe.String(unsafe.SliceData(f), len(f))
	x, err := strconv.ParseFloat(s, 64)
	if err != nil || x <= 0 || math.IsInf(x, 0) || math.IsNaN(x) {
		return 0, fmt.Errorf("timestamp %q is not a positive Unix time", truncate(f))
	}
	switch {
	case x < 1e11: // seconds
		x *= 1e9
	case x < 1e14: // milliseconds
		x *= 1e6
	case x < 1e17: // microseconds
		x *= 1e3
	}
	if x >= math.MaxInt64 {
		return 0, fmt.Errorf("timestamp %q out of range", truncate(f))
	}
	return timestamp(x), nil
}

// splitLine splits a header line, quoted or not.
func splitLine(line []byte) ([]string, error) {
	var fields [][]byte
	if bytes.IndexByte(line, '"') >= 0 {
		var err error
		if fields, _, err = readQuotedRecord(line, nil); err != nil {
			return nil, err
		}
	} else {
		fields = splitFields(line, nil)
	}
	names := make([]string, len(fields))
	for i, f := range fields {
		names[i] = string(bytes.TrimSpace(f))
	}
	return names, nil
}

func splitFields(line []byte, dst [][]byte) [][]byte {
	for {
		i := bytes.IndexByte(line, ',')
		if i < 0 {
			return append(dst, line)
		}
		dst = append(dst, line[:i])
		line = line[i+1:]
	}
}

// readQuotedRecord reads the first CSV record of body with encoding/csv and
// returns its fields and the number of bytes it spans.
func readQuotedRecord(body []byte, dst [][]byte) ([][]byte, int, error) {
	r := csv.NewReader(bytes.NewReader(body))
	r.FieldsPerRecord = -1
	rec, err := r.Read()
	if err != nil {
		var pe *csv.ParseError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return nil, 0, err
	}
	for _, f := range rec {
		dst = append(dst, []byte(f))
	}
	return dst, int(r.InputOffset()), nil
}

func hasControl(b []byte) bool {
	for _, c := range b {
		if c < 0x20 && c != '\t' || c == 0x7f {
			return true
		}
	}
	return false
}

// truncate keeps error messages short whatever the source sent.
func truncate(f []byte) []byte {
	if len(f) > 64 {
		return f[:64]
	}
	return f
}
