#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# Prepare everything the vmmemctl test rig needs; idempotent and cached.
#   - Debian packages (qemu, busybox-static, cpio, sparse, toolchain, headers)
#   - guest kernel image (+ in-tree vmw_balloon/vmw_vmci) in .cache/kernel
#   - checkpatch.pl from linux-source-6.1 in .cache/checkpatch
#   - static memhog helper and the base initramfs
# Everything lands under <repo>/.cache (git-ignored).
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CACHE="$REPO/.cache"
mkdir -p "$CACHE"
rm -rf "$CACHE"/dl.* "$CACHE"/rootfs.*
TMPD=""
trap '[ -n "$TMPD" ] && rm -rf "$TMPD"' EXIT
export DEBIAN_FRONTEND=noninteractive

say() { echo "setup: $*"; }
die() { echo "setup: ERROR: $*" >&2; exit 1; }

SUDO=""
if [ "$(id -u)" != 0 ]; then
    command -v sudo >/dev/null && SUDO=sudo || die "must run as root (or have sudo)"
fi

APT_UPDATED=0
apt_update_once() {
    if [ "$APT_UPDATED" = 0 ]; then
        say "apt-get update"
        $SUDO apt-get update -qq || die "apt-get update failed"
        APT_UPDATED=1
    fi
}

pkg_installed() {
    dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"
}

# ---------------------------------------------------------------- packages
PKGS="qemu-system-x86 busybox-static cpio sparse python3 gcc make libc6-dev kmod bc xz-utils binutils"
MISSING=""
for p in $PKGS; do pkg_installed "$p" || MISSING="$MISSING $p"; done
if [ -n "$MISSING" ]; then
    apt_update_once
    say "installing:$MISSING"
    $SUDO apt-get install -y -qq --no-install-recommends $MISSING >/dev/null || die "apt-get install failed"
fi

# ---------------------------------------------------------------- kernel version
# The newest 6.1 release any version of linux-headers-amd64 points at (never
# hard-code NN). Other suites (e.g. backports' 6.12) may be configured too: only
# bookworm's 6.1 is taken, and the metapackage itself is never installed.
headers_dep() {
    apt-cache show linux-headers-amd64 2>/dev/null |
        sed -n 's/^Depends:.*linux-headers-\(6\.1\.0-[0-9][0-9]*-amd64\).*/\1/p' |
        sort -t- -k2,2n | tail -n1
}
KVER=$(headers_dep || true)
if [ -z "$KVER" ]; then
    apt_update_once
    KVER=$(headers_dep || true)
fi
[ -n "$KVER" ] || die "cannot derive the 6.1 kernel release from linux-headers-amd64"
# If that release's headers are not installed, apt lists may be stale: refresh once.
if ! pkg_installed "linux-headers-$KVER"; then
    apt_update_once
    KVER=$(headers_dep)
    [ -n "$KVER" ] || die "cannot derive the 6.1 kernel release after apt-get update"
fi
if ! pkg_installed "linux-headers-$KVER"; then
    say "installing linux-headers-$KVER"
    $SUDO apt-get install -y -qq --no-install-recommends "linux-headers-$KVER" >/dev/null \
        || die "cannot install linux-headers-$KVER"
fi
[ -d "/usr/src/linux-headers-$KVER" ] || die "/usr/src/linux-headers-$KVER missing"
echo "$KVER" > "$CACHE/kver.tmp" && mv "$CACHE/kver.tmp" "$CACHE/kver"
say "kernel release $KVER"

# ---------------------------------------------------------------- kernel image
# Only boot/ and the two reference modules are taken from the image .deb. The
# modules are stored as .kmod (plain ELF .ko): the module's `make clean` runs a
# find over the whole source tree (.cache included) deleting *.ko and *.ko.*.
KDIR="$CACHE/kernel"
MODS="$CACHE/modules"
MISC="lib/modules/$KVER/kernel/drivers/misc"
if [ "$(cat "$CACHE/kernel.kver" 2>/dev/null)" != "$KVER" ] || ! ls "$KDIR/boot/vmlinuz-$KVER" >/dev/null 2>&1 \
        || [ ! -s "$MODS/vmw_balloon.kmod" ] || [ ! -s "$MODS/vmw_vmci.kmod" ]; then
    say "fetching linux-image-$KVER-unsigned"
    rm -rf "$KDIR" "$MODS" "$CACHE/kernel.kver"
    TMPD=$(mktemp -d "$CACHE/dl.XXXXXX")
    ( cd "$TMPD" && apt-get download "linux-image-$KVER-unsigned" >/dev/null 2>&1 ) || {
        apt_update_once
        ( cd "$TMPD" && apt-get download "linux-image-$KVER-unsigned" >/dev/null ) \
            || die "apt-get download linux-image-$KVER-unsigned failed"
    }
    mkdir -p "$KDIR" "$MODS" "$TMPD/x"
    dpkg-deb --fsys-tarfile "$TMPD"/linux-image-*.deb |
        tar -x -C "$TMPD/x" --wildcards './boot/*' "./$MISC/vmw_balloon.ko*" "./$MISC/vmw_vmci/vmw_vmci.ko*" \
        || die "extracting the kernel image failed"
    mv "$TMPD/x/boot" "$KDIR/boot"
    for m in vmw_balloon:"$MISC/vmw_balloon" vmw_vmci:"$MISC/vmw_vmci/vmw_vmci"; do
        name=${m%%:*}; base="$TMPD/x/${m#*:}"
        if [ -f "$base.ko" ]; then cp "$base.ko" "$MODS/$name.kmod"
        elif [ -f "$base.ko.xz" ]; then xz -dc "$base.ko.xz" > "$MODS/$name.kmod"
        elif [ -f "$base.ko.zst" ]; then zstd -dc "$base.ko.zst" > "$MODS/$name.kmod"
        else die "reference module $name not in linux-image-$KVER-unsigned"; fi
    done
    rm -rf "$TMPD"; TMPD=""
    echo "$KVER" > "$CACHE/kernel.kver"
fi
VMLINUZ="$KDIR/boot/vmlinuz-$KVER"
[ -f "$VMLINUZ" ] || die "no $VMLINUZ"
ln -sfn "$VMLINUZ" "$CACHE/vmlinuz"
say "kernel $(basename "$VMLINUZ"); reference modules .cache/modules/{vmw_balloon,vmw_vmci}.kmod"

# ---------------------------------------------------------------- checkpatch
CP="$CACHE/checkpatch"
if [ ! -f "$CP/checkpatch.pl" ] || [ ! -f "$CP/spelling.txt" ] || [ ! -f "$CP/const_structs.checkpatch" ]; then
    say "fetching linux-source-6.1 for checkpatch (big, once)"
    TMPD=$(mktemp -d "$CACHE/dl.XXXXXX")
    # Prefer the source version matching the headers' package version.
    HVER=$(dpkg-query -W -f='${Version}' "linux-headers-$KVER" 2>/dev/null || true)
    ( cd "$TMPD" && { [ -n "$HVER" ] && apt-get download "linux-source-6.1=$HVER" >/dev/null 2>&1 || apt-get download linux-source-6.1 >/dev/null 2>&1; } ) || {
        apt_update_once
        ( cd "$TMPD" && apt-get download linux-source-6.1 >/dev/null ) || die "apt-get download linux-source-6.1 failed"
    }
    dpkg -x "$TMPD"/linux-source-6.1_*.deb "$TMPD/x"
    rm -f "$TMPD"/linux-source-6.1_*.deb
    TARBALL=$(ls "$TMPD"/x/usr/src/linux-source-6.1.tar.* | head -n1)
    [ -n "$TARBALL" ] || die "no tarball in linux-source-6.1"
    mkdir -p "$CP" "$TMPD/src"
    tar -xf "$TARBALL" -C "$TMPD/src" --wildcards '*/scripts/checkpatch.pl' '*/scripts/spelling.txt' \
        '*/scripts/const_structs.checkpatch' || die "extracting checkpatch failed"
    for f in checkpatch.pl spelling.txt const_structs.checkpatch; do
        cp "$(ls "$TMPD"/src/*/scripts/$f | head -n1)" "$CP/$f"
    done
    chmod +x "$CP/checkpatch.pl"
    rm -rf "$TMPD"; TMPD=""
fi
say "checkpatch in .cache/checkpatch"

# ---------------------------------------------------------------- guest helpers
# memhog (memory pressure) and rig-agent (the command agent on ttyS1), static.
for prog in memhog:memhog rig-agent:agent; do
    out="$CACHE/${prog%%:*}"; src="$REPO/tests/guest/${prog#*:}.c"
    if [ ! -x "$out" ] || [ "$src" -nt "$out" ]; then
        say "building ${prog%%:*}"
        gcc -static -O2 -Wall -o "$out.tmp" "$src" || die "${prog%%:*} build failed"
        mv "$out.tmp" "$out"
    fi
done

# ---------------------------------------------------------------- initramfs
BB=/bin/busybox
[ -x "$BB" ] || BB=$(command -v busybox)
INIT="$REPO/tests/guest/init"
STAMP=$( { sha256sum "$BB" "$INIT" "$CACHE/memhog" "$CACHE/rig-agent" "$0" | cut -d' ' -f1; } | sha256sum | cut -d' ' -f1)
IRD="$CACHE/initramfs.cpio.gz"
if [ ! -f "$IRD" ] || [ "$(cat "$CACHE/initramfs.stamp" 2>/dev/null)" != "$STAMP" ]; then
    say "building base initramfs"
    ROOT=$(mktemp -d "$CACHE/rootfs.XXXXXX")
    mkdir -p "$ROOT"/{bin,sbin,usr/bin,usr/sbin,dev,proc,sys,tmp,modules,etc,root}
    cp "$BB" "$ROOT/bin/busybox"
    for app in $("$BB" --list-full); do
        case "$app" in bin/busybox) continue ;; esac
        mkdir -p "$ROOT/$(dirname "$app")"
        [ -e "$ROOT/$app" ] || ln -s /bin/busybox "$ROOT/$app"
    done
    cp "$INIT" "$ROOT/init"; chmod 755 "$ROOT/init"
    cp "$CACHE/memhog" "$ROOT/bin/memhog"
    cp "$CACHE/rig-agent" "$ROOT/bin/rig-agent"
    # the agent's no-fork commands, as plain commands for the shell agent
    printf '#!/bin/sh\nexec cat "$@"\n' > "$ROOT/bin/@cat"
    printf '#!/bin/sh\nexec dmesg\n' > "$ROOT/bin/@dmesg"
    chmod 755 "$ROOT/bin/@cat" "$ROOT/bin/@dmesg"
    ( cd "$ROOT" && find . -mindepth 1 | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet ) | gzip -9 > "$IRD.tmp"
    mv "$IRD.tmp" "$IRD"
    rm -rf "$ROOT"
    echo "$STAMP" > "$CACHE/initramfs.stamp"
fi
say "initramfs .cache/initramfs.cpio.gz ($(du -k "$IRD" | cut -f1) KiB)"
say "ok"
