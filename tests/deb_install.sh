#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# Install the vmmemctl-dkms .deb into a Debian root, check what it did, take the
# DKMS-built module out, then remove and purge it and check nothing is left.
#
#   tests/deb_install.sh ROOT KVER OUTDIR [KVER2 OUTDIR2 ...]
#
# ROOT: a Debian root (debootstrap) with linux-headers-KVER installed, entered
# with unshare + chroot. The package is installed once; DKMS builds it for every
# kernel with headers in ROOT; each KVER's module ends up as OUTDIR/vmmemctl.ko
# (decompressed); apt's and dkms' output goes to the first OUTDIR's
# deb_install.log. The .deb: $DEB if set, else dist/vmmemctl-dkms_<version>_all.deb,
# built (or refreshed) with `make deb`. Re-runnable: a previous install in ROOT
# is purged first. Exits non-zero with a message on the first failure.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
say() { echo "deb_install: $*"; }
die() { echo "deb_install: ERROR: $*" >&2; exit 1; }

[ $# -ge 3 ] && [ $(($# % 2)) -eq 1 ] || die "usage: $0 ROOT KVER OUTDIR [KVER OUTDIR ...]"
[ "$(id -u)" = 0 ] || die "must run as root (chroot, unshare)"
ROOT=$(cd "$1" && pwd) || die "no root directory $1"
shift
KVERS=() OUTDIRS=()
while [ $# -gt 0 ]; do KVERS+=("$1"); OUTDIRS+=("$2"); shift 2; done

[ -x "$ROOT/usr/bin/apt-get" ] || die "$ROOT is not a Debian root (no apt-get)"
for k in "${KVERS[@]}"; do
    [ -d "$ROOT/usr/src/linux-headers-$k" ] && [ -e "$ROOT/lib/modules/$k/build" ] ||
        die "linux-headers-$k is not installed in $ROOT"
done

VERSION=$(sed -n 's/.*define VMMEMCTL_VERSION[^"]*"\([^"]*\)".*/\1/p' "$REPO/vmmemctl.h")
[ -n "$VERSION" ] || die "no VMMEMCTL_VERSION in vmmemctl.h"
if [ -z "${DEB:-}" ]; then
    # One `make deb` at a time: package tests of several roots run side by side.
    mkdir -p "$REPO/dist"
    flock "$REPO/dist/.make-deb.lock" make -s -C "$REPO" deb >/dev/null || die "make deb failed"
    DEB="$REPO/dist/vmmemctl-dkms_${VERSION}_all.deb"
fi
[ -f "$DEB" ] || die "no package at $DEB"

WORK=/tmp/vmmemctl-deb-test            # inside ROOT
rm -rf "$ROOT$WORK"
mkdir -p "$ROOT$WORK/out"
LOG="${OUTDIRS[0]}/deb_install.log"    # apt and dkms output, kept
mkdir -p "${OUTDIRS[0]}"
trap 'cp "$ROOT$WORK/apt.log" "$LOG" 2>/dev/null; rm -rf "$ROOT$WORK"' EXIT
install -m 644 "$DEB" "$ROOT$WORK/"
printf '%s\n' "${KVERS[@]}" > "$ROOT$WORK/kvers"

# Runs inside ROOT. Prints "FAIL: reason" and exits 1 on a failed check.
cat > "$ROOT$WORK/run.sh" <<'EOF'
set -u
export DEBIAN_FRONTEND=noninteractive LC_ALL=C PATH=/usr/sbin:/usr/bin:/sbin:/bin
W=/tmp/vmmemctl-deb-test V=$1 DEBFILE=$2
CONF=/usr/lib/modprobe.d/vmmemctl-dkms.conf
APT="apt-get -y -q -o DPkg::Lock::Timeout=300 --no-install-recommends"
fail() { echo "FAIL: $*"; exit 1; }
log() { "$@" >>$W/apt.log 2>&1; }
gone() {   # everything the package put in place is gone
    for k in $(cat $W/kvers); do
        ls /lib/modules/$k/updates/dkms/vmmemctl.ko* >/dev/null 2>&1 &&
            fail "$1: module left in /lib/modules/$k/updates/dkms"
    done
    [ ! -e /var/lib/dkms/vmmemctl ] || fail "$1: /var/lib/dkms/vmmemctl left behind"
    [ ! -e /usr/src/vmmemctl-$V ] || fail "$1: /usr/src/vmmemctl-$V left behind"
    [ ! -e $CONF ] || fail "$1: $CONF left behind"
    ! modprobe -c 2>/dev/null | grep -Eq '^(blacklist|install) vmw_balloon' ||
        fail "$1: modprobe config still blacklists vmw_balloon"
}

if dpkg-query -W -f='${Status}' vmmemctl-dkms 2>/dev/null | grep -qv 'not-installed'; then
    echo "purging a previous install"
    log dpkg --purge vmmemctl-dkms || fail "dpkg --purge of the previous install failed"
fi
if [ -d /var/lib/dkms/vmmemctl ] && command -v dkms >/dev/null; then
    log dkms remove vmmemctl/$V --all || true
fi

echo "apt-get install ./$(basename $DEBFILE)"
cd $W
t0=$(date +%s)
if ! log $APT install ./$(basename $DEBFILE); then
    log apt-get update -q && log $APT install ./$(basename $DEBFILE) ||
        { tail -n 40 $W/apt.log; fail "apt-get install ./$(basename $DEBFILE) failed"; }
fi
echo "installed in $(($(date +%s) - t0)) s"

for k in $(cat $W/kvers); do
    st=$(dkms status -m vmmemctl -v $V -k $k 2>&1)
    echo "$st" | grep -q 'installed' || { tail -n 40 $W/apt.log; fail "dkms status for $k: '$st'"; }
    echo "dkms status: $st"
    ko=$(ls /lib/modules/$k/updates/dkms/vmmemctl.ko* 2>/dev/null | head -n1)
    [ -n "$ko" ] || fail "no vmmemctl.ko* in /lib/modules/$k/updates/dkms"
    mkdir -p $W/out/$k && cp $ko $W/out/$k/
done

[ -f $CONF ] || fail "$CONF not installed"
grep -qx 'blacklist vmw_balloon' $CONF || fail "$CONF: no 'blacklist vmw_balloon' line"
grep -qx 'install vmw_balloon /bin/false' $CONF || fail "$CONF: no 'install vmw_balloon /bin/false' line"
modprobe -c 2>/dev/null | grep -qx 'blacklist vmw_balloon' || fail "modprobe -c does not show the blacklist"
modprobe -c 2>/dev/null | grep -qx 'install vmw_balloon /bin/false' || fail "modprobe -c does not show the install line"
echo "$CONF: blacklist and install lines in place, seen by modprobe"

# Removal alone must undo it all (the modprobe file is no conffile), purge the rest.
log $APT remove vmmemctl-dkms || fail "apt-get remove failed"
gone "after remove"
log dpkg --purge vmmemctl-dkms || fail "dpkg --purge failed"
gone "after purge"
dpkg-query -W -f='${Status}' vmmemctl-dkms 2>/dev/null | grep -qv 'not-installed' &&
    fail "dpkg still knows vmmemctl-dkms after purge"
echo "removed and purged: no module, no dkms tree, no source, no modprobe file"
EOF

say "root $ROOT, kernels ${KVERS[*]}, package $(basename "$DEB")"
rc=0
unshare --mount --pid --fork chroot "$ROOT" /bin/sh -c \
    'mount -t proc proc /proc && exec /bin/sh /tmp/vmmemctl-deb-test/run.sh "$@"' \
    sh "$VERSION" "$WORK/$(basename "$DEB")" 2>&1 | sed 's/^/  /' || rc=$?
[ "$rc" = 0 ] || die "in $ROOT (see above; apt and dkms output: $LOG)"

for i in "${!KVERS[@]}"; do
    k=${KVERS[$i]} out=${OUTDIRS[$i]}
    src=$(ls "$ROOT$WORK/out/$k"/vmmemctl.ko* 2>/dev/null | head -n1)
    [ -n "$src" ] || die "module for $k was not copied out"
    mkdir -p "$out"
    case "$src" in
        *.ko) cp "$src" "$out/vmmemctl.ko" ;;
        *.ko.xz) xz -dc "$src" > "$out/vmmemctl.ko" ;;
        *.ko.zst) zstd -qdc "$src" > "$out/vmmemctl.ko" ;;
        *.ko.gz) gzip -dc "$src" > "$out/vmmemctl.ko" ;;
        *) die "unknown module compression: $src" ;;
    esac || die "cannot decompress $src"
    vm=$(modinfo -F vermagic "$out/vmmemctl.ko" 2>/dev/null | awk '{print $1}')
    [ "$vm" = "$k" ] || die "$out/vmmemctl.ko: vermagic '$vm', expected $k"
    ver=$(modinfo -F version "$out/vmmemctl.ko" 2>/dev/null)
    [ "$ver" = "$VERSION" ] || die "$out/vmmemctl.ko: version '$ver', expected $VERSION"
    say "$k: $out/vmmemctl.ko (from $(basename "$src"), vermagic $vm)"
done
say "ok"
