#!/usr/bin/env bash
# Runs one fuzz target, seeded:
#   fuzz/run.sh [SECONDS] [TARGET]   (default 600, parse_check)
# - parse_check: parse + check + format, seeded with every .pipe file;
# - queue_segment: the disk queue's segment decoder, seeded with segments
#   of good records (and one with damage) made by seed_segments.py.
# cargo fuzz needs nightly features; RUSTC_BOOTSTRAP lets the stable
# toolchain on our machines build it. Crashes land in fuzz/artifacts/.
set -euo pipefail
cd "$(dirname "$0")"
seconds=${1:-600}
target=${2:-parse_check}
mkdir -p "corpus/$target"
case "$target" in
  parse_check)
    find .. -name '*.pipe' -not -path '*/target/*' -not -path './corpus/*' -exec cp {} corpus/parse_check/ \;
    RUSTC_BOOTSTRAP=1 cargo fuzz run parse_check corpus/parse_check -- \
      -dict=pipe.dict -max_total_time="$seconds" -max_len=4096 -timeout=10 -rss_limit_mb=2048
    ;;
  queue_segment)
    python3 seed_segments.py corpus/queue_segment
    RUSTC_BOOTSTRAP=1 cargo fuzz run queue_segment corpus/queue_segment -- \
      -dict=segment.dict -max_total_time="$seconds" -max_len=65536 -timeout=10 -rss_limit_mb=2048
    ;;
  *) echo "unknown target $target" >&2; exit 2 ;;
esac
