package ingest

import (
	"bytes"
	"encoding/csv"
	"errors"
	"fmt"
	"slices"
	"time"
	"unicode/utf8"

	"github.com/fabrictelemetry/aggregator/schema"
	"github.com/fabrictelemetry/aggregator/snapshot"
)

// Parser turns a CSV body into a snapshot, all or nothing. It keeps the switch
// ids of the previous body so that a steady fabric allocates no new strings;
// a Parser therefore belongs to one writer.
type Parser struct {
	// Limits bound each body; DefaultLimits unless set before the first
	// Parse.
	Limits Limits

	table  *schema.Table
	format Format
	intern map[string]string
	prev   *snapshot.Snapshot // the last accepted snapshot
}

// NewParser returns a parser that tells the format from the header and names
// columns with table.
func NewParser(table *schema.Table) *Parser { return NewFormatParser(table, FormatAuto) }

// NewFormatParser returns a parser for one format, with the default limits.
func NewFormatParser(table *schema.Table, format Format) *Parser {
	return &Parser{Limits: DefaultLimits(), table: table, format: format, intern: map[string]string{}}
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
	b := snapshot.NewBuilder(lay.labelNames, lay.columns, p.rowsHint(rest, lay))
	b.ShareIndex(p.prev)
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
	metrics, _ := p.table.Resolve(lay.subsystem(), lay.columns)
	snap, err := b.Build(t, metrics)
	if err != nil {
		return nil, errorf(ReasonParse, "%w", err)
	}
	p.remember(snap)
	return snap, nil
}

// rowsHint sizes the builder: the last snapshot's row count when there is
// one (a fabric rarely changes size, and a larger one only costs the
// builder a grown slice), else the body's line count, but never more rows
// than the sample limit admits, so that a hostile body is refused before
// it is allocated.
func (p *Parser) rowsHint(rows []byte, lay *layout) int {
	n := bytes.Count(rows, []byte{'\n'}) + 1
	if p.prev != nil {
		n = p.prev.NumRows()
	}
	if limit := p.Limits.maxRows(len(lay.columns)); limit >= 0 {
		n = min(n, limit+1)
	}
	return n
}

// remember keeps this snapshot's label values (switch ids, ports, GUIDs)
// for the next parse, so a steady fabric's rows cost no string allocation,
// and the snapshot itself so that an unchanged set of rows shares its index.
func (p *Parser) remember(snap *snapshot.Snapshot) {
	sameRows := snap.SameRows(p.prev)
	p.prev = snap
	if sameRows {
		return
	}
	// Built anew, so a fabric that shrank does not hold old ids forever.
	intern := make(map[string]string, len(p.intern))
	for row := range snap.NumRows() {
		for _, v := range snap.RowLabels(row) {
			intern[v] = v
		}
	}
	p.intern = intern
}

// rowScratch holds one row while it is checked, reused across rows. Fields
// are offsets into the line rather than slices: no pointers to store, so no
// garbage-collector write barriers in the inner loop.
type rowScratch struct {
	labels []string
	values []snapshot.Value
	bounds []int  // start, end of each field in line
	joined []byte // a quoted record's fields, unquoted and concatenated

	// What a steady source sends again, so that most label values cost a
	// string comparison rather than a map lookup: the previous row's labels
	// (a switch's ports share its id and GUID), the last snapshot's labels
	// at this row, and the previous row's raw timestamp (one per body).
	lastLabels []string
	predicted  []string
	lastTSText []byte // a copy: a quoted record's field is overwritten by the next
	lastTS     timestamp
	// The previous row's line when the scanner read it (nil after a record
	// encoding/csv read), its timestamp, and where each of its leading
	// fields ended: a row whose leading fields are the same bytes skips
	// reading them.
	prevLine []byte
	prevTS   timestamp
	ends     []int
}

// predict points sc.predicted at the labels of prev's row, if it has one.
func (sc *rowScratch) predict(prev *snapshot.Snapshot, row int) {
	sc.predicted = nil
	if prev != nil && row < prev.NumRows() {
		sc.predicted = prev.RowLabels(row)
	}
}

// known returns the label value f for slot when the previous row or the
// last snapshot's same row already has it: validated then, no copy now.
func (sc *rowScratch) known(slot int, f []byte) (string, bool) {
	if slot < len(sc.predicted) && sc.predicted[slot] == string(f) {
		return sc.predicted[slot], true
	}
	if sc.lastLabels[slot] == string(f) && len(f) > 0 {
		return sc.lastLabels[slot], true
	}
	return "", false
}

func (p *Parser) parseRows(body []byte, lay *layout, b *snapshot.Builder) (newest timestamp, err error) {
	sc := rowScratch{
		labels:     make([]string, len(lay.labelNames)),
		lastLabels: make([]string, len(lay.labelNames)),
		values:     make([]snapshot.Value, len(lay.columns)),
		ends:       make([]int, lay.leading),
	}
	prev := p.prev
	if prev != nil && !slices.Equal(prev.LabelNames(), lay.labelNames) {
		prev = nil
	}
	maxRows := p.Limits.maxRows(len(lay.columns))
	lineNo := 1
	for len(body) > 0 {
		lineNo++
		sc.predict(prev, b.NumRows())
		line, rest, complete := bytes.Cut(body, []byte{'\n'})
		var ts timestamp
		var fields int
		var plain bool
		if lay.guidSlot > 0 {
			sc.labels[0] = "" // set by node_description, if any
		}
		line = bytes.TrimSuffix(line, []byte{'\r'})
		quotes := bytes.IndexByte(line, '"') >= 0
		if len(line) == 0 {
			body = rest
			continue
		}
		ts, fields, plain, err = p.scanRow(lay, line, &sc, quotes)
		sc.prevLine = line
		if !plain {
			sc.prevLine = nil
			// An escaped quote, a newline inside quotes or a stray quote:
			// encoding/csv reads (and judges) this one record from here.
			var n int
			if line, n, err = sc.readQuoted(body); err != nil {
				return 0, rowError(lineNo, err)
			}
			rest, complete = body[n:], n > 0 && body[n-1] == '\n'
			if fields = len(sc.bounds) / 2; fields == len(lay.roles) {
				ts, err = p.parseRow(lay, line, &sc)
			}
		}
		body = rest
		if fields != len(lay.roles) {
			if !complete && fields < len(lay.roles) {
				return 0, errorf(ReasonTruncated, "line %d: body ends mid-row (%d of %d fields)", lineNo, fields, len(lay.roles))
			}
			return 0, errorf(ReasonParse, "line %d: %d fields, header has %d", lineNo, fields, len(lay.roles))
		}
		if err != nil {
			return 0, rowError(lineNo, err)
		}
		if b.NumRows() == maxRows {
			return 0, errorf(ReasonLimit, "line %d: %w", lineNo, p.Limits.checkSamples(maxRows+1, len(lay.columns)))
		}
		if sc.labels[0] == "" && lay.guidSlot > 0 {
			sc.labels[0] = sc.labels[lay.guidSlot] // a switch without a description
		}
		newest = max(newest, ts)
		sc.prevTS = ts
		copy(sc.lastLabels, sc.labels)
		b.AddRowValues(sc.labels, sc.values)
	}
	return newest, nil
}

// scanRow reads a line in one pass: a plain number is read by the loop
// that finds its end, without a second look. With quotes set, the line has
// a quote somewhere, and a field in plain quotes ("SW-05 MQM9790/U1,
// rack 3") is read without them; plain is false if any quote is not of
// that kind, and the caller then lets encoding/csv read the record. It
// returns the number of fields it saw, which the caller checks before the
// first error, so a row cut short reads as truncated.
func (p *Parser) scanRow(lay *layout, line []byte, sc *rowScratch, quotes bool) (ts timestamp, fields int, plain bool, err error) {
	pos, fields, ts := sc.sameLeading(lay, line)
	for {
		start, end := pos, 0 // the field is line[start:end]; pos is past it
		var v snapshot.Value
		simple := false
		if quotes && pos < len(line) && line[pos] == '"' {
			closing := bytes.IndexByte(line[pos+1:], '"')
			if closing < 0 {
				return 0, 0, false, nil // the field goes on past the line
			}
			start, end = pos+1, pos+1+closing
			if pos = end + 1; pos < len(line) && line[pos] != ',' {
				return 0, 0, false, nil // an escaped quote, or text after the quote
			}
		} else {
			if fields < len(lay.roles) && lay.roles[fields] == roleMetric {
				v, pos, simple = scanDecimal(line, pos)
			}
			if !simple {
				if i := bytes.IndexByte(line[pos:], ','); i >= 0 {
					pos += i
				} else {
					pos = len(line)
				}
				if quotes && bytes.IndexByte(line[start:pos], '"') >= 0 {
					return 0, 0, false, nil // a quote inside an unquoted field
				}
			}
			end = pos
		}
		if fields < len(lay.roles) && err == nil {
			f := line[start:end]
			switch {
			case lay.roles[fields] != roleMetric:
				ts, err = p.parseIdentity(lay, fields, f, sc, ts)
			case simple:
				sc.values[lay.slot[fields]] = v
			default:
				var verr error
				if v, verr = parseValue(f); verr != nil {
					err = fmt.Errorf("column %q: %w", lay.columns[lay.slot[fields]], verr)
				}
				sc.values[lay.slot[fields]] = v
			}
		}
		if fields < lay.leading {
			sc.ends[fields] = end
		}
		fields++
		if pos >= len(line) {
			return ts, fields, true, err
		}
		pos++ // the comma
	}
}

// sameLeading compares line's leading fields with the previous row's and
// takes the labels and timestamp of those that are the same bytes, each
// followed by a comma; it returns the position and index of the first field
// still to read.
func (sc *rowScratch) sameLeading(lay *layout, line []byte) (pos, fields int, ts timestamp) {
	if sc.prevLine == nil {
		return 0, 0, 0
	}
	for ; fields < lay.leading; fields++ {
		end := sc.ends[fields]
		if end >= len(line) || end >= len(sc.prevLine) || line[end] != ',' || !bytes.Equal(line[pos:end], sc.prevLine[pos:end]) {
			break
		}
		switch lay.roles[fields] {
		case roleTimestamp:
			ts = sc.prevTS
		case roleLabel:
			slot := lay.slot[fields]
			sc.labels[slot] = sc.lastLabels[slot]
		}
		pos = end + 1
	}
	return pos, fields, ts
}

// readQuoted reads the record at the start of body with encoding/csv and
// returns its fields joined in sc.joined, with their bounds in sc.bounds.
func (sc *rowScratch) readQuoted(body []byte) (line []byte, n int, err error) {
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
	sc.joined, sc.bounds = sc.joined[:0], sc.bounds[:0]
	for _, f := range rec {
		sc.bounds = append(sc.bounds, len(sc.joined), len(sc.joined)+len(f))
		sc.joined = append(sc.joined, f...)
	}
	return sc.joined, int(r.InputOffset()), nil
}

// parseRow reads a row whose fields are in sc.bounds (a quoted record).
func (p *Parser) parseRow(lay *layout, line []byte, sc *rowScratch) (ts timestamp, err error) {
	for i, r := range lay.roles {
		f := line[sc.bounds[2*i]:sc.bounds[2*i+1]]
		if r != roleMetric {
			if ts, err = p.parseIdentity(lay, i, f, sc, ts); err != nil {
				return 0, err
			}
			continue
		}
		v, err := parseValue(f)
		if err != nil {
			return 0, fmt.Errorf("column %q: %w", lay.columns[lay.slot[i]], err)
		}
		sc.values[lay.slot[i]] = v
	}
	return ts, nil
}

// parseIdentity reads field i when it is not a metric.
func (p *Parser) parseIdentity(lay *layout, i int, f []byte, sc *rowScratch, ts timestamp) (timestamp, error) {
	switch lay.roles[i] {
	case roleTimestamp:
		ts, err := sc.timestamp(f)
		if err != nil {
			return 0, fmt.Errorf("column %q: %w", lay.names[i], err)
		}
		return ts, nil
	case roleIgnore:
		return ts, nil
	case roleDescription:
		f = firstWord(f) // UFM's node_description starts with the switch name
		if len(f) == 0 {
			sc.labels[0] = "" // filled from node_guid by the caller
			return ts, nil
		}
	}
	slot := lay.slot[i]
	s, ok := sc.known(slot, f)
	if !ok {
		var err error
		if s, err = p.label(f); err != nil {
			return ts, fmt.Errorf("column %q: %w", lay.names[i], err)
		}
	}
	sc.labels[slot] = s
	return ts, nil
}

// rowError says which line err is about. Its reason is limit when a limit
// was hit, parse otherwise.
func rowError(lineNo int, err error) *Error {
	reason := ReasonParse
	if errors.As(err, new(limitError)) {
		reason = ReasonLimit
	}
	return &Error{Reason: reason, Err: fmt.Errorf("line %d: %w", lineNo, err)}
}

// timestamp reads a row's timestamp; a body's rows usually share one, so
// the previous row's is reused when the text is the same.
func (sc *rowScratch) timestamp(f []byte) (timestamp, error) {
	if sc.lastTS != 0 && bytes.Equal(f, sc.lastTSText) {
		return sc.lastTS, nil
	}
	ts, err := parseTimestamp(f)
	if err == nil && ts != 0 {
		sc.lastTSText, sc.lastTS = append(sc.lastTSText[:0], f...), ts
	}
	return ts, err
}

// firstWord is f up to its first space or tab.
func firstWord(f []byte) []byte {
	if j := bytes.IndexByte(f, ' '); j >= 0 {
		f = f[:j]
	}
	if j := bytes.IndexByte(f, '\t'); j >= 0 {
		f = f[:j]
	}
	return f
}

// splitBounds appends the start and end of each comma-separated field. A
// byte loop beats bytes.IndexByte here: fields are a few bytes long.
func splitBounds(line []byte, dst []int) []int {
	start := 0
	for i, c := range line {
		if c == ',' {
			dst = append(dst, start, i)
			start = i + 1
		}
	}
	return append(dst, start, len(line))
}

// label validates an identity value and returns it as a string, reusing the
// previous body's copy when there is one.
func (p *Parser) label(f []byte) (string, error) {
	if err := p.Limits.checkLabelValue(f); err != nil {
		return "", err
	}
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

// splitLine splits a header line, quoted or not.
func splitLine(line []byte) ([]string, error) {
	var sc rowScratch
	if bytes.IndexByte(line, '"') >= 0 {
		var err error
		if line, _, err = sc.readQuoted(line); err != nil {
			return nil, err
		}
	} else {
		sc.bounds = splitBounds(line, nil)
	}
	names := make([]string, len(sc.bounds)/2)
	for i := range names {
		names[i] = string(bytes.TrimSpace(line[sc.bounds[2*i]:sc.bounds[2*i+1]]))
	}
	return names, nil
}

func hasControl(b []byte) bool {
	for i, c := range b {
		switch {
		case c < 0x20 || c == 0x7f:
			return true
		case c == 0xc2 && i+1 < len(b) && b[i+1] >= 0x80 && b[i+1] <= 0x9f:
			return true // U+0080 to U+009F, the C1 controls, in valid UTF-8
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
