#!/usr/bin/env bash
# A newcomer's first hour, scripted: in a temp dir outside the repo,
# `weft init` on a realistic IDL (scripts/newcomer/users.thrift), against
# this checkout (--weft-path); the crate as written must be clippy-clean;
# then the handler and a checking client (scripts/newcomer/*.rs) go in,
# two servers start, and every call goes through the builder client with a
# timeout, retries and three addresses (one refusing), answers checked.
#
#   scripts/newcomer.sh
#
# It builds in the workspace's target dir with the workspace's Cargo.lock,
# so the dependencies the tests built are reused, not built again.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$repo/target}"
tmp="$(mktemp -d "${TMPDIR:-/tmp}/weft-newcomer.XXXXXX")"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$tmp"
}
trap cleanup EXIT

(cd "$repo" && cargo build --quiet -p weft-rpc-codegen --bin weft)
"$CARGO_TARGET_DIR/debug/weft" init "$tmp/users-svc" \
  --idl "$repo/scripts/newcomer/users.thrift" --weft-path "$repo" >/dev/null
cp "$repo/Cargo.lock" "$tmp/users-svc/Cargo.lock"
cd "$tmp/users-svc"

echo "newcomer: weft init's crate, as written, is clippy-clean"
cargo clippy --quiet --all-targets -- -D warnings

cp "$repo/scripts/newcomer/main.rs" src/main.rs
cp "$repo/scripts/newcomer/check.rs" examples/check.rs
cargo build --quiet --bin users-svc --example check

audit="$tmp/audit.log"
addrs=()
for i in 1 2; do
  NEWCOMER_AUDIT="$audit" "$CARGO_TARGET_DIR/debug/users-svc" 127.0.0.1:0 >"$tmp/server$i.out" 2>&1 &
  pids+=("$!")
done
for i in 1 2; do
  for _ in $(seq 100); do
    grep -q "listening on" "$tmp/server$i.out" && break
    sleep 0.05
  done
  addr="$(sed -n 's/^listening on //p' "$tmp/server$i.out")"
  [ -n "$addr" ] || { echo "server $i did not start:"; cat "$tmp/server$i.out"; exit 1; }
  addrs+=("$addr")
done
# A third address that refuses: bound, then closed.
dead="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print("127.0.0.1:%d" % s.getsockname()[1]); s.close()')"

echo "newcomer: calling ${addrs[*]} $dead"
"$CARGO_TARGET_DIR/debug/examples/check" "${addrs[@]}" "$dead"
for _ in $(seq 100); do
  grep -qx "newcomer was here" "$audit" 2>/dev/null && break
  sleep 0.05
done
grep -qx "newcomer was here" "$audit" || { echo "the one-way audit call never arrived"; exit 1; }
echo "newcomer: ok"
