package kafkalog

import (
	"context"
	"log/slog"
	"slices"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/fabrictelemetry/aggregator/polllog"
)

// recordQueue holds, per partition, the fetched records a follower has
// not fed to its assembly yet. Fetches of different partitions come at
// different speeds (in a replay, one may bring a hundred polls' markers
// before another brings one), and a poll is whole only once every
// partition brought its part: a partition ahead of the others is held
// back here, and not fetched (pace) until its queue is drained.
type recordQueue map[int32][]*kgo.Record

// drain feeds the queued records in order, holding a partition back while
// ahead says it is ahead. When every one of the partitions read holds
// records and each is ahead, no fetch can help: one partition's records
// go on anyway (the assembly's caps bound what it keeps).
func (q recordQueue) drain(partitionsRead int, ahead func(int32) bool, feed func(int32, *kgo.Record)) {
	for progress := true; progress; {
		progress = false
		for p, recs := range q {
			n := 0
			for n < len(recs) && !ahead(p) {
				feed(p, recs[n])
				n++
			}
			if n > 0 {
				progress = true
				q[p] = recs[n:]
			}
			if len(q[p]) == 0 {
				delete(q, p)
			}
		}
	}
	if len(q) > 0 && len(q) >= partitionsRead {
		for p, recs := range q {
			for _, r := range recs {
				feed(p, r)
			}
			delete(q, p)
			break
		}
	}
}

// pace pauses fetching the partitions whose records wait in the queue and
// resumes those of paused whose queue is drained, and returns the paused
// partitions now.
func (q recordQueue) pace(cl *kgo.Client, topic string, paused []int32) []int32 {
	var pause, resume, now []int32
	for p := range q {
		now = append(now, p)
		if !slices.Contains(paused, p) {
			pause = append(pause, p)
		}
	}
	for _, p := range paused {
		if _, ok := q[p]; !ok {
			resume = append(resume, p)
		}
	}
	if len(pause) > 0 {
		cl.PauseFetchPartitions(map[string][]int32{topic: pause})
	}
	if len(resume) > 0 {
		cl.ResumeFetchPartitions(map[string][]int32{topic: resume})
	}
	return now
}

// reject counts and logs a record or poll of the log rejected: expected
// ones (the partial poll at a replay's start, a poll again after a retried
// commit) at info, the others as warnings.
func (m *followerMetrics) reject(logger *slog.Logger, name string, r polllog.Rejection) {
	m.rejected.WithLabelValues(name, string(r.Reason)).Inc()
	level := slog.LevelWarn
	if r.Reason == polllog.ReasonPartialStart || r.Reason == polllog.ReasonDuplicate {
		level = slog.LevelInfo
	}
	logger.Log(context.Background(), level, "Poll log record or poll rejected; the last good poll stays", "reason", r.Reason, "err", r.Error())
}
