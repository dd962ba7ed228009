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

fail() { echo "realtime-e2e: $*" >&2; exit 2; }

bin="${REALTIME_GATEWAY_BIN:-$repo/target/debug/realtime-gateway}"
case "$bin" in /*) ;; *) bin="$repo/$bin" ;; esac
[ -x "$bin" ] || fail "no realtime-gateway binary at $bin (cargo build -p realtime-gateway, or set REALTIME_GATEWAY_BIN)"

python="${PYTHON:-}"
if [ -z "$python" ]; then
  for candidate in python3.11 python3.12 python3.13 python3; do
    if command -v "$candidate" >/dev/null 2>&1; then python="$candidate"; break; fi
  done
fi
[ -n "$python" ] || fail "python3 (3.11 or newer) is required but was not found on PATH"
"$python" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' \
  || fail "$python is $("$python" --version 2>&1); 3.11 or newer is required (set PYTHON)"
command -v node >/dev/null 2>&1 || fail "node (20 or newer) is required but was not found on PATH"
command -v npm >/dev/null 2>&1 || fail "npm is required but was not found on PATH"

chromium="${CHROMIUM:-/usr/bin/chromium}"
if [ ! -x "$chromium" ]; then
  command -v apt-get >/dev/null 2>&1 || fail "Chromium is missing at $chromium and there is no apt-get to install it (set CHROMIUM)"
  echo "realtime-e2e: installing Debian's chromium"
  sudo_cmd=""; [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq chromium >/dev/null
fi
export CHROMIUM="$chromium"

hash_of() { cat "$@" | "$python" -c 'import hashlib, sys; print(hashlib.sha256(sys.stdin.buffer.read()).hexdigest())'; }
mkdir -p "$e2e"

venv="$e2e/venv"
py_stamp="$(hash_of "$suite/requirements.txt")-$("$python" -c 'import sys; print("%d.%d.%d" % sys.version_info[:3])')"
if [ "$(cat "$venv/.stamp" 2>/dev/null || true)" != "$py_stamp" ]; then
  echo "realtime-e2e: installing Python packages into $venv"
  rm -rf "$venv"
  "$python" -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$suite/requirements.txt"
  echo "$py_stamp" > "$venv/.stamp"
fi

node_dir="$e2e/node"
node_stamp="$(hash_of "$suite/package.json" "$suite/package-lock.json")"
if [ "$(cat "$node_dir/.stamp" 2>/dev/null || true)" != "$node_stamp" ]; then
  echo "realtime-e2e: installing Node packages into $node_dir"
  rm -rf "$node_dir"
  mkdir -p "$node_dir"
  cp "$suite/package.json" "$suite/package-lock.json" "$node_dir/"
  (cd "$node_dir" && npm ci --no-audit --no-fund --loglevel=error)
  echo "$node_stamp" > "$node_dir/.stamp"
fi

# Python stubs of the realtime API, from the same protos the server is built from.
generated="$e2e/generated"
rm -rf "$generated"
mkdir -p "$generated"
"$venv/bin/python" -m grpc_tools.protoc -I "$repo/proto" \
  --python_out="$generated" --grpc_python_out="$generated" \
  "$repo/proto/google/api/annotations.proto" "$repo/proto/google/api/http.proto" \
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
