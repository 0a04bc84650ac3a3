#!/usr/bin/env bash
# Issue 5's benchmarks, whole process, release build:
#  1. export throughput (data points/s): 200,000 recorded gauge rows through
#     `dbintel run` to a local receiver — rotel-agent (blackhole exporter)
#     and the official-protobuf Python receiver (--count-only) — over gRPC
#     and HTTP, gzip / zstd / none; time from start until /metrics says
#     every point was delivered;
#  2. idle RSS of `dbintel run pipelines/postgres.pipe` against the real
#     PostgreSQL after 30 s;
#  3. RSS while the endpoint is down, sampled every second for 40 s, with
#     an 8 MiB queue and `block`.
#   benches/export.sh [ROWS]
# DBINTEL_BIN=path runs another build (an A/B against an older commit);
# EXPORT_SECTIONS=throughput runs only the first section.
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-200000}
tests/prepare-servers.sh > /dev/null
if [ -z "${DBINTEL_BIN:-}" ]; then cargo build --release -q -p dbintel; fi
bin=${DBINTEL_BIN:-target/release/dbintel}
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT
rotel=$(python3 -c "import os, rotel; print(os.path.join(os.path.dirname(rotel.__file__), 'rotel-agent'))")
free_port() { python3 -c "import socket; s=socket.socket(); s.bind(('127.0.0.1',0)); print(s.getsockname()[1])"; }
metric() { curl -s "http://127.0.0.1:$1/metrics" | awk -v s="$2" 'index($0, s" ") == 1 { print $2 }'; }
rss_mib() { awk '/VmRSS/ { printf "%.1f", $2 / 1024 }' "/proc/$1/status"; }

python3 - "$n" > "$work/rows.ndjson" <<'PY'
import sys
for i in range(int(sys.argv[1])):
    print(f'{{"v": {i}, "k": "key-{i % 1000}", "db": "orders", "host": "db-{i % 7}.internal"}}')
PY

pipe() { # endpoint protocol compression [queue settings]
cat <<PIPE
source rows = sql {
  dsn = env("ROWS_DSN")
  collect m { query = "select 1", kind = gauge, metric = "bench.value", value_column = "v", attribute_columns = ["k", "db", "host"] }
}
batch b { size = 8192 }
sink out = otlp { endpoint = "$1", protocol = $2, compression = $3 $4 }
pipeline p = rows.m -> b -> out
PIPE
}

# throughput: prints points/s
throughput() { # endpoint protocol compression
  pipe "$1" "$2" "$3" "" > "$work/t.pipe"
  local port; port=$(free_port)
  local start; start=$(date +%s.%N)
  ROWS_DSN=x "$bin" run --listen "127.0.0.1:$port" --no-watch "$work/t.pipe" --input "rows.m=$work/rows.ndjson" 2> "$work/t.log" &
  local pid=$!
  local sent=0
  while [ "${sent%.*}" -lt "$n" ]; do
    sleep 0.05
    sent=$(metric "$port" 'dbintel_export_items_total{sink="out",outcome="sent"}' || echo 0)
    sent=${sent:-0}
  done
  local end; end=$(date +%s.%N)
  kill -TERM "$pid"; wait "$pid" || true
  python3 -c "print(f'{$n / ($end - $start):,.0f}')"
}

echo "## export throughput, $n points (data points/s, whole process from start)"
rg=$(free_port); rh=$(free_port)
"$rotel" start --otlp-grpc-endpoint "127.0.0.1:$rg" --otlp-http-endpoint "127.0.0.1:$rh" --exporter blackhole \
  --pid-file "$work/rotel.pid" --log-file "$work/rotel.log" > /dev/null 2>&1 &
pids+=($!)
python3 tests/otlp_receiver.py --count-only --out "$work/py.jsonl" > "$work/py.ports" &
pids+=($!)
sleep 2
pg=$(python3 -c "import json; print(json.load(open('$work/py.ports'))['grpc'])")
ph=$(python3 -c "import json; print(json.load(open('$work/py.ports'))['http'])")
printf '%-34s %12s\n' "receiver / protocol / compression" "points/s"
for c in none gzip; do
  printf '%-34s %12s\n' "rotel-agent grpc $c" "$(throughput "http://127.0.0.1:$rg" grpc $c)"
  printf '%-34s %12s\n' "rotel-agent http $c" "$(throughput "http://127.0.0.1:$rh" http $c)"
done
printf '%-34s %12s\n' "python (official) grpc gzip" "$(throughput "http://127.0.0.1:$pg" grpc gzip)"
for c in gzip zstd; do
  printf '%-34s %12s\n' "python (official) http $c" "$(throughput "http://127.0.0.1:$ph" http $c)"
done

if [ "${EXPORT_SECTIONS:-all}" = throughput ]; then exit 0; fi

echo
echo "## idle RSS: dbintel run pipelines/postgres.pipe (real PostgreSQL, endpoint = python receiver)"
port=$(free_port)
PG_DSN=postgres://dbintel_monitor:monitor-secret-pw@127.0.0.1:5432/dbintel_test NEW_RELIC_LICENSE_KEY=bench \
  OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:$pg" "$bin" run --listen "127.0.0.1:$port" pipelines/postgres.pipe 2> "$work/idle.log" &
pid=$!
sleep 30
echo "RSS after 30 s: $(rss_mib $pid) MiB"
kill -TERM "$pid"; wait "$pid" || true

echo
echo "## RSS while the endpoint is down ($n points offered, queue_size = 8MiB, on_full = block)"
dead=$(free_port)
pipe "http://127.0.0.1:$dead" http gzip ", queue_size = 8MiB, on_full = block" > "$work/down.pipe"
port=$(free_port)
ROWS_DSN=x "$bin" run --listen "127.0.0.1:$port" --no-watch "$work/down.pipe" --input "rows.m=$work/rows.ndjson" 2> "$work/down.log" &
pid=$!
samples=()
for _ in $(seq 1 40); do sleep 1; samples+=("$(rss_mib $pid)"); done
echo "RSS MiB, one per second: ${samples[*]}"
echo "queue bytes at the end: $(metric "$port" 'dbintel_export_queue_bytes{sink="out"}') (bound 8388608)"
kill -TERM "$pid"; wait "$pid" || true
