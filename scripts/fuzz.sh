#!/usr/bin/env bash
# Runs every fuzz target in fuzz/ (cargo-fuzz, libFuzzer) for a while and
# fails on any finding: a crash, a panic, a timeout or running out of memory.
#
#   scripts/fuzz.sh                  # 10 s per target
#   scripts/fuzz.sh 120              # 120 s per target
#   scripts/fuzz.sh --long           # the deep pass: FUZZ_SECONDS (default 3600) per target
#   scripts/fuzz.sh --smoke          # what scripts/test.sh runs: a quick build, then
#                                    # FUZZ_RUNS (default 2000) inputs per target, 10 s at most
#   FUZZ_TARGETS="frame header" scripts/fuzz.sh 60
#
# Installs cargo-fuzz (crates.io, pinned) and a C++ compiler (for libFuzzer)
# if missing. Builds into CARGO_TARGET_DIR if set, else fuzz/target. Each
# target starts from its checked-in seeds (fuzz/corpus/<target>) and the
# corpus earlier runs grew (fuzz/work/corpus/<target>, not checked in;
# FUZZ_WORK moves fuzz/work elsewhere), with
# its dictionary (fuzz/dict/<target>.dict) if there is one. A finding is
# written to fuzz/artifacts/<target>/ and named in the summary; minimise it
# with `cargo fuzz tmin --fuzz-dir fuzz -s none <target> <file>`.
set -euo pipefail
cd "$(dirname "$0")/.."

SECONDS_PER_TARGET=10
RUNS=""
SMOKE=""
if [ "${1:-}" = "--long" ]; then
  SECONDS_PER_TARGET="${FUZZ_SECONDS:-3600}"
elif [ "${1:-}" = "--smoke" ]; then
  SMOKE=1
  RUNS="${FUZZ_RUNS:-2000}"
elif [ -n "${1:-}" ]; then
  SECONDS_PER_TARGET="$1"
elif [ -n "${FUZZ_SECONDS:-}" ]; then
  SECONDS_PER_TARGET="$FUZZ_SECONDS"
fi
CARGO_FUZZ_VERSION=0.13.2

SUDO=""
[ "$(id -u)" = 0 ] || SUDO=sudo

# libfuzzer-sys compiles libFuzzer, which is C++.
if ! command -v c++ >/dev/null 2>&1; then
  echo "== installing g++ (libFuzzer is C++)"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq g++ >/dev/null
fi
if ! cargo fuzz --version 2>/dev/null | grep -q "$CARGO_FUZZ_VERSION"; then
  echo "== installing cargo-fuzz $CARGO_FUZZ_VERSION"
  cargo install --quiet --locked cargo-fuzz --version "$CARGO_FUZZ_VERSION"
fi

# Optimised, no sanitizer (Rust is memory safe where it matters here: what
# is sought is panics, overflows, hangs and unbounded memory), with debug
# assertions and overflow checks. Several codegen units: cargo-fuzz's
# default of one costs minutes of build on two cores for little speed.
#
# The smoke run builds unoptimised instead (--dev): it runs a few thousand
# inputs per target, where compile time, not speed, is what counts.
PROFILE=release
[ -n "$SMOKE" ] && PROFILE=dev
BUILD=(--fuzz-dir fuzz -s none "--$PROFILE" --debug-assertions --codegen-units 16)
echo "== building the fuzz targets ($PROFILE)"
cargo fuzz build "${BUILD[@]}"

TRIPLE="$(rustc -vV | sed -n 's/^host: //p')"
if [ "$PROFILE" = dev ]; then PROFILE_DIR=debug; else PROFILE_DIR=release; fi
BIN="${CARGO_TARGET_DIR:-fuzz/target}/$TRIPLE/$PROFILE_DIR"
TARGETS="${FUZZ_TARGETS:-$(cargo fuzz list --fuzz-dir fuzz)}"

WORK="${FUZZ_WORK:-fuzz/work}"
failed=()
summary=()
for t in $TARGETS; do
  work="$WORK/corpus/$t"
  artifacts="fuzz/artifacts/$t"
  log="$WORK/$t.log"
  mkdir -p "$work" "$artifacts" "fuzz/corpus/$t"
  args=(
    "-max_total_time=$SECONDS_PER_TARGET"
    # A single input taking a second is a hang in a parser.
    -timeout=10
    -rss_limit_mb=2048
    -max_len=65536
    -print_final_stats=1
    "-artifact_prefix=$artifacts/"
  )
  [ -f "fuzz/dict/$t.dict" ] && args+=("-dict=fuzz/dict/$t.dict")
  if [ -n "$RUNS" ]; then
    args+=("-runs=$RUNS")
    echo "== fuzzing $t: $RUNS inputs (${SECONDS_PER_TARGET}s at most)"
  else
    echo "== fuzzing $t for ${SECONDS_PER_TARGET}s"
  fi
  set +e
  "$BIN/$t" "${args[@]}" "$work" "fuzz/corpus/$t" >"$log" 2>&1
  rc=$?
  set -e
  execs="$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)"
  cov="$(grep -Eo 'cov: [0-9]+ ft: [0-9]+' "$log" | tail -1)"
  if [ "$rc" -ne 0 ]; then
    failed+=("$t")
    summary+=("$t: FINDING (exit $rc) after ${execs:-?} runs; see $log and $artifacts/")
    grep -E 'panicked|ERROR: libFuzzer|SUMMARY|Test unit written' "$log" | head -5 || true
  else
    summary+=("$t: ${execs:-?} runs, ${cov:-no coverage line}")
  fi
done

if [ -n "$RUNS" ]; then
  echo "== fuzz summary ($RUNS inputs per target, ${SECONDS_PER_TARGET}s at most)"
else
  echo "== fuzz summary (${SECONDS_PER_TARGET}s per target)"
fi
printf '  %s\n' "${summary[@]}"
if [ "${#failed[@]}" -ne 0 ]; then
  echo "fuzzing found problems in: ${failed[*]}" >&2
  exit 1
fi
