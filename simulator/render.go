package simulator

import (
	"math"
	"strconv"
	"time"
)

// Header is the first line of every good /counters body, without its newline.
const Header = "switch_id,timestamp,Latency_Avg_uSec,Latency_Max_uSec,Bandwidth_Util_Pct,Buffer_Util_Pct," +
	"Rx_Bytes,Tx_Bytes,Rx_Packets,Tx_Packets,Rx_Errors,Tx_Discards,Symbol_Errors,Link_Down_Count,Xmit_Wait," +
	"Temperature_C,Power_W,Ports_Up,Ports_Total"

// numColumns is the number of fields in Header.
const numColumns = 19

// snapshot is one rendered state of the fabric. It is never modified after it
// is published, so handlers can share it without locks.
type snapshot struct {
	at   time.Time
	body []byte   // Header, newline, then one row per present switch
	rows [][]byte // the rows of body, each with its newline; they alias body
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

// render writes the present switches as CSV. sizeHint is the length of the
// previous body, so that the buffer is allocated once.
func render(at time.Time, ids [][]byte, switches []switchState, sizeHint int) *snapshot {
	buf := make([]byte, 0, sizeHint+sizeHint/8+len(Header)+1)
	buf = append(buf, Header...)
	buf = append(buf, '\n')

	ts := at.UnixMilli()
	ends := make([]int, 0, len(switches))
	for i := range switches {
		sw := &switches[i]
		if !sw.present() {
			continue
		}
		buf = appendRow(buf, ids[i], ts, sw)
		ends = append(ends, len(buf))
	}

	rows := make([][]byte, len(ends))
	start := len(Header) + 1
	for i, end := range ends {
		rows[i] = buf[start:end:end]
		start = end
	}
	return &snapshot{at: at, body: buf, rows: rows}
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
