package restapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
)

// apiError is an answer other than 200: its status code and the message a
// client reads in {"error": msg}. Handlers return these and one function
// writes them, so every error has the same shape.
type apiError struct {
	code int
	msg  string
}

func (e *apiError) Error() string { return e.msg }

// badRequest is a client error in the parameters: 400.
func badRequest(format string, args ...any) error {
	return &apiError{code: http.StatusBadRequest, msg: fmt.Sprintf(format, args...)}
}

// notFound names a parameter value the view does not have: 404.
func notFound(param, value string) error {
	return &apiError{code: http.StatusNotFound, msg: "unknown " + param + " " + quote(value)}
}

// quote echoes an input in a message, clipped.
func quote(s string) string { return strconv.Quote(clip(s)) }

// writeErr writes err as its status code, or as a 500 if it is not an
// apiError (which would be a bug).
func writeErr(w http.ResponseWriter, err error) {
	var e *apiError
	if !errors.As(err, &e) {
		WriteError(w, http.StatusInternalServerError, err.Error())
		return
	}
	WriteError(w, e.code, e.msg)
}

var jsonContentType = []string{"application/json"}

// writeJSON writes a small answer; net/http adds its Content-Length.
func writeJSON(w http.ResponseWriter, code int, body []byte) {
	h := w.Header()
	h["Content-Type"] = jsonContentType
	w.WriteHeader(code)
	_, _ = w.Write(body)
}

// WriteError writes {"error": msg} with the status code; the router's 404
// and 405 answers use it too, so every error has one shape.
func WriteError(w http.ResponseWriter, code int, msg string) {
	body, _ := json.Marshal(struct {
		Error string `json:"error"`
	}{msg})
	writeJSON(w, code, append(body, '\n'))
}
