#!/usr/bin/env bash
# Database time per scrape of the full PostgreSQL catalogue (dbintel's
# `instance` + `tables` collectors: every contrib receiver metric), side
# by side with Debian's prometheus-postgres-exporter (its default
# collectors) on the same server and database: 200 tables, 400 indexes.
#
# Each tool connects as its own role (pg_monitor), so pg_stat_statements
# tells their time apart; the two roles' entries are reset before each
# run (only theirs). Time = Σ total_exec_time of the role's statements /
# scrapes, so connection set-up and client work are not counted — the
# server's work is.
#
#   benches/pg_catalogue.sh [scrapes]        (default 20)
#
# dbintel runs twice: every part each scrape (`dry-run --interval 1s`,
# the worst case), and at the shipped cadences scaled down (`run` with a
# 1 s interval, database sizes and `tables` every 10 s, as 30 s / 5 min).
#
# Needs the shared PostgreSQL 15 on 127.0.0.1:5432 (trust for postgres),
# and `apt-get install prometheus-postgres-exporter`.
set -euo pipefail
cd "$(dirname "$0")/.."
SCRAPES=${1:-20}
PORT=5432
DB=catalogue2_bench
PG() { psql -X -q -At -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PORT" -U postgres "$@"; }

command -v prometheus-postgres-exporter > /dev/null || { echo "apt-get install prometheus-postgres-exporter" >&2; exit 1; }
# the database's time does not depend on how the client was built: the
# debug build will do (DBINTEL=target/release/dbintel for another)
DBINTEL=${DBINTEL:-target/debug/dbintel}
[ -n "${DBINTEL_SKIP_BUILD:-}" ] || cargo build -q -p dbintel

# --- the scene ------------------------------------------------------------
if [ "$(PG -d postgres -c "SELECT count(*) FROM pg_database WHERE datname = '$DB'")" = 0 ]; then
  PG -d postgres -c "CREATE DATABASE $DB"
fi
PG -d postgres <<'SQL'
DO $$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'catalogue2_bench_dbintel') THEN
    CREATE ROLE catalogue2_bench_dbintel LOGIN PASSWORD 'bench-dbintel-pw';
  END IF;
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'catalogue2_bench_exporter') THEN
    CREATE ROLE catalogue2_bench_exporter LOGIN PASSWORD 'bench-exporter-pw';
  END IF;
END $$;
GRANT pg_monitor TO catalogue2_bench_dbintel, catalogue2_bench_exporter;
SQL
PG -d "$DB" -c "CREATE EXTENSION IF NOT EXISTS pg_stat_statements"
if [ "$(PG -d "$DB" -c "SELECT count(*) FROM pg_stat_user_tables")" != 200 ]; then
  PG -d "$DB" <<'SQL'
DO $$ BEGIN
  FOR i IN 1..200 LOOP
    EXECUTE format('CREATE TABLE IF NOT EXISTS bench_t%s (id int PRIMARY KEY, k int, v text)', i);
    EXECUTE format('CREATE INDEX IF NOT EXISTS bench_t%s_k ON bench_t%s (k)', i, i);
    EXECUTE format('INSERT INTO bench_t%s SELECT g, g %% 10, md5(g::text) FROM generate_series(1, 100) g ON CONFLICT DO NOTHING', i);
  END LOOP;
END $$;
ANALYZE;
SQL
fi
echo "scene: $(PG -d "$DB" -c "SELECT count(*) FROM pg_stat_user_tables") tables, $(PG -d "$DB" -c "SELECT count(*) FROM pg_stat_user_indexes") indexes in $DB"

reset() { PG -d "$DB" -c "SELECT pg_stat_statements_reset(r.oid) FROM pg_roles r WHERE r.rolname = '$1'" > /dev/null; }
# Σ total time (ms) and calls of the role's statements
measure() {
  PG -d "$DB" -F ' ' -c "SELECT round(sum(s.total_exec_time)::numeric, 3), sum(s.calls), count(*)
                            FROM pg_stat_statements s JOIN pg_roles r ON r.oid = s.userid WHERE r.rolname = '$1'"
}

# the catalogue collectors; $1: the source's interval line, $2 and $3:
# the settings of `collect instance` and `collect tables` (beyond databases)
catalogue_pipe() {
  cat <<EOF
source pg = postgres {
  dsn = env("BENCH_PG_DSN")
  $1
  collect instance { $2 }
  collect tables { databases = ["$DB"]$3 }
}
sink out = file { path = "/dev/null" }
pipeline i = pg.instance -> out
pipeline t = pg.tables -> out
EOF
}
export BENCH_PG_DSN="postgres://catalogue2_bench_dbintel:bench-dbintel-pw@127.0.0.1:$PORT/$DB"
pipe=$(mktemp --suffix=.pipe)

# --- dbintel: every part each scrape (--interval also sets sizes_every) -----
catalogue_pipe "" "" "" > "$pipe"
reset catalogue2_bench_dbintel
"$DBINTEL" dry-run "$pipe" --scrapes "$SCRAPES" --interval 1s > /dev/null 2> /tmp/catalogue2_bench_dbintel.log
read -r dbintel_ms dbintel_calls dbintel_statements < <(measure catalogue2_bench_dbintel)
points=$("$DBINTEL" dry-run "$pipe" --scrapes 1 --output table 2>/dev/null | grep -c ' postgresql\.' || true)

# --- dbintel at the shipped cadences, scaled down: shipped, instance runs
# every scrape and database sizes and `tables` every 5 min (every 10th
# scrape at 30 s); here a 1 s scrape with both every 10 s, for SCRAPES s ---
catalogue_pipe "interval = 1s" "sizes_every = 10s" ", interval = 10s" > "$pipe"
reset catalogue2_bench_dbintel
"$DBINTEL" run --no-watch --listen 127.0.0.1:0 "$pipe" > /dev/null 2> /tmp/catalogue2_bench_dbintel_run.log &
run=$!
sleep "$SCRAPES"
kill -TERM $run 2> /dev/null || true
wait $run 2> /dev/null || true
read -r cadence_ms cadence_calls cadence_statements < <(measure catalogue2_bench_dbintel)
rm -f "$pipe"

# --- prometheus-postgres-exporter: its defaults, then with the per-table
# queries of its shipped examples/queries.yaml (pg_stat_user_tables and
# pg_statio_user_tables, copied out of the installed file as they are) ---
examples=/usr/share/doc/prometheus-postgres-exporter/examples/queries.yaml
tables_yaml=$(mktemp --suffix=.yaml)
awk '/^[a-z_]+:$/ { keep = ($1 == "pg_stat_user_tables:" || $1 == "pg_statio_user_tables:") } keep' "$examples" > "$tables_yaml"
exporter_run() { # extra args...
  reset catalogue2_bench_exporter
  local listen=127.0.0.1:$((20000 + RANDOM % 20000))
  DATA_SOURCE_NAME="postgresql://catalogue2_bench_exporter:bench-exporter-pw@127.0.0.1:$PORT/$DB?sslmode=disable" \
    prometheus-postgres-exporter --web.listen-address="$listen" "$@" > /tmp/catalogue2_bench_exporter.log 2>&1 &
  local exporter=$!
  for _ in $(seq 1 50); do curl -sf "http://$listen/metrics" > /dev/null 2>&1 && break; sleep 0.2; done
  reset catalogue2_bench_exporter
  for _ in $(seq 1 "$SCRAPES"); do curl -sf "http://$listen/metrics" > /tmp/catalogue2_bench_exporter.prom; sleep 1; done
  kill $exporter 2> /dev/null || true
  wait $exporter 2> /dev/null || true
  read -r exporter_ms exporter_calls exporter_statements < <(measure catalogue2_bench_exporter)
  series=$(grep -vc '^#' /tmp/catalogue2_bench_exporter.prom || true)
}

per() { awk -v a="$1" -v n="$SCRAPES" 'BEGIN { printf "%.2f", a / n }'; }
version=$(prometheus-postgres-exporter --version 2>&1 | head -1 | awk '{print $3}')
echo
echo "| tool | scrapes | database time per scrape | statements per scrape | distinct statements | series per scrape |"
echo "| --- | --- | --- | --- | --- | --- |"
echo "| dbintel instance + tables | $SCRAPES | $(per "$dbintel_ms") ms | $(per "$dbintel_calls") | $dbintel_statements | $points |"
echo "| dbintel, shipped cadence (sizes and tables every 10th scrape) | $SCRAPES | $(per "$cadence_ms") ms | $(per "$cadence_calls") | $cadence_statements | $points on every 10th, fewer between |"
exporter_run
echo "| prometheus-postgres-exporter $version, defaults | $SCRAPES | $(per "$exporter_ms") ms | $(per "$exporter_calls") | $exporter_statements | $series |"
exporter_run --extend.query-path="$tables_yaml"
echo "| prometheus-postgres-exporter $version, + per-table queries | $SCRAPES | $(per "$exporter_ms") ms | $(per "$exporter_calls") | $exporter_statements | $series |"
rm -f "$tables_yaml"
