#!/usr/bin/env bash
# The polyglot interop matrix: Kitex (TTHeader and gRPC), Apache Thrift Go
# and Apache Thrift Java against Weft, both ways.
#
#   scripts/interop.sh            build the peers (cached), run the matrix,
#                                 print the table; exit 1 if any cell fails
#   scripts/interop.sh build      build the peers only; print their directory
#   scripts/interop.sh --readme   as the first, then put the table in README.md
#
# The peers are built once into $WEFT_INTEROP_CACHE (default
# ~/.cache/weft-interop) and rebuilt only when their sources, the IDL or the
# tools change. Go modules come from the Go module proxy (GOMODCACHE), Maven
# artifacts from Maven Central (~/.m2). Needs Go >= 1.24 and a JDK 17 with
# Maven (apt-get installs the JDK and Maven when missing) and Apache's
# Thrift compiler (scripts/test.sh installs it).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
CACHE="${WEFT_INTEROP_CACHE:-$HOME/.cache/weft-interop}"
GO_DIR=tests/interop/go
JAVA_DIR=tests/interop/java
IDL_SRC=../shared/idl/thrift/ThriftTest.thrift
# The load generator's service, for Kitex's side of it (cmd/kitex-bench).
BENCH_IDL=benches/idl/bench.thrift
# The gRPC echo service Kitex's gRPC (nphttp2) peer serves and calls.
ECHO_PROTO=tests/interop/idl/echo.proto
MODE="${1:-run}"

log() { echo "== interop: $*" >&2; }

need_tools() {
  local SUDO=""
  [ "$(id -u)" = 0 ] || SUDO=sudo
  if ! command -v java >/dev/null 2>&1 || ! command -v javac >/dev/null 2>&1 || ! command -v mvn >/dev/null 2>&1; then
    log "installing a JDK and Maven"
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get update -qq
    $SUDO apt-get install -y -qq openjdk-17-jdk-headless maven >/dev/null
  fi
  if ! command -v thrift >/dev/null 2>&1; then
    log "installing thrift-compiler"
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get update -qq
    $SUDO apt-get install -y -qq thrift-compiler >/dev/null
  fi
  if ! command -v go >/dev/null 2>&1; then
    echo "interop: Go (>= 1.24) is needed for the Kitex and Apache Go peers and is not installed" >&2
    exit 1
  fi
}

# Everything a peer build depends on, hashed.
inputs_hash() {
  {
    cat "$IDL_SRC" "$BENCH_IDL" "$ECHO_PROTO"
    (cd "$GO_DIR" && find . -path ./kitex_gen -prune -o -path ./gen-go -prune -o -type f -print | LC_ALL=C sort | xargs cat)
    (cd "$JAVA_DIR" && find pom.xml src/main/java/weft -type f | LC_ALL=C sort | xargs cat)
    cat "$0"
    thrift --version
    go version
    java -version 2>&1
  } | sha256sum | cut -d' ' -f1
}

build() {
  need_tools
  local hash
  hash=$(inputs_hash)
  if [ -f "$CACHE/stamp" ] && [ "$(cat "$CACHE/stamp")" = "$hash" ] &&
    [ -x "$CACHE/bin/kitex-peer" ] && [ -x "$CACHE/bin/kitex-grpc-peer" ] && [ -x "$CACHE/bin/kitex-bench" ] && [ -x "$CACHE/bin/apache-peer" ] && [ -x "$CACHE/bin/java-peer" ]; then
    log "peers up to date in $CACHE"
    echo "$CACHE"
    return
  fi
  local started=$SECONDS
  rm -rf "$CACHE"
  mkdir -p "$CACHE/bin" "$CACHE/idl" "$CACHE/java"
  # Kitex's generator (thriftgo) cannot express CrazyNesting's map keyed by a
  # set, which no method uses; Apache's own test/go build drops the same line.
  grep -v 'list<map<set<i32>' "$IDL_SRC" >"$CACHE/idl/ThriftTest.thrift"
  local idl="$CACHE/idl/ThriftTest.thrift"

  log "building kitex (the code generator, pinned in $GO_DIR/go.mod)"
  (cd "$GO_DIR" && nice go build -o "$CACHE/bin/kitex" github.com/cloudwego/kitex/tool/cmd/kitex)
  log "generating Go code (kitex, Apache thrift)"
  (cd "$GO_DIR" && rm -rf kitex_gen gen-go && mkdir gen-go &&
    "$CACHE/bin/kitex" -module weftinterop -no-dependency-check "$idl" >&2 &&
    "$CACHE/bin/kitex" -module weftinterop -no-dependency-check "$ROOT/$BENCH_IDL" >&2 &&
    "$CACHE/bin/kitex" -module weftinterop -no-dependency-check -type protobuf \
      -I "$ROOT/$(dirname "$ECHO_PROTO")" "$ROOT/$ECHO_PROTO" >&2 &&
    thrift --gen go:package_prefix=weftinterop/gen-go/,skip_remote -out gen-go "$idl" >/dev/null)
  log "building the Go peers"
  (cd "$GO_DIR" && nice go build -o "$CACHE/bin/kitex-peer" ./cmd/kitex-peer &&
    nice go build -o "$CACHE/bin/kitex-bench" ./cmd/kitex-bench &&
    nice go build -o "$CACHE/bin/kitex-grpc-peer" ./cmd/kitex-grpc-peer &&
    nice go build -o "$CACHE/bin/apache-peer" ./cmd/apache-peer)

  log "building the Java peer"
  (cd "$JAVA_DIR" && rm -rf src/main/java/thrift target &&
    thrift --gen java:generated_annotations=suppress -out src/main/java "$idl" >/dev/null &&
    nice mvn -B -q compile dependency:copy-dependencies -DoutputDirectory=target/lib -DincludeScope=runtime) >&2
  cp -r "$JAVA_DIR/target/classes" "$JAVA_DIR/target/lib" "$CACHE/java/"
  cat >"$CACHE/bin/java-peer" <<JAVA
#!/bin/sh
# The Java ThriftTest peer (tests/interop/java), as built by scripts/interop.sh.
exec java -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -cp "$CACHE/java/classes:$CACHE/java/lib/*" weft.interop.Peer "\$@"
JAVA
  chmod +x "$CACHE/bin/java-peer"
  echo "$hash" >"$CACHE/stamp"
  log "peers built in $((SECONDS - started)) s"
  echo "$CACHE"
}

# The results file as a Markdown table, sorted.
table() {
  echo "| peer | direction | transport | protocol | check | result |"
  echo "|---|---|---|---|---|---|"
  LC_ALL=C sort "$1" | while IFS=$'\t' read -r peer dir transport protocol check result why; do
    if [ "$result" = pass ]; then
      echo "| $peer | $dir | $transport | $protocol | $check | pass |"
    else
      echo "| $peer | $dir | $transport | $protocol | $check | **FAIL**: ${why//|/\\|} |"
    fi
  done
}

case "$MODE" in
  build)
    build
    exit 0
    ;;
  run | --readme) ;;
  *)
    echo "usage: scripts/interop.sh [build|--readme]" >&2
    exit 2
    ;;
esac

started=$SECONDS
peers=$(build)
log "running the matrix"
results="$ROOT/target/interop-results.tsv"
mkdir -p "$ROOT/target"
: >"$results"
status=0
WEFT_INTEROP_PEERS="$peers" WEFT_INTEROP_RESULTS="$results" \
  cargo test -p weft-interop --features polyglot --no-fail-fast --test kitex --test kitex_grpc --test kitex_etcd --test apache_go --test apache_java \
  -- --test-threads=4 >"$ROOT/target/interop-test.log" 2>&1 || status=$?
tbl="$ROOT/target/interop-table.md"
table "$results" >"$tbl"
cat "$tbl"
cells=$(wc -l <"$results")
fails=$(grep -c $'\tFAIL\t' "$results" || true)
echo "$cells cells, $((cells - fails)) passed, $fails failed ($((SECONDS - started)) s; log: target/interop-test.log)"
grep -E '^(test result|error)' "$ROOT/target/interop-test.log" >&2 || true
if [ "$status" != 0 ]; then
  # A test that died before recording its cell shows only in the log.
  grep -E '^test .* FAILED$|panicked' "$ROOT/target/interop-test.log" >&2 || true
  echo "interop: the matrix failed (cargo test exited $status)" >&2
  exit 1
fi
if [ "$MODE" = --readme ]; then
  python3 - "$tbl" <<'PY'
import re, sys
table = open(sys.argv[1]).read().strip()
readme = open("README.md").read()
start, end = "<!-- interop-table: scripts/interop.sh --readme -->", "<!-- /interop-table -->"
new = re.sub(re.escape(start) + ".*?" + re.escape(end), start + "\n" + table + "\n" + end, readme, flags=re.S)
assert new != readme or table in readme, "README.md has no interop-table markers"
open("README.md", "w").write(new)
PY
  log "README.md table updated"
fi
