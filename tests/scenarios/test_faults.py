# SPDX-License-Identifier: GPL-2.0
"""Fault injection: the guest's allocator fails at random (fail_page_alloc)
while the balloon inflates, slab allocations fail while the module loads
(failslab), and the host answers RESET, BUSY and refusals meanwhile.

Nothing may leak (debugfs accounting, kmemleak and page_owner after unload),
nothing the host holds may be freed by the guest (no host violation; the
host's locked set equals the guest's count), the balloon converges once the
faults stop, and unload returns everything.

Needs a kernel with CONFIG_FAIL_PAGE_ALLOC/FAILSLAB/FAULT_INJECTION_DEBUG_FS:
the debug kernel of `make check-debug` (tests/debug_kernel.sh). On the other
kernels each test says it is not applicable and passes; on a *-debug kernel
the fault injection files must be there.
"""

import os
import re
import time

import kernels
from common import (CAP_2M, CAP_BASIC, CAP_BATCHED, ERROR_PPN_PINNED, DEBUGFS, assert_accounting,
                    assert_host_clean, assert_no_leaks, boot, load, wait_size)
from rig import PROBLEM_RE, RigError
from vmhost import ERROR_BUSY, ERROR_RESET

FPA = '/sys/kernel/debug/fail_page_alloc'
FSL = '/sys/kernel/debug/failslab'


def _kernel_config(k):
    """The kernel's .config as a set of 'CONFIG_X=y' lines, or None if unknown."""
    path = os.path.join(k.root or '/', k.kdir.lstrip('/'), '.config')
    try:
        with open(path) as f:
            return set(line.strip() for line in f if line.startswith('CONFIG_'))
    except OSError:
        return None


def applicable():
    """True when the kernel under test has fault injection. Reports (and
    passes) when it has not; fails when a debug kernel lacks it."""
    k = kernels.current()
    cfg = _kernel_config(k)
    need = ('CONFIG_FAIL_PAGE_ALLOC=y', 'CONFIG_FAILSLAB=y', 'CONFIG_FAULT_INJECTION_DEBUG_FS=y')
    have = cfg is not None and all(n in cfg for n in need)
    if k.debug:
        assert have, 'debug kernel %s without fault injection (%s)' % (k.kver, ', '.join(need))
    if not have:
        print('not applicable on %s (%s): no fault injection in this kernel' % (k.id, k.kver))
    return have


def _norm(st):
    """debugfs keys with runs of blanks folded ('allocFail   (4k)' -> 'allocFail (4k)')."""
    return {re.sub(r'\s+', ' ', k): v for k, v in st.items()}


def fail_page_alloc(r, probability, min_order=0, times=-1, ignore_gfp_wait=True):
    """Make page allocations of every task fail at random (probability in %),
    by default only those that may not sleep (ignore-gfp-wait): the module's
    own (it never reclaims for the balloon) and the kernel's atomic ones,
    while user space, whose page faults and forks do reclaim, keeps the rig's
    agent alive. Probability 0 stops it (retried, in case a fork fails)."""
    if probability == 0:
        for _ in range(20):
            try:
                r.sh('echo 0 > %s/probability' % FPA, timeout=30)
                if r.cat('%s/probability' % FPA)[1].strip() == '0':
                    return
            except Exception as e:  # noqa: BLE001 - retried
                r.log('stopping fail_page_alloc: %s' % e)
            time.sleep(1)
        raise AssertionError('could not stop fail_page_alloc')
    rc, out = r.sh('\n'.join([
        'D=%s' % FPA,
        'echo 0 > $D/probability',
        'echo N > $D/task-filter',
        'echo %s > $D/ignore-gfp-wait' % ('Y' if ignore_gfp_wait else 'N'),
        'echo N > $D/ignore-gfp-highmem',
        'echo %d > $D/min-order' % min_order,
        'echo 0 > $D/verbose',
        'echo 1 > $D/interval',
        'echo %d > $D/times' % times,
        'echo 0 > $D/space',
        'echo %d > $D/probability' % probability,
    ]), timeout=60)
    assert rc == 0, 'fail_page_alloc setup: %s' % out


def failslab(r, probability):
    """failslab for tasks marked with make-it-fail only (the insmod of load())."""
    rc, out = r.sh('\n'.join([
        'D=%s' % FSL,
        'echo 0 > $D/probability',
        'echo Y > $D/task-filter',
        'echo N > $D/ignore-gfp-wait',
        'echo 0 > $D/verbose',
        'echo 1 > $D/interval',
        'echo -1 > $D/times',
        'echo 0 > $D/space',
        'echo %d > $D/probability' % probability,
    ]), timeout=60)
    assert rc == 0, 'failslab setup: %s' % out


# insmod marked for fault injection: the subshell marks itself, then execs insmod.
MAKE_IT_FAIL = 'sh -c \'echo 1 > /proc/self/make-it-fail && exec "$0" "$@"\''


# The allocator's own failure reports (warn_alloc: a stack dump and Mem-Info)
# and fault injection's.
WARN_ALLOC_RE = re.compile(r'page allocation failure|vmalloc error:|FAULT_INJECTION')


def guest_problems(r, kernel_warnings_ok=False):
    """dmesg problems, but the allocation failure reports of other kernel code
    (fail_page_alloc fails the atomic allocations of every task; "page
    allocation failure" dumps a stack, so does a failed vmalloc of insmod):
    those dumps count only when their stack is in vmmemctl, which allocates
    with __GFP_NOWARN."""
    lines = r.dmesg().splitlines()
    out = []
    i = 0
    while i < len(lines):
        line = lines[i]
        if kernel_warnings_ok and ('cut here' in line or re.search(r'\] WARNING: ', line)):
            # A WARN of the kernel's own code about an allocation failure
            # failslab injected into it while it loaded the module (e.g.
            # event_define_fields(), "error code is -12"): dropped unless it
            # is in vmmemctl's code.
            j = i + 1
            while j < len(lines) and 'end trace' not in lines[j] and j - i < 120:
                j += 1
            block = lines[i:j + 1]
            mine = any('[vmmemctl]' in b or 'RIP: 0010:vmm' in b for b in block)
            if mine:
                out += [b for b in block if PROBLEM_RE.search(b)]
            else:
                r.log('kernel WARN under failslab, not in vmmemctl: %s' % ' | '.join(
                    b for b in block if 'WARNING:' in b or 'RIP:' in b))
            i = j + 1
            continue
        if WARN_ALLOC_RE.search(line):
            # the dump runs until the next line that is not part of it (the
            # next report, a WARN's "cut here" included, is not)
            j = i + 1
            while j < len(lines) and not WARN_ALLOC_RE.search(lines[j]) \
                    and 'cut here' not in lines[j] \
                    and not lines[j].split('] ', 1)[-1].startswith(('vmmemctl', 'Out of memory')) \
                    and j - i < 80:
                j += 1
            block = lines[i:j]
            if any('[vmmemctl]' in b or 'vmmemctl' in b.split('] ', 1)[-1][:12] for b in block):
                out += [b for b in block if PROBLEM_RE.search(b) or 'failure' in b]
            i = j
            continue
        if PROBLEM_RE.search(line):
            out.append(line)
        i += 1
    return out


def converge_and_unload(r, target):
    """Faults are off: the balloon reaches target on both sides, the books
    balance, unload returns everything, nothing leaked."""
    wait_size(r, target, timeout=180)
    st = _norm(r.stats())
    assert_accounting(st)
    assert r.host.locked_frames() == st['current'], \
        'host holds %d frames, guest counts %d' % (r.host.locked_frames(), st['current'])
    assert_host_clean(r)
    rc, out = r.unload()
    assert rc == 0, 'rmmod failed: %s' % out
    assert r.host.locked_frames() == 0, 'host still holds %d frames after unload' % r.host.locked_frames()
    assert_host_clean(r)
    problems = guest_problems(r)
    assert not problems, 'dmesg problems:\n' + '\n'.join(problems[:30])
    assert_no_leaks(r)


def _inflate_under_faults(name, caps, target, probability, min_order):
    if not applicable():
        return
    with boot(name, caps=caps, refuse=(13, ERROR_PPN_PINNED)) as r:
        load(r)
        size = '2M' if caps & CAP_2M else '4k'
        fail_page_alloc(r, probability, min_order=min_order)
        r.host.set_target(target)
        t0 = time.monotonic()
        # While the allocator fails: the host resets the session once and is
        # busy for a while; only host-side state and cheap reads are polled.
        r.wait_for(lambda: r.host.locked_frames() >= target // 16, timeout=120, what='inflating under faults')
        r.host.inject(ERROR_RESET)
        r.wait_for(lambda: r.host.summary()['starts'] >= 2, timeout=60, what='START after the RESET')
        r.wait_for(lambda: r.host.locked_frames() >= target // 16, timeout=120, what='inflating after the reset')
        r.host.set_busy(3)
        time.sleep(max(0, 25 - (time.monotonic() - t0)))
        r.host.inject(ERROR_BUSY, count=3)
        fails = r.wait_for(lambda: _norm(r.stats()).get('allocFail (%s)' % size), timeout=60,
                           what='the module saw allocation failures')
        r.log('allocFail (%s) = %s under faults' % (size, fails))
        fail_page_alloc(r, 0)
        converge_and_unload(r, target)
        h = r.host.summary()
        assert h['resets_injected'] >= 1 and h['starts'] >= 2, h


def test_faults_page_alloc_4k():
    """fail_page_alloc at 2% for every allocation that may not sleep, the
    module's and the kernel's atomic ones (each failure ends the module's
    inflate period) while 4 KiB pages inflate (batched),
    with a RESET, BUSY and 1 in 13 refused."""
    _inflate_under_faults('faults_4k', CAP_BASIC | CAP_BATCHED, 8192, 2, 0)


def test_faults_page_alloc_2m():
    """The same with 2 MiB pages: order-9 allocations fail too (min-order 0),
    the module falls back to 4 KiB pages and returns to 2 MiB later."""
    _inflate_under_faults('faults_2m', CAP_BASIC | CAP_BATCHED | CAP_2M, 16384, 5, 0)


def test_faults_slab_at_load():
    """insmod with failslab on (the insmod task only), at falling failure rates,
    the host answering BUSY to the first command each time: insmod fails
    cleanly or succeeds, never oopses or leaks; every successful load inflates
    and unloads cleanly."""
    if not applicable():
        return
    with boot('faults_slab_load', caps=CAP_BASIC | CAP_BATCHED) as r:
        results = []
        for p in (100, 50, 25, 10, 5, 2, 1, 0):
            failslab(r, p)
            r.host.inject(ERROR_BUSY)
            try:
                rc, out = r.load(wrap=MAKE_IT_FAIL)
            except RigError as e:
                # Loaded, but the kernel could not make /sys/module/*/sections
                # (its allocation failed, not fatal to the load): the
                # pre-armed breakpoints serve the module all the same.
                if 'no section addresses' not in str(e) or not r.loaded:
                    raise
                r.log('loaded without sysfs sections: %s' % e)
                rc, out = 0, ''
            failslab(r, 0)
            results.append((p, rc))
            if rc != 0:
                # nothing left behind
                rc2, out2 = r.sh('test -e /sys/module/vmmemctl || test -e %s; echo $?' % DEBUGFS)
                assert out2.strip().endswith('1'), 'failed insmod (%d%%) left the module behind: %s' % (p, out)
                assert r.host.locked_frames() == 0
                continue
            if r.sh('test -e %s' % DEBUGFS)[0] == 0:
                r.wait_for(lambda: r.stats().get('is resetting') == 'n', timeout=60,
                           what='session started')
                r.host.set_target(1024)
                wait_size(r, 1024, timeout=120)
                assert_accounting(_norm(r.stats()))
            else:
                # debugfs is best effort and its dentry allocation failed
                # ("debugfs: out of free dentries"): the sysfs size and the
                # host's locked set say the balloon works all the same.
                r.log('loaded at %d%% without its debugfs file' % p)
                r.host.set_target(1024)
                r.wait_for(lambda: r.host.locked_frames() == 1024 and
                           r.cat('/sys/kernel/vmmemctl/size')[1].strip() == '1024',
                           timeout=120, what='1024 pages in the balloon (sysfs and host)')
            rc, out = r.unload()
            assert rc == 0, 'rmmod failed: %s' % out
            assert r.host.locked_frames() == 0, 'host still holds %d frames' % r.host.locked_frames()
            r.host.set_target(0)
        r.log('failslab insmod results (probability %%, rc): %s' % results)
        assert results[-1][1] == 0, 'insmod failed with failslab off: %s' % results
        assert_host_clean(r)
        problems = guest_problems(r, kernel_warnings_ok=True)
        try:
            assert_no_leaks(r)
            leaks = ''
        except AssertionError as e:
            leaks = str(e)
        assert not problems and not leaks, 'dmesg problems:\n%s\n%s' % ('\n'.join(problems[:30]), leaks)
