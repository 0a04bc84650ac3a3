#!/usr/bin/env bash
# Fuzz parse + check + format, seeded with every .pipe file in the repo.
#   fuzz/run.sh [SECONDS]   (default 600)
# cargo fuzz needs nightly features; RUSTC_BOOTSTRAP lets the stable
# toolchain on our machines build it. Crashes land in fuzz/artifacts/.
set -euo pipefail
cd "$(dirname "$0")"
seconds=${1:-600}
mkdir -p corpus/parse_check
find .. -name '*.pipe' -not -path '*/target/*' -not -path './corpus/*' -exec cp {} corpus/parse_check/ \;
RUSTC_BOOTSTRAP=1 cargo fuzz run parse_check corpus/parse_check -- \
  -dict=pipe.dict -max_total_time="$seconds" -max_len=4096 -timeout=10 -rss_limit_mb=2048
