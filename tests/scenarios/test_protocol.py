# SPDX-License-Identifier: GPL-2.0
"""Protocol modes: what the host grants decides what the guest sends."""

import time

from common import (CAP_2M, CAP_64BIT_TARGET, CAP_BASIC, CAP_BATCHED, assert_accounting,
                    assert_guest_clean, assert_host_clean, boot, finish, load, set_param,
                    wait_size)

LOCKS = ('LOCK', 'BATCHED_LOCK', 'BATCHED_2M_LOCK')
UNLOCKS = ('UNLOCK', 'BATCHED_UNLOCK', 'BATCHED_2M_UNLOCK')

# host grants -> (lock command expected, unlock command expected)
MATRIX = [
    ('basic', CAP_BASIC, 'LOCK', 'UNLOCK'),
    ('batched', CAP_BASIC | CAP_BATCHED, 'BATCHED_LOCK', 'BATCHED_UNLOCK'),
    ('batched_2m', CAP_BASIC | CAP_BATCHED | CAP_2M, 'BATCHED_2M_LOCK', 'BATCHED_2M_UNLOCK'),
    ('all', CAP_BASIC | CAP_BATCHED | CAP_2M | CAP_64BIT_TARGET, 'BATCHED_2M_LOCK',
     'BATCHED_2M_UNLOCK'),
]


def counts(r):
    c = r.host.summary()['counts']
    return {k: c.get(k, {}).get('count', 0) for k in LOCKS + UNLOCKS + ('START',)}


def delta(a, b):
    return {k: b[k] - a[k] for k in a}


def cycle(r, pages):
    """Inflate to `pages` and back to 0; return the host's command deltas."""
    c0 = counts(r)
    r.host.set_target(pages)
    wait_size(r, pages, timeout=150)
    c1 = counts(r)
    assert_accounting(r.stats())
    r.host.set_target(0)
    wait_size(r, 0, timeout=150)
    return delta(c0, c1), delta(c1, counts(r))


def test_capability_matrix():
    """One guest, reloaded under each grant; zero violations throughout."""
    with boot('cap_matrix', caps=CAP_BASIC) as r:
        for name, caps, lock, unlock in MATRIX:
            r.host.config.caps = caps
            load(r)
            st = r.stats()
            assert st['used capabilities'] == caps, (name, hex(st['used capabilities']))
            pages = 2048 if name == 'basic' else 8192
            up, down = cycle(r, pages)
            for k in LOCKS:
                if k != lock:
                    assert up[k] == 0, '%s: host saw %s' % (name, k)
            for k in UNLOCKS:
                if k != unlock:
                    assert down[k] == 0, '%s: host saw %s' % (name, k)
            per_call = {'LOCK': 1, 'BATCHED_LOCK': 512, 'BATCHED_2M_LOCK': 512 * 512}[lock]
            assert up[lock] >= pages // per_call and up[lock] <= pages // min(per_call, 512) + 8, \
                '%s: %d %s calls for %d pages' % (name, up[lock], lock, pages)
            r.log('%s: %d %s, %d %s for %d pages' % (name, up[lock], lock, down[unlock], unlock,
                                                      pages))
            finish(r)


def test_old_host_plain_success():
    """A host that answers START with plain SUCCESS speaks the basic protocol."""
    with boot('old_host', old_host=True) as r:
        load(r)
        assert r.stats()['used capabilities'] == CAP_BASIC
        up, down = cycle(r, 1024)
        assert up['LOCK'] == 1024 and up['BATCHED_LOCK'] == 0 and up['BATCHED_2M_LOCK'] == 0
        finish(r)


def test_admin_switches_off_batching_and_2m():
    with boot('switches') as r:
        load(r, params='huge_pages=n')
        assert r.stats()['used capabilities'] == CAP_BASIC | CAP_BATCHED | CAP_64BIT_TARGET
        up, _ = cycle(r, 2048)
        assert up['BATCHED_LOCK'] >= 4 and up['BATCHED_2M_LOCK'] == 0
        # At runtime: the session restarts with the new offer.
        starts = r.host.summary()['starts']
        assert set_param(r, 'batching', 'n') == 0
        r.wait_for(lambda: r.stats()['used capabilities'] == CAP_BASIC | CAP_64BIT_TARGET,
                   timeout=20, what='renegotiated without batching')
        assert r.host.summary()['starts'] > starts
        up, _ = cycle(r, 512)
        assert up['LOCK'] == 512 and up['BATCHED_LOCK'] == 0
        st = r.stats()
        assert st['reset'] == 0, 'an admin switch is not a host reset'
        finish(r)


def test_2m_balloon_shrinks_by_less_than_2m():
    """With only 2 MiB pages ballooned, a small deflate splits one page."""
    with boot('split_2m') as r:
        load(r)
        r.host.set_target(4096)
        wait_size(r, 4096)
        st = r.stats()
        assert st['pages 2M'] == 8 and st['pages 4k'] == 0, st
        r.host.set_target(4000)
        wait_size(r, 4000)
        st = r.stats()
        assert st['pages 2M'] == 7 and st['pages 4k'] == 4000 - 7 * 512, st
        assert_accounting(st)
        r.host.set_target(0)
        wait_size(r, 0)
        finish(r)


def test_reset_inside_2m_batches_and_rmmod():
    """RESET answered to a 2 MiB batch; then rmmod with 2 MiB pages held."""
    with boot('reset_2m', reset_at=[5]) as r:
        load(r)
        r.host.set_target(8192)
        wait_size(r, 8192)
        s = r.host.summary()
        assert s['resets_injected'] == 1 and s['starts'] >= 2
        assert r.stats()['pages 2M'] == 16
        finish(r)


def test_64bit_target_clamped():
    """A 64-bit target (granted) far above RAM is bounded by the guest."""
    with boot('target64') as r:
        load(r)
        r.host.set_target(1 << 40)
        r.wait_for(lambda: r.stats()['target'] == 1 << 40 and
                   r.stats()['limited by'] in ('ram', 'min_free'),
                   timeout=30, what='64-bit target seen and bounded')
        # It inflates to its bound (not to the host's target) and stays there.
        r.wait_for(lambda: r.stats()['current'] > 0 and r.stats()['current'] == r.stats()['goal']
                   and r.host.locked_frames() == r.stats()['current'],
                   timeout=120, what='balloon at its bound on both sides')
        assert r.stats()['goal'] < r.meminfo()['MemTotal'] // 4
        r.host.set_target(0)
        wait_size(r, 0, timeout=120)
        assert_host_clean(r)
        assert_guest_clean(r)
        finish(r)


def test_quick_polls_after_a_change_then_twice_a_second():
    """After the balloon moved, the driver asks for the target ten times a
    second for about five seconds (a host short of memory changes it in
    steps: the next step is seen within a tenth of a second, not up to a
    second later), then twice a second at rest (vmw_balloon: once a second,
    and its doorbell, which vmmemctl does not have, for the rest). Times
    are guest time: the host reads the guest's jiffies at each GET_TARGET
    (QEMU's clock stands still while the host answers)."""
    with boot('quick_polls', caps=CAP_BASIC | CAP_BATCHED | CAP_64BIT_TARGET) as r:
        h = r.host
        hz, _ = r.guest_clock()
        load(r)

        def polls(after):
            clock = dict(h.clock_samples)
            return [(c['n'], clock[c['n']], c['result']) for c in h.commands('GET_TARGET')
                    if c['n'] > after and c['n'] in clock]

        h.set_target(4096)
        wait_size(r, 4096, timeout=120)
        n0 = h.commands()[-1]['n']
        r.wait_for(lambda: len(polls(n0)) > 1 and polls(n0)[-1][1] - polls(n0)[0][1] >= 12 * hz,
                   timeout=180, what='12 s of guest time after the inflate')
        t = [j for _, j, _ in polls(n0)]
        gaps = [(b - a) / hz for a, b in zip(t, t[1:])]
        # The quick polls: the gaps up to the first one longer than 0.3 s
        # (at rest a short gap comes too, where a half-period poll falls
        # just before the period's end).
        n_quick = next((i for i, g in enumerate(gaps) if g > 0.3), len(gaps))
        quick, idle = gaps[:n_quick], gaps[n_quick:]
        assert quick, 'no quick poll after the balloon moved: gaps %s' % gaps[:10]
        r.log('%d polls in %.1f s of guest time after the balloon moved, then %d gaps of %.2f-%.2f s' % (
            len(quick), sum(quick), len(idle), min(idle or [0]), max(idle or [0])))
        # 50 quick polls, and the period's own poll once a second among them
        # (a long gap among them ends the quick phase early: named below)
        assert 45 <= len(quick) <= 70 and sum(quick) <= 8, \
            '%d polls in %.1f s after the balloon moved (50 quick ones expected)%s' % (
                len(quick), sum(quick), ', then a gap of %.2f s' % idle[0] if idle else '')
        # (the first two idle gaps run from the last quick poll to the
        # period's middle or end)
        assert len(idle) >= 8 and max(idle[:2]) <= 0.7 and all(0.35 <= g <= 0.7 for g in idle[2:]), \
            'at rest the target is polled twice a second: gaps %s' % ['%.2f' % g for g in idle]

        # A step a second after the balloon reached the last one: seen by
        # the next quick poll.
        h.set_target(8192)
        wait_size(r, 8192, timeout=120)
        n1 = h.commands()[-1]['n']
        time.sleep(1)
        h.set_target(2048)
        wait_size(r, 2048, timeout=120)
        seen = polls(n1)
        first = next(i for i, p in enumerate(seen) if p[2] == 2048)
        assert first > 0, 'no GET_TARGET before the step was seen'
        gap = (seen[first][1] - seen[first - 1][1]) / hz
        r.log('the step to 2048 was seen %.2f s after the poll before it' % gap)
        assert gap <= 0.3, 'the step was seen %.2f s after the poll before it' % gap
        assert_accounting(r.stats())
        finish(r)
