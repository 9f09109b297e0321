package history

import (
	"testing"
	"time"

	"github.com/fabrictelemetry/aggregator/internal/historytest"
)

// t0 and step are the fixture's first snapshot time and poll interval
// (historytest.T0, historytest.Step), by the short names the tests and their
// comments use.
var t0 = historytest.T0

const step = historytest.Step

// fixtureHistory is the fixture fabric's six snapshots in a history.
func fixtureHistory(tb testing.TB) *History {
	return historytest.FixtureHistory(tb, New(time.Hour))
}

func ms(d time.Duration) int64 { return t0.Add(d).UnixMilli() }
