#!/usr/bin/env python3
"""Lifecycle: configuration errors, SIGHUP reload (good and broken), SIGTERM
and SIGINT, command-line options, log prefixes for the journal, stale
sockets, a second instance, background start."""

import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from kvmidtest import Daemon, Tap, KVMID, KVMICTL, Varlink, off_host_libvirt, wait_for

t = Tap()


def status(d):
    return json.loads(d.kvmictl("--json=short", "status")[1])


DESCRIBE_ADMIN = (b'{"method":"org.varlink.service.GetInterfaceDescription",'
                  b'"parameters":{"interface":"io.kvmid.Admin"}}\0')
GET_STATUS = b'{"method":"io.kvmid.Admin.GetStatus"}\0'


def stop_with_replies_in_flight(d, sig, name):
    """Stop d with sig while replies are still queued in kvmid: 40 large
    replies (~380K, more than the socket buffer takes) then 20 GetStatus,
    all pipelined; every one must arrive, in order, then EOF."""
    c = d.connect("admin")
    c.call("org.varlink.service.GetInfo")
    c.send_raw(DESCRIBE_ADMIN * 40 + GET_STATUS * 20)
    # Every call is read and answered in one go: once the first reply is
    # here, the rest are queued (socket buffer, then kvmid's output queue).
    got = [c.recv()]
    t0 = time.time()
    d.signal(sig)
    time.sleep(0.3)
    with open("/proc/sys/net/core/wmem_default") as f:
        small_buffers = int(f.read()) <= 256 * 1024
    if small_buffers:
        t.ok(d.proc.poll() is None, "%s: kvmid waits for a peer that has not read its replies yet" % name)
        try:
            Varlink(d.socket("admin"), 2).close()
            refused = False
        except OSError:
            refused = True
        t.ok(refused, "%s: while it waits, no new connection is accepted" % name)
    else:
        for desc in ("kvmid waits for a peer that has not read its replies yet",
                     "while it waits, no new connection is accepted"):
            t.skip("%s: %s" % (name, desc), "socket buffers are large enough to hold every reply")
    while True:
        r = c.recv()
        if r is None:
            break
        got.append(r)
    descs = [r for r in got[:40] if r.get("parameters", {}).get("description", "").startswith("# Administration")]
    counts = [[l["calls"] for l in r.get("parameters", {}).get("listeners", []) if l["name"] == "admin"][:1]
              for r in got[40:]]
    counts = [x[0] if x else None for x in counts]
    t.ok(len(got) == 60 and len(descs) == 40, "%s: all 60 pipelined replies arrive (%d received)" % (name, len(got)))
    want = [counts[0] + i for i in range(20)] if counts and isinstance(counts[0], int) else "20 consecutive counts"
    t.eq(counts, want, "%s: the 20 GetStatus replies come last, in order (the calls counter they report goes up "
         "by one each)" % name)
    t.eq(d.stop(), 0, "%s: exit status 0" % name)
    t.ok(time.time() - t0 < 1.8, "%s: exits as soon as the replies are taken, before the 2s flush limit" % name)
    log = d.logtext()
    t.ok("received %s, stopping" % name in log and "did not take their last replies" not in log,
         "%s: logged as received %s, stopping" % (name, name), log[-1000:])
    t.ok(not any(os.path.exists(d.socket(n)) for n in ("admin", "introspector", "hypervisor")),
         "%s: sockets unlinked" % name)
    c.close()


d = Daemon("[daemon]\nmax-connections = 100\n")
try:
    t.eq(status(d)["max_connections"], 100, "configuration applied at start")
    daemon_version = status(d)["version"]

    d.write_config("[daemon]\nmax-connections = 200\n")
    d.signal(signal.SIGHUP)
    t.ok(wait_for(lambda: status(d)["max_connections"] == 200), "SIGHUP applies a valid new configuration")

    d.write_config("[daemon]\nmax-connections = 300\nno-such-key = 1\n")
    d.signal(signal.SIGHUP)
    t.ok(wait_for(lambda: "keeping the previous configuration" in d.logtext()), "SIGHUP with a broken file is logged")
    t.ok("kvmid.conf:3: [daemon] no-such-key" in d.logtext(), "the error names file:line and the key")
    t.eq(status(d)["max_connections"], 200, "the old configuration stays in force")

    d.write_config("[daemon]\nmax-connections = 200\n[admin]\nsocket = /tmp/elsewhere.sock\n")
    d.signal(signal.SIGHUP)
    t.ok(wait_for(lambda: "needs a restart" in d.logtext()), "a socket path change on reload says it needs a restart")

    stop_with_replies_in_flight(d, signal.SIGTERM, "SIGTERM")
finally:
    d.cleanup()

d = Daemon("")
try:
    stop_with_replies_in_flight(d, signal.SIGINT, "SIGINT")
finally:
    d.cleanup()

# Startup errors.
tmp = tempfile.mkdtemp(prefix="kvmid-test-")
bad = os.path.join(tmp, "bad.conf")
with open(bad, "w") as f:
    f.write("[daemon]\nlog-level = info\n[admin]\nmode = 0999\n")
p = subprocess.run([KVMID, "--foreground", "--config", bad, "--runtime-dir", tmp + "/run"],
                   capture_output=True, text=True, timeout=10)
t.eq(p.returncode, 1, "broken configuration: exit status 1")
t.ok(bad + ":4: [admin] mode" in p.stderr and "octal" in p.stderr, "error names file:line, key and what is expected",
     p.stderr)
p = subprocess.run([KVMID, "--check-config", "--config", bad], capture_output=True, text=True, timeout=10)
t.eq(p.returncode, 1, "--check-config on a broken file: exit status 1")
with open(bad, "w") as f:
    f.write("[nosuch]\nx = 1\n")
p = subprocess.run([KVMID, "--check-config", "--config", bad], capture_output=True, text=True, timeout=10)
t.ok(":2: [nosuch] x" in p.stderr and "unknown section" in p.stderr, "unknown section is an error", p.stderr)
good = os.path.join(tmp, "good.conf")
with open(good, "w") as f:
    f.write("# comment\n[daemon]\nlog-level = debug\n[introspector]\nmax-message-size = 32K\n")
p = subprocess.run([KVMID, "--check-config", "--config", good], capture_output=True, text=True, timeout=10)
t.eq(p.returncode, 0, "--check-config on a good file: exit status 0")
p = subprocess.run([KVMID, "--config", os.path.join(tmp, "missing.conf"), "--foreground"],
                   capture_output=True, text=True, timeout=10)
t.ok(p.returncode == 1 and "missing.conf" in p.stderr, "a named configuration file that is missing is an error")
p = subprocess.run([KVMID, "--bogus"], capture_output=True, text=True, timeout=10)
t.eq(p.returncode, 2, "unknown option: exit status 2")

# --version, --help, --log-level.
p = subprocess.run([KVMID, "--version"], capture_output=True, text=True, timeout=10)
t.ok(p.returncode == 0 and re.fullmatch(r"kvmid \d+\.\d+\.\d+\S*\n", p.stdout) and p.stderr == "",
     "--version: prints \"kvmid VERSION\", exit 0", p)
t.eq(p.stdout.split()[-1:], [daemon_version], "--version: the version the daemon reports in GetStatus")
p = subprocess.run([KVMID, "--help"], capture_output=True, text=True, timeout=10)
t.ok(p.returncode == 0 and p.stdout.startswith("Usage: kvmid") and "--log-level" in p.stdout and p.stderr == "",
     "--help: usage on stdout, exit 0", p)
p = subprocess.run([KVMID, "--foreground", "--log-level", "bogus", "--config", good, "--runtime-dir", tmp + "/run-bogus"],
                   capture_output=True, text=True, timeout=10)
t.ok(p.returncode == 2 and '"bogus"' in p.stderr and "log level" in p.stderr and p.stderr.count("\n") == 1,
     "--log-level bogus: exit 2, one line naming the value", p)
t.ok(not os.path.exists(tmp + "/run-bogus"), "--log-level bogus: nothing started")


def run_briefly(config, args=(), journal=None):
    """kvmid --foreground with stdout and stderr to a file, until it answers
    one call, then SIGTERM: (exit status, log lines).  journal: None (no
    JOURNAL_STREAM), "stderr" (JOURNAL_STREAM is stderr's dev:ino, as when
    systemd connects it to the journal), "other" (someone else's stream)."""
    work = tempfile.mkdtemp(prefix="kvmid-test-", dir=tmp)
    conf = os.path.join(work, "kvmid.conf")
    with open(conf, "w") as f:
        f.write(off_host_libvirt(config))
    env = dict(os.environ)
    env.pop("JOURNAL_STREAM", None)
    env.pop("NOTIFY_SOCKET", None)
    with open(os.path.join(work, "log"), "w+") as log:
        st = os.fstat(log.fileno()) if journal == "stderr" else os.stat(conf)
        if journal:
            env["JOURNAL_STREAM"] = "%d:%d" % (st.st_dev, st.st_ino)
        proc = subprocess.Popen([KVMID, "--foreground", "--config", conf, "--runtime-dir", work + "/run"] + list(args),
                                stdout=log, stderr=log, env=env)
        try:
            def answers():
                try:
                    c = Varlink(work + "/run/io.kvmid.Admin", 5)
                except OSError:
                    return proc.poll() is not None
                r = c.call("org.varlink.service.GetInfo")
                c.close()
                return r is not None
            wait_for(answers)
            proc.send_signal(signal.SIGTERM)
            rc = proc.wait(10)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        log.seek(0)
        return rc, log.read().splitlines()


nopolicy = "[policy]\nfile = %s/nopolicy\ndirectory = %s/nopolicy.d\n" % (tmp, tmp)
rc, lines = run_briefly("[daemon]\nlog-level = warning\n" + nopolicy, ["--log-level", "debug"])
t.ok(rc == 0 and any(re.match(r"kvmid\[\d+\]: debug: .* \(\S+\.c:\d+\)$", x) for x in lines),
     "--log-level debug: debug lines (with file:line), over the file's log-level = warning", "\n".join(lines))
rc, lines = run_briefly("[daemon]\nlog-level = debug\n" + nopolicy, ["--log-level", "warning"])
t.ok(rc == 0 and any("warning: no policy file" in x for x in lines)
     and not any(re.match(r"kvmid\[\d+\]: (debug|info): ", x) for x in lines),
     "--log-level warning: warnings only, over the file's log-level = debug", "\n".join(lines))
t.ok(lines and all(x.startswith("kvmid[") for x in lines), "without JOURNAL_STREAM: no <N> prefixes",
     "\n".join(lines))

# On the journal (JOURNAL_STREAM names stderr) every line carries its syslog
# priority as "<N>" and nothing else; a JOURNAL_STREAM that is not stderr
# (a wrapper redirected it) is ignored.
rc, lines = run_briefly(nopolicy, ["--log-level", "debug"], journal="stderr")
t.ok(rc == 0 and lines and all(re.match(r"<[0-7]>", x) for x in lines) and not any("kvmid[" in x for x in lines),
     "JOURNAL_STREAM is stderr: every line starts with <N>", "\n".join(lines))
t.ok(any(re.fullmatch(r"<6>kvmid \S+ ready", x) for x in lines)
     and any(x.startswith("<4>no policy file") for x in lines)
     and any(re.match(r"<7>admin listener: connection \d+ from uid", x) for x in lines)
     and "<6>received SIGTERM, stopping" in lines and not any(re.search(r"\(\S+\.c:\d+\)$", x) for x in lines),
     "JOURNAL_STREAM: <6> info, <4> warning, <7> debug, no file:line", "\n".join(lines))
rc, lines = run_briefly(nopolicy, journal="other")
t.ok(rc == 0 and lines and all(x.startswith("kvmid[") for x in lines),
     "JOURNAL_STREAM naming another file: plain lines, no <N>", "\n".join(lines))

# A stale socket is replaced; a live one is not stolen.
d = Daemon("")
try:
    p = subprocess.run([KVMID, "--foreground", "--config", d.config_path, "--runtime-dir", d.runtime],
                       capture_output=True, text=True, timeout=10)
    t.ok(p.returncode == 1 and "in use" in p.stderr, "a second instance on the same sockets refuses to start", p.stderr)
    t.ok(os.path.exists(d.socket("admin")) and status(d)["version"], "the first instance keeps its sockets")
    d.proc.kill()
    d.proc.wait()
    t.ok(os.path.exists(d.socket("admin")), "after a crash the socket file remains")
    p2 = subprocess.Popen([KVMID, "--foreground", "--config", d.config_path, "--runtime-dir", d.runtime],
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    d.proc = p2
    t.ok(wait_for(lambda: d.kvmictl("status")[0] == 0), "a restart replaces the stale socket")
    t.eq(d.stop(), 0, "restarted instance exits 0")
finally:
    d.cleanup()

# Without --foreground kvmid returns once it serves.
run = os.path.join(tmp, "bg")
p = subprocess.run([KVMID, "--config", good, "--runtime-dir", run], capture_output=True, text=True, timeout=10)
t.eq(p.returncode, 0, "background start: the parent exits 0 once ready")
rc = subprocess.run([KVMICTL, "--socket", run + "/io.kvmid.Admin", "--json=short", "status"],
                    capture_output=True, text=True, timeout=10)
t.eq(rc.returncode, 0, "background daemon answers immediately")
for pid in filter(str.isdigit, os.listdir("/proc")):
    try:
        argv = open("/proc/%s/cmdline" % pid, "rb").read().split(b"\0")
    except OSError:
        continue
    if run.encode() in argv and argv[0].endswith(b"kvmid"):
        os.kill(int(pid), signal.SIGTERM)
t.ok(wait_for(lambda: not os.path.exists(run + "/io.kvmid.Admin")), "background daemon stops on SIGTERM")
p = subprocess.run([KVMID, "--config", bad, "--runtime-dir", run], capture_output=True, text=True, timeout=10)
t.eq(p.returncode, 1, "background start with a broken configuration: exit status 1")
shutil.rmtree(tmp, ignore_errors=True)
t.done()
