#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# `make check-debug`: the machine prepared (tests/setup.sh), the debug kernel
# built or taken from its cache (tests/debug_kernel.sh), then every kernel
# test on it (kernel 6.1-debug: KASAN, lockdep, kmemleak, UBSAN, DEBUG_VM/LIST/
# PAGEALLOC, PAGE_OWNER, fault injection). DEBUG_KERNEL_FLAVOUR=kcsan
# (`make check-kcsan`): the same on kernel 6.1-kcsan, KCSAN instead of KASAN.
# Last line: "N passed, N failed".
set -uo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$REPO" || exit 1

T0=$(date +%s)
if ! bash tests/setup.sh; then
	echo "setup failed"
	echo "0 passed, 1 failed"
	exit 1
fi
if ! bash tests/debug_kernel.sh; then
	echo "debug kernel build failed"
	echo "0 passed, 1 failed"
	exit 1
fi
echo "check-debug: setup and debug kernel ready in $(( $(date +%s) - T0 )) s"
# Only the tests that run on a kernel: the others ran in `make check`.
exec python3 tests/run_tests.py --kernels "6.1-${DEBUG_KERNEL_FLAVOUR:-debug}" --kernel-tests-only "$@"
