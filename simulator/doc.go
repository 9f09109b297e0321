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
// # Bodies
//
// GET /counters serves the switch matrix (Header): one row per switch,
// timestamps in Unix milliseconds. With Config.Ports = N > 0 (--ports N)
// every switch has N ports and /counters serves one row per port instead
// (PortHeader: switch_id, port, then the matrix's columns), sorted by switch
// and then port 1..N. Per port, the counters and Bandwidth_Util_Pct,
// Buffer_Util_Pct and the latencies are the port's own; Ports_Up is 1 or 0
// (link up or not) and Ports_Total is 1, so that they add up to the switch's;
// Temperature_C and Power_W are the switch's, repeated on each of its ports
// (every cell stays numeric, but they must not be summed).
//
// GET /csv/metrics serves the same fabric per port in NVIDIA UFM Telemetry's
// CSV layout (UFMHeader): timestamp in Unix microseconds, source_id (one
// GUID, the collecting HCA's), tag (empty except "spine" on every fifth
// switch), node_guid, port_guid, port_num, node_description ("SW-05
// MQM9790/U1"; on every seventh switch a rack follows after a comma, so the
// field is quoted), then fourteen InfiniBand extended port counters. The
// data counters (PortXmitDataExtended, PortRcvDataExtended) count 4-octet
// words: exactly the per-port Tx_Bytes and Rx_Bytes of /counters divided by
// 4 at the same tick; the packet, wait, symbol error, link downed, receive
// error and discard counters equal their /counters columns. GUIDs are 0x and
// 16 hex digits, fixed by the seed and the switch's index; all ports of a
// switch share its node_guid and its port_guid (which differs from the
// node_guid), so rows are keyed by port_guid and port_num. Some cells are
// empty, the same ones on every tick: VL15DroppedExtended on about a
// quarter of the ports, PortRcvRemotePhysicalErrorsExtended on every port of
// MQM8790 switches. With Ports zero each switch has its own 32, 40 or 64
// ports (its Ports_Total) in /csv/metrics, and the body is rendered by the
// first request after a tick rather than by the tick, so that the switch
// matrix costs nothing more unless /csv/metrics is used; with Ports set both
// bodies are rendered by each tick.
//
// A port's counters are its fixed share of its switch's: traffic is spread
// over the cabled ports by weights drawn from the seed, errors and link
// downs mostly land on one bad port per switch, and the ports above the
// cabled ones stay at zero. So every port counter is monotonic, resets only
// with its switch's reboot, and the ports of a switch add up to the
// switch's counter.
//
// # Sharding
//
// Both data endpoints take UFM's ?num_shards=N&shard=i (and
// sharding_field=port_guid, the only field supported): only the switches
// whose port_guid hash modulo N is i, each with all its ports. The shards are
// disjoint and together are exactly the unsharded body. Invalid values get
// 400.
//
// # Faults
//
// The fault modes (see Mode) make /counters and /csv/metrics fail in the ways
// a consumer must survive: server errors, corrupt or truncated bodies,
// garbage, hangs, slow answers, missing switches and unexpected schemas,
// each in the endpoint's own layout (PARTIAL drops whole switches with all
// their ports; SCHEMA reorders the columns and adds an unknown one). A mode
// can be set for the whole simulator, per request with ?mode=NAME, or at run
// time through the testing-only POST /admin/mode endpoint. A fault applies to
// the shard asked for.
//
// # Test data
//
// testdata/ufm_quirks.csv is a small hand-written body in the UFM layout for
// parser tests: two switches (SW-05 with ports 1-4, SW-07 with ports 1, 2
// and 10, so port numbers have a gap), a quoted node_description with a
// comma ("SW-07 MQM9790/U1, rack 3"), the tag "spine" on SW-07's rows only,
// empty cells (VL15DroppedExtended on three ports,
// PortRcvRemotePhysicalErrorsExtended on four), a port whose counters are all zero,
// counters above 2^53 (PortXmitPktsExtended 72057594037927936 = 2^56), a
// microsecond timestamp and a trailing newline. TestQuirksFixture keeps it
// to this description.
package simulator
