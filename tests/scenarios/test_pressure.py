# SPDX-License-Identifier: GPL-2.0
"""Guest first: the balloon gives way before the guest OOM-kills anything."""

import time

from common import assert_accounting, assert_guest_clean, assert_host_clean, boot, load, \
    set_param, OOM_RE


def fill_to_floor(r, mem):
    """Host target 90% of RAM; wait until the balloon stops at its floor.
    Return the guest's RAM in pages."""
    ram = mem['MemTotal'] // 4
    r.host.set_target(ram * 90 // 100)
    r.wait_for(lambda: r.stats()['limited by'] == 'min_free' and
               r.stats()['current'] == r.stats()['goal'],
               timeout=90, what='balloon full up to the floor')
    return ram


def test_pressure_no_oom_kill_then_reinflate():
    _pressure('pressure', smp=1)


def test_pressure_two_cpus():
    """The same with two vCPUs: reclaim, the work item and the OOM path
    really run concurrently."""
    _pressure('pressure_smp2', smp=2)


def _pressure(name, smp):
    with boot(name, mem_mb=256, smp=smp) as r:
        load(r, params='pressure_holdoff=8')
        mem = r.meminfo()
        ram = fill_to_floor(r, mem)
        time.sleep(2)
        st = r.stats()
        full = st['current']
        assert full > ram // 2, 'balloon only took %d of %d pages; %s' % (full, ram, st)

        need_mib = mem['MemTotal'] * 60 // 100 // 1024
        t = time.monotonic()
        rc, out = r.sh('memhog %d 2' % need_mib, timeout=300)
        took = time.monotonic() - t
        assert rc == 0 and ('touched %d MiB' % need_mib) in out, 'memhog: rc %d %s' % (rc, out)
        st = r.stats()
        released = st['shrinkFree'] + st['oomFree']
        assert released > 0, 'balloon gave nothing back: %s' % st
        assert st['shrinkFree'] > st['oomFree'], \
            'reclaim left the work to the OOM path: shrink %d, oom %d frames' % (
                st['shrinkFree'], st['oomFree'])
        r.log('memhog %d MiB took %.1fs; shrink %d/%d oom %d/%d' % (
            need_mib, took, st['shrink'], st['shrinkFree'], st['oom'], st['oomFree']))
        text = r.dmesg()
        kills = [line for line in text.splitlines() if OOM_RE.search(line)]
        assert not kills, 'OOM kill:\n' + '\n'.join(kills)
        assert r.host.locked_frames() == st['current'], 'host and guest disagree'

        # The hold-off passes and the balloon grows again toward the host.
        low = st['current']
        r.wait_for(lambda: r.stats()['current'] > low + 8192, timeout=60,
                   what='re-inflation after the hold-off')
        assert_accounting(r.stats())
        r.host.set_target(0)
        r.wait_for(lambda: r.stats()['current'] == 0, timeout=120, what='deflated')
        rc, _ = r.unload()
        assert rc == 0
        assert r.host.locked_frames() == 0
        assert_host_clean(r)
        assert_guest_clean(r)


def test_pressure_release_off_is_respected():
    """With the pressure response off the shrinker gives nothing back."""
    with boot('pressure_off', mem_mb=256) as r:
        load(r)
        assert set_param(r, 'pressure_release', 'n') == 0
        ram = r.meminfo()['MemTotal'] // 4
        r.host.set_target(ram // 4)
        r.wait_for(lambda: r.stats()['current'] == ram // 4, timeout=60, what='inflated')
        rc, out = r.sh('memhog %d 1' % (ram // 4 // 256), timeout=120)
        assert rc == 0, out
        st = r.stats()
        assert st['shrinkFree'] == 0 and st['oomFree'] == 0, st
        rc, _ = r.unload()
        assert rc == 0
        assert_host_clean(r)
        assert_guest_clean(r)


def test_oom_log_says_what_the_balloon_held():
    """Pressure response off, a guest process needs more than is left: the
    OOM killer runs, and the log says how much the balloon held then."""
    with boot('oom_log', mem_mb=256) as r:
        load(r, params='pressure_release=n')
        mem = r.meminfo()
        fill_to_floor(r, mem)
        held_mib = r.stats()['current'] // 256
        rc, out = r.sh('memhog %d 1' % (mem['MemTotal'] * 60 // 100 // 1024), timeout=300)
        assert rc != 0, 'memhog got its memory with the pressure response off'
        lines = [line for line in r.dmesg().splitlines()
                 if 'vmmemctl: out of memory: balloon held' in line]
        assert lines, 'no balloon line at OOM time'
        said = int(lines[0].split('balloon held ')[1].split()[0])
        assert abs(said - held_mib) <= 2, (said, held_mib, lines[0])
        assert r.stats()['oomFree'] == 0
        rc, _ = r.unload()
        assert rc == 0
        assert_host_clean(r)
        assert_guest_clean(r, allow_oom=True)
