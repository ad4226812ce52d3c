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
# and optionally a sixth field, 'debug': a bug only the debug kernel's checkers
# (KASAN, lockdep, DEBUG_ATOMIC_SLEEP, DEBUG_LIST, page_owner, fault injection)
# are expected to catch; those run with --kernel <id>-debug (and only those,
# unless bugs are named), the others on every other kernel.
# No bug relies on test_chaos: its random host decides what a run exercises.
# A pattern is a snippet (lit()) or a compiled regex; the replacement is text
# (for a compiled regex: a re.sub template). Patterns are kept short, in
# backdoor.c, params.c, stats.c and the session code where possible, so that
# small edits elsewhere do not unplant them.
BASIC = 'test_balloon.py::test_inflate_deflate_basic'
FULL = 'test_balloon.py::test_rmmod_with_full_balloon'
BUGS = [
    # ---- the session and its commands (backdoor.c, balloon_core.c) ----
    ('no-start-first', 'command before START',
     'the session starts "open": the first work run sends GET_TARGET before START',
     [('backdoor.c', lit('*h = (struct vmb_host){ .reset_required = true };'),
       '*h = (struct vmb_host){ .reset_required = false };')],
     [BASIC, 'test_protocol.py::test_capability_matrix']),
    ('target-from-failed-call', 'wrong status handling',
     'takes the target from rbx even when the command failed (the adversarial host puts '
     'random values there)',
     [('backdoor.c', lit('if (status != VMB_STATUS_SUCCESS) { h->cmd_fail[cmd]++;'),
       'if (status != VMB_STATUS_SUCCESS) { if (cmd != VMB_CMD_START && cmd != VMB_CMD_GUEST_ID) '
       'h->target = (u32)result; h->cmd_fail[cmd]++;')],
     ['test_balloon.py::test_refusals_never_push_the_balloon_past_target',
      'test_balloon.py::test_one_in_seven_refused_reaches_target', 'test_balloon.py::test_busy_and_failure_windows']),
    ('target-upper-half', 'undefined register used',
     'keeps the upper half of rbx as the target without the 64-bit target capability',
     [('backdoor.c', lit('(u64)result : (u32)result;'), '(u64)result : result;')],
     ['test_protocol.py::test_capability_matrix']),
    ('old-host-caps', 'capability not granted',
     'an old host\'s plain SUCCESS to START grants everything offered: batched commands '
     'to a basic-only host',
     [('backdoor.c', lit('h->caps = (u32)arg1 & VMB_CAP_BASIC;'), 'h->caps = (u32)arg1;')],
     ['test_protocol.py::test_old_host_plain_success', 'test_protocol.py::test_capability_matrix']),
    ('no-pop-on-reset', 'lost RESET',
     'after a RESET the pages the host forgot stay in the balloon (no pop before the new START)',
     [('balloon_core.c', lit('vmb_pages_pop(b); status = vmb_host_start(h, vmb_offered_caps());'),
       'status = vmb_host_start(h, vmb_offered_caps());')],
     ['test_balloon.py::test_reset_mid_inflate_batched', 'test_balloon.py::test_reset_mid_inflate_basic']),
    ('entry-reset-resets-session', 'wrong status handling',
     'a RESET in one entry of a successful batch resets the whole session: pages the host '
     'still holds are popped',
     [('backdoor.c', lit('if (status != VMB_STATUS_SUCCESS) h->status_count[vmb_status_bucket(status)]++; }'),
       'if (status != VMB_STATUS_SUCCESS) h->status_count[vmb_status_bucket(status)]++; '
       'if (status == VMB_ERROR_RESET) h->reset_required = true; }')],
     ['test_corners.py::test_entry_reset_in_a_batch_frees_nothing']),
    ('renegotiate-pops-on-busy', 'freeing a page the host still holds',
     'a batching/huge_pages switch pops the balloon even when START(0) failed (BUSY)',
     [('balloon_core.c', lit('!h->reset_required) return false;'), '!h->reset_required) {}')],
     ['test_corners.py::test_protocol_switch_while_host_busy_keeps_pages']),
    ('get-target-skipped', 'GET_TARGET skipped',
     'GET_TARGET only while the balloon stands still: a long inflate never reports the RAM size',
     [('balloon_core.c', lit('status = vmb_host_get_target(&b->host, totalram_pages());'),
       'status = vmb_balloon_size(b) != b->goal ? VMB_STATUS_SUCCESS : '
       'vmb_host_get_target(&b->host, totalram_pages());')],
     ['test_corners.py::test_basic_inflate_polls_target_every_period']),
    ('no-quick-poll', 'GET_TARGET skipped',
     'no quick polls: after a change the next target is seen up to half a second later',
     [('balloon_core.c', lit('b->quick_polls ? VMB_QUICK_POLL :'), 'b->quick_polls ? VMB_IDLE_POLL :')],
     ['test_protocol.py::test_quick_polls_after_a_change_then_twice_a_second']),
    ('quick-poll-forever', 'hypercall flood',
     'quick polls never run out: ten GET_TARGETs a second on a guest at rest',
     [('balloon_core.c', lit('if (b->quick_polls) b->quick_polls--;'), '')],
     ['test_protocol.py::test_quick_polls_after_a_change_then_twice_a_second']),
    ('no-idle-poll', 'GET_TARGET skipped',
     'at rest the target is polled only at period ends, once a second',
     [('balloon_core.c', lit('#define VMB_IDLE_POLL (VMB_PERIOD / 2)'), '#define VMB_IDLE_POLL VMB_PERIOD')],
     ['test_protocol.py::test_quick_polls_after_a_change_then_twice_a_second']),
    ('unload-without-start0', 'missing unlock',
     'rmmod frees every page without telling the host (no START(0))',
     [('balloon_core.c', lit('if (vmb_host_drop_balloon(&b->host))'), 'if (1)')],
     [FULL]),
    ('unload-no-retry-on-busy', 'wrong status handling',
     'the unload asks a BUSY host only once to drop the balloon, then unlocks page by page',
     [('backdoor.c', lit('if (status != VMB_ERROR_BUSY) break;'), 'break;')],
     ['test_balloon.py::test_rmmod_when_host_busy_for_a_while']),
    ('unload-frees-held-pages', 'lost page',
     'when the host did not take the unload\'s START, the pages are freed while it still holds them',
     [('balloon_core.c', lit('while (vmb_balloon_size(b) && vmb_pages_deflate(b, vmb_balloon_size(b), '
                             'VMB_DEFLATE_UNDER_PRESSURE)) cond_resched();'), '')],
     ['test_balloon.py::test_rmmod_when_host_stays_busy']),
    ('no-cancel-on-unload', 'missing cancel',
     'rmmod does not cancel the delayed work: a queued run comes after the module is gone',
     [('balloon_core.c', lit('cancel_delayed_work_sync(&b->work); vmb_stats_exit();'),
       'vmb_stats_exit();')],
     [FULL, 'test_protocol.py::test_capability_matrix']),
    ('cmd-without-cap', 'capability not granted',
     'the local check of granted capabilities is gone and 2 MiB pages are used with '
     'batching alone',
     [('backdoor.c', lit('if ((h->caps & vmb_cmd_caps[cmd]) != vmb_cmd_caps[cmd]) {'), 'if (0) {'),
      ('backdoor.h', lit('return vmb_host_can(h, VMB_CAP_BATCHED | VMB_CAP_BATCHED_2M);'),
       'return vmb_host_can(h, VMB_CAP_BATCHED);')],
     ['test_protocol.py::test_capability_matrix']),
    # ---- what a page's status means (backdoor.c) ----
    ('status-mask', 'wrong status handling',
     'per-entry status read with a 2-bit mask: PPN_UNLOCKED (4) and BUSY (8) read as success',
     [('backdoor.c', lit('& 0x1f);'), '& 0x3);')],
     ['test_balloon.py::test_refusal_codes']),
    ('entry-status-ignored', 'ignoring refusals',
     'every entry of a successful batched call counts as done, refused or not',
     [('backdoor.c', lit('vmb_host_note_entry_status(h, vmb_host_page_status(h, i));'),
       '{ vmb_host_note_entry_status(h, vmb_host_page_status(h, i)); h->batch[i] &= ~0x1fULL; }')],
     ['test_balloon.py::test_refusal_codes']),
    ('basic-refusal-as-success', 'ignoring refusals',
     'basic protocol: a refused LOCK joins the balloon',
     [('backdoor.c', lit('h->batch[i++] |= status;'),
       'h->batch[i++] |= op == VMB_OP_LOCK ? 0 : status;')],
     ['test_balloon.py::test_one_in_seven_refused_reaches_target', 'test_balloon.py::test_refusal_codes']),
    ('release-on-failed-unlock', 'freeing a page the host still holds',
     'an UNLOCK refused with any status counts as "the host did not hold it": the page is freed',
     [('backdoor.c', lit('} else if (status == VMB_ERROR_PPN_UNLOCKED) {'), '} else {')],
     ['test_balloon.py::test_refused_unlock_keeps_the_page', 'test_balloon.py::test_refusal_codes']),
    ('ppn-unlocked-as-refusal', 'wrong status handling',
     'PPN_UNLOCKED to an UNLOCK is a refusal again: the page stays ballooned, retried forever',
     [('backdoor.c', lit('return VMB_ANSWER_NOT_HELD;'), 'return VMB_ANSWER_REFUSED;')],
     ['test_corners.py::test_unlock_answered_ppn_unlocked_frees_the_page']),
    ('ppn-locked-as-refusal', 'wrong status handling',
     'PPN_LOCKED to a LOCK is a refusal: a page the host holds goes to the refused list and '
     'is freed',
     [('backdoor.c', lit('if (status == VMB_ERROR_PPN_LOCKED) return VMB_ANSWER_DONE;'),
       'if (status == VMB_ERROR_PPN_LOCKED) return VMB_ANSWER_REFUSED;')],
     ['test_corners.py::test_lock_answered_ppn_locked_joins_the_balloon']),
    ('basic-no-stop-at-notneeded', 'ignoring the host',
     'basic protocol: after PPN_NOTNEEDED the request goes on with the rest of its 64 LOCKs',
     [('backdoor.c', lit('if (answer == VMB_ANSWER_HOST_FULL ||'), 'if (0 ||')],
     ['test_corners.py::test_basic_lock_stops_at_notneeded']),
    ('basic-no-stop-at-refused-max', 'ignoring the host',
     'basic protocol: refused_max does not stop the request: up to 64 refused LOCKs a period',
     [('backdoor.c', lit('++refused >= max_refused))'), '++refused > VMB_BATCH_MAX))')],
     ['test_corners.py::test_basic_lock_stops_at_refused_max']),
    ('deflate-without-unlock', 'missing unlock',
     'basic protocol: deflating frees pages without UNLOCK',
     [('backdoor.c', lit('status = vmb_cmd(h, cmd, pfn, 0);'),
       'status = op == VMB_OP_UNLOCK ? VMB_STATUS_SUCCESS : vmb_cmd(h, cmd, pfn, 0);')],
     [BASIC]),
    # ---- the request path and the lists (pages.c) ----
    ('lost-refused-page', 'lost page',
     'refused pages are counted but never put on the refused list: never freed',
     [('pages.c', lit('list_splice(&req.refused, &b->refused[size]);'), '')],
     ['test_balloon.py::test_one_in_seven_refused_reaches_target', 'test_balloon.py::test_refusal_codes']),
    ('unanswered-pages-kept', 'lost page',
     'pages a failed call left unanswered are neither freed nor ballooned',
     [('pages.c', lit('vmb_fail_period(b); vmb_free_list(b, &req.pages, size);'),
       'vmb_fail_period(b); INIT_LIST_HEAD(&req.pages);')],
     ['test_balloon.py::test_busy_and_failure_windows']),
    ('split-without-unlock', 'double lock',
     'splitting a 2 MiB page skips its UNLOCK: part of it is freed while the host '
     'holds it and the rest is locked again as 4 KiB pages',
     [('pages.c', lit('vmb_pages_unlock(b, &req, VMB_PAGE_2M, 1);'),
       'vmb_request_init(&req, VMB_OP_UNLOCK, VMB_PAGE_2M, UINT_MAX); '
       'if (vmb_balloon_take(b, &req.accepted, VMB_PAGE_2M, 1)) '
       'vmb_balloon_remove(&req.accepted, VMB_PAGE_2M, 1);')],
     ['test_protocol.py::test_2m_balloon_shrinks_by_less_than_2m']),
    ('split-accounting', 'forgetting 2M split bookkeeping',
     'a split 2 MiB page\'s 512 frames are not counted as 4 KiB allocations',
     [('pages.c', lit('b->stat[VMB_PAGE_4K].alloc += vmb_frames(VMB_PAGE_2M);'), '')],
     ['test_protocol.py::test_2m_balloon_shrinks_by_less_than_2m']),
    ('wrong-gfp', 'wrong GFP',
     'inflation allocates 4 KiB pages with GFP_HIGHUSER: unmovable (kept out of ZONE_MOVABLE, '
     'never migrated), direct reclaim, retries, warnings',
     [('pages.c', re.compile(r'#define VMB_GFP_4K\s*\((?:[^()]|\([^()]*\))*\)'),
       '#define VMB_GFP_4K\t(GFP_HIGHUSER)')],
     ['test_movable_zone.py::test_offline_movable_block_batched',
      'test_balloon.py::test_absurd_target_is_bounded', 'test_pressure.py::test_pressure_no_oom_kill_then_reinflate']),
    # ---- the zone floor (pressure.c) ----
    ('no-zone-floor', 'zone drained',
     'on a guest with ZONE_MOVABLE the balloon counts only the global floor: '
     'it drains DMA32/Normal, which kernel allocations need',
     [('pressure.c', lit('if (zone_idx(zone) >= ZONE_MOVABLE ||'), 'if (true ||'),
      ('pressure.c', lit('if (!movable)\n\t\treturn ULONG_MAX;'), 'return ULONG_MAX;')],
     ['test_movable_zone.py::test_movablecore_pressure_keeps_normal_zones']),
    # ---- the pressure path after a RESET (pressure.c) ----
    ('pressure-unlocks-after-reset', 'command after RESET',
     'the pressure path goes on unlocking after a RESET answer: commands with no session',
     [('pressure.c', lit('while (!b->host.reset_required && vmb_host_can_lock(&b->host) &&'),
       'while (vmb_host_can_lock(&b->host) &&')],
     ['test_corners.py::test_pressure_after_reset_frees_forgotten_pages']),
    ('pressure-keeps-forgotten-pages', 'lost RESET',
     'after a RESET the pressure path frees nothing until the next session start',
     [('pressure.c', lit('freed += vmb_pages_drop(b, frames - freed);'), 'freed += 0;')],
     ['test_corners.py::test_pressure_after_reset_frees_forgotten_pages']),
    # ---- parameters and statistics (params.c, stats.c) ----
    ('rate-order-at-load', 'parameters',
     'rate bounds are checked against each other at load too: '
     '"modprobe vmmemctl inflate_rate_max=256" fails (the default minimum is 512)',
     [('params.c', lit('if (READ_ONCE(vmb_params_live) &&'), 'if (')],
     ['test_admin.py::test_rate_params_any_order_at_load']),
    ('rate-crossing-accepted', 'parameters',
     'a rate bound written at run time is not checked against the other bound',
     [('params.c', lit('if (READ_ONCE(vmb_params_live) &&'), 'if (0 &&')],
     ['test_admin.py::test_parameters_valid_and_invalid', 'test_admin.py::test_rate_params_any_order_at_load']),
    ('param-range-unchecked', 'parameters',
     'numeric parameters accept values above their maximum',
     [('params.c', lit('v < lo || v > hi) {'), 'v < lo) {')],
     ['test_admin.py::test_parameters_valid_and_invalid']),
    ('max-size-percent-ignored', 'not bounding the host\'s target',
     'max_size as a percentage of RAM is ignored (no cap)',
     [('params.c', lit('return ram / 100 * READ_ONCE(vmb_params.max_size_percent);'), 'return ram;')],
     ['test_admin.py::test_cap_25_percent']),
    ('protocol-switch-ignored', 'parameters',
     'writing batching or huge_pages does not restart the session',
     [('params.c', lit('WRITE_ONCE(vmb_params.protocol_changed, true); return ret;'), '(void)0; return ret;')],
     ['test_protocol.py::test_admin_switches_off_batching_and_2m']),
    ('debugfs-in-tree-order', 'debugfs layout',
     'the in-tree per-size lines grouped by size, then counter (ours before issue 13)',
     [('stats.c', lit('for (i = 0; i < ARRAY_SIZE(vmb_page_stat_fields); i++) '
                      'for (size = 0; size < VMB_NR_PAGE_SIZES; size++)'),
       'for (size = 0; size < VMB_NR_PAGE_SIZES; size++) '
       'for (i = 0; i < ARRAY_SIZE(vmb_page_stat_fields); i++)')],
     ['test_debugfs.py::test_debugfs_in_tree_layout']),
    ('debugfs-current-wrong', 'debugfs layout',
     '"current" shows the 4 KiB pages only (2 MiB pages left out)',
     [('stats.c', lit('vmb_show_ul(f, "current", vmb_balloon_size(b));'),
       'vmb_show_ul(f, "current", READ_ONCE(b->nr_pages[VMB_PAGE_4K]));')],
     ['test_protocol.py::test_capability_matrix', 'test_debugfs.py::test_debugfs_in_tree_layout']),
    # ---- only the debug kernel's checkers see these (--kernel 6.1-debug) ----
    ('might-sleep-under-spinlock', 'sleep in atomic context',
     'every hypercall is made under a spinlock with a might_sleep() inside (DEBUG_ATOMIC_SLEEP)',
     [('backdoor.c', lit('status = vmb_backdoor(cmd, arg1, arg2, &result, &caps);'),
       '{ static DEFINE_SPINLOCK(vmb_planted_lock); spin_lock(&vmb_planted_lock); might_sleep(); '
       'status = vmb_backdoor(cmd, arg1, arg2, &result, &caps); spin_unlock(&vmb_planted_lock); }')],
     [FULL], 'debug'),
    ('double-list-del', 'list corruption',
     'every freed page is taken off its list twice (DEBUG_LIST)',
     [('pages.c', lit('list_del(&page->lru); __free_pages(page, vmb_order(size));'),
       'list_del(&page->lru); list_del(&page->lru); __free_pages(page, vmb_order(size));')],
     [FULL], 'debug'),
    ('leaked-batch-page', 'leaked page',
     'rmmod does not free the batch page: one 4 KiB page leaks (page_owner after unload)',
     [('backdoor.c', lit('free_page((unsigned long)h->batch);'), '')],
     [FULL], 'debug'),
    ('leaked-slab-object', 'leaked slab object',
     'load allocates a 192-byte object and drops the pointer (kmemleak after unload)',
     [('balloon_core.c', lit('vmb_pages_init(b);'), 'vmb_pages_init(b); (void)kmalloc(192, GFP_KERNEL);')],
     [FULL], 'debug'),
    ('use-after-free', 'use after free',
     'a freed page is read right after __free_pages() (KASAN, DEBUG_PAGEALLOC)',
     [('pages.c', lit('list_del(&page->lru); __free_pages(page, vmb_order(size));'),
       'list_del(&page->lru); __free_pages(page, vmb_order(size)); '
       '(void)READ_ONCE(*(char *)page_address(page));')],
     [FULL], 'debug'),
    ('gfp-warns', 'wrong GFP',
     'inflation allocates without __GFP_NOWARN: every failed allocation dumps a stack '
     '(fail_page_alloc fails allocations before the allocator could warn: a fragmented '
     'guest fails 2 MiB ones for real)',
     [('pages.c', lit('(__GFP_NOWARN | __GFP_NOMEMALLOC | __GFP_NORETRY)'),
       '(__GFP_NOMEMALLOC | __GFP_NORETRY)')],
     ['test_migration.py::test_2m_allocation_failures_are_quiet']),
    ('stats-lock-not-released', 'lock held on return',
     'the debugfs reader returns with the balloon lock held (lockdep; elsewhere the work '
     'item hangs)',
     [('stats.c', lit('vmb_show_ours(f, b); mutex_unlock(&b->lock);'), 'vmb_show_ours(f, b);')],
     [FULL], 'debug'),
    ('stats-without-lock', 'data race',
     'debugfs reads the balloon without its lock while the work item moves it '
     '(a torn snapshot: the page counts do not add up)',
     [('stats.c', lit('if (mutex_lock_interruptible(&b->lock)) return -EINTR;'), ''),
      ('stats.c', lit('vmb_show_ours(f, b); mutex_unlock(&b->lock);'), 'vmb_show_ours(f, b);')],
     ['test_debugfs.py::test_snapshots_add_up_while_the_balloon_moves']),
]


def is_debug_bug(bug):
    return len(bug) > 5 and bug[5] == 'debug'


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


# Failures of the rig itself (a guest that never booted on a loaded machine),
# which say nothing about the planted bug.
RIG_TROUBLE_RE = re.compile(r'timeout waiting for agent ready|QEMU exited before')


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
    if fails and RIG_TROUBLE_RE.search(fails[0]):
        # the guest never came up: the module was not even loaded yet
        return None, 'rig trouble, not a catch: ' + fails[0][:240]
    return int(m.group(2)) == 0, (fails[0][:300] if fails else '')


def check_patterns():
    """Plant every bug in its own scratch copy (no build): which ones no longer plant."""
    bad = 0
    for b in BUGS:
        with tempfile.TemporaryDirectory() as d:
            for rel in kernels.module_sources(REPO):
                os.makedirs(os.path.dirname(os.path.join(d, rel)), exist_ok=True)
                shutil.copy2(os.path.join(REPO, rel), os.path.join(d, rel))
            why = apply_bug(d, b[3])
        print('%-30s %s' % (b[0], why or 'plants'))
        bad += bool(why)
    print('%d bugs, %d do not plant' % (len(BUGS), bad))
    return 1 if bad else 0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('bugs', nargs='*', help='bug names (default: all)')
    ap.add_argument('--kernel', default='6.1')
    ap.add_argument('--list', action='store_true')
    ap.add_argument('--check', action='store_true',
                    help='only check that every bug plants (patterns match), no build')
    ap.add_argument('--all-tests', action='store_true', help='run every candidate test of a bug')
    ap.add_argument('--chaos-seconds', default='60', help='CHAOS_SECONDS for the chaos runs')
    args = ap.parse_args()
    if args.list:
        for b in BUGS:
            print('%-30s %-32s %s%s\n%32s tests: %s' % (b[0], b[1], b[2],
                  ' [debug kernel]' if is_debug_bug(b) else '', '', ', '.join(b[4])))
        return 0
    if args.check:
        return check_patterns()
    # Named bugs run on the kernel given; otherwise a debug kernel runs the
    # bugs only its checkers are expected to catch, any other kernel the rest.
    debug_kernel = args.kernel.endswith('-debug')
    bugs = [b for b in BUGS if b[0] in args.bugs or
            (not args.bugs and is_debug_bug(b) == debug_kernel)]
    unknown = set(args.bugs) - {b[0] for b in BUGS}
    if unknown:
        print('unknown bugs: %s' % sorted(unknown))
        return 2
    k = kernels.select(args.kernel)[0]
    out_root = os.path.join(REPO, 'tests', 'out', 'planted')
    os.makedirs(out_root, exist_ok=True)
    rows = []
    for name, kind, what, patches, tests, *_ in bugs:
        t0 = time.monotonic()
        # one log per bug: several runs (groups of bugs) may go side by side
        os.makedirs(os.path.join(out_root, name), exist_ok=True)
        log = open(os.path.join(out_root, name, 'planted.log'), 'w')
        print('--- %s (%s): %s' % (name, kind, what), flush=True)
        ko, status = scratch_build(k, name, patches, log)
        if not ko:
            print('    %s' % status, flush=True)
            rows.append((name, kind, status, ''))
            continue
        caught = []
        for test in tests:
            for attempt in range(2):
                passed, why = run_test(k, test, ko, os.path.join(out_root, name), log,
                                       {'CHAOS_SECONDS': args.chaos_seconds})
                if passed is not None:
                    break
                print('    %-60s %s' % (test, why[:160]), flush=True)
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
