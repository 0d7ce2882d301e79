#!/usr/bin/env python3
"""Lifecycle: configuration errors, SIGHUP reload (good and broken), SIGTERM,
stale sockets, a second instance, background start."""

import json
import os
import signal
import subprocess
import time
from kvmidtest import Daemon, Tap, KVMID, KVMICTL, wait_for

t = Tap()


def status(d):
    return json.loads(d.kvmictl("--json=short", "status")[1])




d = Daemon("[daemon]\nmax-connections = 100\n")
try:
    t.eq(status(d)["max_connections"], 100, "configuration applied at start")

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

    # SIGTERM while a reply is being produced: the reply still arrives.
    c = d.connect("admin")
    c.send_raw(b'{"method":"io.kvmid.Admin.GetStatus"}\0' * 20)
    d.signal(signal.SIGTERM)
    got = 0
    while True:
        r = c.recv()
        if r is None:
            break
        got += 1
    t.ok(got >= 1, "in-flight replies are flushed on SIGTERM (%d received)" % got)
    t.eq(d.stop(), 0, "SIGTERM: exit status 0")
    t.ok(not any(os.path.exists(d.socket(n)) for n in ("admin", "introspector", "hypervisor")),
         "SIGTERM: sockets unlinked")
finally:
    d.cleanup()

# Startup errors.
import tempfile
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
t.done()
