package kafkalog

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/fabrictelemetry/aggregator/schema"
)

// groupMetrics are a GroupFollower's own, beside the followerMetrics it
// shares with a Follower; source is the follower's name.
type groupMetrics struct {
	owned      *prometheus.GaugeVec
	loaded     *prometheus.GaugeVec
	unowned    *prometheus.GaugeVec
	switches   *prometheus.GaugeVec
	members    *prometheus.GaugeVec
	rebalances *prometheus.CounterVec
}

func newGroupMetrics(reg prometheus.Registerer) *groupMetrics {
	const ns = schema.Namespace
	src := []string{"source"}
	return &groupMetrics{
		owned: register(reg, prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: ns, Subsystem: subsystem, Name: "partitions_owned",
			Help: "Partitions of the poll log the group assigned to this replica.",
		}, src)),
		loaded: register(reg, prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: ns, Subsystem: subsystem, Name: "partitions_loaded",
			Help: "Owned partitions read up to the end they had when assigned, whose switches this replica serves.",
		}, src)),
		unowned: register(reg, prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: ns, Subsystem: subsystem, Name: "partitions_unowned",
			Help: "Partitions of the poll log no member of the group owns, as of the latest rebalance: their switches are served by nobody.",
		}, src)),
		switches: register(reg, prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: ns, Subsystem: subsystem, Name: "switches_owned",
			Help: "Switches in the snapshots this replica serves from its partitions, all sources together.",
		}, src)),
		members: register(reg, prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: ns, Subsystem: subsystem, Name: "group_members",
			Help: "Members of the partitioned followers' group, this replica included, as of the latest rebalance.",
		}, src)),
		rebalances: register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Subsystem: subsystem, Name: "group_rebalances_total",
			Help: "Rebalances (join and sync rounds) of the partitioned followers' group this replica took part in.",
		}, src)),
	}
}

func (m *groupMetrics) addSource(source string) {
	m.owned.WithLabelValues(source)
	m.loaded.WithLabelValues(source)
	m.unowned.WithLabelValues(source)
	m.switches.WithLabelValues(source)
	m.members.WithLabelValues(source)
	m.rebalances.WithLabelValues(source)
}
