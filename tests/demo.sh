#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# The demo: a VMware-looking guest under the simulated host; the host asks
# for memory, then gives it back, and the balloon follows. Exits by itself.
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$REPO"
bash tests/setup.sh
make -s KDIR="/usr/src/linux-headers-$(cat .cache/kver)" >/dev/null
exec python3 tests/demo.py "$@"
