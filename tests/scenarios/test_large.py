# SPDX-License-Identifier: GPL-2.0
"""Large balloons (issue 14): no fixed rate ceiling by default, and the work
item holds the balloon lock for one batch at a time, briefly."""

import re
import time

import kernels

from common import TRACING, assert_accounting, boot, finish, load, param, trace_vmmemctl, wait_size

# The deflate ceiling the driver had by default before issue 14, in 4 KiB
# pages per one-second period (512 MiB/s; inflate had 256 MiB/s).
OLD_DEFLATE_MAX = 131072
# Issue 14's bound on how long the work item holds the lock for one batch,
# in guest time. Every batch must meet it in the typical case (the median
# of the holds that moved pages; a quiet run measures 0.5-3 ms under TCG).
LOCK_HOLD_BATCH_US = 10000
# The longest holds: the guest's clock is the host's, so when the host
# deschedules QEMU's vCPU thread (2 shared cores, other guests beside) the
# guest sees a hold of 10-50 ms now and then that no driver change can
# shorten. All but one hold in a hundred (and at least one) stay under
# LOCK_HOLD_MAX_US, and none reaches LOCK_HOLD_WORST_US: that still catches
# what matters, allocating a batch under the lock (before issue 14), which
# held it for 1-3 s.
LOCK_HOLD_MAX_US = 50000
LOCK_HOLD_WORST_US = 4 * LOCK_HOLD_MAX_US


def _target_70(r):
    """70% of the guest's RAM, in whole 2 MiB pages (4 KiB pages)."""
    total_kb = r.meminfo()['MemTotal']
    return total_kb * 7 // 10 // 2048 * 512


def _moved_per_window(trace, event, window=1.0):
    """Most pages one kind of event moved within any `window` seconds of
    guest trace time."""
    evs = [(float(m.group(1)), int(m.group(2))) for m in re.finditer(
        r'\s(\d+\.\d+): %s: pages=(\d+)' % event, trace)]
    best, lo, acc = 0, 0, 0
    for t, pages in evs:
        acc += pages
        while evs[lo][0] < t - window:
            acc -= evs[lo][1]
            lo += 1
        best = max(best, acc)
    return best, len(evs)


def batch_holds(trace, event):
    """Lock holds (us) that moved pages: each `event` (logged under the lock
    for one batch) and the vmmemctl_lock_hold that closes its stretch."""
    holds, moved = [], False
    for m in re.finditer(r': (%s|vmmemctl_lock_hold): (?:pages=\d+|held_ns=(\d+))' % event, trace):
        if m.group(1) == event:
            moved = True
        elif moved:
            holds.append(int(m.group(2)) // 1000)
            moved = False
    return sorted(holds)


def _assert_holds(r, holds, what):
    assert holds, 'no lock hold traced while %s' % what
    median, longest = holds[len(holds) // 2], holds[-1]
    r.log('%s: %d batches, lock held %d us median, %d us at the 90th percentile, %d us at most'
          % (what, len(holds), median, holds[len(holds) * 9 // 10], longest))
    assert median < LOCK_HOLD_BATCH_US * r.slowdown, \
        'work item held the lock %d us a batch (median of %d) while %s' % (median, len(holds), what)
    over = [h for h in holds if h >= LOCK_HOLD_MAX_US * r.slowdown]
    assert len(over) <= max(1, len(holds) // 100) and longest < LOCK_HOLD_WORST_US * r.slowdown, \
        'work item held the lock %s us (of %d batches) while %s' % (over, len(holds), what)


def _lock_hold(name, params, cycles=1):
    """Inflate 70% of a 1 GiB guest and back: the work item holds the
    balloon lock for one batch at a time, briefly (LOCK_HOLD_BATCH_US a
    batch, LOCK_HOLD_MAX_US nearly always, see there), as the vmmemctl_lock_hold
    tracepoint and debugfs' maximum show; nothing in the idle guest slows
    inflation, and once at the target nothing limits the balloon. `cycles`
    times, so that the median is of enough batches to mean something.

    The time is guest time (ktime in the work item, around each stretch it
    holds the lock). Under TCG the guest's TSC keeps running while QEMU's
    gdbstub stops for the simulated host to answer a hypercall, so that
    round trip (about 1-2 ms) counts, as a real hypercall's exit would: the
    lock is held across it. Allocation (the guest zeroes every page,
    init_on_alloc: seconds for 700 MiB under TCG) happens with the lock
    dropped and does not count. What is left per batch is the hypercall and
    marking the pages offline.
    """
    k = kernels.current()
    if k.debug:
        # KASAN, DEBUG_PAGEALLOC (every freed page unmapped) and friends make
        # every step many times slower: a latency bound means nothing there.
        print('not applicable on %s: a timing bound on a debug kernel' % k.id)
        return
    with boot(name, mem_mb=1024) as r:
        load(r, params=params)
        trace_vmmemctl(r)
        target = _target_70(r)
        for _ in range(cycles):
            t = time.monotonic()
            r.host.set_target(target)
            wait_size(r, target, timeout=300)
            up = time.monotonic() - t
            st = r.stats()
            assert st['limited by'] == 'none', st['limited by']
            r.log('inflate of %d pages: %.1f s, longest lock hold %d us (debugfs)' % (
                target, up, st['lock hold max (us)']))
            t = time.monotonic()
            r.host.set_target(0)
            wait_size(r, 0, timeout=300)
            down = time.monotonic() - t
            st = r.stats()
            r.log('deflate: %.1f s, longest lock hold %d us (debugfs)' % (down, st['lock hold max (us)']))
        rc, trace = r.sh('cat %s/trace' % TRACING, timeout=120)
        assert rc == 0, trace[-500:]
        # Nothing in an idle guest slows the balloon: no reclaim, and the
        # guest itself allocates nothing. Pages a deflate frees onto the
        # per-cpu lists (tens of MiB since 6.7) are not the guest's.
        slowed = re.findall(r'.*vmmemctl_inflate_rate:.* slowed_by=(?!none).*', trace)
        assert not slowed and st['slowdowns'] == 0, \
            'idle guest, %d slowdowns: %s' % (st['slowdowns'], '; '.join(x.strip() for x in slowed[:3]))
        up_holds = batch_holds(trace, 'vmmemctl_inflate')
        down_holds = batch_holds(trace, 'vmmemctl_deflate')
        _assert_holds(r, up_holds, 'inflating')
        _assert_holds(r, down_holds, 'deflating')
        # debugfs keeps the longest of every stretch, batches or not.
        assert max(up_holds + down_holds) <= st['lock hold max (us)'] < LOCK_HOLD_WORST_US * r.slowdown, \
            'debugfs lock hold max %d us, traced batches up to %d us' % (
                st['lock hold max (us)'], max(up_holds + down_holds))
        finish(r)


def test_large_inflate_lock_hold():
    """2 MiB pages: 128 of them (256 MiB) a batch, three batches each way;
    three times up and down, or one batch the host kept waiting out of
    three would be the median."""
    _lock_hold('large_lock_hold', '', cycles=3)


def test_large_inflate_lock_hold_4k():
    """Batched 4 KiB pages: 512 a batch, about 340 batches each way."""
    _lock_hold('large_lock_hold_4k', 'huge_pages=n')


def test_large_inflate_not_rate_limited():
    """With the default parameters no per-second budget applies: debugfs
    shows no budget (rate 0) before, during and after a large inflate and
    deflate, and the deflate moves more per second than the old ceiling
    allowed."""
    with boot('large_no_rate', mem_mb=1024) as r:
        load(r)
        for name in ('inflate_rate_max', 'deflate_rate_max'):
            assert param(r, name) == '0', '%s defaults to %s' % (name, param(r, name))
        trace_vmmemctl(r)
        target = _target_70(r)
        r.host.set_target(target)
        r.wait_for(lambda: r.stats()['current'] > 0, timeout=60, what='inflating')
        st = r.stats()
        assert st['inflate rate'] == 0 and st['deflate rate'] == 0, \
            'a rate budget applies: inflate %d, deflate %d' % (st['inflate rate'],
                                                              st['deflate rate'])
        wait_size(r, target, timeout=300)
        st = r.stats()
        assert st['inflate rate'] == 0, 'inflate budget appeared: %d' % st['inflate rate']
        assert st['allocFail (4k)'] == 0, 'allocations failed: the test needs a healthy guest'
        r.host.set_target(0)
        wait_size(r, 0, timeout=300)
        st = r.stats()
        assert st['deflate rate'] == 0, 'deflate budget appeared: %d' % st['deflate rate']
        assert_accounting(st)
        rc, trace = r.sh('cat %s/trace' % TRACING, timeout=120)
        assert rc == 0, trace[-500:]
        up, n_up = _moved_per_window(trace, 'vmmemctl_inflate')
        down, n_down = _moved_per_window(trace, 'vmmemctl_deflate')
        r.log('most moved in one second: inflate %d pages (%d events), deflate %d (%d events)'
              % (up, n_up, down, n_down))
        # Inflation is not asserted against the old ceiling: the guest zeroes
        # every page it allocates (init_on_alloc), about 150 MiB/s under TCG,
        # below 256 MiB/s. 'inflate rate' 0 above shows no budget applied.
        assert down > OLD_DEFLATE_MAX, \
            'deflate never beat the old 512 MiB/s ceiling (%d pages in 1 s)' % down
        finish(r)
