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

label=flag-provider-e2e
# shellcheck source=lib/e2e-tools.sh
. "$repo/scripts/lib/e2e-tools.sh"

bin="${FLAG_SERVICE_BIN:-$repo/target/debug/flag-service}"
case "$bin" in /*) ;; *) bin="$repo/$bin" ;; esac
[ -x "$bin" ] || fail "no flag-service binary at $bin (build it with \`cargo build -p flag-service --bin flag-service\` or set FLAG_SERVICE_BIN)"

find_python
require_node
mkdir -p "$e2e"
venv="$e2e/venv"
python_env "$venv" "$suite/requirements.txt"
node_dir="$e2e/node"
node_env "$node_dir" "$suite"

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
