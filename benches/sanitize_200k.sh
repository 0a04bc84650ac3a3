#!/usr/bin/env bash
# Issue 3's benchmark: the eight sanitize rules over 200,000 NDJSON rows,
# whole process, file to OTLP/JSON on /dev/null; against the plain Rust
# floor (serde_json + regex, same rules, same file); plus the shipped
# default sanitize rules. Reports records/s and peak RSS.
#   benches/sanitize_200k.sh [ROWS]
set -euo pipefail
cd "$(dirname "$0")/.."
rows=${1:-200000}
cargo build --release -q -p dbintel
cargo build --release -q --manifest-path benches/floor/Cargo.toml --target-dir target
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
python3 benches/gen_queries.py "$rows" > "$work/rows.ndjson"
echo "input: $rows rows, $(du -h "$work/rows.ndjson" | cut -f1)"

floor="target/release/sanitize-floor $work/rows.ndjson"
eight="./target/release/dbintel dry-run benches/eight_rules.pipe --input rows.q=$work/rows.ndjson"
default="./target/release/dbintel dry-run benches/default_sanitize.pipe --input rows.q=$work/rows.ndjson"

# time: hyperfine, interleaved warm runs, output to /dev/null
hyperfine -N --warmup 2 --runs 15 --output null --export-json "$work/times.json" \
  -n floor "$floor" -n "eight rules" "$eight" -n "default sanitize" "$default" > /dev/null
# memory: peak RSS of one run each
rss() { /usr/bin/time -f "%M" -o "$work/rss" "$@" > /dev/null 2>&1; cat "$work/rss"; }
python3 - "$work/times.json" "$rows" "$(rss $floor)" "$(rss $eight)" "$(rss $default)" <<'PY'
import json, sys
results = json.load(open(sys.argv[1]))["results"]
rows = int(sys.argv[2]); rss = [int(x) / 1024 for x in sys.argv[3:6]]
floor = results[0]["mean"]
print(f"{'':20} {'mean s':>8} {'min s':>8} {'records/s (mean)':>17} {'vs floor':>9} {'peak RSS':>10}")
for r, m in zip(results, rss):
    print(f"{r['command']:20} {r['mean']:8.3f} {r['min']:8.3f} {rows / r['mean']:17,.0f} {floor / r['mean']:8.2f}x {m:8.1f} MiB")
PY
