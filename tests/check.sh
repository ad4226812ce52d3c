#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# Every test: prepare the machine (packages, guest kernels, initramfs), then
# the static checks and the guest scenarios on every kernel of the matrix,
# and the debug tier: every kernel test again, on a KASAN/lockdep/kmemleak
# build of Debian's 6.1 (tests/debug_kernel.sh; built once per machine, then
# cached). Naming KERNELS (or DEBUG_TIER=0) leaves the debug
# tier out. Last line: "N passed, N failed".
set -uo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$REPO" || exit 1

if ! bash tests/setup.sh; then
	echo "setup failed"
	echo "0 passed, 1 failed"
	exit 1
fi
debug=()
if [ -z "${KERNELS:-}" ] && [ "${DEBUG_TIER:-1}" != 0 ]; then
	T0=$(date +%s)
	if bash tests/debug_kernel.sh; then
		echo "check: debug kernel ready in $(( $(date +%s) - T0 )) s"
		debug=(--debug-tier 6.1-debug)
	else
		debug=(--debug-tier-failed "tests/debug_kernel.sh failed")
	fi
fi
exec python3 tests/run_tests.py "${debug[@]}" "$@"
