#!/usr/bin/env python3
"""kvmictl against the real daemon: verbs, --json, tables, exit codes."""

import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
from kvmidtest import Daemon, Tap, KVMICTL

t = Tap()
d = Daemon("[daemon]\nvarlink-certification = yes\n")
try:
    rc, out, err = d.kvmictl("status")
    t.eq(rc, 0, "status: exit 0")
    t.ok("Version: " in out and "LISTENER" in out and "3 listeners listed." in out, "status: text with table and legend", out)
    rc, out, err = d.kvmictl("--no-legend", "status")
    t.ok("LISTENER" not in out and "listed" not in out and "introspector" in out, "--no-legend drops header and footer")
    rc, out, err = d.kvmictl("--json=short", "status")
    st = json.loads(out)
    t.ok(rc == 0 and out.count("\n") == 1 and st["version"] and len(st["listeners"]) == 3,
         "--json=short: one line of reply parameters")
    rc, out, err = d.kvmictl("status", "--json")
    t.ok(rc == 0 and json.loads(out)["version"] == st["version"] and out.count("\n") > 3,
         "--json (pretty) after the verb works too")

    rc, out, err = d.kvmictl("introspect")
    t.ok(rc == 0 and "io.kvmid.Admin" in out and "Vendor:" in out, "introspect: service info")
    rc, out, err = d.kvmictl("introspect", "io.kvmid.Admin")
    t.ok(rc == 0 and out.startswith("# Administration") and "method GetStatus" in out, "introspect IFACE: the IDL text")
    rc, out, err = d.kvmictl("--json=short", "introspect", "io.kvmid.Admin")
    t.ok(rc == 0 and "description" in json.loads(out), "introspect --json: reply parameters")
    rc, out, err = d.kvmictl("introspect", "io.kvmid.Nope")
    t.eq(rc, 4, "introspect of an unknown interface: exit 4")
    t.ok("InterfaceNotFound" in err and err.count("\n") == 1, "one-line error on stderr", err)

    rc, out, err = d.kvmictl("call", "org.varlink.service.GetInfo")
    t.ok(rc == 0 and json.loads(out)["product"] == "kvmid", "call: prints reply parameters")
    rc, out, err = d.kvmictl("call", "org.varlink.service.GetInterfaceDescription", '{"interface":"io.kvmid"}')
    t.ok(rc == 0 and "LimitExceeded" in json.loads(out)["description"], "call with JSON parameters")
    rc, out, err = d.kvmictl("call", "io.kvmid.Admin.Nope")
    t.eq(rc, 4, "call of an unknown method: exit 4")
    rc, out, err = d.kvmictl("call", "io.kvmid.Admin.GetStatus", '{"x":1}')
    t.ok(rc == 1 and "InvalidParameter" in err and '"x"' in err, "call with a bad parameter: exit 1, error named", err)
    rc, out, err = d.kvmictl("call", "--oneway", "io.kvmid.Admin.GetStatus")
    t.ok(rc == 0 and out == "", "call --oneway: no output, exit 0")
    rc, out, err = d.kvmictl("--json=short", "call", "org.varlink.certification.Start")
    cid = json.loads(out)["client_id"]
    # Walk the certification chain to Test09, whose reply is what Test10
    # (a streaming method) wants: then --more must print several replies.
    prev = {}
    for n in range(1, 10):
        rc, out, err = d.kvmictl("--json=short", "call", "org.varlink.certification.Test%02d" % n,
                                 json.dumps(dict(prev, client_id=cid)))
        if rc != 0:
            break
        prev = json.loads(out)
    rc, out, err = d.kvmictl("--json=short", "call", "--more", "org.varlink.certification.Test10",
                             json.dumps(dict(prev, client_id=cid)))
    lines = out.splitlines()
    t.ok(rc == 0 and len(lines) >= 2 and all("string" in json.loads(x) for x in lines),
         "call --more prints every streamed reply, one JSON line each", out + err)
    rc, out, err = d.kvmictl("call", "--more", "org.varlink.certification.Test10",
                             json.dumps(dict(prev, client_id="nobody")))
    t.ok(rc == 1 and "ClientIdError" in err, "call --more reports a streamed call's error", err)

    # A PermissionDenied reply: the Introspector interface takes no call but
    # Hello and Authenticate before authentication.
    rc, out, err = d.kvmictl("call", "io.kvmid.Introspector.OpenSession", '{"target":"x"}',
                             socket_name="introspector")
    t.ok(rc == 3 and out == "" and err.count("\n") == 1 and err.startswith("kvmictl: ")
         and "org.varlink.service.PermissionDenied" in err and "OpenSession" in err,
         "PermissionDenied reply (OpenSession before Authenticate): exit 3, one line on stderr", (rc, out, err))
    rc, out, err = d.kvmictl("--json=short", "call", "io.kvmid.Introspector.OpenSession", '{"target":"x"}',
                             socket_name="introspector")
    t.ok(rc == 3 and out == "" and "PermissionDenied" in err, "--json: PermissionDenied still exit 3, error on stderr",
         (rc, out, err))

    # Usage errors: exit 2, one line, no help dump.
    for args, desc in [(["frobnicate"], "unknown verb"), (["status", "extra"], "too many arguments"),
                       (["call"], "missing argument"), (["call", "org.varlink.service.GetInfo", "{bad"], "bad JSON"),
                       (["call", "no-dots"], "bad method name"), (["--json=xml", "status"], "bad --json value"),
                       (["--bogus", "status"], "unknown option"), (["status", "--more"], "--more outside call"),
                       ([], "no verb")]:
        rc, out, err = d.kvmictl(*args)
        t.ok(rc == 2 and err.count("\n") == 1 and "Usage" not in err, "usage error (%s): exit 2, one line" % desc, err)

    p = subprocess.run([KVMICTL, "--socket", d.dir + "/nonexistent", "status"], capture_output=True, text=True)
    t.ok(p.returncode == 4 and "is kvmid running" in p.stderr, "no daemon: exit 4 with a hint", p.stderr)
    env = dict(os.environ, KVMID_SOCKET=d.socket("admin"))
    p = subprocess.run([KVMICTL, "status"], capture_output=True, text=True, env=env)
    t.eq(p.returncode, 0, "KVMID_SOCKET selects the socket")
    p = subprocess.run([KVMICTL, "--help"], capture_output=True, text=True)
    t.ok(p.returncode == 0 and "Usage" in p.stdout, "--help: exit 0")

    runuser = shutil.which("runuser") or shutil.which("setpriv")
    if os.geteuid() == 0 and runuser:
        # The runtime dir is root-only: an unprivileged user cannot reach it.
        cmd = ([runuser, "-u", "nobody", "--"] if runuser.endswith("runuser")
               else [runuser, "--reuid=65534", "--regid=65534", "--clear-groups"])
        pubdir = tempfile.mkdtemp(prefix="kvmictl-")
        os.chmod(pubdir, 0o755)
        pub = shutil.copy(KVMICTL, pubdir)
        os.chmod(pub, 0o755)
        p = subprocess.run(cmd + [pub, "--socket", d.socket("admin"), "status"], capture_output=True, text=True)
        shutil.rmtree(pubdir)
        t.ok(p.returncode == 3 and "Permission denied" in p.stderr, "permission denied: exit 3", p.stderr)
    else:
        t.skip("permission denied: exit 3", "needs root and runuser to act as another user")
    # Shell completion: verbs, sub-commands, and domain names from the daemon.
    comp = os.path.join(os.environ.get("top_srcdir", "."), "client", "completion", "kvmictl")

    def complete(line):
        script = ('source %s; COMP_WORDS=(%s); COMP_CWORD=%d; _kvmictl; echo "${COMPREPLY[@]}"'
                  % (comp, line, len(line.split()) - (0 if line.endswith(" ") else 1)))
        env = dict(os.environ, PATH=os.path.dirname(KVMICTL) + ":" + os.environ["PATH"],
                   KVMID_SOCKET=d.socket("admin"))
        if line.endswith(" "):
            script = script.replace("COMP_WORDS=(%s)" % line, "COMP_WORDS=(%s '')" % line)
        return subprocess.run(["bash", "-c", script], capture_output=True, text=True, env=env).stdout.split()

    t.eq(complete("kvmictl po"), ["policy"], "completion: a verb")
    t.eq(complete("kvmictl audit "), ["verify", "tail", "rotate"], "completion: audit's sub-commands")
    t.ok("--follow" in complete("kvmictl audit tail --f"), "completion: audit tail options")
    # --timeout: a peer that accepts and never answers (a wedged daemon).
    mute_dir = tempfile.mkdtemp(prefix="kvmictl-mute-")
    mute = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        mute.bind(os.path.join(mute_dir, "sock"))
        mute.listen(4)
        t0 = time.monotonic()
        p = subprocess.run([KVMICTL, "--socket", os.path.join(mute_dir, "sock"), "--timeout", "1", "status"],
                           capture_output=True, text=True, timeout=30)
        took = time.monotonic() - t0
        t.ok(p.returncode == 1 and "timed out waiting for kvmid" in p.stderr and 0.9 <= took < 10,
             "--timeout 1 against a daemon that never answers: exit 1 after about 1 s (%.1f s)" % took,
             "rc %d: %s" % (p.returncode, p.stderr))
        p = subprocess.run([KVMICTL, "--socket", os.path.join(mute_dir, "sock"), "--timeout", "x", "status"],
                           capture_output=True, text=True, timeout=30)
        t.ok(p.returncode == 2 and "--timeout" in p.stderr, "--timeout x: usage error naming the option", p.stderr)
    finally:
        mute.close()
        shutil.rmtree(mute_dir)
    t.eq(d.stop(), 0, "kvmid exits 0")
finally:
    d.cleanup()
t.done()
