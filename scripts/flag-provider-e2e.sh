#!/usr/bin/env bash
# flag-service against unmodified OpenFeature providers (Python flagd provider in RPC and
# in-process mode, OFREP over plain HTTP, OpenFeature's JS flagd evaluator as a reference).
#
#   scripts/flag-provider-e2e.sh [pytest arguments...]
#
# Needs python3.11+ (or $PYTHON), node 20+ and npm, and network access to PyPI and npm the
# first time: the Python packages go to target/e2e/venv and the Node packages to
# target/e2e/node, reinstalled only when services/flag-service/tests/providers/requirements.txt
# or package(-lock).json change (a hash stamp in each directory). The binary under test is
# $FLAG_SERVICE_BIN (default target/debug/flag-service); this script does not build it.
# Extra arguments go to pytest, e.g. `-k ofrep` or `-x`.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
suite="$repo/services/flag-service/tests/providers"
e2e="${FLAG_E2E_DIR:-$repo/target/e2e}"

fail() { echo "flag-provider-e2e: $*" >&2; exit 2; }

bin="${FLAG_SERVICE_BIN:-$repo/target/debug/flag-service}"
case "$bin" in /*) ;; *) bin="$repo/$bin" ;; esac
[ -x "$bin" ] || fail "no flag-service binary at $bin (build it with \`cargo build -p flag-service --bin flag-service\` or set FLAG_SERVICE_BIN)"

python="${PYTHON:-}"
if [ -z "$python" ]; then
  for candidate in python3.11 python3.12 python3.13 python3; do
    if command -v "$candidate" >/dev/null 2>&1; then python="$candidate"; break; fi
  done
fi
[ -n "$python" ] || fail "python3 (3.11 or newer) is required but was not found on PATH; install it or set PYTHON"
command -v "$python" >/dev/null 2>&1 || fail "$python (from PYTHON) was not found"
"$python" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' \
  || fail "$python is $("$python" --version 2>&1); 3.11 or newer is required (set PYTHON)"
"$python" -c 'import venv, ensurepip' 2>/dev/null \
  || fail "$python cannot create virtual environments (on Debian/Ubuntu: apt-get install python3-venv)"
command -v node >/dev/null 2>&1 || fail "node (20 or newer) is required but was not found on PATH"
command -v npm >/dev/null 2>&1 || fail "npm is required but was not found on PATH"
node -e 'process.exit(Number(process.versions.node.split(".")[0]) >= 20 ? 0 : 1)' \
  || fail "node $(node --version) is too old; 20 or newer is required"

hash_of() { cat "$@" | "$python" -c 'import hashlib, sys; print(hashlib.sha256(sys.stdin.buffer.read()).hexdigest())'; }
mkdir -p "$e2e"

# Python: one venv, rebuilt from scratch when the requirements or the interpreter change.
venv="$e2e/venv"
py_stamp="$(hash_of "$suite/requirements.txt")-$("$python" -c 'import sys; print("%d.%d.%d" % sys.version_info[:3])')"
if [ "$(cat "$venv/.stamp" 2>/dev/null || true)" != "$py_stamp" ]; then
  echo "flag-provider-e2e: installing Python packages into $venv"
  rm -rf "$venv"
  "$python" -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$suite/requirements.txt"
  echo "$py_stamp" > "$venv/.stamp"
fi

# Node: package.json + package-lock.json copied next to node_modules, `npm ci` when they change.
node_dir="$e2e/node"
node_stamp="$(hash_of "$suite/package.json" "$suite/package-lock.json")"
if [ "$(cat "$node_dir/.stamp" 2>/dev/null || true)" != "$node_stamp" ]; then
  echo "flag-provider-e2e: installing Node packages into $node_dir"
  rm -rf "$node_dir"
  mkdir -p "$node_dir"
  cp "$suite/package.json" "$suite/package-lock.json" "$node_dir/"
  (cd "$node_dir" && npm ci --no-audit --no-fund --loglevel=error)
  echo "$node_stamp" > "$node_dir/.stamp"
fi

export FLAG_SERVICE_BIN="$bin"
export FLAG_E2E_NODE_MODULES="$node_dir/node_modules"
export FLAG_E2E_TESTBED="${FLAG_E2E_TESTBED:-$(cd "$repo/.." && pwd)/shared/conformance/flagd-testbed}"
[ -d "$FLAG_E2E_TESTBED/gherkin" ] && [ -d "$FLAG_E2E_TESTBED/flags" ] \
  || fail "flagd-testbed not found at $FLAG_E2E_TESTBED (expected ../shared/conformance/flagd-testbed next to the repository; set FLAG_E2E_TESTBED)"
export FLAG_E2E_REPORT="$e2e/report.json"
export PYTHONDONTWRITEBYTECODE=1
# The suite starts its own flag-service processes with their own settings.
while IFS= read -r name; do unset "$name"; done < <(env | sed -n 's/^\(SWITCHYARD_[A-Za-z0-9_]*\)=.*/\1/p')

cd "$suite"
exec "$venv/bin/python" -m pytest -p no:cacheprovider "$@"
