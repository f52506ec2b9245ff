#!/usr/bin/env bash
# The gRPC interop cases against grpc-go, grpcio and tonic, both ways, and
# the table of their outcomes (case × peer × direction: pass / FAIL /
# n/a-peer), as a Markdown table for README.md.
#
#   scripts/grpc-interop.sh              # run the interop tests, then print the table
#   scripts/grpc-interop.sh --table-only # print the table of the last run
#
# Needs what scripts/test.sh installs (Go, grpcio and grpcio-tools, protoc).
# The tests record one file per peer and direction in
# $CARGO_TARGET_DIR/interop-peers/results (or $WEFT_INTEROP_PEERS/results).
set -uo pipefail
cd "$(dirname "$0")/.."

TARGET="${CARGO_TARGET_DIR:-$PWD/target}"
RESULTS="${WEFT_INTEROP_PEERS:-$TARGET/interop-peers}/results"
CASES=(empty_unary large_unary client_compressed_unary server_compressed_unary
  client_streaming client_compressed_streaming server_streaming
  server_compressed_streaming ping_pong empty_stream custom_metadata
  status_code_and_message special_status_message unimplemented_method
  unimplemented_service cancel_after_begin cancel_after_first_response
  timeout_on_sleeping_server)
PEERS=(grpc-go grpcio tonic)

rc=0
if [ "${1:-}" != "--table-only" ]; then
  rm -rf "$RESULTS"
  nice cargo test -p weft-grpc-tests --test grpc_go --test grpcio || rc=$?
  nice cargo test -p weft-grpc-tonic --test tonic || rc=$?
fi

# outcome CASE PEER DIRECTION-FILE
outcome() {
  local f="$RESULTS/$2-$3.tsv"
  if [ ! -f "$f" ]; then echo "not run"; return; fi
  awk -F'\t' -v c="$1" '$1 == c { print $4; found = 1 } END { if (!found) print "not run" }' "$f"
}

header="| case |"
rule="|---|"
for p in "${PEERS[@]}"; do
  header+=" $p client → Weft server | Weft client → $p server |"
  rule+="---|---|"
done
echo "$header"
echo "$rule"
for c in "${CASES[@]}"; do
  row="| \`$c\` |"
  for p in "${PEERS[@]}"; do
    row+=" $(outcome "$c" "$p" peer-client) | $(outcome "$c" "$p" peer-server) |"
  done
  echo "$row"
done

# Why each n/a-peer or FAIL, from the tests' records.
if ls "$RESULTS"/*.tsv >/dev/null 2>&1; then
  awk -F'\t' '$4 != "pass" { printf "\n- %s, %s %s: %s: %s", $1, $2, $3, $4, substr($5, 1, 200) } END { print "" }' "$RESULTS"/*.tsv
fi
exit $rc
