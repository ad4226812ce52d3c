#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Live view of vmmemctl in a guest while the simulated host moves its target."""

import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, 'rig'))

from rig import Rig, HostConfig  # noqa: E402
import kernels  # noqa: E402

MIB = 256  # 4 KiB pages per MiB

# (seconds into the show, host target in MiB)
SCHEDULE = [(0, 0), (4, 192), (24, 64), (36, 0)]
END = 48


def main():
    print('Booting a VMware-looking guest (%s TCG, kernel %s, 512 MiB) under the simulated host...'
          % (kernels.qemu_version(), kernels.current().kver))
    with Rig(name='demo', mem_mb=512, host=HostConfig(target=0), quiet=True) as r:
        rc, out = r.load()
        if rc != 0:
            print('insmod failed: %s' % out)
            return 1
        r.wait_for(lambda: r.stats().get('is resetting') == 'n', timeout=30, what='session')
        print('vmmemctl loaded: %s' % [line.split('vmmemctl: ', 1)[1] for line in
                                       r.dmesg().splitlines() if 'session started' in line][-1])
        print('%6s  %12s  %12s  %10s  %12s  %10s  %s' % (
            'time', 'host target', 'balloon', 'MemFree', 'hypercalls', 'locked', 'limited by'))
        t0 = time.monotonic()
        step = 0
        while True:
            now = time.monotonic() - t0
            while step < len(SCHEDULE) and now >= SCHEDULE[step][0]:
                r.host.set_target(SCHEDULE[step][1] * MIB)
                print('        -- host sets the target to %d MiB --' % SCHEDULE[step][1])
                step += 1
            if now > END:
                break
            st = r.stats()
            mem = r.meminfo()
            hs = r.host.summary()
            print('%5.1fs  %8d MiB  %8.1f MiB  %6d MiB  %12d  %6.1f MiB  %s' % (
                now, st.get('target', 0) // MIB, st.get('current', 0) / MIB,
                mem.get('MemFree', 0) // 1024, hs['commands'], hs['locked_4k'] / MIB,
                st.get('limited by', '')), flush=True)
            time.sleep(1)
        rc, _ = r.unload()
        hs = r.host.summary()
        print('rmmod: rc %d; host holds %d pages; protocol violations: %d' % (
            rc, r.host.locked_frames(), len(hs['violations'])))
        for line in r.dmesg().splitlines():
            if 'vmmemctl:' in line:
                print('  dmesg: ' + line.split('] ', 1)[-1])
    return 0


if __name__ == '__main__':
    sys.exit(main())
