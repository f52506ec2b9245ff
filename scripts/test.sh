#!/usr/bin/env bash
# The whole test suite, from a fresh machine: installs what the tests need
# (idempotently), then runs format, lint and every test.
#
#   scripts/test.sh
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
[ "$(id -u)" = 0 ] || SUDO=sudo

# Apache Thrift's compiler, for the Python peers of the interop tests.
if ! command -v thrift >/dev/null 2>&1; then
  echo "== installing thrift-compiler"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq thrift-compiler >/dev/null
fi

# gcc with AddressSanitizer, for the C programs of weft-ffi's tests.
if ! command -v gcc >/dev/null 2>&1 || ! echo 'int main(void){return 0;}' \
    | gcc -x c -fsanitize=address,undefined -o /dev/null - >/dev/null 2>&1; then
  echo "== installing gcc"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq gcc >/dev/null
fi

# protoc, for etcd-client's build script (weft-rpc-discovery), and an etcd
# server for weft-rpc-discovery's tests (they fail, not skip, without it).
if ! command -v protoc >/dev/null 2>&1 || [ ! -x /usr/bin/etcd ]; then
  echo "== installing protobuf-compiler and etcd-server"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq protobuf-compiler etcd-server >/dev/null
fi

# Apache Thrift's Python library.
PYTHON="${WEFT_PYTHON:-python3}"
if ! "$PYTHON" -c 'import thrift' >/dev/null 2>&1; then
  echo "== installing the thrift Python package"
  "$PYTHON" -m pip install --quiet --disable-pip-version-check 'thrift==0.25.0'
fi

# grpcio and its code generator, for the gRPC interop tests' Python peer.
if ! "$PYTHON" -c 'import grpc, grpc_tools; assert grpc.__version__ == "1.85.1"' >/dev/null 2>&1; then
  echo "== installing grpcio and grpcio-tools"
  "$PYTHON" -m pip install --quiet --disable-pip-version-check 'grpcio==1.85.1' 'grpcio-tools==1.85.1'
fi

# The machine's own Go lives in /usr/local/go on the polyglot kind; a
# non-login shell may not have it on PATH.
export PATH="$PATH:/usr/local/go/bin"

# Go, for grpc-go's interop client and server (the tests build them once
# from the module proxy into target/interop-peers).
if ! command -v go >/dev/null 2>&1; then
  echo "== installing golang-go"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq golang-go >/dev/null
fi

stage() { echo "== [$(( SECONDS / 60 ))m$(( SECONDS % 60 ))s] $*"; }
stage "cargo fmt"
cargo fmt --all -- --check
stage "cargo clippy"
# The polyglot interop tests build only with their feature: lint them too.
cargo clippy --workspace --all-targets --features weft-interop/polyglot --quiet -- -D warnings
stage "cargo test"
cargo test --workspace
stage "newcomer: weft init, build, serve, every call through the builder (scripts/newcomer.sh)"
# Reuses the target dir and Cargo.lock of the tests above: ~20 s warm.
scripts/newcomer.sh
if [ "${WEFT_SLOW_TESTS:-}" = 1 ]; then
  stage "weft init: the crates it writes build and answer (slow)"
  cargo test -p weft-rpc-codegen --test cli -- --ignored
fi
stage "gRPC interop table (recorded by the tests above)"
scripts/grpc-interop.sh --table-only
stage "interop matrix: Kitex, Apache Thrift Go and Java (scripts/interop.sh)"
# Builds the Go and Java peers once (cached in ~/.cache/weft-interop; Go
# modules from the module proxy, Maven artifacts from Maven Central), then
# runs the matrix and prints its table.
scripts/interop.sh
stage "soak (2 min): memory, fds and tasks flat under mixed load (tests/soak)"
WEFT_SOAK_SECS=120 cargo test --workspace --test soak --quiet -- --ignored --nocapture
stage "the benchmarks build (running them stays out of CI)"
# Built as tests (the test profile): this only proves the harness compiles,
# and it reuses every dependency the tests built, where the bench profile
# would build them all again.
cargo test --workspace --benches --no-run --quiet
stage "fuzz: every target, a few thousand inputs each (scripts/fuzz.sh --smoke)"
# fuzz/ is its own workspace built with sanitizer-coverage flags, so none
# of the artifacts above can be reused. Unoptimised, since the smoke run's
# inputs are few and compile time is what counts: from nothing that build
# is ~8 CPU-minutes where the optimised one is ~14 (measured on the 2-core
# machine); with cargo-fuzz's install (~1 CPU-minute) and the 13 targets'
# 2,000 inputs each (~1 minute) the stage adds about 7 minutes on two idle
# cores. The deep pass is `scripts/fuzz.sh --long`. WEFT_FUZZ=0 leaves the
# stage out.
if [ "${WEFT_FUZZ:-1}" != 0 ]; then
  scripts/fuzz.sh --smoke
fi
stage "done"
