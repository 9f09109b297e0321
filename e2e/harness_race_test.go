//go:build race

package e2e

// raceEnabled builds the binaries under test with the race detector when
// the tests run with it, so a data race in a server fails the test too.
const raceEnabled = true
