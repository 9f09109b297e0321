package ingest

import (
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"sync"

	"github.com/fabrictelemetry/aggregator/snapshot"
)

// shard is one part of a source: its own fetcher (and buffer) and parser
// (and id cache), so shards can run in parallel.
type shard struct {
	fetcher *Fetcher
	parser  *Parser
	body    []byte
	snap    *snapshot.Snapshot
}

// shardList builds the shards on first use.
func (p *Poller) shardList() []shard {
	if p.shards != nil {
		return p.shards
	}
	if p.Shards <= 1 {
		p.shards = []shard{{fetcher: p.Fetcher, parser: p.Parser}}
		return p.shards
	}
	p.shards = make([]shard, p.Shards)
	for i := range p.shards {
		f := &Fetcher{URL: ShardURL(p.Fetcher.URL, p.Shards, i), MaxBytes: p.Fetcher.MaxBytes, Client: p.Fetcher.Client}
		parser := NewFormatParser(p.Parser.table, p.Parser.format)
		parser.Limits = p.Parser.Limits
		p.shards[i] = shard{fetcher: f, parser: parser}
	}
	return p.shards
}

// ShardURL adds UFM Telemetry's sharding parameters to a source URL.
func ShardURL(source string, shards, shard int) string {
	u, err := url.Parse(source)
	if err != nil {
		return source // the fetch reports the bad URL
	}
	q := u.Query()
	q.Set("num_shards", strconv.Itoa(shards))
	q.Set("shard", strconv.Itoa(shard))
	q.Set("sharding_field", "port_guid")
	u.RawQuery = q.Encode()
	return u.String()
}

// eachShard runs f on every shard, in parallel when there are several, and
// returns the first shard's error in shard order, keeping its reason.
func eachShard(shards []shard, f func(*shard) error) error {
	if len(shards) == 1 {
		return f(&shards[0])
	}
	errs := make([]error, len(shards))
	var wg sync.WaitGroup
	for i := range shards {
		wg.Go(func() { errs[i] = f(&shards[i]) })
	}
	wg.Wait()
	for i, err := range errs {
		if err == nil {
			continue
		}
		// The shard's reason is said once, before the shard number:
		// "parse: shard 2 of 4: ...", not "parse: shard 2 of 4: parse: ...".
		reason := ReasonOf(err)
		var e *Error
		if errors.As(err, &e) {
			err = e.Err
		}
		return &Error{Reason: reason, Err: fmt.Errorf("shard %d of %d: %w", i+1, len(shards), err)}
	}
	return nil
}
