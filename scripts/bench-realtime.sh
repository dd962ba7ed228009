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

label=bench-realtime
# shellcheck source=lib/e2e-tools.sh
. "$repo/scripts/lib/e2e-tools.sh"
require_node
node_env "$install_dir" "$source_dir"

export SOCKETIO_NODE_MODULES="$install_dir/node_modules"
cd "$repo"
exec cargo bench -p realtime-gateway --bench load
