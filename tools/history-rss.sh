#!/usr/bin/env bash
# history-rss.sh measures the aggregator's resident memory with an hour of
# PromQL history of the 2,000 × 64-port fabric: the simulator makes a new
# snapshot every second and the aggregator polls it every second with
# --query.retention=1h, so after 360 polls the history holds as many samples
# as an hour at the usual 10 s interval. Prints the process's figures every
# 30 s from its own /metrics, then the samples the history holds. Takes about
# 7 minutes and both cores. Usage: tools/history-rss.sh [polls]
set -u
cd "$(dirname "$0")/.."
polls=${1:-360}
bin=$(mktemp -d)
go build -o "$bin/agg" ./cmd/telemetry-aggregator && go build -o "$bin/sim" ./cmd/telemetry-simulator || exit 1
"$bin/sim" --web.listen-address=127.0.0.1:19001 --switches=2000 --ports=64 --interval=1s --incident-rate=0 >"$bin/sim.log" 2>&1 &
sim=$!
"$bin/agg" --web.listen-address=127.0.0.1:19080 --source.url=http://127.0.0.1:19001/csv/metrics \
	--source.interval=1s --source.timeout=5s --query.retention=1h >"$bin/agg.log" 2>&1 &
agg=$!
trap 'kill $sim $agg; rm -rf "$bin"' EXIT
start=$(date +%s)
while sleep 30; do
	m=$(curl -s http://127.0.0.1:19080/metrics | grep -E '^(process_resident_memory_bytes|go_memstats_heap_inuse_bytes|fabric_ingest_total\{result="success",source="default"\}|fabric_snapshot_series) ')
	echo "$(($(date +%s) - start))s" $m
	ok=$(echo "$m" | awk '/result="success"/ {print int($2)}')
	if [ -n "$ok" ] && [ "$ok" -ge "$polls" ]; then break; fi
done
curl -sG http://127.0.0.1:19080/api/v1/query --data-urlencode 'query=sum(count_over_time(fabric_port_receive_bytes_total[1h]))'
echo
