#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# The debug kernel of `make check-debug`: Debian's own 6.1 sources
# (linux-source-6.1, the Debian version of the installed linux-headers-6.1.0-NN
# when apt still offers it) built from x86_64_defconfig, trimmed for a busybox
# initramfs guest, with KASAN, lockdep, kmemleak, UBSAN, DEBUG_VM/LIST/PAGEALLOC,
# PAGE_OWNER and fault injection (tests/debug_kernel.config).
#
# The built tree is cached outside the clone, keyed by the source package
# version and a hash of this script and the config fragment:
#   ${VMMEMCTL_DEBUG_KERNEL_CACHE:-/var/cache/vmmemctl/debug-kernel}/<key>/
#       linux/          the source and object tree (make KDIR=... builds against it)
#       done            written last; its presence makes a later run skip the build
#       build.log
# and installed as a kernel of the rig, $CACHE/kernels/6.1-debug/ (the layout of
# tests/setup.sh: kver, vmlinuz, modules/*.kmod, root, kdir; no vmlinux, see
# below) plus
# `cmdline` (extra boot arguments) and `slowdown` (a factor for the rig's boot
# and wait timeouts). $CACHE is VMMEMCTL_CACHE or <repo>/.cache.
#
# Measured (2 cores, other guests running beside): see README.md.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CACHE=${VMMEMCTL_CACHE:-$REPO/.cache}
DKC=${VMMEMCTL_DEBUG_KERNEL_CACHE:-/var/cache/vmmemctl/debug-kernel}
# DEBUG_KERNEL_FLAVOUR=kcsan (`make check-kcsan`): KCSAN instead of KASAN,
# tests/debug_kernel_kcsan.config over the fragment, kernel 6.1-kcsan.
FLAVOUR=${DEBUG_KERNEL_FLAVOUR:-debug}
case "$FLAVOUR" in
    debug) FRAG="$REPO/tests/debug_kernel.config" ;;
    kcsan)
        # one fragment: for each symbol the overlay's line, else the base's
        FRAG=$(mktemp)
        trap 'rm -f "$FRAG"' EXIT
        awk '!/^[[:space:]]*(#|$)/ { key[$2] = $0; if (!($2 in seen)) { seen[$2] = 1; order[++n] = $2 } }
             END { for (i = 1; i <= n; i++) print key[order[i]] }' \
            "$REPO/tests/debug_kernel.config" "$REPO/tests/debug_kernel_kcsan.config" > "$FRAG" ;;
    *) echo "debug-kernel: unknown DEBUG_KERNEL_FLAVOUR $FLAVOUR" >&2; exit 1 ;;
esac
ID=6.1-$FLAVOUR
OUT="$CACHE/kernels/$ID"
# Niced, so more jobs than CPUs only take what other work leaves idle.
JOBS=${DEBUG_KERNEL_JOBS:-$(( $(nproc) * 3 ))}
export DEBIAN_FRONTEND=noninteractive
T0=$(date +%s)

say() { echo "debug-kernel: $*"; }
die() { echo "debug-kernel: ERROR: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || die "must run as root (apt-get)"

pkg_installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }
APT_UPDATED=0
apt_update_once() { [ "$APT_UPDATED" = 1 ] || { apt-get update -qq || die "apt-get update failed"; APT_UPDATED=1; }; }

# ------------------------------------------------------------ which source
# The Debian version of the installed linux-headers-6.1.0-NN-amd64 (NN derived,
# the newest installed), if apt still offers linux-source-6.1 at that version;
# else the newest linux-source-6.1.
HPKG=$(dpkg-query -W -f='${Package} ${Status}\n' 'linux-headers-6.1.0-*-amd64' 2>/dev/null |
       awk '/install ok installed/ { print $1 }' | sort -t- -k4,4n | tail -n1)
HVER=""
[ -n "$HPKG" ] && HVER=$(dpkg-query -W -f='${Version}' "$HPKG")
offered() { apt-cache madison linux-source-6.1 2>/dev/null | awk -F'|' '{ gsub(/ /, "", $2); print $2 }'; }
[ -n "$(offered)" ] || apt_update_once
SVER=""
if [ -n "$HVER" ] && offered | grep -qxF "$HVER"; then
    SVER=$HVER
else
    SVER=$(offered | sort -V | tail -n1)
fi
[ -n "$SVER" ] || die "apt offers no linux-source-6.1"
[ "$SVER" = "$HVER" ] || say "note: linux-source-6.1 $SVER (installed headers: ${HPKG:-none} ${HVER:-})"

# The key: the source version, the fragment and the build recipe (the part of
# this script between the "build" and "install" markers), not the rest.
recipe() { sed -n '/^# -* build (once per key)/,/^# -* install into/p' "${BASH_SOURCE[0]}"; }
KEY=$( { echo "$SVER"; cat "$FRAG"; recipe; } | sha256sum | cut -c1-16)
KEY="$SVER-$KEY"
B="$DKC/$KEY"
mkdir -p "$DKC"
exec 8>"$DKC/.lock"
flock 8

# ------------------------------------------------------------ build (once per key)
if [ ! -f "$B/done" ]; then
    say "building the debug kernel from linux-source-6.1 $SVER (once per machine; ~13-20 min on 2 cores)"
    MISSING=""
    for p in bc flex bison libelf-dev libssl-dev gcc make xz-utils kmod cpio; do
        pkg_installed "$p" || MISSING="$MISSING $p"
    done
    if [ -n "$MISSING" ]; then
        say "installing:$MISSING"
        apt-get install -y -qq --no-install-recommends $MISSING >/dev/null 2>&1 ||
            { apt_update_once; apt-get install -y -qq --no-install-recommends $MISSING >/dev/null; } ||
            die "apt-get install$MISSING failed"
    fi
    rm -rf "$B"
    mkdir -p "$B/dl"
    ( cd "$B/dl" && apt-get download "linux-source-6.1=$SVER" >/dev/null 2>&1 ) ||
        { apt_update_once; ( cd "$B/dl" && apt-get download "linux-source-6.1=$SVER" >/dev/null ); } ||
        die "apt-get download linux-source-6.1=$SVER failed"
    dpkg -x "$B"/dl/linux-source-6.1_*.deb "$B/dl/x"
    TARBALL=$(ls "$B"/dl/x/usr/src/linux-source-6.1.tar.* | head -n1)
    [ -n "$TARBALL" ] || die "no tarball in linux-source-6.1"
    mkdir -p "$B/src"
    tar -xf "$TARBALL" -C "$B/src"
    mv "$B/src/linux-source-6.1" "$B/linux"
    rm -rf "$B/dl" "$B/src"
    cd "$B/linux"
    {
        make -s x86_64_defconfig
        args=()
        while read -r op sym val; do
            case "$op" in
                ''|\#*) continue ;;
                enable) args+=(--enable "$sym") ;;
                disable) args+=(--disable "$sym") ;;
                module) args+=(--module "$sym") ;;
                set-str) args+=(--set-str "$sym" "$val") ;;
                set-val) args+=(--set-val "$sym" "$val") ;;
                *) die "debug_kernel.config: unknown operation $op" ;;
            esac
        done < "$FRAG"
        scripts/config "${args[@]}"
        make -s olddefconfig
        # twice: a symbol that depends on one enabled by the first pass
        scripts/config "${args[@]}"
        make -s olddefconfig
    } > "$B/config.log" 2>&1 || { cat "$B/config.log" >&2; die "configuring failed"; }
    bad=""
    while read -r op sym val; do
        case "$op" in
            enable) grep -qx "CONFIG_$sym=y" .config || bad="$bad $sym(y)" ;;
            module) grep -qx "CONFIG_$sym=m" .config || bad="$bad $sym(m)" ;;
            set-str) grep -qx "CONFIG_$sym=\"$val\"" .config || bad="$bad $sym" ;;
            set-val) grep -qx "CONFIG_$sym=$val" .config || bad="$bad $sym" ;;
        esac
    done < "$FRAG"
    [ -z "$bad" ] || die "options lost by olddefconfig (a dependency is off):$bad"
    say "config ok; make -j$JOBS bzImage modules (log: $B/build.log)"
    TB=$(date +%s)
    nice -n 10 make -j"$JOBS" bzImage modules > "$B/build.log" 2>&1 ||
        { tail -40 "$B/build.log" >&2; die "kernel build failed (log: $B/build.log)"; }
    # make KDIR=<tree> for out-of-tree modules: modules_prepare state and
    # Module.symvers are there after the build.
    make -s modules_prepare >> "$B/build.log" 2>&1 || die "modules_prepare failed"
    [ -s Module.symvers ] || die "no Module.symvers"
    make -s kernelrelease > "$B/kver"
    echo "$(( $(date +%s) - TB ))" > "$B/build-seconds"
    echo "$SVER" > "$B/source-version"
    touch "$B/done"
    say "built $(cat "$B/kver") in $(cat "$B/build-seconds") s"
fi

# ------------------------------------------------------------ install into the rig's cache
# Builds of other keys that never finished are dropped (we hold the lock).
for d in "$DKC"/*/; do
    d=${d%/}
    [ "$d" = "$B" ] || [ -f "$d/done" ] || rm -rf "$d"
done
KVER=$(cat "$B/kver")
L="$B/linux"
# The fragment turns preemption off to leave Tasks RCU out (its boot-time
# self-test hangs; see debug_kernel.config): say so if that stops working.
! grep -qx 'CONFIG_TASKS_RCU=y' "$L/.config" ||
    die "CONFIG_TASKS_RCU is set in $L/.config: its boot self-test hangs under TCG"
for f in arch/x86/boot/bzImage vmlinux drivers/misc/vmw_balloon.ko drivers/misc/vmw_vmci/vmw_vmci.ko; do
    [ -s "$L/$f" ] || die "$L/$f missing: remove $B and run again"
done
if [ "$(cat "$OUT/kver" 2>/dev/null)" != "$KVER" ] || [ "$(cat "$OUT/kdir" 2>/dev/null)" != "$L" ] ||
   ! cmp -s "$L/arch/x86/boot/bzImage" "$OUT/vmlinuz"; then
    rm -rf "$OUT"
    mkdir -p "$OUT/modules"
    cp "$L/arch/x86/boot/bzImage" "$OUT/vmlinuz"
    # No vmlinux for the rig: QEMU's PVH entry into this kernel triple-faults.
    # The PVH path (xen_prepare_pvh() and the memset/memcmp it calls) runs
    # KASAN-instrumented C code before KASAN's shadow is mapped; the bzImage's
    # own entry sets the shadow up first. The rig boots the bzImage (about
    # 33 s to the agent under TCG). The ELF stays in the tree ($L/vmlinux).
    touch "$OUT/no-vmlinux"
    cp "$L/drivers/misc/vmw_balloon.ko" "$OUT/modules/vmw_balloon.kmod"
    cp "$L/drivers/misc/vmw_vmci/vmw_vmci.ko" "$OUT/modules/vmw_vmci.kmod"
    : > "$OUT/root"
    echo "$L" > "$OUT/kdir"
    echo "$KVER" > "$OUT/kver"
fi
# Boot arguments and the rig's timeout factor for this kernel (KASAN + lockdep
# + debug_pagealloc under TCG).
# KCSAN sees a race only between two CPUs that run: every guest of that
# kernel gets at least two vCPUs.
if [ "$FLAVOUR" = kcsan ]; then
    echo "page_owner=on kmemleak=on" > "$OUT/cmdline"
    echo 2 > "$OUT/min_smp"
else
    echo "debug_pagealloc=on page_owner=on kmemleak=on" > "$OUT/cmdline"
    rm -f "$OUT/min_smp"
fi
echo "${DEBUG_KERNEL_SLOWDOWN:-3}" > "$OUT/slowdown"
say "kernel $ID: $KVER in $OUT (tree $L) ok in $(( $(date +%s) - T0 )) s"
