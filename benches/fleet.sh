#!/usr/bin/env bash
# One process, many targets: `dbintel run` scraping N databases of a
# private PostgreSQL (one target per database, from a targets file) every
# 30 s, with the shipped postgres collectors. Measures, over CYCLES scrape
# cycles after a warm-up cycle: RSS (now and peak), CPU per cycle, the
# sessions dbintel holds, and the database time its statements took
# (pg_stat_statements, its role only).
#
#   benches/fleet.sh [N=100] [CYCLES=6] [COLLECTORS="statements instance tables"]
#   EVERY_CYCLE=1 benches/fleet.sh 200   # tables and sizes every cycle too
#   BLOCKS=1 INTERVAL=10 benches/fleet.sh 100 6 "statements activity instance tables"
#       # the same databases as N `source` blocks (one per database, a
#       # generated config) instead of one source with a targets file
#
# Also printed: records the sources emitted per cycle, WARN/ERROR log
# lines per minute (and their distinct causes), and the monitoring role's
# five dearest statements over the whole run.
#
# Shipped, `tables` runs every 5 min and database sizes are read every
# 5 min, so a 30 s cycle mostly leaves them out; EVERY_CYCLE=1 makes both
# run every cycle (the worst case).
#
# The cluster is the machine's PostgreSQL 15 binaries in a temporary
# directory (max_connections 600), on a free port; it is removed at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-100}
cycles=${2:-6}
collectors=${3:-statements instance tables}
interval=${INTERVAL:-30}
bin=/usr/lib/postgresql/15/bin
cargo build --release -q -p dbintel
dbintel=$PWD/target/release/dbintel

work=$(mktemp -d /tmp/dbintel-fleet.XXXXXX)
chown postgres "$work"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cleanup() {
  [[ -n ${run_pid:-} ]] && kill "$run_pid" 2> /dev/null || true
  su postgres -c "$bin/pg_ctl -D $work/data -m immediate stop" > /dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
su postgres -c "$bin/initdb -D $work/data -A trust -U postgres" > /dev/null
cat >> "$work/data/postgresql.conf" << EOF
port = $port
listen_addresses = '127.0.0.1'
unix_socket_directories = '$work'
max_connections = 600
shared_preload_libraries = 'pg_stat_statements'
pg_stat_statements.track = all
EOF
su postgres -c "$bin/pg_ctl -D $work/data -l $work/log -w start" > /dev/null
psql() { command psql -X -q -At -h 127.0.0.1 -p "$port" -U postgres "$@"; }
psql -d postgres -c "CREATE EXTENSION pg_stat_statements; CREATE ROLE dbintel_monitor LOGIN; GRANT pg_monitor TO dbintel_monitor"
# every database gets the extension (the server-wide collectors read it
# through the first target's database)
psql -d template1 -c "CREATE EXTENSION pg_stat_statements"
for i in $(seq -f %03g 0 $((n - 1))); do echo "CREATE DATABASE fleet_$i;"; done | psql -d postgres
: > "$work/targets.yaml"
for i in $(seq -f %03g 0 $((n - 1))); do
  printf -- '- name: db%s\n  host: 127.0.0.1\n  port: %s\n  database: fleet_%s\n  user: dbintel_monitor\n' "$i" "$port" "$i" >> "$work/targets.yaml"
done
collect_lines() {
  for c in $collectors; do
    case "${EVERY_CYCLE:-}:$c" in
      1:tables) echo "  collect tables { interval = ${interval}s }" ;;
      1:instance) echo "  collect instance { sizes_every = ${interval}s }" ;;
      *) echo "  collect $c" ;;
    esac
  done
}
if [[ -n ${BLOCKS:-} ]]; then
  # one source block per database, each with its own DSN variable
  {
    for i in $(seq -f %03g 0 $((n - 1))); do
      echo "source db$i = postgres {"
      echo "  dsn = env(\"DSN_$i\")"
      echo "  interval = ${interval}s"
      collect_lines
      echo "}"
      export "DSN_$i=postgres://dbintel_monitor@127.0.0.1:$port/fleet_$i?sslmode=disable"
    done
    echo "sink out = file { path = \"/dev/null\" }"
    for i in $(seq -f %03g 0 $((n - 1))); do
      for c in $collectors; do echo "pipeline p_${i}_$c = db$i.$c -> out"; done
    done
  } > "$work/fleet.pipe"
else
  {
    echo "source fleet = postgres {"
    echo "  targets = file(\"$work/targets.yaml\")"
    echo "  interval = ${interval}s"
    collect_lines
    echo "}"
    echo "sink out = file { path = \"/dev/null\" }"
    for c in $collectors; do echo "pipeline p_$c = fleet.$c -> out"; done
  } > "$work/fleet.pipe"
fi

listen=127.0.0.1:$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$dbintel" run --listen "$listen" --no-watch "$work/fleet.pipe" 2> "$work/run.log" &
run_pid=$!
# records every source emitted so far (from /metrics)
records() { curl -s "http://$listen/metrics" | awk '/^dbintel_node_emitted_records_total\{.*kind="source"/ { s += $2 } END { printf "%d", s }'; }
log_lines() { grep -cE 'WARN|ERROR' "$work/run.log" || true; }
ticks=$(getconf CLK_TCK)
cpu() { awk '{ print $14 + $15 }' "/proc/$run_pid/stat"; }
db_ms() { psql -d postgres -c "SELECT coalesce(sum(total_exec_time), 0) FROM pg_stat_statements s JOIN pg_roles r ON r.oid = s.userid WHERE r.rolname = 'dbintel_monitor'"; }
# warm-up: connect everything, first scrape (baselines)
sleep $((interval + 5))
cpu0=$(cpu)
ms0=$(db_ms)
rec0=$(records)
warn0=$(log_lines)
sleep $((interval * cycles))
cpu1=$(cpu)
ms1=$(db_ms)
rec1=$(records)
warn1=$(log_lines)
rss_kib=$(awk '/VmRSS/ { print $2 }' "/proc/$run_pid/status")
hwm_kib=$(awk '/VmHWM/ { print $2 }' "/proc/$run_pid/status")
sessions=$(psql -d postgres -c "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'dbintel'")
up=$(grep -c 'to="up"' "$work/run.log" || true)
cpu_s=$(echo "($cpu1 - $cpu0) / $ticks" | bc -l)
printf 'targets=%d as=%s interval=%ds cycles=%d collectors="%s" every_cycle=%s targets_up=%d\n' "$n" "${BLOCKS:+source-blocks}${BLOCKS:-targets-file}" "$interval" "$cycles" "$collectors" "${EVERY_CYCLE:-0}" "$up"
printf 'records=%d per cycle; WARN/ERROR lines=%.1f per minute\n' "$(((rec1 - rec0) / cycles))" "$(echo "($warn1 - $warn0) * 60 / ($interval * $cycles)" | bc -l)"
printf 'rss=%.1f MiB peak=%.1f MiB\n' "$(echo "$rss_kib / 1024" | bc -l)" "$(echo "$hwm_kib / 1024" | bc -l)"
printf 'cpu=%.3f s per %ds cycle (%.2f %% of one core)\n' "$(echo "$cpu_s / $cycles" | bc -l)" "$interval" "$(echo "100 * $cpu_s / ($cycles * $interval)" | bc -l)"
printf 'sessions=%d (%.2f per target)\n' "$sessions" "$(echo "$sessions / $n" | bc -l)"
printf 'database time=%.1f ms per cycle (statements of dbintel_monitor)\n' "$(echo "($ms1 - $ms0) / $cycles" | bc -l)"
# the distinct causes of WARN/ERROR lines, most frequent first
grep -E ' (WARN|ERROR) ' "$work/run.log" | sed -E 's/^[^ ]+ +//; s/ (source|target|collector)=[^ ]+//g' | sort | uniq -c | sort -rn | head -8 || true
# where the database time went (the whole run): the role's five dearest statements
echo "dearest statements of dbintel_monitor (whole run):"
psql -d postgres -c "SELECT round(sum(total_exec_time)::numeric, 1) || ' ms, ' || sum(calls) || ' calls: ' || left(regexp_replace(query, '\s+', ' ', 'g'), 100)
                       FROM pg_stat_statements s JOIN pg_roles r ON r.oid = s.userid WHERE r.rolname = 'dbintel_monitor'
                      GROUP BY query ORDER BY sum(total_exec_time) DESC LIMIT 5" | sed 's/^/  /'
