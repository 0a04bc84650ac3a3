#!/usr/bin/env bash
# What a round of doctor's checks costs: the whole `dbintel doctor`
# process (connect, every check, close), and the server's own time for
# one round of checks, against the shared PostgreSQL 15 and MariaDB with
# every collector of the shipped pipelines switched on (plans too).
#
# The server's time: doctor connects as its own role (pg_monitor), so
# pg_stat_statements tells its statements apart (the role's entries are
# reset first, only theirs): Σ total_exec_time and Σ calls / rounds.
# That is also what `run` spends on each target every `checks_every`.
#
#   benches/doctor.sh [rounds]        (default 20)
#
# Needs the shared servers (tests/prepare-servers.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${1:-20}
PG() { psql -X -q -At -v ON_ERROR_STOP=1 -h 127.0.0.1 -p 5432 -U postgres "$@"; }
DBINTEL=${DBINTEL:-target/debug/dbintel}
[ -n "${DBINTEL_SKIP_BUILD:-}" ] || cargo build -q -p dbintel

PG -d postgres <<'SQL'
DO $$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'doctor_bench') THEN
    CREATE ROLE doctor_bench LOGIN;
  END IF;
END $$;
GRANT pg_monitor TO doctor_bench;
SQL
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
cat > "$dir/pg.pipe" <<'PIPE'
source pg = postgres {
  dsn = env("PG_DSN")
  collect statements
  collect activity
  collect instance
  collect tables
  collect plans
}
sink out = stdout {}
pipeline s = pg.statements -> out
pipeline a = pg.activity -> out
pipeline i = pg.instance -> out
pipeline t = pg.tables -> out
pipeline p = pg.plans -> out
PIPE
sed -e 's/postgres {/mysql {/' -e 's/pg\./my./g' -e 's/source pg/source my/' -e 's/PG_DSN/MYSQL_DSN/' "$dir/pg.pipe" > "$dir/my.pipe"

# wall time of whole processes, in ms: mean, min, max
wall() {
  local times=()
  for _ in $(seq 1 "$ROUNDS"); do
    local start end
    start=$(date +%s%N)
    "$@" > /dev/null || [ $? -le 4 ]
    end=$(date +%s%N)
    times+=($(((end - start) / 1000000)))
  done
  printf '%s\n' "${times[@]}" | awk '{ s += $1; if (min == "" || $1 < min) min = $1; if ($1 > max) max = $1 }
    END { printf "%.0f ms mean, %d–%d ms\n", s / NR, min, max }'
}

PG -d dbintel_test -c "SELECT pg_stat_statements_reset((SELECT oid FROM pg_roles WHERE rolname = 'doctor_bench'))" > /dev/null
echo "PostgreSQL 15, $ROUNDS runs of dbintel doctor: $(PG_DSN=postgres://doctor_bench@127.0.0.1:5432/dbintel_test wall "$DBINTEL" doctor "$dir/pg.pipe")"
PG -d dbintel_test -c "SELECT round((sum(total_exec_time) / $ROUNDS)::numeric, 2) || ' ms of server time and ' || round(sum(calls)::numeric / $ROUNDS, 1) || ' statements per round'
  FROM pg_stat_statements WHERE userid = (SELECT oid FROM pg_roles WHERE rolname = 'doctor_bench')"
sed 's/^  collect statements$/  sslmode = disable\n  collect statements/' "$dir/pg.pipe" > "$dir/pg-plain.pipe"
echo "PostgreSQL 15 without TLS (sslmode = disable): $(PG_DSN=postgres://doctor_bench@127.0.0.1:5432/dbintel_test wall "$DBINTEL" doctor "$dir/pg-plain.pipe")"
echo "MariaDB 10.11, $ROUNDS runs of dbintel doctor: $(MYSQL_DSN=mysql://dbintel_monitor:monitor-secret-pw@127.0.0.1:3306/performance_schema wall "$DBINTEL" doctor "$dir/my.pipe")"
