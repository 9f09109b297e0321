package simulator

import (
	"strconv"
	"time"
)

// PortHeader is the first line of a good /counters body when Config.Ports is
// set, without its newline: the switch matrix's columns with a port number
// after switch_id. Each row is one port; see the package documentation for
// what each column means per port.
const PortHeader = "switch_id,port,timestamp,Latency_Avg_uSec,Latency_Max_uSec,Bandwidth_Util_Pct,Buffer_Util_Pct," +
	"Rx_Bytes,Tx_Bytes,Rx_Packets,Tx_Packets,Rx_Errors,Tx_Discards,Symbol_Errors,Link_Down_Count,Xmit_Wait," +
	"Temperature_C,Power_W,Ports_Up,Ports_Total"

// UFMHeader is the first line of a good /csv/metrics body, without its
// newline: UFM Telemetry's identity columns, then InfiniBand extended port
// counters. The data counters count 4-octet words.
const UFMHeader = "timestamp,source_id,tag,node_guid,port_guid,port_num,node_description," +
	"PortXmitDataExtended,PortRcvDataExtended,PortXmitPktsExtended,PortRcvPktsExtended,PortXmitWaitExtended," +
	"SymbolErrorCounterExtended,LinkErrorRecoveryCounterExtended,LinkDownedCounterExtended,PortRcvErrorsExtended," +
	"PortRcvRemotePhysicalErrorsExtended,PortXmitDiscardsExtended,LocalLinkIntegrityErrorsExtended," +
	"ExcessiveBufferOverrunErrorsExtended,VL15DroppedExtended"

// ShardingField is the only value of ?sharding_field= the simulator accepts,
// as UFM Telemetry: rows are sharded by port_guid, so all ports of a switch
// land in one shard.
const ShardingField = "port_guid"

var (
	portLayout = &layout{header: PortHeader, valueCol: 1, extraColumn: "Fan_Speed_RPM"}
	// UFM's identity columns are text; CORRUPT spoils the counters.
	ufmLayout = &layout{header: UFMHeader, valueCol: 7, extraColumn: "PortMulticastXmitPktsExtended"}
)

// switchModels names the hardware of switchState.model in node
// descriptions.
var switchModels = [...]string{"MQM9700/U1", "MQM8790/U1", "MQM9790/U1"}

// GUID layout: NVIDIA's OUI, then a byte that tells node GUIDs from port
// GUIDs (they differ, so that a consumer mixing them up is caught), then 32
// bits unique per switch.
const (
	nodeGUIDBase = 0xfc6a1c0300000000
	portGUIDBase = 0xfc6a1c0200000000
	sourceGUID   = 0xb8cef60300a1b2c3 // the HCA UFM Telemetry collects through
)

// Salts of portHash, one per independent per-port property.
const (
	saltWeight = iota + 1
	saltBadPort
	saltVL15
	saltJitter
	saltGUID
)

// fabricInfo is what never changes about a fabric: the switches' names and
// GUIDs. It is shared by every snapshot.
type fabricInfo struct {
	seed     int64
	ids      [][]byte
	guidSalt uint32
}

func newFabricInfo(switches int, seed int64) *fabricInfo {
	return &fabricInfo{
		seed:     seed,
		ids:      switchIDs(switches),
		guidSalt: uint32(mix64(uint64(seed) ^ saltGUID)),
	}
}

// guidBits are the low 32 bits of switch i's GUIDs: a bijection of i, so
// that no two switches share a GUID, scrambled by the seed.
func (fi *fabricInfo) guidBits(i int) uint64 {
	x := uint32(i) ^ fi.guidSalt
	x *= 0x9e3779b1
	x ^= x >> 16
	x *= 0x85ebca6b
	x ^= x >> 13
	return uint64(x)
}

func (fi *fabricInfo) nodeGUID(i int) uint64 { return nodeGUIDBase | fi.guidBits(i) }
func (fi *fabricInfo) portGUID(i int) uint64 { return portGUIDBase | fi.guidBits(i) }

// shardKey is the hash of switch i's port_guid that ?num_shards=N&shard=k
// selects on: the rows of switch i are in shard shardKey(i) % N.
func (fi *fabricInfo) shardKey(i int) uint64 { return mix64(fi.portGUID(i)) }

// tag is UFM's free-form tag column: empty except on every fifth switch.
func tag(i int) string {
	if i%5 == 4 {
		return "spine"
	}
	return ""
}

// appendDescription appends switch i's node_description as a CSV field:
// its ID and model, and on every seventh switch a rack, after a comma, so
// that the field needs quoting as real descriptions sometimes do.
func appendDescription(buf []byte, id []byte, i int, sw *switchState) []byte {
	if i%7 != 6 {
		buf = append(buf, id...)
		buf = append(buf, ' ')
		return append(buf, switchModels[sw.model]...)
	}
	buf = append(buf, '"')
	buf = append(buf, id...)
	buf = append(buf, ' ')
	buf = append(buf, switchModels[sw.model]...)
	buf = append(buf, ", rack "...)
	buf = strconv.AppendInt(buf, int64(i/40+1), 10)
	return append(buf, '"')
}

func appendGUID(buf []byte, g uint64) []byte {
	const hex = "0123456789abcdef"
	buf = append(buf, '0', 'x')
	for shift := 60; shift >= 0; shift -= 4 {
		buf = append(buf, hex[g>>uint(shift)&0xf])
	}
	return buf
}

// mix64 is SplitMix64's finaliser, a fast bijective hash.
func mix64(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	return x ^ x>>31
}

// portHash is a deterministic random word for one port of one switch.
// Per-port properties are hashes rather than state: they cost no memory and
// need no random sequence, so any view can be rendered from a switch alone.
func portHash(seed int64, sw, port int, salt uint64) uint64 {
	return mix64(mix64(uint64(seed)^salt) ^ uint64(sw)<<16 ^ uint64(port))
}

// unit maps a hash to [0, 1).
func unit(h uint64) float64 { return float64(h>>11) / (1 << 53) }

// portSource is what the per-port views of one snapshot are rendered from:
// the present switches' states at that tick.
type portSource struct {
	info *fabricInfo
	at   time.Time
	tick uint64
	idx  []int         // indices of the present switches
	sws  []switchState // their states, in the same order
}

func newPortSource(info *fabricInfo, at time.Time, f *fabric) *portSource {
	src := &portSource{info: info, at: at, tick: f.ticks}
	for i := range f.switches {
		if f.switches[i].present() {
			src.idx = append(src.idx, i)
		}
	}
	src.sws = make([]switchState, len(src.idx))
	for k, i := range src.idx {
		src.sws[k] = f.switches[i]
	}
	return src
}

func (src *portSource) numPorts() int {
	n := 0
	for k := range src.sws {
		n += src.sws[k].portsTotal
	}
	return n
}

// portSplit divides one switch's counters among its ports. Ports 1..cabled
// carry traffic with fixed weights; the ports above are never cabled and
// stay at zero. Errors and link-downs mostly come from one bad port (a bad
// cable is one port). Each port's counter is floor(switch counter × share),
// which grows whenever the switch's does and resets with it on a reboot.
type portSplit struct {
	cabled, bad int
	traffic     []float64 // share of the switch's traffic, by port-1
	errs        []float64 // share of the switch's errors, by port-1
	factor      []float64 // traffic weight relative to the mean, by port-1
}

func (ps *portSplit) reset(seed int64, i int, sw *switchState) {
	n := sw.portsTotal
	ps.cabled = n - sw.portsDown
	ps.bad = 1 + int(portHash(seed, i, 0, saltBadPort)%uint64(ps.cabled))
	ps.traffic = grow(ps.traffic, n)
	ps.errs = grow(ps.errs, n)
	ps.factor = grow(ps.factor, n)
	var tsum, esum float64
	for p := 1; p <= ps.cabled; p++ {
		h := portHash(seed, i, p, saltWeight)
		t, e := 0.5+unit(h), float64(1+h&15)
		if p == ps.bad {
			e = 16 * float64(ps.cabled)
		}
		ps.traffic[p-1], ps.errs[p-1] = t, e
		tsum += t
		esum += e
	}
	for p := 0; p < ps.cabled; p++ {
		ps.factor[p] = ps.traffic[p] * float64(ps.cabled) / tsum
		ps.traffic[p] /= tsum
		ps.errs[p] /= esum
	}
	for p := ps.cabled; p < n; p++ {
		ps.traffic[p], ps.errs[p], ps.factor[p] = 0, 0, 0
	}
}

// up reports whether port p (1-based) has its link up: cabled and not among
// the ports of a link flap, which start at the bad port.
func (ps *portSplit) up(p int, sw *switchState) bool {
	return p <= ps.cabled && (p-ps.bad+ps.cabled)%ps.cabled >= sw.flapped
}

func grow(s []float64, n int) []float64 {
	if cap(s) < n {
		return make([]float64, n)
	}
	return s[:n]
}

func share(c uint64, w float64) uint64 { return uint64(float64(c) * w) }

// portCounters are one port's share of its switch's counters.
type portCounters struct {
	rxBytes, txBytes, rxPackets, txPackets uint64
	rxErrors, txDiscards, symbolErrors     uint64
	linkDowns, xmitWait                    uint64
}

func (ps *portSplit) counters(p int, sw *switchState) portCounters {
	t, e := ps.traffic[p-1], ps.errs[p-1]
	return portCounters{
		rxBytes: share(sw.rxBytes, t), txBytes: share(sw.txBytes, t),
		rxPackets: share(sw.rxPackets, t), txPackets: share(sw.txPackets, t),
		rxErrors: share(sw.rxErrors, e), txDiscards: share(sw.txDiscards, t),
		symbolErrors: share(sw.symbolErrors, e), linkDowns: share(sw.linkDowns, e),
		xmitWait: share(sw.xmitWait, t),
	}
}

// renderPorts writes the /counters body of Config.Ports: one row per port
// of each present switch, in switch then port order.
func (src *portSource) renderPorts(sizeHint int) *table {
	rows := src.numPorts()
	if sizeHint == 0 {
		sizeHint = rows * 170
	}
	buf, t := newTableBuf(portLayout, sizeHint, len(src.idx))
	t.ends = make([]int, 0, rows)
	ts := strconv.AppendInt(nil, src.at.UnixMilli(), 10)
	seed := src.info.seed
	var ps portSplit
	for k, i := range src.idx {
		sw := &src.sws[k]
		ps.reset(seed, i, sw)
		ratio := sw.latMax / sw.latAvg
		for p := 1; p <= sw.portsTotal; p++ {
			up := ps.up(p, sw)
			f := ps.factor[p-1]
			j := 2*unit(portHash(seed^int64(src.tick), i, p, saltJitter)) - 1 // [-1, 1)
			var util, buffer float64
			if up {
				util = clamp(sw.util*f*(1+0.1*j), 0, 100)
				buffer = clamp(sw.buffer*(0.7+0.3*f)+3*j, 0, 100)
			}
			lat := sw.latAvg * (0.85 + 0.15*f) * (1 + 0.05*j)

			buf = append(buf, src.info.ids[i]...)
			buf = append(buf, ',')
			buf = strconv.AppendInt(buf, int64(p), 10)
			buf = append(buf, ',')
			buf = append(buf, ts...)
			for _, g := range [...]float64{lat, lat * ratio, util, buffer} {
				buf = append(buf, ',')
				buf = appendGauge(buf, g)
			}
			c := ps.counters(p, sw)
			for _, v := range [...]uint64{
				c.rxBytes, c.txBytes, c.rxPackets, c.txPackets,
				c.rxErrors, c.txDiscards, c.symbolErrors, c.linkDowns, c.xmitWait,
			} {
				buf = append(buf, ',')
				buf = strconv.AppendUint(buf, v, 10)
			}
			// Temperature and power are the switch's: the same on every
			// port, not to be summed.
			buf = append(buf, ',')
			buf = appendGauge(buf, sw.temp)
			buf = append(buf, ',')
			buf = appendGauge(buf, sw.power)
			if up {
				buf = append(buf, ",1,1\n"...)
			} else {
				buf = append(buf, ",0,1\n"...)
			}
			t.ends = append(t.ends, len(buf))
		}
		t.groupEnds = append(t.groupEnds, len(t.ends))
		t.groupKeys = append(t.groupKeys, src.info.shardKey(i))
	}
	t.body = buf
	return t
}

// Empty cells: a counter some ports do not report, the same ports on every
// tick.
const (
	// noRemotePhysModel is the switch model that never reports
	// PortRcvRemotePhysicalErrorsExtended.
	noRemotePhysModel = 1
	// vl15EmptyOneIn: one port in this many has no VL15DroppedExtended.
	vl15EmptyOneIn = 4
)

// renderUFM writes the /csv/metrics body: one row per port of each present
// switch, in UFM Telemetry's layout.
func (src *portSource) renderUFM(sizeHint int) *table {
	rows := src.numPorts()
	if sizeHint == 0 {
		sizeHint = rows * 230
	}
	buf, t := newTableBuf(ufmLayout, sizeHint, len(src.idx))
	t.ends = make([]int, 0, rows)
	ts := strconv.AppendInt(nil, src.at.UnixMicro(), 10)
	source := appendGUID(nil, sourceGUID)
	seed := src.info.seed
	var ps portSplit
	var mid, desc []byte
	var vals [14]uint64
	for k, i := range src.idx {
		sw := &src.sws[k]
		ps.reset(seed, i, sw)
		// ,source_id,tag,node_guid,port_guid, and ,node_description are
		// the same on every port.
		mid = append(mid[:0], ',')
		mid = append(mid, source...)
		mid = append(mid, ',')
		mid = append(mid, tag(i)...)
		mid = append(mid, ',')
		mid = appendGUID(mid, src.info.nodeGUID(i))
		mid = append(mid, ',')
		mid = appendGUID(mid, src.info.portGUID(i))
		mid = append(mid, ',')
		desc = appendDescription(append(desc[:0], ','), src.info.ids[i], i, sw)

		for p := 1; p <= sw.portsTotal; p++ {
			buf = append(buf, ts...)
			buf = append(buf, mid...)
			buf = strconv.AppendInt(buf, int64(p), 10)
			buf = append(buf, desc...)

			c := ps.counters(p, sw)
			tw, ew := ps.traffic[p-1], ps.errs[p-1]
			vals = [14]uint64{
				c.txBytes / 4, c.rxBytes / 4, c.txPackets, c.rxPackets, c.xmitWait,
				c.symbolErrors,
				share(3*sw.linkDowns+sw.symbolErrors/512, ew), // LinkErrorRecovery
				c.linkDowns,
				c.rxErrors,
				share(sw.rxErrors/8, ew), // RcvRemotePhysicalErrors
				c.txDiscards,
				share(sw.symbolErrors/2048, ew),        // LocalLinkIntegrityErrors
				share(sw.txDiscards/16, tw),            // ExcessiveBufferOverrunErrors
				share(sw.linkDowns+sw.rxErrors/64, ew), // VL15Dropped
			}
			for col, v := range vals {
				buf = append(buf, ',')
				switch {
				case col == 9 && sw.model == noRemotePhysModel,
					col == 13 && portHash(seed, i, p, saltVL15)%vl15EmptyOneIn == 0:
					continue // not reported: an empty cell
				}
				buf = strconv.AppendUint(buf, v, 10)
			}
			buf = append(buf, '\n')
			t.ends = append(t.ends, len(buf))
		}
		t.groupEnds = append(t.groupEnds, len(t.ends))
		t.groupKeys = append(t.groupKeys, src.info.shardKey(i))
	}
	t.body = buf
	return t
}
