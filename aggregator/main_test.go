package aggregator

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package's tests if any goroutine outlives them: every
// poller, demo simulator and server an aggregator starts must stop with it.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
