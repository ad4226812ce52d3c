#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# Every test: prepare the machine (packages, guest kernel, initramfs), then
# the static checks and the guest scenarios. Last line: "N passed, N failed".
set -uo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$REPO" || exit 1

if ! bash tests/setup.sh; then
	echo "setup failed"
	echo "0 passed, 1 failed"
	exit 1
fi
exec python3 tests/run_tests.py "$@"
