#!/usr/bin/env bash
# Issue 13's outage benchmark, whole process, release build: RSS while the
# OTLP endpoint is down for a long time with the export queue at its bound.
#
# One `dbintel run`: 200,000 recorded gauge rows (they fill the queue at
# once and the replay then waits) and the real PostgreSQL's statements,
# activity and instance collectors every second (they keep scraping and,
# with the queue full, skip and count) into one otlp sink with
# queue_size = 8MiB, on_full = block, its endpoint a closed port. RSS is
# sampled every 5 s for the whole outage; then the official-protobuf
# receiver starts on that port, and the script waits until every recorded
# row has been delivered.
#   benches/outage_rss.sh [OUTAGE_SECONDS]   (default 300)
set -euo pipefail
cd "$(dirname "$0")/.."
outage=${1:-300}
n=200000
tests/prepare-servers.sh > /dev/null
cargo build --release -q -p dbintel
bin=target/release/dbintel
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT
free_port() { python3 -c "import socket; s=socket.socket(); s.bind(('127.0.0.1',0)); print(s.getsockname()[1])"; }
metric() { curl -s "http://127.0.0.1:$1/metrics" | awk -v s="$2" 'index($0, s" ") == 1 { print $2 }'; }
rss_mib() { awk '/VmRSS/ { printf "%.1f", $2 / 1024 }' "/proc/$1/status"; }

python3 - "$n" > "$work/rows.ndjson" <<'PY'
import sys
for i in range(int(sys.argv[1])):
    print(f'{{"v": {i}, "k": "key-{i % 1000}", "db": "orders", "host": "db-{i % 7}.internal"}}')
PY
dead=$(free_port)
cat > "$work/outage.pipe" <<PIPE
use "$(pwd)/pipelines/sanitize_pii.pipe"
source rows = sql {
  dsn = env("ROWS_DSN")
  collect m { query = "select 1", kind = gauge, metric = "bench.value", value_column = "v", attribute_columns = ["k", "db", "host"] }
}
source pg = postgres {
  dsn = env("PG_DSN")
  interval = 1s
  collect statements
  collect activity { every = 1s, window = 10s }
  collect instance
}
batch b { size = 8192 }
sink out = otlp { endpoint = "http://127.0.0.1:$dead", protocol = http, compression = gzip, queue_size = 8MiB, on_full = block, retry_initial = 1s, retry_max = 5s, retry_elapsed = 1h }
pipeline r = rows.m -> b -> out
pipeline s = pg.statements -> sanitize_pii -> batch -> out
pipeline a = pg.activity -> sanitize_pii -> batch -> out
pipeline i = pg.instance -> batch -> out
PIPE
port=$(free_port)
ROWS_DSN=x PG_DSN=postgres://dbintel_monitor:monitor-secret-pw@127.0.0.1:5432/dbintel_test \
  "$bin" run --listen "127.0.0.1:$port" --no-watch "$work/outage.pipe" --input "rows.m=$work/rows.ndjson" 2> "$work/run.log" &
pid=$!
pids+=($pid)
echo "## RSS with the endpoint down for ${outage} s (queue_size = 8MiB, on_full = block)"
samples=()
for _ in $(seq 5 5 "$outage"); do sleep 5; samples+=("$(rss_mib $pid)"); done
echo "RSS MiB, every 5 s: ${samples[*]}"
printf '%s\n' "${samples[@]}" | sort -n | awk 'NR == 1 { min = $1 } { max = $1 } END { printf "min %.1f MiB, max %.1f MiB over the outage\n", min, max }'
echo "first minute max: $(printf '%s\n' "${samples[@]:0:12}" | sort -n | tail -1) MiB; last minute max: $(printf '%s\n' "${samples[@]: -12}" | sort -n | tail -1) MiB"
echo "queue bytes at the end: $(metric "$port" 'dbintel_export_queue_bytes{sink="out"}') (bound 8388608)"
echo "scrapes skipped (pg, backpressure): $(metric "$port" 'dbintel_source_skipped_scrapes_total{node="pg"}')"
echo "items failed: $(metric "$port" 'dbintel_export_items_total{sink="out",outcome="failed"}')"

start=$(date +%s.%N)
python3 tests/otlp_receiver.py --count-only --http "$dead" --out "$work/received.jsonl" > /dev/null &
pids+=($!)
# every recorded row has entered the pipeline, the queue is empty, and at
# least that many items were delivered (nothing fails or drops with block)
drained() {
  local rows sent requests
  rows=$(metric "$port" 'dbintel_node_emitted_records_total{node="rows",kind="source"}')
  sent=$(metric "$port" 'dbintel_export_items_total{sink="out",outcome="sent"}')
  requests=$(metric "$port" 'dbintel_export_queue_requests{sink="out"}')
  [ "${rows%.*}" -ge "$n" ] && [ "${sent%.*}" -ge "$n" ] && [ "${requests%.*}" -eq 0 ]
}
until drained; do sleep 1; done
end=$(date +%s.%N)
sent=$(metric "$port" 'dbintel_export_items_total{sink="out",outcome="sent"}')
echo "after the outage: $sent items delivered (>= $n recorded rows) in $(python3 -c "print(f'{$end - $start:.1f}')") s; RSS $(rss_mib $pid) MiB"
echo "items failed: $(metric "$port" 'dbintel_export_items_total{sink="out",outcome="failed"}')"
kill -TERM "$pid"; wait "$pid" || true
