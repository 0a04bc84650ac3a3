#!/usr/bin/env bash
# Issue 22's benchmarks, whole process:
#  1. packing: the shipped postgres pipeline (pipelines/postgres.pipe,
#     unchanged) against a private PostgreSQL 15 with N databases (default
#     100; five tables each, pg_stat_statements preloaded), for 70 s, into
#     the fake of New Relic's edge (tests/nr_edge_fake.py) over OTLP/HTTP:
#     export requests, resources per request, bytes as sent;
#  2. export throughput and peak RSS over HTTP and gRPC to the same
#     receiver (rotel-agent, blackhole exporter): 200,000 recorded gauge
#     rows through `dbintel run` into an `otlp` sink (gzip), time from
#     start until /metrics says every point was delivered; VmHWM at the end.
# Each section runs every build named: BEFORE=path AFTER=path (AFTER
# defaults to this tree's release build; without BEFORE, after only).
# DELIVERY_SECTIONS=packing or =throughput runs one section.
#   benches/delivery.sh [DATABASES] [ROWS]
set -euo pipefail
cd "$(dirname "$0")/.."
dbs=${1:-100}
rows=${2:-200000}
if [ -z "${AFTER:-}" ]; then cargo build --release -q -p dbintel; fi
after=${AFTER:-target/release/dbintel}
builds=()
[ -n "${BEFORE:-}" ] && builds+=("before=$BEFORE")
builds+=("after=$after")
work=$(mktemp -d)
chmod 755 "$work"
pids=()
pgdata="$work/pg"
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  [ -d "$pgdata" ] && runuser -u postgres -- /usr/lib/postgresql/15/bin/pg_ctl -D "$pgdata" -m immediate stop > /dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
free_port() { python3 -c "import socket; s=socket.socket(); s.bind(('127.0.0.1',0)); print(s.getsockname()[1])"; }
metric() { curl -s "http://127.0.0.1:$1/metrics" | awk -v s="$2" 'index($0, s" ") == 1 { print $2 }'; }

sections=${DELIVERY_SECTIONS:-packing,throughput}
if [[ $sections == *packing* ]]; then
echo "## 1. packing: pipelines/postgres.pipe, $dbs databases, 70 s, OTLP/HTTP into the fake of New Relic's edge"
pgport=$(free_port)
mkdir -p "$pgdata" && chown postgres:postgres "$work" "$pgdata"
runuser -u postgres -- /usr/lib/postgresql/15/bin/initdb -D "$pgdata" -A trust -U postgres --no-sync > /dev/null
runuser -u postgres -- /usr/lib/postgresql/15/bin/pg_ctl -D "$pgdata" -l "$work/pg.log" -w -o \
  "-p $pgport -c listen_addresses=127.0.0.1 -c unix_socket_directories=$work -c fsync=off -c max_connections=60 -c shared_preload_libraries=pg_stat_statements" \
  start > /dev/null
psql_pg() { psql -X -q -At -h 127.0.0.1 -p "$pgport" -U postgres -v ON_ERROR_STOP=1 "$@"; }
psql_pg -d postgres -c "CREATE ROLE bench_mon LOGIN; GRANT pg_monitor TO bench_mon; CREATE EXTENSION pg_stat_statements"
for d in $(seq 1 "$dbs"); do
  psql_pg -d postgres -c "CREATE DATABASE bench_$d" 
  psql_pg -d "bench_$d" -c "CREATE EXTENSION pg_stat_statements; CREATE TABLE a (id int primary key, t text); CREATE TABLE b (id int primary key, n bigint); CREATE TABLE c (id int); CREATE TABLE d (k text primary key); CREATE TABLE e (id int, v jsonb); CREATE INDEX ON c (id); INSERT INTO a SELECT g, md5(g::text) FROM generate_series(1, 100) g"
done
echo "databases: $(psql_pg -d postgres -c "SELECT count(*) FROM pg_database WHERE datname LIKE 'bench_%'")"

printf '%-8s %10s %14s %14s %16s %12s\n' build requests "requests/min" "resources/req" "bytes sent/min" "max bytes"
for b in "${builds[@]}"; do
  name=${b%%=*}; bin=${b#*=}
  out="$work/nr-$name.jsonl"
  python3 tests/nr_edge_fake.py --out "$out" > "$work/nr-$name.ports" &
  pids+=($!)
  sleep 1
  nrhttp=$(python3 -c "import json; print(json.load(open('$work/nr-$name.ports'))['http'])")
  port=$(free_port)
  PG_DSN="postgres://bench_mon:x@127.0.0.1:$pgport/postgres" NEW_RELIC_LICENSE_KEY=bench \
    OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:$nrhttp" OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf \
    "$bin" run --listen "127.0.0.1:$port" pipelines/postgres.pipe 2> "$work/run-$name.log" &
  pid=$!
  sleep 70
  kill -TERM "$pid"; wait "$pid" || true
  python3 - "$out" "$name" <<'PY'
import json, sys
reqs = [json.loads(l) for l in open(sys.argv[1])]
ok = [r for r in reqs if r.get("answer") == "ok"]
if not ok:
    sys.exit(f"{sys.argv[2]}: nothing arrived")
t0, t1 = min(r["t"] for r in ok), max(r["t"] for r in ok)
minutes = 70 / 60
res = sum(r["resources"] for r in ok)
sent = sum(r["sent_bytes"] for r in ok)
print(f"{sys.argv[2]:<8} {len(ok):>10} {len(ok)/minutes:>14.1f} {res/len(ok):>14.1f} {sent/minutes:>16,.0f} {max(r['sent_bytes'] for r in ok):>12,}")
by = {}
for r in ok:
    by.setdefault(r["signal"], []).append(r)
for s, rs in sorted(by.items()):
    print(f"         {s}: {len(rs)} requests, {sum(r['resources'] for r in rs)} resources, {sum(r['items'] for r in rs)} items")
PY
  kill "${pids[-1]}" 2>/dev/null || true
done

fi

if [[ $sections == *throughput* ]]; then
echo
echo "## 2. export throughput and peak RSS, $rows points, HTTP vs gRPC into rotel-agent (blackhole), gzip"
python3 - "$rows" > "$work/rows.ndjson" <<'PY'
import sys
for i in range(int(sys.argv[1])):
    print(f'{{"v": {i}, "k": "key-{i % 1000}", "db": "orders", "host": "db-{i % 7}.internal"}}')
PY
rotel=$(python3 -c "import os, rotel; print(os.path.join(os.path.dirname(rotel.__file__), 'rotel-agent'))")
rg=$(free_port); rh=$(free_port)
"$rotel" start --otlp-grpc-endpoint "127.0.0.1:$rg" --otlp-http-endpoint "127.0.0.1:$rh" --exporter blackhole \
  --pid-file "$work/rotel.pid" --log-file "$work/rotel.log" > /dev/null 2>&1 &
pids+=($!)
sleep 2
printf '%-8s %-6s %12s %10s %10s %10s\n' build proto "points/s" "CPU s" "RSS MiB" requests
for b in "${builds[@]}"; do
  name=${b%%=*}; bin=${b#*=}
  for proto in http grpc; do
    endpoint="http://127.0.0.1:$rh"; [ "$proto" = grpc ] && endpoint="http://127.0.0.1:$rg"
    cat > "$work/t.pipe" <<PIPE
source rows = sql {
  dsn = env("ROWS_DSN")
  collect m { query = "select 1", kind = gauge, metric = "bench.value", value_column = "v", attribute_columns = ["k", "db", "host"] }
}
batch b { size = 8192 }
sink out = otlp { endpoint = "$endpoint", protocol = $proto, compression = gzip }
pipeline p = rows.m -> b -> out
PIPE
    port=$(free_port)
    start=$(date +%s.%N)
    ROWS_DSN=x "$bin" run --listen "127.0.0.1:$port" --no-watch "$work/t.pipe" --input "rows.m=$work/rows.ndjson" 2> "$work/t.log" &
    pid=$!
    sent=0
    while [ "${sent%.*}" -lt "$rows" ]; do
      sleep 0.05
      sent=$(metric "$port" 'dbintel_export_items_total{sink="out",outcome="sent"}' || echo 0)
      sent=${sent:-0}
    done
    end=$(date +%s.%N)
    hwm=$(awk '/VmHWM/ { printf "%.1f", $2 / 1024 }' "/proc/$pid/status")
    # user + system CPU of the whole process (less sensitive to a loaded
    # machine than the wall clock)
    cpu=$(awk -v hz="$(getconf CLK_TCK)" '{ printf "%.2f", ($14 + $15) / hz }' "/proc/$pid/stat")
    requests=$(metric "$port" 'dbintel_export_requests_total{sink="out",outcome="sent"}')
    kill -TERM "$pid"; wait "$pid" || true
    printf '%-8s %-6s %12s %10s %10s %10s\n' "$name" "$proto" "$(python3 -c "print(f'{$rows / ($end - $start):,.0f}')")" "$cpu" "$hwm" "${requests%.*}"
  done
done
fi
