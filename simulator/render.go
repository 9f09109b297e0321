package simulator

import (
	"math"
	"strconv"
	"sync"
	"time"
)

// Header is the first line of every good /counters body, without its newline.
const Header = "switch_id,timestamp,Latency_Avg_uSec,Latency_Max_uSec,Bandwidth_Util_Pct,Buffer_Util_Pct," +
	"Rx_Bytes,Tx_Bytes,Rx_Packets,Tx_Packets,Rx_Errors,Tx_Discards,Symbol_Errors,Link_Down_Count,Xmit_Wait," +
	"Temperature_C,Power_W,Ports_Up,Ports_Total"

// matrixLayout is the switch matrix of /counters.
var matrixLayout = &layout{header: Header, valueCol: 1, extraColumn: "Fan_Speed_RPM"}

// layout is what the fault modes need to know about a CSV body's columns.
type layout struct {
	header      string // the first line, without its newline
	valueCol    int    // the first column CORRUPT may make non-numeric
	extraColumn string // the unknown column SCHEMA adds
}

// table is one rendered CSV body with an index of its rows. It is never
// modified after it is published, so handlers can share it without locks.
type table struct {
	layout *layout
	body   []byte // header, newline, then the rows
	ends   []int  // ends[k] is the offset just past row k's newline
	// The rows come in groups, one per present switch (one row in the
	// switch matrix, one per port otherwise). groupEnds[g] is the index
	// just past group g's last row; groupKeys[g] is its shard key, a hash
	// of the switch's port_guid.
	groupEnds []int
	groupKeys []uint64
}

func (t *table) numRows() int { return len(t.ends) }

// rowStart is the offset of row k in body.
func (t *table) rowStart(k int) int {
	if k == 0 {
		return len(t.layout.header) + 1
	}
	return t.ends[k-1]
}

// row returns row k with its newline.
func (t *table) row(k int) []byte { return t.body[t.rowStart(k):t.ends[k]:t.ends[k]] }

// newTableBuf starts a body with l's header, with room for sizeHint bytes.
func newTableBuf(l *layout, sizeHint, groups int) ([]byte, *table) {
	buf := make([]byte, 0, sizeHint+sizeHint/8+len(l.header)+1)
	buf = append(buf, l.header...)
	buf = append(buf, '\n')
	return buf, &table{layout: l, groupEnds: make([]int, 0, groups), groupKeys: make([]uint64, 0, groups)}
}

// snapshot is one state of the fabric, rendered. It is never modified after
// it is published, so handlers can share it without locks.
type snapshot struct {
	at       time.Time
	counters *table // the /counters body

	// The /csv/metrics body. With Config.Ports set it is rendered with
	// counters; otherwise the first request renders it from src, so that
	// the switch matrix costs nothing more unless /csv/metrics is used.
	ufmOnce sync.Once
	ufm     *table
	src     *portSource
}

func (sn *snapshot) ufmTable() *table {
	sn.ufmOnce.Do(func() { sn.ufm = sn.src.renderUFM(0) })
	return sn.ufm
}

// switchIDs returns the ID of every switch: SW- and the 1-based index,
// zero-padded to the width of the largest index but at least two digits, so
// that IDs sort the same as text and as numbers.
func switchIDs(n int) [][]byte {
	width := max(2, len(strconv.Itoa(n)))
	ids := make([][]byte, n)
	for i := range ids {
		num := strconv.Itoa(i + 1)
		id := make([]byte, 0, 3+width)
		id = append(id, "SW-"...)
		for range width - len(num) {
			id = append(id, '0')
		}
		ids[i] = append(id, num...)
	}
	return ids
}

// render copies what the snapshot needs from the fabric and renders it. prev
// is the previous snapshot, nil for the first, whose sizes serve as hints so
// that each buffer is allocated once. The caller holds s.mu.
func (s *Simulator) render(at time.Time, prev *snapshot) *snapshot {
	src := newPortSource(s.info, at, s.fabric)
	sn := &snapshot{at: at, src: src}
	var counterHint, ufmHint int
	if prev != nil {
		counterHint = len(prev.counters.body)
		// Only an eager snapshot's ufm is safe to read without its once.
		if s.cfg.Ports > 0 {
			ufmHint = len(prev.ufm.body)
		}
	}
	if s.cfg.Ports == 0 {
		sn.counters = renderMatrix(at, s.info, s.fabric.switches, counterHint)
		return sn
	}
	// Both per-port bodies are large: render them side by side.
	done := make(chan struct{})
	go func() {
		defer close(done)
		sn.ufm = src.renderUFM(ufmHint)
	}()
	sn.counters = src.renderPorts(counterHint)
	<-done
	sn.ufmOnce.Do(func() {})
	sn.src = nil
	return sn
}

// renderMatrix writes the present switches as CSV, one row each.
func renderMatrix(at time.Time, info *fabricInfo, switches []switchState, sizeHint int) *table {
	buf, t := newTableBuf(matrixLayout, sizeHint, len(switches))
	ts := at.UnixMilli()
	t.ends = make([]int, 0, len(switches))
	for i := range switches {
		sw := &switches[i]
		if !sw.present() {
			continue
		}
		buf = appendRow(buf, info.ids[i], ts, sw)
		t.ends = append(t.ends, len(buf))
		t.groupEnds = append(t.groupEnds, len(t.ends))
		t.groupKeys = append(t.groupKeys, info.shardKey(i))
	}
	t.body = buf
	return t
}

// appendRow appends one switch's CSV row in Header's column order.
func appendRow(buf, id []byte, ts int64, sw *switchState) []byte {
	buf = append(buf, id...)
	buf = append(buf, ',')
	buf = strconv.AppendInt(buf, ts, 10)
	for _, g := range [...]float64{sw.latAvg, sw.latMax, sw.util, sw.buffer} {
		buf = append(buf, ',')
		buf = appendGauge(buf, g)
	}
	for _, c := range [...]uint64{
		sw.rxBytes, sw.txBytes, sw.rxPackets, sw.txPackets,
		sw.rxErrors, sw.txDiscards, sw.symbolErrors, sw.linkDowns, sw.xmitWait,
	} {
		buf = append(buf, ',')
		buf = strconv.AppendUint(buf, c, 10)
	}
	buf = append(buf, ',')
	buf = appendGauge(buf, sw.temp)
	buf = append(buf, ',')
	buf = appendGauge(buf, sw.power)
	buf = append(buf, ',')
	buf = strconv.AppendInt(buf, int64(sw.portsUp()), 10)
	buf = append(buf, ',')
	buf = strconv.AppendInt(buf, int64(sw.portsTotal), 10)
	return append(buf, '\n')
}

// appendGauge writes v with at most three decimals and no trailing zeros,
// the same text as strconv.AppendFloat(buf, math.Round(v*1000)/1000, 'f', -1,
// 64) but in a third of the time, which matters at six gauges per row. Gauges
// are far below 2^53/1000, where the scaled value stops being exact.
func appendGauge(buf []byte, v float64) []byte {
	n := int64(math.Round(v * 1000))
	if n < 0 {
		buf = append(buf, '-')
		n = -n
	}
	buf = strconv.AppendInt(buf, n/1000, 10)
	frac := n % 1000
	if frac == 0 {
		return buf
	}
	digits := [4]byte{'.', byte('0' + frac/100), byte('0' + frac/10%10), byte('0' + frac%10)}
	end := len(digits)
	for digits[end-1] == '0' {
		end--
	}
	return append(buf, digits[:end]...)
}
