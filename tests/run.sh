#!/usr/bin/env bash
# The full test suite: the README's test command, and what CI runs.
#   tests/run.sh
set -euo pipefail
cd "$(dirname "$0")/.."
cargo test --workspace --locked
