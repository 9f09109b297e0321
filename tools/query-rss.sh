#!/usr/bin/env bash
# query-rss.sh measures the aggregator's resident memory under the hostile
# query set on the 2,000 × 64-port fabric (128,000 series per port metric):
# its idle RSS, then its peak (VmHWM) while these are asked, each phase
# after the one before has been answered:
#
#   1. normal heavy queries, one at a time: one metric over every port,
#      instant and with 61 points per series (a minute at step 1s: the
#      size of an hour at step 60s, which the short history cannot fill);
#      topk(10, rate(...[5m]));
#   2. the issue's range query, one metric over every port for 5 minutes at
#      step 1s (38.4 million samples, 1.17 GB of JSON), alone;
#   3. a regex over every port series, and topk(100000, ...);
#   4. CONCURRENT (default 20, the old --query.max-concurrency) copies of
#      the issue's query at once, then as many of the 61-point query.
#
# Prints each answer's status and size, and the process's VmRSS, VmHWM and
# heap in use after each phase, then the same a minute after the load. The
# simulator makes a snapshot every second and the aggregator polls it every
# second, for WARMUP polls before the queries. Takes about 5 minutes.
#
# Usage: tools/query-rss.sh [switches] [ports]
#   AGG=path        run this aggregator binary instead of building one
#                   (e.g. one built from main, to compare)
#   AGG_FLAGS=...   extra aggregator flags
#   CONCURRENT=n    copies of the heavy queries at once in phase 4
#   MAX_RSS_KB=n    kill the aggregator if its RSS passes this (default
#                   16 GiB), so an unbounded binary cannot take the machine
set -u
cd "$(dirname "$0")/.."
switches=${1:-2000}
ports=${2:-64}
concurrent=${CONCURRENT:-20}
warmup=${WARMUP:-60}
max_rss_kb=${MAX_RSS_KB:-16777216}
bin=$(mktemp -d)
go build -o "$bin/sim" ./cmd/telemetry-simulator || exit 1
agg_bin=${AGG:-}
if [ -z "$agg_bin" ]; then
	go build -o "$bin/agg" ./cmd/telemetry-aggregator || exit 1
	agg_bin=$bin/agg
fi
"$bin/sim" --web.listen-address=127.0.0.1:19201 --switches="$switches" --ports="$ports" --interval=1s --incident-rate=0 >"$bin/sim.log" 2>&1 &
sim=$!
# shellcheck disable=SC2086 # AGG_FLAGS is a list of flags
"$agg_bin" --web.listen-address=127.0.0.1:19280 --source.url=http://127.0.0.1:19201/csv/metrics \
	--source.interval=1s --source.timeout=5s ${AGG_FLAGS:-} >"$bin/agg.log" 2>&1 &
agg=$!
watchdog() {
	while kill -0 "$agg" 2>/dev/null; do
		rss=$(awk '/VmRSS/ {print $2}' "/proc/$agg/status" 2>/dev/null)
		if [ -n "$rss" ] && [ "$rss" -gt "$max_rss_kb" ]; then
			echo "watchdog: RSS ${rss} kB over ${max_rss_kb} kB, killing the aggregator"
			kill -9 "$agg"
		fi
		sleep 0.2
	done
}
watchdog &
dog=$!
trap 'kill $sim $agg $dog 2>/dev/null; rm -rf "$bin"' EXIT
api=http://127.0.0.1:19280

began=$(date +%s)
memory() {
	local status heap
	status=$(grep -E '^(VmRSS|VmHWM)' "/proc/$agg/status" 2>/dev/null | awk '{printf "%s %.0f MiB  ", $1, $2/1024}')
	heap=$(curl -s --max-time 10 $api/metrics | awk '/^go_memstats_heap_inuse_bytes / {printf "heap in use %.0f MiB", $2/1048576}')
	echo "  memory at $(($(date +%s) - began))s: ${status:-process gone} $heap"
}

# ask name path args...: one query; prints status, size and time.
ask() {
	local name=$1
	shift
	curl -s -o /dev/null --max-time 600 -w "  $name: %{http_code} %{size_download} bytes %{time_total}s\n" -G "$@"
}

echo "waiting for $warmup polls of the $switches x $ports fabric"
until [ "$(curl -s $api/metrics | awk '/^fabric_ingest_total\{result="success"/ {print int($2)}')" -ge "$warmup" ] 2>/dev/null; do
	kill -0 "$agg" 2>/dev/null || { echo "aggregator exited"; tail -5 "$bin/agg.log"; exit 1; }
	sleep 2
done
grep -E '"Go memory limit"|msg="Go memory limit"|Query limits' "$bin/agg.log" | sed 's/^/  /'
curl -s -o /dev/null $api/telemetry/ListMetrics
echo "idle"
memory

now=$(date +%s)
start=$((now - 20)) # after the first poll; the lookback fills the steps to start+5m
echo "1. normal heavy queries, one at a time"
ask "instant, every port" $api/api/v1/query --data-urlencode 'query=fabric_port_transmit_bytes_total'
ask "61 points, every port" $api/api/v1/query_range --data-urlencode 'query=fabric_port_transmit_bytes_total' \
	--data-urlencode "start=$start" --data-urlencode "end=$((start + 60))" --data-urlencode step=1
ask "topk(10, rate[5m])" $api/api/v1/query --data-urlencode 'query=topk(10, rate(fabric_port_transmit_bytes_total[5m]))'
memory
echo "2. the issue's query: 5 minutes at step 1s, every port"
ask "5m at 1s, every port" $api/api/v1/query_range --data-urlencode 'query=fabric_port_transmit_bytes_total' \
	--data-urlencode "start=$start" --data-urlencode "end=$((start + 300))" --data-urlencode step=1
memory
echo "3. every port series; a large topk"
ask "regex over every port series" $api/api/v1/query --data-urlencode 'query={__name__=~"fabric_port_.+"}'
ask "topk(100000, rate[5m])" $api/api/v1/query --data-urlencode 'query=topk(100000, rate(fabric_port_transmit_bytes_total[5m]))'
memory
echo "4. $concurrent of the issue's query at once, then $concurrent of the 61-point query"
for i in $(seq "$concurrent"); do
	ask "5m at 1s #$i" $api/api/v1/query_range --data-urlencode 'query=fabric_port_transmit_bytes_total' \
		--data-urlencode "start=$start" --data-urlencode "end=$((start + 300))" --data-urlencode step=1 &
done
wait $(jobs -p | grep -v -e "^$dog$" -e "^$sim$" -e "^$agg$")
for i in $(seq "$concurrent"); do
	ask "61 points #$i" $api/api/v1/query_range --data-urlencode 'query=fabric_port_transmit_bytes_total' \
		--data-urlencode "start=$start" --data-urlencode "end=$((start + 60))" --data-urlencode step=1 &
done
wait $(jobs -p | grep -v -e "^$dog$" -e "^$sim$" -e "^$agg$")
memory
curl -s $api/metrics | grep -E '^fabric_query_refused_total' | sed 's/^/  /'
echo "5 seconds later"
sleep 5
memory
echo "a minute later"
sleep 55
memory
