package ingest

import (
	"errors"
	"fmt"
)

// Reason classifies why a poll was rejected. Every rejected poll has exactly
// one; the set is fixed so that it can be a metric label.
type Reason string

// The reasons a poll is rejected.
const (
	ReasonHTTPStatus Reason = "http_status" // non-2xx answer
	ReasonTimeout    Reason = "timeout"     // no complete answer within the source timeout
	ReasonConnection Reason = "connection"  // refused, reset, DNS, TLS, redirects
	ReasonTruncated  Reason = "truncated"   // shorter than Content-Length, or cut mid-row
	ReasonEmpty      Reason = "empty"       // no body, or a header and no rows
	ReasonSchema     Reason = "schema"      // no switch_id column, duplicate or empty column names
	ReasonParse      Reason = "parse"       // anything else malformed
	ReasonTooLarge   Reason = "too_large"   // over the body size limit after decompression
	ReasonLimit      Reason = "limit"       // over a per-source limit: samples, columns, label value length
)

// Reasons lists every reason, for metrics that must show each from start-up.
var Reasons = []Reason{
	ReasonHTTPStatus, ReasonTimeout, ReasonConnection, ReasonTruncated,
	ReasonEmpty, ReasonSchema, ReasonParse, ReasonTooLarge, ReasonLimit,
}

// Error is a rejected poll: its reason and what went wrong.
type Error struct {
	Reason Reason
	Err    error
}

func (e *Error) Error() string { return string(e.Reason) + ": " + e.Err.Error() }

func (e *Error) Unwrap() error { return e.Err }

func errorf(reason Reason, format string, args ...any) *Error {
	return &Error{Reason: reason, Err: fmt.Errorf(format, args...)}
}

// ReasonOf returns the reason of a rejected poll's error, parse when the error
// carries none.
func ReasonOf(err error) Reason {
	var e *Error
	if errors.As(err, &e) {
		return e.Reason
	}
	return ReasonParse
}
