#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# The demo: a VMware-looking guest under the simulated host; the host asks
# for memory, then gives it back, and the balloon follows. Exits by itself.
#   KERNEL=<id>    the guest kernel of the matrix (default: the first, 6.1)
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$REPO"
bash tests/setup.sh
if [ -n "${KERNEL:-}" ]; then export VMMEMCTL_KERNEL="$KERNEL"; fi
exec python3 tests/demo.py "$@"
