#!/usr/bin/env bash
# Issue 23's APM correlation functions: time per statement of
# db.query.text.normalized.hash (New Relic's normalizer + MD5), the comment
# tags and the traceparent parser, over benches/gen_queries.py's rows
# (NormalizeSQL timed alongside for scale). Release build, one thread.
#   benches/apm_hash.sh [ROWS]
set -euo pipefail
cd "$(dirname "$0")/.."
rows=${1:-200000}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
python3 benches/gen_queries.py "$rows" > "$work/rows.ndjson"
cargo run --release -q -p dbintel-stdlib --example bench_apm -- "$work/rows.ndjson"
