// Package simulator produces synthetic switch fabric telemetry as CSV over
// HTTP, the way the real fabric's counter endpoint does, and can misbehave on
// purpose.
//
// A Simulator keeps the state of a fabric of switches (monotonic counters and
// drifting gauges), advances it once per Interval and renders each snapshot to
// CSV exactly once, so that serving /counters is a single write even for
// thousands of switches polled several times a second. Everything the fabric
// does follows from Config.Seed and the sequence of Tick calls, which lets
// tests compare bodies byte for byte.
//
// The fault modes (see Mode) make /counters fail in the ways a consumer must
// survive: server errors, corrupt or truncated bodies, garbage, hangs, slow
// answers, missing switches and unexpected schemas. A mode can be set for the
// whole simulator, per request with ?mode=NAME, or at run time through the
// testing-only POST /admin/mode endpoint.
package simulator
