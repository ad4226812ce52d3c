#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Unit tests of the simulated host's semantics, without QEMU (a fake gdbstub
with a bytearray as guest RAM). Runs in well under a second:
    python3 tests/rig/test_vmhost_unit.py
"""

import os
import struct
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import vmhost as V  # noqa: E402

PER_KERNEL = False   # the host's own semantics, no guest

MEM_MB = 16
RAM_PAGES = MEM_MB << 8
BATCH_PFN = 100


class FakeGdb:
    """Serves m/M packets (physical addresses) from a bytearray."""

    def __init__(self, mem):
        self.mem = mem

    def apply(self, p):
        if p.startswith('M'):
            head, data = p[1:].split(':')
            a, n = (int(x, 16) for x in head.split(','))
            self.mem[a:a + n] = bytes.fromhex(data)
            return b'OK'
        if p.startswith('m'):
            a, n = (int(x, 16) for x in p[1:].split(','))
            return self.mem[a:a + n].hex().encode()
        raise AssertionError('unexpected packet %r' % p[:20])

    def transact(self, payloads, timeout=10.0, chunk=256):
        return [self.apply(p) for p in payloads]

    def cmd(self, p, timeout=10.0):
        return self.transact([p])[0]


def make_host(**cfg):
    cfg.setdefault('adversarial', False)   # the plain host unless a test asks
    cfg.setdefault('seed', 1234)
    h = V.VmHost(V.HostConfig(**cfg), mem_mb=MEM_MB)
    h.gdb = FakeGdb(bytearray(MEM_MB << 20))
    h.phys_mode = True
    h.regnum = {'rax': 0, 'rbx': 1, 'rcx': 2, 'rdx': 3, 'rsi': 4, 'rdi': 5, 'rip': 16}
    return h


def call(h, cmd, arg1=0, arg2=0, magic=V.MAGIC, rax_hi=0):
    """One hypercall; returns the registers after it (rax, rbx, rcx, rdx, rsi, rip)."""
    regs = {'rax': (rax_hi << 32) | magic, 'rbx': arg1, 'rcx': cmd, 'rdx': V.BALLOON_PORT,
            'rsi': arg2, 'rdi': 0, 'rip': 0x1000}
    with h._lock:
        packets = h._hypercall(regs)
    out = dict(regs)
    for p in packets:
        if p.startswith('P'):
            num, val = p[1:].split('=')
            name = {v: k for k, v in h.regnum.items()}[int(num, 16)]
            out[name] = int.from_bytes(bytes.fromhex(val), 'little')
        else:
            assert h.gdb.apply(p) == b'OK'
    return out


def start(h, offered=0x3e):
    return call(h, V.START, offered)


def put_batch(h, entries):
    h.gdb.mem[BATCH_PFN << 12:(BATCH_PFN << 12) + 8 * len(entries)] = struct.pack('<%dQ' % len(entries), *entries)


def get_batch(h, n):
    return struct.unpack('<%dQ' % n, bytes(h.gdb.mem[BATCH_PFN << 12:(BATCH_PFN << 12) + 8 * n]))


def kinds(h):
    return [v.split(': ')[1] for v in h.violations]


class Start(unittest.TestCase):
    def test_grants_subset_and_caps_in_rcx(self):
        h = make_host(caps=0x2e)
        r = start(h, 0x3e)
        self.assertEqual(r['rax'], V.SUCCESS_WITH_CAPABILITIES)
        self.assertEqual(r['rcx'], 0x2e)
        self.assertEqual(h.granted, 0x2e)

    def test_old_host_plain_success(self):
        h = make_host(old_host=True)
        r = start(h, 0x3e)
        self.assertEqual(r['rax'], 0)
        self.assertEqual(h.granted, V.CAP_BASIC)

    def test_start_drops_the_balloon(self):
        h = make_host()
        start(h)
        call(h, V.LOCK, 500)
        self.assertEqual(h.locked_frames(), 1)
        start(h, 0)
        self.assertEqual(h.locked_frames(), 0)
        self.assertEqual(h.violations, [])

    def test_clobbers(self):
        h = make_host()
        r = start(h)
        self.assertEqual(r['rip'], 0x1001)
        self.assertNotEqual(r['rdx'], V.BALLOON_PORT)
        r = call(h, V.GUEST_ID, 1)
        self.assertNotEqual(r['rcx'], V.GUEST_ID)


class Session(unittest.TestCase):
    def test_before_first_start_is_a_note(self):
        h = make_host()
        r = call(h, V.GET_TARGET, RAM_PAGES)
        self.assertEqual(r['rax'], V.ERROR_RESET)
        self.assertEqual(h.violations, [])
        self.assertEqual(len(h.notes), 1)

    def test_before_start_when_prearmed_is_a_violation(self):
        h = make_host()
        h.prearmed = True
        call(h, V.GET_TARGET, RAM_PAGES)
        self.assertEqual(kinds(h), ['no-session'])

    def test_reset_forgets_and_requires_start(self):
        h = make_host(reset_at=[3], target=7)
        start(h)
        call(h, V.LOCK, 500)
        r = call(h, V.GET_TARGET, RAM_PAGES)          # command 3: RESET
        self.assertEqual(r['rax'], V.ERROR_RESET)
        self.assertEqual(h.locked_frames(), 0)
        self.assertEqual(h.resets_injected, 1)
        call(h, V.UNLOCK, 500)                        # no session
        self.assertEqual(kinds(h), ['no-session'])
        start(h)
        r = call(h, V.UNLOCK, 500)                    # popped page unlocked
        self.assertEqual(r['rax'], V.ERROR_PPN_UNLOCKED)
        self.assertEqual(kinds(h), ['no-session', 'unlock-not-locked'])


class Single(unittest.TestCase):
    def setUp(self):
        self.h = make_host(target=42)
        start(self.h)

    def test_lock_unlock_result_is_target(self):
        r = call(self.h, V.LOCK, 500)
        self.assertEqual((r['rax'], r['rbx']), (0, 42))
        r = call(self.h, V.UNLOCK, 500)
        self.assertEqual((r['rax'], r['rbx']), (0, 42))
        self.assertEqual(self.h.violations, [])

    def test_double_lock_and_double_unlock(self):
        call(self.h, V.LOCK, 500)
        r = call(self.h, V.LOCK, 500)
        self.assertEqual(r['rax'], V.ERROR_PPN_LOCKED)
        self.assertEqual(r['rbx'], V.GARBAGE)
        call(self.h, V.UNLOCK, 500)
        r = call(self.h, V.UNLOCK, 500)
        self.assertEqual(r['rax'], V.ERROR_PPN_UNLOCKED)
        self.assertEqual(kinds(self.h), ['double-lock', 'unlock-not-locked'])

    def test_pfn_checks(self):
        r = call(self.h, V.LOCK, RAM_PAGES + 5)
        self.assertEqual(r['rax'], V.ERROR_PPN_INVALID)
        r = call(self.h, V.LOCK, 1 << 32 | 500)
        self.assertEqual(r['rax'], V.ERROR_PPN_INVALID)
        self.assertEqual(kinds(self.h), ['pfn-not-in-ram', 'pfn-not-32bit'])

    def test_touch_detected_on_unlock(self):
        call(self.h, V.LOCK, 500)
        self.h.gdb.mem[(500 << 12) + 4090] ^= 0xFF   # the guest writes the tail
        call(self.h, V.UNLOCK, 500)
        self.assertEqual(kinds(self.h), ['ballooned-page-touched'])

    def test_touch_detected_at_release(self):
        call(self.h, V.LOCK, 500)
        self.h.gdb.mem[500 << 12] ^= 1
        start(self.h, 0)
        self.assertEqual(kinds(self.h), ['ballooned-page-touched'])

    def test_capability_needed(self):
        h = make_host()
        start(h, 0x4)               # batched only, no basic
        r = call(h, V.LOCK, 500)
        self.assertEqual(r['rax'], V.ERROR_CMD_INVALID)
        self.assertEqual(kinds(h), ['capability-not-granted'])

    def test_refuse_rule(self):
        h = make_host(refuse=(7, V.ERROR_PPN_PINNED))
        start(h)
        self.assertEqual(call(h, V.LOCK, 700)['rax'], V.ERROR_PPN_PINNED)
        self.assertEqual(call(h, V.LOCK, 701)['rax'], 0)
        self.assertEqual(h.violations, [])


class Batched(unittest.TestCase):
    def setUp(self):
        self.h = make_host(target=99)
        start(self.h)

    def test_statuses_written_back(self):
        put_batch(self.h, [600 << 12, 601 << 12, (RAM_PAGES + 1) << 12])
        r = call(self.h, V.BATCHED_LOCK, BATCH_PFN, 3)
        self.assertEqual((r['rax'], r['rbx']), (0, 99))
        st = [e & 0x1F for e in get_batch(self.h, 3)]
        self.assertEqual(st, [0, 0, V.ERROR_PPN_INVALID])
        self.assertEqual(self.h.locked_frames(), 2)
        put_batch(self.h, [600 << 12, 600 << 12 | V.ERROR_PPN_LOCKED])  # stale status bits
        call(self.h, V.BATCHED_UNLOCK, BATCH_PFN, 2)
        st = [e & 0x1F for e in get_batch(self.h, 2)]
        self.assertEqual(st, [0, V.ERROR_PPN_UNLOCKED])
        self.assertIn('duplicate-entry', kinds(self.h))

    def test_reserved_bits_and_counts(self):
        put_batch(self.h, [600 << 12 | 0x40])
        call(self.h, V.BATCHED_LOCK, BATCH_PFN, 1)
        r = call(self.h, V.BATCHED_LOCK, BATCH_PFN, 513)
        self.assertEqual(r['rax'], 0xFFFFFFFF)      # zero-extended all ones
        call(self.h, V.BATCHED_LOCK, BATCH_PFN, 0)
        self.assertEqual(kinds(self.h), ['reserved-bits', 'bad-batch-count', 'bad-batch-count'])

    def test_2m(self):
        put_batch(self.h, [1024 << 12])
        call(self.h, V.BATCHED_2M_LOCK, BATCH_PFN, 1)
        self.assertEqual((self.h.locked_frames(), len(self.h.locked2m)), (512, 1))
        r = call(self.h, V.LOCK, 1030)              # inside the 2M page
        self.assertEqual(r['rax'], V.ERROR_PPN_LOCKED)
        put_batch(self.h, [1100 << 12])              # unaligned
        call(self.h, V.BATCHED_2M_LOCK, BATCH_PFN, 1)
        self.assertEqual(get_batch(self.h, 1)[0] & 0x1F, V.ERROR_PPN_INVALID)
        put_batch(self.h, [1024 << 12])
        call(self.h, V.BATCHED_2M_UNLOCK, BATCH_PFN, 1)
        self.assertEqual(self.h.locked_frames(), 0)
        self.assertEqual(kinds(self.h), ['double-lock', 'unaligned-2m'])

    def test_2m_needs_both_caps(self):
        h = make_host(caps=0x0a)                    # basic + 2M, no batched
        start(h)
        put_batch(h, [1024 << 12])
        r = call(h, V.BATCHED_2M_LOCK, BATCH_PFN, 1)
        self.assertEqual(r['rax'], V.ERROR_CMD_INVALID)
        self.assertEqual(kinds(h), ['capability-not-granted'])

    def test_2m_touch(self):
        put_batch(self.h, [1024 << 12])
        call(self.h, V.BATCHED_2M_LOCK, BATCH_PFN, 1)
        self.h.gdb.mem[(1535 << 12) + 10] ^= 1      # last frame's head
        call(self.h, V.BATCHED_2M_UNLOCK, BATCH_PFN, 1)
        self.assertEqual(kinds(self.h), ['ballooned-page-touched'])


class Faults(unittest.TestCase):
    def test_windows_and_inject(self):
        h = make_host(busy_windows=[(2, 2)], failure_windows=[(3, 3)])
        start(h)
        self.assertEqual(call(h, V.GET_TARGET, 1)['rax'], V.ERROR_BUSY)
        r = call(h, V.GET_TARGET, 1)
        self.assertEqual(r['rax'], 0xFFFFFFFF)
        self.assertEqual(r['rbx'], 1)                # nobody answered: rbx untouched
        h.inject(V.ERROR_PPN_NOTNEEDED, 2)
        self.assertEqual(call(h, V.LOCK, 500)['rax'], V.ERROR_PPN_NOTNEEDED)
        self.assertEqual(call(h, V.LOCK, 500)['rax'], V.ERROR_PPN_NOTNEEDED)
        self.assertEqual(call(h, V.LOCK, 500)['rax'], 0)
        self.assertEqual(h.counts['GET_TARGET'], {'count': 2, 'failed': 2})

    def test_misc_checks(self):
        h = make_host()
        start(h, 0x1e)                               # no 64-bit target
        call(h, V.GET_TARGET, 1 << 33)
        self.assertEqual(call(h, V.VMCI_DOORBELL_SET, 1, 2)['rax'], V.ERROR_CMD_INVALID)
        self.assertEqual(call(h, V.CMD5)['rax'], V.ERROR_CMD_INVALID)
        self.assertEqual(call(h, 77)['rax'], V.ERROR_CMD_INVALID)
        self.assertEqual(call(h, V.GET_TARGET, 1, magic=0x1234)['rax'], 0xFFFFFFFF)
        self.assertEqual(kinds(h), ['target-arg-not-32bit', 'doorbell-not-granted', 'invalid-command',
                                    'invalid-command', 'bad-magic'])

    def test_target_and_schedule(self):
        h = make_host(target=5, target_schedule=[(0, 11)])
        start(h)
        self.assertEqual(call(h, V.GET_TARGET, RAM_PAGES)['rbx'], 11)
        h.set_target(1 << 40)
        self.assertEqual(call(h, V.GET_TARGET, RAM_PAGES)['rbx'], 1 << 40)
        self.assertEqual(h.guest_ram_pages, RAM_PAGES)

    def test_summary_is_json(self):
        import json
        h = make_host()
        start(h)
        call(h, V.LOCK, 500)
        json.dumps(h.summary())


class Adversarial(unittest.TestCase):
    """Random values wherever the protocol leaves a register undefined;
    random honest refusals; the host's bookkeeping stays exact."""

    def host(self, **cfg):
        cfg.setdefault('adversarial', True)
        return make_host(**cfg)

    def test_default_on_and_env(self):
        old = os.environ.pop('RIG_ADVERSARIAL', None)
        try:
            self.assertTrue(V.HostConfig().adversarial)
            os.environ['RIG_ADVERSARIAL'] = '0'
            self.assertFalse(V.HostConfig().adversarial)
        finally:
            os.environ.pop('RIG_ADVERSARIAL', None)
            if old is not None:
                os.environ['RIG_ADVERSARIAL'] = old

    def test_seed_from_env_and_in_summary(self):
        old = os.environ.get('RIG_SEED')
        os.environ['RIG_SEED'] = '777'
        try:
            h = V.VmHost(V.HostConfig(), mem_mb=MEM_MB)
            self.assertEqual(h.seed, 777)
            self.assertEqual(h.summary()['seed'], 777)
            h = V.VmHost(V.HostConfig(seed=5), mem_mb=MEM_MB)   # the config wins
            self.assertEqual(h.seed, 5)
        finally:
            if old is None:
                os.environ.pop('RIG_SEED', None)
            else:
                os.environ['RIG_SEED'] = old

    def test_reproducible(self):
        def run(seed):
            h = self.host(seed=seed, refuse_rate=0.3, target=10)
            out = [start(h)]
            for p in range(500, 540):
                out.append(call(h, V.LOCK, p))
            h.set_busy(60)
            out.append(call(h, V.GET_TARGET, RAM_PAGES))
            return [(r['rax'], r['rbx'], r['rcx'], r['rdx'], r['rsi']) for r in out], sorted(h.locked4k)
        self.assertEqual(run(42), run(42))
        self.assertNotEqual(run(42), run(43))

    def test_start_caps_low_half_only(self):
        h = self.host(caps=0x2e)
        highs = set()
        for _ in range(8):
            r = start(h, 0x3e)
            self.assertEqual(r['rax'], V.SUCCESS_WITH_CAPABILITIES)   # zero-extended status
            self.assertEqual(r['rcx'] & 0xFFFFFFFF, 0x2e)
            highs.add(r['rcx'] >> 32)
        self.assertGreater(len(highs), 1, 'upper half of rcx not random')

    def test_rax_upper_half_always_zero(self):
        h = self.host(busy_windows=[(3, 4)], failure_windows=[(5, 5)])
        for r in (start(h), call(h, V.GUEST_ID, 1), call(h, V.GET_TARGET, 1, rax_hi=0xdead),
                  call(h, V.LOCK, 500), call(h, V.LOCK, 501), call(h, V.LOCK, 502),
                  call(h, V.GET_TARGET, 1, magic=0x1234, rax_hi=0xffff)):
            self.assertEqual(r['rax'] >> 32, 0)

    def test_target_upper_half_without_64bit_cap(self):
        h = self.host(target=1234)
        start(h, 0x1e)                       # no 64-bit target
        highs = set()
        for _ in range(8):
            r = call(h, V.GET_TARGET, RAM_PAGES)
            self.assertEqual(r['rbx'] & 0xFFFFFFFF, 1234)
            highs.add(r['rbx'] >> 32)
        self.assertGreater(len(highs), 1)
        r = call(h, V.LOCK, 500)
        self.assertEqual((r['rax'], r['rbx'] & 0xFFFFFFFF), (0, 1234))
        h2 = self.host(target=1234)
        start(h2, 0x3e)                      # 64-bit target granted: exact
        self.assertEqual(call(h2, V.GET_TARGET, RAM_PAGES)['rbx'], 1234)
        self.assertEqual(call(h2, V.LOCK, 500)['rbx'], 1234)

    def test_random_registers_on_failure_and_undefined(self):
        h = self.host(target=55)
        start(h)
        vals = set()
        for _ in range(6):
            r = call(h, V.GUEST_ID, 1)       # rbx undefined on success
            vals.add((r['rbx'], r['rcx'], r['rdx'], r['rsi']))
        self.assertEqual(len(vals), 6)
        h.inject(V.ERROR_BUSY, 20)
        rbx = {call(h, V.GET_TARGET, RAM_PAGES)['rbx'] for _ in range(20)}
        self.assertGreater(len(rbx), 10)
        h.set_failing(60)
        r = call(h, V.LOCK, 500, rax_hi=0)
        self.assertEqual(r['rax'], 0xFFFFFFFF)
        self.assertEqual(h.locked_frames(), 0)
        self.assertEqual(h.violations, [])

    def test_failed_batch_gets_random_entry_statuses(self):
        h = self.host()
        start(h)
        entries = [(600 + i) << 12 for i in range(64)]
        put_batch(h, entries)
        h.inject(V.ERROR_BUSY)
        r = call(h, V.BATCHED_LOCK, BATCH_PFN, 64)
        self.assertEqual(r['rax'], V.ERROR_BUSY)
        back = get_batch(h, 64)
        self.assertEqual([e >> 12 for e in back], [e >> 12 for e in entries])   # PFNs kept
        self.assertEqual([e & 0xFE0 for e in back], [0] * 64)                 # reserved kept
        self.assertGreater(len({e & 0x1F for e in back}), 5)
        self.assertEqual(h.locked_frames(), 0)

    def test_random_refusals_honest_and_exact(self):
        h = self.host(refuse_rate=0.5)
        start(h)
        entries = [(600 + i) << 12 for i in range(256)]
        put_batch(h, entries)
        call(h, V.BATCHED_LOCK, BATCH_PFN, 256)
        st = [e & 0x1F for e in get_batch(h, 256)]
        ok = {600 + i for i, s in enumerate(st) if s == 0}
        self.assertEqual(set(h.locked4k), ok)                 # a refused entry is not locked
        self.assertTrue(50 < len(ok) < 206)
        refused = {s for s in st if s}
        self.assertNotIn(V.ERROR_PPN_LOCKED, refused)          # never a lie about holding it
        self.assertNotIn(V.ERROR_RESET, refused)
        self.assertTrue(refused <= {c & 0x1F for c in V.LOCK_REFUSALS}, refused)
        self.assertGreaterEqual(len(refused), 5)
        # unlock them all: refused unlocks stay locked with the host
        locked = sorted(ok)
        put_batch(h, [p << 12 for p in locked])
        call(h, V.BATCHED_UNLOCK, BATCH_PFN, len(locked))
        st = [e & 0x1F for e in get_batch(h, len(locked))]
        kept = {p for p, s in zip(locked, st) if s}
        self.assertEqual(set(h.locked4k), kept)
        self.assertNotIn(V.ERROR_PPN_UNLOCKED, set(st))
        self.assertEqual(h.violations, [])
        self.assertEqual(h.summary()['random_refusals'], 256 - len(ok) + len(kept))

    def test_random_refusals_single_and_2m(self):
        h = self.host(refuse_rate=1.0, refuse_reset=True)
        start(h)
        seen = set()
        for p in range(500, 600):
            r = call(h, V.LOCK, p)
            self.assertNotEqual(r['rax'], 0)
            seen.add(r['rax'])
        self.assertEqual(h.locked_frames(), 0)
        self.assertIn(0xFFFFFFFF, seen)                       # FAILURE in eax: all ones
        self.assertNotIn(V.ERROR_RESET, seen)                 # a single call's RESET ends the session
        self.assertEqual(h.session, True)                     # a refusal is not a reset
        h.config.refuse_rate = 0.0
        put_batch(h, [1024 << 12, 2048 << 12])
        call(h, V.BATCHED_2M_LOCK, BATCH_PFN, 2)
        self.assertEqual(len(h.locked2m), 2)
        h.config.refuse_rate = 1.0
        call(h, V.BATCHED_2M_UNLOCK, BATCH_PFN, 2)
        self.assertEqual(len(h.locked2m), 2)                  # refused: the host keeps them
        self.assertTrue(all(e & 0x1F for e in get_batch(h, 2)))
        h.config.refuse_rate = 0.0
        put_batch(h, [1024 << 12, 2048 << 12])
        call(h, V.BATCHED_2M_UNLOCK, BATCH_PFN, 2)
        self.assertEqual(h.locked_frames(), 0)
        self.assertEqual(h.violations, [])


class HostKnows(unittest.TestCase):
    """PPN_LOCKED for a page the host takes, PPN_UNLOCKED for one it forgot,
    and a status injected for the next command of a kind."""

    def test_lock_answers_locked_takes_the_page(self):
        h = make_host(lock_answers_locked=lambda pfn, cmd: pfn % 2 == 0)
        start(h)
        self.assertEqual(call(h, V.LOCK, 500)['rax'], V.ERROR_PPN_LOCKED)
        self.assertEqual(call(h, V.LOCK, 501)['rax'], 0)
        put_batch(h, [600 << 12, 601 << 12])
        call(h, V.BATCHED_LOCK, BATCH_PFN, 2)
        self.assertEqual([e & 0x1F for e in get_batch(h, 2)], [V.ERROR_PPN_LOCKED, 0])
        self.assertEqual((h.locked_frames(), h.answered_locked), (4, 2))
        self.assertEqual(call(h, V.UNLOCK, 500)['rax'], 0)
        self.assertEqual(h.violations, [])

    def test_forgotten_page_answers_unlocked(self):
        h = make_host()
        start(h)
        for pfn in (500, 501, 502):
            call(h, V.LOCK, pfn)
        self.assertEqual(h.forget(2), [500, 501])
        self.assertEqual(h.locked_frames(), 1)
        self.assertEqual(call(h, V.UNLOCK, 500)['rax'], V.ERROR_PPN_UNLOCKED)
        put_batch(h, [501 << 12, 502 << 12])
        call(h, V.BATCHED_UNLOCK, BATCH_PFN, 2)
        self.assertEqual([e & 0x1F for e in get_batch(h, 2)], [V.ERROR_PPN_UNLOCKED, 0])
        self.assertEqual((h.locked_frames(), h.answered_unlocked), (0, 2))
        self.assertEqual(h.violations, [])
        self.assertEqual(call(h, V.UNLOCK, 500)['rax'], V.ERROR_PPN_UNLOCKED)
        self.assertEqual(kinds(h), ['unlock-not-locked'])   # once: now a real violation

    def test_inject_on_a_command(self):
        h = make_host()
        start(h)
        call(h, V.LOCK, 500)
        h.inject_on(('UNLOCK', 'BATCHED_UNLOCK'), V.ERROR_RESET)
        self.assertEqual(call(h, V.GET_TARGET, RAM_PAGES)['rax'], 0)
        self.assertEqual(call(h, V.UNLOCK, 500)['rax'], V.ERROR_RESET)
        self.assertEqual((h.locked_frames(), h.session), (0, False))


class Layout(unittest.TestCase):
    def test_ram_ranges(self):
        self.assertEqual(V.qemu_pc_ram_ranges(512 << 20), [(0, 131072)])
        self.assertEqual(V.qemu_pc_ram_ranges(4 << 30), [(0, 0xC0000), (0x100000, 0x140000)])


if __name__ == '__main__':
    unittest.main(verbosity=1)
