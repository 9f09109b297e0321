package simulator

import (
	"math"
	"math/rand/v2"
)

// incident is something going wrong on one switch for a few ticks.
type incident int

const (
	incidentNone incident = iota
	incidentLinkFlap
	incidentErrorBurst
	incidentHot
	incidentCongestion
	incidentDropout
	incidentReboot
)

// incidentWeights gives how often each incident happens relative to the
// others once a switch has been picked for one. Reboots are the rarest
// because they reset counters, the hardest thing for a consumer.
var incidentWeights = [...]struct {
	kind   incident
	weight int
}{
	{incidentLinkFlap, 30},
	{incidentErrorBurst, 25},
	{incidentCongestion, 20},
	{incidentHot, 15},
	{incidentDropout, 7},
	{incidentReboot, 3},
}

// Port speeds in bytes per second.
const (
	speed100G = 100e9 / 8
	speed400G = 400e9 / 8
)

// switchState is one switch's counters and gauges between ticks.
type switchState struct {
	model      int // index into switchModels, the hardware drawn at start
	portsTotal int
	portsDown  int     // ports that are never cabled, so Ports_Up < Ports_Total on a healthy switch
	flapped    int     // ports down because of a link flap incident
	portSpeed  float64 // bytes per second per port
	baseUtil   float64 // the utilisation this switch drifts back to, in percent
	pktSize    float64 // mean packet size in bytes
	ambient    float64 // temperature offset of the switch's spot in the room

	rxBytes, txBytes     uint64
	rxPackets, txPackets uint64
	rxErrors, txDiscards uint64
	symbolErrors         uint64
	linkDowns            uint64
	xmitWait             uint64

	util, buffer     float64 // percent
	latAvg, latMax   float64 // microseconds
	temp, power      float64 // Celsius, Watt
	incident         incident
	incidentLeft     int // ticks until the incident is over
	absentLeft       int // ticks the switch stays out of the snapshot
	congestionFactor float64
}

// fabric is the whole simulated network. It is not safe for concurrent use;
// the Simulator serialises access to it.
type fabric struct {
	rnd          *rand.Rand
	switches     []switchState
	incidentRate float64
	dt           float64 // seconds of traffic per tick
	ports        int     // Config.Ports: every switch's port count, or 0 for the drawn one
	ticks        uint64  // number of ticks so far
}

func newFabric(n, ports int, seed int64, incidentRate, dt float64) *fabric {
	f := &fabric{
		ports: ports,
		// The second PCG word is a fixed odd constant: the seed alone picks
		// the sequence.
		rnd:          rand.New(rand.NewPCG(uint64(seed), 0x9e3779b97f4a7c15)),
		switches:     make([]switchState, n),
		incidentRate: incidentRate,
		dt:           dt,
	}
	for i := range f.switches {
		f.initSwitch(i, &f.switches[i])
	}
	return f
}

// initSwitch gives a switch its hardware and a plausible history. Every third
// switch (starting with the first) has byte counters beyond 2^53, where a
// float64 can no longer hold every integer, so that consumers that parse
// counters as floats are caught.
func (f *fabric) initSwitch(i int, sw *switchState) {
	r := f.rnd
	sw.model = r.IntN(3)
	switch sw.model {
	case 0:
		sw.portsTotal, sw.portSpeed = 32, speed400G
	case 1:
		sw.portsTotal, sw.portSpeed = 40, speed100G
	default:
		sw.portsTotal, sw.portSpeed = 64, speed400G
	}
	if r.IntN(4) == 0 {
		sw.portsDown = 1 + r.IntN(2)
	}
	if f.ports > 0 {
		// Every switch gets the configured port count; at least one port
		// stays cabled.
		sw.portsTotal = f.ports
		sw.portsDown = min(sw.portsDown, f.ports-1)
	}
	sw.baseUtil = 10 + 60*r.Float64()
	sw.pktSize = 400 + 1000*r.Float64()
	sw.ambient = -3 + 6*r.Float64()

	base := uint64(1) << 53
	if i%3 != 0 {
		base = 0
	}
	sw.txBytes = base + r.Uint64N(1<<50)
	sw.rxBytes = base + r.Uint64N(1<<50)
	sw.txPackets = uint64(float64(sw.txBytes) / sw.pktSize)
	sw.rxPackets = uint64(float64(sw.rxBytes) / sw.pktSize)
	sw.rxErrors = r.Uint64N(1000)
	sw.txDiscards = r.Uint64N(10000)
	sw.symbolErrors = r.Uint64N(5000)
	sw.linkDowns = r.Uint64N(20)
	sw.xmitWait = r.Uint64N(1 << 40)

	sw.util = sw.baseUtil
	sw.temp = 40 + 0.3*sw.util + sw.ambient
	f.updateGauges(sw)
}

// tick advances every switch by one interval.
func (f *fabric) tick() {
	f.ticks++
	for i := range f.switches {
		sw := &f.switches[i]
		f.endIncident(sw)
		if f.incidentRate > 0 && sw.incident == incidentNone && f.rnd.Float64() < f.incidentRate {
			f.startIncident(sw)
		}
		f.advance(sw)
	}
}

// endIncident counts down the current incident and the absence, and undoes
// what the incident changed once it is over.
func (f *fabric) endIncident(sw *switchState) {
	if sw.absentLeft > 0 {
		sw.absentLeft--
	}
	if sw.incident == incidentNone {
		return
	}
	sw.incidentLeft--
	if sw.incidentLeft > 0 {
		return
	}
	sw.incident = incidentNone
	sw.flapped = 0
	sw.congestionFactor = 0
}

func (f *fabric) startIncident(sw *switchState) {
	r := f.rnd
	total := 0
	for _, w := range incidentWeights {
		total += w.weight
	}
	pick := r.IntN(total)
	for _, w := range incidentWeights {
		if pick < w.weight {
			sw.incident = w.kind
			break
		}
		pick -= w.weight
	}

	switch sw.incident {
	case incidentLinkFlap:
		sw.incidentLeft = 1 + r.IntN(2)
		sw.linkDowns += 1 + r.Uint64N(3)
		sw.flapped = min(1+r.IntN(3), sw.portsTotal-sw.portsDown)
	case incidentErrorBurst:
		sw.incidentLeft = 1 + r.IntN(3)
	case incidentHot:
		sw.incidentLeft = 5 + r.IntN(16)
	case incidentCongestion:
		sw.incidentLeft = 2 + r.IntN(7)
		sw.congestionFactor = 0.5 + 0.5*r.Float64()
	case incidentDropout:
		sw.incidentLeft = 2 + r.IntN(5)
		sw.absentLeft = sw.incidentLeft
	case incidentReboot:
		sw.incidentLeft = 1 + r.IntN(3)
		// A rebooting switch is often unreachable for a moment, but not
		// always: consumers must spot a reset from the values alone.
		sw.absentLeft = r.IntN(3)
		f.reset(sw)
	}
}

// reset sets the counters to what a freshly booted switch reports.
func (f *fabric) reset(sw *switchState) {
	r := f.rnd
	sw.txBytes = r.Uint64N(1 << 20)
	sw.rxBytes = r.Uint64N(1 << 20)
	sw.txPackets = uint64(float64(sw.txBytes) / sw.pktSize)
	sw.rxPackets = uint64(float64(sw.rxBytes) / sw.pktSize)
	sw.rxErrors, sw.txDiscards, sw.symbolErrors = 0, 0, 0
	sw.linkDowns, sw.xmitWait = 0, 0
	sw.temp -= 5
}

// advance moves one switch's traffic and gauges forward by one interval.
// Byte and packet counters always grow by at least one so that a steady
// fabric is strictly monotonic.
func (f *fabric) advance(sw *switchState) {
	r := f.rnd
	// Mean-reverting random walk around the switch's usual load.
	sw.util += 0.2*(sw.baseUtil-sw.util) + 3*r.NormFloat64()
	sw.util = clamp(sw.util, 1, 99)
	if sw.incident == incidentCongestion {
		sw.util = 95 + 5*r.Float64()
	}

	capacity := float64(sw.portsUp()) * sw.portSpeed * f.dt
	tx := uint64(sw.util/100*capacity) + 1
	rx := uint64(float64(tx)*(0.97+0.06*r.Float64())) + 1
	sw.txBytes += tx
	sw.rxBytes += rx
	sw.txPackets += uint64(float64(tx)/sw.pktSize) + 1
	sw.rxPackets += uint64(float64(rx)/sw.pktSize) + 1

	// A healthy link still sees the odd bit error.
	if r.IntN(20) == 0 {
		sw.rxErrors += 1 + r.Uint64N(3)
	}
	if r.IntN(50) == 0 {
		sw.symbolErrors += 1 + r.Uint64N(5)
	}
	if sw.incident == incidentErrorBurst {
		sw.rxErrors += 100 + r.Uint64N(5000)
		sw.symbolErrors += 1000 + r.Uint64N(50000)
	}

	f.updateGauges(sw)

	// Time spent unable to transmit and drops both follow buffer pressure.
	pressure := sw.buffer / 100
	sw.xmitWait += uint64(pressure * pressure * 1e6 * f.dt)
	if sw.buffer > 80 {
		sw.txDiscards += uint64((sw.buffer - 80) * 100 * f.dt)
	}
}

// updateGauges derives buffer, latency, temperature and power from the load.
func (f *fabric) updateGauges(sw *switchState) {
	r := f.rnd
	sw.buffer = clamp(0.6*sw.util+5*r.NormFloat64(), 0, 100)
	load := sw.buffer / 100
	sw.latAvg = 0.5 + 3.5*load*load + 0.2*r.Float64()
	if sw.incident == incidentCongestion {
		sw.buffer = 90 + 10*r.Float64()
		sw.latAvg = 10 + 40*sw.congestionFactor*r.Float64()
	}
	sw.latMax = sw.latAvg * (1.3 + 2.5*r.Float64())

	target := 38 + 0.3*sw.util + sw.ambient
	if sw.incident == incidentHot {
		target = 85 + 10*r.Float64()
	}
	sw.temp += 0.3*(target-sw.temp) + 0.3*r.NormFloat64()
	sw.temp = clamp(sw.temp, 20, 99)

	sw.power = 100 + 2.5*float64(sw.portsTotal) + 2.5*sw.util + 5*r.NormFloat64()
	sw.power = clamp(sw.power, 100, 650)
}

func (sw *switchState) portsUp() int {
	return sw.portsTotal - sw.portsDown - sw.flapped
}

func (sw *switchState) present() bool { return sw.absentLeft == 0 }

func clamp(v, lo, hi float64) float64 {
	return math.Max(lo, math.Min(hi, v))
}
