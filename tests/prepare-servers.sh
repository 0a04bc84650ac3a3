#!/usr/bin/env bash
# Brings this machine's PostgreSQL 15 and MariaDB to what the end-to-end
# suites need. Idempotent: safe to run before every test run. Exits non-zero
# (and so fails the suite) when a server cannot be started — tests never
# skip for want of a server.
#
# PostgreSQL: pg_stat_statements preloaded and created; role
#   dbintel_monitor (LOGIN, pg_monitor) — the least-privilege user;
#   role dbintel_writer (LOGIN, owns a table) — to prove writers are refused;
#   a second cluster `restarttest` on port 5433 for the restart test.
# MariaDB: performance_schema on with statement and wait consumers; user
#   dbintel_monitor with SELECT ON performance_schema.* and PROCESS;
#   dbintel_writer with INSERT — to prove writers are refused.
set -euo pipefail

PG_VERSION=15
pg() { PGOPTIONS="-c client_min_messages=warning" psql -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -U postgres "$@"; }

wait_for() { # description, command...
  local what=$1; shift
  for _ in $(seq 1 60); do
    if "$@" > /dev/null 2>&1; then return 0; fi
    sleep 0.5
  done
  echo "prepare-servers: $what did not come up" >&2
  return 1
}

# --- PostgreSQL ------------------------------------------------------------
if ! pg_isready -h 127.0.0.1 -q; then
  pg_ctlcluster --skip-systemctl-redirect "$PG_VERSION" main start
fi
wait_for "PostgreSQL" pg_isready -h 127.0.0.1 -q
if [[ "$(pg -d postgres -tAc 'show shared_preload_libraries')" != *pg_stat_statements* ]]; then
  pg -d postgres -c "ALTER SYSTEM SET shared_preload_libraries = 'pg_stat_statements'"
  pg -d postgres -c "ALTER SYSTEM SET track_activity_query_size = 4096"
  pg_ctlcluster --skip-systemctl-redirect "$PG_VERSION" main restart
  wait_for "PostgreSQL after restart" pg_isready -h 127.0.0.1 -q
fi
pg -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname = 'dbintel_test'" | grep -q 1 || pg -d postgres -c "CREATE DATABASE dbintel_test"
for db in postgres dbintel_test; do
  pg -d "$db" -c "CREATE EXTENSION IF NOT EXISTS pg_stat_statements"
done
pg -d postgres <<'SQL'
DO $$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'dbintel_monitor') THEN
    CREATE ROLE dbintel_monitor LOGIN PASSWORD 'monitor-secret-pw';
  END IF;
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'dbintel_writer') THEN
    CREATE ROLE dbintel_writer LOGIN PASSWORD 'writer-secret-pw';
  END IF;
  -- fault tests: a monitoring role allowed one connection at a time, and
  -- one without pg_monitor (its grant is given and taken by the test)
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'dbintel_limited') THEN
    CREATE ROLE dbintel_limited LOGIN PASSWORD 'limited-secret-pw';
  END IF;
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'dbintel_nopriv') THEN
    CREATE ROLE dbintel_nopriv LOGIN PASSWORD 'nopriv-secret-pw';
  END IF;
END $$;
GRANT pg_monitor TO dbintel_monitor;
GRANT pg_monitor TO dbintel_limited;
ALTER ROLE dbintel_limited CONNECTION LIMIT 1;
SQL
pg -d dbintel_test <<'SQL'
CREATE TABLE IF NOT EXISTS writer_owned (id int);
ALTER TABLE writer_owned OWNER TO dbintel_writer;
CREATE TABLE IF NOT EXISTS lock_probe (id int);
GRANT SELECT ON lock_probe TO dbintel_monitor;
GRANT CONNECT ON DATABASE dbintel_test TO dbintel_monitor;
SQL

# A second, small cluster on 5433 that the restart test may restart without
# disturbing the tests using the main one.
if ! pg_lsclusters -h | awk '{print $2}' | grep -qx restarttest; then
  pg_createcluster "$PG_VERSION" restarttest -p 5433 -- --auth-local=trust --auth-host=trust > /dev/null
  pg_conftool "$PG_VERSION" restarttest set shared_preload_libraries pg_stat_statements
fi
if ! pg_isready -h 127.0.0.1 -p 5433 -q; then
  pg_ctlcluster --skip-systemctl-redirect "$PG_VERSION" restarttest start
fi
wait_for "PostgreSQL on 5433" pg_isready -h 127.0.0.1 -p 5433 -q
pg -p 5433 -d postgres <<'SQL'
CREATE EXTENSION IF NOT EXISTS pg_stat_statements;
DO $$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'dbintel_monitor') THEN
    CREATE ROLE dbintel_monitor LOGIN PASSWORD 'monitor-secret-pw';
  END IF;
END $$;
GRANT pg_monitor TO dbintel_monitor;
SQL

# --- MariaDB ---------------------------------------------------------------
# performance_schema can only be turned on at start: restart with it when
# it is off (the machine's my.cnf has no include directory, so the options
# go on the command line).
MARIADB_OPTIONS=(--performance-schema=ON
  --performance-schema-consumer-events-statements-history=ON
  --performance-schema-consumer-events-waits-current=ON
  "--performance-schema-instrument=wait/%=ON")
if mariadb-admin ping > /dev/null 2>&1 && [ "$(mariadb -N -e "SELECT @@performance_schema")" != 1 ]; then
  mariadb-admin shutdown
  for _ in $(seq 1 60); do mariadb-admin ping > /dev/null 2>&1 || break; sleep 0.5; done
fi
if ! mariadb-admin ping > /dev/null 2>&1; then
  start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd -- "${MARIADB_OPTIONS[@]}"
fi
wait_for "MariaDB" mariadb-admin ping
if [ "$(mariadb -N -e "SELECT @@performance_schema")" != 1 ]; then
  echo "prepare-servers: MariaDB performance_schema is still off" >&2
  exit 1
fi
mariadb <<'SQL'
CREATE DATABASE IF NOT EXISTS dbintel_test;
CREATE TABLE IF NOT EXISTS dbintel_test.lock_probe (id INT PRIMARY KEY, v INT) ENGINE=InnoDB;
INSERT IGNORE INTO dbintel_test.lock_probe VALUES (1, 0);
CREATE USER IF NOT EXISTS 'dbintel_monitor'@'%' IDENTIFIED BY 'monitor-secret-pw';
CREATE USER IF NOT EXISTS 'dbintel_monitor'@'localhost' IDENTIFIED BY 'monitor-secret-pw';
GRANT SELECT ON performance_schema.* TO 'dbintel_monitor'@'%';
GRANT SELECT ON performance_schema.* TO 'dbintel_monitor'@'localhost';
GRANT PROCESS ON *.* TO 'dbintel_monitor'@'%';
GRANT PROCESS ON *.* TO 'dbintel_monitor'@'localhost';
CREATE USER IF NOT EXISTS 'dbintel_writer'@'%' IDENTIFIED BY 'writer-secret-pw';
CREATE USER IF NOT EXISTS 'dbintel_writer'@'localhost' IDENTIFIED BY 'writer-secret-pw';
GRANT SELECT, INSERT ON dbintel_test.* TO 'dbintel_writer'@'%';
GRANT SELECT, INSERT ON dbintel_test.* TO 'dbintel_writer'@'localhost';
UPDATE performance_schema.setup_consumers SET ENABLED = 'YES' WHERE NAME IN ('events_statements_current', 'events_statements_history', 'events_waits_current', 'statements_digest');
SQL
echo "prepare-servers: PostgreSQL and MariaDB ready"
