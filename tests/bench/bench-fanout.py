#!/usr/bin/env python3
"""Guest-request fan-out through kvmid, beside the raw limits, and MemMap
decisions with durable audit.

Part 1, fan-out: one target played by kvmi-sim (--vcpus), 1, 8 and 64
subscribers, each a real authenticated introspector connection, all read
by one C process (tests/bench/fanout-reader, one epoll loop).
  - Throughput: the vCPUs send as fast as their acks allow; deliveries/s
    and kvmid's CPU per delivery (all of kvmid's threads, the first field
    of /proc/PID/task/*/schedstat: ns on CPU), with the vCPUs' ack
    p50/p99 under that load.  Subscriber queues are deep here, so a reader
    falling behind loses nothing.
  - Beside it, in the same run, on the same bytes (one event message as
    kvmid serialized it, captured from a subscriber) and the same reader
    count: a writer process pushing to socketpair readers (the same C
    read loop) with (a) one write() per message per reader and (b)
    per-reader batches of 64 flushed with writev (the practical limit);
    the writer's CPU is measured the same way.
  - Ack latency while fanning out: a fixed event rate (--rate), default
    subscriber queues, at 1, 8, 64 subscribers and at 64 plus one that
    never reads (it hits its queue bound and misses events); median p50
    and p99 of --latency-rounds alternating runs, and every round's p99.
Part 2, MemMap allow decisions/s with durable audit: an introspector bound
to an introspector VM (vm-a) mints map tokens, 8 per target (the kernel's
live maximum) on --targets targets; kvmi-sim redeems them as the kernel
would ({"cmd":"redeem"}); then K VMM clients on the Hypervisor socket,
one call outstanding each, ask MemMap for each token.  An allow is
answered only once its audit record is fdatasync'ed, so decisions/s at
K=1 is the sync rate, and group commit is what lets K>1 share syncs:
reported as audit syncs per decision (Admin.GetStatus audit.syncs).
Mappings are unmapped between batches (untimed); a last row measures
with --live-mappings mappings in place.

  - The ack floor, in the same run: kvmi-sim --floor (an echo peer doing
    only what every broker must: read, decode, one CONTINUE write per
    read) under the same vCPUs and closed loop; its CPU per event, shared
    by the deliveries of each event, is the part of kvmid's CPU per
    delivery that no fan-out design can remove.
Targets (issue 5): kvmid CPU per delivery <= 1.0 us at 8 and 64
subscribers, in total; where the ack floor's share alone is 1.0 us or
more (on a host where wakeups are dear, with few events per wakeup),
kvmid's own share above it, both printed; ack p99 within 10% between 1
and 64 subscribers, and with a stalled subscriber.  Exit 1 if one is
missed.

Usage: bench-fanout.py [--build DIR] [--events N] [--vcpus V] [--rate HZ]
                       [--rounds N] [--latency-rounds N] [--clients K,...]
                       [--no-fanout] [--no-memmap] [--keep] [--perf DIR]
Binaries: $KVMID, $KVMI_SIM, $FANOUT_READER, else DIR (default ./build)
/kvmid, /tests/sim/kvmi-sim, /tests/bench/fanout-reader (make, then make
tests/sim/kvmi-sim).  The audit log needs a real file system ($TMPDIR,
else /var/tmp): on tmpfs fdatasync costs nothing.  Local Unix sockets
only; everything it starts is stopped and its directory removed at exit.
About a minute on a 2-core machine.  Never run by make check."""

import argparse
import hashlib
import hmac
import json
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

top = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
ap.add_argument("--build", default=os.path.join(top, "build"), help="build directory (default ./build)")
ap.add_argument("--events", type=int, default=12000, help="events per throughput run (all vCPUs)")
ap.add_argument("--vcpus", type=int, default=2, help="vCPUs of the target sending events")
ap.add_argument("--rate", type=float, default=2000, help="events/s (all vCPUs) for the ack-latency runs")
ap.add_argument("--latency-secs", type=float, default=3.0, help="length of one ack-latency run")
ap.add_argument("--rounds", type=int, default=3, help="alternating throughput rounds; medians are reported")
ap.add_argument("--latency-rounds", type=int, default=5, help="alternating ack-latency rounds; medians are reported")
ap.add_argument("--subscribers", default="1,8,64")
ap.add_argument("--clients", default="1,8,32", help="concurrent VMM clients for MemMap (comma-separated)")
ap.add_argument("--targets", type=int, default=8, help="targets minting map tokens for MemMap")
ap.add_argument("--decisions", type=int, default=2000, help="MemMap decisions per client setting (at most)")
ap.add_argument("--live-mappings", type=int, default=5000, help="then: decisions with this many mappings in place "
                "(0: skip)")
ap.add_argument("--no-memmap", action="store_true")
ap.add_argument("--no-fanout", action="store_true")
ap.add_argument("--no-throughput", action="store_true", help="fan-out: only the ack-latency runs")
ap.add_argument("--no-latency", action="store_true", help="fan-out: only the throughput runs")
ap.add_argument("--keep", action="store_true", help="keep the work directory (logs)")
ap.add_argument("--perf", metavar="DIR", help="record each throughput run of kvmid with perf into "
                "DIR/perf-SUBS.data (for profiling; slows the run; $BENCH_PERF_CMD overrides the command, "
                "{pid} and {out} substituted)")
args = ap.parse_args()

KVMID = os.environ.get("KVMID", os.path.join(args.build, "kvmid"))
SIM = os.environ.get("KVMI_SIM", os.path.join(args.build, "tests", "sim", "kvmi-sim"))
READER = os.environ.get("FANOUT_READER", os.path.join(args.build, "tests", "bench", "fanout-reader"))
for b in (KVMID, SIM, READER):
    if not os.access(b, os.X_OK):
        sys.exit("bench-fanout: %s is not built (make && make tests/sim/kvmi-sim tests/bench/fanout-reader)" % b)
SUBS = [int(x) for x in args.subscribers.split(",")]
UID = os.getuid()
BASE = os.environ.get("TMPDIR") or "/var/tmp"
work = tempfile.mkdtemp(prefix="kvmid-bench-fanout-", dir=BASE)
started = []            # Popen objects to stop at exit
missed_targets = []


def on_sigterm(signo, frame):
    raise SystemExit(128 + signo)


signal.signal(signal.SIGTERM, on_sigterm)


def stop_all():
    for p in reversed(started):
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


# ---- helpers --------------------------------------------------------------------------------------------------

def write_secret(path, data):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.write(fd, data)
    os.close(fd)


def cpu_ns(pid):
    """ns on CPU of every thread of pid (schedstat's first field)."""
    total = 0
    for tid in os.listdir("/proc/%d/task" % pid):
        try:
            with open("/proc/%d/task/%s/schedstat" % (pid, tid)) as f:
                total += int(f.read().split()[0])
        except (OSError, ValueError, IndexError):
            pass        # a thread that just exited
    return total


def median(xs):
    xs = sorted(xs)
    return xs[len(xs) // 2] if xs else float("nan")


class Conn:
    """A varlink connection (NUL-framed JSON)."""

    def __init__(self, path, timeout=30):
        self.s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.s.settimeout(timeout)
        self.s.connect(path)
        self.buf = b""

    def send(self, method, params=None, more=False):
        m = {"method": method, "parameters": params or {}}
        if more:
            m["more"] = True
        self.s.sendall(json.dumps(m).encode() + b"\0")

    def recv(self):
        while b"\0" not in self.buf:
            chunk = self.s.recv(1 << 16)
            if not chunk:
                raise RuntimeError("connection closed")
            self.buf += chunk
        m, _, self.buf = self.buf.partition(b"\0")
        return json.loads(m)

    def call(self, method, params=None):
        self.send(method, params)
        return self.recv()

    def close(self):
        self.s.close()


class Sim:
    """kvmi-sim in control mode (JSON lines)."""

    def __init__(self, argv, name):
        self.path = os.path.join(work, name + ".ctl")
        self.err = open(os.path.join(work, name + ".err"), "w")
        self.proc = subprocess.Popen([SIM, "--control", self.path, "--timeout", "60"] + argv,
                                     stdout=subprocess.PIPE, stderr=self.err, text=True)
        started.append(self.proc)
        if self.proc.stdout.readline().strip() != "ready":
            raise RuntimeError("kvmi-sim did not start, see " + self.err.name)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(120)
        self.sock.connect(self.path)
        self.f = self.sock.makefile("rw")

    def write(self, **kw):
        self.f.write(json.dumps(kw) + "\n")

    def read(self):
        line = self.f.readline()
        if not line:
            raise RuntimeError("kvmi-sim closed its control socket")
        return json.loads(line)

    def cmd(self, **kw):
        self.write(**kw)
        self.f.flush()
        return self.read()

    def close(self):
        try:
            self.cmd(cmd="quit")
            self.proc.wait(10)
        except (OSError, RuntimeError, ValueError, subprocess.TimeoutExpired):
            pass
        self.sock.close()


class Kvmid:
    def __init__(self, name, conf):
        self.dir = os.path.join(work, name)
        os.mkdir(self.dir)
        self.run = os.path.join(self.dir, "run")
        cp = os.path.join(self.dir, "kvmid.conf")
        with open(cp, "w") as f:
            f.write(conf + "[libvirt]\nuri = none\n")  # off the host's libvirt
        self.log = open(os.path.join(self.dir, "kvmid.log"), "w")
        env = dict(os.environ)
        env.pop("NOTIFY_SOCKET", None)
        env.pop("KVMID_VALIDATE_REPLIES", None)
        self.proc = subprocess.Popen([KVMID, "--foreground", "--config", cp, "--runtime-dir", self.run,
                                      "--log-level", "warning"], stdout=self.log, stderr=subprocess.STDOUT, env=env)
        started.append(self.proc)
        self.pid = self.proc.pid
        deadline = time.time() + 15
        while not all(os.path.exists(self.sock(n)) for n in ("admin", "introspector", "hypervisor", "kvmi")):
            if self.proc.poll() is not None or time.time() > deadline:
                raise RuntimeError("kvmid did not start; see " + self.log.name)
            time.sleep(0.05)
        time.sleep(0.1)

    def sock(self, name):
        return os.path.join(self.run, {"admin": "io.kvmid.Admin", "introspector": "io.kvmid.Introspector",
                                       "hypervisor": "io.kvmid.Hypervisor", "kvmi": "kvmi"}[name])

    def status(self):
        a = Conn(self.sock("admin"))
        try:
            return a.call("io.kvmid.Admin.GetStatus")["parameters"]
        finally:
            a.close()

    def login(self, name, key):
        c = Conn(self.sock("introspector"))
        nonce = bytes.fromhex(c.call("io.kvmid.Introspector.Hello")["parameters"]["nonce"])
        msg = b"kvmid-auth-v1\0" + nonce + name.encode() + b"\0" + ("unix:%d" % UID).encode()
        r = c.call("io.kvmid.Introspector.Authenticate", {"name": name, "proof": hmac.new(key, msg, hashlib.sha256)
                                                           .hexdigest()})
        if "error" in r:
            raise RuntimeError("Authenticate: %r" % r)
        return c

    def open_session(self, conn, target, timeout=15):
        deadline = time.time() + timeout
        while True:
            r = conn.call("io.kvmid.Introspector.OpenSession", {"target": target})
            if "error" not in r:
                return r["parameters"]["session"]
            if r["error"] != "io.kvmid.Introspector.TargetUnavailable" or time.time() > deadline:
                raise RuntimeError("OpenSession(%s): %r" % (target, r))
            time.sleep(0.05)


# ---- part 1: fan-out ------------------------------------------------------------------------------------------

class Rig:
    """kvmid + kvmi-sim playing target t0 + an open session, for fan-out runs."""

    def __init__(self, name, queue_conf):
        self.key = os.urandom(32)
        kp = os.path.join(work, name + ".key")
        write_secret(kp, self.key)
        pol = os.path.join(work, name + ".policy")
        with open(pol, "w") as f:
            f.write("allow introspector=tool target=any perm=attach,events\ndefault deny\n")
        uuid = "00000000-0000-4000-8000-00000000f001"
        conf = ("[daemon]\nmax-connections-per-uid = 4096\n[policy]\nfile = %s\n%s[introspector tool]\nkey-file = %s\n"
                "[domain t0]\nuuid = %s\ncookie = none\n" % (pol, queue_conf, kp, uuid))
        self.d = Kvmid(name, conf)
        self.sim = Sim(["--socket", self.d.sock("kvmi"), "--vcpus", str(args.vcpus), "--vm", "t0," + uuid],
                       name + "-sim")
        self.owner = self.d.login("tool", self.key)
        self.sid = self.d.open_session(self.owner, "t0")

    def close(self):
        self.owner.close()
        self.sim.close()
        self.d.proc.send_signal(signal.SIGTERM)
        self.d.proc.wait(10)

    def subscribe(self, n):
        subs = []
        for _ in range(n):
            c = self.d.login("tool", self.key)
            c.send("io.kvmid.Introspector.Subscribe", {"session": self.sid}, more=True)
            r = c.recv()
            if r.get("parameters") != {"event": None} or c.buf:
                raise RuntimeError("Subscribe: %r" % r)
            subs.append(c)
        return subs

    def settle(self):
        """Wait until kvmid is done with the subscribers just closed."""
        deadline = time.time() + 5
        while time.time() < deadline:
            a = Conn(self.d.sock("admin"))
            st = a.call("io.kvmid.Admin.ListSessions")["parameters"]["sessions"]
            a.close()
            if sum(len(x["subscriptions"]) for x in st) == 0:
                return
            time.sleep(0.02)

    def run(self, n, events, rate, stalled=False, capture=None):
        """events (all vCPUs) at rate events/s (0: as fast as acks allow) to n
        subscribers (+1 that never reads); returns the measurements."""
        d = self.d
        subs = self.subscribe(n)
        stall = None
        if stalled:
            stall = d.login("tool", self.key)
            stall.s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            stall.send("io.kvmid.Introspector.Subscribe", {"session": self.sid}, more=True)
            stall.recv()
        per_vcpu = max(1, events // args.vcpus)
        total = per_vcpu * args.vcpus
        fds = [c.s.fileno() for c in subs]
        argv = [READER, "read", str(total), "--timeout", "120", "--idle-ms", "1500"]
        if capture:
            argv += ["--capture", capture]
        rd = subprocess.Popen(argv + [str(x) for x in fds], pass_fds=fds, stdout=subprocess.PIPE, text=True)
        started.append(rd)
        time.sleep(0.05)
        perf = None
        if args.perf and rate == 0 and not capture:
            cmd = os.environ.get("BENCH_PERF_CMD", "perf record -q -F 1999 --call-graph dwarf -p {pid} -o {out}")
            perf = subprocess.Popen(cmd.format(pid=d.pid, out=os.path.join(args.perf, "perf-%d.data" % n)).split(),
                                    stdout=subprocess.DEVNULL)
            started.append(perf)
            time.sleep(0.5)
        c0, t0 = cpu_ns(d.pid), time.monotonic_ns()
        rep = self.sim.cmd(cmd="send", vm="t0", count=per_vcpu, rate=rate / args.vcpus if rate else 0)
        out, _ = rd.communicate(timeout=150)
        c1 = cpu_ns(d.pid)
        if perf:
            perf.send_signal(signal.SIGINT)
            perf.wait(30)
        res = json.loads(out)
        stalled_missed = 0
        if stall:
            a = Conn(d.sock("admin"))
            st = a.call("io.kvmid.Admin.ListSessions")["parameters"]["sessions"]
            a.close()
            stalled_missed = max(x["missed"] for ss in st for x in ss["subscriptions"])
        for c in subs:
            c.close()
        if stall:
            stall.close()
        self.settle()
        if not rep.get("ok") or rep.get("acked") != total:
            raise RuntimeError("kvmi-sim: %r" % rep)
        if res["messages"] == 0 or res["eofs"]:
            raise RuntimeError("subscribers: %r" % res)
        # A subscriber that falls behind misses events (kvmid drops and counts them): count what arrived.
        deliveries = res["messages"]
        wall = (res["last_ns"] - t0) / 1e9
        return {"deliveries": deliveries, "events": total, "missed": n * total - deliveries, "per_s": deliveries / wall,
                "stalled_missed": stalled_missed, "cpu_ns": c1 - c0,
                "cpu_us": (c1 - c0) / 1e3 / deliveries, "p50": rep["latency_ns"]["p50"] / 1e3,
                "p99": rep["latency_ns"]["p99"] / 1e3}


def baseline(mode, n, count, msgfile):
    p = subprocess.run([READER, "baseline", mode, str(n), str(count), msgfile], capture_output=True, text=True,
                       timeout=150)
    if p.returncode != 0:
        raise RuntimeError("baseline %s: %s %s" % (mode, p.stdout, p.stderr))
    r = json.loads(p.stdout)
    return {"per_s": r["deliveries"] / (r["wall_ns"] / 1e9), "cpu_us": r["writer_cpu_ns"] / 1e3 / r["deliveries"]}


def ack_floor(events):
    """The least any broker must spend per event before fan-out: kvmi-sim's
    --floor echo peer (frame, decode, one CONTINUE write per read) under the
    same vCPUs and closed loop; its CPU in ns per event."""
    per_vcpu = max(1, events // args.vcpus)
    p = subprocess.run([SIM, "--floor", "--vcpus", str(args.vcpus), "--events", str(per_vcpu), "--rate", "0",
                        "--vm", "t0,00000000-0000-4000-8000-000000000000"], capture_output=True, text=True, timeout=150)
    if p.returncode != 0:
        raise RuntimeError("kvmi-sim --floor: %s" % p.stderr)
    return json.loads(p.stdout)["floor_cpu_ns"] / (per_vcpu * args.vcpus)


def m(rs, k):
    return median([r[k] for r in rs])


def fanout():
    if args.no_throughput:
        return latency()
    msgfile = os.path.join(work, "event.msg")
    # Throughput: queues deep enough that the single reader process falling
    # behind loses nothing (a run is at most --events messages per subscriber).
    rig = Rig("fanout", "[introspector]\nmax-output-bytes = 64M\n"
                        "[session]\nsubscriber-queue-events = 1000000\nsubscriber-queue-bytes = 32M\n")
    thr = {n: [] for n in SUBS}
    floor = []
    bw = {n: [] for n in SUBS}
    bv = {n: [] for n in SUBS}
    try:
        rig.run(1, 200, 0, capture=msgfile)     # warm-up, and one real event message as kvmid serialized it
        with open(msgfile, "rb") as f:
            sample = f.read()
        if not sample.endswith(b"\0") or b'"event"' not in sample:
            raise RuntimeError("captured message looks wrong: %r" % sample[:200])
        print("fan-out: one target, %d vCPUs; event message as kvmid sends it, %d bytes: %s..."
              % (args.vcpus, len(sample), sample[:60].decode(errors="replace")))
        for _ in range(args.rounds):
            floor.append(ack_floor(args.events))
            for n in SUBS:
                thr[n].append(rig.run(n, args.events, 0))
                # same bytes and readers; at least 200000 deliveries, so the writer's CPU is well above noise
                count = max(args.events, 200000 // n)
                bw[n].append(baseline("write", n, count, msgfile))
                bv[n].append(baseline("writev", n, count, msgfile))
    finally:
        rig.close()

    print("\nthroughput: %d events per run, the vCPUs as fast as their acks allow; medians of %d rounds"
          % (args.events, args.rounds))
    print("%5s  %-26s %12s %12s %11s %11s %8s" % ("subs", "", "deliveries/s", "CPU/delivery", "ack p50", "ack p99",
                                                  "missed"))
    for n in SUBS:
        k = thr[n]
        kc = m(k, "cpu_us")
        print("%5d  %-26s %12.0f %10.3fus %9.1fus %9.1fus %8d" % (n, "kvmid", m(k, "per_s"), kc, m(k, "p50"),
                                                                m(k, "p99"), sum(r["missed"] for r in k)))
        print("%5s  %-26s %12.0f %10.3fus" % ("", "raw write() per msg/reader", m(bw[n], "per_s"), m(bw[n], "cpu_us")))
        print("%5s  %-26s %12.0f %10.3fus" % ("", "raw writev, batches of 64", m(bv[n], "per_s"), m(bv[n], "cpu_us")))
        # The ack floor: what no broker that acks each event can avoid
        # here (an echo peer, same vCPUs and closed loop), shared by the
        # deliveries of each event; the rest is kvmid's own.
        f_ns = median(floor)
        f_share = f_ns / 1e3 / (m(k, "deliveries") / m(k, "events"))
        own = kc - f_share
        print("%5s  %-26s %12s %9.2fx / %.1fx of write / writev" % (
            "", "kvmid / raw", "", kc / m(bw[n], "cpu_us"), kc / m(bv[n], "cpu_us")))
        verdict = ""
        if n >= 8:
            # The target is kvmid's cost per delivery.  When the ack floor
            # alone is over it (few events per wakeup on a host with dear
            # wakeups), no broker could meet it in total: then it is judged
            # on kvmid's own share, and both figures are printed.
            floor_bound = f_share >= 1.0
            ok = (own if floor_bound else kc) <= 1.0
            verdict = "   target <= 1.0us: %s%s" % ("met" if ok else "MISSED",
                                                     " (floor-bound: judged on kvmid's own share)"
                                                     if floor_bound else " (in total)")
            if not ok:
                missed_targets.append("CPU/delivery at %d subscribers" % n)
        print("%5s  %-26s %12s %10.3fus per delivery above the ack floor (an echo peer: %.3fus per event,"
              " %.3fus of each delivery here)%s" % ("", "  kvmid's own", "", own, f_ns / 1e3, f_share, verdict))
        if n > 1 and 1 in SUBS:
            # The split of that CPU: what each event costs whatever the
            # subscriber count (its read, ack, wakeups: the 1-subscriber
            # run), and what each further delivery adds (the fan-out).
            one = thr[1]
            extra = m(k, "deliveries") - m(one, "deliveries")
            fanout_us = (m(k, "cpu_ns") - m(one, "cpu_ns")) / 1e3 / extra if extra > 0 else 0.0
            print("%5s  %-26s %12s %10.3fus per further delivery; per event %.3fus, %.3fus of each delivery here" % (
                "", "  of which fan-out", "", fanout_us, m(one, "cpu_ns") / 1e3 / m(one, "deliveries"),
                m(one, "cpu_ns") / 1e3 / m(k, "deliveries")))

    if not args.no_latency:
        latency()


def latency():
    # Ack latency: the default subscriber queues (a stalled subscriber hits
    # them and misses events), a fixed event rate.
    rig = Rig("latency", "")
    lat = {n: [] for n in SUBS}
    lat_stalled = []
    lat_events = max(args.vcpus, int(args.rate * args.latency_secs))
    try:
        for _ in range(args.latency_rounds):
            for n in SUBS:
                lat[n].append(rig.run(n, lat_events, args.rate))
            if 64 in SUBS:
                lat_stalled.append(rig.run(64, lat_events, args.rate, stalled=True))
    finally:
        rig.close()
    print("\nack latency while fanning out: %.0f events/s, %d events per run, default queues; medians of %d rounds"
          % (args.rate, lat_events, args.latency_rounds))
    print("%-16s %9s %9s %12s %12s %8s  %s" % ("subscribers", "ack p50", "ack p99", "p99 vs first", "CPU/delivery",
                                               "missed", "p99 of each round"))
    base99 = m(lat[SUBS[0]], "p99")
    rows = [("%d" % n, lat[n]) for n in SUBS]
    if lat_stalled:
        rows.append(("64 + 1 stalled", lat_stalled))
    for name, rs in rows:
        print("%-16s %7.1fus %7.1fus %11.2fx %10.3fus %8d  %s" % (
            name, m(rs, "p50"), m(rs, "p99"), m(rs, "p99") / base99, m(rs, "cpu_us"), sum(r["missed"] for r in rs),
            " ".join("%.0f" % r["p99"] for r in rs)))
    if lat_stalled:
        print("the stalled subscriber missed %s events (its queue: subscriber-queue-events 1024, 512K)"
              % "/".join(str(r["stalled_missed"]) for r in lat_stalled))
    if 64 in SUBS and SUBS[0] == 1:
        r64 = m(lat[64], "p99") / base99
        ok = r64 <= 1.10
        print("target: ack p99 at 64 subscribers within 10%% of 1: %.2fx %s" % (r64, "met" if ok else "MISSED"))
        if not ok:
            missed_targets.append("ack p99 1 -> 64 subscribers")
    if lat_stalled:
        rs = m(lat_stalled, "p99") / m(lat[64], "p99")
        ok = rs <= 1.10
        print("target: ack p99 with a stalled subscriber within 10%% of none (64): %.2fx %s"
              % (rs, "met" if ok else "MISSED"))
        if not ok:
            missed_targets.append("ack p99 with a stalled subscriber")
    print("(the issue's reference points: raw writev ~0.2us, dbus-daemon broadcast ~6us per delivery)")


# ---- part 2: MemMap decisions with durable audit --------------------------------------------------------------

def memmap():
    key = os.urandom(32)
    kp = os.path.join(work, "mapper.key")
    write_secret(kp, key)
    pol = os.path.join(work, "memmap.policy")
    with open(pol, "w") as f:
        f.write("allow introspector=mapper target=any perm=attach,map\ndefault deny\n")
    targets = ["m%d" % i for i in range(args.targets)]
    uuids = {t: "00000000-0000-4000-8000-%012d" % (0xa000 + i) for i, t in enumerate(targets)}
    conf = ("[daemon]\nmax-connections-per-uid = 4096\n[policy]\nfile = %s\n"
            "[introspector mapper]\nkey-file = %s\ndomain = vm-a\nuid = %d\n"
            "[domain vm-a]\nuuid = 00000000-0000-4000-8000-00000000aaaa\nrole = introspector\ncookie = none\n"
            % (pol, kp, UID))
    for t in targets:
        conf += "[domain %s]\nuuid = %s\ncookie = none\n" % (t, uuids[t])
    d = Kvmid("memmap", conf)
    sim = Sim(["--socket", d.sock("kvmi"), "--vcpus", "1"] + sum([["--vm", "%s,%s" % (t, uuids[t])] for t in targets],
                                                                  []), "memmap-sim")
    conns = []
    try:
        owner = d.login("mapper", key)
        conns.append(owner)
        sessions = {t: d.open_session(owner, t) for t in targets}
        # One minting connection per kernel token slot: a connection runs one call at a time.
        minters = []
        for t in targets:
            for _ in range(8):
                c = d.login("mapper", key)
                conns.append(c)
                minters.append((t, c))
        next_gpa = [0x100000000]

        def mint_batch():
            """8 tokens per target (the kernel's live maximum), redeemed in
            the kernel as the introspector VM's KVM_HC_MEM_MAP would."""
            for t, c in minters:
                c.send("io.kvmid.Introspector.GetMapToken", {"session": sessions[t], "gpa": 0, "size": 1 << 20})
            toks = []
            for t, c in minters:
                r = c.recv()
                if "error" in r:
                    raise RuntimeError("GetMapToken: %r" % r)
                toks.append(r["parameters"]["token"])
            for (t, _), tok in zip(minters, toks):
                sim.write(cmd="redeem", vm=t, token=tok)
            sim.f.flush()
            for _ in toks:
                r = sim.read()
                if not r.get("ok"):
                    raise RuntimeError("redeem: %r" % r)
            return toks

        def calls(reqs, clients):
            """Each client keeps one call outstanding; returns the seconds taken."""
            todo = list(reqs)
            idle = list(clients)
            busy = {}
            t0 = time.monotonic()
            while todo or busy:
                while todo and idle:
                    c = idle.pop()
                    c.send(*todo.pop())
                    busy[c.s] = c
                ready, _, _ = select.select(list(busy), [], [], 30)
                if not ready:
                    raise RuntimeError("no reply in 30 s")
                for s in ready:
                    c = busy.pop(s)
                    r = c.recv()
                    if "error" in r:
                        raise RuntimeError("%r" % r)
                    idle.append(c)
            return time.monotonic() - t0

        def measure(k, decisions, unmap):
            vmm = [Conn(d.sock("hypervisor")) for _ in range(k)]
            conns.extend(vmm)
            n, secs, syncs, records, cpu = 0, 0.0, 0, 0, 0
            budget = time.monotonic() + 15
            while n < decisions and time.monotonic() < budget:
                toks = mint_batch()
                time.sleep(0.005)       # the mint records' own syncs are done
                gpas = []
                for _ in toks:
                    next_gpa[0] += 0x1000
                    gpas.append(next_gpa[0])
                a0, c0 = d.status()["audit"], cpu_ns(d.pid)
                secs += calls([("io.kvmid.Hypervisor.MemMap", {"introspector": "vm-a", "token": tok,
                                                               "target_gpa": 0x1000, "local_gpa": g})
                               for tok, g in zip(toks, gpas)], vmm)
                c1, a1 = cpu_ns(d.pid), d.status()["audit"]
                n += len(toks)
                cpu += c1 - c0
                syncs += a1["syncs"] - a0["syncs"]
                records += a1["records"] - a0["records"]
                if unmap:               # untimed: keeps the live mappings at one batch
                    calls([("io.kvmid.Hypervisor.MemUnmap", {"introspector": "vm-a", "local_gpa": g}) for g in gpas],
                          vmm)
            for c in vmm:
                c.close()
                conns.remove(c)
            return (n, secs, syncs, records, cpu)

        results = []
        for k in sorted({int(x) for x in args.clients.split(",")}):
            results.append(("%d" % k, k) + measure(k, args.decisions, True))
        if args.live_mappings:
            k = max(int(x) for x in args.clients.split(","))
            measure(k, args.live_mappings, False)       # fill up, then measure with them in place
            results.append(("%d, %d+ live" % (k, args.live_mappings), k) + measure(k, args.decisions // 2, False))
        st = d.status()["audit"]
    finally:
        for c in conns:
            c.close()
        sim.close()
    print("\nMemMap allow decisions with durable audit (%s, audit sync=%s); %d targets x 8 tokens per batch, "
          "each client one call outstanding" % (BASE, st["sync"], args.targets))
    print("%-16s %9s %12s %15s %13s %18s" % ("clients", "decisions", "decisions/s", "syncs/decision", "records/sync",
                                             "kvmid CPU/decision"))
    for name, k, n, secs, syncs, records, cpu in results:
        print("%-16s %9d %12.0f %15.3f %13.1f %16.1fus" % (name, n, n / secs, syncs / n if n else 0,
                                                          records / syncs if syncs else 0, cpu / 1e3 / n if n else 0))
    base = [r for r in results if r[1] == 1 and r[0] == "1"]
    if base:
        _, _, n1, s1, y1, _, _ = base[0]
        for name, k, n2, s2, y2, _, _ in results:
            if k > 1 and "live" not in name:
                print("%d concurrent clients vs 1: %.2fx the decisions/s, %.2fx the syncs per decision (group commit)"
                      % (k, (n2 / s2) / (n1 / s1), (y2 / n2) / (y1 / n1) if y1 else 0))
    d.proc.send_signal(signal.SIGTERM)
    d.proc.wait(10)


try:
    t_start = time.time()
    if not args.no_fanout:
        fanout()
    if not args.no_memmap:
        memmap()
    print("\n%s (%.0f s)" % ("all targets met" if not missed_targets else "MISSED: " + ", ".join(missed_targets),
                             time.time() - t_start))
finally:
    stop_all()
    if args.keep:
        print("work directory kept: " + work)
    else:
        shutil.rmtree(work, ignore_errors=True)
sys.exit(1 if missed_targets else 0)
