#!/usr/bin/env bash
# partition-rss.sh measures partitioned replicas (issue 14) beside today's
# single box, in one run on this machine:
#
#   - kfake (tools/kfake), an in-process Kafka on loopback, keeping
#     RETENTION of records;
#   - the simulator of the large fabric (switches × ports, default
#     10,000 × 64) writing each snapshot to the topic (--kafka.brokers),
#     every INTERVAL;
#   - for each replica count N given (default 4), one after the other: N
#     partitioned replicas, source kafka://BROKERS/TOPIC?group=replicas-N,
#     each with its --web.external-url; once every one is ready and has
#     applied WARMUP polls, the figures over MEASURE polls; then they stop;
#   - all along: a second simulator of the 2,000 × 64 fabric (the same
#     /counters layout) and one plain aggregator polling it every INTERVAL,
#     today's single box.
#
# For each aggregator it prints VmHWM (/proc/PID/status), VmRSS and the Go
# heap in use sampled every 2 s over the measurement (min, median, max),
# the switches and series it serves (fabric_snapshot_*), the mean ingest
# cycle (fabric_ingest_duration_seconds: fetch, parse and swap on the plain
# aggregator; only the swap on a replica, which assembles a poll before it
# is applied: that work is in the CPU figure) and the CPU seconds per
# poll applied over the measurement (process_cpu_seconds_total over
# fabric_ingest_total{result="success"}), and the time and size of a
# /metrics scrape: the first after a poll (rendered then) and the next one
# (cached). Both kinds keep QUERY_RETENTION of history (default 5m).
#
# Usage: tools/partition-rss.sh [switches] [ports] [replica counts...]
#   tools/partition-rss.sh                  # 10,000 × 64, 4 replicas
#   tools/partition-rss.sh 2000 64 1 2 4    # the single box's fabric split 1, 2 and 4 ways
#   INTERVAL=10s WARMUP=12 MEASURE=12       poll interval (whole seconds), polls before and during the measurement
#   QUERY_RETENTION=5m RETENTION=2m         history kept by the aggregators; records kept by kfake
#   BASELINE=0                              no plain aggregator (nor its simulator)
#   PARTITIONED=0                           replicas without ?group= (each reads the whole log):
#                                           for trying the script on a tree without partitioned mode
#   AGG=path                                this aggregator binary instead of building one
#   MAX_RSS_KB=n                            kill a process of the run whose RSS passes this (default 8 GiB)
#   READY_TIMEOUT=600                       seconds an aggregator may take to be ready
set -u
cd "$(dirname "$0")/.."
switches=${1:-10000}
ports=${2:-64}
shift $(($# < 2 ? $# : 2))
counts=("${@:-4}")
interval=${INTERVAL:-10s}
warmup=${WARMUP:-12}
measure=${MEASURE:-12}
query_retention=${QUERY_RETENTION:-5m}
retention=${RETENTION:-2m}
baseline=${BASELINE:-1}
partitioned=${PARTITIONED:-1}
max_rss_kb=${MAX_RSS_KB:-8388608}
ready_timeout=${READY_TIMEOUT:-600}
topic=fabric-telemetry

bin=$(mktemp -d)
pids=()
cleanup() {
	[ ${#pids[@]} -gt 0 ] && kill "${pids[@]}" 2>/dev/null
	wait 2>/dev/null
	rm -rf "$bin"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

go build -o "$bin/sim" ./cmd/telemetry-simulator || exit 1
agg_bin=${AGG:-}
if [ -z "$agg_bin" ]; then
	go build -o "$bin/agg" ./cmd/telemetry-aggregator || exit 1
	agg_bin=$bin/agg
fi
(cd tools && go build -o "$bin/kfake" ./kfake) || exit 1
if [ "$partitioned" = 1 ] && ! "$agg_bin" --help 2>&1 | grep -q -- '--web.external-url'; then
	echo "this aggregator has no partitioned mode (no --web.external-url): build it from a tree that has it, or set PARTITIONED=0" >&2
	exit 1
fi

# start name args...: runs a program in the background, logging to $bin/name.log.
start() {
	local name=$1
	shift
	"$@" >"$bin/$name.log" 2>&1 &
	pids+=($!)
	eval "pid_${name//-/_}=$!"
}
pid_of() { eval "echo \${pid_${1//-/_}}"; }

"$bin/kfake" -brokers 1 -retention "$retention" -addr-file "$bin/brokers" >"$bin/kfake.log" 2>&1 &
pids+=($!)
kfake=$!
for _ in $(seq 100); do [ -s "$bin/brokers" ] && break; sleep 0.1; done
brokers=$(cat "$bin/brokers" 2>/dev/null) || { echo "kfake did not start"; cat "$bin/kfake.log"; exit 1; }

start sim-large "$bin/sim" --web.listen-address=127.0.0.1:19301 --switches="$switches" --ports="$ports" \
	--interval="$interval" --incident-rate=0 --kafka.brokers="$brokers" --kafka.topic="$topic"
if [ "$baseline" = 1 ]; then
	start sim-box "$bin/sim" --web.listen-address=127.0.0.1:19302 --switches=2000 --ports=64 \
		--interval="$interval" --incident-rate=0
	start box "$agg_bin" --web.listen-address=127.0.0.1:19380 --source.url=http://127.0.0.1:19302/counters \
		--source.interval="$interval" --source.timeout=9s --query.retention="$query_retention" --web.enable-pprof
fi

# The watchdog kills a process of the run over MAX_RSS_KB, so that a run cannot
# take the machine.
(
	while kill -0 "$kfake" 2>/dev/null; do
		for p in $(pgrep -P $$); do
			rss=$(awk '/^VmRSS/ {print $2}' "/proc/$p/status" 2>/dev/null)
			if [ -n "$rss" ] && [ "$rss" -gt "$max_rss_kb" ]; then
				echo "watchdog: process $p at ${rss} kB, over ${max_rss_kb} kB: killed" >&2
				kill -9 "$p"
			fi
		done
		sleep 1
	done
) &
pids+=($!)

metrics() { curl -s --max-time 60 "http://$1/metrics"; }
# value addr awk-pattern: the sum of the samples whose line matches.
value() { metrics "$1" | awk -v re="$2" '$0 ~ re && !/^#/ {s += $NF} END {printf "%.6f", s}'; }
polls() { value "$1" '^fabric_ingest_total\\{.*result="success"'; }

# wait_polls name addr n: until the aggregator is ready and applied n polls.
wait_polls() {
	local name=$1 addr=$2 n=$3 deadline=$(($(date +%s) + ready_timeout))
	while :; do
		kill -0 "$(pid_of "$name")" 2>/dev/null || { echo "$name exited:"; tail -20 "$bin/$name.log"; exit 1; }
		if [ "$(curl -s -o /dev/null -w '%{http_code}' "http://$addr/-/ready")" = 200 ] &&
			[ "$(polls "$addr" | cut -d. -f1)" -ge "$n" ]; then
			return
		fi
		if [ "$(date +%s)" -gt "$deadline" ]; then
			echo "$name not ready with $n polls after ${ready_timeout}s:"
			curl -s "http://$addr/-/ready"
			tail -20 "$bin/$name.log"
			exit 1
		fi
		sleep 2
	done
}

# snapshot addr: the counters the measurement takes a difference of.
counters() {
	metrics "$1" | awk '
		/^process_cpu_seconds_total / {cpu = $2}
		/^fabric_ingest_total\{.*result="success"/ {polls += $2}
		/^fabric_ingest_duration_seconds_sum/ {sum += $2}
		/^fabric_ingest_duration_seconds_count/ {count += $2}
		END {printf "%s %s %s %s", cpu, polls, sum, count}'
}

# first_switch switches: the simulator's first switch id, zero-padded to
# the width of the largest, at least two digits.
first_switch() {
	local w=${#1}
	[ "$w" -lt 2 ] && w=2
	printf 'SW-%0*d' "$w" 1
}

# stamp addr switches: the source time of a value the aggregator serves
# (asking /metrics instead would render it).
stamp() {
	curl -s --max-time 10 "http://$1/telemetry/GetMetric?switch_id=$(first_switch "$2")&metric_name=Tx_Bytes&port=1" |
		sed -n 's/.*"timestamp":"\([^"]*\)".*/\1/p'
}

# scrape addr switches: a /metrics just after the next poll is applied,
# then another.
scrape() {
	local addr=$1 before
	before=$(stamp "$addr" "$2")
	for _ in $(seq 600); do
		[ "$(stamp "$addr" "$2")" != "$before" ] && break
		sleep 0.05
	done
	curl -s -o /dev/null --max-time 120 -w 'first after a poll %{time_total}s %{size_download} B' "http://$addr/metrics"
	curl -s -o /dev/null --max-time 120 -w ', cached %{time_total}s' "http://$addr/metrics"
}

# sample name addr: one VmRSS and heap in use (MiB) of an aggregator, kept
# for spread. Both move with the garbage collector's cycle (the heap in use
# doubles between collections at GOGC=100): one reading says little. The
# heap is read from the runtime's MemStats in /debug/pprof/heap, a few kB,
# not from /metrics, whose rendering of the fabric would be the load.
sample() {
	local rss heap
	rss=$(awk '/^VmRSS/ {printf "%.0f", $2/1024}' "/proc/$(pid_of "$1")/status" 2>/dev/null)
	heap=$(curl -s --max-time 10 "http://$2/debug/pprof/heap?debug=1" | awk '/^# HeapInuse = / {printf "%.0f", $4/1048576}')
	[ -n "$rss" ] && [ -n "$heap" ] && echo "$rss $heap" >>"$bin/samples-$1"
}

# spread name column label: min, median and max of a sampled column.
spread() {
	sort -n -k"$2,$2" "$bin/samples-$1" 2>/dev/null | awk -v c="$2" -v l="$3" '
		{v[NR] = $c}
		END {if (NR) printf "%s min %d / median %d / max %d MiB (%d samples)  ", l, v[1], v[int((NR + 1) / 2)], v[NR], NR}'
}

# report name addr switches counters-before counters-after
report() {
	local name=$1 addr=$2 switches=$3 pid status served
	pid=$(pid_of "$name")
	status=$(grep -E '^VmHWM' "/proc/$pid/status" | awk '{printf "%s %.0f MiB  ", $1, $2/1024}')
	status+=$(spread "$name" 1 "VmRSS")$(spread "$name" 2 "heap in use")
	served=$(metrics "$addr" | awk '
		/^fabric_snapshot_switches / {printf "switches %d  ", $2}
		/^fabric_snapshot_series / {printf "series %d  ", $2}
		/^fabric_polllog_partitions_owned/ {owned += $2; p = 1}
		END {if (p) printf "partitions owned %d", owned}')
	echo "  $name ($addr): $status$served"
	echo "$4 $5" | awk '{dp = $6 - $2; dn = $8 - $4; if (dp > 0) printf "    %d polls: CPU %.3f s a poll", dp, ($5 - $1) / dp; if (dn > 0) printf ", ingest cycle %.1f ms (mean)", 1000 * ($7 - $3) / dn; print ""}'
	echo "    /metrics: $(scrape "$addr" "$switches")"
}

if [ "$baseline" = 1 ]; then
	wait_polls box 127.0.0.1:19380 1
fi
for n in "${counts[@]}"; do
	echo "== $n replicas of the $switches x $ports fabric, every $interval (history $query_retention); plain aggregator of 2000 x 64 beside"
	names=()
	for i in $(seq "$n"); do
		port=$((19310 + i))
		url=kafka://$brokers/$topic
		flags=()
		if [ "$partitioned" = 1 ]; then
			url+="?group=replicas-$n"
			flags=(--web.external-url="http://127.0.0.1:$port")
		fi
		start "replica-$i" "$agg_bin" --web.listen-address="127.0.0.1:$port" --source.url="$url" \
			--source.interval="$interval" --query.retention="$query_retention" --web.enable-pprof "${flags[@]}"
		names+=("replica-$i")
	done
	began=$(date +%s)
	for i in $(seq "$n"); do
		wait_polls "replica-$i" "127.0.0.1:$((19310 + i))" 1
	done
	echo "  ready after $(($(date +%s) - began)) s"
	for i in $(seq "$n"); do
		wait_polls "replica-$i" "127.0.0.1:$((19310 + i))" "$warmup"
	done
	rm -f "$bin"/samples-*
	declare -A before=()
	for i in $(seq "$n"); do before[$i]=$(counters "127.0.0.1:$((19310 + i))"); done
	[ "$baseline" = 1 ] && before[box]=$(counters 127.0.0.1:19380)
	end=$(($(date +%s) + $(echo "$interval" | sed 's/s$//') * measure))
	while [ "$(date +%s)" -lt "$end" ]; do
		for i in $(seq "$n"); do sample "replica-$i" "127.0.0.1:$((19310 + i))"; done
		[ "$baseline" = 1 ] && sample box 127.0.0.1:19380
		sleep 2
	done
	for i in $(seq "$n"); do
		addr=127.0.0.1:$((19310 + i))
		report "replica-$i" "$addr" "$switches" "${before[$i]}" "$(counters "$addr")"
	done
	total=0
	for i in $(seq "$n"); do
		total=$((total + $(value "127.0.0.1:$((19310 + i))" '^fabric_snapshot_switches ' | cut -d. -f1)))
	done
	echo "  switches on the replicas' /metrics together: $total (the fabric: $switches)"
	if [ "$baseline" = 1 ]; then
		report box 127.0.0.1:19380 2000 "${before[box]}" "$(counters 127.0.0.1:19380)"
	fi
	echo "  simulator of the large fabric: $(grep -E '^(VmRSS|VmHWM)' "/proc/$(pid_of sim-large)/status" | awk '{printf "%s %.0f MiB  ", $1, $2/1024}')kfake: $(grep -E '^(VmRSS|VmHWM)' "/proc/$kfake/status" | awk '{printf "%s %.0f MiB  ", $1, $2/1024}')"
	for name in "${names[@]}"; do
		kill "$(pid_of "$name")" 2>/dev/null
		wait "$(pid_of "$name")" 2>/dev/null
	done
done
