#!/usr/bin/env python3
"""libkvmid: only kvmid_* exported, the header stands alone, the pkg-config
file and the man page example build, and kvmid-watch (the example client,
public header only) against the real kvmid with kvmi-sim targets."""

import json
import os
import re
import shutil
import subprocess
import tempfile
import time
from kvmidtest import Daemon, Tap, Sim, kvmi_socket, KVMI_SIM, SANITIZERS

top_srcdir = os.environ["top_srcdir"]
top_builddir = os.environ["top_builddir"]
SO = os.environ.get("LIBKVMID_SO", os.path.join(top_builddir, ".libs", "libkvmid.so"))
WATCH = os.environ.get("KVMID_WATCH", os.path.join(top_builddir, "client", "kvmid-watch"))
CC = os.environ.get("CC") or "cc"
HEADER = os.path.join(top_srcdir, "client", "libkvmid.h")
SAN = ["-fsanitize=address,undefined"] if SANITIZERS else []

t = Tap()
work = tempfile.mkdtemp(prefix="kvmid-libkvmid-")

# ---- the shared library's ABI ----
nm = shutil.which("nm")
if not nm:
    t.skip("exported symbols", "nm not found (apt-get install -y binutils)")
else:
    p = subprocess.run([nm, "-D", "--defined-only", SO], capture_output=True, text=True)
    syms = sorted({line.split()[-1].split("@")[0] for line in p.stdout.splitlines() if line.strip()})
    t.ok(p.returncode == 0 and syms, "nm -D --defined-only libkvmid.so", p.stderr)
    stray = [s for s in syms if not s.startswith("kvmid_")]
    t.ok(not stray, "libkvmid.so exports only kvmid_* (%d symbols)" % len(syms), "also exported: %s" % stray)
    with open(HEADER) as f:
        declared = sorted(set(re.findall(r"\b(kvmid_\w+)\s*\(", f.read())))
    t.eq(syms, declared, "exported = the functions libkvmid.h declares")
p = subprocess.run(["readelf", "-d", SO], capture_output=True, text=True) if shutil.which("readelf") else None
t.ok(p is None or "libkvmid.so.0" in p.stdout, "SONAME libkvmid.so.0 (-version-info 0:0:0)",
     p.stdout if p else None)

# ---- the header alone, in strict C99 and in C++ ----
src = os.path.join(work, "h.c")
with open(src, "w") as f:
    f.write("#include <libkvmid.h>\nint main(void) { KvmidGuestRequest ev = {0}; (void) ev;"
            " return kvmid_reg_name(KVMID_REG_COUNT) != 0; }\n")
p = subprocess.run([CC, "-std=c99", "-pedantic", "-Wall", "-Wextra", "-Werror", "-I", os.path.dirname(HEADER),
                    "-fsyntax-only", src], capture_output=True, text=True)
t.ok(p.returncode == 0, "libkvmid.h compiles alone with -std=c99 -pedantic -Werror", p.stderr)
cxx = shutil.which("c++") or shutil.which("g++")
if cxx:
    cc_src = os.path.join(work, "h.cc")
    shutil.copy(src, cc_src)
    p = subprocess.run([cxx, "-Wall", "-Werror", "-I", os.path.dirname(HEADER), "-fsyntax-only", cc_src],
                       capture_output=True, text=True)
    t.ok(p.returncode == 0, "libkvmid.h compiles as C++", p.stderr)
else:
    t.skip("libkvmid.h compiles as C++", "no C++ compiler (apt-get install -y g++)")

# ---- pkg-config file ----
pc = os.path.join(top_builddir, "client", "libkvmid.pc")
with open(pc) as f:
    pctext = f.read()
t.ok("@" not in pctext and "Libs: -L${libdir} -lkvmid" in pctext and "Requires.private: json-c libcrypto" in pctext,
     "libkvmid.pc substituted", pctext)
if shutil.which("pkg-config"):
    env = dict(os.environ, PKG_CONFIG_PATH=os.path.dirname(pc))
    p = subprocess.run(["pkg-config", "--libs", "libkvmid"], capture_output=True, text=True, env=env)
    t.ok(p.returncode == 0 and "-lkvmid" in p.stdout, "pkg-config --libs libkvmid", p.stdout + p.stderr)
else:
    t.skip("pkg-config --libs libkvmid", "pkg-config not found")

# ---- the man page's example builds, links and runs ----
with open(os.path.join(top_srcdir, "man", "libkvmid.3")) as f:
    page = f.read()
m = re.search(r"^\.EX\n(.*?)^\.EE\n", page, re.S | re.M)
example = m.group(1).replace("\\e", "\\").replace("\\-", "-").replace("\\&", "") if m else ""
ex_src, ex_bin = os.path.join(work, "example.c"), os.path.join(work, "example")
with open(ex_src, "w") as f:
    f.write(example)
p = subprocess.run([CC, "-std=gnu11", "-Wall", "-Wextra", "-Werror", "-I", os.path.dirname(HEADER), ex_src,
                    "-o", ex_bin, "-L", os.path.dirname(SO), "-lkvmid"] + SAN, capture_output=True, text=True)
t.ok(m and p.returncode == 0, "libkvmid(3) EXAMPLES compiles and links", p.stderr)
run_env = dict(os.environ, LD_LIBRARY_PATH=os.path.dirname(SO),
               KVMID_INTROSPECTOR_SOCKET=os.path.join(work, "nothing-here"))
if p.returncode == 0:
    p = subprocess.run([ex_bin], capture_output=True, text=True, env=run_env, timeout=30)
    t.ok(p.returncode == 1 and "connect: error -2" in p.stderr, "the example reports a missing socket",
         p.stdout + p.stderr)

# ---- kvmid-watch against the real kvmid ----
if not os.access(KVMI_SIM, os.X_OK):
    t.skip("kvmid-watch end to end", "kvmi-sim is not built (make check builds it)")
    t.done()

UID = os.getuid()
U = {"web1": "7a1d4a4e-8c55-4b4e-9d1e-2a7b3c4d5e01", "db1": "7a1d4a4e-8c55-4b4e-9d1e-2a7b3c4d5e03"}


def keyfile(name, mode=0o600, data=None):
    path = os.path.join(work, name + ".key")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.write(fd, data or os.urandom(32))
    os.close(fd)
    os.chmod(path, mode)
    return path


tool_key = keyfile("tool")
pol = os.path.join(work, "policy")
with open(pol, "w") as f:
    f.write("deny introspector=any target=db1 perm=all\n"
            "allow introspector=tool target=web1 perm=all gpa=0x0-0xfffff\n"
            "default deny\n")
conf = "[policy]\nfile = %s\n[introspector tool]\nkey-file = %s\nuid = %d\n" % (pol, tool_key, UID)
for n in U:
    conf += "[domain %s]\nuuid = %s\ncookie = none\n" % (n, U[n])

d = Daemon(conf)
sim = None
procs = []
try:
    sim = Sim(["--socket", kvmi_socket(d), "--vcpus", "2"] + sum([["--vm", "%s,%s" % (n, U[n])] for n in U], []),
              work)
    sock = d.socket("introspector")

    def watch(*args, key=tool_key, name="tool", timeout=30):
        p = subprocess.run([WATCH, "--socket", sock, "--name", name, "--key-file", key] + list(args),
                           capture_output=True, text=True, timeout=timeout)
        return p.returncode, p.stdout, p.stderr

    rc, out, err = watch("--auth-only")
    t.ok(rc == 0 and out == "authenticated tool\n", "kvmid-watch: authenticate against kvmid", out + err)
    rc, out, err = watch("--auth-only", key=keyfile("wrong"))
    t.ok(rc == 1 and "io.kvmid.Introspector.AuthenticationFailed" in err, "a wrong key: AuthenticationFailed", err)
    rc, out, err = watch("--auth-only", name="nobody")
    t.ok(rc == 1 and "io.kvmid.Introspector.AuthenticationFailed" in err, "an unknown name: the same answer", err)
    loose = keyfile("loose", 0o644)
    rc, out, err = watch("--auth-only", key=loose)
    t.ok(rc == 1 and "chmod 0600" in err and "AuthenticationFailed" not in err,
         "a group/world-readable key file is refused before sending anything", err)
    rc, out, err = watch("db1")
    t.ok(rc == 1 and "io.kvmid.Introspector.PolicyDenied: attach denied by %s:1" % pol in err,
         "OpenSession denied: the error names the rule", err)
    rc, out, err = watch("nosuch")
    t.ok(rc == 1 and "io.kvmid.Introspector.TargetUnavailable: target nosuch is unavailable" in err,
         "OpenSession of an unknown target", err)
    rc, out, err = watch("--map", "0x200000:4096", "web1")
    t.ok(rc == 1 and "io.kvmid.Introspector.GpaOutsideRange" in err, "GetMapToken outside the rule's range", err)

    # Subscribe: two watchers, one filtered to vCPU 1; events flow, then the session is revoked.
    def start(*args):
        p = subprocess.Popen([WATCH, "--socket", sock, "--name", "tool", "--key-file", tool_key] + list(args),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        procs.append(p)
        return p

    def lines_until(p, prefix):
        got = []
        while True:
            line = p.stdout.readline()
            if not line:
                return got
            got.append(line.rstrip("\n"))
            if line.startswith(prefix):
                return got

    ok = False
    for _ in range(100):        # the targets become ready asynchronously
        st = json.loads(d.kvmictl("--json=short", "domains")[1])["domains"]
        if all(x["kvmi"] == "ready" for x in st if x["role"] == "target"):
            ok = True
            break
        time.sleep(0.1)
    t.ok(ok, "simulated targets ready")

    w_all = start("--map", "0x1000:0x2000", "web1")
    w_one = start("--vcpu", "1", "web1")
    head_all = lines_until(w_all, "subscribed")
    head_one = lines_until(w_one, "subscribed")
    tok = [x for x in head_all if x.startswith("token ")]
    t.ok(len(head_all) == 4 and head_all[0] == "authenticated tool" and head_all[1].startswith("session ")
         and tok and re.match(r"token id=t-\S+ expires_usec=\d+ token=[0-9a-f]{64}$", tok[0]),
         "kvmid-watch: session, map token, subscribed", head_all)
    t.ok(head_one[-1] == "subscribed", "a second watcher with a vCPU filter", head_one)
    live = sim.cmd(cmd="tokens", vm="web1")
    t.ok(tok and tok[0].split("token=")[1] in json.dumps(live), "the token is one the target's kernel minted")

    r = sim.cmd(cmd="send", vm="web1", count=3, regs={"rdx": 0x77})
    t.eq(r.get("acked"), 6, "the target's vCPUs send 3 guest requests each")
    ev_all = [w_all.stdout.readline().rstrip("\n") for _ in range(6)]
    ev_one = [w_one.stdout.readline().rstrip("\n") for _ in range(3)]

    def field(line, key):
        m = re.search(r"\b%s=(\S+)" % key, line)
        return m.group(1) if m else None

    t.ok(all(x.startswith("event target=web1 uuid=%s " % U["web1"]) for x in ev_all),
         "events name the target and its UUID", ev_all)
    t.eq([int(field(x, "seq")) for x in ev_all], list(range(1, 7)), "per-target order, consecutive seq")
    t.ok(all(field(x, "rdx") == "0x77" and field(x, "rax") == "0x22" and field(x, "unreliable") == "r8,r9"
             and field(x, "mode") == "8" and field(x, "missed") == "0" for x in ev_all),
         "registers as the vCPU had them, r8/r9 marked unreliable", ev_all[:1])
    t.ok(all(field(x, "vcpu") == "1" for x in ev_one), "the vCPU filter: only vCPU 1", ev_one)

    sid = head_all[1].split()[1]
    rc, out, err = d.kvmictl("revoke", "session", sid)
    t.eq(rc, 0, "kvmictl revoke session")
    tail = lines_until(w_all, "ended")
    rc_all = w_all.wait(10)
    t.ok(rc_all == 0 and tail and tail[-1].startswith("ended ") and "operator" in tail[-1],
         "SessionEnded: kvmid-watch prints the reason and exits 0", (tail, w_all.stderr.read()))

    # --events N: stops by itself after N events.
    w_n = start("--events", "2", "web1")
    lines_until(w_n, "subscribed")
    sim.cmd(cmd="send", vm="web1", count=2)
    rest = w_n.stdout.read().splitlines()
    t.ok(w_n.wait(10) == 0 and len(rest) == 2 and all(x.startswith("event ") for x in rest),
         "--events 2: two events, then exit 0", rest)
    w_one.terminate()
    w_one.wait(10)
finally:
    for p in procs:
        if p.poll() is None:
            p.kill()
            p.wait()
        for s in (p.stdout, p.stderr):
            if s:
                s.close()
    if sim:
        sim.close()
    t.eq(d.stop(), 0, "kvmid exits 0")
    d.cleanup()
    shutil.rmtree(work, ignore_errors=True)
t.done()
