package ingest

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package's tests if any goroutine outlives them: the
// poller, its shard fetches and the test servers must all be stopped.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
