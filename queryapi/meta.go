package queryapi

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/gorilla/mux"
	"github.com/prometheus/common/model"
	"github.com/prometheus/common/version"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/timestamp"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/util/annotations"
)

var errTruncated = errors.New("results truncated due to limit")

// series lists the series matching any match[] selector in [start, end].
func (a *API) series(r *http.Request) result {
	if len(r.Form["match[]"]) == 0 {
		return result{err: badData(errors.New("no match[] parameter provided"))}
	}
	q, limit, sets, apiErr := a.labelQuery(r)
	if apiErr != nil {
		return result{err: apiErr}
	}
	defer q.Close()
	hints := &storage.SelectHints{Func: "series", Limit: limit}
	var set storage.SeriesSet
	if len(sets) == 1 {
		set = q.Select(r.Context(), false, hints, sets[0]...)
	} else {
		sss := make([]storage.SeriesSet, 0, len(sets))
		for _, ms := range sets {
			sss = append(sss, q.Select(r.Context(), true, hints, ms...))
		}
		set = storage.NewMergeSeriesSet(sss, 0, storage.ChainedSeriesMerge)
	}
	out := []labels.Labels{}
	var warnings annotations.Annotations
	for set.Next() {
		if limit > 0 && len(out) == limit {
			warnings = warnings.Add(errTruncated)
			break
		}
		out = append(out, set.At().Labels())
	}
	if err := set.Err(); err != nil {
		return result{err: evalError(err)}
	}
	warnings.Merge(set.Warnings()) // a peer's that did not answer
	return result{data: out, warnings: warnings}
}

// labelNames lists label names, of the series matching match[] if given.
func (a *API) labelNames(r *http.Request) result {
	q, limit, sets, apiErr := a.labelQuery(r)
	if apiErr != nil {
		return result{err: apiErr}
	}
	defer q.Close()
	return a.collect(limit, sets, func(ms []*labels.Matcher) ([]string, annotations.Annotations, error) {
		return q.LabelNames(r.Context(), nil, ms...)
	})
}

// labelValues lists the values of one label.
func (a *API) labelValues(r *http.Request) result {
	name := mux.Vars(r)["name"]
	if strings.HasPrefix(name, "U__") {
		name = model.UnescapeName(name, model.ValueEncodingEscaping)
	}
	if !model.UTF8Validation.IsValidLabelName(name) {
		return result{err: badData(fmt.Errorf("invalid label name: %q", name))}
	}
	q, limit, sets, apiErr := a.labelQuery(r)
	if apiErr != nil {
		return result{err: apiErr}
	}
	defer q.Close()
	return a.collect(limit, sets, func(ms []*labels.Matcher) ([]string, annotations.Annotations, error) {
		return q.LabelValues(r.Context(), name, nil, ms...)
	})
}

// labelQuery reads the parameters the label endpoints share: limit, start,
// end and match[], and opens a querier on that range.
func (a *API) labelQuery(r *http.Request) (storage.Querier, int, [][]*labels.Matcher, *apiError) {
	limit, err := parseLimit(r.FormValue("limit"))
	if err != nil {
		return nil, 0, nil, invalidParam(err, "limit")
	}
	start, err := parseTimeParam(r, "start", minTime)
	if err != nil {
		return nil, 0, nil, invalidParam(err, "start")
	}
	end, err := parseTimeParam(r, "end", maxTime)
	if err != nil {
		return nil, 0, nil, invalidParam(err, "end")
	}
	sets, err := a.parseMatchers(r.Form["match[]"])
	if err != nil {
		return nil, 0, nil, invalidParam(err, "match[]")
	}
	q, err := a.queryableFor(r).Querier(timestamp.FromTime(start), timestamp.FromTime(end))
	if err != nil {
		return nil, 0, nil, evalError(err)
	}
	return q, limit, sets, nil
}

// collect unions the strings get returns for each matcher set (or for none),
// sorted, cut at limit with a warning as Prometheus does; the warnings of
// get (a peer's that did not answer) are the answer's.
func (a *API) collect(limit int, sets [][]*labels.Matcher, get func([]*labels.Matcher) ([]string, annotations.Annotations, error)) result {
	if len(sets) == 0 {
		sets = [][]*labels.Matcher{nil}
	}
	var (
		all      []string
		warnings annotations.Annotations
	)
	for _, ms := range sets {
		vals, ws, err := get(ms)
		if err != nil {
			return result{err: &apiError{errorExec, err}}
		}
		warnings.Merge(ws)
		all = append(all, vals...)
	}
	slices.Sort(all)
	all = slices.Compact(all)
	if all == nil {
		all = []string{}
	}
	if limit > 0 && len(all) > limit {
		all = all[:limit]
		warnings = warnings.Add(errTruncated)
	}
	return result{data: all, warnings: warnings}
}

// metadataEntry is one metric's metadata as Prometheus lists it.
type metadataEntry struct {
	Type string `json:"type"`
	Help string `json:"help"`
	Unit string `json:"unit"`
}

// metadata lists type and help per metric: the schema table's, then what
// each source's newest snapshot says of columns the table does not know. Parameters:
// metric (one name), limit (metrics), limit_per_metric.
func (a *API) metadata(r *http.Request) result {
	limit, err := metadataLimit(r, "limit")
	if err != nil {
		return result{err: err}
	}
	if _, err := metadataLimit(r, "limit_per_metric"); err != nil {
		return result{err: err} // each metric has one entry, so any limit keeps it
	}
	metric := r.FormValue("metric")
	out := map[string][]metadataEntry{}
	add := func(name string, typ, help string) {
		if (metric != "" && name != metric) || out[name] != nil || (limit >= 0 && len(out) >= limit) {
			return
		}
		out[name] = []metadataEntry{{Type: typ, Help: help, Unit: ""}}
	}
	for _, m := range a.table.Known() {
		add(m.Name, string(m.Type), m.Help)
	}
	for _, h := range a.histories.All() {
		for _, m := range h.Load().Metrics() {
			add(m.Name, string(m.Type), m.Help)
		}
	}
	return result{data: out}
}

func metadataLimit(r *http.Request, name string) (int, *apiError) {
	s := r.FormValue(name)
	if s == "" {
		return -1, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil {
		return 0, badData(fmt.Errorf("%s must be a number", name))
	}
	return n, nil
}

// buildInfo is Prometheus's PrometheusVersion. It has no "features" key:
// Grafana would take a server that has one for Mimir.
type buildInfo struct {
	Version   string `json:"version"`
	Revision  string `json:"revision"`
	Branch    string `json:"branch"`
	BuildUser string `json:"buildUser"`
	BuildDate string `json:"buildDate"`
	GoVersion string `json:"goVersion"`
}

func (*API) buildInfo(*http.Request) result {
	return result{data: buildInfo{
		Version: version.Version, Revision: version.Revision, Branch: version.Branch,
		BuildUser: version.BuildUser, BuildDate: version.BuildDate, GoVersion: version.GoVersion,
	}}
}

// The aggregator keeps no exemplars, rules or alerts; clients such as
// Grafana ask on start-up and want an empty answer, not an error.

// exemplars checks its parameters as Prometheus does (a query is required,
// start and end are times in order) and answers that there are none.
func (a *API) exemplars(r *http.Request) result {
	start, err := parseTimeParam(r, "start", minTime)
	if err != nil {
		return result{err: invalidParam(err, "start")}
	}
	end, err := parseTimeParam(r, "end", maxTime)
	if err != nil {
		return result{err: invalidParam(err, "end")}
	}
	if end.Before(start) {
		return result{err: badData(errors.New("end timestamp must not be before start timestamp"))}
	}
	qs, apiErr := a.queryText(r)
	if apiErr != nil {
		return result{err: apiErr}
	}
	if _, err := a.parser.ParseExpr(qs); err != nil {
		return result{err: badData(err)}
	}
	return result{data: []struct{}{}}
}

func (*API) rules(*http.Request) result {
	return result{data: map[string][]struct{}{"groups": {}}}
}

func (*API) alerts(*http.Request) result {
	return result{data: map[string][]struct{}{"alerts": {}}}
}
