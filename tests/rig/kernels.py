# SPDX-License-Identifier: GPL-2.0
"""The kernel matrix: which guest kernels the rig boots, and the module built for each.

tests/setup.sh prepares $CACHE/kernels/<id>/ (id: '6.1', '6.12', '7.3', ...):
kver, vmlinuz, modules/{vmw_balloon,vmw_vmci}.kmod, root (the Debian root
whose compiler and kbuild tools build for that kernel; empty: this machine),
kdir (the headers, as seen from inside that root). $CACHE/kernels/matrix
lists the ids in order. Other prepared kernels (e.g. '6.1-debug', made by
tests/debug_kernel.sh) are not in the matrix but selected by their exact id;
such a directory may also hold `cmdline` (boot arguments the kernel needs) and
`slowdown` (a factor for the rig's boot and wait timeouts, e.g. 3 for KASAN +
lockdep under TCG), and `no-vmlinux` instead of a vmlinux when QEMU cannot
enter the kernel through PVH (the debug kernel: KASAN).

    k = kernels.current()          # VMMEMCTL_KERNEL, else the first of the matrix
    rc, out = k.make('W=1')        # build the module for it (sources copied first)
    k.ko()                         # the module built for it (built if missing)
"""

import fcntl
import glob
import hashlib
import os
import shutil
import subprocess

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
CACHE = os.environ.get('VMMEMCTL_CACHE') or os.path.join(REPO, '.cache')
KCACHE = os.path.join(CACHE, 'kernels')
INROOT = os.path.join(REPO, 'tests', 'inroot.sh')


class KernelError(Exception):
    pass


def module_sources(repo=REPO):
    """Every file the module's build reads, relative to the repository."""
    files = ['Kbuild', 'Makefile']
    # not the build's products, nor the probes' generated header (each
    # kernel's build makes its own)
    files += sorted(os.path.basename(p) for p in glob.glob(os.path.join(repo, '*.[ch]'))
                    if not p.endswith(('.mod.c', 'compat_probes.h')))
    for d in ('compat',):
        top = os.path.join(repo, d)
        for dirpath, _, names in os.walk(top):
            for n in names:
                if n.endswith(('.c', '.h', 'Kbuild', 'Makefile', '.sh')) and not n.endswith('.mod.c'):
                    files.append(os.path.relpath(os.path.join(dirpath, n), repo))
    return files


_built = {}   # kernel id -> sources signature of the last build in this process


def _sources_signature():
    sig = []
    for rel in module_sources():
        st = os.stat(os.path.join(REPO, rel))
        sig.append((rel, st.st_mtime_ns, st.st_size))
    return tuple(sig)


class Kernel:
    def __init__(self, kid):
        self.id = kid
        self.dir = os.path.join(KCACHE, kid)

        def read(name):
            try:
                with open(os.path.join(self.dir, name)) as f:
                    return f.read().strip()
            except OSError:
                raise KernelError('kernel %s not prepared (%s/%s missing): run `bash tests/setup.sh`'
                                  % (kid, self.dir, name))
        self.kver = read('kver')
        self.root = read('root') or None
        self.kdir = read('kdir')
        self.vmlinuz = os.path.join(self.dir, 'vmlinuz')
        self.vmlinux = os.path.join(self.dir, 'vmlinux')
        self.modules_dir = os.path.join(self.dir, 'modules')
        # a kernel self-built with the kernel's checkers (tests/debug_kernel.sh)
        self.debug = kid.endswith(('-debug', '-kcsan'))
        # optional: boot arguments and a timeout factor (debug kernels)
        try:
            with open(os.path.join(self.dir, 'cmdline')) as f:
                self.cmdline = ' '.join(f.read().split())
        except OSError:
            self.cmdline = ''
        try:
            with open(os.path.join(self.dir, 'slowdown')) as f:
                self.slowdown = max(1.0, float(f.read().strip()))
        except (OSError, ValueError):
            self.slowdown = 1.0
        # optional: the fewest vCPUs a guest of this kernel gets (KCSAN: 2)
        try:
            with open(os.path.join(self.dir, 'min_smp')) as f:
                self.min_smp = max(1, int(f.read().strip()))
        except (OSError, ValueError):
            self.min_smp = 1
        # a loaded machine: RIG_SLOWDOWN raises the factor (never lowers it)
        self.slowdown = max(self.slowdown, float(os.environ.get('RIG_SLOWDOWN') or 1))
        # Where the module is built: a copy of the sources per kernel and per
        # checkout (an out-of-tree build writes into its source folder, and
        # several checkouts may share one VMMEMCTL_CACHE: each must test its
        # own sources), inside the root when the kernel's tools live there.
        tree = hashlib.sha1(REPO.encode()).hexdigest()[:10]
        if self.root:
            self.build_inside = '/vmmemctl-build/%s-%s' % (kid, tree)
            self.build_dir = os.path.join(self.root, self.build_inside.lstrip('/'))
        else:
            self.build_dir = os.path.join(self.dir, 'build-' + tree)
            self.build_inside = self.build_dir
        self.lock_path = os.path.join(self.dir, 'build-%s.lock' % tree)

    def __repr__(self):
        return 'Kernel(%s, %s)' % (self.id, self.kver)

    @property
    def label(self):
        return self.id

    def boot_image(self):
        """What QEMU's -kernel gets: the uncompressed ELF when setup could make
        one (QEMU enters it through its PVH note: no decompression under TCG,
        about 5 s less per boot), else the bzImage. RIG_BOOT=bzimage forces it."""
        if os.environ.get('RIG_BOOT') != 'bzimage' and os.path.exists(self.vmlinux):
            return self.vmlinux
        return self.vmlinuz

    def run(self, argv, timeout=900, cwd=None):
        """Run argv on the machine or in this kernel's root: (rc, stdout+stderr)."""
        if self.root:
            if cwd:
                argv = ['sh', '-c', 'cd "$0" && exec "$@"', cwd] + list(argv)
            argv = [INROOT, self.root] + list(argv)
            cwd = None
        r = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, cwd=cwd)
        return r.returncode, r.stdout + r.stderr

    def sync_sources(self, repo=REPO):
        """Copy the module's sources into the build folder, only what changed."""
        want = set(module_sources(repo))
        os.makedirs(self.build_dir, exist_ok=True)
        for rel in want:
            src = os.path.join(repo, rel)
            dst = os.path.join(self.build_dir, rel)
            os.makedirs(os.path.dirname(dst), exist_ok=True)
            with open(src, 'rb') as f:
                data = f.read()
            try:
                with open(dst, 'rb') as f:
                    same = f.read() == data
            except OSError:
                same = False
            if not same:
                with open(dst + '.tmp', 'wb') as f:
                    f.write(data)
                os.replace(dst + '.tmp', dst)
        # Sources removed from the tree go from the copy too.
        for dirpath, _, names in os.walk(self.build_dir):
            for n in names:
                rel = os.path.relpath(os.path.join(dirpath, n), self.build_dir)
                if rel.endswith(('.c', '.h')) and rel not in want and not rel.endswith('.mod.c') \
                        and not os.path.basename(rel).startswith(('compat_probes', '.')):
                    os.remove(os.path.join(dirpath, n))

    def make(self, *args, timeout=900, sync=True):
        """make in this kernel's build folder with KDIR set: (rc, output).
        One build at a time per kernel (test workers run side by side)."""
        os.makedirs(self.dir, exist_ok=True)
        with open(self.lock_path, 'w') as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if sync:
                self.sync_sources()
            return self.run(['make', '-C', self.build_inside, 'KDIR=' + self.kdir] + list(args),
                            timeout=timeout)

    def ko_file(self):
        return os.path.join(self.build_dir, 'vmmemctl.ko')

    def ko(self):
        """The module built for this kernel from the current sources."""
        sig = _sources_signature()
        if _built.get(self.id) == sig and os.path.exists(self.ko_file()):
            return self.ko_file()
        rc, out = self.make()
        if rc != 0 or not os.path.exists(self.ko_file()):
            raise KernelError('building vmmemctl.ko for %s failed:\n%s' % (self.kver, out[-4000:]))
        _built[self.id] = sig
        return self.ko_file()

    def clean(self):
        shutil.rmtree(self.build_dir, ignore_errors=True)


def matrix_ids():
    try:
        with open(os.path.join(KCACHE, 'matrix')) as f:
            return [line.strip() for line in f if line.strip()]
    except OSError:
        raise KernelError('no %s/matrix: run `bash tests/setup.sh`' % KCACHE)


def prepared(kid):
    """True when $CACHE/kernels/<kid>/ holds a kernel (in the matrix or not)."""
    return bool(kid) and '/' not in kid and not kid.startswith('.') and \
        os.path.isfile(os.path.join(KCACHE, kid, 'kver'))


def select(spec=None):
    """The kernels named by spec ('6.1,7' etc.; an id or a prefix of one), or all.
    An exact id outside the matrix (e.g. '6.1-debug') works when prepared."""
    try:
        ids = matrix_ids()
    except KernelError:
        if not spec or not all(prepared(w) for w in spec.replace(',', ' ').split()):
            raise
        ids = []
    if not spec:
        return [Kernel(k) for k in ids]
    out = []
    for want in spec.replace(',', ' ').split():
        stem = want[:-1] if want.endswith('x') else want.rstrip('.') + '.'
        hit = [k for k in ids if k == want] or ([want] if prepared(want) else []) or \
            [k for k in ids if k.startswith(stem)]
        if not hit:
            raise KernelError('no kernel %r in the matrix %s' % (want, ids))
        out += [k for k in hit if k not in out]
    return [Kernel(k) for k in out]


def current():
    """The kernel under test: VMMEMCTL_KERNEL, else the first of the matrix."""
    kid = os.environ.get('VMMEMCTL_KERNEL')
    if kid:
        return select(kid)[0]
    return Kernel(matrix_ids()[0])


def qemu():
    """The QEMU binary the rig runs: RIG_QEMU (a path, or 'system' for the
    machine's own), else the one setup took from the trixie root."""
    q = os.environ.get('RIG_QEMU')
    if q == 'system':
        return shutil.which('qemu-system-x86_64') or 'qemu-system-x86_64'
    if q:
        return q
    p = os.path.join(CACHE, 'bin', 'qemu-system-x86_64')
    if os.access(p, os.X_OK):
        return p
    return shutil.which('qemu-system-x86_64') or 'qemu-system-x86_64'


_qemu_version = {}

# Compressed payloads a bzImage may carry, and how to unpack them.
_PAYLOADS = [(b'\xfd7zXZ\x00', ['xz', '-dc']), (b'\x28\xb5\x2f\xfd', ['zstd', '-qdc']),
             (b'\x1f\x8b\x08', ['gzip', '-dc'])]
XEN_ELFNOTE_PHYS32_ENTRY = 18


def _has_pvh_note(elf):
    r = subprocess.run(['readelf', '-n', elf], capture_output=True, text=True)
    return r.returncode == 0 and '0x%08x' % XEN_ELFNOTE_PHYS32_ENTRY in r.stdout


def extract_vmlinux(vmlinuz, out):
    """Unpack the ELF kernel from a bzImage (like the kernel's
    scripts/extract-vmlinux); keep it only if QEMU can boot it (PVH entry)."""
    with open(vmlinuz, 'rb') as f:
        data = f.read()
    for magic, cmd in _PAYLOADS:
        pos = data.find(magic)
        while pos >= 0:
            # trailing bytes after the payload make the tool complain: ignore it
            r = subprocess.run(cmd, input=data[pos:], capture_output=True)
            if r.stdout[:4] == b'\x7fELF':
                with open(out + '.tmp', 'wb') as f:
                    f.write(r.stdout)
                if _has_pvh_note(out + '.tmp'):
                    os.replace(out + '.tmp', out)
                    return True
                os.remove(out + '.tmp')
                return False
            pos = data.find(magic, pos + 1)
    return False


def qemu_version():
    q = qemu()
    if q not in _qemu_version:
        try:
            out = subprocess.run([q, '--version'], capture_output=True, text=True,
                                 timeout=20).stdout.splitlines()[0]
            _qemu_version[q] = out.replace('QEMU emulator version ', 'QEMU ')
        except Exception:  # noqa: BLE001 - reported as unknown
            _qemu_version[q] = 'QEMU ?'
    return _qemu_version[q]


if __name__ == '__main__':
    import sys
    if len(sys.argv) == 4 and sys.argv[1] == '--extract-vmlinux':
        sys.exit(0 if extract_vmlinux(sys.argv[2], sys.argv[3]) else 1)
    sys.exit('usage: kernels.py --extract-vmlinux VMLINUZ OUT')
