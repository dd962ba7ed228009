#!/usr/bin/env bash
# realtime-gateway's load benchmark: memory per idle connection (50,000 clients) and fan-out
# (10,000 subscribers, 100 channels, 1,000 publications/s) beside a Socket.IO 4 server.
# Installs the Socket.IO server's pinned packages (bench/socketio/package-lock.json) into
# target/bench/socketio when they change, then runs the bench; results go to
# bench/results/realtime-gateway.json. REALTIME_BENCH_QUICK=1 for a short run that writes nothing.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source_dir="$repo/bench/socketio"
install_dir="$repo/target/bench/socketio"

command -v node >/dev/null 2>&1 || { echo "bench-realtime: node (20 or newer) is required" >&2; exit 2; }
command -v npm >/dev/null 2>&1 || { echo "bench-realtime: npm is required" >&2; exit 2; }

stamp="$(cat "$source_dir/package.json" "$source_dir/package-lock.json" | sha256sum | cut -d' ' -f1)"
if [ "$(cat "$install_dir/.stamp" 2>/dev/null || true)" != "$stamp" ]; then
  echo "bench-realtime: installing socket.io into $install_dir"
  rm -rf "$install_dir"
  mkdir -p "$install_dir"
  cp "$source_dir/package.json" "$source_dir/package-lock.json" "$install_dir/"
  (cd "$install_dir" && npm ci --no-audit --no-fund --loglevel=error)
  echo "$stamp" > "$install_dir/.stamp"
fi

export SOCKETIO_NODE_MODULES="$install_dir/node_modules"
cd "$repo"
exec cargo bench -p realtime-gateway --bench load
