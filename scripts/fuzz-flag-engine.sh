#!/usr/bin/env bash
# Fuzzes flag-engine with cargo-fuzz (libFuzzer): each target in crates/flag-engine/fuzz runs
# for N seconds (default 30) from the committed seed corpus, and the script fails on any crash,
# panic, timeout or out-of-memory. `make fuzz` runs it; `make bench` runs a short pass of it.
#
#   scripts/fuzz-flag-engine.sh [seconds-per-target] [target...]
#   targets: parse_definition evaluate_context evaluate_rule (default: all three, one after the other)
#
# Bounds on every input: -timeout (seconds per input, 2), -rss_limit_mb (512), and, as a
# backstop, a virtual-memory ulimit (the limit plus 1.5 GiB) so that an allocation blow-up
# aborts the fuzzer instead of pushing the machine into swap or the OOM killer: without a
# sanitizer runtime libFuzzer can only sample the RSS once a second, and an exponential
# allocation gets far past the limit in that second. Both count as failures.
#
# The committed corpus stays as it is: libFuzzer fuzzes a temporary copy, so what it adds is
# thrown away (FUZZ_KEEP_CORPUS=dir keeps the grown copies; see crates/flag-engine/fuzz/README.md
# for minimizing them and committing an interesting entry). A failing input is written to
# crates/flag-engine/fuzz/artifacts/<target>/ (git-ignored); reproduce it with
#   crates/flag-engine/fuzz/target/<triple>/release/<target> <file>
# or `cargo fuzz run --sanitizer none -a <target> <file>` in crates/flag-engine/fuzz.
#
# Toolchain: cargo-fuzz officially wants nightly because its build passes unstable rustc flags
# (-Zsanitizer=..., and the sanitizer-coverage instrumentation libFuzzer needs). This project
# only has stable Rust, so:
#   * RUSTC_BOOTSTRAP=1 lets the stable rustc accept those flags (it is the switch rustc's own
#     bootstrap uses; set only for these fuzz builds, which are a separate workspace with their
#     own target dir, so no other build is affected and nothing unstable reaches a release);
#   * --sanitizer none (by default): flag-engine forbids unsafe code, and what the fuzzing looks
#     for (panics, overflows, which the debug assertions of -a turn into panics, endless loops,
#     blow-ups) needs no sanitizer. AddressSanitizer builds with RUSTC_BOOTSTRAP=1 too
#     (FUZZ_SANITIZER=address), but here it ran about 4.7x slower (18.5k vs 87.5k exec/s on
#     evaluate_rule), and its quarantine took ~280 MB of the 512 MB RSS limit.
# cargo-fuzz itself is installed (cargo install cargo-fuzz --locked) when it is missing.
#
# Environment:
#   NICE=N              niceness of the builds and of the fuzzing (default 15)
#   FUZZ_SANITIZER=S    cargo fuzz --sanitizer (default none; "address" drops the ulimit backstop,
#                       since ASan reserves terabytes of address space for its shadow memory)
#   FUZZ_TIMEOUT=S      seconds one input may take (default 2)
#   FUZZ_RSS_LIMIT_MB=M memory limit (default 512)
#   FUZZ_KEEP_CORPUS=D  keep the grown corpora in D/<target>/ instead of deleting them
#   FUZZ_KEEP_GOING=1   keep fuzzing after a crash/timeout/oom (libFuzzer fork mode with
#                       -ignore_crashes etc.), to collect every finding of the run; the script
#                       still fails at the end if there was any
#   FUZZ_REGRESSIONS=0  skip replaying crates/flag-engine/fuzz/regressions/ (the reproducers of
#                       findings, each run once before fuzzing; any that still fails fails the run)
#   FUZZ_ARGS           extra libFuzzer arguments (e.g. "-seed=1" or "-only_ascii=1")
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
FUZZ_DIR="$ROOT/crates/flag-engine/fuzz"
ALL_TARGETS=(parse_definition evaluate_context evaluate_rule)

DURATION=${1:-30}
if [ $# -gt 0 ]; then shift; fi
TARGETS=("$@")
if [ ${#TARGETS[@]} -eq 0 ]; then TARGETS=("${ALL_TARGETS[@]}"); fi
# (0 would mean "no time limit" to libFuzzer.)
case "$DURATION" in '' | *[!0-9]* | 0 | 0*) echo "fuzz-flag-engine: seconds must be a whole number above 0, not '$DURATION'" >&2; exit 2 ;; esac
for target in "${TARGETS[@]}"; do
  case " ${ALL_TARGETS[*]} " in *" $target "*) ;; *) echo "fuzz-flag-engine: unknown target '$target' (${ALL_TARGETS[*]})" >&2; exit 2 ;; esac
done

NICE=${NICE:-15}
TIMEOUT=${FUZZ_TIMEOUT:-2}
RSS_LIMIT_MB=${FUZZ_RSS_LIMIT_MB:-512}
SANITIZER=${FUZZ_SANITIZER:-none}
VM_LIMIT_KB=$(((RSS_LIMIT_MB + 1536) * 1024))
if [ "$SANITIZER" != none ]; then VM_LIMIT_KB=unlimited; fi

command -v cargo >/dev/null 2>&1 || { echo "fuzz-flag-engine: cargo is required" >&2; exit 1; }
# See the header: stable rustc accepts cargo-fuzz's unstable flags with this.
export RUSTC_BOOTSTRAP=1
# The fuzz project is its own workspace and builds into its own target dir (fuzz/target).
unset CARGO_TARGET_DIR

if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "== installing cargo-fuzz (cargo install cargo-fuzz --locked)"
  nice -n "$NICE" cargo install cargo-fuzz --locked
fi

# Same flags for every build: no sanitizer, optimized, debug assertions and overflow checks on.
BUILD_FLAGS=(--sanitizer "$SANITIZER" --release --debug-assertions)
echo "== building the fuzz targets ($(cargo fuzz --version), ${BUILD_FLAGS[*]})"
# (All targets at once: they share every dependency, so building the others costs seconds.)
(cd "$FUZZ_DIR" && nice -n "$NICE" cargo fuzz build "${BUILD_FLAGS[@]}")
TRIPLE=$(rustc -vV | sed -n 's/^host: //p')
BIN_DIR="$FUZZ_DIR/target/$TRIPLE/release"

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

failed=()
summary=()

# Known failing inputs first: every file under fuzz/regressions/<target>/ is run once, alone,
# with the same bounds, and must pass (they are the reproducers of findings; once the engine is
# fixed they guard against the bug coming back).
if [ "${FUZZ_REGRESSIONS:-1}" != 0 ]; then
  for target in "${TARGETS[@]}"; do
    [ -d "$FUZZ_DIR/regressions/$target" ] || continue
    for input in "$FUZZ_DIR/regressions/$target"/*; do
      [ -f "$input" ] || continue
      case "$input" in *.md) continue ;; esac
      status=0
      (
        ulimit -v "$VM_LIMIT_KB"
        exec nice -n "$NICE" "$BIN_DIR/$target" -timeout="$TIMEOUT" -rss_limit_mb="$RSS_LIMIT_MB" "$input"
      ) >"$WORK/replay.log" 2>&1 || status=$?
      name="regressions/$target/$(basename "$input")"
      if [ "$status" -eq 0 ]; then
        echo "== replay $name: passes"
      else
        what=$(grep -m1 -o -E 'panicked at .*|ERROR: libFuzzer: [a-z-]+|memory allocation of [0-9]+ bytes failed' "$WORK/replay.log" || echo "exit status $status")
        detail=$(grep -m1 -A1 'panicked at' "$WORK/replay.log" | tail -n 1 | cut -c1-200 || true)
        echo "!! replay $name: FAILS ($what${detail:+: $detail})"
        failed+=("$name")
      fi
    done
  done
fi

for target in "${TARGETS[@]}"; do
  corpus="$WORK/corpus/$target"
  mkdir -p "$corpus" "$FUZZ_DIR/artifacts/$target"
  cp "$FUZZ_DIR/corpus/$target"/* "$corpus"/
  seeds=$(find "$corpus" -type f | wc -l)
  log="$WORK/$target.log"
  marker="$WORK/$target.start"
  touch "$marker"
  args=(
    -max_total_time="$DURATION"
    -timeout="$TIMEOUT"
    -rss_limit_mb="$RSS_LIMIT_MB"
    -dict="$FUZZ_DIR/dict/jsonlogic.dict"
    -artifact_prefix="$FUZZ_DIR/artifacts/$target/"
    -print_final_stats=1
  )
  if [ "${FUZZ_KEEP_GOING:-0}" = 1 ]; then
    args+=(-fork=1 -ignore_crashes=1 -ignore_timeouts=1 -ignore_ooms=1)
  fi
  # shellcheck disable=SC2206 # FUZZ_ARGS is a list of words
  args+=(${FUZZ_ARGS:-})
  echo "== fuzzing $target for ${DURATION}s ($seeds seeds; timeout ${TIMEOUT}s/input, rss ${RSS_LIMIT_MB} MB)"
  status=0
  (
    ulimit -v "$VM_LIMIT_KB"
    exec nice -n "$NICE" "$BIN_DIR/$target" "${args[@]}" "$corpus"
  ) >"$log" 2>&1 || status=$?
  # From libFuzzer's report: the input size bound, the first and last coverage lines, the
  # panic message or libFuzzer's error if any, and the final statistics.
  grep -m1 'INFO: -max_len' "$log" || true
  grep -m1 -E '^#[0-9]+.*cov: ' "$log" || true
  grep -E '^#[0-9]+.*cov: ' "$log" | tail -n 1 || true
  grep -m1 -A12 'panicked at' "$log" | sed '/^stack backtrace:/,$d' | cut -c1-2000 || true
  grep -E 'ERROR: libFuzzer|^SUMMARY: |ALARM: |out-of-memory|Test unit written' "$log" || true
  grep '^stat::' "$log" || true

  new_artifacts=$(find "$FUZZ_DIR/artifacts/$target" -type f -newer "$marker" | sort)
  # First and last coverage lines ("#N INITED cov: ..." and "#N DONE cov: ...", or in fork
  # mode "#N: cov: ...") give the growth; the final stats, or the last line, the speed.
  first_line=$(grep -m1 -E '^#[0-9]+.*cov: ' "$log" || true)
  last_line=$(grep -E '^#[0-9]+.*cov: ' "$log" | tail -n 1 || true)
  coverage() { sed -E 's/.*cov: ([0-9]+) ft: ([0-9]+) corp: ([0-9]+).*/\1 \2 \3/'; }
  inited=$(coverage <<<"$first_line")
  last=$(coverage <<<"$last_line")
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n 1)
  if [ -z "$execs" ]; then execs=$(sed -E -n 's/^#([0-9]+).*/\1/p' <<<"$last_line"); fi
  if [ -z "$rate" ]; then rate=$(sed -E -n 's/.*exec\/s: ([0-9]+).*/\1/p' <<<"$last_line"); fi
  rss=$(sed -n 's/^stat::peak_rss_mb: *//p' "$log" | tail -n 1)
  read -r cov0 ft0 corp0 <<<"${inited:-- - -}"
  read -r cov1 ft1 corp1 <<<"${last:-- - -}"
  summary+=("$(printf '%-17s %10s %8s %13s %15s %13s %6s' "$target" "${execs:--}" "${rate:--}" \
    "$cov0 -> $cov1" "$ft0 -> $ft1" "$corp0 -> $corp1" "${rss:--}")")

  if [ -n "${FUZZ_KEEP_CORPUS:-}" ]; then
    mkdir -p "$FUZZ_KEEP_CORPUS/$target"
    cp "$corpus"/* "$FUZZ_KEEP_CORPUS/$target"/
  fi
  if [ "$status" -ne 0 ] || [ -n "$new_artifacts" ]; then
    failed+=("$target")
    echo "!! $target failed (libFuzzer exit status $status); full log kept in $FUZZ_DIR/artifacts/$target/last-run.log"
    cp "$log" "$FUZZ_DIR/artifacts/$target/last-run.log"
    for artifact in $new_artifacts; do
      echo "   input: $artifact"
      echo "   reproduce: $BIN_DIR/$target $artifact"
    done
  fi
done

echo
echo "== summary (${DURATION}s per target; cov = coverage edges, ft = features, corp = corpus entries, from first to last)"
printf '%-17s %10s %8s %13s %15s %13s %6s\n' target executions exec/s cov ft corpus rss_mb
printf '%s\n' "${summary[@]}"
if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz-flag-engine: FAILED: ${failed[*]} (see above and crates/flag-engine/fuzz/README.md)" >&2
  exit 1
fi
echo "fuzz-flag-engine: no crash, timeout or oom"
