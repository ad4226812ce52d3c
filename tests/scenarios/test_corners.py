# SPDX-License-Identifier: GPL-2.0
"""Protocol corners where a driver could free pages the host still holds
(issue 13): a RESET in one entry of a successful batch, and a capability
switch while the host cannot acknowledge the START that drops the balloon.
Both used to end with the guest writing into frames the host held (the
host's touch check: `ballooned-page-touched`)."""

import time

import vmhost as V
from common import PARAMS, assert_guest_clean, boot, finish, load, wait_size

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
