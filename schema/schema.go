// Package schema is the single table that names metrics: which CSV column
// becomes which Prometheus metric, with its type, scale to base units and
// help text. The collector, the query API's metadata, the dashboards, the
// alert rules and the docs all derive their names from it, so a rename here
// is a rename everywhere (and a test failure wherever something was missed).
package schema

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Namespace prefixes every metric the aggregator exports.
const Namespace = "fabric"

// Subsystems of data metrics: switch-level rows and per-port rows.
const (
	SwitchSubsystem = "switch"
	PortSubsystem   = "port"
)

// Type is a Prometheus metric type.
type Type string

// Metric types used for snapshot columns.
const (
	Gauge   Type = "gauge"
	Counter Type = "counter"
)

// Metric describes how one source column is exported.
type Metric struct {
	Column string  // source CSV column
	Name   string  // full Prometheus metric name
	Type   Type    // gauge or counter
	Scale  float64 // multiply the source value by this to get base units; 1 keeps integers exact
	Help   string
	Known  bool // from the table (or a schema file), not derived from an unknown column
}

// Table maps source columns to metrics.
type Table struct {
	byColumn map[string]Metric
	order    []string // columns in table order, for docs and metadata
	notes    *noteReporter
}

// Default returns the built-in table: the switch matrix's columns and UFM
// Telemetry's InfiniBand port counters.
func Default() *Table {
	t := &Table{byColumn: map[string]Metric{}}
	for _, group := range []struct {
		subsystem string
		metrics   []Metric
	}{{SwitchSubsystem, switchMetrics}, {PortSubsystem, ufmPortMetrics}} {
		for _, m := range group.metrics {
			m.Name = Namespace + "_" + group.subsystem + "_" + m.Name
			m.Known = true
			if m.Scale == 0 {
				m.Scale = 1
			}
			t.Add(m)
		}
	}
	return t
}

// forSubsystem names a table entry for rows of a subsystem: the switch
// matrix's columns sent per port (switch_id,port,...) are fabric_port_*
// metrics, with the same naming rules.
func (m Metric) forSubsystem(subsystem string) Metric {
	switchPrefix := Namespace + "_" + SwitchSubsystem + "_"
	if subsystem != SwitchSubsystem && strings.HasPrefix(m.Name, switchPrefix) {
		m.Name = Namespace + "_" + subsystem + "_" + strings.TrimPrefix(m.Name, switchPrefix)
	}
	return m
}

// Add adds or replaces the entry for m.Column.
func (t *Table) Add(m Metric) {
	if _, ok := t.byColumn[m.Column]; !ok {
		t.order = append(t.order, m.Column)
	}
	t.byColumn[m.Column] = m
}

// Known returns the table's entries in table order.
func (t *Table) Known() []Metric {
	out := make([]Metric, 0, len(t.order))
	for _, c := range t.order {
		out = append(out, t.byColumn[c])
	}
	return out
}

// Lookup returns the table entry for a column, if any.
func (t *Table) Lookup(column string) (Metric, bool) {
	m, ok := t.byColumn[column]
	return m, ok
}

// Resolve describes every column of a snapshot. Known columns come from the
// table; an unknown column becomes a gauge named after it in snake case. When
// two columns would get one name, the known column keeps it and the other
// gets a numbered suffix, so the exposition is never broken; each such
// decision is returned as a note for the caller to log (and passed to the
// reporter set with ReportNotes, once per column set).
func (t *Table) Resolve(subsystem string, columns []string) (metrics []Metric, notes []string) {
	defer func() { t.notes.notify(subsystem, columns, notes) }()
	metrics = make([]Metric, len(columns))
	taken := make(map[string]string, len(columns))
	// Known columns first, so they win every clash.
	for i, c := range columns {
		if m, ok := t.byColumn[c]; ok {
			m = m.forSubsystem(subsystem)
			// Two known columns can meet under one name (Tx_Bytes and
			// PortXmitDataExtended in one per-port body): the first keeps it.
			if name := unclash(m.Name, taken); name != m.Name {
				notes = append(notes, fmt.Sprintf("column %q would be %s like column %q; exported as %s", c, m.Name, taken[m.Name], name))
				m.Name = name
			}
			metrics[i] = m
			taken[m.Name] = c
		}
	}
	for i, c := range columns {
		if metrics[i].Name != "" {
			continue
		}
		base := Namespace + "_" + subsystem + "_" + SnakeCase(c)
		name := unclash(base, taken)
		if name != base {
			notes = append(notes, fmt.Sprintf("column %q would be %s like column %q; exported as %s", c, base, taken[base], name))
		}
		taken[name] = c
		metrics[i] = Metric{
			Column: c,
			Name:   name,
			Type:   Gauge,
			Scale:  1,
			Help:   fmt.Sprintf("Value of source column %q (no schema entry; exported as a gauge), cached from the last successful poll.", c),
		}
	}
	return metrics, notes
}

// unclash returns name, or name with the first free numbered suffix. A
// counter keeps its _total at the end.
func unclash(name string, taken map[string]string) string {
	if taken[name] == "" {
		return name
	}
	stem, suffix := name, ""
	if strings.HasSuffix(name, "_total") {
		stem, suffix = strings.TrimSuffix(name, "_total"), "_total"
	}
	for n := 2; ; n++ {
		if candidate := fmt.Sprintf("%s_%d%s", stem, n, suffix); taken[candidate] == "" {
			return candidate
		}
	}
}

// SnakeCase folds a column name into a metric-name fragment: CamelCase and
// acronyms split with underscores, anything outside [a-z0-9] becomes an
// underscore, runs of underscores collapse. PortXmitDataExtended becomes
// port_xmit_data_extended, Fan_Speed_RPM fan_speed_rpm.
func SnakeCase(s string) string {
	var b strings.Builder
	rs := []rune(s)
	if !utf8.ValidString(s) {
		rs = []rune(strings.ToValidUTF8(s, "_"))
	}
	underscore := func() {
		if b.Len() > 0 && !strings.HasSuffix(b.String(), "_") {
			b.WriteByte('_')
		}
	}
	for i, r := range rs {
		switch {
		case r < utf8.RuneSelf && (unicode.IsLetter(r) || unicode.IsDigit(r)):
			if unicode.IsUpper(r) && i > 0 {
				prev := rs[i-1]
				nextLower := i+1 < len(rs) && unicode.IsLower(rs[i+1])
				if unicode.IsLower(prev) || unicode.IsDigit(prev) || (unicode.IsUpper(prev) && nextLower) {
					underscore()
				}
			}
			b.WriteRune(unicode.ToLower(r))
		default:
			underscore()
		}
	}
	out := strings.Trim(b.String(), "_")
	if out == "" {
		return "unnamed"
	}
	return out
}

const cached = " Cached from the last successful poll of the source."

// switchMetrics is the built-in table of the switch matrix, names without
// the fabric_switch_ prefix.
var switchMetrics = []Metric{
	{Column: "Latency_Avg_uSec", Name: "latency_average_seconds", Type: Gauge, Scale: 1e-6, Help: "Average latency in seconds (source column Latency_Avg_uSec, microseconds)." + cached},
	{Column: "Latency_Max_uSec", Name: "latency_max_seconds", Type: Gauge, Scale: 1e-6, Help: "Maximum latency in seconds (source column Latency_Max_uSec, microseconds)." + cached},
	{Column: "Bandwidth_Util_Pct", Name: "bandwidth_utilization_ratio", Type: Gauge, Scale: 0.01, Help: "Bandwidth utilization, 0 to 1 (source column Bandwidth_Util_Pct, percent)." + cached},
	{Column: "Buffer_Util_Pct", Name: "buffer_utilization_ratio", Type: Gauge, Scale: 0.01, Help: "Buffer utilization, 0 to 1 (source column Buffer_Util_Pct, percent)." + cached},
	{Column: "Rx_Bytes", Name: "receive_bytes_total", Type: Counter, Help: "Bytes received (source column Rx_Bytes)." + cached},
	{Column: "Tx_Bytes", Name: "transmit_bytes_total", Type: Counter, Help: "Bytes transmitted (source column Tx_Bytes)." + cached},
	{Column: "Rx_Packets", Name: "receive_packets_total", Type: Counter, Help: "Packets received (source column Rx_Packets)." + cached},
	{Column: "Tx_Packets", Name: "transmit_packets_total", Type: Counter, Help: "Packets transmitted (source column Tx_Packets)." + cached},
	{Column: "Rx_Errors", Name: "receive_errors_total", Type: Counter, Help: "Receive errors (source column Rx_Errors)." + cached},
	{Column: "Tx_Discards", Name: "transmit_discards_total", Type: Counter, Help: "Transmit discards (source column Tx_Discards)." + cached},
	{Column: "Symbol_Errors", Name: "symbol_errors_total", Type: Counter, Help: "Physical-layer symbol errors (source column Symbol_Errors)." + cached},
	{Column: "Link_Down_Count", Name: "link_downed_total", Type: Counter, Help: "Times a link went down (source column Link_Down_Count)." + cached},
	{Column: "Xmit_Wait", Name: "transmit_wait_total", Type: Counter, Help: "Ticks with data to send but no credits (source column Xmit_Wait)." + cached},
	{Column: "Temperature_C", Name: "temperature_celsius", Type: Gauge, Help: "Temperature in degrees Celsius (source column Temperature_C)." + cached},
	{Column: "Power_W", Name: "power_watts", Type: Gauge, Help: "Power draw in watts (source column Power_W)." + cached},
	{Column: "Ports_Up", Name: "ports_up", Type: Gauge, Help: "Ports whose link is up (source column Ports_Up)." + cached},
	{Column: "Ports_Total", Name: "ports", Type: Gauge, Help: "Number of ports (source column Ports_Total)." + cached},
}

// ufmPortMetrics are UFM Telemetry's InfiniBand extended port counters. The
// data counters count 4-octet words; they are exported in bytes.
var ufmPortMetrics = []Metric{
	{Column: "PortXmitDataExtended", Name: "transmit_bytes_total", Type: Counter, Scale: 4, Help: "Bytes transmitted (UFM PortXmitDataExtended, 4-octet words, ×4)." + cached},
	{Column: "PortRcvDataExtended", Name: "receive_bytes_total", Type: Counter, Scale: 4, Help: "Bytes received (UFM PortRcvDataExtended, 4-octet words, ×4)." + cached},
	{Column: "PortXmitPktsExtended", Name: "transmit_packets_total", Type: Counter, Help: "Packets transmitted (UFM PortXmitPktsExtended)." + cached},
	{Column: "PortRcvPktsExtended", Name: "receive_packets_total", Type: Counter, Help: "Packets received (UFM PortRcvPktsExtended)." + cached},
	{Column: "PortXmitWaitExtended", Name: "transmit_wait_total", Type: Counter, Help: "Ticks with data to send but no credits (UFM PortXmitWaitExtended)." + cached},
	{Column: "SymbolErrorCounterExtended", Name: "symbol_errors_total", Type: Counter, Help: "Physical-layer symbol errors (UFM SymbolErrorCounterExtended)." + cached},
	{Column: "LinkErrorRecoveryCounterExtended", Name: "link_error_recovery_total", Type: Counter, Help: "Link error recoveries (UFM LinkErrorRecoveryCounterExtended)." + cached},
	{Column: "LinkDownedCounterExtended", Name: "link_downed_total", Type: Counter, Help: "Times the link went down (UFM LinkDownedCounterExtended)." + cached},
	{Column: "PortRcvErrorsExtended", Name: "receive_errors_total", Type: Counter, Help: "Receive errors (UFM PortRcvErrorsExtended)." + cached},
	{Column: "PortRcvRemotePhysicalErrorsExtended", Name: "receive_remote_physical_errors_total", Type: Counter, Help: "Packets received with a remote physical error (UFM PortRcvRemotePhysicalErrorsExtended)." + cached},
	{Column: "PortXmitDiscardsExtended", Name: "transmit_discards_total", Type: Counter, Help: "Transmit discards (UFM PortXmitDiscardsExtended)." + cached},
	{Column: "LocalLinkIntegrityErrorsExtended", Name: "local_link_integrity_errors_total", Type: Counter, Help: "Local link integrity errors (UFM LocalLinkIntegrityErrorsExtended)." + cached},
	{Column: "ExcessiveBufferOverrunErrorsExtended", Name: "excessive_buffer_overrun_errors_total", Type: Counter, Help: "Excessive buffer overrun errors (UFM ExcessiveBufferOverrunErrorsExtended)." + cached},
	{Column: "VL15DroppedExtended", Name: "vl15_dropped_total", Type: Counter, Help: "VL15 (subnet management) packets dropped (UFM VL15DroppedExtended)." + cached},
}
