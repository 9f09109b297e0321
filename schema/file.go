package schema

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"strconv"
	"strings"

	"github.com/prometheus/common/model"
)

// FileHeader is the header line a schema file must start with.
const FileHeader = "column,metric,type,scale,help"

// LoadFile reads a schema file and returns base extended by it: each row adds
// a column or overrides base's entry for it. base is not modified.
//
// The file is CSV with the header column,metric,type,scale,help; lines
// starting with # are comments. metric is the full metric name, a legacy
// Prometheus name ([a-zA-Z_:][a-zA-Z0-9_:]*) so that every scraper, PromQL
// query and the pre-rendered exposition can use it unquoted; a counter's name
// ends in _total and a gauge's does not. type is gauge or counter. scale is a
// finite non-zero factor to base units, 1 if empty. help defaults to one
// naming the column; the file's help gets the "cached from the last poll"
// note appended like the built-in entries.
func LoadFile(path string, base *Table) (*Table, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("schema file: %w", err)
	}
	defer f.Close()
	t, err := parseFile(f, base)
	if err != nil {
		return nil, fmt.Errorf("schema file %s: %w", path, err)
	}
	return t, nil
}

func parseFile(r io.Reader, base *Table) (*Table, error) {
	cr := csv.NewReader(r)
	cr.Comment = '#'
	cr.FieldsPerRecord = 5
	cr.TrimLeadingSpace = true
	header, err := cr.Read()
	switch {
	case errors.Is(err, io.EOF):
		return nil, errors.New("empty file, want header " + FileHeader)
	case err != nil:
		return nil, err
	case strings.Join(header, ",") != FileHeader:
		line, _ := cr.FieldPos(0)
		return nil, fmt.Errorf("line %d: header %q, want %q", line, strings.Join(header, ","), FileHeader)
	}
	t := base.Clone()
	inFile := map[string]int{} // column -> line, to reject a column given twice
	for {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, err // csv.ParseError names the line
		}
		line, _ := cr.FieldPos(0)
		m, err := parseEntry(rec)
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", line, err)
		}
		if prev, ok := inFile[m.Column]; ok {
			return nil, fmt.Errorf("line %d: column %q already defined on line %d", line, m.Column, prev)
		}
		inFile[m.Column] = line
		t.Add(m)
	}
	if err := t.checkUnique(); err != nil {
		return nil, err
	}
	return t, nil
}

func parseEntry(rec []string) (Metric, error) {
	for i := range rec {
		rec[i] = strings.TrimSpace(rec[i])
	}
	m := Metric{Column: rec[0], Name: rec[1], Type: Type(rec[2]), Scale: 1, Help: rec[4], Known: true}
	switch {
	case m.Column == "":
		return m, errors.New("empty column")
	case !model.LegacyValidation.IsValidMetricName(m.Name):
		return m, fmt.Errorf("invalid metric name %q: want [a-zA-Z_:][a-zA-Z0-9_:]*", m.Name)
	case reserved(m.Name):
		return m, fmt.Errorf("metric name %q is reserved for the aggregator's own metrics (prefixes %s)", m.Name, strings.Join(ReservedPrefixes, ", "))
	case m.Type != Gauge && m.Type != Counter:
		return m, fmt.Errorf("metric %s: type %q, want gauge or counter", m.Name, rec[2])
	case m.Type == Counter && !strings.HasSuffix(m.Name, "_total"):
		return m, fmt.Errorf("counter %s: name must end in _total", m.Name)
	case m.Type == Gauge && strings.HasSuffix(m.Name, "_total"):
		return m, fmt.Errorf("gauge %s: _total is for counters", m.Name)
	}
	if rec[3] != "" {
		s, err := strconv.ParseFloat(rec[3], 64)
		if err != nil || s == 0 || math.IsInf(s, 0) || math.IsNaN(s) {
			return m, fmt.Errorf("metric %s: scale %q, want a finite non-zero number", m.Name, rec[3])
		}
		m.Scale = s
	}
	if m.Help == "" {
		m.Help = fmt.Sprintf("Value of source column %q.", m.Column)
	}
	m.Help += cached
	return m, nil
}

// ReservedPrefixes start the names of the aggregator's own metrics, which a
// schema file must not take for data.
var ReservedPrefixes = []string{
	Namespace + "_ingest_", Namespace + "_source_", Namespace + "_snapshot_", Namespace + "_history_",
	Namespace + "_http_", Namespace + "_aggregator_", Namespace + "_query_", Namespace + "_fanout_", "go_", "process_", "promhttp_",
}

func reserved(name string) bool {
	for _, p := range ReservedPrefixes {
		if strings.HasPrefix(name, p) {
			return true
		}
	}
	return false
}

// checkUnique rejects two columns exported under one name: Resolve lets a
// known column win a clash with an unknown one, but two known ones would
// break the exposition.
func (t *Table) checkUnique() error {
	byName := make(map[string]string, len(t.order))
	for _, c := range t.order {
		name := t.byColumn[c].Name
		if other, ok := byName[name]; ok {
			return fmt.Errorf("columns %q and %q are both exported as %s", other, c, name)
		}
		byName[name] = c
	}
	return nil
}

// Clone returns a copy of t that can be changed without changing t. A note
// reporter set with ReportNotes is not copied.
func (t *Table) Clone() *Table {
	c := &Table{byColumn: make(map[string]Metric, len(t.byColumn)), order: append([]string(nil), t.order...)}
	for k, v := range t.byColumn {
		c.byColumn[k] = v
	}
	return c
}
