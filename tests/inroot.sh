#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# Run a command inside one of the rig's Debian roots (tests/setup.sh makes
# them): a private mount and PID namespace, /proc mounted only in there, so
# nothing leaks onto the machine and every process dies with the command.
#   tests/inroot.sh ROOT COMMAND [ARG...]
set -euo pipefail
ROOT=${1:?usage: inroot.sh ROOT COMMAND [ARG...]}
shift
[ -x "$ROOT/bin/sh" ] || { echo "inroot: $ROOT is not a root" >&2; exit 1; }
exec unshare --mount --pid --fork --kill-child chroot "$ROOT" /bin/sh -c \
    'mount -t proc proc /proc 2>/dev/null || true; cd /; exec "$@"' sh "$@"
