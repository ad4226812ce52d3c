#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# Prepare everything the vmmemctl test rig needs; idempotent and cached.
#
#   - Debian packages on the machine (bookworm): qemu 7.2 (fallback), busybox,
#     sparse, debootstrap, the 6.1 headers
#   - Debian roots, made with debootstrap and entered with tests/inroot.sh:
#       trixie   (trixie-backports and sid in its sources, sid pinned to 1):
#                QEMU 11.1, gcc-14 and the headers of the 6.12 and 7.x kernels
#       bookworm a clean Debian 12 for the .deb test against 6.1
#   - the kernel matrix, every version derived from what apt offers now:
#       6.1   the newest Debian 12 6.1.0-NN (built on the machine itself)
#       6.12  the newest Debian 13 6.12.* (built in the trixie root)
#       7.x   the newest 7.x Debian ships, trixie-backports or sid
#     each in $CACHE/kernels/<id>/: kver, vmlinuz, modules/*.kmod (the
#     in-tree vmw_balloon and vmw_vmci), root, kdir; the list in
#     $CACHE/kernels/matrix
#   - checkpatch from linux-source-6.1, the guest helpers, the initramfs
#
# $CACHE is VMMEMCTL_CACHE or <repo>/.cache (git-ignored). The machine's own
# apt sources are only read (for the mirror), never changed.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CACHE=${VMMEMCTL_CACHE:-$REPO/.cache}
KC="$CACHE/kernels"
INROOT="$REPO/tests/inroot.sh"
mkdir -p "$CACHE" "$KC"
exec 9>"$CACHE/setup.lock"
flock 9
rm -rf "$CACHE"/dl.* "$CACHE"/rootfs.*
TMPD=""
trap '[ -n "$TMPD" ] && rm -rf "$TMPD"' EXIT
export DEBIAN_FRONTEND=noninteractive
T0=$(date +%s)

say() { echo "setup: $*"; }
die() { echo "setup: ERROR: $*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "must run as root (debootstrap, chroot and apt-get need it)"

APT_UPDATED=0
apt_update_once() {
    if [ "$APT_UPDATED" = 0 ]; then
        say "apt-get update"
        apt-get update -qq || die "apt-get update failed"
        APT_UPDATED=1
    fi
}

pkg_installed() {
    dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"
}

# ---------------------------------------------------------------- packages
PKGS="qemu-system-x86 busybox-static cpio sparse python3 gcc make libc6-dev kmod bc xz-utils zstd
      binutils debootstrap util-linux"
MISSING=""
for p in $PKGS; do pkg_installed "$p" || MISSING="$MISSING $p"; done
if [ -n "$MISSING" ]; then
    apt_update_once
    say "installing:$MISSING"
    apt-get install -y -qq --no-install-recommends $MISSING >/dev/null || die "apt-get install failed"
fi

# ---------------------------------------------------------------- mirrors
# The Debian mirror and security mirror the machine already uses.
host_site() {   # $1: release name as apt knows it (bookworm, bookworm-security)
    apt-get indextargets --format '$(RELEASE) $(SITE)' 2>/dev/null | awk -v r="$1" '$1 == r { print $2; exit }'
}
. /etc/os-release
HOST_CODENAME=${VERSION_CODENAME:-bookworm}
MIRROR=$(host_site "$HOST_CODENAME")
if [ -z "$MIRROR" ]; then
    apt_update_once
    MIRROR=$(host_site "$HOST_CODENAME")
fi
[ -n "$MIRROR" ] || die "no Debian mirror for $HOST_CODENAME in the machine's apt sources"
SECMIRROR=$(host_site "$HOST_CODENAME-security")
[ -n "$SECMIRROR" ] || SECMIRROR="${MIRROR%/debian}/debian-security"

# ---------------------------------------------------------------- the 6.1 kernel
# The newest 6.1 release any version of linux-headers-amd64 points at (never
# hard-code NN). Other suites (e.g. backports' 6.12) may be configured too: only
# 6.1 is taken, and the metapackage itself is never installed.
headers_dep() {
    apt-cache show linux-headers-amd64 2>/dev/null |
        sed -n 's/^Depends:.*linux-headers-\(6\.1\.0-[0-9][0-9]*-amd64\).*/\1/p' |
        sort -t- -k2,2n | tail -n1
}
K61=$(headers_dep || true)
if [ -z "$K61" ] || ! pkg_installed "linux-headers-$K61"; then
    apt_update_once
    K61=$(headers_dep || true)
fi
[ -n "$K61" ] || die "cannot derive the 6.1 kernel release from linux-headers-amd64"
if ! pkg_installed "linux-headers-$K61"; then
    say "installing linux-headers-$K61"
    apt-get install -y -qq --no-install-recommends "linux-headers-$K61" >/dev/null \
        || die "cannot install linux-headers-$K61"
fi
[ -d "/usr/src/linux-headers-$K61" ] || die "/usr/src/linux-headers-$K61 missing"

# ---------------------------------------------------------------- roots
# ensure_root NAME: $CACHE/roots/NAME, a minimal Debian of that suite with
# the sources listed below; apt lists refreshed once per setup run.
root_sources() {
    case "$1" in
    trixie)
        echo "deb $MIRROR trixie main"
        echo "deb $MIRROR trixie-updates main"
        echo "deb $SECMIRROR trixie-security main"
        echo "deb $MIRROR trixie-backports main"
        # sid only to compare kernel versions (pinned below); the mirror may
        # be a dated snapshot, whose sid Release has expired.
        echo "deb [check-valid-until=no] $MIRROR sid main" ;;
    bookworm)
        echo "deb $MIRROR bookworm main"
        echo "deb $MIRROR bookworm-updates main"
        echo "deb $SECMIRROR bookworm-security main" ;;
    sid)
        echo "deb [check-valid-until=no] $MIRROR sid main" ;;
    *) die "no sources for root $1" ;;
    esac
}

ensure_root() {
    local name=$1 r="$CACHE/roots/$1"
    if [ ! -f "$r/.vmmemctl-root" ]; then
        say "debootstrap $name (once)"
        rm -rf "$r"
        mkdir -p "$CACHE/roots"
        debootstrap --variant=minbase "$name" "$r" "$MIRROR" > "$CACHE/roots/$name.log" 2>&1 \
            || { tail -20 "$CACHE/roots/$name.log" >&2; die "debootstrap $name failed"; }
        printf 'APT::Install-Recommends "false";\nAPT::Install-Suggests "false";\n' \
            > "$r/etc/apt/apt.conf.d/90vmmemctl"
        if [ "$name" = trixie ]; then
            printf 'Package: *\nPin: release n=sid\nPin-Priority: 1\n' > "$r/etc/apt/preferences.d/sid"
        fi
        touch "$r/.vmmemctl-root"
    fi
    root_sources "$name" > "$r/etc/apt/sources.list.tmp"
    mv "$r/etc/apt/sources.list.tmp" "$r/etc/apt/sources.list"
    rm -f "$r/etc/apt/sources.list.d/"*.sources 2>/dev/null || true
    if [ ! -f "$r/.updated.$T0" ]; then
        "$INROOT" "$r" apt-get update -qq > "$CACHE/roots/$name.update.log" 2>&1 \
            || { cat "$CACHE/roots/$name.update.log" >&2; die "apt-get update in the $name root failed"; }
        rm -f "$r"/.updated.*
        touch "$r/.updated.$T0"
    fi
}

root_install() {   # ROOT-NAME apt-get-args...
    local name=$1; shift
    "$INROOT" "$CACHE/roots/$name" apt-get install -y -qq "$@" > "$CACHE/roots/$name.install.log" 2>&1 \
        || { tail -30 "$CACHE/roots/$name.install.log" >&2; die "apt-get install $* in the $name root failed"; }
}

# root_packages NAME [apt-get args] PACKAGES: install them in that root,
# unless the same list was installed last time.
root_packages() {
    local name=$1; shift
    local stamp="$CACHE/roots/$name/.vmmemctl-pkgs" want="$*"
    [ "$(cat "$stamp" 2>/dev/null)" = "$want" ] && return 0
    say "installing in the $name root: $want"
    root_install "$name" "$@"
    echo "$want" > "$stamp"
}

# Every kernel release that some version of linux-headers-amd64 points at,
# with the suite it comes from: "<release> <archive>" lines.
root_kernel_offers() {
    "$INROOT" "$CACHE/roots/$1" sh -c '
        apt-cache show linux-headers-amd64 2>/dev/null |
            sed -n "s/^Depends:.*linux-headers-\([0-9][^ ]*-amd64\) (.*/\1/p" | sort -u |
        while read -r rel; do
            arch=$(apt-cache madison "linux-headers-$rel" | awk -F"|" "NR==1 { print \$3 }" |
                   awk "{ print \$2 }" | cut -d/ -f1)
            echo "$rel $arch"
        done'
}

ensure_root trixie
OFFERS=$(root_kernel_offers trixie)
K612=$(echo "$OFFERS" | awk '$1 ~ /^6\.12\./ && $2 !~ /sid|unstable|backports/ { print $1 }' | sort -V | tail -n1)
K7LINE=$(echo "$OFFERS" | awk '$1 ~ /^7\./' | sort -V -k1,1 | tail -n1)
K7=${K7LINE%% *}
K7SUITE=${K7LINE#* }
[ -n "$K612" ] || die "no Debian 13 6.12 kernel offered (offers: $(echo $OFFERS))"
[ -n "$K7" ] || die "no 7.x kernel offered by trixie-backports or sid (offers: $(echo $OFFERS))"
case "$K7SUITE" in
    sid|unstable) K7ROOT=sid ;;
    *) K7ROOT=trixie ;;
esac
say "kernels offered: $K61 (bookworm), $K612 (trixie), $K7 ($K7SUITE)"

TRIXIE_PKGS="make gcc sparse kmod xz-utils zstd dkms qemu-system-x86 linux-headers-$K612 linux-image-$K612-unsigned"
[ "$K7ROOT" = trixie ] && TRIXIE_PKGS="$TRIXIE_PKGS linux-headers-$K7"
root_packages trixie -t trixie-backports $TRIXIE_PKGS
if [ "$K7ROOT" = sid ]; then
    ensure_root sid
    root_packages sid make gcc sparse kmod xz-utils zstd "linux-headers-$K7"
fi

ensure_root bookworm
root_packages bookworm make gcc kmod dkms "linux-headers-$K61"

# ---------------------------------------------------------------- QEMU
# QEMU 11.1 from the trixie root, started through the root's own loader (it
# needs trixie's glibc). The machine's QEMU 7.2 stays the fallback
# (RIG_QEMU=system); the rig prints which one ran.
R="$CACHE/roots/trixie"
mkdir -p "$CACHE/bin"
cat > "$CACHE/bin/qemu-system-x86_64.tmp" <<EOF
#!/bin/sh
# Generated by tests/setup.sh: QEMU from the trixie root, on the machine.
R='$R'
exec "\$R/lib64/ld-linux-x86-64.so.2" \\
    --library-path "\$R/lib/x86_64-linux-gnu:\$R/usr/lib/x86_64-linux-gnu" \\
    "\$R/usr/bin/qemu-system-x86_64" -L "\$R/usr/share/qemu" -L "\$R/usr/share/seabios" "\$@"
EOF
chmod 755 "$CACHE/bin/qemu-system-x86_64.tmp"
mv "$CACHE/bin/qemu-system-x86_64.tmp" "$CACHE/bin/qemu-system-x86_64"
QV=$("$CACHE/bin/qemu-system-x86_64" --version | head -n1) || die "QEMU from the trixie root does not start"
say "QEMU: $QV (fallback: $(qemu-system-x86_64 --version | head -n1))"

# ---------------------------------------------------------------- kernels
# fetch_kernel ID RELEASE ROOT-NAME|"": the kernel image and the two in-tree
# reference modules, from the image .deb (<= 6.x: linux-image-*-unsigned with
# boot/vmlinuz-*; 7.x: linux-binary-* with usr/lib/modules/*/vmlinuz, modules
# in linux-modules-*). The reference modules are stored as .kmod (plain ELF
# .ko): the module's `make clean` deletes every *.ko under the tree.
fetch_kernel() {
    local id=$1 rel=$2 rname=$3 d="$KC/$1" kdir
    local root="" run=()
    if [ -n "$rname" ]; then root="$CACHE/roots/$rname"; run=("$INROOT" "$root"); fi
    kdir="/usr/src/linux-headers-$rel"
    [ -d "$root$kdir" ] || die "headers $kdir missing${rname:+ in the $rname root}"
    if [ "$(cat "$d/kver" 2>/dev/null)" != "$rel" ] || [ ! -s "$d/vmlinuz" ] ||
       [ ! -s "$d/modules/vmw_balloon.kmod" ] || [ ! -s "$d/modules/vmw_vmci.kmod" ]; then
        say "fetching the $rel kernel image"
        rm -rf "$d"
        local pkgs dl
        if "${run[@]}" apt-cache show "linux-binary-$rel" >/dev/null 2>&1; then
            pkgs="linux-binary-$rel linux-modules-$rel"
        else
            pkgs="linux-image-$rel-unsigned"
        fi
        [ -n "$root" ] || apt_update_once
        dl="$root/var/tmp/vmmemctl-dl"          # as seen from here
        local din=${root:+/var/tmp/vmmemctl-dl}  # as seen by the command
        din=${din:-$dl}
        rm -rf "$dl"; mkdir -p "$dl/x"
        "${run[@]}" sh -c "cd '$din' && apt-get download $pkgs" > "$dl/log" 2>&1 \
            || { cat "$dl/log" >&2; die "apt-get download $pkgs failed"; }
        for deb in "$dl"/*.deb; do
            "${run[@]}" sh -c "dpkg-deb --fsys-tarfile '$din/${deb##*/}' |
                tar -x -C '$din/x' --wildcards '*vmlinuz*' '*/vmw_balloon.ko*' '*/vmw_vmci.ko*'" \
                2>/dev/null || true
        done
        mkdir -p "$d/modules"
        local vml
        for vml in "$dl/x/boot/vmlinuz-$rel" "$dl/x/usr/lib/modules/$rel/vmlinuz" "$dl/x/lib/modules/$rel/vmlinuz"; do
            [ -f "$vml" ] && { cp "$vml" "$d/vmlinuz"; break; }
        done
        [ -s "$d/vmlinuz" ] || die "no vmlinuz in $pkgs"
        local m f
        for m in vmw_balloon vmw_vmci; do
            f=$(find "$dl/x" -name "$m.ko*" | head -n1)
            case "$f" in
                *.ko) cp "$f" "$d/modules/$m.kmod" ;;
                *.ko.xz) xz -dc "$f" > "$d/modules/$m.kmod" ;;
                *.ko.zst) zstd -qdc "$f" > "$d/modules/$m.kmod" ;;
                *) die "reference module $m not in $pkgs" ;;
            esac
        done
        rm -rf "$dl"
        echo "$rel" > "$d/kver"
    fi
    # The uncompressed kernel, which QEMU boots through its PVH entry
    # without decompressing it under TCG (the rig falls back to vmlinuz).
    if [ ! -f "$d/vmlinux" ] && [ ! -f "$d/no-vmlinux" ]; then
        python3 "$REPO/tests/rig/kernels.py" --extract-vmlinux "$d/vmlinuz" "$d/vmlinux" ||
            { say "no PVH-bootable vmlinux in $rel; booting the bzImage"; touch "$d/no-vmlinux"; }
    fi
    echo "$root" > "$d/root"
    echo "$kdir" > "$d/kdir"
}

fetch_kernel 6.1 "$K61" ""
fetch_kernel 6.12 "$K612" trixie
K7ID=$(echo "$K7" | cut -d. -f1,2)
fetch_kernel "$K7ID" "$K7" "$K7ROOT"
printf '6.1\n6.12\n%s\n' "$K7ID" > "$KC/matrix.tmp" && mv "$KC/matrix.tmp" "$KC/matrix"
for id in $(cat "$KC/matrix"); do
    where=$(cat "$KC/$id/root"); where=${where:+the $(basename "$where") root}
    say "kernel $id: $(cat "$KC/$id/kver"), modules built in ${where:-the machine}"
done
# Old single-kernel names, for anything still reading them.
echo "$K61" > "$CACHE/kver"
ln -sfn "$KC/6.1/vmlinuz" "$CACHE/vmlinuz"

# ---------------------------------------------------------------- checkpatch
CP="$CACHE/checkpatch"
if [ ! -f "$CP/checkpatch.pl" ] || [ ! -f "$CP/spelling.txt" ] || [ ! -f "$CP/const_structs.checkpatch" ]; then
    say "fetching linux-source-6.1 for checkpatch (big, once)"
    TMPD=$(mktemp -d "$CACHE/dl.XXXXXX")
    HVER=$(dpkg-query -W -f='${Version}' "linux-headers-$K61" 2>/dev/null || true)
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
# One base initramfs for every kernel: busybox, init, the helpers. The rig
# appends the modules of the kernel under test.
BB=/bin/busybox
[ -x "$BB" ] || BB=$(command -v busybox)
INIT="$REPO/tests/guest/init"
STAMP=$( { sha256sum "$BB" "$INIT" "$CACHE/memhog" "$CACHE/rig-agent" "$0" | cut -d' ' -f1; } | sha256sum | cut -d' ' -f1)
IRD="$CACHE/initramfs.cpio.gz"
if [ ! -f "$IRD" ] || [ "$(cat "$CACHE/initramfs.stamp" 2>/dev/null)" != "$STAMP" ]; then
    say "building base initramfs"
    ROOTFS=$(mktemp -d "$CACHE/rootfs.XXXXXX")
    mkdir -p "$ROOTFS"/{bin,sbin,usr/bin,usr/sbin,dev,proc,sys,tmp,modules,etc,root}
    cp "$BB" "$ROOTFS/bin/busybox"
    for app in $("$BB" --list-full); do
        case "$app" in bin/busybox) continue ;; esac
        mkdir -p "$ROOTFS/$(dirname "$app")"
        [ -e "$ROOTFS/$app" ] || ln -s /bin/busybox "$ROOTFS/$app"
    done
    cp "$INIT" "$ROOTFS/init"; chmod 755 "$ROOTFS/init"
    cp "$CACHE/memhog" "$ROOTFS/bin/memhog"
    cp "$CACHE/rig-agent" "$ROOTFS/bin/rig-agent"
    # the agent's no-fork commands, as plain commands for the shell agent
    printf '#!/bin/sh\nexec cat "$@"\n' > "$ROOTFS/bin/@cat"
    printf '#!/bin/sh\nexec dmesg\n' > "$ROOTFS/bin/@dmesg"
    chmod 755 "$ROOTFS/bin/@cat" "$ROOTFS/bin/@dmesg"
    ( cd "$ROOTFS" && find . -mindepth 1 | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet ) | gzip -9 > "$IRD.tmp"
    mv "$IRD.tmp" "$IRD"
    rm -rf "$ROOTFS"
    echo "$STAMP" > "$CACHE/initramfs.stamp"
fi
say "ok in $(( $(date +%s) - T0 )) s"
