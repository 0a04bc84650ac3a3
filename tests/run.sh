#!/usr/bin/env bash
# The full test suite: the README's test command, and what CI runs.
# Prepares the local PostgreSQL and MariaDB first (idempotent) and fails if
# either cannot be brought up.
#   tests/run.sh
set -euo pipefail
cd "$(dirname "$0")/.."
tests/prepare-servers.sh
cargo test --workspace --locked
