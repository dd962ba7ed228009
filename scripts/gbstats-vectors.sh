#!/usr/bin/env bash
# crates/stats' test vectors, computed by gbstats 0.8.0 itself.
#
#   scripts/gbstats-vectors.sh --out crates/stats/vectors/gbstats-0.8.0.json   # regenerate
#   scripts/gbstats-vectors.sh                                                 # JSON to stdout
#
# Needs python3.11+ (or $PYTHON) and PyPI the first time: the pinned packages of
# crates/stats/vectors/requirements.txt go to target/gbstats-venv, reinstalled only when that
# file changes. crates/stats/tests/gbstats.rs runs this to check the checked-in vectors.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
label=gbstats-vectors
# shellcheck source=lib/e2e-tools.sh
. "$repo/scripts/lib/e2e-tools.sh"

find_python
venv="${GBSTATS_VENV:-$repo/target/gbstats-venv}"
python_env "$venv" "$repo/crates/stats/vectors/requirements.txt" >&2
export PYTHONDONTWRITEBYTECODE=1
exec "$venv/bin/python" -W ignore::RuntimeWarning "$repo/crates/stats/vectors/generate.py" "$@"
