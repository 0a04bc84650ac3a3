#!/usr/bin/env bash
# Issue 7's benchmarks: sampler decisions per second (local state, and
# Redis state against a private redis-server on loopback), and plan
# attribute extraction / obfuscation time per plan. Release build.
#   benches/sampler_plans.sh
set -euo pipefail
cd "$(dirname "$0")/.."
port=$(python3 -c "import socket; s=socket.socket(); s.bind(('127.0.0.1',0)); print(s.getsockname()[1])")
redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly no > /dev/null &
pid=$!
trap 'kill $pid 2>/dev/null || true' EXIT
sleep 0.5
cargo run --release -q -p dbintel --example bench_sampler_plans -- "redis://127.0.0.1:$port"
