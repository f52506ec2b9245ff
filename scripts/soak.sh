#!/usr/bin/env bash
# The soak test at length: mixed Thrift and gRPC load against a server
# process, failing if either process's memory, open files or tasks grow
# after warm-up (tests/soak). Niced, so the machine stays usable.
#
#   scripts/soak.sh            # 30 minutes
#   scripts/soak.sh 600        # any length, in seconds
#   WEFT_SOAK_OUT=dir scripts/soak.sh   # where samples.csv, chart.svg and
#                                       # summary.txt go (default benches/results/soak)
set -euo pipefail
cd "$(dirname "$0")/.."
export WEFT_SOAK_SECS="${1:-1800}"
export WEFT_SOAK_OUT="${WEFT_SOAK_OUT:-$PWD/benches/results/soak}"
# --workspace so that features resolve as in `cargo test --workspace`, which
# has built everything this needs.
exec nice -n 10 cargo test --workspace --test soak -- --ignored --nocapture
