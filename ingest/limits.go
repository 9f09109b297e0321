package ingest

import "fmt"

// Limits bound what one poll of a source may hold, as Prometheus's
// sample_limit and label_value_length_limit bound a scrape: a broken or
// hostile source is refused with reason limit, as early in the body as the
// limit can be told, before the rows cost memory. A zero field is no limit.
type Limits struct {
	// Samples bounds the values of a poll: rows × metric columns, empty
	// cells included (each takes the room of a value in the snapshot), a
	// row without metric columns counting as one.
	Samples int
	// Columns bounds the columns of the header, identity columns included.
	Columns int
	// LabelValueLength bounds the bytes of each label value (switch_id,
	// port, node_guid).
	LabelValueLength int
}

// The default limits admit the 2,000-switch × 64-port fabric (128,000 rows
// of 14 UFM or 17 matrix counters, 2.2 million values at most) with room to
// spare; docs/configuration.md says why each is what it is.
const (
	DefaultSampleLimit           = 10_000_000
	DefaultColumnLimit           = 1_000
	DefaultLabelValueLengthLimit = 1_024
)

// DefaultLimits are the limits of a parser nobody configured.
func DefaultLimits() Limits {
	return Limits{Samples: DefaultSampleLimit, Columns: DefaultColumnLimit, LabelValueLength: DefaultLabelValueLengthLimit}
}

// maxRows is how many rows of this many metric columns fit the sample
// limit, or -1 for no limit.
func (l Limits) maxRows(columns int) int {
	if l.Samples <= 0 {
		return -1
	}
	return l.Samples / max(columns, 1)
}

// checkColumns refuses a header of more than the column limit.
func (l Limits) checkColumns(n int) error {
	if l.Columns > 0 && n > l.Columns {
		return fmt.Errorf("header has %d columns, over the column limit of %d (--source.column-limit, column_limit)", n, l.Columns)
	}
	return nil
}

// checkSamples refuses rows of this many metric columns over the sample
// limit.
func (l Limits) checkSamples(rows, columns int) error {
	if limit := l.maxRows(columns); limit >= 0 && rows > limit {
		return fmt.Errorf("%d rows × %d metric columns are over the sample limit of %d (--source.sample-limit, sample_limit)",
			rows, columns, l.Samples)
	}
	return nil
}

// checkLabelValue returns a limitError, which the row's error keeps as its
// reason.
func (l Limits) checkLabelValue(f []byte) error {
	if l.LabelValueLength > 0 && len(f) > l.LabelValueLength {
		return limitError{fmt.Errorf("value of %d bytes (%q…) is over the label value length limit of %d (--source.label-value-length-limit, label_value_length_limit)",
			len(f), truncate(f), l.LabelValueLength)}
	}
	return nil
}

// limitError marks an error inside a row as a limit hit rather than
// malformed data.
type limitError struct{ error }

func (e limitError) Unwrap() error { return e.error }
