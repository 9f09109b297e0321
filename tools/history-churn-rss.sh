#!/usr/bin/env bash
# history-churn-rss.sh measures what a source whose switch ids change on
# every poll costs the aggregator, against the same fabric polled steady.
# Three fresh aggregators, one after the other, each poll the 2,000 ×
# 64-port fabric in UFM's layout (tools/churnsource, 1.8M series a poll)
# every INTERVAL for SECONDS:
#
#   steady          the same switches every poll: the idle figure
#   churn           every switch renamed on every poll, with the default
#                   --query.max-history-series
#   churn-no-budget the same churn with --query.max-history-series=0, what
#                   the budget prevents
#
# and prints each one's peak resident memory (VmHWM from /proc/<pid>/status),
# its resident memory at the end, and what its history holds and dropped
# (fabric_history_*). Takes 3 × SECONDS and about one core.
# Usage: tools/history-churn-rss.sh [SECONDS [INTERVAL]]   (180 and 5s)
set -u
cd "$(dirname "$0")/.."
secs=${1:-180}
interval=${2:-5s}
bin=$(mktemp -d)
go build -o "$bin/agg" ./cmd/telemetry-aggregator && (cd tools && go build -o "$bin/churn" ./churnsource) || exit 1
src= agg=
trap 'kill $src $agg 2>/dev/null; rm -rf "$bin"' EXIT

metric() { # name and label match, from the last scrape
	awk -v name="$1" -v match_="$2" 'index($0, name) == 1 && index($0, match_) { print $NF; exit }' "$bin/metrics"
}
# addr waits for a process's log to say where it listens.
addr() { # log file, pattern before the address
	for _ in $(seq 100); do
		a=$(grep -o "$2[0-9.:]*" "$1" | head -1 | sed "s/^$2//")
		if [ -n "$a" ]; then echo "$a"; return; fi
		sleep 0.1
	done
	echo "no address in $1" >&2; cat "$1" >&2; exit 1
}
mib() { awk -v b="$1" 'BEGIN { printf "%.0f", b / 1048576 }'; }

printf '%-16s %10s %10s %6s %10s %10s %10s %8s\n' phase 'VmHWM MiB' 'RSS MiB' polls series 'hist MiB' snapshots dropped
run() { # phase, -churn value, aggregator flags...
	local phase=$1 churn=$2
	shift 2
	"$bin/churn" -churn="$churn" >"$bin/churn.log" 2>&1 &
	src=$!
	local src_addr agg_addr
	src_addr=$(addr "$bin/churn.log" 'listening on ')
	"$bin/agg" --web.listen-address=127.0.0.1:0 --source.url="http://$src_addr/csv/metrics" \
		--source.interval="$interval" --source.timeout=60s --source.max-staleness=10m "$@" >"$bin/agg.log" 2>&1 &
	agg=$!
	agg_addr=$(addr "$bin/agg.log" 'address=')
	sleep "$secs"
	curl -s "http://$agg_addr/metrics" >"$bin/metrics"
	local hwm
	hwm=$(awk '/^VmHWM:/ { print $2 * 1024 }' /proc/$agg/status)
	printf '%-16s %10s %10s %6s %10s %10s %10s %8s\n' "$phase" "$(mib "$hwm")" \
		"$(mib "$(metric process_resident_memory_bytes '')")" \
		"$(metric fabric_ingest_total 'result="success"')" \
		"$(metric fabric_history_series 'source=' | awk '{ printf "%d", $1 }')" \
		"$(mib "$(metric fabric_history_bytes 'source=')")" \
		"$(metric fabric_history_snapshots 'source=')" \
		"$(metric fabric_history_dropped_snapshots_total 'reason="series_budget"')"
	kill $src $agg
	wait $src $agg 2>/dev/null
	src= agg=
}
run steady false
run churn true
run churn-no-budget true --query.max-history-series=0
