#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Run every test: static checks of the module and the guest scenarios, on
every kernel of the matrix (tests/setup.sh prepares it).

    python3 tests/run_tests.py                 # everything, every kernel
    python3 tests/run_tests.py -k reset        # tests whose name contains 'reset'
    python3 tests/run_tests.py --kernels 6.1   # one kernel ('6.12,7' for two)
    python3 tests/run_tests.py --repeat 20 -k pressure_two   # each test 20 times
    python3 tests/run_tests.py -l              # list

The environment may say the same: KERNELS, TESTS (space-separated -k),
REPEAT (what `make check KERNELS=6.1 TESTS=reset REPEAT=5` passes on).

Tests are the test_* functions of tests/static_checks.py, tests/rig/ and
tests/scenarios/*.py. Every test runs once per kernel, named
"[<kernel>] file::test", unless it sets `per_kernel = False` (checks that do
not depend on the kernel: checkpatch, docs, the host's own unit tests). A
test reads the kernel under test from kernels.current(). A test fails by
raising; its artifacts are under tests/out/<name>/. The last line is
"N passed, N failed".
"""

import argparse
import importlib.util
import os
import sys
import time
import traceback
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, 'rig'))
sys.path.insert(0, os.path.join(HERE, 'scenarios'))

import kernels  # noqa: E402


def load(path):
    name = os.path.splitext(os.path.basename(path))[0]
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def unittest_runner(cases):
    """One test that runs every unittest case of a module."""
    def run():
        suite = unittest.TestSuite(unittest.defaultTestLoader.loadTestsFromTestCase(c)
                                   for c in cases)
        res = unittest.TextTestRunner(verbosity=1, stream=sys.stdout).run(suite)
        assert res.wasSuccessful(), '%d failures, %d errors' % (len(res.failures), len(res.errors))
    return run


def collect():
    # The rig checks itself first: host semantics without QEMU, then its
    # violation checks firing against the in-tree driver.
    files = [os.path.join(HERE, 'static_checks.py'),
             os.path.join(HERE, 'rig', 'test_vmhost_unit.py'),
             os.path.join(HERE, 'rig', 'selftest_host.py')]
    sdir = os.path.join(HERE, 'scenarios')
    files += sorted(os.path.join(sdir, f) for f in os.listdir(sdir)
                    if f.startswith('test_') and f.endswith('.py'))
    tests = []
    for f in files:
        mod = load(f)
        cases = [getattr(mod, n) for n in dir(mod)
                 if isinstance(getattr(mod, n), type) and issubclass(getattr(mod, n), unittest.TestCase)]
        if cases:
            run = unittest_runner(cases)
            run.per_kernel = getattr(mod, 'PER_KERNEL', True)
            tests.append((5, '%s::unittest' % os.path.basename(f)[:-3], run))
        for name in sorted(n for n in dir(mod) if n.startswith('test_')):
            fn = getattr(mod, name)
            if not callable(fn) or isinstance(fn, type):
                continue
            order = getattr(fn, 'order', 50)
            tests.append((order, '%s::%s' % (os.path.basename(f)[:-3], name), fn))
    tests.sort(key=lambda t: (t[0], t[1]))
    return [(n, fn) for _, n, fn in tests]


def per_kernel(fn):
    return getattr(fn, 'per_kernel', True)


def plan(tests, matrix, repeat):
    """[(kernel or None, display name, fn)]: kernel-independent tests first,
    then every kernel's tests in turn."""
    out = [(None, n, fn) for n, fn in tests if not per_kernel(fn)]
    for k in matrix:
        out += [(k, '[%s] %s' % (k.id, n), fn) for n, fn in tests if per_kernel(fn)]
    return [t for t in out for _ in range(repeat)]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('-k', action='append', default=[], help='substring of test names to run')
    ap.add_argument('-l', action='store_true', help='list tests')
    ap.add_argument('--kernels', default=os.environ.get('KERNELS', ''),
                    help="kernels of the matrix to run on: '6.1', '6.12,7', ... (default: all)")
    ap.add_argument('--repeat', type=int, default=int(os.environ.get('REPEAT') or 1),
                    help='run each selected test N times')
    args = ap.parse_args()
    subs = args.k + os.environ.get('TESTS', '').split()

    try:
        matrix = kernels.select(args.kernels)
    except kernels.KernelError as e:
        print('run_tests: %s' % e)
        print('0 passed, 1 failed')
        return 1
    runs = [t for t in plan(collect(), matrix, max(1, args.repeat))
            if not subs or any(k in t[1] for k in subs)]
    if args.l:
        for _, n, _ in runs:
            print(n)
        return 0

    print('kernels: %s' % ', '.join('%s (%s)' % (k.id, k.kver) for k in matrix))
    print('QEMU: %s (%s)' % (kernels.qemu_version(), kernels.qemu()), flush=True)
    passed, failed = [], []
    per = {}
    t_all = time.monotonic()
    for k, name, fn in runs:
        if k is None:
            os.environ.pop('VMMEMCTL_KERNEL', None)
        else:
            os.environ['VMMEMCTL_KERNEL'] = k.id
        t = time.monotonic()
        print('=== RUN  %s' % name, flush=True)
        key = k.id if k else 'any'
        try:
            fn()
        except Exception as e:  # noqa: BLE001 - a test fails by raising anything
            failed.append(name)
            per.setdefault(key, [0, 0])[1] += 1
            traceback.print_exc()
            print('--- FAIL %s (%.1fs): %s' % (name, time.monotonic() - t, str(e)[:500]), flush=True)
        else:
            passed.append(name)
            per.setdefault(key, [0, 0])[0] += 1
            print('--- PASS %s (%.1fs)' % (name, time.monotonic() - t), flush=True)

    print('\n%d tests in %.0fs; QEMU: %s' % (len(runs), time.monotonic() - t_all,
                                            kernels.qemu_version()))
    for key, (p, f) in per.items():
        print('  %-8s %d passed, %d failed' % ('kernel ' + key if key != 'any' else 'static', p, f))
    for n in failed:
        print('FAILED: %s' % n)
    print('%d passed, %d failed' % (len(passed), len(failed)))
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())
