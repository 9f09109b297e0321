package history

import (
	"github.com/prometheus/prometheus/storage"
)

// Union returns a storage.Queryable over several histories, one per source:
// a query sees the series of all of them, each with its own samples and
// times, so a source that stops publishing ends its series where its last
// snapshot was instead of being carried along by the others. Series with the
// same labels in several histories are merged sample by sample (Prometheus's
// ChainedSeriesMerge), label names and values are unions.
//
// One history is served as it is, without the merging layer.
func Union(histories ...*History) storage.Queryable {
	switch len(histories) {
	case 0:
		return New(0).Queryable()
	case 1:
		return histories[0].Queryable()
	}
	return union(histories)
}

type union []*History

// Querier opens one querier per history, each on the view current at that
// moment, and merges them.
func (u union) Querier(mint, maxt int64) (storage.Querier, error) {
	qs := make([]storage.Querier, 0, len(u))
	for _, h := range u {
		q, err := h.Queryable().Querier(mint, maxt)
		if err != nil {
			return nil, err
		}
		qs = append(qs, q)
	}
	return storage.NewMergeQuerier(qs, nil, storage.ChainedSeriesMerge), nil
}
