#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Plant bugs in a scratch copy of the module and check that the tests catch them.

    python3 tests/planted_bugs.py                     # every bug, on the first kernel
    python3 tests/planted_bugs.py --kernel 6.1 lost-refused-page no-pop-on-reset
    python3 tests/planted_bugs.py --list
    python3 tests/planted_bugs.py --all-tests ...     # run every listed test, not only
                                                      # up to the first that catches it

Each bug is a small textual patch of the module's sources, applied to a copy
(never to the tree), matched with whitespace-tolerant patterns: when the sources
were reshaped and a pattern no longer matches, the bug is reported as "pattern not
found" instead of being planted. The copy is built for one kernel, and the bug's
candidate tests run against it (VMMEMCTL_KO, artifacts under
tests/out/planted/<bug>/). A bug is caught when a test fails. The table at the end:
bug -> the test that caught it (or NOT CAUGHT / pattern not found / build failed).
"""

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, 'rig'))
import kernels  # noqa: E402

REPO = kernels.REPO


def lit(snippet):
    """A regex for a code snippet: literal, but any run of whitespace matches any other."""
    parts = re.split(r'\s+', snippet.strip())
    return r'\s*'.join(re.escape(p) for p in parts)


# (name, kind, what it does, [(file, pattern, replacement)], [tests in the order tried])
# A pattern is a snippet (lit()) or a compiled regex; the replacement is text
# (for a compiled regex: a re.sub template).
BUGS = [
    ('no-start-first', 'command before START',
     'the session starts "open": the first work run sends GET_TARGET before START',
     [('backdoor.c', lit('*h = (struct vmm_host){ .reset_required = true };'),
       '*h = (struct vmm_host){ .reset_required = false };')],
     ['test_balloon.py::test_inflate_deflate_basic', 'test_protocol.py::test_capability_matrix']),
    ('target-from-failed-call', 'wrong status handling',
     'takes the target from rbx even when the command failed (a failed GET_TARGET alone is '
     'masked: the period fails and nothing moves; a refused basic LOCK does not end the period)',
     [('backdoor.c', lit('if (status != VMM_STATUS_SUCCESS) { h->cmd_fail[cmd]++;'),
       'if (status != VMM_STATUS_SUCCESS) { if (cmd != VMM_CMD_START && cmd != VMM_CMD_GUEST_ID) '
       'h->target = (u32)result; h->cmd_fail[cmd]++;')],
     ['test_balloon.py::test_one_in_seven_refused_reaches_target', 'test_chaos.py::test_chaos']),
    ('target-upper-half', 'undefined register used',
     'keeps the upper half of rbx as the target without the 64-bit target capability',
     [('backdoor.c', lit('(u64)result : (u32)result;'), '(u64)result : result;')],
     ['test_protocol.py::test_capability_matrix', 'test_chaos.py::test_chaos']),
    ('target-unbounded', 'not bounding the host\'s target',
     'the goal is the host\'s target: no RAM bound, no free-memory floor',
     [('balloon_core.c', lit('goal = min_t(u64, target, ram);'), 'goal = target;'),
      ('balloon_core.c', lit('if (goal - size > room) {'), 'if (0) {')],
     ['test_balloon.py::test_absurd_target_is_bounded', 'test_protocol.py::test_64bit_target_clamped']),
    ('entry-status-ignored', 'ignoring refusals',
     'every entry of a successful batched LOCK counts as locked, refused or not',
     [('balloon_core.c', lit('status = vmm_batch_status(h, i++); list_del(&page->lru);'),
       'status = vmm_batch_status(h, i++); status = VMM_STATUS_SUCCESS; list_del(&page->lru);')],
     ['test_balloon.py::test_refusal_codes', 'test_chaos.py::test_chaos']),
    ('basic-refusal-as-success', 'ignoring refusals',
     'basic protocol: a refused LOCK joins the balloon',
     [('balloon_core.c', lit('if (status == VMM_STATUS_SUCCESS) { vmm_add(b, page, size); locked++; '
                             '} else { vmm_refuse(b, page, size); vmm_note_refusal(b, status); } } '
                             'vmm_free_list(b, list, size); return locked;'),
       'if (status == VMM_STATUS_SUCCESS || vmm_lock_refusal(status)) { vmm_add(b, page, size); '
       'locked++; } else { vmm_refuse(b, page, size); vmm_note_refusal(b, status); } } '
       'vmm_free_list(b, list, size); return locked;')],
     ['test_balloon.py::test_one_in_seven_refused_reaches_target', 'test_balloon.py::test_refusal_codes']),
    ('status-mask', 'wrong status handling',
     'per-entry status read with a 2-bit mask: PPN_UNLOCKED (4) and BUSY (8) read as success',
     [('backdoor.h', lit('& 0x1f);'), '& 0x3);')],
     ['test_balloon.py::test_refusal_codes', 'test_chaos.py::test_chaos']),
    ('lost-refused-page', 'lost page',
     'a refused page is counted but never put on the refused list: never freed',
     [('balloon_core.c', lit('list_add(&page->lru, &b->refused[size]); b->nr_refused[size]++;'),
       'b->nr_refused[size]++;')],
     ['test_balloon.py::test_one_in_seven_refused_reaches_target', 'test_balloon.py::test_refusal_codes']),
    ('release-on-failed-unlock', 'freeing a page the host still holds',
     'batched UNLOCK: a page is freed whatever its entry status says',
     [('balloon_core.c', lit('vmm_batch_status(h, i++) == VMM_STATUS_SUCCESS) { vmm_release(b, page, size);'),
       '(vmm_batch_status(h, i++), 1)) { vmm_release(b, page, size);')],
     ['test_chaos.py::test_chaos']),
    ('deflate-without-unlock', 'missing unlock',
     'basic protocol: deflating frees pages without UNLOCK',
     [('balloon_core.c', lit('status = vmm_hv_lock(h, page_to_pfn(page), false);'),
       'status = VMM_STATUS_SUCCESS;')],
     ['test_balloon.py::test_inflate_deflate_basic']),
    ('no-pop-on-reset', 'lost RESET',
     'after a RESET the pages the host forgot stay in the balloon',
     [('balloon_core.c', re.compile(r'(\}\n)(\s*)vmm_pop\(b\);(\s*status = vmm_hv_start\(h, vmm_offered_caps\(\)\);)'),
       r'\1\2/* vmm_pop(b); */\3')],
     ['test_balloon.py::test_reset_mid_inflate_batched', 'test_balloon.py::test_reset_mid_inflate_basic']),
    ('unload-without-start0', 'missing unlock',
     'rmmod frees every page without telling the host (no START(0))',
     [('balloon_core.c', lit('vmm_hv_start(&b->host, 0) != VMM_STATUS_SUCCESS && size)'),
       '0 && size)')],
     ['test_balloon.py::test_rmmod_with_full_balloon']),
    ('no-cancel-on-unload', 'missing cancel',
     'rmmod does not cancel the delayed work: it runs in freed module text',
     [('balloon_core.c', lit('cancel_delayed_work_sync(&b->work); vmm_stats_exit(b);'),
       'vmm_stats_exit(b);')],
     ['test_balloon.py::test_rmmod_with_full_balloon', 'test_protocol.py::test_capability_matrix']),
    ('split-without-unlock', 'double lock',
     'splitting a 2 MiB page skips its UNLOCK: part of it is freed while the host '
     'holds it and the rest is locked again as 4 KiB pages',
     [('balloon_core.c', lit('vmm_batch_set(h, 0, page_to_pfn(page)); status = vmm_hv_batch(h, 1, false, true);'),
       'vmm_batch_set(h, 0, page_to_pfn(page)); status = VMM_STATUS_SUCCESS;')],
     ['test_protocol.py::test_2m_balloon_shrinks_by_less_than_2m']),
    ('split-accounting', 'forgetting 2M split bookkeeping',
     'a split 2 MiB page\'s 512 frames are not counted as 4 KiB allocations',
     [('balloon_core.c', lit('b->stat[VMM_4K].alloc += vmm_frames(VMM_2M);'), '')],
     ['test_protocol.py::test_2m_balloon_shrinks_by_less_than_2m']),
    ('wrong-gfp', 'wrong GFP',
     'inflation allocates with GFP_HIGHUSER: direct reclaim, retries, warnings, OOM kills',
     [('balloon_core.c', re.compile(r'#define VMM_GFP_4K\s*\((?:[^()]|\([^()]*\))*\)'),
       '#define VMM_GFP_4K\t(GFP_HIGHUSER)')],
     ['test_balloon.py::test_absurd_target_is_bounded', 'test_pressure.py::test_pressure_no_oom_kill_then_reinflate',
      'test_chaos.py::test_chaos']),
    ('huge-without-2m-cap', 'capability not granted',
     'uses 2 MiB pages when only batched was granted',
     [('balloon_core.c', lit('return vmm_host_can(&b->host, VMM_CAP_BATCHED | VMM_CAP_BATCHED_2M);'),
       'return vmm_host_can(&b->host, VMM_CAP_BATCHED);')],
     ['test_protocol.py::test_capability_matrix']),
]


def apply_bug(src_dir, patches):
    """Apply the patches in src_dir. Returns None, or why the bug cannot be planted."""
    for fname, pat, repl in patches:
        path = os.path.join(src_dir, fname)
        if not os.path.exists(path):
            return 'pattern not found (%s missing)' % fname
        with open(path) as f:
            text = f.read()
        rx = pat if isinstance(pat, re.Pattern) else re.compile(pat)
        if isinstance(pat, re.Pattern):
            new, n = rx.subn(repl, text, count=1)
        else:
            new, n = rx.subn(lambda m: repl, text, count=1)
        if n == 0:
            return 'pattern not found in %s: %s' % (fname, (pat.pattern if isinstance(pat, re.Pattern)
                                                           else pat)[:80])
        with open(path, 'w') as f:
            f.write(new)
    return None


def scratch_build(k, name, patches, log):
    """Copy the sources, plant, build. Returns (ko path or None, status text)."""
    if k.root:
        inside = '/vmmemctl-planted/%s' % name
        build_dir = os.path.join(k.root, inside.lstrip('/'))
    else:
        build_dir = os.path.join(tempfile.gettempdir(), 'vmmemctl-planted-%s-%s' % (k.id, name))
        inside = build_dir
    shutil.rmtree(build_dir, ignore_errors=True)
    os.makedirs(build_dir)
    for rel in kernels.module_sources(REPO):
        dst = os.path.join(build_dir, rel)
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        shutil.copy2(os.path.join(REPO, rel), dst)
    why = apply_bug(build_dir, patches)
    if why:
        return None, why
    rc, out = k.run(['make', '-C', inside, 'KDIR=' + k.kdir], timeout=900)
    log.write('=== build %s\n%s\n' % (name, out))
    ko = os.path.join(build_dir, 'vmmemctl.ko')
    if rc != 0 or not os.path.exists(ko):
        return None, 'build failed: %s' % out.strip().splitlines()[-1:] if out.strip() else 'build failed'
    return ko, 'built'


def run_test(k, test, ko, out_root, log, env_extra=None):
    """Run one test against ko; returns (passed: bool, last failure line)."""
    env = dict(os.environ, VMMEMCTL_KO=ko, RIG_OUT=out_root, JOBS='1')
    env.pop('TESTS', None)
    env.update(env_extra or {})
    cmd = [sys.executable, os.path.join(HERE, 'run_tests.py'), '--kernels', k.id,
           '-k', test.replace('.py::', '::')]
    t = time.monotonic()
    p = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=1800)
    out = p.stdout + p.stderr
    log.write('=== %s (%.0fs)\n%s\n' % (test, time.monotonic() - t, out))
    log.flush()
    m = re.search(r'^(\d+) passed, (\d+) failed$', p.stdout, re.M)
    if not m or int(m.group(1)) + int(m.group(2)) == 0:
        return None, 'test not run (no such test?)'
    fails = [line for line in out.splitlines() if line.startswith('--- FAIL')]
    return int(m.group(2)) == 0, (fails[0][:300] if fails else '')


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('bugs', nargs='*', help='bug names (default: all)')
    ap.add_argument('--kernel', default='6.1')
    ap.add_argument('--list', action='store_true')
    ap.add_argument('--all-tests', action='store_true', help='run every candidate test of a bug')
    ap.add_argument('--chaos-seconds', default='60', help='CHAOS_SECONDS for the chaos runs')
    args = ap.parse_args()
    if args.list:
        for name, kind, what, _, tests in BUGS:
            print('%-26s %-32s %s\n%28s tests: %s' % (name, kind, what, '', ', '.join(tests)))
        return 0
    bugs = [b for b in BUGS if not args.bugs or b[0] in args.bugs]
    unknown = set(args.bugs) - {b[0] for b in BUGS}
    if unknown:
        print('unknown bugs: %s' % sorted(unknown))
        return 2
    k = kernels.select(args.kernel)[0]
    out_root = os.path.join(REPO, 'tests', 'out', 'planted')
    os.makedirs(out_root, exist_ok=True)
    log = open(os.path.join(out_root, 'planted.log'), 'w')
    rows = []
    for name, kind, what, patches, tests in bugs:
        t0 = time.monotonic()
        print('--- %s (%s): %s' % (name, kind, what), flush=True)
        ko, status = scratch_build(k, name, patches, log)
        if not ko:
            print('    %s' % status, flush=True)
            rows.append((name, kind, status, ''))
            continue
        caught = []
        for test in tests:
            passed, why = run_test(k, test, ko, os.path.join(out_root, name), log,
                                   {'CHAOS_SECONDS': args.chaos_seconds})
            verdict = 'not run' if passed is None else 'passed (missed it)' if passed else 'FAILED (caught)'
            print('    %-60s %s %s' % (test, verdict, why[:160]), flush=True)
            if passed is False:
                caught.append((test, why))
                if not args.all_tests:
                    break
        rows.append((name, kind, ', '.join(t for t, _ in caught) if caught else 'NOT CAUGHT',
                     caught[0][1] if caught else ''))
        print('    %.0fs' % (time.monotonic() - t0), flush=True)
    print('\n| planted bug | kind | caught by |\n|---|---|---|')
    for name, kind, by, _ in rows:
        print('| %s | %s | %s |' % (name, kind, by))
    missed = [r for r in rows if r[2] == 'NOT CAUGHT']
    print('\n%d bugs, %d caught, %d not caught, %d not planted' % (
        len(rows), sum(1 for r in rows if r[2] not in ('NOT CAUGHT',) and not r[2].startswith(('pattern', 'build'))),
        len(missed), sum(1 for r in rows if r[2].startswith(('pattern', 'build')))))
    return 1 if missed else 0


if __name__ == '__main__':
    sys.exit(main())
