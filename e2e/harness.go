// Package e2e holds the end-to-end tests: they build the real
// telemetry-simulator and telemetry-aggregator binaries once per test run,
// start them on free loopback ports and talk to them over HTTP, as an
// operator would. The harness (harness_test.go) is shared by every test
// file of the package.
package e2e
