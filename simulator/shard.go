package simulator

import (
	"fmt"
	"net/url"
	"strconv"
)

// shardSpec is UFM Telemetry's ?num_shards=N&shard=i. The zero value (N = 0)
// means the whole fabric.
type shardSpec struct{ n, i int }

// parseShard reads the sharding parameters of a request. num_shards and
// shard come together; sharding_field is optional and must be port_guid.
func parseShard(q url.Values) (shardSpec, error) {
	if q.Has("sharding_field") && q.Get("sharding_field") != ShardingField {
		return shardSpec{}, fmt.Errorf("unsupported sharding_field %q, only %s is supported", q.Get("sharding_field"), ShardingField)
	}
	hasN, hasI := q.Has("num_shards"), q.Has("shard")
	if !hasN && !hasI {
		return shardSpec{}, nil
	}
	if hasN != hasI {
		return shardSpec{}, fmt.Errorf("num_shards and shard must be given together")
	}
	n, err := strconv.Atoi(q.Get("num_shards"))
	if err != nil || n < 1 {
		return shardSpec{}, fmt.Errorf("num_shards must be an integer of at least 1, got %q", q.Get("num_shards"))
	}
	i, err := strconv.Atoi(q.Get("shard"))
	if err != nil || i < 0 || i >= n {
		return shardSpec{}, fmt.Errorf("shard must be an integer from 0 to num_shards-1 (%d), got %q", n-1, q.Get("shard"))
	}
	return shardSpec{n: n, i: i}, nil
}

// apply returns the rows of t in the shard: the switches whose port_guid
// hash modulo n is i, each with all its rows, in their order in t.
func (sh shardSpec) apply(t *table) *table {
	if sh.n <= 1 {
		return t
	}
	return t.filter(func(g int) bool { return t.groupKeys[g]%uint64(sh.n) == uint64(sh.i) })
}

// filter returns a new table with the groups for which keep is true.
func (t *table) filter(keep func(g int) bool) *table {
	out := &table{layout: t.layout}
	size := 0
	for g := range t.groupEnds {
		if first, end := t.groupRows(g); end > first && keep(g) {
			size += t.ends[end-1] - t.rowStart(first)
		}
	}
	buf := make([]byte, 0, len(t.layout.header)+1+size)
	buf = append(buf, t.layout.header...)
	buf = append(buf, '\n')
	for g := range t.groupEnds {
		if !keep(g) {
			continue
		}
		first, end := t.groupRows(g)
		for k := first; k < end; k++ {
			buf = append(buf, t.row(k)...)
			out.ends = append(out.ends, len(buf))
		}
		out.groupEnds = append(out.groupEnds, len(out.ends))
		out.groupKeys = append(out.groupKeys, t.groupKeys[g])
	}
	out.body = buf
	return out
}

// groupRows returns the rows of group g as [first, end).
func (t *table) groupRows(g int) (first, end int) {
	if g > 0 {
		first = t.groupEnds[g-1]
	}
	return first, t.groupEnds[g]
}
