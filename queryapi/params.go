package queryapi

import (
	"errors"
	"fmt"
	"math"
	"mime"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
)

// The bounds an absent start or end stands for, Prometheus's MinTime and
// MaxTime, so that clients that send them back as text are understood.
var (
	minTime = time.Unix(math.MinInt64/1000+62135596801, 0).UTC()
	maxTime = time.Unix(math.MaxInt64/1000-62135596801, 999999999).UTC()

	minTimeFormatted = minTime.Format(time.RFC3339Nano)
	maxTimeFormatted = maxTime.Format(time.RFC3339Nano)

	// The same bounds in seconds, for times given as numbers; maxSeconds
	// is the first second past maxTime.
	minSeconds = float64(minTime.Unix())
	maxSeconds = float64(maxTime.Unix() + 1)
)

// parseTime reads a time as Prometheus does: Unix seconds with an optional
// fraction, or RFC 3339. Unlike Prometheus 3.16, which turns them into
// whatever int64 conversion makes of them, NaN, infinities and seconds
// outside [minTime, maxTime] are refused: they name no time.
func parseTime(s string) (time.Time, error) {
	if t, err := strconv.ParseFloat(s, 64); err == nil {
		if !(t >= minSeconds && t < maxSeconds) { // false for NaN too
			return time.Time{}, fmt.Errorf("cannot parse %q to a valid timestamp. It is not a number between %s and %s", s, minTimeFormatted, maxTimeFormatted)
		}
		sec, frac := math.Modf(t)
		frac = math.Round(frac*1000) / 1000
		return time.Unix(int64(sec), int64(frac*float64(time.Second))).UTC(), nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	switch s {
	case minTimeFormatted:
		return minTime, nil
	case maxTimeFormatted:
		return maxTime, nil
	}
	return time.Time{}, fmt.Errorf("cannot parse %q to a valid timestamp", s)
}

func parseTimeParam(r *http.Request, name string, def time.Time) (time.Time, error) {
	v := r.FormValue(name)
	if v == "" {
		return def, nil
	}
	t, err := parseTime(v)
	if err != nil {
		return time.Time{}, fmt.Errorf("invalid time value for '%s': %w", name, err)
	}
	return t, nil
}

// parseDuration reads a duration as float seconds or a Prometheus duration
// (5m, 1h30m).
func parseDuration(s string) (time.Duration, error) {
	if d, err := strconv.ParseFloat(s, 64); err == nil {
		ns := d * float64(time.Second)
		if math.IsNaN(ns) || ns >= float64(math.MaxInt64) || ns < float64(math.MinInt64) {
			return 0, fmt.Errorf("cannot parse %q to a valid duration. It overflows int64", s)
		}
		return time.Duration(ns), nil
	}
	if d, err := model.ParseDuration(s); err == nil {
		return time.Duration(d), nil
	}
	return 0, fmt.Errorf("cannot parse %q to a valid duration", s)
}

func parseLimit(s string) (int, error) {
	if s == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil {
		return 0, err
	}
	if n < 0 {
		return 0, errors.New("limit must be non-negative")
	}
	return n, nil
}

// parseMatchers reads match[] selectors; each must have a matcher that does
// not match the empty string, or it would select every series.
func (a *API) parseMatchers(values []string) ([][]*labels.Matcher, error) {
	sets, err := a.parser.ParseMetricSelectors(values)
	if err != nil {
		return nil, err
	}
next:
	for _, ms := range sets {
		for _, m := range ms {
			if m != nil && !m.Matches("") {
				continue next
			}
		}
		return nil, errors.New("match[] must contain at least one non-empty matcher")
	}
	return sets, nil
}

// maxFormBytes bounds a multipart/form-data body, as net/http bounds a
// URL-encoded one (10 MiB): the whole form is read into memory, never into
// temporary files.
const maxFormBytes = 10 << 20

// singleParams are the parameters that take one value. Prometheus 3.16
// silently uses the first of several; here a repeated one is refused, since
// a client that sends two queries or two times cannot know which one was
// answered.
var singleParams = []string{
	"query", "time", "start", "end", "step", "timeout", "lookback_delta",
	"limit", "limit_per_metric", "metric",
}

// parseForm reads the parameters from the URL and the body: URL-encoded or,
// as Prometheus accepts them too, multipart/form-data (bounded by
// maxFormBytes). It refuses a single-valued parameter given more than once.
func parseForm(w http.ResponseWriter, r *http.Request) *apiError {
	var err error
	if isMultipart(r) {
		r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
		// The memory bound is above the body's, so that no part is ever
		// spilled to a temporary file.
		err = r.ParseMultipartForm(2 * maxFormBytes)
	} else {
		err = r.ParseForm()
	}
	if err != nil {
		return badData(fmt.Errorf("error parsing form values: %w", err))
	}
	for _, name := range singleParams {
		if n := len(r.Form[name]); n > 1 {
			return invalidParam(fmt.Errorf("given %d times, but it takes one value", n), name)
		}
	}
	return nil
}

func isMultipart(r *http.Request) bool {
	ct := r.Header.Get("Content-Type")
	if ct == "" {
		return false
	}
	mt, _, err := mime.ParseMediaType(ct)
	return err == nil && mt == "multipart/form-data"
}
