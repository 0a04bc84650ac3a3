#!/usr/bin/env bash
# Debian packages the build needs besides Rust, installed when missing
# (idempotent, safe before every run): libclang, for bindgen, which builds
# pg_query — PostgreSQL's own scanner, the independent oracle of the SQL
# normalizer's tests (a dev-dependency of stdlib, so `cargo clippy
# --all-targets` and the test suite both build it).
set -euo pipefail
missing=()
dpkg -s libclang-dev > /dev/null 2>&1 || missing+=(libclang-dev)
if ((${#missing[@]})); then
  sudo=()
  [[ $(id -u) -eq 0 ]] || sudo=(sudo)
  "${sudo[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq "${missing[@]}" > /dev/null
fi
