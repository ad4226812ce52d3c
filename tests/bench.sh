#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# make bench: vmmemctl against the in-tree vmw_balloon under the simulated host.
#   BENCH_RUNS=N   runs per driver and workload (default 3)
#   BENCH_QUICK=1  one run, batched modes only
# Table: stdout and tests/out/bench/results.md (raw: tests/out/bench/runs.json).
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$REPO"
# (retry once: a concurrent apt-get update can leave the lists briefly unreadable)
bash tests/setup.sh || { echo "bench: setup failed, retrying in 10 s" >&2; sleep 10; bash tests/setup.sh; }
make -C "$REPO" KDIR=/usr/src/linux-headers-"$(cat "$REPO/.cache/kver")"
exec python3 tests/bench/bench.py "$@"
