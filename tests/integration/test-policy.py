#!/usr/bin/env python3
"""The policy in the real kvmid: load, show, explain, reload (a broken
or missing policy keeps the old one, over ReloadPolicy and SIGHUP alike),
the built-in default deny at start, a broken policy at start (audited),
kvmictl policy check."""

import json
import os
import signal
import subprocess
import tempfile
import time
from kvmidtest import Daemon, Tap, KVMID, KVMICTL, wait_for

t = Tap()
work = tempfile.mkdtemp(prefix="kvmid-policy-")
pol = os.path.join(work, "policy")
dropins = os.path.join(work, "policy.d")
os.mkdir(dropins)

GOOD = """# lab policy
deny  introspector=any target=label:pci perm=all
allow introspector=forensics target=web* perm=attach,events,map max-mappings=8 gpa=0x0-0xfffff rate=10/s
allow introspector=av-* target=any perm=events
default deny
"""
with open(pol, "w") as f:
    f.write(GOOD)
with open(os.path.join(dropins, "50-memdump.policy"), "w") as f:
    f.write("allow introspector=memdump target=uuid:6f1d4a4e-8c55-4b4e-9d1e-2a7b3c4d5e02 perm=map\n")




conf = """[policy]
file = %s
directory = %s
[domain web1]
uuid = 6f1d4a4e-8c55-4b4e-9d1e-2a7b3c4d5e01
cookie = none
[domain db1]
uuid = 6f1d4a4e-8c55-4b4e-9d1e-2a7b3c4d5e02
cookie = none
label = pci
""" % (pol, dropins)

d = Daemon(conf)
try:
    def explain(intro, target, perm, labels=None):
        args = ["--json=short", "policy", "explain", "--introspector", intro, "--target", target, "--perm", perm]
        for lab in labels or []:
            args += ["--label", lab]
        rc, out, err = d.kvmictl(*args)
        return json.loads(out) if rc == 0 else {"rc": rc, "err": err}

    rc, out, err = d.kvmictl("--json=short", "policy", "show")
    p = json.loads(out)
    t.ok(rc == 0 and p["rules"] == 4 and p["default"] == "deny" and not p["builtin"],
         "GetPolicy: rules from the main file and the drop-in", out)
    t.ok(p["text"].splitlines()[-1] == "default deny" and "# lab policy" not in p["text"],
         "canonical text: comments dropped, default last", p["text"])
    rc, out, err = d.kvmictl("policy", "show")
    t.ok(rc == 0 and out.startswith("# from " + pol) and p["digest"] in out, "kvmictl policy show: legend and text", out)
    canon = os.path.join(work, "canon.policy")
    with open(canon, "w") as f:
        f.write(p["text"])
    rc, out, err = d.kvmictl("--json=short", "policy", "check", canon)
    t.ok(rc == 0 and json.loads(out)["digest"] == p["digest"], "the canonical text parses back to the same digest")

    table = [
        ("forensics", "web1", "map", [], "allow", 3),
        ("forensics", "web1", "attach", [], "allow", 3),
        ("forensics", "db1", "events", [], "deny", 2),            # db1 carries label pci
        ("forensics", "web9", "map", ["pci"], "deny", 2),          # an assumed label
        ("av-scan", "db1", "events", [], "deny", 2),
        ("av-scan", "web1", "events", [], "allow", 4),
        ("av-scan", "web1", "map", [], "deny", 5),                 # the default line
        ("memdump", "db1", "map", [], "deny", 2),                  # the pci deny comes first
        ("memdump", "6f1d4a4e-8c55-4b4e-9d1e-2a7b3c4d5e02", "map", [], "deny", 2),
        ("nobody", "web1", "attach", [], "deny", 5),
    ]
    for intro, target, perm, labels, want, line in table:
        e = explain(intro, target, perm, labels)
        t.ok(e.get("decision") == want and e.get("line") == line,
             "explain %s %s %s%s: %s by line %d" % (intro, target, perm, " +" + ",".join(labels) if labels else "",
                                                    want, line), json.dumps(e))
    e = explain("forensics", "web1", "map")
    t.ok(e["limits"] == {"max_mappings": 8, "gpa": ["0x0-0xfffff"], "rate": "10/s"} and "match" in e["text"],
         "explain returns the limits of the deciding rule and a readable text", json.dumps(e))
    e = explain("memdump", "other", "map")
    t.ok(e["decision"] == "deny" and e["default"], "an unknown target name falls to the default")
    with open(os.path.join(dropins, "60-other.policy"), "w") as f:
        f.write("allow introspector=memdump target=other perm=map\n")
    rc, out, err = d.kvmictl("--json=short", "policy", "reload")
    t.ok(rc == 0 and json.loads(out)["changed"], "reload picks up a new drop-in", out + err)
    e = explain("memdump", "other", "map")
    t.ok(e["decision"] == "allow" and e["file"].endswith("60-other.policy") and e["line"] == 1,
         "explain names the drop-in file and line", json.dumps(e))
    rc, out, err = d.kvmictl("--json=short", "policy", "reload")
    t.ok(rc == 0 and not json.loads(out)["changed"], "reload of unchanged files: changed false")
    digest = json.loads(d.kvmictl("--json=short", "policy", "show")[1])["digest"]

    # A broken edit: the old policy stays, the error points at the spot.
    with open(pol, "w") as f:
        f.write(GOOD.replace("perm=events", "perm=evnts"))
    rc, out, err = d.kvmictl("policy", "reload")
    t.ok(rc == 1 and "PolicyInvalid" in err and pol + ":4:" in err and "evnts" in err,
         "ReloadPolicy with a broken file: PolicyInvalid with file:line:col", err)
    t.eq(json.loads(d.kvmictl("--json=short", "policy", "show")[1])["digest"], digest, "the old policy stays in force")
    t.eq(explain("av-scan", "web1", "events")["decision"], "allow", "and keeps deciding as before")
    d.signal(signal.SIGHUP)
    t.ok(wait_for(lambda: "policy reload failed, keeping the policy in force" in d.logtext()),
         "SIGHUP with a broken policy: logged, old policy kept")
    t.eq(json.loads(d.kvmictl("--json=short", "status")[1])["policy_digest"], digest, "GetStatus shows the digest in force")
    with open(pol, "w") as f:
        f.write("default allow\n")
    d.signal(signal.SIGHUP)
    t.ok(wait_for(lambda: json.loads(d.kvmictl("--json=short", "status")[1])["policy_rules"] == 2),
         "SIGHUP with a good policy swaps it in")
    # The main file renamed away mid-edit: a reload fails and the policy in
    # force stays; the built-in deny-all is only for a start without one.
    digest = json.loads(d.kvmictl("--json=short", "policy", "show")[1])["digest"]
    os.rename(pol, pol + ".swp")
    missing = pol + ": No such file or directory"
    rc, out, err = d.kvmictl("policy", "reload")
    t.ok(rc == 1 and "PolicyInvalid" in err and missing in err,
         "ReloadPolicy without the main file: PolicyInvalid naming it", err)
    d.signal(signal.SIGHUP)
    t.ok(wait_for(lambda: d.logtext().count("policy reload failed, keeping the policy in force: " + missing) == 2),
         "SIGHUP without the main file: the reload fails, logged", d.logtext())
    p = json.loads(d.kvmictl("--json=short", "policy", "show")[1])
    t.ok(not p["builtin"] and p["digest"] == digest and p["rules"] == 2,
         "without the main file the policy in force stays, not the built-in deny-all", json.dumps(p))
    t.ok("everything is denied" not in d.logtext(), "and nothing says everything is denied")
    with open(os.path.join(d.runtime, "audit.log")) as f:
        fails = [r for r in map(json.loads, f) if r["kind"] == "policy-reload-fail"]
    t.ok(len(fails) >= 2 and all(r["reason"] == missing and r["data"]["kept_digest"] == digest
                                 and not r["data"]["initial"] for r in fails[-2:]),
         "both failed reloads are audited with the missing path and the digest kept", json.dumps(fails[-2:]))
    os.rename(pol + ".swp", pol)
finally:
    d.stop()
    d.cleanup()

# No main policy file at start: the built-in default deny, and the log
# says so.
os.rename(pol, pol + ".away")
d = Daemon(conf)
try:
    p = json.loads(d.kvmictl("--json=short", "policy", "show")[1])
    t.ok(p["builtin"] and p["text"] == "default deny\n", "no rules file at start: the built-in default deny", json.dumps(p))
    t.ok("everything is denied" in d.logtext(), "and the log says so")
    rc, out, err = d.kvmictl("policy", "reload")
    p = json.loads(d.kvmictl("--json=short", "policy", "show")[1])
    t.ok(rc == 0 and p["builtin"], "a reload still without it keeps the built-in policy", out + err)
    # The file appears: the next reload takes it; then it is the policy
    # in force, and its absence would be a failed reload.
    os.rename(pol + ".away", pol)
    rc, out, err = d.kvmictl("policy", "reload")
    p = json.loads(d.kvmictl("--json=short", "policy", "show")[1])
    t.ok(rc == 0 and not p["builtin"], "once the file exists, a reload takes it", out + err)
    os.rename(pol, pol + ".away")
    rc, out, err = d.kvmictl("policy", "reload")
    t.ok(rc == 1 and pol + ": No such file or directory" in err, "and a reload without it then fails", err)
finally:
    d.stop()
    d.cleanup()
os.rename(pol + ".away", pol)

# A broken policy at start: kvmid refuses to run.
with open(pol, "w") as f:
    f.write("allow introspector=x target=y perm=attach\n")
cfg = os.path.join(work, "kvmid.conf")
with open(cfg, "w") as f:
    f.write(conf)
p = subprocess.run([KVMID, "--foreground", "--config", cfg, "--runtime-dir", os.path.join(work, "run")],
                   capture_output=True, text=True, timeout=20)
t.ok(p.returncode == 1 and "policy:" in p.stderr and "default" in p.stderr,
     "a policy without a default line: kvmid does not start, and says why", p.stderr)
with open(os.path.join(work, "run", "audit.log")) as f:
    recs = [json.loads(line) for line in f]
t.ok([r["kind"] for r in recs] == ["daemon-start", "policy-reload-fail", "daemon-stop"]
     and recs[1]["reason"].startswith(pol + ":") and "no default" in recs[1]["reason"]
     and recs[1]["data"] == {"initial": True, "file": pol} and recs[2]["reason"] == "start failed",
     "and the audit log says why too: policy-reload-fail (initial) before daemon-stop", json.dumps(recs))

# kvmictl policy check works offline.
with open(pol, "w") as f:
    f.write(GOOD)
p = subprocess.run([KVMICTL, "policy", "check", pol, dropins], capture_output=True, text=True)
t.ok(p.returncode == 0 and "OK, 5 rules, default deny" in p.stdout, "policy check FILE DIR: OK (main file and both drop-ins)", p.stdout + p.stderr)
# Several paths, in order, as one policy: the same digest as FILE DIR when
# the drop-ins are named one by one; a drop-in alone has no default line.
p1 = subprocess.run([KVMICTL, "--json=short", "policy", "check", pol, dropins], capture_output=True, text=True)
names = sorted(n for n in os.listdir(dropins) if n.endswith(".policy"))
p2 = subprocess.run([KVMICTL, "--json=short", "policy", "check", pol] + [os.path.join(dropins, n) for n in names],
                    capture_output=True, text=True)
t.ok(p1.returncode == 0 and p2.returncode == 0 and json.loads(p1.stdout)["digest"] == json.loads(p2.stdout)["digest"]
     and json.loads(p2.stdout)["files"] == [pol] + [os.path.join(dropins, n) for n in names],
     "policy check FILE FILE...: the drop-ins named one by one give the same policy as their DIR", p1.stdout + p2.stdout + p2.stderr)
p = subprocess.run([KVMICTL, "policy", "check", os.path.join(dropins, names[0])], capture_output=True, text=True)
t.ok(p.returncode == 1 and "no default" in p.stderr and p.stderr.startswith(os.path.join(dropins, names[0]) + ":"),
     "policy check of a drop-in alone: no default line, named at its end", p.stderr)
bad = os.path.join(work, "bad.policy")
with open(bad, "w") as f:
    f.write("default deny\nallow introspector=x target=y perm=attach rate=5/fortnight\n")
p = subprocess.run([KVMICTL, "policy", "check", bad], capture_output=True, text=True)
t.ok(p.returncode == 1 and p.stderr.startswith(bad + ":2:") and "fortnight" in p.stderr,
     "policy check of a bad file: file:line:col on stderr, exit 1", p.stderr)
p = subprocess.run([KVMICTL, "policy", "check", os.path.join(work, "missing")], capture_output=True, text=True)
t.ok(p.returncode == 1 and "missing" in p.stderr, "policy check of a missing file: exit 1, named", p.stderr)
p = subprocess.run([KVMICTL, "policy", "frobnicate"], capture_output=True, text=True)
t.eq(p.returncode, 2, "unknown policy command: usage error")
t.done()
