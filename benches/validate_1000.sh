#!/usr/bin/env bash
# Whole-process time of `dbintel validate` on a generated file with 1,000
# transform statements (issue 2's target: < 50 ms).
#   benches/validate_1000.sh
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q -p dbintel
out=$(mktemp -d)
file="$out/thousand.pipe"
{
  echo 'source pg = postgres {'
  echo '  dsn = env("PG_DSN")'
  echo '  collect statements'
  echo '}'
  echo 'transform big {'
  for i in $(seq 1 1000); do
    case $((i % 5)) in
      0) echo "  set(attributes[\"k$i\"], NormalizeSQL(attributes[\"db.query.text\"])) where attributes[\"db.user\"] != \"u$i\"" ;;
      1) echo "  replace_pattern(attributes[\"db.query.text\"], r\"(?i)secret_$i\\s*=\\s*'[^']*'\", \"secret_$i=?\")" ;;
      2) echo "  delete_key(attributes, \"tmp.$i\") where Len(attributes[\"db.query.text\"]) > $i and not IsMatch(attributes[\"x\"], \"^a$i\")" ;;
      3) echo "  set(attributes[\"h$i\"], SHA256(Concat([attributes[\"a\"], \"$i\"], \"-\")))" ;;
      4) echo "  replace_all_patterns(attributes, \"value\", \"tok_$i[a-z0-9]{16}\", \"[TOKEN]\")" ;;
    esac
  done
  echo '}'
  echo 'sink out = stdout {}'
  echo 'pipeline p = pg.statements -> big -> out'
} > "$file"
PG_DSN=x ./target/release/dbintel validate --deny-warnings "$file"
PG_DSN=x hyperfine --warmup 3 --runs 30 -N "./target/release/dbintel validate $file"
rm -rf "$out"
