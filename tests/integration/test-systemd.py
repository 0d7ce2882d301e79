#!/usr/bin/env python3
"""kvmid under systemd, without PID 1: socket activation through
systemd-socket-activate, the sd_notify protocol (READY/STATUS/RELOADING/
STOPPING/WATCHDOG) seen by a NOTIFY_SOCKET receiver, the system calls and
address families kvmid uses against the unit's sandbox, the make install
layout, sysusers.d and tmpfiles.d applied to a scratch root, and the
installed units through systemd-analyze verify and security."""

import ctypes
import json
import os
import re
import shlex
import shutil
import signal
import socket
import stat
import struct
import subprocess
import tempfile
import threading
import time
from kvmidtest import Tap, Varlink, Sim, KVMID, KVMICTL, KVMI_SIM, SANITIZERS, off_host_libvirt, run_sim

t = Tap()
TOP_SRCDIR = os.environ.get("top_srcdir", ".")
TOP_BUILDDIR = os.environ.get("top_builddir", ".")
SSA = shutil.which("systemd-socket-activate")
ANALYZE = shutil.which("systemd-analyze")
# The exposure systemd-analyze security gives kvmid.service, and the items it
# still counts against it, each one a decision documented in the unit: a
# change to the unit that makes either worse fails here.
EXPOSURE_MAX = 1.0
EXPOSED_ITEMS = {
    "RootDirectory=/RootImage=",         # kvmid needs the host's libvirt, /etc/kvmid
    "RestrictAddressFamilies=~AF_UNIX",  # every listener and libvirtd
    "RestrictAddressFamilies=~…",        # AF_VSOCK, for guests
    "PrivateNetwork=",                   # vsock follows network namespaces
    "PrivateUsers=",                     # SO_PEERCRED uids are access control
    "DeviceAllow=",                      # char-rtc:r, which ProtectClock= adds
}
NAMES = {"admin": "io.kvmid.Admin", "introspector": "io.kvmid.Introspector",
         "hypervisor": "io.kvmid.Hypervisor", "kvmi": "kvmi"}
UUID = "6f1d4a4e-8c55-4b4e-9d1e-2a7b3c4d5e60"

work = tempfile.mkdtemp(prefix="kvmid-systemd-")


def wait_for(pred, timeout=10):
    end = time.time() + timeout
    while time.time() < end:
        if pred():
            return True
        time.sleep(0.05)
    return False


def child_env(**extra):
    """The test's environment without anything a service manager sets."""
    e = {k: v for k, v in os.environ.items()
         if not k.startswith(("LISTEN_", "WATCHDOG_", "NOTIFY_SOCKET", "MAKE", "MFLAGS"))}
    e["KVMID_VALIDATE_REPLIES"] = "1"
    e.update(extra)
    return e


class Notify:
    """A NOTIFY_SOCKET: collects every datagram with its sender's pid."""

    def __init__(self, path):
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(path)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        self.sock.settimeout(0.2)
        self.msgs = []           # (monotonic time, pid, {field: value}, raw)
        self.lock = threading.Lock()
        self.running = True
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        # Drain continuously: sd_notify() blocks once the queue is full.
        while self.running:
            try:
                data, anc, _, _ = self.sock.recvmsg(4096, socket.CMSG_SPACE(12))
            except (socket.timeout, TimeoutError):
                continue
            except OSError:
                return
            pid = None
            for level, kind, cdata in anc:
                if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
                    pid = struct.unpack("iII", cdata[:12])[0]
            raw = data.decode(errors="replace")
            fields = dict(line.split("=", 1) for line in raw.split("\n") if "=" in line)
            with self.lock:
                self.msgs.append((time.monotonic(), pid, fields, raw))

    def snapshot(self):
        with self.lock:
            return list(self.msgs)

    def wait(self, pred, start=0, timeout=10):
        """The index of the first message from start on with pred(fields), or None."""
        end = time.time() + timeout
        while time.time() < end:
            msgs = self.snapshot()
            for i in range(start, len(msgs)):
                if pred(msgs[i][2]):
                    return i
            time.sleep(0.02)
        return None

    def close(self):
        self.running = False
        self.thread.join(2)
        self.sock.close()


def start_kvmid(name, conf="", env=None, wrap=None, args=(), preexec_fn=None):
    """kvmid --foreground in work/name; wrap(cmd) may put a wrapper around it.
    Off the host's libvirt unless conf has a [libvirt] section."""
    d = os.path.join(work, name)
    os.makedirs(d, exist_ok=True)
    cp = os.path.join(d, "kvmid.conf")
    with open(cp, "w") as f:
        f.write(off_host_libvirt(conf))
    cmd = [KVMID, "--foreground", "--config", cp, "--runtime-dir", os.path.join(d, "run"),
           "--log-level", "debug"] + list(args)
    if wrap:
        cmd = wrap(cmd)
    log = open(os.path.join(d, "kvmid.log"), "w")
    p = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env or child_env(), preexec_fn=preexec_fn)
    p.logfile = log.name
    p.dir = d
    return p


def logtext(p):
    with open(p.logfile) as f:
        return f.read()


def stop(p, timeout=20):
    if p.poll() is None:
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
            return None
    return p.returncode


def sockets_in(d):
    if not os.path.isdir(d):
        return []
    return sorted(n for n in os.listdir(d) if stat.S_ISSOCK(os.lstat(os.path.join(d, n)).st_mode))


def activate_cmd(paths, names, env, inherit=()):
    """systemd-socket-activate passes only the environment it is told to;
    inherit: names whose values it takes from its own environment."""
    def wrap(cmd):
        w = [SSA]
        for p in paths:
            w += ["-l", p]
        w.append("--fdname=" + ":".join(names))
        for k in ("KVMID_VALIDATE_REPLIES", "ASAN_OPTIONS", "UBSAN_OPTIONS", "NOTIFY_SOCKET", "WATCHDOG_USEC"):
            if k in env:
                w += ["-E", "%s=%s" % (k, env[k])]
        for k in inherit:
            w += ["-E", k]
        return w + cmd
    return wrap


# ---------------------------------------------------------------- socket activation
def test_activation():
    if not SSA:
        t.skip("socket activation", "systemd-socket-activate not found (apt-get install -y systemd)")
        return
    sa = os.path.join(work, "sa")
    os.makedirs(sa)
    paths = {n: os.path.join(sa, NAMES[n]) for n in NAMES}
    notify = Notify(os.path.join(work, "notify-sa.sock"))
    env = child_env(NOTIFY_SOCKET=notify.path)
    conf = "[domain web1]\nuuid = %s\ncookie = none\n" % UUID
    names = ["admin", "introspector", "hypervisor", "kvmi"]
    p = start_kvmid("activated", conf, env, activate_cmd([paths[n] for n in names], names, env))
    run = os.path.join(p.dir, "run")
    try:
        t.ok(wait_for(lambda: all(os.path.exists(paths[n]) for n in names)),
             "systemd-socket-activate listens on the four paths", logtext(p))
        t.ok(p.poll() is None and "ready" not in logtext(p), "kvmid is not started before the first connection")
        # The first connection starts kvmid; it waits in the listen backlog.
        c = Varlink(paths["admin"], timeout=20)
        r = c.call("io.kvmid.Admin.GetStatus")
        t.ok(r is not None and "error" not in r and "version" in r.get("parameters", {}),
             "the connection that activated kvmid is answered on the passed admin socket", r)
        c.close()
        log = logtext(p)
        for n in ("admin", "introspector", "hypervisor"):
            t.ok("%s listener: using socket passed by systemd" % n in log,
                 "%s: the passed socket is used" % n, log)
        t.ok("KVMI listener: using socket passed by systemd" in log, "kvmi: the passed socket is used", log)
        t.ok(not re.search(r"listener on \"", log), "kvmid binds no socket itself", log)
        t.eq(sockets_in(run), [], "no socket appears in kvmid's runtime directory")
        i = notify.wait(lambda f: f.get("READY") == "1")
        msgs = notify.snapshot()
        t.ok(i is not None and msgs[i][1] == p.pid,
             "READY=1 comes from the activated main process (pid %d)" % p.pid,
             [(m[1], m[3]) for m in msgs])
        for n, want in (("introspector", "org.varlink.service.GetInfo"), ("hypervisor", "org.varlink.service.GetInfo")):
            c = Varlink(paths[n])
            r = c.call(want)
            t.ok(r is not None and "error" not in r, "%s: answers on the passed socket" % n, r)
            c.close()
        t.eq(stop(p), 0, "SIGTERM: exit status 0")
        t.eq(sorted(os.listdir(sa)), sorted(NAMES[n] for n in names),
             "the passed sockets stay: they belong to the socket units")
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        notify.close()

    # Partial activation: kvmid binds exactly what it did not get.
    sa2 = os.path.join(work, "sa2")
    os.makedirs(sa2)
    given = {"admin": os.path.join(sa2, NAMES["admin"]), "kvmi": os.path.join(sa2, "kvmi"),
             "bogus": os.path.join(sa2, "bogus")}
    env = child_env()
    p = start_kvmid("partial", "", env, activate_cmd(list(given.values()), list(given), env))
    run = os.path.join(p.dir, "run")
    try:
        t.ok(wait_for(lambda: all(os.path.exists(x) for x in given.values())), "partial: sockets listening")
        c = Varlink(given["admin"], timeout=20)
        r = c.call("io.kvmid.Admin.GetStatus")
        t.ok(r is not None and "error" not in r, "partial: answers on the passed admin socket", r)
        c.close()
        log = logtext(p)
        t.eq(sockets_in(run), ["io.kvmid.Hypervisor", "io.kvmid.Introspector"],
             "partial: kvmid binds the introspector and hypervisor sockets itself, nothing else")
        t.ok("admin listener: using socket passed by systemd" in log and
             "KVMI listener: using socket passed by systemd" in log, "partial: admin and kvmi are the passed ones", log)
        t.ok('ignoring socket-activation fd "bogus"' in log, "an fd with an unknown name is ignored, with a warning", log)
        t.eq(stop(p), 0, "partial: SIGTERM: exit status 0")
        t.eq(sockets_in(run), [], "partial: the sockets kvmid bound are removed at stop")
        t.ok(os.path.exists(given["admin"]), "partial: the passed ones are not")
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()

    # QEMU on the passed KVMI socket.  systemd-socket-activate, like a socket
    # unit without NonBlocking=, passes a blocking listening socket.
    what = "kvmi: a target's QEMU completes its handshake on a passed blocking socket, then SIGTERM stops kvmid"
    if not os.access(KVMI_SIM, os.X_OK):
        t.skip(what, "kvmi-sim is not built")
        return
    sa3 = os.path.join(work, "sa3")
    os.makedirs(sa3)
    given = [os.path.join(sa3, NAMES["admin"]), os.path.join(sa3, "kvmi")]
    env = child_env()
    p = start_kvmid("kvmi", "[domain web1]\nuuid = %s\ncookie = none\n" % UUID, env,
                    activate_cmd(given, ["admin", "kvmi"], env))
    try:
        wait_for(lambda: all(os.path.exists(x) for x in given))
        c = Varlink(given[0], timeout=20)
        c.call("org.varlink.service.GetInfo")
        c.close()
        rc, rep, err = run_sim(["--socket", given[1], "--vcpus", "1", "--events", "5", "--rate", "0",
                                "--timeout", "5", "--vm", "web1,%s" % UUID], timeout=30)
        code = stop(p, 10)
        # A blocking listening socket would block the loop in accept4().
        t.ok(rc == 0 and code == 0, what, "kvmi-sim exit %s, kvmid exit %s: %s" % (rc, code, err.strip()[-300:]))
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()


# ---------------------------------------------------------------- sd_notify
STATUS_RE = re.compile(r"^Serving: (\d+) domains?, (\d+) KVMI channels? ready, (\d+) sessions?, (\d+) subscribers?, "
                       r"(\d+) connections?(; libvirt (?:connected|disconnected))?$")


def test_notify():
    notify = Notify(os.path.join(work, "notify.sock"))
    p = start_kvmid("notify", "[domain web1]\nuuid = %s\ncookie = none\n" % UUID,
                    child_env(NOTIFY_SOCKET=notify.path))
    try:
        i = notify.wait(lambda f: "READY" in f)
        msgs = notify.snapshot()
        f = msgs[i][2] if i is not None else {}
        t.ok(f.get("READY") == "1" and "STATUS" in f, "READY=1 comes with STATUS=", msgs)
        t.ok(i is not None and msgs[i][1] == p.pid, "READY=1 comes from kvmid's own pid")
        t.ok(STATUS_RE.match(f.get("STATUS", "")) is not None, "STATUS= is the one-line summary: %r" % f.get("STATUS"))
        t.ok(f.get("STATUS", "").startswith("Serving: 1 domain, 0 KVMI channels ready, 0 sessions, 0 subscribers, "
                                            "0 connections"),
             "STATUS= counts the configured domain")
        t.ok(not any("WATCHDOG" in m[2] for m in notify.snapshot()), "no WATCHDOG=1 when the manager asks for none")

        # STATUS= follows the counters, at most once a second.
        start = len(notify.snapshot())
        conns = [Varlink(os.path.join(p.dir, "run", NAMES["admin"])) for _ in range(3)]
        for c in conns:
            c.call("org.varlink.service.GetInfo")
        j = notify.wait(lambda f: f.get("STATUS", "").endswith(" 3 connections"), start, timeout=5)
        t.ok(j is not None, "STATUS= shows three open connections within seconds", notify.snapshot()[start:])
        start = len(notify.snapshot())
        t0 = time.monotonic()
        while time.monotonic() - t0 < 3:     # churn: a connection count that changes all the time
            c = Varlink(os.path.join(p.dir, "run", NAMES["admin"]))
            c.call("org.varlink.service.GetInfo")
            c.close()
        n = sum(1 for m in notify.snapshot()[start:] if "STATUS" in m[2])
        t.ok(n <= 5, "STATUS= is sent at most once a second under churn (%d in 3 s)" % n)
        for c in conns:
            c.close()
        if os.access(KVMI_SIM, os.X_OK):
            start = len(notify.snapshot())
            sim = Sim(["--socket", os.path.join(p.dir, "run", "kvmi"), "--vm", "web1,%s" % UUID], p.dir)
            try:
                j = notify.wait(lambda f: ", 1 KVMI channel ready," in f.get("STATUS", ""), start, timeout=8)
                t.ok(j is not None, "STATUS= counts a ready KVMI channel",
                     [m[3] for m in notify.snapshot()[start:]])
            finally:
                sim.close()
        else:
            t.skip("STATUS= counts a ready KVMI channel", "kvmi-sim is not built")

        # SIGHUP: RELOADING=1 with MONOTONIC_USEC=, then READY=1 again.
        for what, conf in (("a good file", "[daemon]\nidle-timeout = 60\n"), ("a broken file", "[daemon]\nnope = 1\n")):
            with open(os.path.join(p.dir, "kvmid.conf"), "w") as fh:
                fh.write(conf)
            start = len(notify.snapshot())
            before = time.monotonic()
            p.send_signal(signal.SIGHUP)
            a = notify.wait(lambda f: f.get("RELOADING") == "1", start)
            b = notify.wait(lambda f: f.get("READY") == "1", a if a is not None else start)
            msgs = notify.snapshot()
            t.ok(a is not None and b is not None and a < b, "SIGHUP with %s: RELOADING=1, then READY=1" % what,
                 [m[3] for m in msgs[start:]])
            usec = int(msgs[a][2].get("MONOTONIC_USEC", "0")) if a is not None else 0
            t.ok(before * 1e6 - 1e6 <= usec <= time.monotonic() * 1e6,
                 "SIGHUP with %s: MONOTONIC_USEC= is CLOCK_MONOTONIC at the reload" % what, usec)

        start = len(notify.snapshot())
        p.send_signal(signal.SIGTERM)
        i = notify.wait(lambda f: f.get("STOPPING") == "1", start)
        t.ok(i is not None, "SIGTERM: STOPPING=1", [m[3] for m in notify.snapshot()[start:]])
        t.eq(stop(p), 0, "SIGTERM: exit status 0")
        after = notify.snapshot()[i + 1:] if i is not None else []
        t.ok(not any("READY" in m[2] for m in after), "no READY=1 after STOPPING=1")
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        notify.close()


def test_watchdog():
    notify = Notify(os.path.join(work, "notify-wd.sock"))
    env = child_env(NOTIFY_SOCKET=notify.path, WATCHDOG_USEC="500000")

    def wrap(cmd):
        # WATCHDOG_PID must be kvmid's: known only after the fork.
        return ["sh", "-c", 'WATCHDOG_PID=$$; export WATCHDOG_PID; exec "$@"', "sh"] + cmd

    p = start_kvmid("watchdog", "", env, wrap)
    try:
        i = notify.wait(lambda f: f.get("READY") == "1")
        t.ok(i is not None, "watchdog: READY=1", logtext(p))
        time.sleep(2.2)
        pings = [m for m in notify.snapshot() if m[2].get("WATCHDOG") == "1"]
        times = [m[0] for m in pings]
        gaps = [b - a for a, b in zip(times, times[1:])]
        t.ok(len(pings) >= 6, "WATCHDOG=1 arrives periodically: %d pings in ~2 s at WATCHDOG_USEC=500000" % len(pings))
        t.ok(gaps and max(gaps) < 0.5, "watchdog: every gap is below the 0.5 s interval (max %.3f s)"
             % (max(gaps) if gaps else -1))
        t.ok(all(m[1] == p.pid for m in pings), "watchdog: the pings come from kvmid's pid")
        # A process that does not run sends nothing: the pings come from it, not from a helper.
        p.send_signal(signal.SIGSTOP)
        time.sleep(0.3)
        n = len(notify.snapshot())
        time.sleep(1.0)
        quiet = [m for m in notify.snapshot()[n:] if "WATCHDOG" in m[2]]
        p.send_signal(signal.SIGCONT)
        t.eq(len(quiet), 0, "watchdog: no ping while kvmid is stopped")
        n = len(notify.snapshot())
        t.ok(notify.wait(lambda f: f.get("WATCHDOG") == "1", n, timeout=3) is not None,
             "watchdog: pings resume when it runs again")
        t.eq(stop(p), 0, "watchdog: SIGTERM: exit status 0")
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        notify.close()

    # WATCHDOG_PID naming another process: the watchdog is not ours.
    notify = Notify(os.path.join(work, "notify-wd2.sock"))
    p = start_kvmid("watchdog-other", "", child_env(NOTIFY_SOCKET=notify.path, WATCHDOG_USEC="200000",
                                                    WATCHDOG_PID="1"))
    try:
        t.ok(notify.wait(lambda f: f.get("READY") == "1") is not None, "WATCHDOG_PID of another process: READY=1")
        time.sleep(1)
        t.ok(not any("WATCHDOG" in m[2] for m in notify.snapshot()),
             "WATCHDOG_PID of another process: no pings")
        t.eq(stop(p), 0, "WATCHDOG_PID of another process: exit status 0")
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        notify.close()


# ---------------------------------------------------------------- the sandbox
def unit_lines(path, key):
    vals = []
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line.startswith(key + "="):
                vals.append(line[len(key) + 1:])
    return vals


def syscall_groups():
    """{"@group": [members]} from systemd-analyze syscall-filter."""
    out = subprocess.run([ANALYZE, "syscall-filter"], capture_output=True, text=True).stdout
    groups, cur = {}, None
    for line in out.splitlines():
        s = line.strip()
        if not s or s.startswith("#"):
            continue
        if not line[0].isspace() and s.startswith("@"):
            cur = groups.setdefault(s, [])
        elif cur is not None:
            cur.append(s)
    return groups


def expand(names, groups, seen=None):
    seen = set() if seen is None else seen
    out = set()
    for n in names:
        if n.startswith("@"):
            if n in seen:
                continue
            seen.add(n)
            out |= expand(groups.get(n, []), groups, seen)
        else:
            out.add(n)
    return out


def allowed_syscalls(unit):
    groups = syscall_groups()
    allow, deny = set(), set()
    for v in unit_lines(unit, "SystemCallFilter"):
        if v.startswith("~"):
            deny |= expand(v[1:].split(), groups)
        else:
            allow |= expand(v.split(), groups)
    return allow - deny


def deny_write_exec():
    """What MemoryDenyWriteExecute= does, without a service manager:
    prctl(PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN), inherited by kvmid.
    Linux 6.3 and later."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(65, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_MDWE)")


def have_mdwe():
    """Whether deny_write_exec() works here: a child tries it."""
    try:
        return subprocess.run(["true"], preexec_fn=deny_write_exec).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


HAVE_MDWE = have_mdwe()


def test_syscalls(unit):
    """What kvmid does in a session, under strace, against SystemCallFilter=,
    RestrictAddressFamilies= and MemoryDenyWriteExecute= of the unit: the
    sandbox must not take anything kvmid needs."""
    what = "the sandbox fits kvmid's system calls"
    if not SSA or not ANALYZE:
        t.skip(what, "systemd-socket-activate or systemd-analyze not found (apt-get install -y systemd)")
        return
    strace = shutil.which("strace")
    if not strace:
        t.skip(what, "strace not found (apt-get install -y strace)")
        return
    if SANITIZERS:
        t.skip(what, "a sanitizer build makes system calls of its own")
        return
    allowed = allowed_syscalls(unit)
    families = set(" ".join(unit_lines(unit, "RestrictAddressFamilies")).split())
    sa = os.path.join(work, "sa-strace")
    os.makedirs(sa)
    names = ["admin", "introspector", "hypervisor", "kvmi"]
    paths = [os.path.join(sa, NAMES[n]) for n in names]
    out = os.path.join(work, "strace.out")
    notify = Notify(os.path.join(work, "notify-strace.sock"))
    env = child_env(NOTIFY_SOCKET=notify.path, WATCHDOG_USEC="400000")
    # libvirt's test driver: its client library runs in kvmid's sandbox too.
    node = os.path.abspath(os.path.join(TOP_SRCDIR, "tests", "libvirt", "node.xml"))
    conf = "[domain web1]\nuuid = %s\ncookie = none\n[libvirt]\nuri = test://%s\n" % (UUID, node)

    def wrap(cmd):
        # WATCHDOG_PID: the pid of sh, which systemd-socket-activate and then
        # kvmid keep by exec.
        return ([strace, "-f", "-qq", "-o", out, "sh", "-c", 'WATCHDOG_PID=$$; export WATCHDOG_PID; exec "$@"',
                 "sh"] + activate_cmd(paths, names, env, inherit=["WATCHDOG_PID"])(cmd))

    p = start_kvmid("strace", conf, env, wrap, preexec_fn=deny_write_exec if HAVE_MDWE else None)
    try:
        if not wait_for(lambda: all(os.path.exists(x) for x in paths), 20):
            t.ok(False, what, logtext(p))
            return
        # The first connection starts kvmid.
        rc = subprocess.run([KVMICTL, "--socket", paths[0], "--json", "status"], capture_output=True, text=True,
                            timeout=60)
        t.eq(rc.returncode, 0, "under strace: kvmictl status through the activated socket")
        lv = json.loads(rc.stdout or "{}").get("libvirt") or {}
        t.ok(lv.get("connected") is True and lv.get("domains", 0) > 0,
             "under strace and MemoryDenyWriteExecute: libvirt connected, its domains read", rc.stdout)
        # p is strace: signals go to kvmid, whose pid READY=1 gives.
        i = notify.wait(lambda f: f.get("READY") == "1", timeout=30)
        if i is None:
            t.ok(False, what, logtext(p))
            return
        kpid = notify.snapshot()[i][1]
        t.ok(notify.wait(lambda f: f.get("STATUS", "").endswith("; libvirt connected"), timeout=10) is not None,
             "STATUS= says libvirt is connected", notify.snapshot())
        if os.access(KVMI_SIM, os.X_OK):
            rc, rep, err = run_sim(["--socket", paths[3], "--vcpus", "1", "--events", "20", "--rate", "0",
                                    "--vm", "web1,%s" % UUID])
            t.eq(rc, 0, "under strace: a target's QEMU on the activated KVMI socket")
        subprocess.run([KVMICTL, "--socket", paths[0], "policy", "reload"], capture_output=True, timeout=60)
        os.kill(kpid, signal.SIGHUP)
        notify.wait(lambda f: f.get("RELOADING") == "1", timeout=10)
        time.sleep(1.0)                      # watchdog and STATUS= timers
        os.kill(kpid, signal.SIGTERM)
        try:
            rc = p.wait(60)                  # strace exits with kvmid's status
        except subprocess.TimeoutExpired:
            rc = None
            os.kill(kpid, signal.SIGKILL)
        t.eq(rc, 0, "under strace: a clean stop")
    finally:
        if p.poll() is None:
            # Killing strace would leave its tracee running: kill that first.
            try:
                with open(out) as f:
                    os.kill(int(f.readline().split()[0]), signal.SIGKILL)
            except (OSError, ValueError, IndexError):
                pass
            p.kill()
            p.wait()
        notify.close()

    # Only what kvmid does: from its execve on, in its threads.
    kvmid_pids, used, fams, wx, unfinished = set(), {}, set(), [], {}
    line_re = re.compile(r"^(\d+)\s+(?:<\.\.\. )?(\w+)[( ]")
    with open(out) as f:
        for line in f:
            m = line_re.match(line)
            if not m:
                continue
            pid, name = int(m.group(1)), m.group(2)
            if name == "execve" and os.path.basename(KVMID) in line.split(",")[0] and "= 0" in line:
                kvmid_pids.add(pid)
                continue
            if name in ("clone", "clone3") and pid in kvmid_pids:
                r = re.search(r"= (\d+)\s*$", line)
                if r:
                    kvmid_pids.add(int(r.group(1)))
            if pid not in kvmid_pids:
                continue
            # strace -f splits a call another thread interrupted into
            # "<unfinished ...>" and "<... NAME resumed>": judge the joined
            # line, whose result only the second half carries.
            if line.rstrip().endswith("<unfinished ...>"):
                unfinished[pid] = line.rstrip()[:-len("<unfinished ...>")]
                continue
            if "resumed>" in line:
                if pid not in unfinished:
                    continue
                line = unfinished.pop(pid) + line.split("resumed>", 1)[1]
            used.setdefault(name, line.strip())
            if name == "socket":
                fm = re.match(r"^\d+\s+socket\((AF_\w+)", line)
                if fm:
                    fams.add(fm.group(1))
            # The kernel refuses them under PR_SET_MDWE as the unit's
            # MemoryDenyWriteExecute= would (PCRE2's JIT, run by libvirt's
            # log filters through GLib, tries once and falls back): only
            # one that succeeded is a finding.
            if name in ("mmap", "mprotect", "pkey_mprotect") and "PROT_WRITE" in line and "PROT_EXEC" in line \
                    and not re.search(r"= -1 E", line):
                wx.append(line.strip())
    t.ok(kvmid_pids, "strace saw kvmid's execve", open(out).read()[-2000:])
    # Denied on purpose, and harmless: under the filter they fail with EPERM
    # (SystemCallErrorNumber=) and the caller carries on.  set_mempolicy:
    # libnuma's constructor (libvirt links it) sets its own NUMA policy.
    harmless = ("set_mempolicy",)
    outside = sorted(n for n in used if n not in allowed and n not in ("execve", "exit", "exit_group")
                     and n not in harmless)
    t.ok(not outside, "every system call kvmid made is allowed by SystemCallFilter= (%d distinct)" % len(used),
         "\n".join(used[n] for n in outside))
    t.ok(fams <= families, "every socket is of an allowed address family: %s" % " ".join(sorted(fams)),
         "used %s, allowed %s" % (sorted(fams), sorted(families)))
    if HAVE_MDWE:
        t.ok(not wx, "no writable and executable mapping (MemoryDenyWriteExecute=)", "\n".join(wx))
    else:
        t.skip("no writable and executable mapping (MemoryDenyWriteExecute=)",
               "this kernel has no PR_SET_MDWE (Linux 6.3) to refuse them as the unit does")


# ---------------------------------------------------------------- make install
def install_dirs():
    return dict(kv.split("=", 1) for kv in os.environ.get("INSTALL_DIRS", "").split() if "=" in kv)


def test_install():
    """Returns the DESTDIR, or None."""
    dirs = install_dirs()
    if not dirs or not shutil.which("make"):
        t.skip("make install", "INSTALL_DIRS not set or no make: run through make check")
        return None
    dest = os.path.join(work, "destdir")
    # -o: never rebuild from inside a test; make check built everything.
    p = subprocess.run(["make", "-C", TOP_BUILDDIR, "-o", "all-am", "-o", "kvmid", "-o", "kvmictl",
                        "install", "DESTDIR=" + dest], capture_output=True, text=True, timeout=300, env=child_env())
    if not t.eq(p.returncode, 0, "make install DESTDIR=..."):
        print("# " + (p.stdout + p.stderr)[-3000:].replace("\n", "\n# "))
        return None

    def at(d, *rest):
        return os.path.join(dest + dirs[d], *rest)

    expect = [
        (at("sbindir", "kvmid"), True),
        (at("bindir", "kvmictl"), True),
        (at("systemdsystemunitdir", "kvmid.service"), False),
        (at("systemdsystemunitdir", "kvmid-admin.socket"), False),
        (at("systemdsystemunitdir", "kvmid-introspector.socket"), False),
        (at("systemdsystemunitdir", "kvmid-hypervisor.socket"), False),
        (at("systemdsystemunitdir", "kvmid-kvmi.socket"), False),
        (at("sysusersdir", "kvmid.conf"), False),
        (at("tmpfilesdir", "kvmid.conf"), False),
        (at("sysconfdir", "kvmid", "kvmid.conf.example"), False),
        (at("sysconfdir", "kvmid", "policy.example"), False),
        (at("mandir", "man8", "kvmid.8"), False),
        (at("mandir", "man1", "kvmictl.1"), False),
        (at("mandir", "man5", "kvmid.conf.5"), False),
        (at("mandir", "man5", "kvmid.policy.5"), False),
        (at("mandir", "man5", "kvmid-audit.5"), False),
    ]
    missing = [path for path, exe in expect if not (os.path.isfile(path) and (not exe or os.access(path, os.X_OK)))]
    t.ok(not missing, "installed: binaries, 5 units, sysusers.d, tmpfiles.d, examples, 5 man pages",
         "missing: " + " ".join(missing))
    t.ok(not os.path.exists(at("sysconfdir", "kvmid", "kvmid.conf")) and
         not os.path.exists(at("sysconfdir", "kvmid", "policy")),
         "make install installs no kvmid.conf or policy that could overwrite an operator's")

    unit = at("systemdsystemunitdir", "kvmid.service")
    text = open(unit).read()
    t.ok("ExecStart=%s/kvmid --foreground" % dirs["sbindir"] in text, "ExecStart= names the installed kvmid")
    t.ok("@" not in re.sub(r"@[a-z-]+( |$)", "", " ".join(unit_lines(unit, "SystemCallFilter"))) and
         not re.search(r"@[a-z]+@", text), "no @variable@ is left unsubstituted")
    for n in NAMES:
        s = open(at("systemdsystemunitdir", "kvmid-%s.socket" % n)).read()
        t.ok("ListenStream=%s/kvmid/%s\n" % (dirs["runstatedir"], NAMES[n]) in s and
             "FileDescriptorName=%s\n" % n in s and "Service=kvmid.service\n" in s,
             "kvmid-%s.socket: path, FileDescriptorName=%s, Service=kvmid.service" % (n, n))

    policy = at("sysconfdir", "kvmid", "policy.example")
    p = subprocess.run([KVMICTL, "policy", "check", policy], capture_output=True, text=True, timeout=30)
    t.eq(p.returncode, 0, "kvmictl policy check policy.example")
    rules = os.path.join(work, "policy.uncommented")
    with open(policy) as f, open(rules, "w") as g:
        g.write(re.sub(r"(?m)^#(allow|deny)", r"\1", f.read()))
    p = subprocess.run([KVMICTL, "policy", "check", rules], capture_output=True, text=True, timeout=30)
    t.ok(p.returncode == 0, "policy.example: its commented example rules check too", p.stdout + p.stderr)

    conf = at("sysconfdir", "kvmid", "kvmid.conf.example")
    p = subprocess.run([KVMID, "--check-config", "--config", conf], capture_output=True, text=True, timeout=30)
    t.eq(p.returncode, 0, "kvmid --check-config kvmid.conf.example")
    full = os.path.join(work, "kvmid.conf.uncommented")
    with open(conf) as f, open(full, "w") as g:
        g.write(re.sub(r"(?m)^#(?=[a-z\[])", "", f.read()))
    p = subprocess.run([KVMID, "--check-config", "--config", full], capture_output=True, text=True, timeout=30)
    t.ok(p.returncode == 0, "kvmid.conf.example: every commented default is a valid setting", p.stderr)
    return dest


def test_sysusers_tmpfiles(dest):
    what = "sysusers.d and tmpfiles.d on a scratch root"
    dirs = install_dirs()
    sysusers, tmpfiles = shutil.which("systemd-sysusers"), shutil.which("systemd-tmpfiles")
    if not dest or not sysusers or not tmpfiles:
        t.skip(what, "no installation or no systemd-sysusers/systemd-tmpfiles")
        return
    if os.geteuid() != 0:
        t.skip(what, "needs root to give files to kvmid")
        return
    root = os.path.join(work, "root")
    os.makedirs(os.path.join(root, "etc"))
    for f in ("passwd", "group"):
        open(os.path.join(root, "etc", f), "w").close()
    conf = dest + dirs["sysusersdir"] + "/kvmid.conf"
    p = subprocess.run([sysusers, "--root=" + root, conf], capture_output=True, text=True, timeout=60)
    t.eq(p.returncode, 0, "systemd-sysusers applies kvmid's file")
    users = {l.split(":")[0]: l.split(":") for l in open(os.path.join(root, "etc", "passwd")) if ":" in l}
    groups = {l.split(":")[0]: l.strip().split(":") for l in open(os.path.join(root, "etc", "group")) if ":" in l}
    t.ok("kvmid" in users and int(users["kvmid"][2]) < 1000, "sysusers: system user kvmid", users)
    t.ok({"kvmid", "kvmid-admin", "kvmid-introspector", "kvm"} <= set(groups),
         "sysusers: groups kvmid, kvmid-admin, kvmid-introspector and kvm", groups)
    t.ok(all("kvmid" not in g[3].split(",") for g in groups.values()),
         "sysusers: kvmid is a member of no group but its own", groups)

    conf = dest + dirs["tmpfilesdir"] + "/kvmid.conf"
    p = subprocess.run([tmpfiles, "--root=" + root, "--create", conf], capture_output=True, text=True, timeout=60)
    t.ok(p.returncode == 0, "systemd-tmpfiles --create applies kvmid's file", p.stderr)
    uid, gid = int(users["kvmid"][2]), int(groups["kvmid"][2])

    def mode_owner(path):
        try:
            st = os.stat(root + path)
        except OSError:
            return None
        return (oct(stat.S_IMODE(st.st_mode)), st.st_uid, st.st_gid)

    run = dirs["runstatedir"] + "/kvmid"
    t.eq(mode_owner(run), ("0o755", uid, gid),
         "tmpfiles: %s is kvmid's before any socket unit creates it" % run)
    t.eq(mode_owner(dirs["localstatedir"] + "/log/kvmid"), ("0o700", uid, gid), "tmpfiles: the audit log directory")
    t.eq(mode_owner(dirs["localstatedir"] + "/lib/kvmid"), ("0o700", uid, gid), "tmpfiles: the state directory")
    t.eq(mode_owner(dirs["sysconfdir"] + "/kvmid/policy.d"), ("0o755", 0, 0), "tmpfiles: policy.d")


# ---------------------------------------------------------------- the units
def test_units(dest):
    if not ANALYZE:
        t.skip("systemd-analyze verify and security", "systemd-analyze not found (apt-get install -y systemd)")
        return
    dirs = install_dirs()
    if dest:
        unitdir = dest + dirs["systemdsystemunitdir"]
        mandir = dest + dirs["mandir"]
    else:
        unitdir = os.path.join(TOP_BUILDDIR, "systemd")
        mandir = None
    units = ["kvmid.service"] + ["kvmid-%s.socket" % n for n in NAMES]
    # Verify copies whose ExecStart= is the kvmid that exists (the installed
    # one may only exist under DESTDIR); man pages from the installation.
    vdir = os.path.join(work, "units")
    os.makedirs(vdir)
    exe = (dest + dirs["sbindir"] + "/kvmid") if dest else KVMID
    for u in units:
        text = open(os.path.join(unitdir, u)).read()
        if u.endswith(".service"):
            text, n = re.subn(r"(?m)^ExecStart=\S+/kvmid ", "ExecStart=%s " % exe, text)
            t.eq(n, 1, "verify: ExecStart= found in the unit and pointed at %s" % ("the installed kvmid" if dest else
                                                                                    "the built kvmid"))
        with open(os.path.join(vdir, u), "w") as f:
            f.write(text)
    env = child_env(SYSTEMD_LOG_LEVEL="notice")
    args = [ANALYZE, "verify"]
    if mandir and shutil.which("man"):
        env["MANPATH"] = mandir
    else:
        args.append("--man=no")
    p = subprocess.run(args + [os.path.join(vdir, u) for u in units], capture_output=True, text=True,
                       timeout=120, env=env)
    out = (p.stdout + p.stderr).strip()
    t.ok(p.returncode == 0 and out == "", "systemd-analyze verify: %s clean%s" %
         (", ".join(units), "" if "--man=no" in args else ", Documentation= man pages found"), out)
    # verify would miss a typo that silently disables a protection.
    bad = os.path.join(work, "bad")
    os.makedirs(bad)
    shutil.copy(os.path.join(vdir, "kvmid.service"), bad)
    with open(os.path.join(bad, "kvmid.service"), "a") as f:
        f.write("[Service]\nProtectSytem=strict\n")
    p = subprocess.run([ANALYZE, "verify", "--man=no", os.path.join(bad, "kvmid.service")],
                       capture_output=True, text=True, timeout=120, env=env)
    t.ok("ProtectSytem" in p.stdout + p.stderr, "systemd-analyze verify does report a misspelt setting (the check works)")

    # The exposure score of the service, offline.
    p = subprocess.run([ANALYZE, "security", "--offline=true", "--no-pager", os.path.join(vdir, "kvmid.service")],
                       capture_output=True, text=True, timeout=120, env=env)
    out = p.stdout + p.stderr
    m = re.search(r"Overall exposure level for kvmid\.service: (\d+\.\d+) (\w+)", out)
    if not t.ok(m is not None, "systemd-analyze security --offline=true kvmid.service", out[-3000:]):
        return
    score = float(m.group(1))
    print("# kvmid.service exposure: %s %s" % (m.group(1), m.group(2)), flush=True)
    t.ok(score <= EXPOSURE_MAX, "exposure %.1f %s is at most %.1f" % (score, m.group(2), EXPOSURE_MAX))
    exposed = set()
    for line in out.splitlines():
        if line.startswith("✗"):
            exposed.add(line[1:].split()[0])
    t.ok(exposed <= EXPOSED_ITEMS, "nothing exposed beyond the documented decisions",
         "new: %s" % " ".join(sorted(exposed - EXPOSED_ITEMS)))
    return os.path.join(vdir, "kvmid.service")


try:
    test_activation()
    test_notify()
    test_watchdog()
    destdir = test_install()
    test_sysusers_tmpfiles(destdir)
    unit = test_units(destdir)
    src_unit = os.path.join(TOP_BUILDDIR, "systemd", "kvmid.service")
    test_syscalls(unit or src_unit)
finally:
    shutil.rmtree(work, ignore_errors=True)
t.done()
