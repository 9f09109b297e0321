// Package cluster lets any replica of a partitioned aggregator answer for
// the whole fabric. Each replica holds only the switches of the poll-log
// partitions it owns; a Membership says who the other replicas are and which
// of them holds a switch, and Peers asks them:
//
//   - PromQL reads every peer with Prometheus's own remote-read protocol
//     (its client, and its merge querier with the peers as secondaries), so
//     a peer that is down or slow becomes a warning in the answer, never a
//     gap nor a failed query. NewReadHandler serves a replica's own data on
//     /api/v1/read, to its peers and to any Prometheus server using it as a
//     remote_read target.
//   - REST fetches the rows of the switches it needs from their owners in
//     the poll log's record format, exact values and all (RowsHandler,
//     Peers.Rows); package restapi merges them into the view it answers
//     from.
//
// A partition handed from one replica to another during a rebalance is
// held by neither for a while, and replicas learn of a rebalance at
// slightly different moments. When the Membership says which partitions
// this replica holds (Serving), every answer to a peer says so too
// (PartitionsHeader: a header of the rows, a trailer of a remote read), and
// an answer that, all replicas together, lacks a partition is partial,
// naming it (MissingError), rather than silently short.
//
// Requests between replicas are answered from the replica's own data and
// never fan out again: /api/v1/read and the rows endpoint serve local data
// only, and the label lookups carry the PeerHeader marker. Each request to a
// peer is bounded by a timeout, a size limit and, for REST, a concurrency
// limit, and counted in fabric_fanout_requests_total and
// fabric_fanout_request_duration_seconds.
package cluster
