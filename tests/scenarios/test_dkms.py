# SPDX-License-Identifier: GPL-2.0
"""DKMS: `make dkms-install` builds and installs the module for the cached
Debian kernel, the installed .ko balloons in the rig, `make dkms-uninstall`
removes every trace."""

import os
import re
import shutil
import subprocess
import tempfile

from common import HostConfig, Rig, finish, load, wait_size

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SOURCES = {'Kbuild', 'Makefile', 'dkms.conf'}


def kver():
    with open(os.path.join(REPO, '.cache', 'kver')) as f:
        return f.read().strip()


def version():
    with open(os.path.join(REPO, 'vmmemctl.h')) as f:
        m = re.search(r'#define\s+VMMEMCTL_VERSION\s+"([^"]+)"', f.read())
    assert m, 'no VMMEMCTL_VERSION in vmmemctl.h'
    return m.group(1)


def run(cmd, timeout=600):
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=REPO)
    return r.returncode, r.stdout + r.stderr


def ensure_dkms():
    if shutil.which('dkms'):
        return
    env = dict(os.environ, DEBIAN_FRONTEND='noninteractive')
    cmd = ['apt-get', 'install', '-y', '-qq', '--no-install-recommends', 'dkms']
    if subprocess.run(cmd, env=env, capture_output=True).returncode != 0:
        subprocess.run(['apt-get', 'update', '-qq'], env=env, capture_output=True)
        r = subprocess.run(cmd, env=env, capture_output=True, text=True)
        assert r.returncode == 0, 'apt-get install dkms failed:\n' + (r.stdout + r.stderr)[-2000:]
    assert shutil.which('dkms'), 'dkms not found after installing it'


def test_dkms_build_install():
    ensure_dkms()
    kv, ver = kver(), version()
    build = '/lib/modules/%s/build' % kv
    assert os.path.isdir('/usr/src/linux-headers-%s' % kv), 'headers for %s missing' % kv
    assert os.path.isdir(build), '%s missing (linux-headers-%s not installed?)' % (build, kv)

    with open(os.path.join(REPO, 'dkms.conf')) as f:
        conf = f.read()
    assert 'PACKAGE_VERSION="%s"' % ver in conf, \
        'dkms.conf PACKAGE_VERSION does not match VMMEMCTL_VERSION %s' % ver

    src = '/usr/src/vmmemctl-%s' % ver
    tmp = tempfile.mkdtemp(prefix='vmmemctl-dkms-')
    ko_copy = os.path.join(tmp, 'vmmemctl.ko')
    try:
        rc, out = run(['make', 'dkms-install', 'KVER=' + kv])
        assert rc == 0, 'make dkms-install failed:\n' + out[-4000:]

        # Only the module sources and dkms.conf were copied.
        files = set(os.listdir(src))
        extra = [f for f in files if f not in SOURCES and not re.fullmatch(r'[\w-]+\.[ch]', f)]
        assert not extra, 'unexpected files in %s: %s' % (src, extra)
        assert not [f for f in files if f.endswith('.mod.c')], 'build products in %s' % src
        assert {'balloon_core.c', 'backdoor.c', 'pages.c', 'params.c', 'pressure.c',
                 'stats.c', 'vmmemctl.h'} <= files, files

        rc, out = run(['dkms', 'status', 'vmmemctl/%s' % ver, '-k', kv])
        assert rc == 0 and 'installed' in out, 'dkms status: %s' % out
        found = [os.path.join(d, f) for d, _, fs in os.walk('/lib/modules/%s' % kv, followlinks=False)
                 for f in fs if f.startswith('vmmemctl.ko')]
        assert found, 'no vmmemctl.ko under /lib/modules/%s after dkms install' % kv
        ko = found[0]
        assert '/updates/dkms/' in ko, 'installed at %s, expected updates/dkms' % ko
        rc, out = run(['modinfo', '-F', 'vermagic', ko])
        assert rc == 0 and out.split()[0] == kv, 'vermagic %r, expected %s' % (out, kv)
        rc, out = run(['modinfo', '-F', 'version', ko])
        assert out.strip() == ver, 'module version %r, expected %s' % (out, ver)
        shutil.copy(ko, ko_copy)
    finally:
        rc, out = run(['make', 'dkms-uninstall', 'KVER=' + kv])
    assert rc == 0, 'make dkms-uninstall failed:\n' + out[-3000:]
    assert not os.path.exists(src), '%s left behind' % src
    assert not os.path.exists('/var/lib/dkms/vmmemctl'), 'dkms tree left behind'
    left = [f for _, _, fs in os.walk('/lib/modules/%s' % kv) for f in fs if f.startswith('vmmemctl')]
    assert not left, 'installed module left behind: %s' % left

    # The module DKMS built balloons like the one of the tree.
    try:
        with Rig(name='dkms', ko=ko_copy, host=HostConfig()) as r:
            load(r)
            r.host.set_target(512)
            wait_size(r, 512, timeout=90)
            finish(r)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
