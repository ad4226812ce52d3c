# SPDX-License-Identifier: GPL-2.0
"""Documentation: the RST renders without warnings, every parameter is described."""

import os
import re
import shutil
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(REPO, 'tests', 'rig'))
import kernels  # noqa: E402

DOCS = [os.path.join(REPO, 'Documentation', f) for f in ('vmmemctl.rst', 'design.rst')]


def apt_install(*pkgs):
    env = dict(os.environ, DEBIAN_FRONTEND='noninteractive')
    cmd = ['apt-get', 'install', '-y', '-qq', '--no-install-recommends'] + list(pkgs)
    if subprocess.run(cmd, env=env, capture_output=True).returncode != 0:
        subprocess.run(['apt-get', 'update', '-qq'], env=env, capture_output=True)
        r = subprocess.run(cmd, env=env, capture_output=True, text=True)
        assert r.returncode == 0, 'apt-get install %s failed:\n%s' % (
            ' '.join(pkgs), (r.stdout + r.stderr)[-2000:])


def rst2html():
    exe = shutil.which('rst2html')
    if not exe:
        apt_install('python3-docutils')
        exe = shutil.which('rst2html')
    assert exe, 'rst2html not found after installing python3-docutils'
    return exe


def param_names():
    """Every module parameter, from the module's sources."""
    names = []
    for src in sorted(f for f in kernels.module_sources() if f.endswith('.c')):
        with open(os.path.join(REPO, src)) as f:
            names += re.findall(r'module_param(?:_cb|_named)?\(\s*(\w+)\s*,', f.read())
    assert names, 'no module_param in the module sources'
    return names


def ko_path():
    """The module built for the kernel under test."""
    return kernels.current().ko()


def test_docs_render():
    exe = rst2html()
    for doc in DOCS:
        with open(doc) as f:
            assert f.readline().strip() == '.. SPDX-License-Identifier: GPL-2.0', \
                '%s: first line is not the SPDX GPL-2.0 comment' % doc
        r = subprocess.run([exe, '--halt=warning', doc], capture_output=True, text=True,
                           timeout=120)
        assert r.returncode == 0, '%s does not render cleanly:\n%s' % (doc, r.stderr[-3000:])
test_docs_render.per_kernel = False


def test_modinfo_params():
    r = subprocess.run(['modinfo', '-F', 'parm', ko_path()], capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0, 'modinfo failed: %s' % r.stderr
    desc = {}
    for line in r.stdout.splitlines():
        name, _, text = line.partition(':')
        desc[name.strip()] = text
    problems = []
    for name in param_names():
        if name not in desc:
            problems.append('%s: no MODULE_PARM_DESC in modinfo' % name)
        elif 'default' not in desc[name].lower():
            problems.append('%s: description does not give a default: %r' % (name, desc[name]))
    assert not problems, '\n'.join(problems)


def test_docs_cover_params():
    """Every module parameter is documented in the admin guide."""
    with open(DOCS[0]) as f:
        text = f.read()
    missing = [n for n in param_names() if '``%s``' % n not in text]
    assert not missing, 'parameters missing from Documentation/vmmemctl.rst: %s' % missing
test_docs_cover_params.per_kernel = False
