package polllog

import (
	"bytes"
	"cmp"
	"slices"

	"github.com/fabrictelemetry/aggregator/snapshot"
)

// build decodes a complete poll's data records into its snapshot.
//
// It does what the ingest parser does for a steady source. The records
// are taken in switch order, chunk after chunk, which is the order of the
// rows in the snapshot they were encoded from and in the source's previous
// snapshot. A row whose label values are the same bytes as the previous
// snapshot's row at that place takes that row's strings, so a steady
// fabric's labels cost a comparison and no allocation; and when every row
// is the previous snapshot's, the builder (told of it with ShareIndex)
// shares its labels and row index. A row that differs gets strings of its
// own, never a stale one: reuse needs equal bytes.
func (a *Assembler) build(src *sourceState, p *pendingPoll) (*snapshot.Snapshot, error) {
	slices.SortFunc(p.data, func(x, y dataRecord) int {
		if c := bytes.Compare(x.switchID, y.switchID); c != 0 {
			return c
		}
		return cmp.Compare(x.chunk, y.chunk)
	})
	b := snapshot.NewBuilder(p.labelNames, p.columns, p.rows)
	b.ShareIndex(src.prev)
	rd := &a.rows
	rd.reset(src.prev, len(p.labelNames), len(p.columns))
	for _, d := range p.data {
		rd.record(b, d)
	}
	clear(rd.interned) // no strings kept past the poll
	return b.Build(unixTime(p.snapTime), a.metrics(src, p))
}

// rowDecoder decodes rows into a snapshot.Builder, reusing label strings
// it has already: the previous snapshot's at the same row, the previous
// row's, or one made earlier in this poll. It is the Assembler's scratch.
type rowDecoder struct {
	prev      *snapshot.Snapshot // nil unless its label names are the poll's
	switchIdx int                // walks prev.Switches(), in step with the records
	switchID  string             // of the records being decoded
	predicted int                // prev's row expected next, or -1
	end       int                // end of the switch's rows in prev
	labels    []string
	last      []string // the previous row's labels
	values    []snapshot.Value
	interned  map[string]string
}

func (rd *rowDecoder) reset(prev *snapshot.Snapshot, labelCount, columnCount int) {
	if prev != nil && len(prev.LabelNames()) != labelCount {
		prev = nil // label names differ: ShareIndex ignores prev too
	}
	rd.prev, rd.switchIdx, rd.switchID, rd.predicted, rd.end = prev, 0, "", -1, 0
	rd.labels = slices.Grow(rd.labels[:0], labelCount)[:labelCount]
	rd.last = slices.Grow(rd.last[:0], labelCount)[:labelCount]
	clear(rd.last)
	rd.values = slices.Grow(rd.values[:0], columnCount)[:columnCount]
}

// record adds the rows of one data record (checked when it was added).
func (rd *rowDecoder) record(b *snapshot.Builder, d dataRecord) {
	if d.chunk == 0 || rd.switchID != string(d.switchID) {
		rd.startSwitch(d.switchID)
	}
	dec := decoder{buf: d.rowData}
	rd.labels[0] = rd.switchID
	for range d.rows {
		var predicted []string
		if rd.predicted >= 0 && rd.predicted < rd.end {
			predicted = rd.prev.RowLabels(rd.predicted)
			rd.predicted++
		}
		for i := 1; i < len(rd.labels); i++ {
			rd.labels[i] = rd.label(i, dec.raw(), predicted)
		}
		for i := range rd.values {
			rd.values[i] = dec.cell()
		}
		b.AddRowValues(rd.labels, rd.values)
		copy(rd.last, rd.labels)
	}
}

// startSwitch finds the switch in prev, whose switches are in the same
// (string) order as the records.
func (rd *rowDecoder) startSwitch(id []byte) {
	rd.predicted = -1
	if rd.prev != nil {
		switches := rd.prev.Switches()
		for rd.switchIdx < len(switches) && switches[rd.switchIdx] < string(id) {
			rd.switchIdx++
		}
		if rd.switchIdx < len(switches) && switches[rd.switchIdx] == string(id) {
			rd.switchID = switches[rd.switchIdx]
			rd.predicted, rd.end, _ = rd.prev.SwitchRows(rd.switchID)
			return
		}
	}
	rd.switchID = rd.intern(id)
}

// label returns the string of label i whose bytes are f.
func (rd *rowDecoder) label(i int, f []byte, predicted []string) string {
	switch {
	case predicted != nil && predicted[i] == string(f):
		return predicted[i]
	case rd.last[i] == string(f):
		return rd.last[i]
	}
	return rd.intern(f)
}

// intern returns a string of f, one per distinct value in a poll.
func (rd *rowDecoder) intern(f []byte) string {
	if s, ok := rd.interned[string(f)]; ok {
		return s
	}
	if rd.interned == nil {
		rd.interned = map[string]string{}
	}
	s := string(f)
	rd.interned[s] = s
	return s
}
