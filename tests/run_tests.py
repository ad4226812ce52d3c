#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Run every test: static checks of the module and the guest scenarios.

    python3 tests/run_tests.py            # everything
    python3 tests/run_tests.py -k reset   # only tests whose name contains 'reset'
    python3 tests/run_tests.py -l         # list

Tests are the test_* functions of tests/static_checks.py and
tests/scenarios/*.py. A test fails by raising; its artifacts are under
tests/out/<name>/. The last line is "N passed, N failed".
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
            tests.append((5, '%s::unittest' % os.path.basename(f)[:-3], unittest_runner(cases)))
        for name in sorted(n for n in dir(mod) if n.startswith('test_')):
            fn = getattr(mod, name)
            if not callable(fn) or isinstance(fn, type):
                continue
            order = getattr(fn, 'order', 50)
            tests.append((order, '%s::%s' % (os.path.basename(f)[:-3], name), fn))
    tests.sort(key=lambda t: (t[0], t[1]))
    return [(n, fn) for _, n, fn in tests]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('-k', action='append', default=[], help='substring of test names to run')
    ap.add_argument('-l', action='store_true', help='list tests')
    args = ap.parse_args()

    tests = [(n, fn) for n, fn in collect() if not args.k or any(k in n for k in args.k)]
    if args.l:
        for n, _ in tests:
            print(n)
        return 0

    passed, failed = [], []
    t_all = time.monotonic()
    for name, fn in tests:
        t = time.monotonic()
        print('=== RUN  %s' % name, flush=True)
        try:
            fn()
        except Exception as e:  # noqa: BLE001 - a test fails by raising anything
            failed.append(name)
            traceback.print_exc()
            print('--- FAIL %s (%.1fs): %s' % (name, time.monotonic() - t, str(e)[:500]), flush=True)
        else:
            passed.append(name)
            print('--- PASS %s (%.1fs)' % (name, time.monotonic() - t), flush=True)

    print('\n%d tests in %.0fs' % (len(tests), time.monotonic() - t_all))
    for n in failed:
        print('FAILED: %s' % n)
    print('%d passed, %d failed' % (len(passed), len(failed)))
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())
