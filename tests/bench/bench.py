#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""vmmemctl against the in-tree vmw_balloon, under the rig's simulated VMware host.

    python3 tests/bench/bench.py          # normally via `make bench` (tests/bench.sh)
    BENCH_RUNS=5 ...                      # runs per driver and workload (default 3)
    BENCH_QUICK=1 ...                     # 1 run, modes batched and batched+2M only,
                                          # large balloons in the 2 GiB guest only
    BENCH_ONLY=large ...                  # only these workloads: modes, pressure,
                                          # fragmentation, large
                                          # (comma-separated)
    BENCH_LARGE_MB=2048 ...               # large balloons: only guests of these sizes
    BENCH_LARGE_MODES=batched+2M ...      # large balloons: only these modes (batched,
                                          # batched+2M)

Every workload boots a fresh guest per driver, alternating vmmemctl, vmw_balloon,
vmmemctl, ... Each figure is the median of the runs with [min-max]. The table
goes to stdout and tests/out/bench/results.md; raw numbers to tests/out/bench/runs.json.
"""

import inspect
import json
import os
import platform
import re
import signal
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(REPO, 'tests', 'rig'))
sys.path.insert(1, os.path.join(REPO, 'tests', 'scenarios'))

from rig import Rig, HostConfig, RigError  # noqa: E402
import kernels  # noqa: E402
from common import TRACING, trace_vmmemctl  # noqa: E402
from test_large import batch_holds  # noqa: E402
from test_migration import FRAG_BALLOON, fragmentation  # noqa: E402

OUT = os.path.join(REPO, 'tests', 'out', 'bench')
DRIVERS = ('vmmemctl', 'vmw_balloon')
GIB_PAGES = 262144
OOM_RE = re.compile(r'Killed process|oom-kill')
# in-tree behaviour the host flags and the smoke test already knows about
INTREE_KNOWN = ('doorbell-not-granted', 'no-session: ')

# label, caps, balloon pages
MODES = [('basic', 0x2, 4096), ('batched', 0x6, 65536), ('batched+2M', 0xe, 65536)]
PRESSURE_MB = 256
PRESSURE_CAPS = 0x2 | 0x4 | 0x8 | 0x20

# Large balloons (issue 14): guest MiB, target in percent of MemTotal; modes.
LARGE_GUESTS = [(2048, 70), (8192, 75)]
LARGE_MODES = [('batched', 0x6 | 0x20), ('batched+2M', 0xe | 0x20)]

RUNS = int(os.environ.get('BENCH_RUNS', '3'))
QUICK = os.environ.get('BENCH_QUICK', '') not in ('', '0')
if QUICK:
    RUNS = 1
    MODES = MODES[1:]
    LARGE_GUESTS = LARGE_GUESTS[:1]
if os.environ.get('BENCH_LARGE_MB'):
    _want = [int(x) for x in os.environ['BENCH_LARGE_MB'].split(',')]
    LARGE_GUESTS = [g for g in LARGE_GUESTS if g[0] in _want]
if os.environ.get('BENCH_LARGE_MODES'):
    _want = os.environ['BENCH_LARGE_MODES'].split(',')
    LARGE_MODES = [m for m in LARGE_MODES if m[0] in _want]
ONLY = set(x for x in os.environ.get('BENCH_ONLY', 'modes,pressure,fragmentation,large').split(',') if x)


def log(msg):
    print('[bench %s] %s' % (time.strftime('%H:%M:%S'), msg), file=sys.stderr, flush=True)


# ---------------------------------------------------------------- guest probes
def probe(r):
    """(guest uptime s, busy jiffies = system+irq+softirq over all CPUs) in one agent call."""
    rc, out = r.sh('cat /proc/uptime; head -1 /proc/stat', timeout=30, check=True)
    lines = out.split('\n')
    up = float(lines[0].split()[0])
    f = [int(x) for x in lines[1].split()[1:]]
    # user nice system idle iowait irq softirq
    return up, f[2] + f[5] + f[6]


def wait_host(r, pages, timeout):
    """Poll the host only (no guest work) until it holds `pages` frames."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if r.host.locked_frames() == pages:
            return True
        if r.host.dead and r.host.dead != 'closed':
            raise RigError('host loop ended: %s' % r.host.dead)
        time.sleep(0.02)
    raise RigError('host holds %d frames, not %d, after %ds' % (r.host.locked_frames(), pages, timeout))


def wait_started(r, timeout=40):
    """The driver has a session and polls the target (vmw_balloon's first START
    happens before the host is armed; it retries each second)."""
    r.wait_for(lambda: r.host.summary()['starts'] >= 1 and
               r.host.summary()['counts'].get('GET_TARGET', {}).get('count', 0) >= 1 and
               r.stats().get('current') == 0,
               timeout=timeout, what='driver started under the host', interval=0.3)


def load(r):
    """insmod; breakpoints go in after init (the rig's plain arming): pre-arming, where
    the rig offers it, is left off so the bench measures what it always measured."""
    kw = {}
    if 'prearm' in inspect.signature(r.load).parameters:
        kw['prearm'] = False
    rc, out = r.load(**kw)
    if rc != 0:
        raise RigError('insmod %s failed: %s' % (r.driver, out))


def module_kb(r, names):
    rc, out = r.sh('cat /proc/modules', timeout=30)
    sizes = {}
    for line in out.splitlines():
        f = line.split()
        if len(f) > 1:
            sizes[f[0]] = int(f[1])
    return sum(sizes.get(n, 0) for n in names) / 1024.0


def phase(r, pages, calib, timeout=240):
    """Set the host's target to `pages`, wait until the host holds them.
    Returns hypercalls, guest seconds, guest busy seconds, host seconds."""
    s0 = r.host.summary()
    n0 = s0['commands']
    up0, cpu0 = probe(r)
    t0 = time.monotonic()
    r.host.set_target(pages)
    n_set = r.host.summary()['commands']
    wait_host(r, pages, timeout=timeout)
    t1 = time.monotonic()
    up1, cpu1 = probe(r)
    s1 = r.host.summary()
    guest_s = max(0.0, up1 - up0 - calib[0])
    lock = sum(v['count'] for k, v in s1['counts'].items() if 'LOCK' in k) - \
        sum(v['count'] for k, v in s0['counts'].items() if 'LOCK' in k)
    res = {'cmds': s1['commands'] - n0, 'lock_cmds': lock, 'guest_s': guest_s,
           'cpu_s': max(0.0, (cpu1 - cpu0) / 100.0 - calib[1] - calib[2] * guest_s),
           'host_s': t1 - t0}
    # vmw_balloon polls the target once a second, vmmemctl twice at rest,
    # so up to a second (half a second) of guest_s is the phase of that
    # poll against the moment the target changed: the time from the first
    # GET_TARGET that returned the new target (the guest's clock, read by
    # the host) is the driver's own.
    uptime = getattr(r, 'bench_uptime', None)
    if uptime:
        clock = dict(r.host.clock_samples)
        polls = [c['n'] for c in r.host.commands('GET_TARGET') if c['n'] > n_set and c['n'] in clock]
        if polls:
            t_poll = uptime(clock[polls[0]])
            res['poll_s'] = max(0.0, t_poll - up0 - calib[0] / 2)
            res['after_poll_s'] = max(0.0, up1 - calib[0] / 2 - t_poll)
    return res


def run_mode(driver, label, caps, pages, i):
    name = 'bench-%s-%s-%d' % (re.sub(r'[^a-z0-9]', '', label.lower()), driver, i)
    res = {'driver': driver, 'mode': label, 'run': i, 'pages': pages}
    # An honest host: the adversarial one fills the upper half of rbx with
    # random bits when the 64-bit target is not granted (basic, batched),
    # which vmw_balloon takes as part of its target: its balloon then swings
    # and never fills. The bench measures speed; the scenarios measure that.
    with Rig(name=name, driver=driver, mem_mb=512, host=HostConfig(caps=caps, target=0, adversarial=False),
             quiet=True, timeout=420) as r:
        r.sh('sync; echo 3 > /proc/sys/vm/drop_caches', timeout=30)
        time.sleep(1)
        m0 = r.meminfo()
        load(r)
        wait_started(r)
        r.bench_uptime = r.guest_clock()[1]
        time.sleep(2)
        r.sh('sync; echo 3 > /proc/sys/vm/drop_caches', timeout=30)
        m1 = r.meminfo()
        res['memfree_drop_kb'] = m0['MemFree'] - m1['MemFree']
        res['slab_delta_kb'] = m1['Slab'] - m0['Slab']
        mod = 'vmmemctl' if driver == 'vmmemctl' else 'vmw_balloon'
        res['module_kb'] = module_kb(r, [mod])
        res['module_deps_kb'] = module_kb(r, [mod] + (['vmw_vmci'] if driver == 'vmw_balloon' else []))
        # agent round trip in guest time: subtracted from phase times
        # and its guest CPU: both subtracted from the phase figures (median of 3)
        ps = [probe(r) for _ in range(4)]
        calib = (statistics.median(ps[k + 1][0] - ps[k][0] for k in range(3)),
                 statistics.median(ps[k + 1][1] - ps[k][1] for k in range(3)) / 100.0)
        # and the idle guest's own busy time per second (timer ticks, the agent)
        up_a, cpu_a = probe(r)
        time.sleep(3)
        up_b, cpu_b = probe(r)
        idle = max(0.0, ((cpu_b - cpu_a) / 100.0 - calib[1]) / max(0.5, up_b - up_a - calib[0]))
        calib = calib + (idle,)
        res['calib_s'], res['calib_cpu_s'], res['idle_cpu_per_s'] = calib
        time.sleep(1)
        res['inflate'] = phase(r, pages, calib)
        st = r.stats()
        if st.get('current') != pages:
            raise RigError('guest reports current=%r, host holds %d' % (st.get('current'), pages))
        time.sleep(1)
        res['deflate'] = phase(r, 0, calib)
        r.wait_for(lambda: r.stats().get('current') == 0, timeout=30, what='guest at 0')
        s = r.host.summary()
        res['granted_caps'] = s['granted_caps']
        res['counts'] = s['counts']
        res['violations'] = s['violations'][:20]
        res['problems'] = r.dmesg_problems()[:20]
    return res


def calibrate(r):
    """(agent round trip in guest s, its guest CPU s, the idle guest's busy CPU
    per second): subtracted from the phase figures."""
    ps = [probe(r) for _ in range(4)]
    calib = (statistics.median(ps[k + 1][0] - ps[k][0] for k in range(3)),
             statistics.median(ps[k + 1][1] - ps[k][1] for k in range(3)) / 100.0)
    up_a, cpu_a = probe(r)
    time.sleep(3)
    up_b, cpu_b = probe(r)
    idle = max(0.0, ((cpu_b - cpu_a) / 100.0 - calib[1]) / max(0.5, up_b - up_a - calib[0]))
    return calib + (idle,)


TOUCH_SCRIPT = r"""
sync; echo 3 > /proc/sys/vm/drop_caches
s0=$(head -1 /proc/stat)
echo "@t0 $(cut -d' ' -f1 /proc/uptime)"
memhog %d 0 2>&1 | while read -r l; do echo "$(cut -d' ' -f1 /proc/uptime) $l"; done
echo "@t1 $(cut -d' ' -f1 /proc/uptime)"
echo "@s0 $s0"
echo "@s1 $(head -1 /proc/stat)"
"""


THP = '/sys/kernel/mm/transparent_hugepage/enabled'


def touch_limit(r, mib, thp):
    """A user process touching `mib` MiB in this guest, then exiting: guest s
    until it has touched it all (up), s for its exit to free it (down), and
    the guest CPU (user + system + irq + softirq) of each whole run. `thp`:
    transparent huge pages for it ('never': 4 KiB faults; 'always')."""
    rc, old = r.sh('cat %s' % THP, timeout=30, check=True)
    old = re.search(r'\[(\w+)\]', old).group(1)
    r.sh('echo %s > %s' % (thp, THP), timeout=30, check=True)
    try:
        rc, out = r.sh(TOUCH_SCRIPT % mib, timeout=600, check=True)
    finally:
        r.sh('echo %s > %s' % (old, THP), timeout=30, check=True)
    m = re.search(r'([\d.]+) memhog: touched (\d+) MiB', out)
    if not m or int(m.group(2)) != mib:
        raise RigError('memhog %d did not complete: %s' % (mib, out[-400:]))
    t0 = float(re.search(r'@t0 ([\d.]+)', out).group(1))
    t1 = float(re.search(r'@t1 ([\d.]+)', out).group(1))
    s0 = [int(x) for x in re.search(r'@s0 cpu (.*)', out).group(1).split()]
    s1 = [int(x) for x in re.search(r'@s1 cpu (.*)', out).group(1).split()]
    busy = sum(s1[k] - s0[k] for k in (0, 1, 2, 5, 6)) / 100.0
    return {'up_s': float(m.group(1)) - t0, 'down_s': t1 - float(m.group(1)), 'cpu_s': busy}


def run_large(driver, label, caps, mem_mb, pct, i):
    """A large balloon: the target `pct` % of MemTotal, then 0, in a `mem_mb`
    guest; and before the driver loads, the touch limit: a process touching
    as much (twice: the second, with the guest's memory already backed by
    QEMU as it is for the balloon after it, is the one kept)."""
    name = 'bench-large%d-%s-%s-%d' % (mem_mb, re.sub(r'[^a-z0-9]', '', label.lower()), driver, i)
    res = {'driver': driver, 'mode': 'large %d %s' % (mem_mb, label), 'run': i}
    with Rig(name=name, driver=driver, mem_mb=mem_mb, host=HostConfig(caps=caps, target=0),
             quiet=True, timeout=1800, boot_timeout=240) as r:
        total_kb = r.meminfo()['MemTotal']
        pages = total_kb * pct // 100 // 2048 * 512
        res['pages'] = pages
        # the process faults pages of the size the balloon takes
        thp = 'always' if caps & 0x8 else 'never'
        res['touch_thp'] = thp
        touch_limit(r, pages // 256, thp)
        res['touch'] = touch_limit(r, pages // 256, thp)
        load(r)
        wait_started(r)
        r.bench_uptime = r.guest_clock()[1]
        calib = calibrate(r)
        res['calib_s'], res['calib_cpu_s'], res['idle_cpu_per_s'] = calib
        if driver == 'vmmemctl':
            # each batch's lock hold (vmmemctl_lock_hold after the batch's event)
            trace_vmmemctl(r, buffer_kb=8192)
        time.sleep(1)
        res['inflate'] = phase(r, pages, calib, timeout=900)
        st = r.stats()
        if st.get('current') != pages:
            raise RigError('guest reports current=%r, host holds %d' % (st.get('current'), pages))
        res['stats_up'] = {k: st.get(k) for k in ('limited by', 'inflate rate', 'allocFail (4k)',
                                                  'allocFail (2M)', 'lock hold max (us)',
                                                  'slowdowns') if k in st}
        time.sleep(1)
        res['deflate'] = phase(r, 0, calib, timeout=900)
        r.wait_for(lambda: r.stats().get('current') == 0, timeout=60, what='guest at 0')
        if driver == 'vmmemctl':
            rc, trace = r.sh('cat %s/trace' % TRACING, timeout=300)
            if rc:
                raise RigError('trace: %s' % trace[-300:])
            for ph, event in (('inflate', 'vmmemctl_inflate'), ('deflate', 'vmmemctl_deflate')):
                holds = batch_holds(trace, event)
                if holds:
                    res[ph]['hold_median_ms'] = holds[len(holds) // 2] / 1000.0
                    res[ph]['hold_max_ms'] = holds[-1] / 1000.0
        s = r.host.summary()
        res['granted_caps'] = s['granted_caps']
        res['counts'] = s['counts']
        res['violations'] = s['violations'][:20]
        res['problems'] = r.dmesg_problems()[:20]
    return res


def run_pressure(driver, i):
    name = 'bench-pressure-%s-%d' % (driver, i)
    ram_pages = PRESSURE_MB * 256
    target = int(ram_pages * 0.9)
    hog = int(PRESSURE_MB * 0.6)
    res = {'driver': driver, 'mode': 'pressure', 'run': i, 'target': target, 'hog_mib': hog}
    with Rig(name=name, driver=driver, mem_mb=PRESSURE_MB,
             host=HostConfig(caps=PRESSURE_CAPS, target=0), quiet=True, timeout=420) as r:
        try:
            load(r)
            wait_started(r)
            r.host.set_target(target)
            t0 = time.monotonic()
            last, same, cur = -1, 0, 0
            while time.monotonic() - t0 < 60:
                time.sleep(2)
                cur = r.stats().get('current', 0) or 0
                if cur == last and cur > 0:
                    same += 1
                    if same >= 3 or cur >= target:
                        break
                else:
                    same = 0
                last = cur
            res['balloon_before_mib'] = cur / 256.0
            res['settle_s'] = time.monotonic() - t0
            oom0 = len([l for l in r.dmesg().splitlines() if OOM_RE.search(l)])
            script = (
                'for p in /proc/[0-9]*; do echo -1000 > $p/oom_score_adj 2>/dev/null; done\n'
                't0=$(cut -d" " -f1 /proc/uptime)\n'
                'echo "@t0 $t0"\n'
                'sh -c \'echo 0 > /proc/self/oom_score_adj; timeout -s KILL 120 memhog %d 2; echo "@rc $?"\' 2>&1 |\n'
                'while read -r l; do echo "$(cut -d" " -f1 /proc/uptime) $l"; done\n') % hog
            t = time.monotonic()
            rc, out = r.sh(script, timeout=160)
            res['hog_host_s'] = time.monotonic() - t
            m = re.search(r'@t0 ([\d.]+)', out)
            if not m:
                # The guest died under the script (seen with vmw_balloon on 7.3).
                raise RigError('no @t0 in the script output: %r' % out[-200:])
            t0g = float(m.group(1))
            m = re.search(r'([\d.]+) memhog: touched', out)
            mrc = re.search(r'@rc (\d+)', out)
            res['hog_rc'] = int(mrc.group(1)) if mrc else None
            res['completed'] = bool(m) and res['hog_rc'] == 0
            res['hog_s'] = (float(m.group(1)) - t0g) if m else None
            text = r.dmesg()
            ooms = [l for l in text.splitlines() if OOM_RE.search(l)]
            res['oom_kills'] = len([l for l in ooms[oom0:] if 'Killed process' in l])
            res['oom_lines'] = ooms[oom0:][:10]
            st = r.stats()
            res['balloon_after_mib'] = (st.get('current', 0) or 0) / 256.0
            res['stats_after'] = {k: st.get(k) for k in ('current', 'target', 'goal', 'limited by', 'shrink',
                                                          'shrinkFree', 'oom', 'oomFree') if k in st}
            res['problems'] = [l for l in r.dmesg_problems(text) if not OOM_RE.search(l)][:20]
            res['hog_out'] = out[-600:]

        except RigError as e:
            # the guest died (e.g. 'System is deadlocked on memory'): that is a result
            # (a panicking guest may take a moment before QEMU exits)
            for _ in range(20):
                con = r.console()
                if not r.alive() or 'Kernel panic' in con:
                    break
                time.sleep(0.5)
            else:
                raise
            res['guest_died'] = True
            res['completed'] = False
            res['hog_s'] = None
            res.setdefault('balloon_before_mib', r.host.summary()['max_locked'] / 256.0)
            panic = [l for l in con.splitlines() if 'Kernel panic' in l]
            res['panic'] = panic[:2]
            res['oom_kills'] = len([l for l in con.splitlines() if 'Killed process' in l])
            res['balloon_after_mib'] = None
            res['error'] = str(e)[:300]
            res['problems'] = []
            res['console_tail'] = con[-1500:]
    return res


# ---------------------------------------------------------------- table
def fmt(v):
    if v is None:
        return '-'
    if float(v).is_integer() or abs(v) >= 100:
        return '%.0f' % v
    return '%.3g' % v


def cell(vals):
    vals = [v for v in vals if v is not None]
    if not vals:
        return '-', None
    med = statistics.median(vals)
    if len(vals) == 1:
        return fmt(med), med
    return '%s [%s–%s]' % (fmt(med), fmt(min(vals)), fmt(max(vals))), med


def figures(results):
    """[(figure, {driver: [values]})] in table order."""
    rows = []
    by = {}
    for res in results:
        by.setdefault((res['mode'], res['driver']), []).append(res)

    def vals(mode, f):
        return {d: [f(x) for x in by.get((mode, d), [])] for d in DRIVERS}

    for label, _, pages in MODES:
        scale = GIB_PAGES / float(pages)
        for ph in ('inflate', 'deflate'):
            rows.append(('hypercalls per GiB %sd, %s' % (ph, label),
                         vals(label, lambda x, ph=ph, s=scale: x[ph]['cmds'] * s)))
    basic = MODES[0]
    for label, _, pages in MODES[1:]:
        for ph in ('inflate', 'deflate'):
            def gain(d, ph=ph, label=label, pages=pages):
                b = [x[ph]['cmds'] / float(basic[2]) for x in by.get((basic[0], d), [])]
                m = [x[ph]['cmds'] / float(pages) for x in by.get((label, d), [])]
                if not b or not m or not min(m):
                    return []
                return [sorted(b)[len(b) // 2] / v for v in m]
            rows.append(('basic/%s hypercalls per GiB %sd (x fewer)' % (label, ph),
                         {d: gain(d) for d in DRIVERS}))
    for label, _, pages in MODES:
        scale = GIB_PAGES / float(pages)
        for ph in ('inflate', 'deflate'):
            rows.append(('  of which (un)lock commands, %sd, %s' % (ph, label),
                         vals(label, lambda x, ph=ph, s=scale: x[ph]['lock_cmds'] * s)))
    for label, _, pages in MODES:
        scale = GIB_PAGES / float(pages)
        for ph in ('inflate', 'deflate'):
            rows.append(('guest busy CPU s per GiB %sd, %s' % (ph, label),
                         vals(label, lambda x, ph=ph, s=scale: x[ph]['cpu_s'] * s)))
    for label, _, pages in MODES:
        for ph in ('inflate', 'deflate'):
            rows.append(('time to target s, %s %d MiB, %s' % (ph, pages // 256, label),
                         vals(label, lambda x, ph=ph: x[ph]['guest_s'])))
            rows.append(('  after the first poll that saw it, %s %d MiB, %s' % (ph, pages // 256, label),
                         vals(label, lambda x, ph=ph: x[ph].get('after_poll_s'))))
    for key, what in (('memfree_drop_kb', 'MemFree drop at load, target 0 (KiB)'),
                      ('slab_delta_kb', 'Slab delta at load (KiB)'),
                      ('module_kb', 'module size, /proc/modules (KiB)'),
                      ('module_deps_kb', 'module size incl. vmw_vmci for in-tree (KiB)')):
        merged = {d: [] for d in DRIVERS}
        for label, _, _ in MODES:
            for d, v in vals(label, lambda x, k=key: x.get(k)).items():
                merged[d] += v
        rows.append((what, merged))
    for mem_mb, pct in LARGE_GUESTS:
        for label, _ in LARGE_MODES:
            mode = 'large %d %s' % (mem_mb, label)
            what = '%d GiB guest, %d%%, %s' % (mem_mb // 1024, pct, label)
            for ph in ('inflate', 'deflate'):
                rows.append(('large: time to target s, %s, %s' % (ph, what),
                             vals(mode, lambda x, ph=ph: x[ph]['guest_s'])))
                rows.append(('large:   after the first poll that saw it, %s, %s' % (ph, what),
                             vals(mode, lambda x, ph=ph: x[ph].get('after_poll_s'))))
            rows.append(('large: time to target / touch limit, inflate, %s' % what,
                         vals(mode, lambda x: x['inflate']['guest_s'] / x['touch']['up_s'])))
            for ph in ('inflate', 'deflate'):
                rows.append(('large: guest busy CPU s per GiB %sd, %s' % (ph, what),
                             vals(mode, lambda x, ph=ph: x[ph]['cpu_s'] * GIB_PAGES / x['pages'])))
            for ph in ('inflate', 'deflate'):
                rows.append(('large: hypercalls per GiB %sd, %s' % (ph, what),
                             vals(mode, lambda x, ph=ph: x[ph]['cmds'] * GIB_PAGES / x['pages'])))
            for ph in ('inflate', 'deflate'):
                for stat in ('median', 'max'):
                    rows.append(('large: lock hold ms a batch, %s, %sd, %s (vmmemctl only)' % (
                        stat, ph, what), vals(mode, lambda x, ph=ph, k='hold_%s_ms' % stat: x[ph].get(k))))
            # measured in every guest of this size and mode before its driver
            # loaded: the columns are the guests, not the drivers
            rows.append(('large: touch limit s, a process touching as much, %s' % what,
                         vals(mode, lambda x: x['touch']['up_s'])))
            rows.append(('large: touch limit s, its exit freeing it, %s' % what,
                         vals(mode, lambda x: x['touch']['down_s'])))
            rows.append(('large: touch limit guest CPU s per GiB (all of it), %s' % what,
                         vals(mode, lambda x: x['touch']['cpu_s'] * GIB_PAGES / x['pages'])))
    rows.append(('fragmentation: huge pages after interleaved inflation and compaction',
                 vals('fragmentation', lambda x: x['huge_pages'])))
    rows.append(('fragmentation: ballooned pages migrated (of %d)' % FRAG_BALLOON,
                 vals('fragmentation', lambda x: x['migrated'])))
    rows.append(('fragmentation: hypercalls per migrated page',
                 vals('fragmentation', lambda x: (x['calls'][0] + x['calls'][1]) / x['migrated']
                      if x['migrated'] else None)))
    rows.append(('fragmentation: pages locked + unlocked per migrated page',
                 vals('fragmentation', lambda x: (x['calls'][2] + x['calls'][3]) / x['migrated']
                      if x['migrated'] else None)))
    rows.append(('pressure: balloon before memhog (MiB of %d)' % PRESSURE_MB,
                 vals('pressure', lambda x: x['balloon_before_mib'])))
    rows.append(('pressure: memhog %d MiB completed (runs)' % int(PRESSURE_MB * 0.6),
                 vals('pressure', lambda x: 1 if x['completed'] else 0)))
    rows.append(('pressure: guest survived (runs)', vals('pressure', lambda x: 0 if x.get('guest_died') else 1)))
    rows.append(('pressure: OOM kills', vals('pressure', lambda x: x['oom_kills'])))
    rows.append(('pressure: s until memhog had its memory', vals('pressure', lambda x: x['hog_s'])))
    rows.append(('pressure: balloon after memhog (MiB)', vals('pressure', lambda x: x['balloon_after_mib'])))
    return rows


def table(results):
    lines = ['| figure | vmmemctl median [min–max] | vmw_balloon median [min–max] | ratio vmmemctl/in-tree |',
             '|---|---|---|---|']
    for what, v in figures(results):
        if not any(v.values()):
            continue
        a, am = cell(v['vmmemctl'])
        b, bm = cell(v['vmw_balloon'])
        if '(runs)' in what:
            a = '%d/%d' % (sum(v['vmmemctl']), len(v['vmmemctl'])) if v['vmmemctl'] else '-'
            b = '%d/%d' % (sum(v['vmw_balloon']), len(v['vmw_balloon'])) if v['vmw_balloon'] else '-'
            ratio = ''
        elif am is None or bm is None or bm == 0:
            ratio = '-'
        else:
            ratio = '%.2f' % (am / bm)
        lines.append('| %s | %s | %s | %s |' % (what, a, b, ratio))
    return '\n'.join(lines)


def machine():
    cpu = '?'
    try:
        with open('/proc/cpuinfo') as f:
            for line in f:
                if line.startswith('model name'):
                    cpu = line.split(':', 1)[1].strip()
                    break
    except OSError:
        pass
    q = kernels.qemu_version()
    kv = kernels.current().kver
    return '%s, %d CPUs, %s (TCG), guest kernel %s, host kernel %s' % (
        cpu, os.cpu_count() or 0, q, kv, platform.release())


NOTES = """Notes: one fresh TCG guest (512 MiB, 1 vCPU) per driver, workload and run; drivers alternate.
Balloon sizes: basic %s, batched modes %s; figures are scaled to 1 GiB.
*hypercalls*: every command the simulated host answered between the target change and
the host holding the target (GET_TARGET polls included; the (un)lock rows count only the
LOCK/UNLOCK commands, batched or not). *guest busy CPU*: delta of
system+irq+softirq jiffies in the guest's /proc/stat over the phase (USER_HZ 100, so
10 ms granularity before scaling), guest otherwise idle, minus the idle guest's own
rate measured for 3 s before; it is a proxy for the driver's
work, not a per-thread attribution. *time to target*: guest uptime from the target
change until the host holds it, minus one agent round trip (the CPU figure likewise
subtracts the guest CPU of one idle agent round trip); TCG makes absolute times
meaningless, the ratio is the result (at rest vmw_balloon polls the target once a second,
vmmemctl twice; after the first poll that saw the target, the poll's phase is out).
*load overhead*: MemFree before insmod vs 2 s after with target 0 (page cache dropped
both times), noisy to a few hundred KiB; for vmw_balloon it includes vmw_vmci.
*pressure*: %d MiB guest, host target 90%% of its pages, balloon left to grow until stable
(<= 60 s), then `memhog %d 2` (all other processes protected from the OOM killer);
vmw_balloon in its default configuration (no shrinker), vmmemctl with defaults.
*large*: one fresh 1-vCPU guest of 2 GiB (target 70%% of MemTotal) or 8 GiB (75%%) per
driver, mode and run, both drivers with their defaults; time to target up and down, guest
busy CPU and hypercalls, scaled per GiB of the balloon. *touch limit*: in the same guest,
before the driver loads, `memhog` touching as many MiB (run twice, the second kept: the
guest's memory is then backed by QEMU as it is for the balloon afterwards); its time until
it touched the last page, the time its exit takes to free it all, and all its guest CPU
(user+system+irq+softirq); with transparent huge pages off in the 4 KiB-batched mode
(4 KiB faults, as the balloon allocates) and on (Debian's default, `always`) in the 2 MiB
mode. Goals (issue 14): inflate time at most 1.0x the in-tree
driver's and 1.5x the touch limit; deflation within 1.0x the in-tree driver's."""


def main():
    t_start = time.monotonic()
    os.makedirs(OUT, exist_ok=True)
    mach = machine()
    print('machine: %s' % mach, flush=True)
    plan = []
    for i in range(1, RUNS + 1):
        if 'modes' in ONLY:
            for label, caps, pages in MODES:
                for d in DRIVERS:
                    plan.append(('mode', d, label, caps, pages, i))
        if 'pressure' in ONLY:
            for d in DRIVERS:
                plan.append(('pressure', d, None, None, None, i))
        if 'fragmentation' in ONLY:
            for d in DRIVERS:
                plan.append(('frag', d, 'fragmentation', None, None, i))
        if 'large' in ONLY:
            for mem_mb, pct in LARGE_GUESTS:
                for label, caps in LARGE_MODES:
                    for d in DRIVERS:
                        plan.append(('large', d, label, caps, (mem_mb, pct), i))
    log('%d runs per driver, %d guest boots%s' % (RUNS, len(plan), ' (quick)' if QUICK else ''))
    results, failures = [], []
    interrupted = False
    try:
        for kind, d, label, caps, pages, i in plan:
            t = time.monotonic()
            what = '%s %s run %d' % (label or 'pressure', d, i)
            try:
                if kind == 'large':
                    what = 'large %d MiB %s %s run %d' % (pages[0], label, d, i)
                    res = run_large(d, label, caps, pages[0], pages[1], i)
                    log('%s: touch %.2fs, inflate %d cmds %.2fs, deflate %d cmds %.2fs, cpu %.2f/%.2f s, %s (%.0fs)' % (
                        what, res['touch']['up_s'], res['inflate']['cmds'], res['inflate']['guest_s'],
                        res['deflate']['cmds'], res['deflate']['guest_s'], res['inflate']['cpu_s'],
                        res['deflate']['cpu_s'], res.get('stats_up', {}), time.monotonic() - t))
                elif kind == 'frag':
                    res = dict(fragmentation(d, i), driver=d, mode='fragmentation', run=i)
                    log('%s: %d huge pages, %d ballooned pages migrated, host saw %s (%.0fs)' % (
                        what, res['huge_pages'], res['migrated'], res['calls'], time.monotonic() - t))
                elif kind == 'mode':
                    res = run_mode(d, label, caps, pages, i)
                    log('%s: inflate %d cmds %.2fs, deflate %d cmds %.2fs, cpu %.2f/%.2f s (%.0fs)' % (
                        what, res['inflate']['cmds'], res['inflate']['guest_s'], res['deflate']['cmds'],
                        res['deflate']['guest_s'], res['inflate']['cpu_s'], res['deflate']['cpu_s'],
                        time.monotonic() - t))
                else:
                    res = run_pressure(d, i)
                    log('%s: balloon %s MiB, memhog %s in %s s, %d OOM kills, balloon after %s MiB%s (%.0fs)' % (
                        what, fmt(res['balloon_before_mib']), 'completed' if res['completed'] else 'FAILED',
                        fmt(res['hog_s']), res['oom_kills'], fmt(res['balloon_after_mib']),
                        ', GUEST DIED: %s' % res.get('panic') if res.get('guest_died') else '',
                        time.monotonic() - t))
                bad = [v for v in res.get('violations', []) if not any(k in v for k in INTREE_KNOWN)]
                if bad or res.get('problems'):
                    log('%s: WARNING violations %s problems %s' % (what, bad[:3], res.get('problems', [])[:3]))
                results.append(res)
            except (RigError, AssertionError, OSError, ValueError, AttributeError) as e:
                log('%s: FAILED: %s' % (what, str(e)[:800]))
                failures.append('%s: %s' % (what, str(e)[:300]))
    except KeyboardInterrupt:
        interrupted = True
        log('interrupted: partial results follow')
    tab = table(results)
    notes = NOTES % ('16 MiB' if not QUICK else '(skipped in quick mode)', '256 MiB', PRESSURE_MB,
                     int(PRESSURE_MB * 0.6))
    head = 'machine: %s\nruns per driver: %d%s%s, %.0f s total' % (
        mach, RUNS, ' (BENCH_QUICK)' if QUICK else '', ' (INTERRUPTED)' if interrupted else '',
        time.monotonic() - t_start)
    text = head + '\n\n' + tab + '\n\n' + notes + '\n'
    if failures:
        text += '\nFailed runs:\n' + '\n'.join('- ' + f for f in failures) + '\n'
    print()
    print(text, flush=True)
    with open(os.path.join(OUT, 'results.md'), 'w') as f:
        f.write(text)
    with open(os.path.join(OUT, 'runs.json'), 'w') as f:
        json.dump({'machine': mach, 'runs': RUNS, 'quick': QUICK, 'results': results,
                   'failures': failures}, f, indent=1, default=str)
    log('wrote %s' % os.path.join(OUT, 'results.md'))
    if interrupted:
        return 130
    return 1 if failures else 0


if __name__ == '__main__':
    signal.signal(signal.SIGTERM, lambda *a: (_ for _ in ()).throw(KeyboardInterrupt()))
    sys.exit(main())
