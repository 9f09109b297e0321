package kafkalog

import "github.com/prometheus/client_golang/prometheus"

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
	src := []string{"source"}
	return &groupMetrics{
		owned: gaugeVec(reg, "partitions_owned",
			"Partitions of the poll log the group assigned to this replica.",
			src),
		loaded: gaugeVec(reg, "partitions_loaded",
			"Owned partitions read up to the end they had when assigned, whose switches this replica serves.",
			src),
		unowned: gaugeVec(reg, "partitions_unowned",
			"Partitions of the poll log no member of the group owns, as of the latest rebalance: their switches are served by nobody.",
			src),
		switches: gaugeVec(reg, "switches_owned",
			"Switches in the snapshots this replica serves from its partitions, all sources together.",
			src),
		members: gaugeVec(reg, "group_members",
			"Members of the partitioned followers' group, this replica included, as of the latest rebalance.",
			src),
		rebalances: counterVec(reg, "group_rebalances_total",
			"Rebalances (join and sync rounds) of the partitioned followers' group this replica took part in.",
			src),
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
