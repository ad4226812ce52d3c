#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Simulated VMware balloon host, answering the backdoor through QEMU's gdbstub.

A software breakpoint sits on every `in (%dx),%eax` of the driver under test.
At each stop the host reads the registers, computes the real host's answer
(see shared/PROTOCOL.md), writes rax/rbx/rcx (and clobbers rdx/rsi), moves rip
past the 1-byte `inl` and continues, all in one burst.

Only the Python standard library is used.
"""

import collections
import dataclasses
import json
import os
import random
import re
import select
import socket
import struct
import subprocess
import threading
import time
import traceback

MAGIC = 0x456C6D6F
BALLOON_PORT = 0x5670
PHYS_DIRECT_MAP = 0xFFFF888000000000  # with nokaslr

# commands
START, GET_TARGET, LOCK, UNLOCK, GUEST_ID, CMD5 = 0, 1, 2, 3, 4, 5
BATCHED_LOCK, BATCHED_UNLOCK, BATCHED_2M_LOCK, BATCHED_2M_UNLOCK = 6, 7, 8, 9
VMCI_DOORBELL_SET = 10
CMD_NAMES = {
    START: 'START', GET_TARGET: 'GET_TARGET', LOCK: 'LOCK', UNLOCK: 'UNLOCK',
    GUEST_ID: 'GUEST_ID', CMD5: 'CMD5', BATCHED_LOCK: 'BATCHED_LOCK',
    BATCHED_UNLOCK: 'BATCHED_UNLOCK', BATCHED_2M_LOCK: 'BATCHED_2M_LOCK',
    BATCHED_2M_UNLOCK: 'BATCHED_2M_UNLOCK', VMCI_DOORBELL_SET: 'VMCI_DOORBELL_SET',
}

# status codes (eax)
SUCCESS = 0
FAILURE = 0xFFFFFFFF
ERROR_CMD_INVALID = 1
ERROR_PPN_INVALID = 2
ERROR_PPN_LOCKED = 3
ERROR_PPN_UNLOCKED = 4
ERROR_PPN_PINNED = 5
ERROR_PPN_NOTNEEDED = 6
ERROR_RESET = 7
ERROR_BUSY = 8
SUCCESS_WITH_CAPABILITIES = 0x03000000
STATUS_NAMES = {
    SUCCESS: 'SUCCESS', FAILURE: 'FAILURE', ERROR_CMD_INVALID: 'CMD_INVALID',
    ERROR_PPN_INVALID: 'PPN_INVALID', ERROR_PPN_LOCKED: 'PPN_LOCKED',
    ERROR_PPN_UNLOCKED: 'PPN_UNLOCKED', ERROR_PPN_PINNED: 'PPN_PINNED',
    ERROR_PPN_NOTNEEDED: 'PPN_NOTNEEDED', ERROR_RESET: 'RESET', ERROR_BUSY: 'BUSY',
    SUCCESS_WITH_CAPABILITIES: 'SUCCESS_WITH_CAPS',
}

# capabilities
CAP_BASIC = 1 << 1
CAP_BATCHED = 1 << 2
CAP_2M = 1 << 3
CAP_DOORBELL = 1 << 4
CAP_64BIT_TARGET = 1 << 5
CAPS_DEFAULT = CAP_BASIC | CAP_BATCHED | CAP_2M | CAP_64BIT_TARGET  # 0x2e

LOCK_CMDS = (LOCK, BATCHED_LOCK, BATCHED_2M_LOCK)
BATCH_CMDS = (BATCHED_LOCK, BATCHED_UNLOCK, BATCHED_2M_LOCK, BATCHED_2M_UNLOCK)
# Commands whose success answer carries the target in rbx.
TARGET_CMDS = (GET_TARGET, LOCK, UNLOCK) + BATCH_CMDS
# Random refusals (refuse_rate) are honest: a LOCK refusal never claims the host
# holds the page (no PPN_LOCKED), an UNLOCK refusal never claims it does not
# (no PPN_UNLOCKED); the host keeps exactly what it says it keeps. FAILURE is
# all ones (in a batch entry: its low 5 bits, 0x1f). ERROR_RESET is added by
# refuse_reset (what a per-entry RESET means is the driver's call; the host
# keeps its state and only refuses that entry).
LOCK_REFUSALS = (1, 2, 4, 5, 6, 8, 0xFFFFFFFF)
UNLOCK_REFUSALS = (1, 2, 3, 5, 6, 8, 0xFFFFFFFF)
MAX_BATCH = 512
PAGES_2M = 512
U64 = (1 << 64) - 1
GARBAGE = 0xBAD0BAD0BAD0BAD0   # result register after a failed command
CLOBBER = 0xC10BBE4EDC10BBE4   # rdx/rsi (and rcx) after every command


def name_of(cmd):
    return CMD_NAMES.get(cmd, 'CMD%d' % cmd)


def status_name(s):
    return STATUS_NAMES.get(s, '%#x' % s)


def is_success(status):
    return status in (SUCCESS, SUCCESS_WITH_CAPABILITIES)


@dataclasses.dataclass
class HostConfig:
    """What the simulated host grants and which faults it injects.

    Command numbers are 1-based over every command that reached the host.
    """
    caps: int = CAPS_DEFAULT          # granted = offered & caps (doorbell only if set here)
    old_host: bool = False            # START answers plain SUCCESS (0) = basic only
    target: int = 0                   # initial target (4 KiB pages)
    target_schedule: list = dataclasses.field(default_factory=list)
    #   [(seconds after the host started, target), ...]
    reset_at: list = dataclasses.field(default_factory=list)       # cmd numbers -> ERROR_RESET
    busy_windows: list = dataclasses.field(default_factory=list)   # [(first, last)] -> ERROR_BUSY
    failure_windows: list = dataclasses.field(default_factory=list)  # [(first, last)] -> FAILURE
    busy_until: float = 0.0           # time.monotonic() deadline: everything answers BUSY before it
    failure_until: float = 0.0        # same, answered FAILURE (all ones), as if nobody listened
    refuse: object = None             # (modulus, status) or callable(pfn, cmd) -> status|None
    never_answer: bool = False        # no breakpoints: every inl reads all ones
    touch_check: bool = True          # pattern ballooned pages, verify on unlock
    touch_bytes: int = 64             # bytes at the head and tail of a page
    check_on_release: bool = True     # verify patterns too when START/RESET drops the balloon
    release_check_max: int = 32768    # at most this many pages verified at one release
    garbage_on_failure: bool = True   # rbx = garbage when status is not success
    clobber: bool = True              # rdx/rsi (and rcx except START) get junk
    adversarial: bool = dataclasses.field(
        default_factory=lambda: os.environ.get('RIG_ADVERSARIAL', '1') != '0')
    #   every register the protocol leaves undefined for the answer gets a random
    #   value (seeded): rbx after a failure and after START/GUEST_ID/DOORBELL, the
    #   upper half of rbx (the target) without the 64-bit target capability, rcx
    #   but the granted capabilities (its upper half too), rdx, rsi; a failed batch
    #   call gets random per-entry statuses. rax is the status zero-extended, as
    #   after a real `inl`. RIG_ADVERSARIAL=0 turns it off for a whole run.
    seed: object = None               # the host's RNG seed; None: $RIG_SEED, else random
    refuse_rate: float = 0.0          # each LOCK/UNLOCK of a page (single or batch entry)
    #                                   refused at this rate, the status drawn from refuse_codes
    refuse_codes: object = None       # None: LOCK_REFUSALS for locks, UNLOCK_REFUSALS for unlocks;
    #                                   or a sequence used for both
    refuse_reset: bool = False        # ERROR_RESET among the random per-entry refusals
    reg_write: str = 'auto'           # 'P' (one register per packet), 'G' (whole block),
    #                                   'auto': P if the stub accepts it, else G
    lock_answers_locked: object = None  # callable(pfn, cmd) -> True: the host takes that 4K page
    #                                   but answers PPN_LOCKED (it holds it, as if already locked)
    clock_paddr: int = 0              # guest-physical address of a u64 guest clock (jiffies_64)
    #                                   read at every GET_TARGET: host.clock_samples [(n, value)]
    strict_first_start: bool = False  # commands before the very first START are violations
    #                                   even when the driver was armed only after its init
    #                                   (default: notes then; pre-armed: always violations)

    def in_windows(self, n, windows):
        return any(a <= n <= b for a, b in windows)


class GdbError(Exception):
    pass


class GdbRemote:
    """Minimal GDB remote serial protocol client for QEMU's gdbstub.

    Acks: QEMU 7.2 has no no-ack mode, but it never waits for our acks (it only
    keeps the last packet for a resend on '-', and a new '$' drops it), so we
    never send '+': a stray ack while the guest runs would stop it.
    """

    def __init__(self, host, port, timeout=30.0):
        deadline = time.monotonic() + timeout
        last = None
        while True:
            try:
                self.sock = socket.create_connection((host, port), timeout=2.0)
                break
            except OSError as e:
                last = e
                if time.monotonic() > deadline:
                    raise GdbError('cannot connect to gdbstub %s:%d: %s' % (host, port, last))
                time.sleep(0.05)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock.settimeout(None)
        self.buf = bytearray()
        self.eof = False
        self.bytes_sent = 0

    @staticmethod
    def frame(payload):
        if isinstance(payload, str):
            payload = payload.encode()
        return b'$' + payload + b'#%02x' % (sum(payload) & 0xFF)

    def send_raw(self, data):
        self.bytes_sent += len(data)
        self.sock.sendall(data)

    def fill(self, timeout):
        r, _, _ = select.select([self.sock], [], [], timeout)
        if not r:
            return False
        data = self.sock.recv(1 << 20)
        if not data:
            self.eof = True
            raise GdbError('gdbstub connection closed')
        self.buf += data
        return True

    def pop_packet(self):
        """Return the next complete packet payload from the buffer, or None."""
        buf = self.buf
        while buf:
            c = buf[0]
            if c == 0x24:  # '$'
                h = buf.find(b'#')
                if h < 0 or len(buf) < h + 3:
                    return None
                payload = bytes(buf[1:h])
                del buf[:h + 3]
                return payload
            if c == 0x2D:  # '-': QEMU asks for a resend; should never happen
                raise GdbError('gdbstub NAKed a packet')
            # '+' acks and any noise
            j = buf.find(b'$')
            if j < 0:
                del buf[:]
            else:
                del buf[:j]
        return None

    def next_packet(self, timeout=10.0):
        deadline = time.monotonic() + timeout
        while True:
            p = self.pop_packet()
            if p is not None:
                return p
            left = deadline - time.monotonic()
            if left <= 0:
                raise GdbError('timeout waiting for a gdbstub reply')
            self.fill(left)

    def transact(self, payloads, timeout=10.0, chunk=256):
        """Send packets pipelined, return their replies in order (guest stopped)."""
        out = []
        for i in range(0, len(payloads), chunk):
            part = payloads[i:i + chunk]
            self.send_raw(b''.join(self.frame(p) for p in part))
            for _ in part:
                out.append(self.next_packet(timeout))
        return out

    def cmd(self, payload, timeout=10.0):
        return self.transact([payload], timeout)[0]

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def unescape_binary(data):
    out = bytearray()
    it = iter(data)
    for c in it:
        if c == 0x7D:
            out.append(next(it) ^ 0x20)
        else:
            out.append(c)
    return bytes(out)


def find_inl_offsets(ko_path):
    """{section: [offsets]} of every `in (%dx),%eax` (0xED) in executable sections."""
    res = subprocess.run(['objdump', '-d', '-w', ko_path], capture_output=True, text=True, check=True)
    sec = None
    found = collections.defaultdict(list)
    rx_sec = re.compile(r'^Disassembly of section (\S+):')
    rx_in = re.compile(r'^\s*([0-9a-f]+):\s+ed\s+in\s+\(%dx\),%eax')
    for line in res.stdout.splitlines():
        m = rx_sec.match(line)
        if m:
            sec = m.group(1)
            continue
        m = rx_in.match(line)
        if m and sec is not None:
            found[sec].append(int(m.group(1), 16))
    return dict(found)


SHF_WRITE, SHF_ALLOC, SHF_EXECINSTR = 0x1, 0x2, 0x4


def elf_sections(ko_path):
    """[(name, flags, addralign, size, file_offset)] of an ELF64 relocatable."""
    with open(ko_path, 'rb') as f:
        data = f.read()
    if data[:4] != b'\x7fELF' or data[4] != 2:
        raise ValueError('%s: not ELF64' % ko_path)
    shoff, = struct.unpack_from('<Q', data, 0x28)
    shentsize, shnum, shstrndx = struct.unpack_from('<HHH', data, 0x3A)
    hdrs = [struct.unpack_from('<IIQQQQIIQQ', data, shoff + i * shentsize) for i in range(shnum)]
    stroff = hdrs[shstrndx][4]
    out = []
    for h in hdrs:
        nm = data[stroff + h[0]:data.index(b'\0', stroff + h[0])].decode()
        out.append((nm, h[2], h[8], h[5], h[4]))
    return out, data


def module_text_layout(ko_path):
    """Offsets of the executable core sections from the module's core base.

    Mirrors layout_sections() of kernel/module/main.c (6.1, x86: no ARCH_SHF_SMALL):
    the first pass places SHF_EXECINSTR|SHF_ALLOC sections, in ELF order, skipping
    .init*, each aligned to its sh_addralign.
    """
    secs, data = elf_sections(ko_path)
    size = 0
    layout = {}
    for nm, flags, align, sz, _ in secs:
        if (flags & (SHF_EXECINSTR | SHF_ALLOC)) != (SHF_EXECINSTR | SHF_ALLOC) or nm.startswith('.init'):
            continue
        a = align or 1
        size = (size + a - 1) // a * a
        layout[nm] = size
        size += sz
    return layout


def qemu_pc_ram_ranges(mem_bytes):
    """Guest-physical RAM ranges [(start_pfn, end_pfn)) of QEMU's `pc` machine."""
    lowmem = 0xE0000000
    if mem_bytes >= lowmem:
        lowmem = 0xC0000000  # gigabyte_align
    below = min(mem_bytes, lowmem)
    ranges = [(0, below >> 12)]
    if mem_bytes > below:
        ranges.append((0x100000, 0x100000 + ((mem_bytes - below) >> 12)))
    return ranges


def pattern_for(pfn, nbytes):
    x = (pfn * 0x9E3779B97F4A7C15 ^ 0xBA11005EEDF00D) & U64
    unit = struct.pack('<QQ', x, (x ^ U64) & U64)
    return (unit * (nbytes // 16 + 1))[:nbytes]


class VmHost:
    """The simulated hypervisor. Thread-safe API; one loop thread owns the socket."""

    REGS = ('rax', 'rbx', 'rcx', 'rdx', 'rsi', 'rdi', 'rip')

    def __init__(self, config=None, mem_mb=512, transcript_path=None, log=None):
        self.config = config or HostConfig()
        self.mem_bytes = mem_mb << 20
        self.ram_ranges = qemu_pc_ram_ranges(self.mem_bytes)
        self.log = log or (lambda msg: None)
        self.gdb = None
        self._lock = threading.RLock()
        self._requests = collections.deque()
        self._wake_r, self._wake_w = os.pipe()
        self._thread = None
        self._closing = False
        self.dead = None            # reason string once the loop ended
        self.loop_error = None
        self.running = False
        self._irq_sent = 0.0
        self.regnum = {}
        self.regsize = {}
        self.regoff = {}
        self.phys_mode = False
        self.use_G = False
        self._g_raw = b''
        self.bps = set()            # armed breakpoint addresses
        self.init_bp = None         # do_init_module breakpoint while pre-arming
        self.prearmed = False       # a driver instance was armed before its init ran
        self._prearm = None         # what to arm when the module reaches do_init_module
        self.prearm_result = None
        self._bp_owner = {}
        self.t0 = time.monotonic()
        self._target = self.config.target
        self._schedule = sorted(self.config.target_schedule)
        # session state
        self.session = False
        self.ever_started = False
        self.granted = 0
        self.locked4k = set()
        self.locked2m = set()
        self.max_locked = 0
        self.samples = []
        self._last_sample = -1.0
        self.guest_ram_pages = None
        # accounting
        self.ncmd = 0
        self.counts = collections.defaultdict(lambda: {'count': 0, 'failed': 0})
        self.entry_counts = collections.defaultdict(lambda: {'pages': 0, 'failed': 0})
        self.violations = []
        self.violation_kinds = collections.Counter()
        self.notes = []
        self.starts = 0
        self.resets_injected = 0
        self.stops = 0
        self.interrupts = 0
        self.passthrough = 0
        self.gdb_errors = []
        self.overheads = []       # seconds of host time per hypercall stop
        self.overheads_regs = []  # ... of which reading the registers
        self.cycle = []           # seconds from continue to the next hypercall stop
        self._t_cont = None
        self.touch_checked = 0
        self.first_cmd_time = None
        self.last_cmd_time = None
        self.history = collections.deque(maxlen=200000)   # (n, t, name, arg1, arg2, status, result)
        self._inject = collections.deque()                 # statuses for the next commands
        self._inject_on = collections.deque()              # (command names, status) for the next such
        self.forgotten = set()      # 4K frames the host dropped on its own (forget())
        self.answered_locked = 0    # LOCKs answered PPN_LOCKED with the page taken (lock_answers_locked)
        self.answered_unlocked = 0  # UNLOCKs of forgotten frames, answered PPN_UNLOCKED
        self.clock_samples = []     # (command number, guest clock) at GET_TARGET (clock_paddr)
        self.transcript = open(transcript_path, 'w', buffering=1 << 16) if transcript_path else None
        # Seeded randomness: one seed per host, in rig.log and summary.json.
        seed = self.config.seed
        if seed is None and os.environ.get('RIG_SEED'):
            seed = int(os.environ['RIG_SEED'], 0)
        if seed is None:
            seed = random.SystemRandom().getrandbits(32)
        self.seed = int(seed)
        self.rng = random.Random(self.seed)
        self.random_refusals = 0
        self.log('vmhost: seed %d (RIG_SEED=%d reproduces it), adversarial %s, refuse_rate %g' % (
            self.seed, self.seed, 'on' if self.config.adversarial else 'off', self.config.refuse_rate))
        if self.transcript:
            self.transcript.write('# seed %d adversarial %d refuse_rate %g\n' % (
                self.seed, bool(self.config.adversarial), self.config.refuse_rate))
            self.transcript.write('# idx time_s command arg1 arg2 status result [entries]\n')

    # ------------------------------------------------------------------ public API
    def connect(self, port, host='127.0.0.1', timeout=30.0):
        """Attach to a QEMU started with -S -gdb tcp:HOST:PORT and let the guest run."""
        self.gdb = GdbRemote(host, port, timeout)
        g = self.gdb
        g.cmd('qSupported:xmlRegisters=i386')
        stop = g.cmd('?')
        if not stop[:1] in (b'T', b'S'):
            raise GdbError('unexpected stop reply %r' % stop)
        self._read_target_xml()
        self.use_G = self.config.reg_write == 'G'
        if self.config.reg_write in ('auto', 'P'):
            regs = self._read_regs()
            ok = g.cmd(self._reg_packet('rax', regs['rax'])) == b'OK'
            if not ok and self.config.reg_write == 'P':
                raise GdbError('the stub refuses P register writes')
            self.use_G = not ok
        r = g.cmd('Qqemu.PhyMemMode:1')
        self.phys_mode = (r == b'OK')
        if not self.phys_mode:
            self.log('vmhost: no PhyMemMode, using the direct map (needs nokaslr)')
        self.t0 = time.monotonic()
        self._thread = threading.Thread(target=self._loop, name='vmhost', daemon=True)
        self._thread.start()

    def set_target(self, pages):
        with self._lock:
            self._target = int(pages)
            self._schedule = []

    def inject(self, status, count=1):
        """Answer the next `count` commands with `status` (ERROR_RESET also drops the balloon)."""
        with self._lock:
            self._inject.extend([status] * count)

    def inject_on(self, names, status):
        """Answer the next command whose name is in `names` with `status`
        (ERROR_RESET also drops the balloon)."""
        with self._lock:
            self._inject_on.append((frozenset(names), status))

    def forget(self, count):
        """The host drops `count` locked 4K frames on its own (lowest first) and
        answers PPN_UNLOCKED when the guest unlocks one (no violation: the
        guest could not know). Returns the frames."""
        with self._lock:
            pfns = sorted(self.locked4k)[:count]
            self.locked4k.difference_update(pfns)
            self.forgotten.update(pfns)
            self._sample()
            return pfns

    def commands(self, name=None):
        """History of commands as dicts (n, t, cmd, arg1, arg2, status, result)."""
        with self._lock:
            return [dict(zip(('n', 't', 'cmd', 'arg1', 'arg2', 'status', 'result'), h))
                    for h in self.history if name is None or h[2] == name]

    def flush(self):
        with self._lock:
            if self.transcript and not self.transcript.closed:
                self.transcript.flush()

    @property
    def target(self):
        with self._lock:
            return self._current_target()

    def set_busy(self, seconds):
        """Answer ERROR_BUSY to everything for the next `seconds`."""
        with self._lock:
            self.config.busy_until = time.monotonic() + seconds

    def set_failing(self, seconds):
        """Answer FAILURE (all ones) to everything for the next `seconds`."""
        with self._lock:
            self.config.failure_until = time.monotonic() + seconds

    def locked_frames(self):
        with self._lock:
            return len(self.locked4k) + PAGES_2M * len(self.locked2m)

    def arm(self, ko_path, sections, timeout=30.0):
        """Break on every `in (%dx),%eax` of the module (sections: name -> load address)."""
        offs = find_inl_offsets(ko_path)
        addrs = []
        for sec, lst in offs.items():
            if sec.startswith('.init'):
                continue
            if sec not in sections:
                self.log('vmhost: section %s (%d inl) not loaded, skipped' % (sec, len(lst)))
                continue
            addrs += [sections[sec] + o for o in lst]
        if not addrs:
            raise GdbError('no `in (%%dx),%%eax` found in %s (sections %s)' % (ko_path, sorted(offs)))
        if self.config.never_answer:
            self.log('vmhost: never_answer: %d breakpoints not armed' % len(addrs))
            return []
        self._request('arm', addrs, timeout)
        return addrs

    def prearm(self, ko_path, modname, do_init_module_addr, timeout=30.0):
        """Arm the module's `inl`s before its init runs.

        A one-shot breakpoint on the kernel's do_init_module(mod) finds the module's
        core base in struct module (verified against the .ko's bytes), places the
        breakpoints from the .ko's section layout, and lets init run. Call right
        before insmod; arm() afterwards checks the addresses against sysfs.
        """
        if self.config.never_answer:
            return
        offs = find_inl_offsets(ko_path)
        layout = module_text_layout(ko_path)
        secs, data = elf_sections(ko_path)
        fileoff = {nm: fo for nm, _, _, _, fo in secs}
        inls = []   # (offset from base, section, offset in section)
        for sec, lst in offs.items():
            if sec in layout:
                inls += [(layout[sec] + o, sec, o) for o in lst]
        if not inls:
            return
        # bytes around the first inl, from the file (relocations may differ a little)
        o0, sec0, so0 = inls[0]
        lo = max(0, so0 - 12)
        window = data[fileoff[sec0] + lo:fileoff[sec0] + so0 + 13]
        self._prearm = {'name': modname, 'inls': inls, 'window': window, 'window_off': o0 - (so0 - lo),
                        'layout': layout}
        self.prearm_result = None
        self._request('prearm', do_init_module_addr, timeout)

    def disarm(self, timeout=30.0):
        if self.bps:
            self._request('disarm', None, timeout)

    def final_check(self, timeout=60.0):
        """Verify the pattern of every page still ballooned (guest must not touch them)."""
        if self.config.touch_check and (self.locked4k or self.locked2m):
            self._request('verify', None, timeout)

    def call_stopped(self, fn, timeout=60.0):
        """Run fn(host) in the loop thread while the guest is stopped; return its result.

        fn may use host.read_phys(paddr, n) / host.write_phys(paddr, data).
        """
        return self._request('call', fn, timeout)

    def read_phys(self, paddr, n):
        """Guest-physical read (only from call_stopped)."""
        out = b''
        while n > 0:
            k = min(n, 2048)
            out += self._read_mem_many([(paddr, k)])[0]
            paddr += k
            n -= k
        return out

    def write_phys(self, paddr, data):
        """Guest-physical write (only from call_stopped)."""
        regs = [(paddr + o, data[o:o + 1024]) for o in range(0, len(data), 1024)]
        reps = self.gdb.transact(self._write_mem_packets(regs))
        if any(r != b'OK' for r in reps):
            raise GdbError('memory write failed: %r' % reps[:3])

    def close(self):
        self._closing = True
        try:
            os.write(self._wake_w, b'x')
        except OSError:
            pass
        if self._thread and self._thread is not threading.current_thread():
            self._thread.join(5)
        if self.gdb:
            self.gdb.close()
        if self.transcript and not self.transcript.closed:
            self.transcript.flush()
            self.transcript.close()

    def summary(self):
        with self._lock:
            def st(xs):
                if not xs:
                    return None
                s = sorted(xs)
                return {'n': len(s), 'mean_ms': round(1000 * sum(s) / len(s), 3),
                        'p50_ms': round(1000 * s[len(s) // 2], 3),
                        'p95_ms': round(1000 * s[min(len(s) - 1, int(len(s) * 0.95))], 3),
                        'max_ms': round(1000 * s[-1], 3)}
            span = None
            if self.first_cmd_time is not None:
                span = round(self.last_cmd_time - self.first_cmd_time, 3)
            return {
                'commands': self.ncmd,
                'counts': {k: dict(v) for k, v in sorted(self.counts.items())},
                'batch_entries': {k: dict(v) for k, v in sorted(self.entry_counts.items())},
                'locked_4k': len(self.locked4k) + PAGES_2M * len(self.locked2m),
                'locked_2m': len(self.locked2m),
                'max_locked': self.max_locked,
                'locked_samples': list(self.samples[-400:]),
                'target': self._current_target(),
                'starts': self.starts,
                'resets_injected': self.resets_injected,
                'session': self.session,
                'granted_caps': self.granted,
                'guest_ram_pages_reported': self.guest_ram_pages,
                'violations': list(self.violations),
                'violation_kinds': dict(self.violation_kinds),
                'notes': list(self.notes[-50:]),
                'stops': self.stops,
                'interrupts': self.interrupts,
                'passthrough': self.passthrough,
                'touch_checked': self.touch_checked,
                'gdb_errors': list(self.gdb_errors[-20:]),
                'breakpoints': len(self.bps),
                'host_overhead': st(self.overheads),
                'host_overhead_read_regs': st(self.overheads_regs),
                'hypercall_cycle': st(self.cycle),
                'command_span_s': span,
                'loop_dead': self.dead,
                'loop_error': self.loop_error,
                'phys_mode': self.phys_mode,
                'prearmed': self.prearmed,
                'register_writes': 'G' if self.use_G else 'P',
                'seed': self.seed,
                'adversarial': bool(self.config.adversarial),
                'refuse_rate': self.config.refuse_rate,
                'random_refusals': self.random_refusals,
                'answered_locked': self.answered_locked,
                'answered_unlocked': self.answered_unlocked,
                'forgotten': len(self.forgotten),
            }

    def write_summary(self, path):
        with open(path, 'w') as f:
            json.dump(self.summary(), f, indent=1, sort_keys=True)
            f.write('\n')

    # ------------------------------------------------------------------ setup
    def _read_target_xml(self):
        g = self.gdb

        def fetch(annex):
            data = b''
            off = 0
            while True:
                r = g.cmd('qXfer:features:read:%s:%x,%x' % (annex, off, 0xF00))
                if not r or r[:1] not in (b'm', b'l'):
                    raise GdbError('qXfer %s failed: %r' % (annex, r))
                chunk = unescape_binary(r[1:])
                data += chunk
                off += len(chunk)
                if r[:1] == b'l':
                    return data.decode()

        regs = []

        def walk(annex):
            xml = fetch(annex)
            for m in re.finditer(r'<xi:include\s+href="([^"]+)"\s*/>|<reg\s+([^>]*)/?>', xml):
                if m.group(1):
                    walk(m.group(1))
                else:
                    attrs = dict(re.findall(r'(\w+)="([^"]*)"', m.group(2)))
                    regs.append(attrs)
        walk('target.xml')
        n = 0
        for a in regs:
            if 'regnum' in a:
                n = int(a['regnum'])
            self.regnum[a['name']] = n
            self.regsize[a['name']] = int(a.get('bitsize', 64)) // 8
            n += 1
        off = 0
        self.regoff = {}
        for name in sorted(self.regnum, key=self.regnum.get):
            self.regoff[name] = off
            off += self.regsize[name]
        for r in self.REGS:
            if r not in self.regnum:
                raise GdbError('register %s not in target.xml' % r)
            if self.regsize[r] != 8:
                raise GdbError('register %s is not 64-bit (%d bytes)' % (r, self.regsize[r]))

    # ------------------------------------------------------------------ loop
    def _request(self, kind, arg, timeout):
        if self.dead:
            raise GdbError('vmhost loop is dead: %s' % self.dead)
        ev = threading.Event()
        item = {'kind': kind, 'arg': arg, 'ev': ev, 'err': None, 'result': None}
        with self._lock:
            self._requests.append(item)
        os.write(self._wake_w, b'x')
        if not ev.wait(timeout):
            raise GdbError('vmhost request %s timed out' % kind)
        if item['err']:
            raise GdbError('vmhost request %s failed: %s' % (kind, item['err']))
        return item['result']

    def _loop(self):
        g = self.gdb
        try:
            self._process_requests()
            self._continue([])
            while not self._closing:
                r, _, _ = select.select([g.sock, self._wake_r], [], [], 0.5)
                if self._wake_r in r:
                    os.read(self._wake_r, 4096)
                now = time.monotonic()
                if self.running and self._requests:
                    if not self._irq_sent or now - self._irq_sent > 5.0:
                        g.send_raw(b'\x03')   # the only thing ever sent while it runs
                        self._irq_sent = now
                if g.sock in r:
                    g.fill(0)
                while True:
                    p = g.pop_packet()
                    if p is None:
                        break
                    c = p[:1]
                    if c in (b'T', b'S'):
                        self._on_stop(p)
                    elif c in (b'W', b'X'):
                        self.dead = 'guest exited (%s)' % p.decode(errors='replace')
                        return
                    elif p != b'OK':
                        self.gdb_errors.append(p.decode(errors='replace'))
        except GdbError as e:
            self.dead = str(e)
        except Exception as e:  # pragma: no cover - recorded for the report
            self.dead = 'loop crashed: %r' % e
            self.loop_error = traceback.format_exc()
        finally:
            if not self.dead:
                self.dead = 'closed'
            with self._lock:
                while self._requests:
                    it = self._requests.popleft()
                    it['err'] = self.dead
                    it['ev'].set()

    def _continue(self, packets):
        """Send register writes etc. and `c` in one burst; nothing more until the next stop."""
        self.gdb.send_raw(b''.join(self.gdb.frame(p) for p in packets) + b'$c#63')
        self.running = True
        self._t_cont = time.monotonic()

    def _process_requests(self):
        while True:
            with self._lock:
                if not self._requests:
                    return
                it = self._requests.popleft()
            try:
                if it['kind'] == 'arm':
                    self._drop_init_bp()
                    want = set(it['arg'])
                    stale = sorted(self.bps - want)
                    if stale:
                        self.notes.append('pre-armed breakpoints not confirmed by sysfs: %s' % [hex(a) for a in stale])
                        self.gdb.transact(['z0,%x,1' % a for a in stale])
                        self.bps -= set(stale)
                    new = [a for a in it['arg'] if a not in self.bps]
                    rep = self.gdb.transact(['Z0,%x,1' % a for a in new])
                    bad = [(hex(a), r) for a, r in zip(new, rep) if r != b'OK']
                    self.bps.update(a for a, r in zip(new, rep) if r == b'OK')
                    if bad:
                        it['err'] = 'Z0 failed: %r' % bad
                elif it['kind'] == 'disarm':
                    rep = self.gdb.transact(['z0,%x,1' % a for a in sorted(self.bps)])
                    self.bps.clear()
                    if any(r != b'OK' for r in rep):
                        it['err'] = 'z0 failed: %r' % rep
                elif it['kind'] == 'prearm':
                    if self.init_bp is None:
                        r = self.gdb.cmd('Z0,%x,1' % it['arg'])
                        if r != b'OK':
                            it['err'] = 'Z0 on do_init_module failed: %r' % r
                        else:
                            self.init_bp = it['arg']
                elif it['kind'] == 'unprearm':
                    self._drop_init_bp()
                elif it['kind'] == 'call':
                    it['result'] = it['arg'](self)
                elif it['kind'] == 'verify':
                    with self._lock:
                        self._verify_release(0, 'final_check', release=False)
            except GdbError:
                raise
            except Exception as e:
                it['err'] = repr(e)
            it['ev'].set()

    def _read_regs(self):
        """One `g` (faster than pipelined `p`s): registers in regnum order."""
        rep = self.gdb.cmd('g')
        try:
            b = bytes.fromhex(rep.decode())
        except ValueError:
            raise GdbError('bad g reply: %r' % rep[:40])
        self._g_raw = b
        regs = {}
        for r in self.REGS:
            o = self.regoff[r]
            if len(b) < o + 8:
                raise GdbError('short g reply (%d bytes) for %s' % (len(b), r))
            regs[r] = int.from_bytes(b[o:o + 8], 'little')
        return regs

    def _reg_packet(self, name, value):
        return 'P%x=%s' % (self.regnum[name], (value & U64).to_bytes(8, 'little').hex())

    def _on_stop(self, pkt):
        t_stop = time.monotonic()
        self.running = False
        self._irq_sent = 0.0
        self.stops += 1
        try:
            sig = int(pkt[1:3], 16)
        except ValueError:
            sig = 0
        self._process_requests()
        if sig != 5:
            self.interrupts += 1
            self._continue([])
            return
        regs = self._read_regs()
        t_regs = time.monotonic()
        rip = regs['rip']
        if rip == self.init_bp and rip not in self.bps:
            self._on_do_init_module(regs)
            if self.init_bp == rip:
                self._step_over(rip)   # another module: keep waiting for ours
            else:
                self._continue([])
            return
        if rip not in self.bps:
            self.gdb_errors.append('stop at %#x not a breakpoint' % rip)
            self._continue([])
            return
        if (regs['rdx'] & 0xFFFF) != BALLOON_PORT:
            self._passthrough(rip)
            return
        if self._t_cont is not None:
            self.cycle.append(t_stop - self._t_cont)
        with self._lock:
            packets = self._hypercall(regs)
        self._continue(packets)
        t_end = time.monotonic()
        self.overheads.append(t_end - t_stop)
        self.overheads_regs.append(t_regs - t_stop)

    def _drop_init_bp(self):
        if self.init_bp is not None:
            self.gdb.cmd('z0,%x,1' % self.init_bp)
            self.init_bp = None
        self._prearm = None

    def _read_virt(self, addr, n):
        """Read guest-virtual memory (current page tables) while stopped."""
        g = self.gdb
        if self.phys_mode:
            g.cmd('Qqemu.PhyMemMode:0')
        try:
            out = b''
            while n > 0:
                k = min(n, 2048)
                r = g.cmd('m%x,%x' % (addr, k))
                if len(r) != 2 * k:
                    raise GdbError('virtual read at %#x failed: %r' % (addr, r[:20]))
                out += bytes.fromhex(r.decode())
                addr += k
                n -= k
            return out
        finally:
            if self.phys_mode:
                g.cmd('Qqemu.PhyMemMode:1')

    def _on_do_init_module(self, regs):
        pa = self._prearm
        if pa is None:
            self._drop_init_bp()
            return
        mod = regs['rdi']
        try:
            smod = self._read_virt(mod, 1536)
        except GdbError as e:
            self.notes.append('prearm: cannot read struct module at %#x: %s' % (mod, e))
            return
        # struct module: state (4, padded), list_head (16), name[56]
        name = smod[24:80].split(b'\0', 1)[0].decode(errors='replace')
        if name != pa['name']:
            return  # another module (e.g. a dependency): keep waiting
        found = None
        tried = 0
        for off in range(0, len(smod) - 7, 8):
            base, = struct.unpack_from('<Q', smod, off)
            # The module area (MODULES_VADDR..MODULES_END). Text is page
            # aligned up to 6.x; 7.x's execmem ROX cache packs module text
            # into shared 2 MiB pages, 16-byte aligned and above the module.
            if base & 0xF or not (0xFFFFFFFFA0000000 <= base < 0xFFFFFFFFFF000000):
                continue
            tried += 1
            try:
                w = self._read_virt(base + pa['window_off'], len(pa['window']))
                if not all(self._read_virt(base + o, 1) == b'\xed' for o, _, _ in pa['inls']):
                    continue
            except GdbError:
                continue
            same = sum(1 for a, b in zip(w, pa['window']) if a == b)
            if same >= 0.75 * len(pa['window']):
                found = base
                break
        if found is None:
            self.prearm_result = 'not found (%d candidates)' % tried
            self.notes.append('prearm of %s failed: core base not found in struct module (%d candidates)'
                              % (name, tried))
            self._drop_init_bp()
            return
        addrs = [found + o for o, _, _ in pa['inls']]
        rep = self.gdb.transact(['Z0,%x,1' % a for a in addrs])
        self.bps.update(a for a, r in zip(addrs, rep) if r == b'OK')
        self.prearm_result = {'base': found, 'breakpoints': len(addrs)}
        self._drop_init_bp()
        # A fresh instance of the driver is about to run its init with every
        # hypercall answered: it must START before anything else.
        with self._lock:
            self.prearmed = True
            self.session = False
            self.granted = 0

    def _passthrough(self, rip):
        """An `in` not aimed at the balloon port: let QEMU execute it natively."""
        self.passthrough += 1
        self._step_over(rip)

    def _step_over(self, rip):
        """Continue from a breakpoint address (QEMU would stop there again at once)."""
        g = self.gdb
        g.cmd('z0,%x,1' % rip)
        g.send_raw(g.frame('s'))
        while True:
            p = g.next_packet(30)
            if p[:1] in (b'T', b'S'):
                break
            if p[:1] in (b'W', b'X'):
                raise GdbError('guest exited during step')
        g.cmd('Z0,%x,1' % rip)
        self._continue([])

    # ------------------------------------------------------------------ guest memory
    def _phys(self, paddr):
        return paddr if self.phys_mode else PHYS_DIRECT_MAP + paddr

    def _read_mem_many(self, regions):
        """regions: [(paddr, len)] each <= 2048 bytes -> [bytes]."""
        biggest = max((n for _, n in regions), default=1)
        reps = self.gdb.transact(['m%x,%x' % (self._phys(a), n) for a, n in regions],
                                 chunk=max(1, min(256, 65536 // (2 * biggest + 8))))
        out = []
        for (a, n), r in zip(regions, reps):
            if len(r) != 2 * n or r[:1] == b'E' and len(r) == 3:
                raise GdbError('memory read at %#x failed: %r' % (a, r[:20]))
            out.append(bytes.fromhex(r.decode()))
        return out

    def _write_mem_packets(self, regions):
        return ['M%x,%x:%s' % (self._phys(a), len(d), d.hex()) for a, d in regions]

    # ------------------------------------------------------------------ host semantics
    def _current_target(self):
        if self._schedule:
            now = time.monotonic() - self.t0
            while self._schedule and self._schedule[0][0] <= now:
                self._target = int(self._schedule.pop(0)[1])
        return self._target

    def _pfn_in_ram(self, pfn):
        return any(a <= pfn < b for a, b in self.ram_ranges)

    def _violate(self, n, cmdname, kind, detail=''):
        self.violations.append('#%d %s: %s%s' % (n, cmdname, kind, (': ' + detail) if detail else ''))
        self.violation_kinds[kind] += 1

    def _sample(self):
        cur = len(self.locked4k) + PAGES_2M * len(self.locked2m)
        if cur > self.max_locked:
            self.max_locked = cur
        now = time.monotonic() - self.t0
        if now - self._last_sample >= 0.25:
            self.samples.append((round(now, 2), cur))
            self._last_sample = now
            if len(self.samples) > 4000:
                del self.samples[::2]

    def _refused(self, pfn, cmd):
        r = self.config.refuse
        if r is not None:
            if callable(r):
                st = r(pfn, CMD_NAMES.get(cmd, cmd)) or None
            else:
                mod, status = r
                st = status if pfn % mod == 0 else None
            if st:
                return st
        return self._random_refusal(True, cmd in BATCH_CMDS)

    def _random_refusal(self, lock, batched):
        """A refusal drawn at refuse_rate, or None. Batch entries carry 5 bits."""
        cfg = self.config
        if not cfg.refuse_rate or self.rng.random() >= cfg.refuse_rate:
            return None
        codes = list(cfg.refuse_codes or (LOCK_REFUSALS if lock else UNLOCK_REFUSALS))
        # A RESET answered to a single-page command is the call's status: the
        # session's end, which the host would then have to honour. Only a batch
        # entry can carry RESET as one page's status.
        if cfg.refuse_reset and batched and ERROR_RESET not in codes:
            codes.append(ERROR_RESET)
        st = self.rng.choice(codes)
        self.random_refusals += 1
        return (st & 0x1F) if batched else st

    def _junk(self):
        """A value for a register the protocol leaves undefined: sometimes wild,
        sometimes a plausible target, so that a guest that reads it is caught."""
        x = self.rng.random()
        if x < 0.4:
            return self.rng.getrandbits(64)
        if x < 0.8:
            return self.rng.randrange(0, 2 * (self.mem_bytes >> 12))
        return self.rng.choice((0, 1, 0xFFFFFFFF, U64, self._target + 1, self._target * 2 + 512))

    def _regions_of(self, pfn, is2m):
        tb = self.config.touch_bytes
        frames = (pfn, pfn + PAGES_2M - 1) if is2m else (pfn,)
        regs = []
        for f in frames:
            regs.append((f << 12, tb))
            regs.append(((f << 12) + 4096 - tb, tb))
        return regs

    def _pattern_writes(self, pfns_is2m):
        out = []
        tb = self.config.touch_bytes
        for pfn, is2m in pfns_is2m:
            for a, n in self._regions_of(pfn, is2m):
                out.append((a, pattern_for(a >> 12, tb)))
        return out

    def _verify(self, n, cmdname, pfns_is2m, why):
        """Read back the patterns of pages leaving the balloon."""
        if not self.config.touch_check or not pfns_is2m:
            return
        regions = []
        owners = []
        for pfn, is2m in pfns_is2m:
            for reg in self._regions_of(pfn, is2m):
                regions.append(reg)
                owners.append((pfn, is2m))
        data = self._read_mem_many(regions)
        bad = {}
        for (a, ln), d, own in zip(regions, data, owners):
            if d != pattern_for(a >> 12, ln):
                bad.setdefault(own, a)
        self.touch_checked += len(pfns_is2m)
        for (pfn, is2m), a in list(bad.items())[:20]:
            self._violate(n, cmdname, 'ballooned-page-touched',
                          '%s pfn %#x changed at %#x (%s)' % ('2M' if is2m else '4K', pfn, a, why))
        if len(bad) > 20:
            self._violate(n, cmdname, 'ballooned-page-touched', '... %d more pages' % (len(bad) - 20))

    def _verify_release(self, n, cmdname, release=True):
        if self.config.check_on_release or not release:
            pages = [(p, False) for p in self.locked4k] + [(p, True) for p in self.locked2m]
            self._verify(n, cmdname, pages[:self.config.release_check_max],
                         'released' if release else 'final check')
        if release:
            self.locked4k.clear()
            self.locked2m.clear()
            self.forgotten.clear()
            self._sample()

    def _locked_any(self, pfn):
        return pfn in self.locked4k or (pfn & ~(PAGES_2M - 1)) in self.locked2m

    def _hypercall(self, regs):
        """Compute the answer; return the packets to send before `c`."""
        cfg = self.config
        self.ncmd += 1
        n = self.ncmd
        now = time.monotonic()
        if self.first_cmd_time is None:
            self.first_cmd_time = now
        self.last_cmd_time = now
        magic = regs['rax'] & 0xFFFFFFFF
        cmd = regs['rcx'] & 0xFFFFFFFF
        arg1 = regs['rbx']
        arg2 = regs['rsi']
        name = CMD_NAMES.get(cmd, 'CMD%d' % cmd)
        status = None
        result = None       # value for rbx (None: leave)
        caps_out = None     # value for rcx on START
        mem_pre = []        # (paddr, bytes) writes
        extra = ''
        target = self._current_target()

        injected = self._inject.popleft() if self._inject else None
        if injected is None and self._inject_on and name_of(cmd) in self._inject_on[0][0]:
            injected = self._inject_on.popleft()[1]
        if magic != MAGIC:
            self._violate(n, name, 'bad-magic', '%#x' % regs['rax'])
            status = FAILURE
        elif injected is not None and injected != ERROR_RESET:
            status = injected
        elif n in cfg.reset_at or injected == ERROR_RESET:
            status = ERROR_RESET
            self.resets_injected += 1
            self._verify_release(n, name)
            self.session = False
            self.granted = 0
        elif cfg.in_windows(n, cfg.failure_windows) or now < cfg.failure_until:
            status = FAILURE
        elif cfg.in_windows(n, cfg.busy_windows) or now < cfg.busy_until:
            status = ERROR_BUSY
        elif cmd == START:
            self.starts += 1
            self._verify_release(n, name)
            self.session = True
            self.ever_started = True
            if cfg.old_host:
                self.granted = CAP_BASIC
                status = SUCCESS
            else:
                self.granted = arg1 & cfg.caps & 0xFFFFFFFF
                status = SUCCESS_WITH_CAPABILITIES
                caps_out = self.granted
        elif not self.session:
            if self.ever_started or cfg.strict_first_start or self.prearmed:
                self._violate(n, name, 'no-session', 'command without a START since the last reset')
            else:
                self.notes.append('#%d %s before the first START (answered ERROR_RESET)' % (n, name))
            status = ERROR_RESET
        elif cmd == GUEST_ID:
            status = SUCCESS
        elif cmd == GET_TARGET:
            if arg1 >> 32 and not self.granted & CAP_64BIT_TARGET:
                self._violate(n, name, 'target-arg-not-32bit', '%#x without the 64-bit target capability' % arg1)
            self.guest_ram_pages = arg1
            status = SUCCESS
            result = target
            if cfg.clock_paddr:
                raw = self._read_mem_many([(cfg.clock_paddr, 8)])[0]
                self.clock_samples.append((n, struct.unpack('<Q', raw)[0]))
        elif cmd in (LOCK, UNLOCK):
            if not self.granted & CAP_BASIC:
                self._violate(n, name, 'capability-not-granted', 'basic (granted %#x)' % self.granted)
                status = ERROR_CMD_INVALID
            elif arg1 >> 32:
                self._violate(n, name, 'pfn-not-32bit', '%#x' % arg1)
                status = ERROR_PPN_INVALID
            else:
                pfn = arg1
                status, pre = self._one_page(n, name, cmd == LOCK, pfn, False)
                mem_pre += pre
                if status == SUCCESS:
                    result = target
                extra = 'pfn=%#x' % pfn
        elif cmd in (BATCHED_LOCK, BATCHED_UNLOCK, BATCHED_2M_LOCK, BATCHED_2M_UNLOCK):
            is2m = cmd in (BATCHED_2M_LOCK, BATCHED_2M_UNLOCK)
            need = CAP_BATCHED | (CAP_2M if is2m else 0)
            if (self.granted & need) != need:
                self._violate(n, name, 'capability-not-granted', '%#x needed, %#x granted' % (need, self.granted))
                status = ERROR_CMD_INVALID
            elif not self._pfn_in_ram(arg1):
                self._violate(n, name, 'batch-page-not-in-ram', 'pfn %#x' % arg1)
                status = ERROR_PPN_INVALID
            elif arg2 == 0 or arg2 > MAX_BATCH:
                self._violate(n, name, 'bad-batch-count', '%d' % arg2)
                status = SUCCESS if arg2 == 0 else FAILURE
                if status == SUCCESS:
                    result = target
            else:
                status, pre, extra = self._batch(n, name, cmd, arg1, arg2, is2m)
                mem_pre += pre
                result = target
        elif cmd == VMCI_DOORBELL_SET:
            if not self.granted & CAP_DOORBELL:
                self._violate(n, name, 'doorbell-not-granted', 'granted %#x' % self.granted)
                status = ERROR_CMD_INVALID
            else:
                status = SUCCESS
        else:
            self._violate(n, name, 'invalid-command', 'command %d' % cmd)
            status = ERROR_CMD_INVALID

        c = self.counts[name]
        c['count'] += 1
        adv = cfg.adversarial
        junk = {}      # undefined registers and the values they get
        if not is_success(status):
            c['failed'] += 1
            if adv:
                # Nothing but eax is defined after a failure.
                result = None
                junk['rbx'] = self._junk()
            elif cfg.garbage_on_failure and status != FAILURE:
                result = GARBAGE
            if adv and cmd in BATCH_CMDS and self._pfn_in_ram(arg1) and 0 < arg2 <= MAX_BATCH:
                # The call's status overrides the entries': write random ones.
                mem_pre += self._junk_entries(arg1, arg2)
        elif adv:
            if result is not None and cmd in TARGET_CMDS and not self.granted & CAP_64BIT_TARGET:
                # Only ebx is defined without the 64-bit target capability.
                junk['rbx'] = min(result, 0xFFFFFFFF) | self.rng.getrandbits(32) << 32
                result = None
            elif result is None:
                junk['rbx'] = self._junk()
        if adv and caps_out is not None:
            caps_out |= self.rng.getrandbits(32) << 32   # only ecx carries the capabilities
        self._sample()
        self.history.append((n, round(now - self.t0, 4), name, arg1, arg2, status, result))
        if self.transcript:
            self.transcript.write('%d %.3f %s %#x %#x %s %s%s%s\n' % (
                n, now - self.t0, name, arg1, arg2, status_name(status),
                '-' if result is None else result,
                (' rbx~%#x' % junk['rbx']) if 'rbx' in junk else '',
                (' ' + extra) if extra else ''))

        # Memory writes (patterns, per-entry statuses) go in the same burst as the
        # register writes and `c`: their replies are checked by the loop afterwards.
        packets = self._write_mem_packets(mem_pre) if mem_pre else []
        if len(packets) > 64:
            reps = self.gdb.transact(packets)
            if any(r != b'OK' for r in reps):
                self.gdb_errors.append('memory write failed at #%d' % n)
            packets = []
        # inl writes eax, zero-extended into rax (64-bit mode): the upper half of
        # rax is 0 after any answer, a host cannot make it anything else.
        regw = {'rax': status & 0xFFFFFFFF}
        if result is not None:
            regw['rbx'] = result
        regw.update(junk)
        if caps_out is not None:
            regw['rcx'] = caps_out
        elif adv:
            regw['rcx'] = self.rng.getrandbits(64)
        elif cfg.clobber:
            regw['rcx'] = CLOBBER
        if adv:
            regw['rdx'] = self.rng.getrandbits(64)
            regw['rsi'] = self.rng.getrandbits(64)
        elif cfg.clobber:
            regw['rdx'] = CLOBBER ^ 0xFF
            regw['rsi'] = CLOBBER ^ 0xFF00
        regw['rip'] = regs['rip'] + 1
        return packets + self._reg_writes(regw)

    def _junk_entries(self, batch_pfn, count):
        """Writes giving every entry of a failed batch a random 5-bit status."""
        base = batch_pfn << 12
        nbytes = count * 8
        regions = [(base + o, min(2048, nbytes - o)) for o in range(0, nbytes, 2048)]
        raw = b''.join(self._read_mem_many(regions))
        entries = struct.unpack('<%dQ' % count, raw)
        new = [(e & ~0x1F) | self.rng.getrandbits(5) for e in entries]
        data = struct.pack('<%dQ' % count, *new)
        return [(base + o, data[o:o + 1024]) for o in range(0, nbytes, 1024)]

    def _reg_writes(self, regw):
        """Packets writing registers: several P, or one G with the block read at this stop."""
        if not self.use_G:
            return [self._reg_packet(k, v) for k, v in regw.items()]
        b = bytearray(self._g_raw)
        for k, v in regw.items():
            o = self.regoff[k]
            b[o:o + 8] = (v & U64).to_bytes(8, 'little')
        return ['G' + b.hex()]

    def _one_page(self, n, name, lock, pfn, batched):
        """Lock/unlock one 4K frame. Returns (status, [pattern writes])."""
        if not self._pfn_in_ram(pfn):
            self._violate(n, name, 'pfn-not-in-ram', '%#x' % pfn)
            return ERROR_PPN_INVALID, []
        if lock:
            if self._locked_any(pfn):
                self._violate(n, name, 'double-lock', 'pfn %#x' % pfn)
                return ERROR_PPN_LOCKED, []
            r = self._refused(pfn, BATCHED_LOCK if batched else LOCK)
            if r:
                return r, []
            self.forgotten.discard(pfn)
            self.locked4k.add(pfn)
            pre = self._pattern_writes([(pfn, False)]) if self.config.touch_check else []
            claim = self.config.lock_answers_locked
            if claim and claim(pfn, CMD_NAMES[BATCHED_LOCK if batched else LOCK]):
                self.answered_locked += 1
                return ERROR_PPN_LOCKED, pre
            return SUCCESS, pre
        if pfn in self.forgotten:
            self.forgotten.discard(pfn)
            self.answered_unlocked += 1
            return ERROR_PPN_UNLOCKED, []
        if pfn not in self.locked4k:
            self._violate(n, name, 'unlock-not-locked', 'pfn %#x' % pfn)
            return ERROR_PPN_UNLOCKED, []
        r = self._random_refusal(False, batched)
        if r:
            return r, []     # the host keeps the page
        self._verify(n, name, [(pfn, False)], 'unlock')
        self.locked4k.discard(pfn)
        return SUCCESS, []

    def _batch(self, n, name, cmd, batch_pfn, count, is2m):
        lock = cmd in (BATCHED_LOCK, BATCHED_2M_LOCK)
        base = batch_pfn << 12
        nbytes = count * 8
        regions = [(base + o, min(2048, nbytes - o)) for o in range(0, nbytes, 2048)]
        raw = b''.join(self._read_mem_many(regions))
        entries = list(struct.unpack('<%dQ' % count, raw))
        new = list(entries)
        locks = []
        unlocks = []
        nfail = 0
        ec = self.entry_counts[name]
        seen = set()
        for i, e in enumerate(entries):
            pfn = e >> 12
            if e & 0xFE0:
                self._violate(n, name, 'reserved-bits', 'entry %d = %#x' % (i, e))
            st = SUCCESS
            if pfn in seen:
                # the same page twice in one batch: the second one fails
                self._violate(n, name, 'duplicate-entry', 'pfn %#x' % pfn)
                st = ERROR_PPN_LOCKED if lock else ERROR_PPN_UNLOCKED
            seen.add(pfn)
            if st != SUCCESS:
                pass
            elif not is2m:
                if lock:
                    st, pre = self._one_page(n, name, True, pfn, True)
                    if st == SUCCESS or (st == ERROR_PPN_LOCKED and pre):
                        locks.append((pfn, False))
                else:
                    if not self._pfn_in_ram(pfn):
                        self._violate(n, name, 'pfn-not-in-ram', '%#x' % pfn)
                        st = ERROR_PPN_INVALID
                    elif pfn in self.forgotten:
                        self.forgotten.discard(pfn)
                        self.answered_unlocked += 1
                        st = ERROR_PPN_UNLOCKED
                    elif pfn not in self.locked4k:
                        self._violate(n, name, 'unlock-not-locked', 'pfn %#x' % pfn)
                        st = ERROR_PPN_UNLOCKED
                    else:
                        st = self._random_refusal(False, True) or SUCCESS
                        if st == SUCCESS:
                            unlocks.append((pfn, False))
            else:
                if pfn & (PAGES_2M - 1):
                    self._violate(n, name, 'unaligned-2m', 'pfn %#x' % pfn)
                    st = ERROR_PPN_INVALID
                elif not (self._pfn_in_ram(pfn) and self._pfn_in_ram(pfn + PAGES_2M - 1)):
                    self._violate(n, name, 'pfn-not-in-ram', '2M %#x' % pfn)
                    st = ERROR_PPN_INVALID
                elif lock:
                    if pfn in self.locked2m or any(p in self.locked4k for p in range(pfn, pfn + PAGES_2M)):
                        self._violate(n, name, 'double-lock', '2M pfn %#x' % pfn)
                        st = ERROR_PPN_LOCKED
                    else:
                        r = self._refused(pfn, cmd)
                        if r:
                            st = r
                        else:
                            self.locked2m.add(pfn)
                            locks.append((pfn, True))
                else:
                    if pfn not in self.locked2m:
                        self._violate(n, name, 'unlock-not-locked', '2M pfn %#x' % pfn)
                        st = ERROR_PPN_UNLOCKED
                    else:
                        st = self._random_refusal(False, True) or SUCCESS
                        if st == SUCCESS:
                            unlocks.append((pfn, True))
            if st != SUCCESS:
                nfail += 1
            new[i] = (e & ~0x1F) | (st & 0x1F)
        # verify before the pages leave the balloon
        self._verify(n, name, unlocks, 'unlock')
        for pfn, big in unlocks:
            (self.locked2m if big else self.locked4k).discard(pfn)
        ec['pages'] += count
        ec['failed'] += nfail
        writes = self._pattern_writes(locks) if self.config.touch_check else []
        # write back the per-entry statuses that changed (one packet per changed run)
        i = 0
        while i < count:
            if new[i] == entries[i]:
                i += 1
                continue
            j = i
            while j < count and new[j] != entries[j] and j - i < 200:
                j += 1
            writes.append((base + 8 * i, struct.pack('<%dQ' % (j - i), *new[i:j])))
            i = j
        extra = 'n=%d failed=%d' % (count, nfail)
        return SUCCESS, writes, extra
