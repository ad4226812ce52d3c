# SPDX-License-Identifier: GPL-2.0
"""Ballooned pages in ZONE_MOVABLE: a hot-pluggable DIMM onlined movable goes
offline with the balloon in it; a movablecore= guest under pressure keeps its
normal zones above their min watermark."""

import re
import threading
import time

from common import (CAP_BASIC, CAP_BATCHED, OOM_RE, Rig, HostConfig, assert_accounting,
                    boot, finish, host_count, load, vmstat, wait_size)

CAPS_4K = CAP_BASIC | CAP_BATCHED
MEMDIR = '/sys/devices/system/memory'


def memory_block(r, addr):
    """(name, first pfn, end pfn) of the guest's memory block at guest-physical addr."""
    rc, out = r.cat(MEMDIR + '/block_size_bytes')
    assert rc == 0, out
    size = int(out.strip(), 16)
    n = addr // size
    return 'memory%d' % n, n * size >> 12, (n + 1) * size >> 12


def block_state(r, name):
    rc, out = r.sh('cat %s/%s/state %s/%s/valid_zones' % (MEMDIR, name, MEMDIR, name))
    return out.split() if rc == 0 else out


def host_locked(r):
    """A copy of the 4 KiB frames the host holds."""
    with r.host._lock:
        return set(r.host.locked4k)


def host_entries(r):
    """(lock entries, unlock entries) the host saw, 4 KiB, basic or batched."""
    be = r.host.summary()['batch_entries']
    return (host_count(r, 'LOCK') + be.get('BATCHED_LOCK', {}).get('pages', 0),
            host_count(r, 'UNLOCK') + be.get('BATCHED_UNLOCK', {}).get('pages', 0))


def _offline(name, caps):
    # 512 MiB of boot RAM (ZONE_DMA32) and a 128 MiB DIMM at 4 GiB, one memory
    # block, onlined movable at boot. Movable allocations, the balloon's 4 KiB
    # pages among them, try ZONE_MOVABLE first: the balloon lands in the DIMM.
    balloon = 8192
    with Rig(name=name, mem_mb=512, dimms=[128], append='memhp_default_state=online_movable',
             host=HostConfig(caps=caps)) as r:
        blk, lo, hi = memory_block(r, r.dimms[0][0])
        st = block_state(r, blk)
        assert st[:1] == ['online'] and 'Movable' in st, '%s is %s, not online movable' % (blk, st)
        load(r, params='huge_pages=n')
        r.host.set_target(balloon)
        wait_size(r, balloon, timeout=180)
        locked = host_locked(r)
        inside = {p for p in locked if lo <= p < hi}
        r.log('%d of %d ballooned frames in %s [%#x, %#x)' % (len(inside), balloon, blk, lo, hi))
        assert len(inside) >= balloon // 2, \
            'only %d of %d ballooned frames in the movable block: the test would not test offlining' % (
                len(inside), balloon)

        st0, vm0, e0 = r.stats(), vmstat(r), host_entries(r)
        rc, out = r.sh('echo offline > %s/%s/state' % (MEMDIR, blk), timeout=600)
        assert rc == 0, 'offlining %s failed: %s' % (blk, out)
        assert block_state(r, blk)[:1] == ['offline'], block_state(r, blk)
        # The work item may poll meanwhile, but the balloon is at its target:
        # every lock and unlock the host saw since is a migration's.
        st1, vm1, e1 = r.stats(), vmstat(r), host_entries(r)
        locked = host_locked(r)
        migrated = st1['migrate'] - st0['migrate']
        r.log('offline: %d migrated, host entries %s -> %s' % (migrated, e0, e1))
        assert st1['migrateFail'] == st0['migrateFail'] == 0, st1
        assert not [p for p in locked if lo <= p < hi], 'the host still holds frames of the offline block'
        # Every ballooned page of the block moved, each once, and nothing else.
        assert migrated == len(inside), (migrated, len(inside))
        assert vm1['balloon_migrate'] - vm0['balloon_migrate'] == migrated, (vm0, vm1)
        assert (e1[0] - e0[0], e1[1] - e0[1]) == (migrated, migrated), \
            'host saw %d locks and %d unlocks for %d migrations' % (e1[0] - e0[0], e1[1] - e0[1], migrated)
        # The balloon did not shrink and the host holds exactly its frames.
        assert st1['current'] == balloon == len(locked), (st1['current'], len(locked))
        assert vm1['balloon_inflate'] - vm1['balloon_deflate'] == balloon, vm1
        assert_accounting(st1)
        finish(r)


def test_offline_movable_block_batched():
    """The balloon inflates into a DIMM onlined movable; the block goes
    offline; the balloon keeps its size and the host follows every page."""
    _offline('offline_batched', CAPS_4K)


def test_offline_movable_block_basic():
    _offline('offline_basic', CAP_BASIC)
