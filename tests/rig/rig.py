#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Test harness: boot a TCG guest under QEMU, talk to its agent, host the balloon.

    from rig import Rig, HostConfig
    with Rig(name='inflate', driver='vmmemctl', mem_mb=512, host=HostConfig(target=0)) as r:
        r.load(params='rate_max=4096')
        r.host.set_target(4096)
        r.wait_for(lambda: r.stats().get('current') == 4096, timeout=120, what='balloon at 4096')

Artifacts land in tests/out/<kernel>/<name>/: console.log, qemu.log, rig.log, transcript.txt,
summary.json, dmesg.txt.
"""

import base64
import gzip
import json
import os
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from vmhost import (VmHost, HostConfig, GdbError, CAPS_DEFAULT, CAP_BASIC,  # noqa: E402,F401
                    CAP_BATCHED, CAP_2M, CAP_DOORBELL, CAP_64BIT_TARGET)
import kernels  # noqa: E402

REPO = os.path.dirname(os.path.dirname(HERE))
CACHE = kernels.CACHE
DIMM_BASE = 1 << 32     # QEMU pc: device memory starts at 4 GiB when no RAM is above it
OUT = os.environ.get('RIG_OUT') or os.path.join(REPO, 'tests', 'out')   # artifacts root

PROBLEM_RE = re.compile(
    r'WARNING:|BUG:|Oops|Call Trace|sleeping function called|soft lockup|general protection'
    r'|Kernel panic|UBSAN|kfence|blocked for more than|hard LOCKUP|rcu_.*stall|self-detected stall'
    # the debug kernel's checkers (most also print BUG:/WARNING:, these lines name them)
    r'|KASAN|possible circular locking|possible recursive locking|inconsistent lock state'
    r'|[Bb]ad page state|list_add corruption|list_del corruption|page dumped because')


def _kcsan_report_names_module(lines, i):
    """A KCSAN report (the kcsan kernel of `make check-kcsan`) counts when one
    of its stacks runs through the module; the kernel's own data races, which
    that kernel reports too, are not the module's."""
    for line in lines[i + 1:i + 200]:
        if '[vmmemctl]' in line:
            return True
        if '=' * 20 in line:
            return False
    return False


class RigError(Exception):
    pass


def _die_with_parent():
    """preexec_fn: QEMU gets SIGKILL if the harness dies without cleaning up."""
    try:
        import ctypes
        ctypes.CDLL('libc.so.6', use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except Exception:
        pass


def free_port():
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(('127.0.0.1', 0))
    port = s.getsockname()[1]
    s.close()
    return port


def newc_archive(files):
    """files: [(path_in_archive, bytes or None for a directory)] -> cpio newc bytes."""
    out = bytearray()
    ino = 0x7000

    def entry(name, mode, data):
        nonlocal ino
        ino += 1
        nb = name.encode() + b'\0'
        hdr = '070701' + ''.join('%08x' % v for v in (
            ino, mode, 0, 0, 2 if mode & 0o040000 else 1, 0, len(data), 0, 0, 0, 0, len(nb), 0))
        out.extend(hdr.encode() + nb)
        out.extend(b'\0' * (-len(out) % 4))
        out.extend(data)
        out.extend(b'\0' * (-len(out) % 4))

    for name, data in files:
        if data is None:
            entry(name, 0o040755, b'')
        else:
            entry(name, 0o100644, data)
    entry('TRAILER!!!', 0, b'')
    out.extend(b'\0' * (-len(out) % 512))
    return bytes(out)


def to_int(v):
    """int for decimal or 0x-hex strings, else None."""
    v = v.strip()
    if re.fullmatch(r'[-+]?\d+', v):
        return int(v, 10)
    if re.fullmatch(r'[-+]?0[xX][0-9a-fA-F]+', v):
        return int(v, 16)
    return None


def parse_kv(text):
    """'key: value' lines -> dict (split on the first ':'); int values when they parse.
    Runs of blanks inside a key are folded: the in-tree layout's
    'alloc             (4k)' is the key 'alloc (4k)'."""
    d = {}
    for line in text.splitlines():
        if ':' not in line:
            continue
        k, v = line.split(':', 1)
        k = ' '.join(k.split())
        if not k:
            continue
        # A key may repeat (the in-tree layout names both the target and
        # the GET_TARGET command "target"): the first one keeps the name.
        n = 2
        base = k
        while k in d:
            k = '%s#%d' % (base, n)
            n += 1
        iv = to_int(v)
        d[k] = iv if iv is not None else v.strip()
    return d


# Boots tried before a guest that never gets its agent up is an error.
BOOT_ATTEMPTS = 4


class BootStuck(Exception):
    """The guest did not get its agent up in time (QEMU still running)."""


class Rig:
    """One guest boot. Use as a context manager."""

    def __init__(self, name, driver='vmmemctl', mem_mb=512, host=None, vmware=True, smp=1,
                 append='', timeout=600, ko=None, boot_timeout=90, quiet=False, qemu_args=(),
                 kernel=None, dimms=()):
        if not re.fullmatch(r'[A-Za-z0-9_.-]+', name):
            raise RigError('bad rig name %r' % name)
        self.name = name
        self.driver = driver
        self.mem_mb = mem_mb
        self.config = host if host is not None else HostConfig()
        self.vmware = vmware
        self.smp = smp
        self.append = append
        try:
            self.kernel = kernel or kernels.current()
        except kernels.KernelError as e:
            raise RigError(str(e))
        # a debug kernel (KASAN, lockdep under TCG) is slower: its `slowdown`
        # stretches the boot, the watchdog, guest commands and wait_for()
        self.slowdown = self.kernel.slowdown
        # a race checker (KCSAN) sees races only between CPUs that run
        self.smp = max(self.smp, self.kernel.min_smp)
        self.timeout = timeout * self.slowdown
        self.boot_timeout = boot_timeout * self.slowdown
        self.quiet = quiet
        self.qemu_args = list(qemu_args)
        # Hot-pluggable DIMMs present at boot: [(guest-physical address, MiB)],
        # placed one after the other from 4 GiB (QEMU's `pc` device memory
        # region when the RAM fits below 4 GiB), each 128 MiB aligned so that
        # it is whole Linux memory blocks.
        self.dimms = []
        addr = DIMM_BASE
        for mib in dimms:
            if mib <= 0 or mib % 128:
                raise RigError('a DIMM is a multiple of 128 MiB, not %r' % mib)
            self.dimms.append((addr, mib))
            addr += mib << 20
        if self.dimms and mem_mb > 3072:
            raise RigError('dimms= needs the RAM below 4 GiB (mem_mb <= 3072)')
        self.kver = self.kernel.kver
        self.out_dir = os.path.join(OUT, self.kernel.id, name)   # kernels may run side by side
        self.ko = ko
        self.proc = None
        self.host = None
        self.tmp = None
        self.agent = None
        self.abuf = bytearray()
        self._seq = 0
        self._agent_lock = threading.Lock()
        self._watchdog = None
        self._killed_by_watchdog = False
        self.t0 = time.monotonic()
        self.loaded = None       # module name currently loaded (ours)
        self.last_stats = None
        self.boot_seconds = None
        self.boot_retries = 0
        self.stall_boots = 0       # the rig's own test: this many boots never start the agent
        self._logf = None
        self.agent_broken = None   # reason, once a command timed out (the agent is stuck)

    # ------------------------------------------------------------------ logging
    def log(self, msg):
        line = '[%s +%6.1fs] %s' % (self.name, time.monotonic() - self.t0, msg)
        if not self.quiet:
            print(line, file=sys.stderr, flush=True)
        if self._logf:
            self._logf.write(line + '\n')
            self._logf.flush()

    def elapsed(self):
        return time.monotonic() - self.t0

    # ------------------------------------------------------------------ modules
    def _module_files(self):
        mods = {}
        for m in ('vmw_balloon', 'vmw_vmci'):
            p = os.path.join(self.kernel.modules_dir, m + '.kmod')
            if os.path.exists(p):
                mods[m] = p
        if self.driver == 'vmmemctl' or self.ko:
            try:
                p = self.ko or self.kernel.ko()
            except kernels.KernelError as e:
                raise RigError(str(e))
            # a given ko= is delivered as /modules/<driver>.ko whatever its file name
            mods[self.driver if self.ko else 'vmmemctl'] = p
        if self.driver not in mods:
            raise RigError('driver %s: no module file (have %s)' % (self.driver, sorted(mods)))
        return mods

    def ko_path(self, driver=None):
        return self.modules[driver or self.driver]

    # ------------------------------------------------------------------ boot
    def __enter__(self):
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, et, ev, tb):
        self.stop(clean=et is None)
        return False

    def start(self):
        base = os.path.join(CACHE, 'initramfs.cpio.gz')
        vmlinuz = self.kernel.boot_image()
        for p in (base, vmlinuz):
            if not os.path.exists(p):
                raise RigError('%s missing: run `bash tests/setup.sh`' % p)
        if os.path.isdir(self.out_dir):
            shutil.rmtree(self.out_dir)
        os.makedirs(self.out_dir)
        self._logf = open(os.path.join(self.out_dir, 'rig.log'), 'w')
        self.tmp = tempfile.mkdtemp(prefix='vmmemctl-rig-')
        # Snapshot the modules: the guest gets exactly these bytes and the host
        # analyses the same files, even if the tree is rebuilt meanwhile.
        files = [('modules', None)]
        self.modules = {}
        os.makedirs(os.path.join(self.tmp, 'modules'))
        for m, p in sorted(self._module_files().items()):
            with open(p, 'rb') as f:
                data = f.read()
            files.append(('modules/%s.ko' % m, data))
            snap = os.path.join(self.tmp, 'modules', m + '.ko')
            with open(snap, 'wb') as f:
                f.write(data)
            self.modules[m] = snap
            self.log('module %s: %s (%d bytes)' % (m, p, len(data)))
        with open(base, 'rb') as f:
            initrd = bytearray(f.read())
        initrd.extend(b'\0' * (-len(initrd) % 4))
        initrd.extend(newc_archive(files))
        initrd_path = os.path.join(self.tmp, 'initrd.img')
        with open(initrd_path, 'wb') as f:
            f.write(initrd)

        self.console_path = os.path.join(self.out_dir, 'console.log')
        # A boot that never gets the agent up has not run a line of the
        # module (it is loaded later, by a command): boot again. Seen on the
        # debug kernel while it still had Tasks RCU, about one boot in 20
        # under load: idle for ever in its boot self-test (synchronize_rcu_tasks(),
        # before the first initcall); tests/debug_kernel.config leaves it out.
        for attempt in range(1, BOOT_ATTEMPTS + 1):
            try:
                self._boot(initrd_path, vmlinuz)
                return
            except BootStuck as e:
                if attempt == BOOT_ATTEMPTS:
                    raise RigError(str(e))
                self.boot_retries += 1
                stuck = os.path.join(self.out_dir, 'console-stuck-%d.log' % attempt)
                self._end_boot()
                if os.path.exists(self.console_path):
                    os.replace(self.console_path, stuck)
                self.log('boot %d never got the agent up; booting again (console: %s)' % (
                    attempt, os.path.basename(stuck)))

    def _boot(self, initrd_path, vmlinuz):
        """Start QEMU and the host; return once the guest agent is up."""
        sock_path = os.path.join(self.tmp, 'agent.sock')
        if os.path.exists(sock_path):
            os.unlink(sock_path)   # the last attempt's
        self.host = VmHost(self.config, mem_mb=self.mem_mb,
                           transcript_path=os.path.join(self.out_dir, 'transcript.txt'), log=self.log)
        # The DIMMs are guest RAM too: frames the balloon may lock.
        self.host.ram_ranges += [(a >> 12, (a + (mib << 20)) >> 12) for a, mib in self.dimms]
        append = 'console=ttyS0 nokaslr panic=-1 loglevel=4 rig.scenario=%s %s %s' % (
            self.name, self.kernel.cmdline, self.append)
        if self.boot_retries < self.stall_boots:
            append += ' rdinit=/bin/cat'   # waits on the console for ever
        for attempt in range(3):
            port = free_port()
            cmd = [kernels.qemu(), '-accel', 'tcg', '-cpu', 'qemu64,-hypervisor',
                   '-m', str(self.mem_mb), '-smp', str(self.smp), '-nodefaults', '-display', 'none',
                   '-no-reboot', '-kernel', vmlinuz, '-initrd', initrd_path, '-append', append.strip(),
                   '-serial', 'file:' + self.console_path,
                   '-chardev', 'socket,id=agent,path=%s,server=on,wait=off' % sock_path,
                   '-serial', 'chardev:agent',
                   '-S', '-gdb', 'tcp:127.0.0.1:%d' % port]
            if self.vmware:
                cmd[5:5] = ['-machine', 'pc,vmport=on',
                            '-smbios', 'type=1,manufacturer=VMware,serial=VMware-1']
            else:
                cmd[5:5] = ['-machine', 'pc']
            if self.dimms:
                cmd[cmd.index('-m') + 1] = '%d,slots=%d,maxmem=%dM' % (
                    self.mem_mb, len(self.dimms), self.mem_mb + sum(m for _, m in self.dimms))
                for i, (a, mib) in enumerate(self.dimms):
                    cmd += ['-object', 'memory-backend-ram,id=dimm%d,size=%dM' % (i, mib),
                            '-device', 'pc-dimm,id=d%d,memdev=dimm%d,addr=%#x' % (i, i, a)]
            cmd += self.qemu_args
            self.qemu_cmd = cmd
            self._qlog = open(os.path.join(self.out_dir, 'qemu.log'), 'w')
            self._qlog.write(' '.join(cmd) + '\n')
            self._qlog.flush()
            self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=self._qlog,
                                         stderr=subprocess.STDOUT, start_new_session=True,
                                         preexec_fn=_die_with_parent)
            self.log('%s, kernel %s, qemu pid %d, gdb port %d, %d MiB, smp %d%s' % (
                kernels.qemu_version(), self.kver, self.proc.pid, port, self.mem_mb, self.smp,
                '' if self.vmware else ', not VMware'))
            # the agent socket appears once QEMU is up
            deadline = time.monotonic() + 20
            while not os.path.exists(sock_path) and self.proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.02)
            if self.proc.poll() is not None:
                self._qlog.close()
                txt = open(os.path.join(self.out_dir, 'qemu.log')).read()
                if 'Address already in use' in txt or 'Failed to bind' in txt:
                    self.log('gdb port busy, retrying')
                    continue
                raise RigError('qemu exited at start: %s' % txt[-2000:])
            break
        else:
            raise RigError('could not start qemu')
        self._watchdog = threading.Timer(self.timeout, self._watchdog_fire)
        self._watchdog.daemon = True
        self._watchdog.start()

        self.agent = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        deadline = time.monotonic() + 10
        while True:
            try:
                self.agent.connect(sock_path)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise RigError('cannot connect the agent socket')
                time.sleep(0.02)
        self.host.connect(port)   # lets the guest run
        t = time.monotonic()
        # Every kernel of the matrix prints its first console line within
        # seconds (loglevel=4 still shows the perf MSR warning): a console
        # still empty at half the boot timeout is a stuck boot already.
        end = t + self.boot_timeout
        for deadline in (t + self.boot_timeout / 2, end):
            try:
                self._wait_line(lambda l: l == '@@READY', deadline, 'agent ready')
                break
            except RigError as e:
                if not self.alive() or not str(e).startswith('timeout'):
                    raise
                if deadline == end or not self.console():
                    raise BootStuck(str(e))
        self.boot_seconds = time.monotonic() - t
        self.log('guest agent ready after %.1fs' % self.boot_seconds)

    def _close_boot(self):
        """Kill QEMU; close this boot's watchdog, host, agent and QEMU log.
        The host object stays readable (summary, counts)."""
        self._kill_qemu()
        if self._watchdog:
            self._watchdog.cancel()
            self._watchdog = None
        if self.host:
            self.host.close()
        if self.agent:
            self.agent.close()
            self.agent = None
        if getattr(self, '_qlog', None):
            self._qlog.close()

    def _end_boot(self):
        """Tear down a boot that did not come up, for another attempt."""
        self._close_boot()
        self.host = None
        self.abuf = bytearray()

    def _watchdog_fire(self):
        self._killed_by_watchdog = True
        self.log('WATCHDOG: run exceeded %ds, killing qemu' % self.timeout)
        self._kill_qemu()

    def _kill_qemu(self):
        p = self.proc
        if p and p.poll() is None:
            try:
                p.terminate()
                p.wait(3)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(5)
            except OSError:
                pass

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self, clean=True):
        """Collect artifacts, power off (or kill) the guest, clean up."""
        try:
            # (no agent to ask when the guest never got it up)
            if self.alive() and self.agent and not self.agent_broken and \
                    self.boot_seconds is not None:
                try:
                    with open(os.path.join(self.out_dir, 'dmesg.txt'), 'w') as f:
                        f.write(self.dmesg(timeout=20))
                except Exception as e:
                    self.log('dmesg at exit failed: %s' % e)
                if self.host and not self.host.dead:
                    try:
                        self.host.final_check(timeout=30)
                    except Exception as e:
                        self.log('final_check failed: %s' % e)
                try:
                    with self._agent_lock:
                        self._send_agent('poweroff', '', 5)
                except Exception:
                    pass
                if self.proc:
                    try:
                        self.proc.wait(10)
                    except subprocess.TimeoutExpired:
                        self.log('guest did not power off, killing qemu')
        finally:
            self._close_boot()
            if self.host:
                try:
                    self.host.write_summary(os.path.join(self.out_dir, 'summary.json'))
                except Exception as e:
                    self.log('summary failed: %s' % e)
            if self.tmp:
                shutil.rmtree(self.tmp, ignore_errors=True)
                self.tmp = None
            if self._killed_by_watchdog:
                self.log('run was killed by the watchdog')
            if self._logf:
                self._logf.close()
                self._logf = None

    # ------------------------------------------------------------------ agent
    def _readline(self, deadline):
        while True:
            i = self.abuf.find(b'\n')
            if i >= 0:
                line = bytes(self.abuf[:i]).decode(errors='replace').rstrip('\r')
                del self.abuf[:i + 1]
                return line
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            r, _, _ = select.select([self.agent], [], [], min(left, 1.0))
            if r:
                data = self.agent.recv(65536)
                if not data:
                    raise RigError('agent connection closed (guest died?)')
                self.abuf += data
            elif self.host and self.host.dead and self.host.dead != 'closed':
                raise RigError('host loop ended: %s %s' % (self.host.dead, self.host.loop_error or ''))
            elif not self.alive():
                raise RigError('qemu exited (rc %s)%s' % (
                    self.proc.returncode, ' (watchdog)' if self._killed_by_watchdog else ''))

    def _wait_line(self, pred, deadline, what):
        while True:
            line = self._readline(deadline)
            if line is None:
                raise RigError('timeout waiting for %s; console tail:\n%s' % (what, self.console()[-3000:]))
            if pred(line):
                return line

    def _send_agent(self, cid, script, timeout):
        b64 = base64.b64encode(script.encode()).decode()
        self.agent.sendall(('%s %d %d %s\n' % (cid, int(timeout), len(b64), b64)).encode())

    def cat(self, *paths, timeout=30):
        """Contents of guest files, read by the agent without forking (cheap under load)."""
        return self.sh('@cat ' + ' '.join(paths), timeout=timeout)

    def sh(self, script, timeout=60, check=False):
        """Run a shell script in the guest. Returns (rc, stdout+stderr).

        A script that starts with '@cat <files>' or '@dmesg' is served by the agent
        itself without a fork (much cheaper while hypercalls are frequent).
        """
        with self._agent_lock:
            if not self.agent:
                raise RigError('no agent')
            if self.agent_broken:
                raise RigError('agent unusable: %s' % self.agent_broken)
            self._seq += 1
            cid = 'c%d' % self._seq
            what = 'reply to %r' % script[:60]
            timeout *= self.slowdown
            # the guest may be much slower than wall time while the gdbstub holds it
            deadline = time.monotonic() + timeout + 30
            sends = 0
            acked = False
            while True:
                if not acked:
                    if sends >= 4:
                        self.agent_broken = 'command not acknowledged: %r' % script[:60]
                        raise RigError('agent did not acknowledge %r' % script[:60])
                    self._send_agent(cid, script, timeout)
                    sends += 1
                    ack_deadline = min(deadline, time.monotonic() + 20)
                line = self._readline(ack_deadline if not acked else deadline)
                if line is None:
                    if acked or time.monotonic() >= deadline:
                        self.agent_broken = 'no %s' % what
                        raise RigError('timeout waiting for %s; console tail:\n%s' % (
                            what, self.console()[-3000:]))
                    self.log('agent: no ack for %s, sending again' % cid)
                    continue
                if line == '@@READY':
                    # The agent died and init started it again (under fault
                    # injection its own page faults may fail): this command
                    # is lost, the agent usable. The caller may retry.
                    self.log('agent restarted while running %s' % cid)
                    raise RigError('agent restarted during %s' % what)
                if line == '@@NAK ' + cid:
                    self.log('agent: NAK for %s (line cut short), sending again' % cid)
                    acked = False
                    continue
                if line == '@@ACK ' + cid:
                    acked = True
                    continue
                if line == '@@BEGIN ' + cid:
                    break
            chunks = []
            while True:
                line = self._readline(deadline)
                if line is None:
                    self.agent_broken = 'truncated reply to %r' % script[:60]
                    raise RigError('timeout in reply to %r' % script[:60])
                if line.startswith('@@END ' + cid + ' '):
                    rc = int(line.split()[2])
                    break
                if line == '@@READY':
                    self.log('agent restarted while answering %s' % cid)
                    raise RigError('agent restarted during %s' % what)
                chunks.append(line)
            out = base64.b64decode(''.join(chunks)).decode(errors='replace')
        if check and rc != 0:
            raise RigError('guest command failed (rc %d): %s\n%s' % (rc, script[:200], out[-2000:]))
        return rc, out

    # ------------------------------------------------------------------ driver
    def modname(self, driver=None):
        return (driver or self.driver).replace('-', '_')

    def kallsyms(self, sym):
        """Address of a kernel symbol (stable with nokaslr), cached."""
        if not hasattr(self, '_ksyms'):
            self._ksyms = {}
        if sym not in self._ksyms:
            rc, out = self.sh("grep -m1 ' %s$' /proc/kallsyms" % sym, timeout=30)
            self._ksyms[sym] = int(out.split()[0], 16) if rc == 0 and out.strip() else None
        return self._ksyms[sym]

    KERNEL_MAP = 0xFFFFFFFF80000000     # x86-64 kernel image mapping (phys_base 0 with nokaslr)

    def hz(self):
        """CONFIG_HZ of the guest kernel (from its build tree)."""
        conf = os.path.join(self.kernel.root or '/', self.kernel.kdir.lstrip('/'), 'include', 'config',
                            'auto.conf')
        with open(conf) as f:
            m = re.search(r'^CONFIG_HZ=(\d+)$', f.read(), re.M)
        return int(m.group(1)) if m else 250

    def guest_clock(self):
        """Make the host read the guest's jiffies_64 at every GET_TARGET
        (host.clock_samples: [(command number, jiffies)]), after checking that
        the address reads a clock. QEMU's clock stands still while the host
        answers, so guest time is what the guest lived through. Returns
        (HZ, f) with f(jiffies) -> the guest's /proc/uptime seconds."""
        hz = self.hz()
        addr = self.kallsyms('jiffies_64')
        assert addr, 'no jiffies_64 in /proc/kallsyms'
        paddr = addr - self.KERNEL_MAP
        rc, out = self.cat('/proc/uptime')
        up = float(out.split()[0])
        j = int.from_bytes(self.host.call_stopped(lambda h: h.read_phys(paddr, 8)), 'little')
        since_boot = (j - ((1 << 32) - 300 * hz)) / hz     # jiffies_64 starts at INITIAL_JIFFIES
        assert abs(since_boot - up) < 5, 'jiffies_64 at %#x reads %d (%.1fs), uptime %.1fs' % (
            paddr, j, since_boot, up)
        # jiffies started counting a little after the clock /proc/uptime reads
        offset = up - since_boot

        def uptime(jiffies):
            return (jiffies - j) / hz + since_boot + offset
        self.host.config.clock_paddr = paddr
        return hz, uptime

    def load(self, params='', driver=None, timeout=60, arm=True, prearm=True, wrap=''):
        """insmod the driver (vmw_balloon: vmw_vmci first), arm the host. Returns (rc, output).

        wrap: a shell prefix for the insmod command (e.g. one that marks the
        insmod process for fault injection and execs its arguments).

        prearm: breakpoints go in before the module's init runs (see VmHost.prearm), so
        hypercalls made by init are answered too; sysfs confirms them after insmod.
        """
        driver = driver or self.driver
        mod = self.modname(driver)
        if arm and prearm and not self.config.never_answer:
            addr = self.kallsyms('do_init_module')
            if not addr:
                raise RigError('prearm: no do_init_module in the guest kallsyms')
            self.host.prearm(self.ko_path(driver), mod, addr)
        pre = ''
        if driver == 'vmw_balloon':
            pre = 'grep -q "^vmw_vmci " /proc/modules || insmod /modules/vmw_vmci.ko || echo "vmw_vmci insmod failed"\n'
        script = pre + (
            '%sinsmod /modules/%s.ko %s\nrc=$?\necho "@@RC $rc"\n'
            'if [ $rc = 0 ]; then for f in /sys/module/%s/sections/.* /sys/module/%s/sections/*; do '
            '[ -f "$f" ] && echo "@@SEC ${f##*/} $(cat $f)"; done; fi\nexit $rc\n') % (
                wrap + ' ' if wrap else '', driver, params, mod, mod)
        rc, out = self.sh(script, timeout=timeout)
        sections = {}
        lines = []
        for line in out.splitlines():
            if line.startswith('@@SEC '):
                _, sec, addr = line.split()
                sections[sec] = int(addr, 16)
            elif not line.startswith('@@RC '):
                lines.append(line)
        text = '\n'.join(lines)
        self.log('insmod %s %s -> rc %d%s' % (driver, params, rc, (': ' + text.strip()) if text.strip() else ''))
        if self.host.init_bp is not None:
            self.host._request('unprearm', None, 30)
        if arm and prearm and self.host.prearm_result:
            self.log('pre-armed %s: %s' % (mod, self.host.prearm_result))
            if not isinstance(self.host.prearm_result, dict) and rc == 0:
                # init's hypercalls went unanswered: the scenario would not
                # test what it says (the driver's retry hides it otherwise)
                raise RigError('pre-arming %s failed: %s' % (mod, self.host.prearm_result))
        if rc != 0 and self.host.bps and not self.loaded:
            # init ran (pre-armed) and failed: its text is freed, drop the breakpoints
            self.host.disarm()
        if rc == 0:
            self.loaded = mod
            if arm:
                if not sections or not any(sections.values()):
                    raise RigError('no section addresses for %s: %r' % (mod, sections))
                addrs = self.host.arm(self.ko_path(driver), sections)
                self.log('armed %d breakpoints in %s' % (len(addrs), mod))
        return rc, text

    def unload(self, timeout=120, driver=None):
        """rmmod the driver, then remove the breakpoints. Returns (rc, output)."""
        mod = self.modname(driver) if driver else (self.loaded or self.modname())
        rc, out = self.sh('rmmod %s' % mod, timeout=timeout)
        self.log('rmmod %s -> rc %d%s' % (mod, rc, (': ' + out.strip()) if out.strip() else ''))
        if rc == 0:
            self.host.disarm()
            self.loaded = None
        return rc, out

    # ------------------------------------------------------------------ observations
    def stats(self, path=None):
        """Parse /sys/kernel/debug/vmmemctl (or `path`) into a dict."""
        rc, out = self.sh('@cat %s' % (path or '/sys/kernel/debug/vmmemctl'), timeout=30)
        d = parse_kv(out) if rc == 0 else {}
        self.last_stats = d
        return d

    def meminfo(self):
        rc, out = self.sh('@cat /proc/meminfo', timeout=30)
        d = {}
        for line in out.splitlines():
            m = re.match(r'(\S+):\s+(\d+)', line)
            if m:
                d[m.group(1)] = int(m.group(2))
        return d

    def free_kb(self):
        """Free memory in kB counted exactly: MemFree plus the pages parked on the
        per-CPU free lists (/proc/zoneinfo 'count:'), which MemFree leaves out and
        which move by several MiB on their own."""
        rc, out = self.cat('/proc/meminfo', '/proc/zoneinfo')
        m = re.search(r'^MemFree:\s+(\d+)', out, re.M)
        if rc != 0 or not m:
            raise RigError('cannot read meminfo/zoneinfo: %s' % out[-500:])
        pcp = sum(int(x) for x in re.findall(r'^\s+count:\s+(\d+)', out, re.M))
        return int(m.group(1)) + pcp * 4

    def dmesg(self, timeout=30):
        rc, out = self.sh('@dmesg', timeout=timeout)
        return out

    def console(self):
        try:
            with open(self.console_path, errors='replace') as f:
                return f.read()
        except (OSError, AttributeError):
            return ''

    def dmesg_problems(self, text=None):
        if text is None:
            try:
                text = self.dmesg()
            except RigError:
                text = self.console()
        lines = text.splitlines()
        return [l for i, l in enumerate(lines) if PROBLEM_RE.search(l)
                and ('BUG: KCSAN:' not in l or _kcsan_report_names_module(lines, i))]

    def wait_for(self, pred, timeout=60, what='condition', interval=0.5):
        """Poll pred() until truthy; return its value. Raises RigError on timeout
        (after timeout * the kernel's slowdown)."""
        timeout *= self.slowdown
        deadline = time.monotonic() + timeout
        last = None
        err = None
        t = time.monotonic()
        while True:
            try:
                last = pred()
                err = None
                if last:
                    self.log('%s: ok after %.1fs' % (what, time.monotonic() - t))
                    return last
            except RigError:
                raise
            except Exception as e:
                err = repr(e)
            if time.monotonic() > deadline:
                hs = self.host.summary() if self.host else {}
                brief = {k: hs.get(k) for k in ('target', 'locked_4k', 'locked_2m', 'commands', 'starts',
                                                'granted_caps', 'loop_dead')}
                raise RigError('timeout (%ss) waiting for %s; last=%r err=%s; stats=%s; host=%s' % (
                    timeout, what, last, err, json.dumps(self.last_stats), json.dumps(brief)))
            time.sleep(interval)
