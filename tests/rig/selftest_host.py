#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Self-test of the simulated host: its checks must fire, its knobs must work.

Uses the in-tree vmw_balloon as the guest driver.
    python3 tests/rig/selftest_host.py [touch|oldhost|silent|refuse|all]
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from rig import Rig, HostConfig, RigError  # noqa: E402
from vmhost import ERROR_PPN_PINNED  # noqa: E402

# The in-tree vmw_balloon takes the whole 64-bit rbx as the target even without
# the 64-bit target capability (seen under the adversarial host: it chases random
# targets). These rigs check the host's own checks: a host with defined values.
INTREE = dict(adversarial=False)


def test_stuck_boot_is_booted_again():
    """A boot that never gets its agent up is booted again, its console kept;
    one that never comes up within the attempts is an error."""
    import rig as rigmod
    r = Rig(name='selftest-stuck-boot', driver='vmw_balloon', boot_timeout=15,
            host=HostConfig(**INTREE, caps=0x2))
    r.stall_boots = 1
    with r:
        assert r.boot_retries == 1, r.boot_retries
        assert os.path.exists(os.path.join(r.out_dir, 'console-stuck-1.log'))
        rc, out = r.sh('cat /proc/cmdline')
        assert rc == 0 and 'rdinit=' not in out, out
    r = Rig(name='selftest-stuck-boot', driver='vmw_balloon', boot_timeout=10,
            host=HostConfig(**INTREE, caps=0x2))
    r.stall_boots = rigmod.BOOT_ATTEMPTS
    try:
        with r:
            raise AssertionError('a guest that never came up was let through')
    except RigError as e:
        assert 'timeout waiting for agent ready' in str(e), e
    assert r.boot_retries == rigmod.BOOT_ATTEMPTS - 1


test_stuck_boot_is_booted_again.per_kernel = False


def kinds(s):
    return {v.split(': ')[1] for v in s['violations']}


def test_touch_and_unlock_checks():
    """A ballooned page written behind the host's back, and an unlock of a page the
    host does not hold, must both be reported."""
    with Rig(name='selftest-touch', driver='vmw_balloon', host=HostConfig(**INTREE, caps=0x2)) as r:
        assert r.load()[0] == 0
        r.host.set_target(256)
        r.wait_for(lambda: r.host.locked_frames() == 256, timeout=120, what='256 locked', interval=1)
        pages = r.host.call_stopped(lambda h: sorted(h.locked4k))
        victim = pages[10]
        r.host.call_stopped(lambda h: h.write_phys(victim << 12, b'guest was here'))
        r.host.set_target(0)
        r.wait_for(lambda: r.host.locked_frames() == 0, timeout=120, what='deflated', interval=1)
        s = r.host.summary()
        touched = [v for v in s['violations'] if 'ballooned-page-touched' in v]
        assert len(touched) == 1 and '%#x' % victim in touched[0], s['violations'][:5]
        print('  touch check caught pfn %#x' % victim)

        # The in-tree driver retries a page whose unlock failed, every cycle: deflation
        # stalls there (its behaviour); only the report matters here.
        r.host.set_target(64)
        r.wait_for(lambda: r.host.locked_frames() == 64, timeout=120, what='64 locked', interval=1)
        pages = r.host.call_stopped(lambda h: sorted(h.locked4k))
        forgotten = pages[5]
        r.host.call_stopped(lambda h: h.locked4k.discard(forgotten))   # as if the host lost it
        r.host.set_target(0)
        r.wait_for(lambda: 'unlock-not-locked' in kinds(r.host.summary()), timeout=120,
                   what='unlock of a page the host does not hold', interval=1)
        unl = [v for v in r.host.summary()['violations'] if 'unlock-not-locked' in v]
        assert all('%#x' % forgotten in v for v in unl), unl[:5]
        print('  unlock check caught pfn %#x (%d times)' % (forgotten, len(unl)))


def test_old_host():
    """An old host answers START with plain SUCCESS: basic only."""
    with Rig(name='selftest-oldhost', driver='vmw_balloon', host=HostConfig(**INTREE, old_host=True)) as r:
        assert r.load()[0] == 0
        r.host.set_target(64)
        r.wait_for(lambda: r.host.locked_frames() == 64, timeout=60, what='64 locked', interval=1)
        s = r.host.summary()
        assert s['granted_caps'] == 0x2 and s['counts'].get('LOCK', {}).get('count') == 64, s['counts']
        assert r.stats()['used capabilities'] == 0x2
        print('  old host: basic only, %d LOCKs' % s['counts']['LOCK']['count'])


def test_never_answer():
    """Nobody answers: every hypercall reads all ones, the host sees nothing."""
    with Rig(name='selftest-silent', driver='vmw_balloon', host=HostConfig(**INTREE, never_answer=True, target=64)) as r:
        assert r.load()[0] == 0
        r.wait_for(lambda: str(r.stats().get('start', '')).startswith('2'), timeout=30,
                   what='two failed STARTs', interval=1)
        st = r.stats()
        assert st['start'].endswith('(2 failed)') or 'failed' in st['start'], st['start']
        assert st['current'] == 0
        assert r.host.summary()['commands'] == 0
        print('  silent host: guest start %r, host saw 0 commands' % st['start'])


def test_refuse():
    """refuse=(31, PINNED): no multiple of 31 is ever locked, and entries say so."""
    with Rig(name='selftest-refuse', driver='vmw_balloon',
             host=HostConfig(**INTREE, caps=0x6, refuse=(31, ERROR_PPN_PINNED))) as r:
        assert r.load()[0] == 0
        # (the in-tree driver gives up a cycle after 16 refusals and crawls with 1 PFN in 7 refused)
        r.host.set_target(256)
        r.wait_for(lambda: r.host.locked_frames() >= 256, timeout=120, what='256 locked', interval=1)
        pages = r.host.call_stopped(lambda h: sorted(h.locked4k))
        assert not [p for p in pages if p % 31 == 0]
        s = r.host.summary()
        assert s['batch_entries']['BATCHED_LOCK']['failed'] > 0, s['batch_entries']
        print('  refuse: %d refused entries, none locked' % s['batch_entries']['BATCHED_LOCK']['failed'])


TESTS = {'touch': test_touch_and_unlock_checks, 'oldhost': test_old_host,
         'silent': test_never_answer, 'refuse': test_refuse}


def main():
    which = sys.argv[1:] or ['all']
    if which == ['all']:
        which = list(TESTS)
    ok = True
    for name in which:
        print('--- selftest %s' % name)
        try:
            TESTS[name]()
            print('  PASS')
        except (RigError, AssertionError, KeyError) as e:
            print('  FAIL: %r' % e)
            ok = False
    print('selftest_host: %s' % ('PASS' if ok else 'FAIL'))
    return 0 if ok else 1


if __name__ == '__main__':
    sys.exit(main())
