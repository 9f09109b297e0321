package queryapi

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/alecthomas/units"
	"github.com/prometheus/prometheus/promql"
)

// errorType is a Prometheus API error type; each has its status code.
type errorType string

// The error types of the Prometheus HTTP API.
const (
	errorTimeout   errorType = "timeout"
	errorCanceled  errorType = "canceled"
	errorExec      errorType = "execution"
	errorCostLimit errorType = "cost_limit"
	errorBadData   errorType = "bad_data"
	errorInternal  errorType = "internal"
	errorNotFound  errorType = "not_found"
)

// statusClientClosedConnection is nginx's code for a client that went away,
// which Prometheus answers a canceled query with.
const statusClientClosedConnection = 499

func (t errorType) code() int {
	switch t {
	case errorBadData:
		return http.StatusBadRequest
	case errorExec, errorCostLimit:
		return http.StatusUnprocessableEntity
	case errorCanceled:
		return statusClientClosedConnection
	case errorTimeout:
		return http.StatusServiceUnavailable
	case errorNotFound:
		return http.StatusNotFound
	}
	return http.StatusInternalServerError
}

type apiError struct {
	typ errorType
	err error
}

func (e *apiError) Error() string { return fmt.Sprintf("%s: %s", e.typ, e.err) }

func badData(err error) *apiError { return &apiError{errorBadData, err} }

func invalidParam(err error, name string) *apiError {
	return badData(fmt.Errorf("invalid parameter %q: %w", name, err))
}

// evalError maps an error from running a query as Prometheus does: too many
// samples and every other evaluation failure are "execution" (422), too
// many series "cost_limit" (422, Prometheus's type for its query cost
// limits). One difference: a deadline that expires while series are read
// from the history is a timeout (503), like one the engine notices itself,
// rather than an execution error; the client asked for a time limit and hit
// it.
func evalError(err error) *apiError {
	var (
		canceled      promql.ErrQueryCanceled
		timeout       promql.ErrQueryTimeout
		storage       promql.ErrStorage
		tooManySeries promql.ErrTooManySeries
	)
	switch {
	case errors.As(err, &canceled), errors.Is(err, context.Canceled):
		return &apiError{errorCanceled, err}
	case errors.As(err, &timeout), errors.Is(err, context.DeadlineExceeded):
		return &apiError{errorTimeout, err}
	case errors.As(err, &tooManySeries):
		return &apiError{errorCostLimit, err}
	case errors.As(err, &storage):
		return &apiError{errorInternal, err}
	}
	return &apiError{errorExec, err}
}

// queryError is evalError for a query, with the flag of the limit that
// refused it, if one did, in the message.
func (a *API) queryError(err error) *apiError {
	e := evalError(err)
	switch refusedBy(e) {
	case limitSamples:
		e.err = fmt.Errorf("%w (limit: %d samples, --query.max-samples)", e.err, a.opts.MaxSamples)
	case limitSeries:
		e.err = fmt.Errorf("%w (limit: %d series, --query.max-series)", e.err, a.opts.MaxSeries)
	}
	return e
}

// tooLarge refuses an answer over --query.max-response-bytes.
func (a *API) tooLarge() *apiError {
	return &apiError{errorExec, fmt.Errorf(
		"%w: it would be larger than %s (--query.max-response-bytes); select fewer series, a shorter range or a longer step",
		errTooLarge, units.Base2Bytes(a.opts.MaxResponseBytes))}
}

// refusedBy names the limit that refused a query (the limit label of
// fabric_query_refused_total), or "" if no limit did.
func refusedBy(e *apiError) string {
	var (
		timeout        promql.ErrQueryTimeout
		tooManySamples promql.ErrTooManySamples
		tooManySeries  promql.ErrTooManySeries
	)
	switch {
	case errors.As(e.err, &tooManySamples):
		return limitSamples
	case errors.As(e.err, &tooManySeries):
		return limitSeries
	case errors.Is(e.err, errTooLarge):
		return limitResponseBytes
	case e.typ != errorTimeout:
		return ""
	case errors.As(e.err, &timeout) && timeout == queueEnv:
		return limitQueue
	}
	return limitTimeout
}

// constructionError maps an error from building a query: a parse error is
// bad data, running out of time or being canceled keeps its own type.
func (a *API) constructionError(err error) *apiError {
	var (
		canceled promql.ErrQueryCanceled
		timeout  promql.ErrQueryTimeout
	)
	if errors.As(err, &canceled) || errors.As(err, &timeout) {
		return a.queryError(err)
	}
	return invalidParam(err, "query")
}
