# SPDX-License-Identifier: GPL-2.0
"""debugfs /sys/kernel/debug/vmmemctl: the in-tree vmw_balloon's lines first,
exactly as it prints them (names, separators, widths, order), then ours.

Both drivers run under the same host, on the kernel under test, and reach the
same balloon; their files are compared line by line.
"""

import os
import re

from common import CAPS_DEFAULT, DEBUGFS, Rig, HostConfig, boot, finish, load, wait_size
from rig import parse_kv

# The in-tree driver takes the whole 64-bit rbx as the target even where the
# protocol leaves it undefined (see tests/rig/smoke_inkernel.py): both drivers
# get a host with defined values, so that both reach the same balloon.
HOST = dict(caps=CAPS_DEFAULT, adversarial=False, target=0)
TARGET = 1024               # two 2 MiB pages (vmw_balloon overshoots a target between)

# vmw_balloon's vmballoon_debug_show() (the same in 6.1, 6.12 and 7.3):
# "%-22s: %#16x", "%-22s: %16s", "%-22s: %16lu", "%-22s: %16llu (%llu failed)"
# and the per page size counters "%-18s(%s): %16llu".
LINE = re.compile(r'^(?P<name>.{22}): (?P<value> *\S+)(?P<rest>.*)$')
FAILED = re.compile(r'^ \(\d+ failed\)$')
INTREE_LINES = 5 + 10 + 5 + 5 * 2   # header, commands, general, per size

# Our own lines after the in-tree ones: every one is read by the tests or
# documented in the admin guide.
OURS = ['version', 'goal', 'limited by', 'pages 4k', 'pages 2M', 'refused 4k', 'refused 2M',
        'inflate rate', 'inflate rate min', 'inflate rate max', 'inflate slowed by',
        'deflate rate', 'deflate rate min', 'deflate rate max'] + \
       ['status ' + s for s in ('cmd-invalid', 'ppn-invalid', 'ppn-locked', 'ppn-unlocked',
                                'ppn-pinned', 'ppn-notneeded', 'reset', 'busy', 'failure')] + \
       ['oom', 'oomFree', 'migrate', 'migrateFail', 'slowdowns', 'reclaim scanned',
        'reclaim stalls', 'guest alloc', 'lock hold max (us)']


def shape(line):
    """What a script parsing the line depends on: the name with its padding,
    the value's column (16 wide, right-aligned), its kind, and what follows.
    Values themselves differ between drivers."""
    m = LINE.match(line)
    if not m or len(m.group('value')) != 16:
        return ('unparsed', line)
    v = m.group('value').strip()
    if v == '0':
        kind = 'zero'           # "%#16x" prints 0 without "0x"
    elif re.fullmatch(r'0x[0-9a-f]+', v):
        kind = 'hex'
    elif v.isdigit():
        kind = 'dec'
    else:
        kind = 'text'
    rest = m.group('rest')
    if FAILED.match(rest):
        rest = ' (N failed)'
    return (m.group('name'), kind, rest)


def same_shape(a, b):
    if a[0] == 'unparsed' or b[0] == 'unparsed':
        return a == b
    kinds = {a[1], b[1]}
    return a[0] == b[0] and a[2] == b[2] and (len(kinds) == 1 or kinds in ({'zero', 'hex'},
                                                                          {'zero', 'dec'}))


def capture(driver):
    """Boot, load `driver`, inflate to TARGET; its debugfs text and parsed keys."""
    ko = os.environ.get('VMMEMCTL_KO') if driver == 'vmmemctl' else None
    with Rig(name='debugfs_' + driver, driver=driver, host=HostConfig(**HOST),
             ko=ko or None) as r:
        if driver == 'vmmemctl':
            load(r)
        else:
            rc, out = r.load()
            assert rc == 0, 'insmod %s failed: %s' % (driver, out)
            # (the first read also switches the in-tree statistics on)
            r.wait_for(lambda: r.stats().get('is resetting') == 'n', timeout=30,
                       what='session started')
        r.host.set_target(TARGET)
        wait_size(r, TARGET)
        rc, text = r.cat(DEBUGFS)
        assert rc == 0, 'reading %s failed: %s' % (DEBUGFS, text)
        r.log('%s debugfs:\n%s' % (driver, text))
        with open(os.path.join(r.out_dir, 'debugfs.txt'), 'w') as f:
            f.write(text)
        # (vmw_balloon is not unloaded: its rmmod with 2 MiB pages ballooned
        # is a known soft lockup, PROTOCOL.md; the guest is powered off.)
        if driver == 'vmmemctl':
            finish(r)
    return text.splitlines(), parse_kv(text)


def test_debugfs_in_tree_layout():
    theirs, tkv = capture('vmw_balloon')
    ours, okv = capture('vmmemctl')

    assert len(theirs) == INTREE_LINES, 'vmw_balloon printed %d lines, not %d:\n%s' % (
        len(theirs), INTREE_LINES, '\n'.join(theirs))
    for line in theirs:
        assert shape(line)[0] != 'unparsed', 'cannot read the in-tree line %r' % line

    diff = ['line %d:\n  vmw_balloon %r\n  vmmemctl    %r' % (i + 1, t, o)
            for i, (t, o) in enumerate(zip(theirs, ours + [''] * len(theirs)))
            if not same_shape(shape(t), shape(o))]
    assert not diff, '%d of the first %d lines differ from the in-tree layout:\n%s' % (
        len(diff), len(theirs), '\n'.join(diff))

    # Our lines after them, in the same layout, every one still there.
    extra = ours[len(theirs):]
    bad = [line for line in extra if shape(line)[0] == 'unparsed']
    assert not bad, 'lines not in the "%%-22s: %%16s" layout: %s' % bad
    names = [shape(line)[0].strip() for line in extra]
    assert names == OURS, 'our lines after the in-tree ones:\n  %s\nexpected:\n  %s' % (
        names, OURS)

    # The same balloon reads the same on both sides, with the rig's parsing
    # (blanks folded: 'alloc             (2M)' is 'alloc (2M)').
    for key in ('is resetting', 'target', 'current', 'used capabilities',
                'alloc (2M)', 'errAlloc (4k)', 'errAlloc (2M)', 'free (4k)', 'free (2M)'):
        assert tkv.get(key) == okv.get(key), '%s: vmw_balloon %r, vmmemctl %r' % (
            key, tkv.get(key), okv.get(key))
    assert okv['target'] == okv['current'] == TARGET
    assert okv['alloc (2M)'] == okv['pages 2M'] == 2 and okv['pages 4k'] == 0, okv
    assert re.fullmatch(r'\d+ \(0 failed\)', str(okv['target#2'])), okv['target#2']


# In the guest: debugfs and the sysfs files read back to back until
# /tmp/readers.stop appears, each snapshot followed by '==='.
READERS = r"""
rm -f /tmp/readers.stop
while [ ! -e /tmp/readers.stop ]; do
    cat %s /sys/kernel/vmmemctl/size /sys/kernel/vmmemctl/goal /sys/kernel/vmmemctl/limited_by
    echo ===
done > /tmp/snaps 2>&1
echo done > /tmp/readers.done
""" % DEBUGFS

# Per snapshot: alloc - free == pages + refused for each page size (the
# in-tree lines fold to 'alloc (4k)', ours are 'pages 4k'); prints the first
# torn ones and a summary line.
CHECK_SNAPSHOTS = r"""awk -F: '
BEGIN { sz["4k"]; sz["2M"] }
function check(  s, held, listed) {
    if (!n)
        return
    for (s in sz) {
        held = a["alloc (" s ")"] - a["free (" s ")"]
        listed = a["pages " s] + a["refused " s]
        if (held != listed && ++bad <= 3)
            print "torn snapshot " snaps " (" s "): alloc-free=" held ", pages+refused=" listed
    }
    seen[a["current"]] = 1
    snaps++
    n = 0
    split("", a)
}
/^===/ { check(); next }
NF >= 2 { k = $1; gsub(/[ \t]+/, " ", k); sub(/ $/, "", k); v = $2; gsub(/[ \t]/, "", v); a[k] = v; n++ }
END { check(); c = 0; for (x in seen) c++; print "snapshots " snaps + 0 " torn " bad + 0 " sizes " c }
' /tmp/snaps"""


def test_snapshots_add_up_while_the_balloon_moves():
    """Two vCPUs: debugfs read in a loop on one while the work item inflates
    and deflates on the other. Every snapshot adds up: the reader takes the
    balloon's lock (KCSAN's sampling misses that race; this test does not)."""
    with boot('snapshots', smp=2) as r:
        # ceilings, so that each move takes some seconds of reads
        load(r, params='inflate_rate_max=8192 deflate_rate_max=8192')
        rc, out = r.sh("cat > /tmp/readers.sh <<'EOF'\n%sEOF\nsh /tmp/readers.sh > /dev/null 2>&1 &"
                       % READERS)
        assert rc == 0, out
        ram = r.meminfo()['MemTotal'] // 4
        for target in (ram // 2, ram // 8, ram * 3 // 8, 0):
            r.host.set_target(target)
            wait_size(r, target, timeout=150)
        rc, out = r.sh('touch /tmp/readers.stop; i=0; '
                       'while [ ! -e /tmp/readers.done ] && [ $i -lt 100 ]; do usleep 100000; i=$((i+1)); done; '
                       + CHECK_SNAPSHOTS, timeout=120)
        assert rc == 0, out
        m = re.search(r'snapshots (\d+) torn (\d+) sizes (\d+)', out)
        assert m, 'no summary from the snapshot check: %s' % out
        snaps, torn, sizes = (int(g) for g in m.groups())
        print('%d snapshots, %d balloon sizes among them, %d torn' % (snaps, sizes, torn))
        assert torn == 0, out
        # the reads really overlapped the moves: sizes between the targets
        assert sizes >= 6, 'only %d balloon sizes in %d snapshots: the reads did not ' \
            'overlap the moves' % (sizes, snaps)
        finish(r)
