package aggregator

import (
	"errors"
	"fmt"
	"maps"
	"net"
	"net/url"
	"slices"
	"strconv"
	"sync/atomic"

	"github.com/fabrictelemetry/aggregator/cluster"
	"github.com/fabrictelemetry/aggregator/config"
	"github.com/fabrictelemetry/aggregator/history"
	"github.com/fabrictelemetry/aggregator/kafkalog"
	"github.com/fabrictelemetry/aggregator/polllog"
	"github.com/fabrictelemetry/aggregator/selfscrape"
)

// Partitioned mode (docs/scale-out.md): a kafka://…/TOPIC?group=NAME
// source makes the aggregator one of several replicas sharing the fabric.
// A kafkalog.GroupFollower reads the partitions the consumer group assigns
// it: their composed polls are the view (so /metrics holds this replica's
// switches alone), and each partition's polls, its replay included, feed a
// PromQL history of that source and partition, dropped when the partition
// is given up and queried with the others as a union. The follower is also
// the cluster.Membership through which REST and PromQL ask the other
// replicas for the rest of the fabric (package cluster).

// DefaultExternalURL is the base URL other replicas reach this one at when
// --web.external-url is not given: http:// and the first listen address,
// with this host's name when the address names no host (":8080"). It is
// "" when the address's port is 0 (chosen when listening) or unreadable.
func DefaultExternalURL(listenAddress string) string {
	_, port, err := net.SplitHostPort(listenAddress)
	if n, perr := strconv.Atoi(port); err != nil || perr != nil || n == 0 {
		return ""
	}
	return "http://" + selfscrape.Instance(listenAddress)
}

// checkPartitioned checks a partitioned configuration: the group's source
// is the only source (a replica holds its share of the log and nothing
// else, or the replicas would each serve, and ask each other for, the same
// other sources), and the replica has a URL to advertise.
func (cfg *Config) checkPartitioned() (partitioned bool, err error) {
	for _, sc := range cfg.Sources {
		if !sc.Kafka() {
			continue
		}
		u, err := config.ParseKafkaURL(sc.URL)
		if err != nil || u.Group == "" {
			continue
		}
		partitioned = true
	}
	if !partitioned {
		return false, nil
	}
	if len(cfg.Sources) > 1 {
		return true, errors.New("a kafka:// source with ?group= (partitioned mode) must be the aggregator's only source")
	}
	if cfg.Demo {
		return true, errors.New("--demo polls its own simulator: it cannot be a partitioned replica")
	}
	if cfg.ExternalURL == "" {
		return true, errors.New("partitioned mode needs --web.external-url, the base URL the other replicas reach this one at (it cannot be told from a listen address of port 0)")
	}
	u, err := url.Parse(cfg.ExternalURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return true, fmt.Errorf("--web.external-url %q is not an http(s) base URL", cfg.ExternalURL)
	}
	return true, nil
}

// newGroupFollower makes f a member of the partitioned replicas' group.
func (a *Aggregator) newGroupFollower(f *feed, group string, conn kafkalog.Conn) error {
	g, err := kafkalog.NewGroupFollower(kafkalog.GroupFollowerConfig{
		Conn:            conn,
		Topic:           f.topic,
		Group:           group,
		URL:             a.cfg.ExternalURL,
		Name:            f.cfg.Name,
		Replay:          f.replay,
		Table:           a.cfg.Schema,
		SessionTimeout:  a.cfg.Kafka.SessionTimeout,
		OnPoll:          func(p *polllog.Poll) { a.applyLogPoll(f, p) },
		OnPartitionPoll: func(partition int32, p *polllog.Poll) { a.applyPartitionPoll(f, partition, p) },
		OnRelease:       func(partitions []int32) { a.releasePartitions(f, partitions) },
		Logger:          a.cfg.Logger.With("component", "polllog"),
		Registerer:      a.exp.Registry(),
	})
	if err != nil {
		return fmt.Errorf("source %q: %w", f.cfg.Name, err)
	}
	f.group = g
	return nil
}

// newPeers is the client of the other replicas of the group f follows.
func (a *Aggregator) newPeers(f *feed) (*cluster.Peers, error) {
	opts := a.cfg.Fanout
	opts.Registerer = a.exp.Registry()
	opts.Logger = a.cfg.Logger.With("component", "fanout")
	peers, err := cluster.New(f.group, opts)
	if err != nil {
		return nil, fmt.Errorf("source %q: %w", f.cfg.Name, err)
	}
	return peers, nil
}

// partitionHistories are a source's PromQL histories on a partitioned
// replica, one per partition it holds: written by the group follower's
// callbacks (one at a time), read by /-/ready.
type partitionHistories struct {
	byPartition map[int32]*history.History // the callbacks' own
	list        atomic.Pointer[[]*history.History]
}

func (p *partitionHistories) publish() {
	list := slices.Collect(maps.Values(p.byPartition))
	p.list.Store(&list)
}

// all returns the histories as of now; the slice is shared.
func (p *partitionHistories) all() []*history.History { return *p.list.Load() }

// applyPartitionPoll runs in f's group follower for every complete poll
// of every partition it owns, in order, the replay of a partition just
// assigned included: the poll goes to the history of its source and
// partition, made at the partition's first poll, so that a replica that
// takes a partition over has its past for PromQL too.
func (a *Aggregator) applyPartitionPoll(f *feed, partition int32, p *polllog.Poll) {
	src := a.logSource(f, p.Source)
	if src == nil {
		return // a name refused: applyLogPoll counts its polls
	}
	hs := src.partitions
	h := hs.byPartition[partition]
	if h == nil {
		h = a.newHistory(src.cfg.Name)
		if hs.byPartition == nil {
			hs.byPartition = map[int32]*history.History{}
		}
		hs.byPartition[partition] = h
		hs.publish()
		a.histories.Add(h)
		a.exp.AddHistory(src.cfg.Name, h)
	}
	h.Append(p.Snapshot) // a log source has no labels of its own to add
}

// releasePartitions runs in f's group follower when it gives partitions
// up, after their rows left the view: their histories go too, since the
// replica that takes them over replays them.
func (a *Aggregator) releasePartitions(f *feed, partitions []int32) {
	for _, src := range f.sources {
		if src == nil {
			continue
		}
		hs := src.partitions
		for _, p := range partitions {
			h := hs.byPartition[p]
			if h == nil {
				continue
			}
			delete(hs.byPartition, p)
			a.histories.Remove(h)
			a.exp.RemoveHistory(src.cfg.Name, h)
		}
		hs.publish()
	}
}

// groupReady says whether the replica serves every partition the group
// assigned it, and why not. Partitions the group assigned to nobody (which
// happens between the two rounds of a cooperative rebalance) do not make a
// replica that owns partitions unready: it can do nothing about them, and
// every replica would fail together, taking the whole fabric out of a load
// balancer for a part of it. Answers that lack them say so, /-/ready's
// text names them, and fabric_polllog_partitions_unowned counts them.
func (f *feed) groupReady() (bool, string) {
	if f.group.Ready() {
		return true, ""
	}
	owned, loaded := f.group.Partitions()
	switch {
	case f.group.Members() == nil:
		return false, fmt.Sprintf("the poll log %s: not a member of its group yet (brokers not reached, or the group not balanced yet)", f.topic)
	case len(loaded) < len(owned):
		return false, fmt.Sprintf("the poll log %s: loading partitions %v of the %v assigned to this replica", f.topic, difference(owned, loaded), owned)
	}
	return false, fmt.Sprintf("the poll log %s: no partition assigned to this replica, and %d of the group's assigned to none yet", f.topic, f.unowned())
}

// unowned counts the partitions of the group no member owns, as of the
// latest rebalance.
func (f *feed) unowned() int {
	n, _ := f.group.Serving()
	owned := map[int32]bool{}
	for _, m := range f.group.Members() {
		for _, p := range m.Partitions {
			owned[p] = true
		}
	}
	return max(n-len(owned), 0)
}

func difference(a, b []int32) []int32 {
	var out []int32
	for _, p := range a {
		if !slices.Contains(b, p) {
			out = append(out, p)
		}
	}
	return out
}
