package queryapi

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"
)

// queryData is the data of a query answer; promql values marshal themselves
// in Prometheus's format.
type queryData struct {
	ResultType parser.ValueType `json:"resultType"`
	Result     parser.Value     `json:"result"`
}

// query evaluates an instant query: query, time (default now), timeout.
func (a *API) query(r *http.Request) result {
	qs, apiErr := a.queryText(r)
	if apiErr != nil {
		return result{err: apiErr}
	}
	ts, err := parseTimeParam(r, "time", a.now())
	if err != nil {
		return result{err: invalidParam(err, "time")}
	}
	ctx, cancel, apiErr := a.queryContext(r)
	if apiErr != nil {
		return result{err: apiErr}
	}
	defer cancel()
	opts, apiErr := queryOpts(r)
	if apiErr != nil {
		return result{err: apiErr}
	}
	qry, err := a.engine.NewInstantQuery(ctx, a.queryableFor(r), opts, qs, ts)
	if err != nil {
		return result{err: a.constructionError(err)}
	}
	return a.run(ctx, qry)
}

// errSubqueryResolution refuses a subquery with more steps than a range
// query may have points. The engine checks the query's deadline between the
// steps of an expression, not within the steps of a selector inside a
// subquery, so `x[10d:1ms]` would run for seconds past --query.timeout
// (found by FuzzQuery); Cortex refuses such subqueries the same way
// (querier.max-subquery-steps).
var errSubqueryResolution = errors.New("exceeded maximum resolution of 11,000 points per timeseries in subquery. Try increasing the step size of your subquery")

// checkSubqueries returns errSubqueryResolution if a subquery of the
// query's expression has more than maxPoints steps.
func checkSubqueries(qry promql.Query) error {
	stmt, ok := qry.Statement().(*parser.EvalStmt)
	if !ok {
		return nil
	}
	var err error
	parser.Inspect(stmt.Expr, func(node parser.Node, _ []parser.Node) error {
		sq, ok := node.(*parser.SubqueryExpr)
		if !ok {
			return nil
		}
		step := sq.Step
		if step <= 0 {
			step = subqueryStep
		}
		if sq.Range/step > maxPoints {
			err = errSubqueryResolution
		}
		return err
	})
	return err
}

// queryRange evaluates a range query: query, start, end, step, timeout.
func (a *API) queryRange(r *http.Request) result {
	qs, apiErr := a.queryText(r)
	if apiErr != nil {
		return result{err: apiErr}
	}
	start, end, step, apiErr := rangeParams(r)
	if apiErr != nil {
		return result{err: apiErr}
	}
	ctx, cancel, apiErr := a.queryContext(r)
	if apiErr != nil {
		return result{err: apiErr}
	}
	defer cancel()
	opts, apiErr := queryOpts(r)
	if apiErr != nil {
		return result{err: apiErr}
	}
	qry, err := a.engine.NewRangeQuery(ctx, a.queryableFor(r), opts, qs, start, end, step)
	if err != nil {
		return result{err: a.constructionError(err)}
	}
	return a.run(ctx, qry)
}

func (a *API) run(ctx context.Context, qry promql.Query) result {
	if err := checkSubqueries(qry); err != nil {
		qry.Close()
		return result{err: badData(err)}
	}
	res := qry.Exec(ctx)
	heavy := int64(qry.Stats().Samples.PeakSamples)*bytesPerSample >= a.heavyBytes
	if res.Err != nil {
		qry.Close()
		e := a.queryError(res.Err)
		// A query refused by a limit held up to that limit.
		switch refusedBy(e) {
		case limitSamples:
			heavy = int64(a.opts.MaxSamples)*bytesPerSample >= a.heavyBytes
		case limitSeries:
			heavy = int64(a.opts.MaxSeries)*bytesPerSeries >= a.heavyBytes
		}
		return result{err: e, warnings: res.Warnings, heavy: heavy}
	}
	return result{
		data:      queryData{ResultType: res.Value.Type(), Result: nonNil(res.Value)},
		warnings:  res.Warnings,
		finalizer: qry.Close,
		heavy:     heavy,
	}
}

// nonNil returns an empty vector or matrix for a nil one, which the engine
// returns for some empty results (a range query of sum(nothing)): the API
// answers "result": [], never null, which strict decoders reject.
func nonNil(v parser.Value) parser.Value {
	switch v := v.(type) {
	case promql.Matrix:
		if v == nil {
			return promql.Matrix{}
		}
	case promql.Vector:
		if v == nil {
			return promql.Vector{}
		}
	}
	return v
}

// queryText returns the query parameter, refusing one over the length limit
// before the parser spends time on it.
func (a *API) queryText(r *http.Request) (string, *apiError) {
	qs := r.FormValue("query")
	if len(qs) > a.opts.MaxQueryLength {
		return "", invalidParam(fmt.Errorf("query is %d bytes long, more than the limit of %d (--query.max-length)", len(qs), a.opts.MaxQueryLength), "query")
	}
	return qs, nil
}

func rangeParams(r *http.Request) (start, end time.Time, step time.Duration, _ *apiError) {
	start, err := parseTime(r.FormValue("start"))
	if err != nil {
		return start, end, 0, invalidParam(err, "start")
	}
	end, err = parseTime(r.FormValue("end"))
	if err != nil {
		return start, end, 0, invalidParam(err, "end")
	}
	if end.Before(start) {
		return start, end, 0, invalidParam(errors.New("end timestamp must not be before start time"), "end")
	}
	step, err = parseDuration(r.FormValue("step"))
	if err != nil {
		return start, end, 0, invalidParam(err, "step")
	}
	if step <= 0 {
		return start, end, 0, invalidParam(errors.New("zero or negative query resolution step widths are not accepted. Try a positive integer"), "step")
	}
	// As Prometheus: 60s resolution for a week, or 1h for a year.
	if end.Sub(start)/step > maxPoints {
		return start, end, 0, badData(errors.New("exceeded maximum resolution of 11,000 points per timeseries. Try decreasing the query resolution (?step=XX)"))
	}
	return start, end, step, nil
}

// queryContext applies the timeout parameter, which can only shorten
// --query.timeout (the engine applies that one itself).
func (a *API) queryContext(r *http.Request) (context.Context, context.CancelFunc, *apiError) {
	ctx := r.Context()
	v := r.FormValue("timeout")
	if v == "" {
		return ctx, func() {}, nil
	}
	timeout, err := parseDuration(v)
	if err != nil {
		return nil, nil, invalidParam(err, "timeout")
	}
	if timeout <= 0 {
		return nil, nil, invalidParam(fmt.Errorf("timeout must be positive, got %s", timeout), "timeout")
	}
	ctx, cancel := context.WithDeadline(ctx, a.now().Add(timeout))
	return ctx, cancel, nil
}

// queryOpts reads the per-query lookback_delta.
func queryOpts(r *http.Request) (promql.QueryOpts, *apiError) {
	var lookback time.Duration
	if v := r.FormValue("lookback_delta"); v != "" {
		d, err := parseDuration(v)
		if err != nil {
			return nil, badData(fmt.Errorf("error parsing lookback delta duration: %w", err))
		}
		lookback = d
	}
	return promql.NewPrometheusQueryOpts(false, lookback, nil), nil
}
