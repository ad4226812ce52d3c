# SPDX-License-Identifier: GPL-2.0
"""Chaos: random targets, parameter writes, BUSY/FAILURE windows, RESETs and
refusals from an adversarial host, with the invariants checked after every step.

    CHAOS_SECONDS=600 python3 tests/run_tests.py --kernels 6.1 -k chaos
    CHAOS_SEED=1234 ...        # replay a run (the seed is in every failure message,
                               # rig.log and summary.json; RIG_SEED works too)

What is checkable when:
- always: no host violation (touch check: the guest never writes a page the host
  holds; no unlock of a page the host does not hold; capabilities; session), the
  host's loop alive, no WARN/BUG/Oops in dmesg, the host never holds more than the
  largest target it ever asked for (the guest bounds the target), nor more than RAM.
- at rest (the driver's work item idle: current == goal, no refused pages, the
  session open, the host's target seen, two reads a second apart identical):
  debugfs `current` == the host's locked frames == pages 4k + 512 * pages 2M;
  the frames the kernel marks PG_offline (/proc/kpageflags) are exactly the host's
  locked set; page accounting (alloc - free == pages + refused); goal <= target,
  goal <= max_size, goal == target when nothing limits it; MemFree + balloon within
  a few MiB of the free memory at the start.
- at the end: target 0 converges, rmmod returns everything, the host holds 0.
"""

import os
import random
import re
import time

from common import (PARAMS, assert_accounting, assert_host_clean,
                    boot, finish, load, memfree_kb)
import vmhost as V

KPF_OFFLINE = 23
SETTLE_TIMEOUT = 120
BASIC_TARGET_MAX = 3000     # pages: what the basic protocol moves between two rests

# parameter -> (valid values, invalid values); validity of the rates also
# depends on the other end of the range (modelled below).
BOOLS = (['y', 'n', 'Y', 'N', '1', '0'], ['maybe', '2x', '', 'x'])
PARAM_VALUES = {
    'batching': BOOLS,
    'huge_pages': BOOLS,
    'enabled': BOOLS,
    'pressure_release': BOOLS,
    'inflate_rate_min': (['512', '1024', '4096', '0x800'], ['0', '-1', 'abc', '4194305', '']),
    'inflate_rate_max': (['0', '16384', '65536', '262144', '4194304'], ['4194305', 'lots', '-7']),
    'deflate_rate_min': (['512', '2048', '8192'], ['0', 'x', '99999999']),
    'deflate_rate_max': (['0', '16384', '131072', '4194304'], ['4194305', 'many']),
    'refused_max': (['16', '64', '512', '4096'], ['0', '-1', '4097', 'z']),
    'pressure_holdoff': (['0', '2', '10'], ['3601', '-1', 'soon']),
    'min_free_mb': (['0', '16', '64', '160'], ['-1', '1073741825', 'x']),
    'max_size': (['100%', '60%', '25%', '0%', '20000', '0', '40000'],
                 ['101%', 'lots', '-3', '%', '1e5']),
}


def to_bool(v):
    return v.strip()[:1] in ('y', 'Y', '1')


class Chaos:
    def __init__(self, r, seed, seconds):
        self.r = r
        self.h = r.host
        self.seed = seed
        self.rng = random.Random(seed ^ 0x5EED)
        self.seconds = seconds
        self.step = 0
        self.trail = []               # the last actions, for the failure message
        self.max_target = 0
        self.params = {}
        self.ram = r.meminfo()['MemTotal'] // 4
        self.free0 = None
        self.settles = 0
        self.kpf_ok = None            # /proc/kpageflags readable with hexdump+awk
        self.counts = {}

    # ------------------------------------------------------------ helpers
    def log(self, msg):
        self.trail.append('%d: %s' % (self.step, msg))
        del self.trail[:-12]
        self.r.log('chaos[%d] %s' % (self.step, msg))

    def read_params(self):
        rc, out = self.r.sh('cd %s && for f in *; do echo "$f=$(cat $f)"; done' % PARAMS)
        assert rc == 0, out
        self.params = dict(line.split('=', 1) for line in out.splitlines() if '=' in line)

    def set_target(self, t):
        self.max_target = max(self.max_target, t)
        self.h.set_target(t)
        self.log('target %d' % t)

    def batching(self):
        return to_bool(self.params.get('batching', 'Y'))

    # ------------------------------------------------------------ actions
    def fit_target(self):
        """With the basic protocol every page is a hypercall: a target set for
        batching (up to 45% of RAM) would take minutes to reach. Bring it
        within what basic mode reaches between two rests."""
        if not self.batching() and self.h.target > BASIC_TARGET_MAX:
            self.set_target(self.rng.randrange(0, BASIC_TARGET_MAX))

    def act_target(self):
        hi = int(self.ram * 0.45) if self.batching() else BASIC_TARGET_MAX
        x = self.rng.random()
        if x < 0.1:
            t = 0
        elif x < 0.2:
            t = self.rng.randrange(0, 512)         # less than a 2 MiB page
        elif x < 0.3:
            t = 512 * self.rng.randrange(1, max(2, hi // 512))   # whole 2 MiB pages
        else:
            t = self.rng.randrange(0, hi)
        self.set_target(t)

    def expect_valid(self, name, value):
        valid, _ = PARAM_VALUES[name]
        if value not in valid:
            return False
        # a maximum of 0 is no limit: any minimum goes with it
        if '_rate_' in name and name.endswith('_min'):
            mx = int(self.params[name[:-4] + '_max'])
            return mx == 0 or int(value, 0) <= mx
        if '_rate_' in name and name.endswith('_max'):
            return int(value, 0) == 0 or int(value, 0) >= int(self.params[name[:-4] + '_min'])
        return True

    def act_param(self):
        name = self.rng.choice(sorted(PARAM_VALUES))
        valid, invalid = PARAM_VALUES[name]
        value = self.rng.choice(valid if self.rng.random() < 0.65 else invalid)
        if name in ('batching', 'huge_pages') and self.rng.random() < 0.5:
            # a protocol switch must actually switch now and then
            value = 'n' if to_bool(self.params[name]) else 'y'
        if name == 'enabled' and value in valid and not to_bool(value) and self.rng.random() < 0.5:
            value = 'y'                            # mostly enabled: otherwise nothing moves
        want = self.expect_valid(name, value)
        old = self.params[name]
        rc, out = self.r.sh("echo '%s' > %s/%s; echo rc=$?; cat %s/%s" % (value, PARAMS, name, PARAMS, name))
        m = re.search(r'rc=(\d+)\n(.*)', out)
        assert m, out
        ok, now = m.group(1) == '0', m.group(2).strip()
        self.log('param %s=%r: %s (now %s)' % (name, value, 'accepted' if ok else 'refused', now))
        assert ok == want, '%s=%r %s, expected %s' % (name, value, 'accepted' if ok else 'refused',
                                                       'accepted' if want else 'refused')
        if not ok:
            assert now == old, '%s changed from %s to %s by a refused write' % (name, old, now)
        else:
            if PARAM_VALUES[name] is BOOLS:
                assert to_bool(now) == to_bool(value), (name, value, now)
            elif name == 'max_size':
                assert now == (value if value.endswith('%') else str(int(value))), (name, value, now)
            else:
                assert int(now) == int(value, 0), (name, value, now)
        self.params[name] = now
        if name == 'batching':
            self.fit_target()

    def act_busy(self):
        s = self.rng.uniform(0.3, 4)
        self.h.set_busy(s)
        self.log('host BUSY for %.1fs' % s)

    def act_failing(self):
        s = self.rng.uniform(0.3, 4)
        self.h.set_failing(s)
        self.log('host FAILURE for %.1fs' % s)

    def act_reset(self):
        self.h.inject(V.ERROR_RESET)
        self.log('RESET injected')

    def act_inject(self):
        st = self.rng.choice([V.ERROR_BUSY, V.FAILURE, V.ERROR_CMD_INVALID, V.ERROR_PPN_PINNED,
                              V.ERROR_PPN_NOTNEEDED, V.ERROR_PPN_INVALID])
        n = self.rng.randint(1, 6)
        self.h.inject(st, n)
        self.log('next %d commands answer %s' % (n, V.status_name(st)))

    def act_refusals(self):
        rate = self.rng.choice([0.0, 0.0, 0.01, 0.03, 0.1, 0.3])
        self.h.config.refuse_rate = rate
        self.h.config.refuse_reset = self.rng.random() < 0.3
        self.log('refuse_rate %g%s' % (rate, ' with RESET entries' if self.h.config.refuse_reset else ''))

    def act_memhog(self):
        avail = self.r.meminfo()['MemAvailable'] // 1024
        mb = max(4, min(48, avail // 3))
        rc, out = self.r.sh('memhog %d 0' % mb, timeout=60)
        self.log('memhog %d MiB: rc %d' % (mb, rc))

    def act_sleep(self):
        s = self.rng.uniform(0.5, 3)
        time.sleep(s)
        self.log('slept %.1fs' % s)

    ACTIONS = [('target', 6), ('param', 4), ('busy', 2), ('failing', 2), ('reset', 1.5),
               ('inject', 1.5), ('refusals', 1.5), ('memhog', 1), ('sleep', 2)]

    # ------------------------------------------------------------ invariants
    def check_always(self):
        r, h = self.r, self.h
        assert r.alive(), 'guest died'
        assert_host_clean(r)
        locked = h.locked_frames()
        assert locked <= self.ram, 'host holds %d frames, guest RAM is %d' % (locked, self.ram)
        assert locked <= self.max_target, \
            'host holds %d frames, more than any target it asked for (max %d)' % (locked, self.max_target)
        st = r.stats()
        assert st['current'] <= self.ram, st['current']
        problems = r.dmesg_problems()
        assert not problems, 'dmesg problems:\n' + '\n'.join(problems[:20])

    def at_rest(self):
        """The stats if the balloon is at rest on both sides, else None."""
        r, h = self.r, self.h
        if time.monotonic() < max(h.config.busy_until, h.config.failure_until) or h._inject:
            return None
        st = r.stats()
        if (st['is resetting'] != 'n' or st['current'] != st['goal'] or st['refused 4k']
                or st['refused 2M'] or st['target'] != h.target
                or h.locked_frames() != st['current']):
            return None
        time.sleep(1.0)
        st2 = r.stats()
        for k in ('current', 'goal', 'target', 'pages 4k', 'pages 2M', 'refused 4k', 'refused 2M',
                  'is resetting', 'reset'):
            if st2[k] != st[k]:
                return None
        if h.locked_frames() != st2['current']:
            return None
        return st2

    def offline_pfns(self):
        """PFNs the kernel marks PG_offline, or None if the guest cannot tell."""
        if self.kpf_ok is False:
            return None
        script = ("hexdump -v -e '2/4 \"%08x \" \"\\n\"' /proc/kpageflags | "
                  "awk '{ if (index(\"89abcdef\", substr($1, 3, 1))) print NR - 1 }'; "
                  "echo done=$?")
        rc, out = self.r.sh(script, timeout=120)
        if rc != 0 or 'done=0' not in out or os.environ.get('CHAOS_NO_KPF'):
            self.kpf_ok = False
            self.r.log('chaos: /proc/kpageflags not usable here, skipping the PFN check: %s' % out[-300:])
            return None
        self.kpf_ok = True
        return {int(x) for x in out.split() if x.isdigit()}

    def settle(self, final=False):
        """Wait for rest, then check everything that is exact at rest."""
        r, h = self.r, self.h
        self.settles += 1
        # Random refusals of single LOCKs/UNLOCKs include BUSY, FAILURE,
        # CMD_INVALID and NOTNEEDED, each the status of the call, which ends
        # the driver's period (rightly; vmw_balloon stops at any non-success
        # in basic mode): at 3% a basic-protocol balloon moves about 60 pages
        # a period. Rest needs a gentler host: 3% of batch entries, 0.5% of
        # single calls.
        self.fit_target()
        gentle = 0.03 if self.batching() else 0.005
        if h.config.refuse_rate > gentle:
            h.config.refuse_rate = gentle
            self.log('refuse_rate %g to let the balloon come to rest' % gentle)
        st = r.wait_for(self.at_rest, timeout=SETTLE_TIMEOUT, interval=1,
                        what='balloon at rest (host target %d)' % h.target)
        cur = st['current']
        assert st['pages 4k'] + 512 * st['pages 2M'] == cur, st
        assert_accounting(st)
        assert h.locked_frames() == cur
        assert st['goal'] <= st['target'], st
        assert st['goal'] <= self.ram
        cap = self.params.get('max_size', '100%')
        cap = self.ram // 100 * int(cap[:-1]) if cap.endswith('%') else int(cap)
        assert st['goal'] <= cap, 'goal %d above max_size %d' % (st['goal'], cap)
        if st['limited by'] == 'none':
            assert st['goal'] == st['target'], st
        if not to_bool(self.params.get('enabled', 'Y')):
            assert cur == 0 and st['limited by'] == 'disabled', st
        # the kernel's PG_offline frames are exactly what the host holds
        pfns = self.offline_pfns()
        if pfns is not None:
            held = h.call_stopped(lambda hh: set(hh.locked4k) |
                                  {p + i for p in hh.locked2m for i in range(512)})
            if pfns != held:
                extra = sorted(pfns - held)[:10]
                missing = sorted(held - pfns)[:10]
                raise AssertionError('PG_offline frames (%d) != host locked (%d): offline not held %s, '
                                     'held not offline %s' % (len(pfns), len(held),
                                                              [hex(p) for p in extra],
                                                              [hex(p) for p in missing]))
        free = memfree_kb(r)
        gap = free + 4 * cur - self.free0
        self.log('at rest: %d pages (%d 2M), limited by %s, free+balloon-free0 = %+d kB%s' % (
            cur, st['pages 2M'], st['limited by'], gap,
            '' if pfns is None else ', PG_offline == host set'))
        assert gap < 8 * 1024, 'MemFree + balloon %d kB above the start (%d kB): pages freed twice?' % (
            gap, self.free0)
        assert gap > -64 * 1024, 'MemFree + balloon %d kB below the start: memory lost' % -gap
        return st

    # ------------------------------------------------------------ run
    def run(self):
        r, h = self.r, self.h
        load(r)
        self.read_params()
        self.free0 = memfree_kb(r)
        self.log('seed %d, %d s, RAM %d pages, free %d kB' % (self.seed, self.seconds, self.ram, self.free0))
        names = [a for a, _ in self.ACTIONS]
        weights = [w for _, w in self.ACTIONS]
        t_end = time.monotonic() + self.seconds
        since_settle = 0
        while time.monotonic() < t_end:
            self.step += 1
            a = self.rng.choices(names, weights)[0]
            self.counts[a] = self.counts.get(a, 0) + 1
            getattr(self, 'act_' + a)()
            self.check_always()
            since_settle += 1
            if since_settle >= self.rng.randint(4, 8):
                self.settle()
                since_settle = 0
        # the end: everything back
        self.step += 1
        self.log('end: target 0, host quiet')
        h.config.refuse_rate = 0.0
        h.config.busy_until = h.config.failure_until = 0
        self.set_target(0)
        self.settle(final=True)
        st = r.stats()
        assert st['current'] == 0 and h.locked_frames() == 0, st
        finish(r)
        pfns = self.offline_pfns()
        assert not pfns, 'PG_offline frames left after rmmod: %s' % sorted(pfns)[:10]
        self.log('done: %d steps, %d rests checked, actions %s' % (self.step, self.settles, self.counts))


def test_chaos():
    seed = os.environ.get('CHAOS_SEED') or os.environ.get('RIG_SEED')
    seed = int(seed, 0) if seed else random.SystemRandom().getrandbits(32)
    seconds = float(os.environ.get('CHAOS_SECONDS') or 75)
    c = None
    try:
        with boot('chaos', seed=seed, adversarial=True, refuse_rate=0.02) as r:
            c = Chaos(r, seed, seconds)
            c.run()
    except Exception as e:  # noqa: BLE001 - any failure gets the seed
        trail = '\n  '.join(c.trail) if c else ''
        raise AssertionError('chaos seed %d (rerun with CHAOS_SEED=%d), step %d: %s\n  last steps:\n  %s' % (
            seed, seed, c.step if c else 0, e, trail)) from e


test_chaos.order = 90    # long: after the other scenarios
