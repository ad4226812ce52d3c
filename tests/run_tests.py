#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Run every test: static checks of the module and the guest scenarios, on
every kernel of the matrix (tests/setup.sh prepares it).

    python3 tests/run_tests.py                 # everything, every kernel
    python3 tests/run_tests.py -k reset        # tests whose name contains 'reset'
    python3 tests/run_tests.py --kernels 6.1   # one kernel ('6.12,7' for two)
    python3 tests/run_tests.py --repeat 20 -k pressure_two   # each test 20 times
    python3 tests/run_tests.py -l              # list

    python3 tests/run_tests.py --debug-tier 6.1-debug   # + the debug tier

The environment may say the same: KERNELS, TESTS (space-separated -k),
REPEAT, JOBS (what `make check KERNELS=6.1 TESTS=reset REPEAT=5` passes on).
The debug tier: every kernel test also runs on the debug kernel
(tests/debug_kernel.sh); `make check` adds it when no KERNELS are named.
JOBS worker processes (default 2) run the guest tests side by side, pulling
them from one queue, kernels interleaved; their full output is in
tests/out/worker-<n>.log.

Tests are the test_* functions of tests/static_checks.py, tests/rig/ and
tests/scenarios/*.py. Every test runs once per kernel, named
"[<kernel>] file::test", unless it sets `per_kernel = False` (checks that do
not depend on the kernel: checkpatch, docs, the host's own unit tests). A
test reads the kernel under test from kernels.current(). A test fails by
raising; its artifacts are under tests/out/<kernel>/<name>/. The last line is
"N passed, N failed".
"""

import argparse
import fcntl
import importlib.util
import json
import os
import re
import subprocess
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


def plan(tests, matrix, repeat, debug_tier=()):
    """[(kernel or None, display name, fn)]: kernel-independent tests first,
    then every kernel test on each kernel of the matrix and of `debug_tier`."""
    out = [(None, n, fn) for n, fn in tests if not per_kernel(fn)]
    for k in list(matrix) + list(debug_tier):
        out += [(k, '[%s] %s' % (k.id, n), fn) for n, fn in tests if per_kernel(fn)]
    return [t for t in out for _ in range(repeat)]


RIG_LINE = re.compile(r'^\[[\w.-]+ \+\s*[\d.]+s\] ')   # the rig's own log lines


def run_inline(runs, results):
    """Run tests in this process; results: {'passed': [], 'failed': [], 'per': {}}."""
    for k, name, fn in runs:
        if k is None:
            os.environ.pop('VMMEMCTL_KERNEL', None)
        else:
            os.environ['VMMEMCTL_KERNEL'] = k.id
        t = time.monotonic()
        print('=== RUN  %s' % name, flush=True)
        key = k.id if k else 'any'
        per = results['per'].setdefault(key, [0, 0])
        try:
            fn()
        except Exception as e:  # noqa: BLE001 - a test fails by raising anything
            results['failed'].append(name)
            per[1] += 1
            traceback.print_exc(file=sys.stdout)
            print('--- FAIL %s (%.1fs): %s' % (name, time.monotonic() - t, str(e)[:500]), flush=True)
        else:
            results['passed'].append(name)
            per[0] += 1
            print('--- PASS %s (%.1fs)' % (name, time.monotonic() - t), flush=True)


def queue_pop(path):
    """Take the next line of a shared queue file (workers pull their tests)."""
    with open(path, 'r+') as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        lines = f.read().splitlines()
        if not lines:
            return None
        f.seek(0)
        f.truncate()
        f.write(''.join(line + '\n' for line in lines[1:]))
        return lines[0]


def run_queue(runs, queue, results):
    """Worker: run the tests named in the queue file until it is empty. An
    entry is one test with all its repeats, so no two workers share a test's
    artifacts folder."""
    by_name = {}
    for t in runs:
        by_name.setdefault(t[1], []).append(t)
    while True:
        name = queue_pop(queue)
        if name is None:
            return
        run_inline(by_name.get(name, []), results)


def run_parallel(runs, args, jobs, results):
    """The kernels' tests on `jobs` worker processes pulling from one queue
    (kernels side by side, the slow ones spread). The workers' outputs (but
    the rig's log lines) are relayed as they come; everything is in
    tests/out/worker-<n>.log."""
    d = os.path.join(kernels.REPO, 'tests', 'out')
    os.makedirs(d, exist_ok=True)
    names = []
    for t in runs:
        if t[1] not in names:
            names.append(t[1])
    # Interleave the kernels, so that each is tested all along.
    per_k = {}
    for n in names:
        per_k.setdefault(n.split(']')[0], []).append(n)
    order = []
    while any(per_k.values()):
        for lst in per_k.values():
            if lst:
                order.append(lst.pop(0))
    queue = os.path.join(d, 'queue-%d.txt' % os.getpid())   # runs may overlap
    with open(queue, 'w') as f:
        f.write(''.join(n + '\n' for n in order))
    active = []   # [proc, log, offset, result file]
    try:
        _start_and_relay(d, queue, args, jobs, active, results)
    finally:
        for a in active:
            a[0].kill()
        os.remove(queue)


def _start_and_relay(d, queue, args, jobs, active, results):
    for i in range(jobs):
        log, res = os.path.join(d, 'worker-%d.log' % i), os.path.join(d, 'worker-%d.json' % i)
        for f in (log, res):
            if os.path.exists(f):
                os.remove(f)
        cmd = [sys.executable, os.path.abspath(__file__), '--kernels', args.kernels or '',
               '--kernel-tests-only', '--worker', res, '--queue', queue, '--repeat', str(args.repeat),
               '--debug-tier', args.debug_tier]
        for sub in args.k:
            cmd += ['-k', sub]
        with open(log, 'w') as f:
            proc = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        print('--- worker %d: pid %d, log %s' % (i, proc.pid, os.path.relpath(log, kernels.REPO)), flush=True)
        active.append([proc, log, 0, res])
    while active:
        time.sleep(1)
        for a in list(active):
            proc, log, off, res = a
            done = proc.poll() is not None
            with open(log, 'rb') as f:
                f.seek(off)
                chunk = f.read()
            cut = len(chunk) if done else chunk.rfind(b'\n') + 1
            for line in chunk[:cut].decode('utf-8', 'replace').splitlines():
                if not RIG_LINE.match(line):
                    print(line)
            sys.stdout.flush()
            a[2] = off + cut
            if done:
                active.remove(a)
                try:
                    with open(res) as f:
                        r = json.load(f)
                except (OSError, ValueError):
                    r = {'passed': [], 'failed': ['worker %s (exit %s, no results)' % (log, proc.returncode)],
                         'per': {'worker': [0, 1]}}
                results['passed'] += r['passed']
                results['failed'] += r['failed']
                for key, (p, fl) in r['per'].items():
                    per = results['per'].setdefault(key, [0, 0])
                    per[0] += p
                    per[1] += fl


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('-k', action='append', default=[], help='substring of test names to run')
    ap.add_argument('-l', action='store_true', help='list tests')
    ap.add_argument('--kernels', default=os.environ.get('KERNELS', ''),
                    help="kernels of the matrix to run on: '6.1', '6.12,7', ... (default: all)")
    ap.add_argument('--repeat', type=int, default=int(os.environ.get('REPEAT') or 1),
                    help='run each selected test N times')
    ap.add_argument('--jobs', type=int, default=int(os.environ.get('JOBS') or min(2, os.cpu_count() or 1)),
                    help='tests run side by side (default: 2 on 2 or more CPUs)')
    ap.add_argument('--debug-tier', default='', metavar='KERNEL',
                    help='also run every kernel test on this (debug) kernel')
    ap.add_argument('--debug-tier-failed', metavar='WHY',
                    help='the debug kernel could not be prepared: one failure, with WHY')
    ap.add_argument('--kernel-tests-only', action='store_true', help=argparse.SUPPRESS)
    ap.add_argument('--worker', metavar='RESULTS', help=argparse.SUPPRESS)
    ap.add_argument('--queue', help=argparse.SUPPRESS)
    args = ap.parse_args()
    args.k += os.environ.get('TESTS', '').split()
    os.environ.pop('TESTS', None)

    try:
        matrix = kernels.select(args.kernels)
        debug_tier = kernels.select(args.debug_tier) if args.debug_tier else []
    except kernels.KernelError as e:
        print('run_tests: %s' % e)
        print('0 passed, 1 failed')
        return 1
    runs = [t for t in plan(collect(), matrix, max(1, args.repeat), debug_tier)
            if not args.k or any(k in t[1] for k in args.k)]
    # Quarantined tests (known to fail in the full run, with the reason)
    # run only when asked for: QUARANTINE=1. They are listed at the end.
    quarantined = sorted(set('%s: %s' % (t[1].split('] ')[-1], t[2].quarantined) for t in runs
                             if getattr(t[2], 'quarantined', None)))
    if os.environ.get('QUARANTINE') != '1':
        runs = [t for t in runs if not getattr(t[2], 'quarantined', None)]
    if args.kernel_tests_only:
        runs = [t for t in runs if t[0] is not None]
    if args.l:
        for _, n, _ in runs:
            print(n)
        return 0

    results = {'passed': [], 'failed': [], 'per': {}}
    if args.debug_tier_failed:
        results['failed'].append('debug tier: %s' % args.debug_tier_failed)
    if args.worker:
        if args.queue:
            run_queue(runs, args.queue, results)
        else:
            run_inline(runs, results)
        with open(args.worker, 'w') as f:
            json.dump(results, f)
        return 1 if results['failed'] else 0

    print('kernels: %s' % ', '.join('%s (%s)' % (k.id, k.kver) for k in matrix))
    if debug_tier:
        print('debug tier: %s (%s): %d tests' % (
            ', '.join(k.id for k in debug_tier), ', '.join(k.kver for k in debug_tier),
            sum(1 for t in runs if t[0] in debug_tier)))
    print('QEMU: %s (%s)' % (kernels.qemu_version(), kernels.qemu()), flush=True)
    t_all = time.monotonic()
    run_inline([t for t in runs if t[0] is None], results)
    kruns = [t for t in runs if t[0] is not None]
    jobs = max(1, min(args.jobs, len(set(t[1] for t in kruns))))
    if jobs > 1:
        before = len(results['passed']) + len(results['failed'])
        run_parallel(kruns, args, jobs, results)
        missing = len(kruns) - (len(results['passed']) + len(results['failed']) - before)
        if missing:
            results['failed'].append('%d queued tests never ran' % missing)
    else:
        run_inline(kruns, results)

    print('\n%d tests in %.0fs; QEMU: %s; %s' % (
        len(results['passed']) + len(results['failed']), time.monotonic() - t_all,
        kernels.qemu_version(), 'tests side by side: %d' % jobs))
    for key, (p, f) in results['per'].items():
        print('  %-12s %d passed, %d failed' % ('kernel ' + key if key != 'any' else 'any kernel', p, f))
    if not args.worker and os.environ.get('QUARANTINE') != '1':
        for q in quarantined:
            print('QUARANTINED (not run; QUARANTINE=1 runs it): %s' % q)
    for n in results['failed']:
        print('FAILED: %s' % n)
    print('%d passed, %d failed' % (len(results['passed']), len(results['failed'])))
    return 1 if results['failed'] else 0


if __name__ == '__main__':
    sys.exit(main())
