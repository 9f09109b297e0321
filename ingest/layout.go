package ingest

import (
	"bytes"
	"fmt"
	"slices"
	"unicode/utf8"

	"github.com/fabrictelemetry/aggregator/snapshot"
)

// Format is a source's CSV layout.
type Format string

// The formats a source can serve.
const (
	// FormatAuto tells the format from the header: UFM when it has
	// node_guid and port_num, the switch matrix otherwise.
	FormatAuto Format = "auto"
	// FormatMatrix is the switch matrix: switch_id, an optional port and
	// timestamp, then metrics.
	FormatMatrix Format = "matrix"
	// FormatUFM is NVIDIA UFM Telemetry's CSV: per-port rows keyed by
	// node_guid and port_num, the switch name first in node_description.
	FormatUFM Format = "ufm"
)

// ParseFormat checks a format name.
func ParseFormat(s string) (Format, error) {
	switch f := Format(s); f {
	case FormatAuto, FormatMatrix, FormatUFM:
		return f, nil
	}
	return "", fmt.Errorf("unknown format %q (want auto, matrix or ufm)", s)
}

// Identity columns. Every other column is a metric.
const (
	ColumnSwitchID  = snapshot.SwitchLabel
	ColumnPort      = "port"
	ColumnTimestamp = "timestamp"

	// UFM Telemetry's identity columns.
	ColumnSourceID        = "source_id"
	ColumnTag             = "tag"
	ColumnNodeGUID        = "node_guid"
	ColumnPortGUID        = "port_guid"
	ColumnPortNum         = "port_num"
	ColumnNodeDescription = "node_description"
)

// Labels of per-port rows besides switch_id.
const (
	LabelPort     = snapshot.PortLabel
	LabelNodeGUID = "node_guid"
)

type role uint8

const (
	roleMetric role = iota
	roleLabel
	roleTimestamp
	roleIgnore      // identity columns that add nothing (UFM's source_id, tag, port_guid)
	roleDescription // UFM's node_description: the switch name is its first word
)

// layout is what the header says about each field of a row.
type layout struct {
	names      []string
	roles      []role
	slot       []int // label index, or metric column index
	labelNames []string
	columns    []string
	guidSlot   int // label index of node_guid in UFM rows, else 0
	// leading is how many fields at the start of a row are labels,
	// timestamps or ignored: a row that repeats the previous row's bytes
	// there repeats what they say (UFM: the timestamp and GUIDs, the same
	// for every port of a switch).
	leading int
}

// subsystem names the metrics: per-port rows export fabric_port_*.
func (l *layout) subsystem() string { return snapshot.Subsystem(l.labelNames) }

// columnRoles maps identity column names to their roles, per format.
var columnRoles = map[Format]map[string]role{
	FormatMatrix: {
		ColumnSwitchID:  roleLabel,
		ColumnPort:      roleLabel,
		ColumnTimestamp: roleTimestamp,
	},
	FormatUFM: {
		ColumnTimestamp:       roleTimestamp,
		ColumnSourceID:        roleIgnore,
		ColumnTag:             roleIgnore,
		ColumnPortGUID:        roleIgnore,
		ColumnNodeGUID:        roleLabel,
		ColumnPortNum:         roleLabel,
		ColumnNodeDescription: roleDescription,
	},
}

// labelOf is the label a labelled column fills.
var labelOf = map[string]string{
	ColumnSwitchID:        snapshot.SwitchLabel,
	ColumnPort:            LabelPort,
	ColumnNodeGUID:        LabelNodeGUID,
	ColumnPortNum:         LabelPort,
	ColumnNodeDescription: snapshot.SwitchLabel,
}

// labelOrder puts switch_id first (the snapshot requires it), then port.
var labelOrder = []string{snapshot.SwitchLabel, LabelPort, LabelNodeGUID}

func (p *Parser) parseHeader(line []byte) (*layout, error) {
	line = bytes.TrimSuffix(line, []byte{'\r'})
	if !utf8.Valid(line) || hasControl(line) {
		return nil, errorf(ReasonParse, "header is not CSV text")
	}
	if err := p.Limits.checkColumns(countFields(line)); err != nil {
		return nil, errorf(ReasonLimit, "%w", err)
	}
	names, err := splitLine(line)
	if err != nil {
		return nil, errorf(ReasonParse, "header: %w", err)
	}
	seen := make(map[string]bool, len(names))
	for i, name := range names {
		switch {
		case name == "":
			return nil, errorf(ReasonSchema, "column %d has no name", i+1)
		case seen[name]:
			return nil, errorf(ReasonSchema, "duplicate column %q", name)
		}
		seen[name] = true
	}
	format := p.format
	if format == FormatAuto {
		format = FormatMatrix
		if seen[ColumnNodeGUID] && seen[ColumnPortNum] {
			format = FormatUFM
		}
	}
	if err := checkRequired(format, seen); err != nil {
		return nil, err
	}
	return newLayout(format, names), nil
}

// countFields counts the fields of a header line without splitting it:
// the commas outside quotes, plus one. (An escaped quote toggles twice.)
func countFields(line []byte) int {
	n, quoted := 1, false
	for _, c := range line {
		switch c {
		case '"':
			quoted = !quoted
		case ',':
			if !quoted {
				n++
			}
		}
	}
	return n
}

func checkRequired(format Format, seen map[string]bool) error {
	required := []string{ColumnSwitchID}
	if format == FormatUFM {
		required = []string{ColumnNodeGUID, ColumnPortNum}
	}
	for _, c := range required {
		if !seen[c] {
			return errorf(ReasonSchema, "no %s column (format %s)", c, format)
		}
	}
	return nil
}

func newLayout(format Format, names []string) *layout {
	roles := columnRoles[format]
	lay := &layout{names: names, roles: make([]role, len(names)), slot: make([]int, len(names))}
	labels := map[string]bool{}
	for i, name := range names {
		r, ok := roles[name]
		if !ok {
			r = roleMetric
			lay.slot[i] = len(lay.columns)
			lay.columns = append(lay.columns, name)
		}
		lay.roles[i] = r
		if r == roleLabel || r == roleDescription {
			labels[labelOf[name]] = true
		}
	}
	if format == FormatUFM {
		labels[snapshot.SwitchLabel] = true // from node_description, or node_guid
	}
	for _, l := range labelOrder {
		if labels[l] {
			lay.labelNames = append(lay.labelNames, l)
		}
	}
	for i, name := range names {
		if lay.roles[i] == roleLabel || lay.roles[i] == roleDescription {
			lay.slot[i] = slices.Index(lay.labelNames, labelOf[name])
		}
	}
	if format == FormatUFM {
		lay.guidSlot = slices.Index(lay.labelNames, LabelNodeGUID)
	}
	for lay.leading < len(lay.roles) && lay.roles[lay.leading] != roleMetric && lay.roles[lay.leading] != roleDescription {
		lay.leading++
	}
	return lay
}
