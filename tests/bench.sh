#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# make bench: vmmemctl against the in-tree vmw_balloon under the simulated host.
#   BENCH_RUNS=N   runs per driver and workload (default 3)
#   BENCH_QUICK=1  one run, batched modes only, large balloons in the 2 GiB guest only
#   BENCH_ONLY=large,pressure,modes,fragmentation  only these workloads
#   BENCH_LARGE_MB=2048[,8192]       large balloons: only guests of these sizes
#   BENCH_LARGE_MODES=batched+2M[,batched]  large balloons: only these modes
#   KERNEL=<id>    the guest kernel of the matrix (default: the first, 6.1)
# Table: stdout and tests/out/bench/results.md (raw: tests/out/bench/runs.json).
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$REPO"
# Retry once (a concurrent apt-get update can leave the lists briefly
# unreadable); if setup still fails but the kernel is prepared, go on with it.
if ! bash tests/setup.sh; then
    echo "bench: setup failed, retrying in 10 s" >&2
    sleep 10
    bash tests/setup.sh || echo "bench: WARNING: tests/setup.sh failed; using the cached guests" >&2
fi
if [ -n "${KERNEL:-}" ]; then export VMMEMCTL_KERNEL="$KERNEL"; fi
exec python3 tests/bench/bench.py "$@"
