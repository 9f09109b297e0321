package queryapi

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/prometheus/prometheus/promql"
)

// errorType is a Prometheus API error type; each has its status code.
type errorType string

// The error types of the Prometheus HTTP API.
const (
	errorTimeout  errorType = "timeout"
	errorCanceled errorType = "canceled"
	errorExec     errorType = "execution"
	errorBadData  errorType = "bad_data"
	errorInternal errorType = "internal"
	errorNotFound errorType = "not_found"
)

// statusClientClosedConnection is nginx's code for a client that went away,
// which Prometheus answers a canceled query with.
const statusClientClosedConnection = 499

func (t errorType) code() int {
	switch t {
	case errorBadData:
		return http.StatusBadRequest
	case errorExec:
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
// samples and every other evaluation failure are "execution" (422). One
// difference: a deadline that expires while series are read from the
// history is a timeout (503), like one the engine notices itself, rather
// than an execution error; the client asked for a time limit and hit it.
func evalError(err error) *apiError {
	var (
		canceled promql.ErrQueryCanceled
		timeout  promql.ErrQueryTimeout
		storage  promql.ErrStorage
	)
	switch {
	case errors.As(err, &canceled), errors.Is(err, context.Canceled):
		return &apiError{errorCanceled, err}
	case errors.As(err, &timeout), errors.Is(err, context.DeadlineExceeded):
		return &apiError{errorTimeout, err}
	case errors.As(err, &storage):
		return &apiError{errorInternal, err}
	}
	return &apiError{errorExec, err}
}

// constructionError maps an error from building a query: a parse error is
// bad data, running out of time or being canceled keeps its own type.
func constructionError(err error) *apiError {
	var (
		canceled promql.ErrQueryCanceled
		timeout  promql.ErrQueryTimeout
	)
	if errors.As(err, &canceled) || errors.As(err, &timeout) {
		return evalError(err)
	}
	return invalidParam(err, "query")
}
