#!/usr/bin/env bash
# Streaming memory of dry-run: the shipped default sanitize rules
# (benches/default_sanitize.pipe) over generated NDJSON inputs of growing
# size, whole process, OTLP/JSON to /dev/null. Reports each run's peak RSS
# (/usr/bin/time -v, "Maximum resident set size") and wall time, and fails
# when the largest input's peak exceeds the smallest's by more than 25 %
# (memory that grows with the input is not streaming).
#   benches/dry_run_rss.sh [ROWS...]     default: 100000 1000000 4000000
set -euo pipefail
cd "$(dirname "$0")/.."
sizes=("$@")
[ ${#sizes[@]} -gt 0 ] || sizes=(100000 1000000 4000000)
cargo build --release -q -p dbintel
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
printf '%10s %10s %12s %10s %12s\n' rows input "peak RSS" wall records/s
peaks=()
for rows in "${sizes[@]}"; do
  python3 benches/gen_queries.py "$rows" > "$work/rows.ndjson"
  /usr/bin/time -v -o "$work/time" ./target/release/dbintel dry-run benches/default_sanitize.pipe \
    --input "rows.q=$work/rows.ndjson" > /dev/null 2> "$work/stderr" || { cat "$work/stderr" "$work/time"; exit 1; }
  kib=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$work/time")
  wall=$(awk -F': ' '/Elapsed \(wall clock\)/ {print $2}' "$work/time")
  secs=$(python3 -c "import sys; p=sys.argv[1].split(':'); print(sum(float(x)*60**i for i,x in enumerate(reversed(p))))" "$wall")
  printf '%10s %10s %8.1f MiB %9.1fs %12.0f\n' "$rows" "$(du -h "$work/rows.ndjson" | cut -f1)" "$(echo "$kib/1024" | bc -l)" "$secs" "$(echo "$rows/$secs" | bc -l)"
  peaks+=("$kib")
  rm -f "$work/rows.ndjson"
done
first=${peaks[0]}; last=${peaks[${#peaks[@]}-1]}
if [ "$last" -gt $(( first * 125 / 100 )) ]; then
  echo "peak RSS grew from $first KiB to $last KiB with the input: not streaming" >&2
  exit 1
fi
echo "flat: $first KiB → $last KiB"
