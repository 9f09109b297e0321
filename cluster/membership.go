package cluster

import (
	"github.com/fabrictelemetry/aggregator/polllog"
)

// Membership says who holds what. Implementations must be safe for
// concurrent use and cheap to call per request: every fan-out reads it
// afresh, so peers may come and go between two requests. Slices returned
// are the caller's to read, never to modify.
type Membership interface {
	// Self is this replica's base URL (--web.external-url).
	Self() string
	// Peers are the other replicas' base URLs, as they are now.
	Peers() []string
	// Sources are the source names in the poll log.
	Sources() []string
	// Owner is the base URL of the replica that holds the partition of the
	// switch's records in source, "" when nobody does.
	Owner(source, switchID string) string
}

// Static is a Membership that never changes: a fixed set of replicas and
// the replica holding each partition of the topic, the partition of a
// switch being the poll log's (polllog.Partition of polllog.Key). For tests
// and fixed deployments. Its fields must not change once it is in use.
type Static struct {
	SelfURL     string
	PeerURLs    []string
	SourceNames []string
	// PartitionOwners is the base URL of the replica holding each
	// partition, "" for none; its length is the topic's partition count.
	PartitionOwners []string
}

// Self returns SelfURL.
func (s *Static) Self() string { return s.SelfURL }

// Peers returns PeerURLs.
func (s *Static) Peers() []string { return s.PeerURLs }

// Sources returns SourceNames.
func (s *Static) Sources() []string { return s.SourceNames }

// Owner returns the owner of the switch's partition in source.
func (s *Static) Owner(source, switchID string) string {
	if len(s.PartitionOwners) == 0 {
		return ""
	}
	return s.PartitionOwners[polllog.Partition(polllog.Key(source, switchID), len(s.PartitionOwners))]
}
