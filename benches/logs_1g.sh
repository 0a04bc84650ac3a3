#!/usr/bin/env bash
# Issue 24's benchmark: a 1 GB PostgreSQL jsonlog file (benches/gen_jsonlog.py,
# seeded) through `postgres_logs` — every collector — the shipped sanitize
# rules and OTLP/JSON export (dry-run's stdout, to /dev/null), on ONE core
# (taskset), beside the hand-written floor (benches/logs_floor: read,
# serde_json, the shipped sanitize rules through dbintel's transform, JSON
# lines out; and with --functions, the sanitizer functions called directly,
# no rule engine) in the same hyperfine run. Reports lines/s (from the mean
# wall time and from CPU time), the ratio to each floor, and peak RSS.
#   benches/logs_1g.sh [BYTES] [RUNS]
set -euo pipefail
cd "$(dirname "$0")/.."
bytes=${1:-1073741824}
runs=${2:-3}
core=${BENCH_CORE:-0}
cargo build --release -q -p dbintel
cargo build --release -q --manifest-path benches/logs_floor/Cargo.toml --target-dir target
work=${BENCH_WORK:-$(mktemp -d)}
mkdir -p "$work"
input=$work/postgresql-$bytes.json
[[ -s $input ]] || python3 benches/gen_jsonlog.py "$bytes" > "$input" 2> "$work/lines"
lines=$(wc -l < "$input")
echo "input: $lines lines, $(du -h "$input" | cut -f1) ($input)"

export BENCH_PG_DSN=postgres://bench@db.internal:5432/shop   # names the server; nothing connects
inputs=""
for c in plans errors locks temp_files autovacuum checkpoints connections; do inputs="$inputs --input pg_logs.$c=$input"; done
dbintel="taskset -c $core ./target/release/dbintel dry-run benches/logs.pipe$inputs"
floor="taskset -c $core target/release/logs-floor $input"
functions="taskset -c $core target/release/logs-floor --functions $input"

hyperfine -N --warmup 1 --runs "$runs" --output null --export-json "$work/times.json" \
  -n dbintel "$dbintel" -n "floor (sanitize_pii)" "$floor" -n "floor (functions)" "$functions" > /dev/null
# CPU time and peak RSS of one run each
measure() { /usr/bin/time -f "%U %S %M" -o "$work/rusage" "$@" > /dev/null 2>&1; cat "$work/rusage"; }
python3 - "$work/times.json" "$lines" "$(measure $dbintel)" "$(measure $floor)" "$(measure $functions)" <<'PY'
import json, sys
results = json.load(open(sys.argv[1]))["results"]
lines = int(sys.argv[2])
usage = [tuple(float(x) for x in u.split()) for u in sys.argv[3:6]]
cpu = [u[0] + u[1] for u in usage]
print(f"{'':22} {'mean s':>8} {'min s':>8} {'lines/s (mean)':>15} {'CPU s':>7} {'lines/s (CPU)':>14} {'peak RSS':>10}")
for r, c, u in zip(results, cpu, usage):
    print(f"{r['command']:22} {r['mean']:8.2f} {r['min']:8.2f} {lines / r['mean']:15,.0f} {c:7.2f} {lines / c:14,.0f} {u[2] / 1024:8.1f} MiB")
for i, name in [(1, "floor (sanitize_pii)"), (2, "floor (functions)")]:
    print(f"dbintel / {name}: {results[0]['mean'] / results[i]['mean']:.2f}x wall (mean), {cpu[0] / cpu[i]:.2f}x CPU")
PY
