# SPDX-License-Identifier: GPL-2.0
"""What an admin sees and controls: parameters, sysfs, vmstat, limits, traces."""

import time

from common import (CAP_BASIC, CAP_BATCHED, assert_accounting, boot, finish, load, param,
                    set_param, vmstat, wait_size)

SYSFS = '/sys/kernel/vmmemctl'


def test_parameters_valid_and_invalid():
    with boot('params') as r:
        load(r)
        assert param(r, 'inflate_rate_max') == '0' and param(r, 'deflate_rate_max') == '0'
        good = [('inflate_rate_max', '100000'), ('inflate_rate_min', '1024'),
                ('deflate_rate_min', '256'), ('deflate_rate_max', '8192'),
                ('refused_max', '64'), ('pressure_holdoff', '0'), ('min_free_mb', '16'),
                ('max_size', '25%'), ('max_size', '12345'), ('enabled', 'y'),
                ('pressure_release', 'n'), ('pressure_release', 'y')]
        for name, value in good:
            assert set_param(r, name, value) == 0, 'valid %s=%s refused' % (name, value)
            assert param(r, name) in (value, value.upper()), (name, param(r, name))
        bad = [('inflate_rate_min', '0'), ('inflate_rate_min', 'abc'),
               ('inflate_rate_min', '200000'),        # above the max
               ('inflate_rate_max', '100'),           # below the min
               ('inflate_rate_max', '-1'), ('deflate_rate_max', '4194305'),
               ('deflate_rate_max', '99999999'), ('refused_max', '0'),
               ('refused_max', '-1'), ('pressure_holdoff', '99999'), ('max_size', '150%'),
               ('max_size', 'lots'), ('batching', 'maybe'), ('enabled', '2x')]
        for name, value in bad:
            old = param(r, name)
            assert set_param(r, name, value) != 0, 'bad %s=%s accepted' % (name, value)
            assert param(r, name) == old, '%s changed to %s' % (name, param(r, name))
        msgs = [line for line in r.dmesg().splitlines() if 'value unchanged' in line]
        assert len(msgs) >= len(bad), msgs
        st = r.stats()
        assert st['inflate rate min'] == 1024 and st['inflate rate max'] == 100000
        rc, out = r.sh('modinfo -p /modules/vmmemctl.ko 2>/dev/null || true')
        finish(r)


def _clamp_warnings(r):
    return [line for line in r.dmesg().splitlines()
            if 'inflate_rate_min:' in line and 'above inflate_rate_max' in line]


def test_rate_params_any_order_at_load():
    """Rates given at load in any order: a maximum below the (default)
    minimum lowers the minimum with a warning instead of failing insmod.
    Once loaded, a bound that crosses the other is refused again."""
    with boot('params_order') as r:
        for params, want in (('inflate_rate_max=256', ('256', '256')),
                             ('inflate_rate_min=2048 inflate_rate_max=1024', ('1024', '1024')),
                             ('inflate_rate_max=1024 inflate_rate_min=2048', ('1024', '1024')),
                             ('inflate_rate_max=0 inflate_rate_min=4096', ('4096', '0'))):
            before = len(_clamp_warnings(r))
            load(r, params=params)
            got = (param(r, 'inflate_rate_min'), param(r, 'inflate_rate_max'))
            assert got == want, '%s: min, max = %s' % (params, got)
            warned = _clamp_warnings(r)[before:]
            assert len(warned) == (want != ('4096', '0')), (params, warned)
            assert param(r, 'deflate_rate_min') == '512' and param(r, 'deflate_rate_max') == '0'
            if want[1] != '0':
                assert set_param(r, 'inflate_rate_min', str(int(want[1]) + 1)) != 0
                assert set_param(r, 'inflate_rate_max', str(int(want[0]) - 1)) != 0
                assert param(r, 'inflate_rate_min') == want[0]
            rc, out = r.unload()
            assert rc == 0, out
        load(r, params='deflate_rate_max=300')
        assert param(r, 'deflate_rate_min') == '300'
        assert set_param(r, 'deflate_rate_max', '0') == 0
        assert set_param(r, 'deflate_rate_min', '8192') == 0, 'no maximum: any minimum goes'
        r.host.set_target(1024)
        wait_size(r, 1024)
        finish(r)


def test_sysfs_readable_without_root():
    with boot('sysfs_nonroot', caps=CAP_BASIC | CAP_BATCHED) as r:
        load(r)
        r.sh("grep -q '^nobody:' /etc/passwd || echo 'nobody:x:65534:65534::/:/bin/sh' >> /etc/passwd")
        as_nobody = "su -s /bin/sh nobody -c 'id -u; cat %s/size %s/target %s/limited_by'" % (
            SYSFS, SYSFS, SYSFS)
        rc, out = r.sh(as_nobody)
        assert rc == 0, out
        assert out.split()[:3] == ['65534', '0', '0'], out
        rc, _ = r.sh("su -s /bin/sh nobody -c 'cat /sys/kernel/debug/vmmemctl'")
        assert rc != 0, 'debugfs readable without root'
        r.host.set_target(1536)
        wait_size(r, 1536)
        rc, out = r.sh(as_nobody)
        assert out.split()[:4] == ['65534', '1536', '1536', 'none'], out
        finish(r)


def _vmstat_cycle(r, pages):
    v0 = vmstat(r)
    r.host.set_target(pages)
    wait_size(r, pages)
    v1 = vmstat(r)
    _check_meminfo_balloon(r, pages)
    r.host.set_target(0)
    wait_size(r, 0)
    v2 = vmstat(r)
    _check_meminfo_balloon(r, 0)
    return v1['balloon_inflate'] - v0['balloon_inflate'], v2['balloon_deflate'] - v1['balloon_deflate']


def _check_meminfo_balloon(r, pages):
    """'Balloon:' in /proc/meminfo (NR_BALLOON_PAGES, 6.15+) is the balloon's size."""
    mi = r.meminfo()
    if 'Balloon' not in mi:
        assert int(r.kernel.id.split('.')[0]) < 7, \
            'kernel %s has no Balloon: line in /proc/meminfo' % r.kver
        return
    assert mi['Balloon'] == pages * 4, 'meminfo Balloon: %d kB, balloon %d pages (%d kB)' % (
        mi['Balloon'], pages, pages * 4)


def test_vmstat_counts_4k_and_2m():
    with boot('vmstat') as r:
        load(r, params='huge_pages=n')
        assert _vmstat_cycle(r, 3000) == (3000, 3000)
        assert set_param(r, 'huge_pages', 'y') == 0
        r.wait_for(lambda: r.stats()['used capabilities'] & 0x8, timeout=20, what='2M on')
        assert _vmstat_cycle(r, 4096) == (4096, 4096)
        assert r.stats()['alloc (2M)'] >= 8
        finish(r)


def test_cap_25_percent():
    """Host asks for 90% of RAM; the admin's 25% cap wins, exactly."""
    with boot('cap25') as r:
        load(r, params='max_size=25%')
        rc, out = r.sh("awk '/MemTotal/ {print $2}' /proc/meminfo")
        ram = int(out) // 4
        # The module bounds by totalram_pages(), which MemTotal reports.
        cap = ram // 100 * 25
        r.host.set_target(ram * 90 // 100)
        wait_size(r, cap, timeout=120)
        time.sleep(2)
        st = r.stats()
        assert st['current'] == cap and st['limited by'] == 'max_size', st
        rc, out = r.sh('cat %s/limited_by %s/goal' % (SYSFS, SYSFS))
        assert out.split() == ['max_size', str(cap)], out
        # Lowering the cap at runtime deflates to it.
        assert set_param(r, 'max_size', '1000') == 0
        wait_size(r, 1000)
        finish(r)


def test_enabled_switch():
    """enabled=n: the host sees every page unlocked; enabled=y: back up."""
    with boot('enabled_switch', caps=CAP_BASIC | CAP_BATCHED) as r:
        load(r)
        r.host.set_target(4096)
        wait_size(r, 4096)
        starts = r.host.summary()['starts']
        assert set_param(r, 'enabled', 'n') == 0
        wait_size(r, 0)
        s = r.host.summary()
        assert s['starts'] == starts, 'switch-off went through START, not unlocks'
        unlocked = s['batch_entries'].get('BATCHED_UNLOCK', {}).get('pages', 0)
        assert unlocked >= 4096, s['batch_entries']
        assert r.stats()['limited by'] == 'disabled'
        time.sleep(2)
        assert r.stats()['current'] == 0
        assert set_param(r, 'enabled', 'y') == 0
        wait_size(r, 4096)
        assert_accounting(r.stats())
        finish(r)


def test_tracepoints_fire():
    with boot('trace') as r:
        load(r)
        t = '/sys/kernel/tracing'
        rc, out = r.sh('ls %s/events/vmmemctl/ && echo 1 > %s/events/vmmemctl/enable && '
                       'echo > %s/trace' % (t, t, t))
        assert rc == 0, out
        r.host.set_target(1024)
        wait_size(r, 1024)
        r.host.set_target(0)
        wait_size(r, 0)
        rc, out = r.sh('cat %s/trace' % t)
        for ev in ('vmmemctl_target:', 'vmmemctl_inflate:', 'vmmemctl_deflate:'):
            assert ev in out, '%s not traced:\n%s' % (ev, out[-2000:])
        finish(r)


KPF_OFFLINE = 1 << 23


def _kpageflags(r, pfn):
    rc, out = r.sh('dd if=/proc/kpageflags bs=8 skip=%d count=1 2>/dev/null | od -An -tx8' % pfn)
    assert rc == 0 and out.strip(), out
    return int(out.split()[0], 16)


def test_ballooned_pages_marked_offline():
    """Every frame the host holds is PG_offline in the guest (kdump and
    hibernation skip it); once given back it is not."""
    with boot('pg_offline') as r:
        load(r, params='huge_pages=n')
        r.host.set_target(1024)
        wait_size(r, 1024)
        with r.host._lock:
            pfns = sorted(r.host.locked4k)[:: 128]
        assert pfns
        for pfn in pfns:
            assert _kpageflags(r, pfn) & KPF_OFFLINE, 'pfn %#x not offline' % pfn
        r.host.set_target(0)
        wait_size(r, 0)
        for pfn in pfns:
            assert not _kpageflags(r, pfn) & KPF_OFFLINE, 'pfn %#x still offline' % pfn
        finish(r)
