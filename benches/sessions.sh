#!/usr/bin/env bash
# Database 360's sessions and blocking, at a known load: what sampling
# `pg_stat_activity` costs the server, and how many events leave.
#
#   benches/sessions.sh [DBINTEL=target/release/dbintel] [SECONDS=60] [ACTIVITY="every = 1s, window = 60s, samples_as_logs = true"]
#
# A private PostgreSQL 15 cluster (the machine's binaries, on a free port)
# with 200 client sessions: one holds a row lock in an open transaction,
# 50 wait on that row (UPDATE), 149 run pg_sleep. `dbintel run` (DBINTEL:
# any build, e.g. one from before a change) samples it with `collect
# activity { ACTIVITY }` into a file. After a warm-up, over SECONDS:
#   - database time of dbintel's role (pg_stat_statements), per second and
#     per sample query (its calls);
#   - db.server.query_sample and db.server.blocking events per minute,
#     and sessions per sample event batch;
#   - CPU of the process.
set -euo pipefail
cd "$(dirname "$0")/.."
dbintel=${1:-}
seconds=${2:-60}
activity=${3:-every = 1s, window = 60s, samples_as_logs = true}
bin=/usr/lib/postgresql/15/bin
if [[ -z $dbintel ]]; then
  cargo build --release -q -p dbintel
  dbintel=$PWD/target/release/dbintel
fi

work=$(mktemp -d /tmp/dbintel-sessions.XXXXXX)
chown postgres "$work"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
load_pids=()
cleanup() {
  [[ -n ${run_pid:-} ]] && kill "$run_pid" 2> /dev/null || true
  for p in "${load_pids[@]}"; do kill "$p" 2> /dev/null || true; done
  su postgres -c "$bin/pg_ctl -D $work/data -m immediate stop" > /dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
su postgres -c "$bin/initdb -D $work/data -A trust -U postgres" > /dev/null
cat >> "$work/data/postgresql.conf" << EOF
port = $port
listen_addresses = '127.0.0.1'
unix_socket_directories = '$work'
max_connections = 300
shared_preload_libraries = 'pg_stat_statements'
pg_stat_statements.track = all
EOF
su postgres -c "$bin/pg_ctl -D $work/data -l $work/log -w start" > /dev/null
psql() { command psql -X -q -At -h 127.0.0.1 -p "$port" -U postgres "$@"; }
psql -d postgres -c "CREATE EXTENSION pg_stat_statements; CREATE ROLE dbintel_monitor LOGIN; GRANT pg_monitor TO dbintel_monitor;
  CREATE TABLE accounts (id int PRIMARY KEY, balance int); INSERT INTO accounts VALUES (1, 0)"

# the load: a holder, 50 waiters, 149 sleepers (each an open session)
load() { command psql -X -q -h 127.0.0.1 -p "$port" -U postgres -d postgres -c "$1" > /dev/null 2>&1 & load_pids+=($!); }
load "BEGIN; UPDATE accounts SET balance = balance + 1 WHERE id = 1; SELECT pg_sleep(3600); COMMIT"
sleep 0.5
for _ in $(seq 50); do load "UPDATE accounts SET balance = balance - 1 WHERE id = 1"; done
for _ in $(seq 149); do load "SELECT pg_sleep(3600)"; done
for _ in $(seq 50); do
  n=$(psql -d postgres -c "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()")
  [[ $n -ge 200 ]] && break
  sleep 0.2
done
blocked=$(psql -d postgres -c "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'")

cat > "$work/sessions.pipe" << EOF
source pg = postgres {
  dsn = env("SESSIONS_DSN")
  interval = 30s
  collect activity { $activity }
}
sink out = file { path = "$work/out.jsonl" }
pipeline p = pg.activity -> out
EOF
export SESSIONS_DSN="postgres://dbintel_monitor@127.0.0.1:$port/postgres?sslmode=disable"
listen=127.0.0.1:$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$dbintel" run --listen "$listen" --no-watch "$work/sessions.pipe" 2> "$work/run.log" &
run_pid=$!
ticks=$(getconf CLK_TCK)
cpu() { awk '{ print $14 + $15 }' "/proc/$run_pid/stat"; }
role_stats() {
  psql -d postgres -c "SELECT coalesce(sum(total_exec_time), 0) || ' ' || coalesce(sum(calls) FILTER (WHERE query ILIKE '%pg_stat_activity%'), 0)
                         FROM pg_stat_statements s JOIN pg_roles r ON r.oid = s.userid WHERE r.rolname = 'dbintel_monitor'"
}
events() {
  python3 - "$work/out.jsonl" << 'PY'
import json, sys, collections
c = collections.Counter()
try:
    lines = open(sys.argv[1]).read().splitlines()
except FileNotFoundError:
    lines = []
for line in lines:
    for rl in json.loads(line).get("resourceLogs", []):
        for sl in rl["scopeLogs"]:
            for r in sl["logRecords"]:
                c[r.get("eventName", "")] += 1
print(c["db.server.query_sample"], c["db.server.blocking"])
PY
}
sleep 15
read -r ms0 calls0 <<< "$(role_stats)"
read -r samples0 blocking0 <<< "$(events)"
cpu0=$(cpu)
sleep "$seconds"
read -r ms1 calls1 <<< "$(role_stats)"
read -r samples1 blocking1 <<< "$(events)"
cpu1=$(cpu)
calls=$(echo "$calls1 - $calls0" | bc)
printf 'dbintel=%s activity="%s" sessions=200 blocked=%d seconds=%d\n' "$dbintel" "$activity" "$blocked" "$seconds"
printf 'database time=%.2f ms per second of sampling; %d sample queries, %.2f ms each\n' \
  "$(echo "($ms1 - $ms0) / $seconds" | bc -l)" "$calls" "$(echo "($ms1 - $ms0) / ($calls + ($calls == 0))" | bc -l)"
printf 'events per minute: db.server.query_sample=%.0f db.server.blocking=%.0f\n' \
  "$(echo "($samples1 - $samples0) * 60 / $seconds" | bc -l)" "$(echo "($blocking1 - $blocking0) * 60 / $seconds" | bc -l)"
printf 'cpu=%.2f %% of one core\n' "$(echo "100 * ($cpu1 - $cpu0) / $ticks / $seconds" | bc -l)"
grep -E ' (WARN|ERROR) ' "$work/run.log" | sed -E 's/^[^ ]+ +//' | sort | uniq -c | sort -rn | head -5 || true
