#!/usr/bin/env bash
# run.sh measures the aggregator's PromQL API against Prometheus 3.16 with
# the official PromQL compliance tester (github.com/prometheus/compliance),
# on the same samples. See README.md. Not run in CI: it builds Prometheus and
# the tester, and waits WAIT seconds for history (default 400).
#
#   tools/compliance/run.sh                  # build everything, run, print the score
#   PROMETHEUS=/path/prometheus TESTER=/path/promql-compliance-tester tools/compliance/run.sh
#   COMPLIANCE_SRC=/path/to/compliance/promql tools/compliance/run.sh   # tester from a checkout
#   AGGREGATOR=/path/telemetry-aggregator PORT_OFFSET=100 tools/compliance/run.sh  # another build, other ports
#
# The work directory (logs, configs, the tester's full output) is kept and
# printed at the end.
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
work=${WORK:-$(mktemp -d /tmp/compliance-run.XXXXXX)}
wait_seconds=${WAIT:-400}
mkdir -p "$work"
echo "work directory: $work"

# Loopback ports of the run.
offset=${PORT_OFFSET:-0}
sim_port=$((19001 + offset)) agg_port=$((19080 + offset)) relay_port=$((19180 + offset)) prom_port=$((19090 + offset))

# --- Build ----------------------------------------------------------------
go build -o "$work/telemetry-simulator" ./cmd/telemetry-simulator
if [[ -z "${AGGREGATOR:-}" ]]; then
	go build -o "$work/telemetry-aggregator" ./cmd/telemetry-aggregator
	AGGREGATOR=$work/telemetry-aggregator
fi
(cd tools && go build -o "$work/relay" ./compliance/relay)

if [[ -z "${PROMETHEUS:-}" ]]; then
	echo "building Prometheus v0.316.0 (3.16) from the module proxy"
	mkdir -p "$work/prometheus-build"
	(cd "$work/prometheus-build" && printf 'module prombuild\n\ngo 1.26\n' >go.mod &&
		go get github.com/prometheus/prometheus/cmd/prometheus@v0.316.0 &&
		go build -o "$work/prometheus" github.com/prometheus/prometheus/cmd/prometheus)
	PROMETHEUS=$work/prometheus
fi
if [[ -z "${TESTER:-}" ]]; then
	if [[ -z "${COMPLIANCE_SRC:-}" ]]; then
		git clone --depth 1 https://github.com/prometheus/compliance "$work/compliance"
		COMPLIANCE_SRC=$work/compliance/promql
	fi
	(cd "$COMPLIANCE_SRC" && go build -o "$work/promql-compliance-tester" ./cmd/promql-compliance-tester)
	TESTER=$work/promql-compliance-tester
fi

# --- Run the fabric, the aggregator, the relay and Prometheus --------------
# Prometheus scrapes the relay, which serves the aggregator's /metrics data
# with each sample stamped with its snapshot's source time (honor_timestamps
# keeps it), and drops the scrape's job and instance labels: its samples are
# then those of the aggregator's history, same labels, same times.
cat >"$work/prometheus.yml" <<EOF
global:
  scrape_interval: 1s
scrape_configs:
  - job_name: relay
    honor_timestamps: true
    static_configs:
      - targets: ['127.0.0.1:$relay_port']
    metric_relabel_configs:
      - action: labeldrop
        regex: job|instance
EOF

pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true' EXIT
"$PROMETHEUS" --config.file="$work/prometheus.yml" --storage.tsdb.path="$work/prometheus-data" \
	--web.listen-address=127.0.0.1:$prom_port >"$work/prometheus.log" 2>&1 &
pids+=($!)
"$work/relay" --listen=127.0.0.1:$relay_port --target=http://127.0.0.1:$agg_port/metrics >"$work/relay.log" 2>&1 &
pids+=($!)
"$work/telemetry-simulator" --web.listen-address=127.0.0.1:$sim_port --switches=5 --ports=4 \
	--interval=10s --incident-rate=0 --seed=1 >"$work/simulator.log" 2>&1 &
pids+=($!)
sleep 2 # Prometheus up before the aggregator's first snapshot, so both have it
"$AGGREGATOR" --web.listen-address=127.0.0.1:$agg_port \
	--source.url=http://127.0.0.1:$sim_port/counters --source.interval=1s \
	--query.retention=2h >"$work/aggregator.log" 2>&1 &
pids+=($!)

echo "collecting history for ${wait_seconds}s"
sleep "$wait_seconds"

# --- Compare ----------------------------------------------------------------
# Five minutes ending 30s ago, every 10s: both sides hold every sample of
# that range and of the longest window before it that has data.
end=$(($(date +%s) - 30))
cat >"$work/targets.yml" <<EOF
reference_target_config:
  query_url: http://127.0.0.1:$prom_port
test_target_config:
  query_url: http://127.0.0.1:$agg_port
query_time_parameters:
  end_time: $end
  range_in_seconds: 300
  resolution_in_seconds: 10
EOF
status=0
"$TESTER" -config-file="$root/tools/compliance/queries.yml" -config-file="$work/targets.yml" \
	-query-parallelism=4 >"$work/result.txt" 2>&1 || status=$?
grep -a -E '^Total:' "$work/result.txt" || tail -20 "$work/result.txt"
echo "full output: $work/result.txt"
exit $status
