#!/usr/bin/env bash
# realtime-gateway against real clients: Python's `websockets` (publishing through the gRPC
# API from Python), a plain HTTP SSE reader, and Debian's Chromium opening /demo through
# playwright-core. Three-node cases use the Redis at $REDIS_TEST_URL.
#
#   scripts/realtime-e2e.sh [pytest arguments...]
#
# Needs python3.11+ (or $PYTHON), node 20+ and npm, network access to PyPI and npm the first
# time, and Chromium (installed from Debian's packages when missing). Python packages go to
# target/e2e/realtime/venv, Node packages to target/e2e/realtime/node, each reinstalled only
# when services/realtime-gateway/tests/clients/requirements.txt or package(-lock).json change.
# gRPC stubs are generated from proto/ on every run. The binary under test is
# $REALTIME_GATEWAY_BIN (default target/debug/realtime-gateway); this script does not build it.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
suite="$repo/services/realtime-gateway/tests/clients"
e2e="${REALTIME_E2E_DIR:-$repo/target/e2e/realtime}"

label=realtime-e2e
# shellcheck source=lib/e2e-tools.sh
. "$repo/scripts/lib/e2e-tools.sh"

bin="${REALTIME_GATEWAY_BIN:-$repo/target/debug/realtime-gateway}"
case "$bin" in /*) ;; *) bin="$repo/$bin" ;; esac
[ -x "$bin" ] || fail "no realtime-gateway binary at $bin (cargo build -p realtime-gateway, or set REALTIME_GATEWAY_BIN)"

find_python
require_node

chromium="${CHROMIUM:-/usr/bin/chromium}"
if [ ! -x "$chromium" ]; then
  command -v apt-get >/dev/null 2>&1 || fail "Chromium is missing at $chromium and there is no apt-get to install it (set CHROMIUM)"
  echo "realtime-e2e: installing Debian's chromium"
  sudo_cmd=""; [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq chromium >/dev/null
fi
export CHROMIUM="$chromium"

mkdir -p "$e2e"
venv="$e2e/venv"
python_env "$venv" "$suite/requirements.txt"
node_dir="$e2e/node"
node_env "$node_dir" "$suite"

# Python stubs of the realtime API, from the same protos the server is built from.
generated="$e2e/generated"
rm -rf "$generated"
mkdir -p "$generated"
"$venv/bin/python" -m grpc_tools.protoc -I "$repo/proto" \
  --python_out="$generated" --grpc_python_out="$generated" \
  "$repo/proto/google/api/annotations.proto" "$repo/proto/google/api/http.proto" \
  "$repo/proto/google/api/field_behavior.proto" \
  "$repo/proto/switchyard/runtime/v1/service_info.proto" \
  "$repo/proto/switchyard/realtime/v1/events.proto" \
  "$repo/proto/switchyard/realtime/v1/realtime_service.proto"

export REALTIME_GATEWAY_BIN="$bin"
export REALTIME_E2E_NODE_MODULES="$node_dir/node_modules"
export REDIS_TEST_URL="${REDIS_TEST_URL:-redis://127.0.0.1:6379}"
export PYTHONPATH="$generated:$suite"
export PYTHONDONTWRITEBYTECODE=1
# The suite starts its own gateways with their own settings.
while IFS= read -r name; do unset "$name"; done < <(env | sed -n 's/^\(SWITCHYARD_[A-Za-z0-9_]*\)=.*/\1/p')

cd "$suite"
exec "$venv/bin/python" -m pytest -p no:cacheprovider "$@"
