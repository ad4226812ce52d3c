# SPDX-License-Identifier: GPL-2.0
"""Core balloon behaviour, seen from the guest and from the host."""

import itertools
import time

from common import (CAP_BASIC, CAP_BATCHED, DEBUGFS, ERROR_PPN_INVALID, ERROR_PPN_LOCKED,
                    ERROR_PPN_NOTNEEDED, ERROR_PPN_PINNED, ERROR_PPN_UNLOCKED, Rig,
                    HostConfig, assert_accounting, assert_guest_clean, assert_host_clean,
                    boot, cmd, finish, host_count, load, memfree_kb, vmmemctl_lines,
                    vmstat, wait_size)
from vmhost import ERROR_BUSY


def test_not_vmware_refuses_to_load():
    with Rig(name='not_vmware', vmware=False, host=HostConfig()) as r:
        rc, out = r.load(arm=False)
        assert rc != 0, 'vmmemctl loaded on a non-VMware guest'
        text = r.dmesg()
        assert 'vmmemctl: not running on VMware; not loading' in text, text[-1500:]
        rc, _ = r.sh('test -e %s' % DEBUGFS)
        assert rc != 0, 'debugfs file left behind'
        assert r.host.summary()['commands'] == 0


def test_inflate_deflate_basic():
    """4096 pages up and back down, one page per hypercall."""
    with boot('inflate_deflate_basic', caps=CAP_BASIC) as r:
        load(r)
        free0, vm0 = memfree_kb(r), vmstat(r)
        r.host.set_target(4096)
        wait_size(r, 4096, timeout=150)
        drop = free0 - memfree_kb(r)
        assert 14 * 1024 <= drop <= 18 * 1024, 'MemFree dropped %d kB for 16 MiB' % drop
        vm1 = vmstat(r)
        assert vm1['balloon_inflate'] - vm0['balloon_inflate'] == 4096
        st = r.stats()
        assert st['target'] == 4096 and st['pages 4k'] == 4096 and st['pages 2M'] == 0
        assert cmd(st, 'lock') == (4096, 0)
        assert_accounting(st)

        r.host.set_target(0)
        wait_size(r, 0, timeout=150)
        back = memfree_kb(r) - free0
        assert abs(back) < 2048, 'MemFree off by %d kB after deflate' % back
        assert vmstat(r)['balloon_deflate'] - vm0['balloon_deflate'] == 4096
        assert host_count(r, 'UNLOCK') == 4096
        assert host_count(r, 'BATCHED_LOCK') == 0, 'batched command without the capability'
        finish(r)


def test_target_changes_mid_inflate():
    with boot('target_change', caps=CAP_BASIC) as r:
        load(r)
        r.host.set_target(4096)
        r.wait_for(lambda: r.stats()['current'] >= 800, timeout=60, what='inflating')
        r.host.set_target(600)
        wait_size(r, 600, timeout=60)
        r.host.set_target(2000)
        wait_size(r, 2000, timeout=90)
        time.sleep(2)
        assert r.stats()['current'] == 2000 and r.host.locked_frames() == 2000, 'did not stay'
        finish(r)


def _reset_mid_inflate(name, caps, reset_at):
    # The host's target is there from the first GET_TARGET: command numbers
    # count from the start of inflation however slow the guest (debug kernel).
    with boot(name, caps=caps, reset_at=reset_at, target=3072) as r:
        load(r)
        r.host.set_target(3072)
        wait_size(r, 3072, timeout=150)
        h = r.host.summary()
        st = r.stats()
        assert h['resets_injected'] == 1, h['resets_injected']
        assert h['starts'] >= 2, 'no fresh START after the reset'
        assert st['reset'] == 1, 'guest did not count the reset'
        assert st['status reset'] >= 1
        # Popped pages were never unlocked: an unlock of a page the host no
        # longer holds is a violation. Deflate to make sure.
        r.host.set_target(0)
        wait_size(r, 0, timeout=150)
        finish(r)


def test_reset_mid_inflate_basic():
    _reset_mid_inflate('reset_basic', CAP_BASIC, [700])


def test_reset_mid_inflate_batched():
    # Commands: START, GUEST_ID, GET_TARGET, then batches of 512.
    _reset_mid_inflate('reset_batched', CAP_BASIC | CAP_BATCHED, [6])


def test_refusal_codes():
    """Each PPN_* refusal: the target is still reached, refused pages are
    never ballooned, and all of them go back to the guest."""
    with boot('refusals', caps=CAP_BASIC | CAP_BATCHED) as r:
        load(r)
        free0 = memfree_kb(r)
        # Not PPN_LOCKED: to a LOCK it means the host holds the page, so
        # it is ballooned, not refused (test_corners covers it).
        for status in (ERROR_PPN_INVALID, ERROR_PPN_UNLOCKED,
                       ERROR_PPN_PINNED, ERROR_PPN_NOTNEEDED):
            # Every 5th page offered, not every 5th frame: the allocator may
            # hand back exactly the frames the last round ballooned.
            offered = itertools.count(1)
            r.host.config.refuse = (lambda pfn, cmd, st=status, n=offered:
                                    st if next(n) % 5 == 0 else None)
            before = r.stats()['errAlloc (4k)']
            r.host.set_target(2048)
            wait_size(r, 2048, timeout=120)
            st = r.stats()
            assert st['errAlloc (4k)'] > before, 'no refusal counted for status %d' % status
            assert_accounting(st)
            r.host.config.refuse = None
            r.host.set_target(0)
            wait_size(r, 0, timeout=60)
            r.wait_for(lambda: r.stats()['refused 4k'] == 0, timeout=10,
                       what='refused pages released')
        back = memfree_kb(r) - free0
        # Coarse: per-cpu free lists hold a few MiB out of MemFree after
        # 40 MiB of churn; assert_accounting() above is the exact check.
        assert abs(back) < 4096, 'memory not returned: MemFree off by %d kB' % back
        finish(r)


def test_refused_unlock_keeps_the_page():
    """The host refuses UNLOCKs (PPN_PINNED, PPN_LOCKED: it still holds the
    page): those pages stay ballooned, the same count on both sides, and
    leave only when an UNLOCK succeeds."""
    with boot('unlock_refused', caps=CAP_BASIC | CAP_BATCHED) as r:
        h = r.host
        load(r)
        h.set_target(2048)
        wait_size(r, 2048, timeout=120)
        h.config.refuse_codes = (ERROR_PPN_PINNED, ERROR_PPN_LOCKED)
        h.config.refuse_rate = 0.3
        h.set_target(0)
        r.wait_for(lambda: r.stats()['errFree (4k)'] >= 64, timeout=60, what='refused unlocks')
        # Now every unlock is refused: the balloon stands still, and both
        # sides must count the same pages.
        h.config.refuse_rate = 1.0
        r.wait_for(lambda: r.stats()['current'] == h.locked_frames(), timeout=30,
                   what='guest and host agree while unlocks are refused')
        time.sleep(3)
        st = r.stats()
        assert st['current'] == h.locked_frames() > 0, \
            'guest counts %d pages, host holds %d frames: refused unlocks freed' % (
                st['current'], h.locked_frames())
        assert st['errFree (4k)'] >= 64, st['errFree (4k)']
        assert_accounting(st)
        h.config.refuse_rate = 0.0
        wait_size(r, 0, timeout=90)
        finish(r)


def test_one_in_seven_refused_reaches_target():
    """The in-tree driver crawls here: the allocator hands the freed refused
    pages straight back. vmmemctl keeps them while it inflates."""
    with boot('one_in_seven', caps=CAP_BASIC, refuse=(7, ERROR_PPN_PINNED)) as r:
        load(r)
        r.host.set_target(4096)
        wait_size(r, 4096, timeout=120)
        st = r.stats()
        assert st['errAlloc (4k)'] > 0
        assert_accounting(st)
        # Once there, the refused pages go back to the guest.
        r.wait_for(lambda: r.stats()['refused 4k'] == 0, timeout=10, what='refused freed')
        finish(r, expect_host_locked=0)


def test_refusals_never_push_the_balloon_past_target():
    """Basic protocol, half the LOCKs refused and no refusal limit: many
    requests end on a refused call, whose rbx the adversarial host fills
    with garbage. The target comes only from successful calls: the balloon
    never goes past it and never deflates on the way up."""
    with boot('refusals_target', caps=CAP_BASIC, refuse=(2, ERROR_PPN_PINNED)) as r:
        h = r.host
        load(r, params='refused_max=4096')
        h.set_target(1024)
        wait_size(r, 1024, timeout=180)
        time.sleep(3)
        s = h.summary()
        assert s['max_locked'] <= 1024, \
            'the host held up to %d frames for a target of 1024' % s['max_locked']
        assert not h.commands('UNLOCK'), '%d UNLOCKs while inflating to the target' % len(
            h.commands('UNLOCK'))
        assert r.stats()['errAlloc (4k)'] > 0
        finish(r)


def test_busy_and_failure_windows():
    """The host fails or is busy for a while: the driver backs off, logs a
    line or two, and carries on."""
    with boot('busy_failure', caps=CAP_BASIC, failure_windows=[(30, 36)]) as r:
        load(r)
        r.host.set_target(1024)
        wait_size(r, 1024, timeout=120)
        n0 = r.host.summary()['commands']
        r.host.set_busy(6)
        r.host.set_target(2048)
        time.sleep(6)
        n1 = r.host.summary()['commands']
        assert n1 - n0 <= 20, 'driver spun while the host was busy: %d commands' % (n1 - n0)
        wait_size(r, 2048, timeout=120)
        st = r.stats()
        assert st['status busy'] >= 1 and st['status failure'] >= 1, st
        lines = vmmemctl_lines(r)
        assert len(lines) <= 12, 'dmesg flood:\n' + '\n'.join(lines)
        finish(r)


def test_host_never_answers():
    with boot('never_answers', never_answer=True) as r:
        load(r, session=False)
        time.sleep(6)
        st = r.stats()
        assert st['is resetting'] == 'y' and st['current'] == 0
        assert cmd(st, 'start')[0] >= 5, 'driver stopped retrying'
        noisy = [line for line in vmmemctl_lines(r) if 'does not answer' in line]
        assert len(noisy) == 1, noisy
        rc, out = r.unload()
        assert rc == 0, out
        assert_guest_clean(r)


def test_absurd_target_is_bounded():
    """A target ten times the guest's RAM: the balloon stops at the free
    memory floor and the guest stays healthy."""
    with boot('absurd_target', mem_mb=512) as r:
        load(r)
        ram = r.meminfo()['MemTotal'] // 4
        r.host.set_target(10 * ram)
        r.wait_for(lambda: r.stats()['limited by'] in ('min_free', 'ram')
                   and r.stats()['current'] == r.stats()['goal'] > ram // 2,
                   timeout=120, what='balloon stops at its bound')
        # The floor follows MemAvailable, so the balloon may still move a
        # little after it first met its goal: compare both sides once they agree.
        st = r.wait_for(lambda: (lambda s: s if s['current'] == r.host.locked_frames() else None)(r.stats()),
                        timeout=60, what='guest and host agree on the balloon')
        assert st['target'] == 10 * ram, 'debugfs target %d, host asked %d' % (st['target'], 10 * ram)
        assert st['current'] < ram, 'balloon %d pages, RAM %d' % (st['current'], ram)
        avail = r.meminfo()['MemAvailable']
        assert avail >= 6 * 1024, 'balloon took the floor: MemAvailable %d kB' % avail
        rc, out = r.sh('echo alive')
        assert rc == 0, 'the guest cannot run a command: %s' % out
        r.host.set_target(0)
        wait_size(r, 0, timeout=120)
        finish(r)


def _fill(r, pages):
    """Load, inflate to `pages` (2 MiB and 4 KiB pages mixed); return the
    guest's free memory before loading. (Measured before insmod, as unload
    also frees the module's own memory: on 7.x module text comes from a
    2 MiB execmem cache, which goes back when its only module does.)"""
    free0 = memfree_kb(r)
    load(r)
    r.host.set_target(pages)
    wait_size(r, pages, timeout=120)
    return free0


def test_rmmod_with_full_balloon():
    """Unload returns every page, and the host is left holding nothing."""
    with boot('rmmod_full') as r:
        free0 = _fill(r, 8192 + 100)
        finish(r)
        assert r.unload_seconds < 30 * r.slowdown, 'rmmod took %.1fs' % r.unload_seconds
        back = r.free_kb_after_unload - free0
        assert abs(back) < 1024, 'MemFree off by %d kB after rmmod' % back
        assert any('unloaded;' in line for line in r.dmesg().splitlines())


def _rmmod_start_busy(name, busy_starts):
    """The host answers BUSY to the first busy_starts STARTs of the unload."""
    with boot(name) as r:
        free0 = _fill(r, 4096 + 512)
        n = r.host.summary()['commands']
        for _ in range(busy_starts):
            r.host.inject_on(('START',), ERROR_BUSY)
        rc, out = r.unload()
        assert rc == 0, out
        after = [c for c in r.host.commands() if c['n'] > n]
        starts = [c for c in after if c['cmd'] == 'START']
        unlocks = [c for c in after if 'UNLOCK' in c['cmd']]
        r.log('unload: %d STARTs (%d BUSY), %d unlock calls' % (
            len(starts), sum(1 for c in starts if c['status'] == ERROR_BUSY), len(unlocks)))
        # the host let go of everything before the guest had the pages back
        assert r.host.locked_frames() == 0, 'host still holds %d frames after unload' % r.host.locked_frames()
        assert not any('did not acknowledge the unload' in line for line in r.dmesg().splitlines())
        back = memfree_kb(r) - free0
        assert abs(back) < 2048, 'MemFree off by %d kB after rmmod' % back
        assert_host_clean(r)
        assert_guest_clean(r)
        return starts, unlocks


def test_rmmod_when_host_busy_for_a_while():
    """BUSY to the unload's first two STARTs: the driver asks again, the host
    drops the balloon at the third, no page is unlocked one by one."""
    starts, unlocks = _rmmod_start_busy('rmmod_start_busy', 2)
    assert len(starts) == 3 and not unlocks, (starts, unlocks)


def test_rmmod_when_host_stays_busy():
    """BUSY to every START of the unload: the session stands, so the driver
    unlocks the balloon batch by batch and frees each page once the host
    let it go."""
    starts, unlocks = _rmmod_start_busy('rmmod_start_busy_long', 50)
    assert len(starts) == 10 and unlocks, (len(starts), len(unlocks))


def test_rmmod_when_host_fails_unload_start():
    """The host answers FAILURE to the unload's START: no hang, memory back."""
    with boot('rmmod_start_fails') as r:
        free0 = _fill(r, 4096 + 512)
        n = r.host.summary()['commands']
        r.host.config.failure_windows = [(n + 1, n + 1000)]
        t = time.monotonic()
        rc, out = r.unload()
        assert rc == 0, out
        assert time.monotonic() - t < 30, 'rmmod took too long'
        back = memfree_kb(r) - free0
        assert abs(back) < 2048, 'MemFree off by %d kB after rmmod' % back
        assert any('did not acknowledge the unload' in line for line in r.dmesg().splitlines())
        assert_host_clean(r)
        assert_guest_clean(r)
