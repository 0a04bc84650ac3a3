#!/usr/bin/env bash
# Issue 4's benchmark: with ~5,000 distinct statements in pg_stat_statements,
# what does a scrape cost? Collector CPU per scrape and peak RSS (whole
# process), and the database time our own queries take per scrape and per
# ASH sample, read on the server side from pg_stat_statements.
#   benches/statements_5000.sh [SCRAPES]
set -euo pipefail
cd "$(dirname "$0")/.."
scrapes=${1:-10}
tests/prepare-servers.sh > /dev/null
cargo build --release -q -p dbintel
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
pg() { PGOPTIONS="-c client_min_messages=warning" psql -X -q -At -h 127.0.0.1 -U postgres -d dbintel_test "$@"; }

# 5,000 statements pg_stat_statements tells apart: columns × conditions
python3 - > "$work/load.sql" <<'PY'
for cols in range(1, 51):
    for conds in range(1, 101):
        select = ", ".join(f"{c} AS c{c}" for c in range(cols))
        where = " AND ".join(["x = 1"] * conds)
        print(f"SELECT {select} FROM (SELECT 1 AS x) s WHERE {where};")
PY
pg -f "$work/load.sql" > /dev/null
echo "pg_stat_statements entries: $(pg -c 'SELECT count(*) FROM pg_stat_statements')"

cat > "$work/bench.pipe" <<'PIPE'
source pg = postgres {
  dsn = env("BENCH_PG_DSN")
  timeout = 5s
  collect statements { top = 200 }
  collect activity { every = 1s }
}
sink out = stdout {}
pipeline s = pg.statements -> out
pipeline a = pg.activity -> out
PIPE

ours() { # total exec ms and calls of the monitoring role's own statements
  pg -c "SELECT coalesce(sum(total_exec_time), 0) || ' ' || coalesce(sum(calls), 0) FROM pg_stat_statements s JOIN pg_roles r ON r.oid = s.userid WHERE r.rolname = 'dbintel_monitor' AND query $1"
}
read -r stm_ms0 _ <<< "$(ours "NOT LIKE '%pg_stat_activity%'")"
read -r ash_ms0 ash_calls0 <<< "$(ours "LIKE '%FROM pg_stat_activity a%'")"
export BENCH_PG_DSN="postgres://dbintel_monitor:monitor-secret-pw@127.0.0.1:5432/dbintel_test"
/usr/bin/time -f "%e %U %S %M" -o "$work/time" ./target/release/dbintel dry-run "$work/bench.pipe" --scrapes "$scrapes" --interval 1s > /dev/null 2> "$work/stderr"
read -r stm_ms1 _ <<< "$(ours "NOT LIKE '%pg_stat_activity%'")"
read -r ash_ms1 ash_calls1 <<< "$(ours "LIKE '%FROM pg_stat_activity a%'")"
read -r wall user sys kib < "$work/time"
python3 - "$scrapes" "$wall" "$user" "$sys" "$kib" "$stm_ms0" "$stm_ms1" "$ash_ms0" "$ash_ms1" "$ash_calls0" "$ash_calls1" <<'PY'
import sys
n, wall, user, sys_, kib, s0, s1, a0, a1, c0, c1 = sys.argv[1:]
n = int(n)
samples = max(int(float(c1)) - int(float(c0)), 1)
print(f"scrapes: {n} (1 s apart), ASH samples: {samples}")
print(f"process: {float(wall):.2f} s wall, {(float(user) + float(sys_)) * 1000 / n:.1f} ms CPU per scrape (incl. startup and ASH), peak RSS {int(kib) / 1024:.1f} MiB")
print(f"database time, statements: {(float(s1) - float(s0)) / n:.2f} ms per scrape (target <= 10)")
print(f"database time, ASH: {(float(a1) - float(a0)) / samples:.3f} ms per sample (target <= 2)")
PY
