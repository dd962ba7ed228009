#!/usr/bin/env bash
# Fuzzes every service's HTTP API with schemathesis against its own /openapi.json, the way an
# outsider would: `switchyard dev` on fresh ports and a fresh data directory, requests with the
# admin key (and without, to check that secured routes refuse them), every check schemathesis
# has. Fails on any 5xx, any answer the document does not describe, any valid request
# refused for a reason the document does not state, and any secured call accepted without
# credentials.
#
#   scripts/fuzz-api.sh [SECONDS_PER_SERVICE]      (default 100; `make fuzz-api`)
#
# FUZZ_API_ONLY=flag-service runs one service; FUZZ_API_SEED=N repeats a run's generation
# (CI's short pass uses a fixed seed, so a failure there is one you can replay).
# schemathesis is pinned in scripts/fuzz-api/requirements.txt and installed into
# target/fuzz-api/venv on first use. The binary is $FUZZ_API_BIN (default: built here).
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
seconds="${1:-${FUZZ_API_SECONDS:-100}}"
work="$repo/target/fuzz-api"

label=fuzz-api
# shellcheck source=lib/e2e-tools.sh
. "$repo/scripts/lib/e2e-tools.sh"

bin="${FUZZ_API_BIN:-}"
if [ -z "$bin" ]; then
  (cd "$repo" && cargo build --quiet --bin switchyard)
  bin="$repo/target/debug/switchyard"
fi
case "$bin" in /*) ;; *) bin="$repo/$bin" ;; esac
find_python
mkdir -p "$work"
python_env "$work/venv" "$repo/scripts/fuzz-api/requirements.txt"

# Settings come from nowhere but this script: no SWITCHYARD_* of the caller's shell.
while IFS= read -r name; do unset "$name"; done < <(env | sed -n 's/^\(SWITCHYARD_[A-Za-z0-9_]*\)=.*/\1/p')
data="$(mktemp -d)"
log="$data/dev.log"
cleanup() {
  if [ -n "${dev:-}" ]; then kill "$dev" 2>/dev/null || true; wait "$dev" 2>/dev/null || true; fi
  rm -rf "$data"
}
trap cleanup EXIT
# Every port on 0 so nothing collides; warnings only, so the fuzzing's own noise stays out.
(cd "$data" && SWITCHYARD_GRPC__PORT=0 SWITCHYARD_HTTP__PORT=0 SWITCHYARD_TELEMETRY__LOG_FILTER=error \
  exec "$bin" dev >"$log" 2>"$data/dev.err") &
dev=$!
for _ in $(seq 1 300); do
  grep -q "admin API key" "$log" 2>/dev/null && break
  kill -0 "$dev" 2>/dev/null || fail "switchyard dev exited: $(cat "$data/dev.err")"
  sleep 0.1
done
key="$(sed -n 's/.*admin API key (tenant `default`): //p' "$log")"
[ -n "$key" ] || fail "switchyard dev printed no admin key"

# schemathesis keeps a cache in its working directory: keep it under target/.
cd "$work"
export SCHEMATHESIS_HOOKS=hooks
export PYTHONPATH="$repo/scripts/fuzz-api${PYTHONPATH:+:$PYTHONPATH}"
failed=()
while read -r name http _grpc; do
  if [ -n "${FUZZ_API_ONLY:-}" ] && [ "$name" != "$FUZZ_API_ONLY" ]; then continue; fi
  echo "$label: $name (port $http), up to ${seconds}s"
  reports="$work/reports/$name"
  rm -rf "$reports"
  # The exit status of st counts its own crashes too; the report says which were about the API.
  "$work/venv/bin/st" --config-file "$repo/scripts/fuzz-api/schemathesis.toml" run "http://127.0.0.1:$http/openapi.json" \
      --header "Authorization: Bearer $key" \
      --max-time "$seconds" \
      --workers 2 \
      --request-timeout 10 \
      --suppress-health-check all \
      ${FUZZ_API_SEED:+--seed "$FUZZ_API_SEED"} \
      --no-color \
      --report junit --report-dir "$reports" || true
  report="$(ls "$reports"/junit-*.xml 2>/dev/null | head -1)"
  if [ -z "$report" ] || ! "$work/venv/bin/python" "$repo/scripts/fuzz-api/verdict.py" "$report"; then
    failed+=("$name")
  fi
done < <(awk '$1 ~ /-(service|gateway)$/ && $2 ~ /^[0-9]+$/ {print $1, $2, $3}' "$log")

if [ "${#failed[@]}" -gt 0 ]; then
  echo "$label: failures in ${failed[*]} (reports in $work/reports)" >&2
  exit 1
fi
echo "$label: every service passed"
