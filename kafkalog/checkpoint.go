package kafkalog

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/fabrictelemetry/aggregator/polllog"
)

// lastCheckpoint returns the newest committed checkpoint of source in
// partition 0 of the lease topic, or nil if it has none. It reads the
// partition backwards in growing windows, so that it costs a few records
// however long the topic's history.
func lastCheckpoint(ctx context.Context, conn Conn, logger *slog.Logger, topic, source string) (*polllog.Entry, error) {
	cl, err := kgo.NewClient(append(conn.opts(logger), kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.KeepControlRecords())...)
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	end, err := stableEnd(ctx, kadm.NewClient(cl), topic)
	if err != nil {
		return nil, err
	}
	key := []byte(source)
	for window := int64(256); ; window *= 8 {
		start := max(end-window, 0)
		last, err := lastMatching(ctx, cl, topic, start, end, func(r *kgo.Record) bool { return bytes.Equal(r.Key, key) })
		if err != nil {
			return nil, err
		}
		if last != nil {
			e, err := polllog.Decode(last.Value)
			if err != nil {
				return nil, fmt.Errorf("checkpoint at offset %d: %w", last.Offset, err)
			}
			return e, nil
		}
		if start == 0 {
			return nil, nil
		}
	}
}

// stableEnd returns the end of partition 0 once every transaction open
// when it was asked for has ended: the last stable offset has reached the
// high watermark seen first. Transactions of other sources end within
// their timeout; this waits for that, not for later ones.
func stableEnd(ctx context.Context, adm *kadm.Client, topic string) (int64, error) {
	hw, err := adm.ListEndOffsets(ctx, topic)
	if err != nil {
		return 0, fmt.Errorf("listing end offsets of %s: %w", topic, err)
	}
	end, ok := hw.Lookup(topic, 0)
	if !ok || end.Err != nil {
		return 0, fmt.Errorf("end offset of %s: %v", topic, end.Err)
	}
	for {
		lso, err := adm.ListCommittedOffsets(ctx, topic)
		if err != nil {
			return 0, fmt.Errorf("listing stable offsets of %s: %w", topic, err)
		}
		if o, ok := lso.Lookup(topic, 0); ok && o.Err == nil && o.Offset >= end.Offset {
			return end.Offset, nil
		}
		if !sleep(ctx, 50*time.Millisecond) {
			return 0, ctx.Err()
		}
	}
}

// lastMatching reads partition 0 of topic from start to end (committed
// records only) and returns the last record that matches.
func lastMatching(ctx context.Context, cl *kgo.Client, topic string, start, end int64, match func(*kgo.Record) bool) (*kgo.Record, error) {
	if start >= end {
		return nil, nil
	}
	cl.AddConsumePartitions(map[string]map[int32]kgo.Offset{topic: {0: kgo.NewOffset().At(start)}})
	defer cl.PurgeTopicsFromConsuming(topic)
	var last *kgo.Record
	for pos := start; pos < end; {
		fetches := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		for _, e := range fetches.Errors() {
			return nil, fmt.Errorf("reading %s: %w", topic, e.Err)
		}
		for r := range fetches.RecordsAll() {
			pos = r.Offset + 1
			if !r.Attrs.IsControl() && r.Offset < end && match(r) {
				last = r
			}
		}
	}
	return last, nil
}
