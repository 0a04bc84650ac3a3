#!/usr/bin/env bash
# Fuzz a target, seeded from the repo.
#   fuzz/run.sh [SECONDS] [TARGET]   (default 600, parse_check)
# - parse_check: parse + check + format, seeded with every .pipe file;
# - normalize_sql: NormalizeSQL / RedactPII / EXPLAIN decision / error
#   scrubber against the oracle lexers, seeded with fuzz/sql_seeds/;
# - queue_segment: the disk queue's segment decoder, seeded with segments
#   of good records (and one with damage) made by seed_segments.py.
# - apm_hash: New Relic's query normalizer and hash, seeded with
#   fuzz/sql_seeds/ (their first byte is read as text too);
# - comment_tags: the comment-tag extractor, seeded with
#   fuzz/comment_tags_seeds/.
# cargo fuzz needs nightly features; RUSTC_BOOTSTRAP lets the stable
# toolchain on our machines build it. One fork, which goes on after a crash
# (-ignore_crashes): every crash lands in fuzz/artifacts/.
set -euo pipefail
cd "$(dirname "$0")"
seconds=${1:-600}
target=${2:-parse_check}
mkdir -p "corpus/$target"
case "$target" in
  parse_check)
    find .. -name '*.pipe' -not -path '*/target/*' -not -path './corpus/*' -exec cp {} corpus/parse_check/ \;
    dict=pipe.dict; max_len=4096 ;;
  normalize_sql)
    cp sql_seeds/* regressions/normalize_sql/* corpus/normalize_sql/
    dict=sql.dict; max_len=4096 ;;
  apm_hash)
    cp sql_seeds/* regressions/normalize_sql/* corpus/apm_hash/
    dict=sql.dict; max_len=4096 ;;
  comment_tags)
    cp comment_tags_seeds/* regressions/comment_tags/* corpus/comment_tags/
    dict=comment_tags.dict; max_len=4096 ;;
  queue_segment)
    python3 seed_segments.py corpus/queue_segment
    dict=segment.dict; max_len=65536 ;;
  *) echo "unknown target $target" >&2; exit 2 ;;
esac
RUSTC_BOOTSTRAP=1 cargo fuzz run "$target" "corpus/$target" -- \
  -dict="$dict" -max_total_time="$seconds" -max_len="$max_len" -timeout=10 -rss_limit_mb=2048 -fork=1 -ignore_crashes=1
