package simulator

import (
	"fmt"
	"strings"
)

// Mode selects how the data endpoints (/counters, /csv/metrics) answer:
// correctly (ModeOK) or with one of the faults a consumer of the real fabric
// endpoint has to survive.
type Mode int

// The modes. ModeOK is the zero value so that a zero Config serves good data.
const (
	// ModeOK serves the current snapshot.
	ModeOK Mode = iota
	// ModeError500 answers HTTP 500 with a short text body.
	ModeError500
	// ModeCorrupt serves a valid header followed by some rows with the wrong
	// number of fields and some with non-numeric values.
	ModeCorrupt
	// ModeTruncated cuts the body in the middle of a row: the last line has
	// fewer fields than the header and no trailing newline.
	ModeTruncated
	// ModeEmpty answers 200 with an empty body.
	ModeEmpty
	// ModeGarbage answers 200 with random bytes that are not CSV, including
	// invalid UTF-8 and control bytes.
	ModeGarbage
	// ModeTimeout never answers: it holds the request until the client gives
	// up (or the simulator stops).
	ModeTimeout
	// ModeSlow serves the snapshot after Config.SlowDelay.
	ModeSlow
	// ModePartial serves valid CSV with a random non-empty proper subset of
	// the switches missing.
	ModePartial
	// ModeSchema serves valid data with the columns reordered (switch_id not
	// first) and an extra unknown column.
	ModeSchema
	// ModeFlaky picks one of the other modes at random for each request.
	ModeFlaky

	numModes = iota
)

// modeNames are the canonical names, indexed by Mode. They match the
// arguments of the original Python simulator.
var modeNames = [numModes]string{
	ModeOK:        "OK",
	ModeError500:  "ERROR_500",
	ModeCorrupt:   "CORRUPT",
	ModeTruncated: "TRUNCATED",
	ModeEmpty:     "EMPTY",
	ModeGarbage:   "GARBAGE",
	ModeTimeout:   "TIMEOUT",
	ModeSlow:      "SLOW",
	ModePartial:   "PARTIAL",
	ModeSchema:    "SCHEMA",
	ModeFlaky:     "FLAKY",
}

// Modes returns every mode in declaration order.
func Modes() []Mode {
	ms := make([]Mode, numModes)
	for i := range ms {
		ms[i] = Mode(i)
	}
	return ms
}

// ModeNames returns the canonical names of every mode, for help texts and
// error messages.
func ModeNames() []string {
	return append([]string(nil), modeNames[:]...)
}

// ParseMode returns the mode named s, ignoring case and surrounding space.
func ParseMode(s string) (Mode, error) {
	name := strings.ToUpper(strings.TrimSpace(s))
	for i, n := range modeNames {
		if n == name {
			return Mode(i), nil
		}
	}
	return 0, fmt.Errorf("unknown mode %q, valid modes: %s", s, strings.Join(modeNames[:], ", "))
}

// String returns the canonical upper-case name of m.
func (m Mode) String() string {
	if !m.valid() {
		return fmt.Sprintf("Mode(%d)", int(m))
	}
	return modeNames[m]
}

func (m Mode) valid() bool { return m >= 0 && m < numModes }
