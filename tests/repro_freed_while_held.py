#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Reproduce: the driver frees ballooned pages while the host still holds them,
when the START that should have dropped the balloon does not succeed.

    python3 tests/repro_freed_while_held.py [entry-reset|switch] [--kernel 6.1]

entry-reset: one entry of a BATCHED_LOCK answers RESET (the call succeeds), and
    the host is BUSY for the next few seconds. The driver pops its whole balloon
    (vmm_start_session: vmm_pop() before vmm_hv_start()), START answers BUSY: the
    guest now owns pages the host still holds.
switch: `batching` is switched at runtime while the host is BUSY: START(0) fails,
    the driver pops anyway (vmm_step, the renegotiate branch).
Then memhog makes the guest use its free memory; when the host answers again, the
next START makes it release the pages it held and verify them: every page the
guest wrote is a `ballooned-page-touched` violation. Exit status 1 = reproduced.
Not collected by run_tests.py (it fails on the current driver; issue 13 part 2).
"""

import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, 'rig'))
sys.path.insert(0, os.path.join(HERE, 'scenarios'))
import kernels  # noqa: E402
from common import PARAMS, boot, load, wait_size  # noqa: E402
import vmhost as V  # noqa: E402


def main():
    mode = 'entry-reset'
    args = sys.argv[1:]
    if '--kernel' in args:
        i = args.index('--kernel')
        os.environ['VMMEMCTL_KERNEL'] = kernels.select(args[i + 1])[0].id
        del args[i:i + 2]
    if args:
        mode = args[0]
    with boot('repro_' + mode.replace('-', '_'), caps=V.CAP_BASIC | V.CAP_BATCHED | V.CAP_64BIT_TARGET,
              adversarial=True) as r:
        h = r.host
        load(r)
        h.set_target(8192)
        wait_size(r, 8192)
        held0 = h.locked_frames()
        if mode == 'entry-reset':
            fired = []

            def refuse(pfn, cmd):
                if not fired and cmd == 'BATCHED_LOCK':
                    fired.append(pfn)
                    h.config.busy_until = time.monotonic() + 6   # (called with the host's lock held)
                    return V.ERROR_RESET
                return None
            h.config.refuse = refuse
            h.set_target(8192 + 1024)
            r.wait_for(lambda: fired, timeout=30, what='the RESET entry')
            r.log('entry RESET at pfn %#x, host BUSY for 6 s' % fired[0])
        else:
            h.set_busy(6)
            rc, out = r.sh('echo n > %s/batching' % PARAMS)
            assert rc == 0, out
            r.log('batching switched while the host is BUSY')
        time.sleep(2.5)
        st = r.stats()
        r.log('guest: current %d, is resetting %s; host still holds %d frames (was %d)' % (
            st['current'], st['is resetting'], h.locked_frames(), held0))
        r.sh('memhog 200 0', timeout=120)
        r.wait_for(lambda: h.summary()['starts'] >= 2 and st['is resetting'] != 'y' or
                   r.stats()['is resetting'] == 'n', timeout=60, what='session again')
        time.sleep(2)
        touched = [v for v in h.summary()['violations'] if 'ballooned-page-touched' in v]
        r.log('%d ballooned-page-touched violations: %s' % (len(touched), touched[:3]))
        print('%s: %s' % (mode, 'REPRODUCED: %d pages the host held were written by the guest; first: %s'
                          % (len(touched), touched[:2]) if touched else 'not reproduced'))
        return 1 if touched else 0


if __name__ == '__main__':
    sys.exit(main())
