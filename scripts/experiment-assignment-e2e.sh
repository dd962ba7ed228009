#!/usr/bin/env bash
# The unmodified Python flagd provider (RPC and in-process) against experiment-service's
# `Assign`, for the cases a test wrote (services/experiment-service/tests/providers.rs):
#
#   scripts/experiment-assignment-e2e.sh CASES.json     (or ASSIGNMENT_CASES=CASES.json)
#
# Needs python3.11+ (or $PYTHON) and, the first time, PyPI: the provider and its pinned
# dependencies (services/experiment-service/tests/providers/requirements.txt, which says why
# that version) go to target/e2e/experiment-venv, reinstalled only when that file changes.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
e2e="${FLAG_E2E_DIR:-$repo/target/e2e}"

label=experiment-assignment-e2e
# shellcheck source=lib/e2e-tools.sh
. "$repo/scripts/lib/e2e-tools.sh"

cases="${1:-${ASSIGNMENT_CASES:-}}"
[ -n "$cases" ] || fail "usage: $0 CASES.json (or set ASSIGNMENT_CASES)"
find_python
mkdir -p "$e2e"
venv="$e2e/experiment-venv"
python_env "$venv" "$repo/services/experiment-service/tests/providers/requirements.txt"
export PYTHONDONTWRITEBYTECODE=1
exec "$venv/bin/python" "$repo/services/experiment-service/tests/providers/assign_with_providers.py" "$cases"
