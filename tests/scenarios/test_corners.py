# SPDX-License-Identifier: GPL-2.0
"""Protocol corners (issue 13): where a driver could free pages the host
still holds, keep pages the host does not hold, or talk on when it should
stop.

- a RESET in one entry of a successful batch, and a capability switch while
  the host cannot acknowledge the START that drops the balloon (both used to
  end with the guest writing into frames the host held: the host's touch
  check, `ballooned-page-touched`);
- PPN_UNLOCKED answered to an UNLOCK (the host does not hold the page: it
  leaves the balloon) and PPN_LOCKED answered to a LOCK (the host holds it:
  it joins the balloon);
- the basic protocol sends no LOCK after PPN_NOTNEEDED or the refused_max-th
  refusal of a period;
- GET_TARGET (the only call that reports the guest's RAM) once a period,
  also while the balloon moves;
- pressure between a RESET and the next session start frees the pages the
  host forgot;
- confidential guests (SEV-ES/SNP, TDX) are refused at load. TCG cannot run
  an encrypted guest, so that one is a static check: the refusal is in the
  source, before any hypercall, and compiled in on every kernel.
"""

import os
import re
import subprocess
import time

import kernels
import vmhost as V
from common import (OOM_RE, PARAMS, assert_accounting, assert_guest_clean, boot, finish, load,
                    wait_size)

CAPS = V.CAP_BASIC | V.CAP_BATCHED | V.CAP_64BIT_TARGET


def _use_free_memory_then_check(r, held):
    """The guest uses its free memory; then nothing the host holds may
    have been written, and both sides agree."""
    rc, out = r.sh('memhog 200 0', timeout=120)
    assert rc == 0, out
    touched = [v for v in r.host.summary()['violations'] if 'ballooned-page-touched' in v]
    assert not touched, '%d frames the host held were written by the guest: %s' % (
        len(touched), touched[:3])
    assert r.host.locked_frames() >= held or r.host.summary()['starts'] >= 2, \
        'host lost frames without a new session'


def test_entry_reset_in_a_batch_frees_nothing():
    """A RESET status of one batch entry is that page's status, not the
    session's: the balloon stays, the session is not restarted."""
    with boot('entry_reset', caps=CAPS) as r:
        h = r.host
        load(r)
        h.set_target(8192)
        wait_size(r, 8192)
        starts = h.summary()['starts']
        fired = []

        def refuse(pfn, cmd):
            if not fired and cmd == 'BATCHED_LOCK':
                fired.append(pfn)
                h.config.busy_until = time.monotonic() + 6   # START would fail now
                return V.ERROR_RESET
            return None
        h.config.refuse = refuse
        h.set_target(8192 + 1024)
        r.wait_for(lambda: fired, timeout=30, what='the RESET entry')
        time.sleep(2.5)
        st = r.stats()
        assert st['is resetting'] == 'n' and st['current'] >= 8192, \
            'one RESET entry dropped the balloon: %s' % st
        assert h.summary()['starts'] == starts, 'session restarted for a RESET entry'
        _use_free_memory_then_check(r, 8192)
        h.config.refuse = None
        wait_size(r, 8192 + 1024, timeout=60)
        finish(r)


def test_protocol_switch_while_host_busy_keeps_pages():
    """`batching` switched while the host answers BUSY: the START that drops
    the balloon fails, so the pages stay ballooned until it succeeds; then
    the balloon is rebuilt with the basic protocol."""
    with boot('switch_busy', caps=CAPS) as r:
        h = r.host
        load(r)
        h.set_target(8192)
        wait_size(r, 8192)
        h.set_busy(6)
        rc, out = r.sh('echo n > %s/batching' % PARAMS)
        assert rc == 0, out
        time.sleep(2.5)
        st = r.stats()
        assert st['current'] == 8192 and h.locked_frames() == 8192, \
            'pages dropped while the host still held them: guest %d, host %d' % (
                st['current'], h.locked_frames())
        _use_free_memory_then_check(r, 8192)
        # Once the host answers, the switch happens: a new session, basic only.
        r.wait_for(lambda: r.stats()['used capabilities'] & V.CAP_BATCHED == 0 and
                   h.summary()['starts'] >= 2, timeout=60, what='session without batching')
        h.set_target(2048)
        wait_size(r, 2048, timeout=120)
        assert_guest_clean(r)
        finish(r)


def _no_frame_touched(r):
    touched = [v for v in r.host.summary()['violations'] if 'ballooned-page-touched' in v]
    assert not touched, 'the guest wrote into frames the host held: %s' % touched[:3]


def test_unlock_answered_ppn_unlocked_frees_the_page():
    """The host forgot 100 ballooned frames: each UNLOCK of one answers
    PPN_UNLOCKED. The page is the guest's: it leaves the balloon and is freed
    once, not kept and retried."""
    with boot('ppn_unlocked', caps=V.CAP_BASIC | V.CAP_BATCHED | V.CAP_64BIT_TARGET) as r:
        h = r.host
        load(r)
        h.set_target(4096)
        wait_size(r, 4096)
        forgotten = h.forget(100)
        assert len(forgotten) == 100
        h.set_target(0)
        r.wait_for(lambda: r.stats()['current'] == 0 and h.locked_frames() == 0, timeout=40,
                   what='balloon empty on both sides (100 frames answered PPN_UNLOCKED)')
        time.sleep(2)      # a driver that retries would unlock them again meanwhile
        st = r.stats()
        s = h.summary()
        assert s['answered_unlocked'] == 100, \
            'host answered PPN_UNLOCKED %d times for 100 forgotten frames' % s['answered_unlocked']
        assert st['status ppn-unlocked'] == 100, st['status ppn-unlocked']
        assert st['errFree (4k)'] == 0, 'pages the host did not hold counted as unlock failures'
        assert st['alloc (4k)'] == st['free (4k)'] and st['pages 4k'] == 0, st
        assert_accounting(st)
        rc, out = r.sh('memhog 100 0', timeout=120)
        assert rc == 0, out
        _no_frame_touched(r)
        finish(r)


def test_lock_answered_ppn_locked_joins_the_balloon():
    """The host takes one page in eight but answers PPN_LOCKED ("already
    locked"): it holds them, so they are ballooned, never refused and freed."""
    claimed = []

    def claim(pfn, cmd):
        if pfn % 8 == 0:
            claimed.append(pfn)
            return True
        return False
    with boot('ppn_locked', caps=V.CAP_BASIC | V.CAP_BATCHED | V.CAP_64BIT_TARGET,
              lock_answers_locked=claim) as r:
        h = r.host
        load(r)
        h.set_target(4096)
        wait_size(r, 4096, timeout=60)
        time.sleep(2)
        st = r.stats()
        assert h.locked_frames() == st['current'] == 4096, \
            'host holds %d frames, guest counts %d' % (h.locked_frames(), st['current'])
        n = h.summary()['answered_locked']
        assert n > 0 and st['status ppn-locked'] == n, (n, st['status ppn-locked'])
        assert st['errAlloc (4k)'] == 0 and st['refused 4k'] == 0, st
        assert_accounting(st)
        h.config.lock_answers_locked = None
        rc, out = r.sh('memhog 100 0', timeout=120)
        assert rc == 0, out
        _no_frame_touched(r)
        h.set_target(0)
        wait_size(r, 0, timeout=60)
        _no_frame_touched(r)
        finish(r)


def _periods(h):
    """The host's history in periods: each period starts with a GET_TARGET
    (sent once per period). Returns [[LOCK commands of the period]]."""
    periods = [[]]
    for c in h.commands():
        if c['cmd'] == 'GET_TARGET':
            periods.append([])
        elif c['cmd'] == 'LOCK':
            periods[-1].append(c)
    return periods


def test_basic_lock_stops_at_notneeded():
    """Basic protocol: a LOCK answered PPN_NOTNEEDED ends the period at once;
    the rest of the 64-page chunk is not sent."""
    n = [0]

    def refuse(pfn, cmd):
        n[0] += 1
        return V.ERROR_PPN_NOTNEEDED if n[0] % 150 == 0 else None
    with boot('basic_notneeded', caps=V.CAP_BASIC | V.CAP_64BIT_TARGET, refuse=refuse) as r:
        h = r.host
        load(r)
        h.set_target(1024)
        wait_size(r, 1024, timeout=120)
        cmds = [c for c in h.commands() if c['cmd'] in ('LOCK', 'GET_TARGET')]
        notneeded = [i for i, c in enumerate(cmds)
                     if c['cmd'] == 'LOCK' and c['status'] == V.ERROR_PPN_NOTNEEDED]
        assert len(notneeded) >= 3, 'only %d NOTNEEDED answers' % len(notneeded)
        for i in notneeded:
            after = [c['cmd'] for c in cmds[i + 1:i + 2]]
            assert after in ([], ['GET_TARGET']), \
                'LOCK #%d answered NOTNEEDED, then %s before the next period: %s' % (
                    cmds[i]['n'], after,
                    ['%s %s' % (c['cmd'], V.status_name(c['status'])) for c in cmds[i:i + 4]])
        assert_accounting(r.stats())
        finish(r)


def test_basic_lock_stops_at_refused_max():
    """Basic protocol, one LOCK in three refused: no LOCK follows the
    refused_max-th refusal of a period (16; a 64-page chunk has ~21)."""
    n = [0]

    def refuse(pfn, cmd):
        n[0] += 1
        return V.ERROR_PPN_PINNED if n[0] % 3 == 0 else None
    with boot('basic_refused_max', caps=V.CAP_BASIC | V.CAP_64BIT_TARGET, refuse=refuse) as r:
        h = r.host
        load(r)
        h.set_target(384)
        wait_size(r, 384, timeout=120)
        worst = 0
        for locks in _periods(h):
            refused = [i for i, c in enumerate(locks) if c['status'] != V.SUCCESS]
            worst = max(worst, len(refused))
            assert len(refused) <= 16, '%d LOCKs refused in one period (refused_max 16)' % len(refused)
            if len(refused) == 16:
                assert refused[-1] == len(locks) - 1, \
                    '%d LOCKs sent after the 16th refusal of a period' % (len(locks) - 1 - refused[-1])
        assert worst == 16, 'no period reached refused_max (worst %d): the test proves nothing' % worst
        assert_accounting(r.stats())
        finish(r)


def test_basic_inflate_polls_target_every_period():
    """A long basic-protocol inflate (one LOCK per page) still sends
    GET_TARGET, with the guest's RAM, at least every ~2 s of guest time: it
    is the only call that tells the host the guest's memory size. (Guest
    time: QEMU's clock stands still while the gdbstub host answers, so the
    host reads the guest's jiffies at each GET_TARGET.)"""
    with boot('basic_get_target', caps=V.CAP_BASIC | V.CAP_64BIT_TARGET) as r:
        h = r.host
        hz, _ = r.guest_clock()
        load(r)
        ram = r.meminfo()['MemTotal'] // 4
        time.sleep(2)
        h.set_target(57344)
        wait_size(r, 57344, timeout=300)
        locks = h.commands('LOCK')
        first, last = locks[0]['n'], locks[-1]['n']
        r.wait_for(lambda: h.commands('GET_TARGET')[-1]['n'] > last, timeout=10,
                   what='a GET_TARGET after the inflate')
        clock = dict(h.clock_samples)
        polls = [c for c in h.commands('GET_TARGET') if c['n'] in clock]
        # the GET_TARGETs around the inflate and those during it
        before = [c for c in polls if c['n'] < first][-1:]
        after = [c for c in polls if c['n'] > last][:1]
        during = [c for c in polls if first < c['n'] < last]
        seq = before + during + after
        assert before and after, 'no GET_TARGET before or after the inflate'
        span = (clock[after[0]['n']] - clock[before[0]['n']]) / hz
        assert span >= 3, 'inflate took %.1fs of guest time: too short to tell' % span
        gap = max(clock[b['n']] - clock[a['n']] for a, b in zip(seq, seq[1:])) / hz
        r.log('inflate %.1fs guest time (%.1fs wall), %d GET_TARGET during it, longest gap %.2fs' % (
            span, locks[-1]['t'] - locks[0]['t'], len(during), gap))
        assert gap <= 2.1, 'no GET_TARGET for %.1fs (guest time) during a %.1fs inflate (%d sent)' % (
            gap, span, len(during))
        assert all(c['arg1'] == ram for c in during), \
            'GET_TARGET did not report the RAM (%d pages): %s' % (ram, during[:3])
        finish(r)


def test_pressure_after_reset_frees_forgotten_pages():
    """The guest runs short; the shrinker's first unlock is answered RESET:
    the host forgot the whole balloon. The pressure path frees those pages at
    once (no hypercall), instead of nothing until the next session start."""
    with boot('pressure_reset', mem_mb=256) as r:
        h = r.host
        load(r, params='pressure_holdoff=8')
        mem = r.meminfo()
        h.set_target(mem['MemTotal'] // 4 * 90 // 100)
        r.wait_for(lambda: r.stats()['limited by'] == 'min_free' and
                   r.stats()['current'] == r.stats()['goal'] and
                   h.locked_frames() == r.stats()['current'],
                   timeout=90, what='balloon full up to the floor')
        time.sleep(2)
        full = r.stats()['current']
        assert full > mem['MemTotal'] // 4 // 2, full
        h.inject_on(('UNLOCK', 'BATCHED_UNLOCK', 'BATCHED_2M_UNLOCK'), V.ERROR_RESET)
        need_mib = mem['MemTotal'] * 60 // 100 // 1024
        rc, out = r.sh('memhog %d 2' % need_mib, timeout=300)
        st = r.stats()
        s = h.summary()
        assert s['resets_injected'] == 1, 'no unlock was answered RESET: %s' % s['counts']
        released = st['shrinkFree'] + st['oomFree']
        assert released > 0, \
            'after the RESET the pressure path gave nothing back (shrink %d, oom %d frames)' % (
                st['shrinkFree'], st['oomFree'])
        assert rc == 0 and ('touched %d MiB' % need_mib) in out, 'memhog: rc %d %s' % (rc, out)
        kills = [line for line in r.dmesg().splitlines() if OOM_RE.search(line)]
        assert not kills, 'OOM kill:\n' + '\n'.join(kills)
        assert_accounting(st)
        r.wait_for(lambda: r.stats()['is resetting'] == 'n' and h.summary()['starts'] >= 2,
                   timeout=30, what='new session')
        assert r.stats()['reset'] == 1, 'the host reset not counted once: %s' % r.stats()['reset']
        assert any('host reset the balloon' in line for line in r.dmesg().splitlines()), \
            'the reset was not logged'
        _no_frame_touched(r)
        finish(r)


def _vmb_init_source():
    with open(os.path.join(kernels.REPO, 'balloon_core.c')) as f:
        src = f.read()
    m = re.search(r'static int __init vmb_init\(void\)\n\{(.*?)\n\}', src, re.S)
    assert m, 'vmb_init() not found in balloon_core.c'
    return m.group(1)


def test_confidential_guest_refused_static():
    """SEV-ES/SNP and TDX guests cannot be run under TCG: check that vmb_init()
    refuses an encrypted guest, with one line and -ENODEV, before it allocates
    or calls the host, and that the check is compiled in (not an inline false)
    on this kernel."""
    body = _vmb_init_source()
    m = re.search(r'if \(cc_platform_has\(CC_ATTR_GUEST_MEM_ENCRYPT\)\) \{\s*'
                  r'pr_\w+\("([^"]+)"\);\s*return -ENODEV;\s*\}', body)
    assert m, 'vmb_init() does not refuse a guest with encrypted memory'
    assert 'confidential' in m.group(1) and m.group(1).endswith('\\n'), m.group(1)
    assert body.index('cc_platform_has') < body.index('vmb_host_init'), \
        'the refusal comes after the host session is set up'
    k = kernels.current()
    ko = k.ko()
    syms = subprocess.run(['nm', '-u', ko], capture_output=True, text=True, check=True).stdout
    conf = os.path.join(k.root or '/', k.kdir.lstrip('/'), 'include', 'config', 'auto.conf')
    with open(conf) as f:
        cc_platform = re.search(r'^CONFIG_ARCH_HAS_CC_PLATFORM=y$', f.read(), re.M)
    if not cc_platform:
        # A kernel built without SEV/TDX guest support (the trimmed debug
        # kernel) cannot run a confidential guest: its cc_platform_has() is
        # an inline false and the check rightly compiles out.
        assert not re.search(r'\bcc_platform_has\b', syms), syms
        return
    assert re.search(r'\bcc_platform_has\b', syms), \
        'cc_platform_has() not called by %s: the check compiled out on this kernel' % ko
