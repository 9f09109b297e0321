package queryapi

import "github.com/prometheus/prometheus/storage"

// merge returns a Queryable over the data and, when there is one, the
// self-metrics store, their series merged by labels (Prometheus's merge
// querier; the two never share a series, since only the self-metrics have
// job and instance labels).
func merge(data, self storage.Queryable) storage.Queryable {
	if self == nil {
		return data
	}
	return merged{data, self}
}

type merged [2]storage.Queryable

func (m merged) Querier(mint, maxt int64) (storage.Querier, error) {
	qs := make([]storage.Querier, 0, len(m))
	for _, q := range m {
		querier, err := q.Querier(mint, maxt)
		if err != nil {
			for _, open := range qs {
				_ = open.Close()
			}
			return nil, err
		}
		qs = append(qs, querier)
	}
	return storage.NewMergeQuerier(qs, nil, storage.ChainedSeriesMerge), nil
}
