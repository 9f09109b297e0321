package restapi

import (
	"bufio"
	"net/http"
	"slices"
	"strconv"

	"github.com/fabrictelemetry/aggregator/snapshot"
)

// listParams are ListMetrics' filters, each repeatable.
var listParams = []string{"switch_id", "metric_name", "port"}

// ListMetrics answers every switch's metrics, switch-level and per port,
// optionally filtered by repeatable switch_id, metric_name and port
// parameters.
func (a *API) ListMetrics(w http.ResponseWriter, r *http.Request) {
	filters, err := multiParams(r.URL.RawQuery, listParams...)
	if err != nil {
		writeErr(w, err)
		return
	}
	view, fv := a.viewFor(w, r, filters["switch_id"])
	if view == nil {
		return
	}
	switchIDs, warnings := filters["switch_id"], []string(nil)
	if fv != nil {
		if switchIDs, warnings = fv.available(view, switchIDs); switchIDs == nil && len(filters["switch_id"]) > 0 {
			a.unavailable(w, "none of the switches asked for is available", warnings)
			return
		}
	}
	sel, err := selectList(view, switchIDs, filters["metric_name"], filters["port"])
	if err != nil {
		if !a.missing(w, fv, "", err) {
			writeErr(w, err)
		}
		return
	}
	w.Header()["Content-Type"] = jsonContentType
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodHead {
		return
	}
	bw := bufio.NewWriterSize(w, 64<<10)
	a.writeList(bw, view, sel, warnings)
	_ = bw.Flush() // a client that went away is not an error worth logging
}

// listSelection is what a ListMetrics answer holds.
type listSelection struct {
	switches []string // sorted
	parts    []partSelection
}

// partSelection is what one part of the view gives the answer.
type partSelection struct {
	snap      *snapshot.Snapshot
	cols      []int
	portLabel int             // -1 in a switch-level part
	ports     map[string]bool // nil: every row
}

// selectList resolves the filters against the view: all switches and
// columns when a filter is absent, an error when a value is unknown in
// every part. A port filter selects per-port rows only: switch-level
// parts drop out. A switch asked for by name is always in the answer;
// without switch_id, the answer has the switches that have rows in the
// parts shown (with a port filter, a row of those ports).
func selectList(view *snapshot.View, switchIDs, metrics, ports []string) (*listSelection, error) {
	sel := &listSelection{}
	var portSet map[string]bool
	if len(ports) > 0 {
		portSet = make(map[string]bool, len(ports))
		for _, p := range ports {
			portSet[p] = true
		}
	}
	for _, p := range view.Parts() {
		ps := partSelection{snap: p, portLabel: portLabelOf(p)}
		if portSet != nil {
			if ps.portLabel < 0 {
				continue
			}
			ps.ports = portSet
		}
		sel.parts = append(sel.parts, ps)
	}
	if err := sel.selectColumns(view, metrics, portSet != nil); err != nil {
		return nil, err
	}
	var err error
	if sel.switches, err = selectSwitches(view, sel.parts, switchIDs); err != nil {
		return nil, err
	}
	if portSet != nil {
		return sel, sel.keepPorts(ports, switchIDs)
	}
	return sel, nil
}

// selectColumns picks each part's columns: all of them, or the named
// metrics it has, in the order asked; parts with none of them drop out. A
// name no part has is a 404; with a
// port filter, a name only switch-level parts have is a 400, as it is for
// GetMetric.
func (sel *listSelection) selectColumns(view *snapshot.View, metrics []string, byPort bool) error {
	for i := range sel.parts {
		p := &sel.parts[i]
		if len(metrics) == 0 {
			p.cols = make([]int, len(p.snap.Columns()))
			for c := range p.cols {
				p.cols[c] = c
			}
			continue
		}
		for _, m := range metrics {
			if c, ok := p.snap.Column(m); ok && !slices.Contains(p.cols, c) {
				p.cols = append(p.cols, c)
			}
		}
	}
	for _, m := range metrics {
		if !hasColumn(view.Parts(), m) {
			return notFound("metric_name", m)
		}
		if byPort && !slices.ContainsFunc(sel.parts, func(p partSelection) bool { _, ok := p.snap.Column(m); return ok }) {
			return badRequest("metric_name %s is a switch-level metric: it has no port, leave the port filter out", quote(m))
		}
	}
	if len(metrics) > 0 {
		// A part without any of the metrics has nothing to show: listing
		// every port with an empty object would bury the answer.
		sel.parts = slices.DeleteFunc(sel.parts, func(p partSelection) bool { return len(p.cols) == 0 })
	}
	return nil
}

func hasColumn(parts []*snapshot.Snapshot, metric string) bool {
	return slices.ContainsFunc(parts, func(p *snapshot.Snapshot) bool { _, ok := p.Column(metric); return ok })
}

func hasSwitch(parts []*snapshot.Snapshot, id string) bool {
	return slices.ContainsFunc(parts, func(p *snapshot.Snapshot) bool { _, _, ok := p.SwitchRows(id); return ok })
}

// selectSwitches returns the asked switches, sorted and without repeats,
// each known to some part of the view; or, without a filter, every switch
// of the selected parts.
func selectSwitches(view *snapshot.View, parts []partSelection, switchIDs []string) ([]string, error) {
	if len(switchIDs) == 0 {
		if len(parts) == 1 {
			return parts[0].snap.Switches(), nil // sorted already; shared, never modified
		}
		var all []string
		for _, p := range parts {
			all = append(all, p.snap.Switches()...)
		}
		slices.Sort(all)
		return slices.Compact(all), nil
	}
	switches := make([]string, 0, len(switchIDs))
	for _, id := range switchIDs {
		if !hasSwitch(view.Parts(), id) {
			return nil, notFound("switch_id", id)
		}
		switches = append(switches, id)
	}
	slices.Sort(switches)
	return slices.Compact(switches), nil
}

// keepPorts leaves out the switches that have no row of the asked ports,
// unless they were asked for by name, and fails when an asked port matches
// no row of the switches.
func (sel *listSelection) keepPorts(ports, switchIDs []string) error {
	found := make(map[string]bool, len(ports))
	kept := make([]string, 0, len(sel.switches))
	for _, id := range sel.switches {
		has := false
		for _, p := range sel.parts {
			start, end, _ := p.snap.SwitchRows(id)
			for row := start; row < end; row++ {
				if port := p.snap.RowLabels(row)[p.portLabel]; p.ports[port] {
					found[port], has = true, true
				}
			}
		}
		if has || len(switchIDs) > 0 {
			kept = append(kept, id)
		}
	}
	sel.switches = kept
	for _, port := range ports {
		if found[port] {
			continue
		}
		msg := "unknown port " + quote(port)
		if len(switchIDs) == 1 {
			msg += " for switch_id " + quote(switchIDs[0])
		}
		return &apiError{code: http.StatusNotFound, msg: msg}
	}
	return nil
}

// writeList streams the list; the view cannot change under it, so the
// answer is consistent however long the client takes to read it. A partial
// answer says so before the switches, with its warnings.
func (a *API) writeList(bw *bufio.Writer, view *snapshot.View, sel *listSelection, warnings []string) {
	b := append(make([]byte, 0, 4096), `{"timestamp":"`...)
	b = append(b, view.TimeText()...)
	b = append(b, `","age_seconds":`...)
	b = appendSeconds(b, a.now().Sub(view.Time()).Seconds())
	b = appendPartial(b, warnings)
	b = append(b, `,"switch_count":`...)
	b = strconv.AppendInt(b, int64(len(sel.switches)), 10)
	b = append(b, `,"switches":[`...)
	for i, id := range sel.switches {
		if i > 0 {
			b = append(b, ',')
		}
		b = sel.appendSwitch(b, id)
		if len(b) > 32<<10 {
			_, _ = bw.Write(b)
			b = b[:0]
		}
	}
	b = append(b, "]}\n"...)
	_, _ = bw.Write(b)
}

// appendSwitch writes one switch: "metrics" holds its switch-level values
// (always there, empty when it has none or with a port filter); "rows"
// lists them instead when several switch-level sources report the switch;
// "ports" lists its per-port rows, when it has some.
func (sel *listSelection) appendSwitch(b []byte, id string) []byte {
	b = append(b, `{"switch_id":`...)
	b = appendString(b, id)
	var switchRows int
	for _, p := range sel.parts {
		if p.portLabel < 0 {
			start, end, _ := p.snap.SwitchRows(id)
			switchRows += end - start
		}
	}
	if switchRows == 1 {
		for _, p := range sel.parts {
			if start, end, ok := p.snap.SwitchRows(id); ok && p.portLabel < 0 && end > start {
				b = append(b, ',')
				b = p.appendMetrics(b, start)
			}
		}
	} else {
		b = append(b, `,"metrics":{}`...)
	}
	if switchRows > 1 {
		b = sel.appendRows(b, `,"rows":[`, id, false)
	}
	b = sel.appendRows(b, `,"ports":[`, id, true)
	return append(b, '}')
}

// appendRows writes the switch's rows of the switch-level parts (perPort
// false) or of the per-port parts, each with its labels and metrics, under
// key; nothing when there are none.
func (sel *listSelection) appendRows(b []byte, key, id string, perPort bool) []byte {
	n := 0
	for _, p := range sel.parts {
		if (p.portLabel >= 0) != perPort {
			continue
		}
		start, end, _ := p.snap.SwitchRows(id)
		for row := start; row < end; row++ {
			if p.ports != nil && !p.ports[p.snap.RowLabels(row)[p.portLabel]] {
				continue
			}
			if n == 0 {
				b = append(b, key...)
			} else {
				b = append(b, ',')
			}
			n++
			b = append(b, '{')
			b = appendLabels(b, p.snap.LabelNames(), p.snap.RowLabels(row))
			b = p.appendMetrics(b, row)
			b = append(b, '}')
		}
	}
	if n > 0 {
		b = append(b, ']')
	}
	return b
}

// appendMetrics writes "metrics":{...} of a row: the selected columns that
// have a value.
func (p *partSelection) appendMetrics(b []byte, row int) []byte {
	b = append(b, `"metrics":{`...)
	first := true
	for _, col := range p.cols {
		v := p.snap.Value(row, col)
		if !v.Present() {
			continue
		}
		if !first {
			b = append(b, ',')
		}
		first = false
		b = appendString(b, p.snap.Columns()[col])
		b = append(b, ':')
		b = v.AppendJSON(b)
	}
	return append(b, '}')
}
