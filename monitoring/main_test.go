package monitoring_test

import (
	"os"
	"testing"
)

// TestMain removes the tool binaries built for the tests (promtool alone is
// over 100 MB).
func TestMain(m *testing.M) {
	code := m.Run()
	if toolsDir != "" {
		os.RemoveAll(toolsDir)
	}
	os.Exit(code)
}
