# SPDX-License-Identifier: GPL-2.0
"""Packaging: the vmmemctl-dkms .deb and `make dkms-install`, each installed
in a clean Debian root of the kernel's own release (bookworm for 6.1, trixie
for 6.12 and 7.x); the module DKMS built there balloons in the guest."""

import contextlib
import fcntl
import os
import shutil
import subprocess
import tempfile

from common import HostConfig, Rig, finish, load, wait_size
import kernels

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def no_package(k):
    """A kernel Debian ships no headers package for (the debug kernel built
    from source): the package tests do not apply."""
    if k.debug:
        print('not applicable on %s: no Debian headers package to build against' % k.kver)
        return True
    return False


def package_root(k):
    """The root DKMS builds in for kernel k: its own root, or (6.1, built on
    the machine) the clean bookworm root setup made."""
    root = k.root or os.path.join(kernels.CACHE, 'roots', 'bookworm')
    assert os.path.isdir(os.path.join(root, 'usr/src/linux-headers-%s' % k.kver)), \
        'linux-headers-%s not in %s: run tests/setup.sh' % (k.kver, root)
    return root


@contextlib.contextmanager
def root_lock(root):
    """One package test at a time per root (6.12 and 7.x share the trixie
    root, and test workers run side by side): apt and DKMS are not shared."""
    with open(os.path.join(root, '.vmmemctl-package-test.lock'), 'w') as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        yield


def run(cmd, timeout=900):
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=REPO)
    return r.returncode, r.stdout + r.stderr


def balloons(k, ko, name):
    with Rig(name=name, ko=ko, host=HostConfig(), kernel=k) as r:
        load(r)
        r.host.set_target(512)
        wait_size(r, 512, timeout=90)
        finish(r)


def test_deb_install_dkms_build_remove():
    """apt-get install ./vmmemctl-dkms_*.deb builds the module with DKMS, puts the
    vmw_balloon blacklist in place; removal undoes both; the built module works."""
    k = kernels.current()
    if no_package(k):
        return
    out = tempfile.mkdtemp(prefix='vmmemctl-deb-')
    try:
        with root_lock(package_root(k)):
            rc, text = run(['bash', 'tests/deb_install.sh', package_root(k), k.kver, out])
        assert rc == 0, 'deb_install.sh failed:\n' + text[-5000:]
        ko = os.path.join(out, 'vmmemctl.ko')
        assert os.path.exists(ko), 'no module copied out:\n' + text[-3000:]
        balloons(k, ko, 'deb')
    finally:
        shutil.rmtree(out, ignore_errors=True)


def test_make_dkms_install_in_root():
    """`make dkms-install` / `make dkms-uninstall` from a copy of the tree, inside
    the kernel's root: only the module's files are shipped, every trace goes."""
    k = kernels.current()
    if no_package(k):
        return
    with root_lock(package_root(k)):
        _make_dkms_install_in_root(k, package_root(k))


def _make_dkms_install_in_root(k, root):
    src = '/tmp/vmmemctl-tree'
    shutil.rmtree(root + src, ignore_errors=True)
    rc, files = run(['make', '-s', 'dkms-files'])
    assert rc == 0, files
    files = files.split()
    assert files and not [f for f in files if f.startswith(('tests/', 'debian/', 'Documentation/'))], files
    for f in files:
        os.makedirs(os.path.dirname(os.path.join(root + src, f)), exist_ok=True)
        shutil.copy(os.path.join(REPO, f), os.path.join(root + src, f))
    inroot = [os.path.join(REPO, 'tests', 'inroot.sh'), root, 'sh', '-c']
    script = '''set -e
        command -v dkms >/dev/null || { apt-get install -y -q dkms >/dev/null 2>&1 ||
            { apt-get update -q >/dev/null && apt-get install -y -q dkms >/dev/null; }; }
        cd %s
        make dkms-install KVER=%s >/tmp/dkms.log 2>&1 || { tail -40 /tmp/dkms.log; exit 1; }
        dkms status vmmemctl -k %s
        ls /lib/modules/%s/updates/dkms/
        ''' % (src, k.kver, k.kver, k.kver)
    rc, text = run(inroot + [script])
    assert rc == 0, 'make dkms-install in %s failed:\n%s' % (root, text[-4000:])
    assert 'installed' in text and 'vmmemctl.ko' in text, text[-2000:]
    ver = run(['make', '-s', '-f', 'Makefile', 'dkms-check'])  # version agrees everywhere
    assert ver[0] == 0, ver[1]
    rc, text = run(inroot + ['cd %s && make dkms-uninstall KVER=%s >/dev/null 2>&1; '
                             'ls /var/lib/dkms/vmmemctl /usr/src/vmmemctl-* '
                             '/lib/modules/%s/updates/dkms/vmmemctl.ko* 2>/dev/null; true'
                             % (src, k.kver, k.kver)])
    assert not text.strip(), 'left behind after make dkms-uninstall:\n' + text
    shutil.rmtree(root + src, ignore_errors=True)
