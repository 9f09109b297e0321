package restapi

import (
	"net/http"
	"slices"

	"github.com/fabrictelemetry/aggregator/snapshot"
)

// getMetricParams are GetMetric's parameters, each at most once: the first
// two are required, port is optional.
var getMetricParams = []string{"switch_id", "metric_name", "port"}

const getMetricRequired = 2

// GetMetric answers one metric of one switch:
// ?switch_id=SW-05&metric_name=Latency_Avg_uSec gives a switch-level value,
// or every port's value for a per-port metric; &port=3 gives one port's.
func (a *API) GetMetric(w http.ResponseWriter, r *http.Request) {
	var q [3]string
	if err := singleParams(r.URL.RawQuery, getMetricParams, getMetricRequired, q[:]); err != nil {
		writeErr(w, err)
		return
	}
	view, fv := a.viewFor(w, r, q[:1])
	if view == nil {
		return
	}
	h, err := findMetric(view, q[0], q[1], q[2])
	if err != nil {
		if !a.missing(w, fv, q[0], err) {
			writeErr(w, err)
		}
		return
	}
	var warnings []string
	if fv != nil {
		warnings = fv.warnings
	}
	bp := a.buffers.Get().(*[]byte)
	b := a.appendMetric((*bp)[:0], h, q[0], q[1], warnings)
	writeJSON(w, http.StatusOK, b)
	*bp = b
	a.buffers.Put(bp)
}

// metricHit is where a GetMetric answer comes from: one column of one
// part, over the switch's rows [start, end), or those of them with the
// asked port.
type metricHit struct {
	part       *snapshot.Snapshot
	col        int
	start, end int
	portLabel  int    // index of the port label; -1 in a switch-level part
	port       string // the port asked for; "" for every row
	single     int    // the row of a one-value answer, or -1 for a list
}

// findMetric looks the metric up in the view's parts in order (switch-level
// first) and takes the first part that has both the switch and the column;
// with a port, only per-port parts qualify, so a column that both parts
// have is a port's when a port is asked for. The errors say what is
// missing, switch before metric before port, as the seed's did.
func findMetric(view *snapshot.View, switchID, metric, port string) (metricHit, error) {
	var knownSwitch, knownMetric, switchLevel bool
	for _, p := range view.Parts() {
		start, end, okSwitch := p.SwitchRows(switchID)
		col, okMetric := p.Column(metric)
		knownSwitch = knownSwitch || okSwitch
		knownMetric = knownMetric || okMetric
		if !okSwitch || !okMetric {
			continue
		}
		h := metricHit{part: p, col: col, start: start, end: end, portLabel: portLabelOf(p), port: port, single: -1}
		if port == "" {
			if h.portLabel < 0 && end-start == 1 {
				h.single = start
			}
			return h, nil
		}
		if h.portLabel < 0 {
			switchLevel = true
			continue
		}
		return h.selectPort(switchID)
	}
	switch {
	case !knownSwitch:
		return metricHit{}, notFound("switch_id", switchID)
	case !knownMetric:
		return metricHit{}, notFound("metric_name", metric)
	case switchLevel:
		return metricHit{}, badRequest("metric_name %s is a switch-level metric: it has no port, leave the port parameter out", quote(metric))
	}
	return metricHit{}, &apiError{code: http.StatusNotFound,
		msg: "switch_id " + quote(switchID) + " has no metric_name " + quote(metric)}
}

// selectPort narrows the hit to the rows of h.port: one row gives the
// one-value answer; several (one port reported by sources that differ by
// an extra label) give the list, never a silent pick.
func (h metricHit) selectPort(switchID string) (metricHit, error) {
	matches := 0
	for row := h.start; row < h.end; row++ {
		if h.part.RowLabels(row)[h.portLabel] == h.port {
			matches++
			h.single = row
		}
	}
	switch matches {
	case 0:
		return metricHit{}, &apiError{code: http.StatusNotFound,
			msg: "unknown port " + quote(h.port) + " for switch_id " + quote(switchID)}
	case 1:
		return h, nil
	}
	h.single = -1
	return h, nil
}

// appendMetric writes the answer: {switch_id, metric_name[, port], value}
// for one row, or the switch's rows as a "ports" list (per-port metrics)
// or a "rows" list (a switch that several switch-level sources report),
// and the time of the part the value comes from; then, for a partial
// answer, the warnings that say so.
func (a *API) appendMetric(b []byte, h metricHit, switchID, metric string, warnings []string) []byte {
	b = append(b, `{"switch_id":`...)
	b = appendString(b, switchID)
	b = append(b, `,"metric_name":`...)
	b = appendString(b, metric)
	if h.single >= 0 {
		if h.port != "" {
			b = append(b, `,"port":`...)
			b = appendString(b, h.port)
		}
		b = append(b, `,"value":`...)
		b = h.part.Value(h.single, h.col).AppendJSON(b)
	} else {
		b = h.appendList(b)
	}
	b = a.appendTime(b, h.part.TimeText(), h.part.Time())
	b = appendPartial(b, warnings)
	return append(b, "}\n"...)
}

// appendList writes the rows that have a value, each with its labels; a
// value the source left empty is omitted, as ListMetrics omits it.
func (h metricHit) appendList(b []byte) []byte {
	if h.portLabel >= 0 {
		b = append(b, `,"ports":[`...)
	} else {
		b = append(b, `,"rows":[`...)
	}
	names := h.part.LabelNames()
	first := true
	for row := h.start; row < h.end; row++ {
		v := h.part.Value(row, h.col)
		if !v.Present() || h.port != "" && h.part.RowLabels(row)[h.portLabel] != h.port {
			continue
		}
		if !first {
			b = append(b, ',')
		}
		first = false
		b = append(b, '{')
		b = appendLabels(b, names, h.part.RowLabels(row))
		b = append(b, `"value":`...)
		b = v.AppendJSON(b)
		b = append(b, '}')
	}
	return append(b, ']')
}

// portLabelOf is the index of the port label in a part, -1 when the part
// is switch-level.
func portLabelOf(p *snapshot.Snapshot) int { return slices.Index(p.LabelNames(), snapshot.PortLabel) }

// appendLabels writes a row's labels as JSON members, each followed by a
// comma. switch_id is left out (the answer already names the switch), so
// are empty values (a label this row's source does not have), and so are
// labels called value or metrics, which would clash with the member that
// follows them.
func appendLabels(b []byte, names, values []string) []byte {
	for i, v := range values {
		n := names[i]
		if i == 0 || v == "" || n == "value" || n == "metrics" {
			continue
		}
		b = appendString(b, n)
		b = append(b, ':')
		b = appendString(b, v)
		b = append(b, ',')
	}
	return b
}
