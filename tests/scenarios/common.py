# SPDX-License-Identifier: GPL-2.0
"""Helpers shared by the scenarios: boot, load, and two-sided assertions."""

import os
import re
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), 'rig'))

from rig import Rig, HostConfig  # noqa: E402,F401
from vmhost import (CAP_BASIC, CAP_BATCHED, CAP_2M, CAP_64BIT_TARGET,  # noqa: E402,F401
                    CAPS_DEFAULT, ERROR_PPN_INVALID, ERROR_PPN_LOCKED,
                    ERROR_PPN_UNLOCKED, ERROR_PPN_PINNED, ERROR_PPN_NOTNEEDED)

DEBUGFS = '/sys/kernel/debug/vmmemctl'
PARAMS = '/sys/module/vmmemctl/parameters'
OOM_RE = re.compile(r'Out of memory|oom-kill|Killed process|oom_reaper')


def boot(name, caps=CAPS_DEFAULT, mem_mb=512, smp=1, **hostkw):
    """A fresh guest under a host granting `caps`.

    VMMEMCTL_KO=<path> runs the scenarios against another build of the
    module (used to check that a deliberately broken module is caught).
    """
    return Rig(name=name, mem_mb=mem_mb, smp=smp, host=HostConfig(caps=caps, **hostkw),
               ko=os.environ.get('VMMEMCTL_KO') or None)


def cmd(stats, name):
    """(count, failed) of a command line of debugfs, e.g. 'lock: 12 (0 failed)'."""
    m = re.match(r'(\d+) \((\d+) failed\)', str(stats.get(name, '')))
    assert m, 'no command line %r in debugfs' % name
    return int(m.group(1)), int(m.group(2))


def host_count(r, name):
    return r.host.summary()['counts'].get(name, {}).get('count', 0)


def load(r, params='', session=True):
    """insmod vmmemctl and, unless told otherwise, wait for the session."""
    rc, out = r.load(params=params)
    assert rc == 0, 'insmod failed: %s' % out
    if session:
        r.wait_for(lambda: r.stats().get('is resetting') == 'n', timeout=30,
                   what='session started')


def param(r, name):
    rc, out = r.sh('cat %s/%s' % (PARAMS, name))
    assert rc == 0, out
    return out.strip()


def set_param(r, name, value):
    """Write a parameter; return the shell's rc (non-zero when refused)."""
    rc, _ = r.sh('echo %s > %s/%s' % (value, PARAMS, name))
    return rc


TRACING = '/sys/kernel/tracing'


def trace_vmmemctl(r, buffer_kb=None):
    """Enable every vmmemctl tracepoint on an empty trace (`buffer_kb` per
    CPU when given, for long runs); read it back from TRACING/trace."""
    size = 'echo %d > %s/buffer_size_kb && ' % (buffer_kb, TRACING) if buffer_kb else ''
    rc, out = r.sh('%secho 1 > %s/events/vmmemctl/enable && echo > %s/trace' % (
        size, TRACING, TRACING))
    assert rc == 0, out


def small_pcp_lists(r):
    """Shrink the guest's per-cpu page lists to 4 batches a zone.

    The allocator refills them a batch at a time from a zone's free pages
    with no watermark check, and since 6.7 they grow on demand, to
    thousands of pages: what sits there counts neither as the zone's free
    pages nor as free blocks of the buddy allocator. Tests that read
    either shrink them first."""
    rc, out = r.sh('echo 100000 > /proc/sys/vm/percpu_pagelist_high_fraction')
    assert rc == 0, out


def vmstat(r):
    rc, out = r.sh('cat /proc/vmstat')
    return {k: int(v) for k, v in (line.split() for line in out.splitlines())}


def wait_size(r, pages, timeout=120):
    """Wait until both sides agree: debugfs current and the host's locked set."""
    r.wait_for(lambda: r.stats().get('current') == pages and
               r.host.locked_frames() == pages,
               timeout=timeout, what='balloon at %d pages on both sides' % pages)


def assert_accounting(st):
    """Every allocated page is ballooned, refused, or freed: nothing leaks."""
    for sz in ('4k', '2M'):
        held = st['alloc (%s)' % sz] - st['free (%s)' % sz]
        assert held == st['pages %s' % sz] + st['refused %s' % sz], \
            'page accounting (%s): alloc-free=%d, pages=%d, refused=%d' % (
                sz, held, st['pages %s' % sz], st['refused %s' % sz])


def assert_host_clean(r):
    s = r.host.summary()
    assert not s['violations'], 'host saw protocol violations: %s' % s['violations'][:10]
    assert not s['loop_dead'], 'host loop died: %s' % s['loop_error']


def assert_guest_clean(r, allow_oom=False):
    text = r.dmesg()
    problems = r.dmesg_problems(text)
    if allow_oom:
        # The OOM killer's own report dumps a stack: that one is expected.
        problems = [line for line in problems if 'Call Trace' not in line]
    assert not problems, 'dmesg problems:\n' + '\n'.join(problems[:20])
    if not allow_oom:
        ooms = [line for line in text.splitlines() if OOM_RE.search(line)]
        assert not ooms, 'OOM in dmesg:\n' + '\n'.join(ooms[:10])


# A backtrace entry that no longer resolves to a symbol: code of a module that
# has been unloaded since (kernel text always resolves with CONFIG_KALLSYMS).
# kmemleak: "    [<ffffffffc0a01234>] 0xffffffffc0a01234"; page_owner: " 0xffffffffc0a01234".
UNLOADED_CODE_RE = re.compile(r'(?:^|\] )\s*0xffffffff[0-9a-f]{8}\s*$', re.M)

# After rmmod, on kernels that have them (the debug kernel): kmemleak scanned
# twice (an object is reported only when unreferenced in a scan that found its
# contents unchanged since the scan before: the first scan only takes the
# checksum; and only when it was older than 5 s when that second scan began:
# the script waits for that only if the first scan took less than 6 s, as it
# never does under TCG) and page_owner's pages still allocated, not slab,
# whose allocation backtrace has an entry in code no longer loaded. Costs
# 25-80 s under TCG (each scan and the page_owner read 10-30 s).
LEAK_SCRIPT = r"""
KL=/sys/kernel/debug/kmemleak
if [ -w $KL ]; then
    read t0 _ < /proc/uptime
    echo scan > $KL
    read t1 _ < /proc/uptime
    w=$(( ${t0%.*} + 7 - ${t1%.*} ))
    [ $w -le 0 ] || sleep $w
    echo scan > $KL
    echo @@KMEMLEAK; cat $KL
fi
PO=/sys/kernel/debug/page_owner
if [ -r $PO ]; then
    echo @@PAGE_OWNER
    grep -B 24 '^ *0xffffffff[0-9a-f]*$' $PO
    echo "@@PO_RC $?"
fi
echo @@END
"""


def leak_reports(r):
    """What kmemleak and page_owner say the unloaded module left behind:
    {'kmemleak': [reports], 'page_owner': [records]} (empty lists when clean;
    None for a checker the kernel does not have)."""
    rc, out = r.sh(LEAK_SCRIPT, timeout=240)
    found = {'kmemleak': None, 'page_owner': None}
    if '@@KMEMLEAK' in out:
        kl = out.split('@@KMEMLEAK', 1)[1].split('@@PAGE_OWNER')[0].split('@@END')[0]
        objs = ['unreferenced object' + o for o in kl.split('unreferenced object')[1:]]
        found['kmemleak'] = [o.strip() for o in objs if UNLOADED_CODE_RE.search(o)]
    if '@@PAGE_OWNER' in out:
        po = out.split('@@PAGE_OWNER', 1)[1].split('@@END')[0]
        m = re.search(r'@@PO_RC (\d+)', po)
        # grep: 0 lines found, 1 none, anything else an error (e.g. no memory)
        assert m and m.group(1) in ('0', '1'), 'reading page_owner failed: %s' % po[-500:]
        # page_owner records start with "Page allocated via"; grep's context
        # lines may begin with the tail of the record before
        recs = [rec for group in re.split(r'^--$', po.split('@@PO_RC')[0], flags=re.M)
                for rec in re.split(r'\n(?=Page allocated via)', group.strip('\n'))]
        found['page_owner'] = [
            rec.strip() for rec in recs
            if rec.startswith('Page allocated via') and UNLOADED_CODE_RE.search(rec)
            and not re.search(r'Flags [^\n]*slab', rec)]
    return found


def assert_no_leaks(r):
    """After rmmod: no kmemleak report and no allocated page whose backtrace
    goes through the unloaded module (kernels without the checkers: no-op)."""
    found = leak_reports(r)
    r.log('leak check: kmemleak %s, page_owner %s' % tuple(
        'n/a' if v is None else '%d report(s)' % len(v) for v in (found['kmemleak'], found['page_owner'])))
    msgs = []
    if found['kmemleak']:
        msgs.append('kmemleak: %d object(s) allocated by the unloaded module:\n%s' % (
            len(found['kmemleak']), '\n'.join(found['kmemleak'][:5])))
    if found['page_owner']:
        msgs.append('page_owner: %d page block(s) still allocated by the unloaded module:\n%s' % (
            len(found['page_owner']), '\n'.join(found['page_owner'][:5])))
    assert not msgs, 'leaks after unload:\n' + '\n'.join(msgs)[:6000]


def finish(r, expect_host_locked=0):
    """Unload and check both sides: nothing locked, nothing leaked, no noise."""
    st = r.stats()
    assert_accounting(st)
    t = time.monotonic()
    rc, out = r.unload()
    r.unload_seconds = time.monotonic() - t
    assert rc == 0, 'rmmod failed: %s' % out
    assert r.host.locked_frames() == expect_host_locked, \
        'host still holds %d frames after unload' % r.host.locked_frames()
    assert_host_clean(r)
    assert_guest_clean(r)
    # before the leak check, which itself takes guest memory (kmemleak, grep)
    r.free_kb_after_unload = r.free_kb()
    assert_no_leaks(r)


def vmmemctl_lines(r):
    return [line for line in r.dmesg().splitlines() if 'vmmemctl:' in line]


def memfree_kb(r):
    """Free memory, exactly: MemFree plus the per-CPU free lists."""
    return r.free_kb()


def settle(seconds):
    time.sleep(seconds)
