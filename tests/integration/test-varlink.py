#!/usr/bin/env python3
"""The varlink protocol as kvmid speaks it: listeners, dispatch, validation,
interoperability rules, framing errors; the sockets' paths, modes and
groups."""

import grp
import json
import os
import shutil
import stat
import tempfile
from kvmidtest import Daemon, Tap, Varlink

t = Tap()
d = Daemon("[daemon]\nvarlink-certification = yes\n")
try:
    # Each listener describes exactly the interfaces it serves.
    want = {
        "admin": ["org.varlink.service", "io.kvmid", "io.kvmid.Admin", "org.varlink.certification"],
        "introspector": ["org.varlink.service", "io.kvmid", "io.kvmid.Introspector"],
        "hypervisor": ["org.varlink.service", "io.kvmid", "io.kvmid.Hypervisor"],
    }
    for name, ifaces in want.items():
        c = d.connect(name)
        r = c.call("org.varlink.service.GetInfo")
        t.eq(r["parameters"]["interfaces"], ifaces, "%s listener: GetInfo lists its interfaces" % name)
        t.eq(sorted(r.keys()), ["parameters"], "%s listener: reply carries only 'parameters'" % name)
        c.close()

    c = d.connect("admin")
    r = c.call("org.varlink.service.GetInterfaceDescription", {"interface": "io.kvmid.Admin"})
    t.ok(r["parameters"]["description"].startswith("# Administration"), "GetInterfaceDescription returns the IDL text")
    r = c.call("org.varlink.service.GetInterfaceDescription", {"interface": "io.kvmid.Introspector"})
    t.eq(r, {"error": "org.varlink.service.InterfaceNotFound", "parameters": {"interface": "io.kvmid.Introspector"}},
         "GetInterfaceDescription of an interface another listener serves: InterfaceNotFound")

    # Wrong interface on a listener.
    i = d.connect("introspector")
    r = i.call("io.kvmid.Admin.GetStatus")
    t.eq(r.get("error"), "org.varlink.service.InterfaceNotFound", "Admin call on the introspector listener refused")
    t.eq(r["parameters"], {"interface": "io.kvmid.Admin"}, "InterfaceNotFound names the interface")
    r = c.call("io.kvmid.Introspector.Hello")
    t.eq(r.get("error"), "org.varlink.service.InterfaceNotFound", "Introspector call on the admin listener refused")
    h = d.connect("hypervisor")
    r = h.call("io.kvmid.Admin.GetStatus")
    t.eq(r.get("error"), "org.varlink.service.InterfaceNotFound", "Admin call on the hypervisor listener refused")

    # Introspector Hello: fresh nonces.
    n1 = i.call("io.kvmid.Introspector.Hello")["parameters"]
    n2 = i.call("io.kvmid.Introspector.Hello")["parameters"]
    t.ok(len(n1["nonce"]) == 64 and n1["nonce"] != n2["nonce"], "Hello returns a fresh 256-bit nonce each time")

    r = c.call("io.kvmid.Admin.NoSuchMethod")
    t.eq(r, {"error": "org.varlink.service.MethodNotFound", "parameters": {"method": "io.kvmid.Admin.NoSuchMethod"}},
         "unknown method: MethodNotFound naming it")
    r = c.call("com.example.Nothing.Foo")
    t.eq(r.get("error"), "org.varlink.service.InterfaceNotFound", "unknown interface: InterfaceNotFound")

    # Parameter validation names the field.
    r = c.call("io.kvmid.Admin.GetStatus", {"bogus": 1})
    t.eq(r, {"error": "org.varlink.service.InvalidParameter", "parameters": {"parameter": "bogus"}},
         "unknown field: InvalidParameter naming it")
    r = c.call("org.varlink.service.GetInterfaceDescription", {})
    t.eq(r.get("parameters"), {"parameter": "interface"}, "missing field: InvalidParameter naming it")
    r = c.call("org.varlink.service.GetInterfaceDescription", {"interface": 5})
    t.eq(r.get("parameters"), {"parameter": "interface"}, "wrong type: InvalidParameter naming it")
    r = c.call("org.varlink.service.GetInterfaceDescription", {"interface": "io.kvmid\u0000.Admin"})
    t.eq(r.get("parameters"), {"parameter": "interface"}, "NUL inside a string: InvalidParameter")
    r = c.call("org.varlink.certification.Test03", {"client_id": "x", "int": 1.5})
    t.eq(r.get("parameters"), {"parameter": "int"}, "float where the IDL says int: InvalidParameter")
    r = c.call("org.varlink.certification.Test03", {"client_id": "x", "int": 1, "extra": {"deep": [1]}})
    t.eq(r.get("parameters"), {"parameter": "extra"}, "nested unknown field named")
    st = c.call("org.varlink.certification.Start")["parameters"]
    r = c.call("org.varlink.certification.Test08", {"client_id": st["client_id"], "map": {"a": 1}})
    t.eq(r.get("parameters"), {"parameter": "map.a"}, "map value of the wrong type named by its path")
    r = c.call("org.varlink.certification.Test10", {"client_id": st["client_id"], "mytype": {}})
    t.eq(r.get("error"), "org.varlink.service.ExpectedMore", "streaming method without 'more': ExpectedMore")

    # Interoperability rules.
    c.send_raw(b'{"method":"io.kvmid.Admin.GetStatus","parameters":null}\0')
    r = c.recv()
    t.ok("version" in r.get("parameters", {}), '"parameters": null accepted as {}')
    r = c.call("org.varlink.service.GetInfo", more=True)
    t.ok("continues" not in r and "vendor" in r["parameters"], "'more' on a single-reply method: one reply, no continues")
    c.send("io.kvmid.Admin.GetStatus", oneway=True)
    r = c.call("org.varlink.service.GetInfo")
    t.ok("vendor" in r.get("parameters", {}), "oneway call gets no reply: the next reply is the next call's")
    c.send("io.kvmid.Admin.NoSuchMethod", oneway=True)
    r = c.call("org.varlink.service.GetInfo")
    t.ok("vendor" in r.get("parameters", {}), "oneway call gets no reply even when it fails")
    # Not even when the call itself is invalid: each is followed by a GetStatus
    # on the same connection, whose reply must be the first one back.
    for raw, desc in [(b'{"method":"io.kvmid.Admin.GetStatus","oneway":true,"bogus":1}', "an unknown top-level key"),
                      (b'{"method":"not valid","oneway":true}', "a malformed method name"),
                      (b'{"method":"io.kvmid.Admin.GetStatus","oneway":true,"parameters":{"bogus":1}}',
                       "an unknown parameter")]:
        c.send_raw(raw + b"\0")
        r = c.call("io.kvmid.Admin.GetStatus")
        t.ok(r is not None and "uptime_usec" in r.get("parameters", {}),
             "oneway call with %s gets no reply: the next reply is the next call's" % desc, r)
    c.send_raw(b'{"method":"org.varlink.service.GetInfo","oneway":"yes"}\0')
    t.eq(c.recv(), {"error": "org.varlink.service.InvalidParameter", "parameters": {"parameter": "oneway"}},
         'non-boolean "oneway" is not a oneway call: InvalidParameter naming it')
    c.send_raw(b'{"method":"org.varlink.service.GetInfo"}\0'
               b'{"method":"io.kvmid.Admin.GetStatus"}\0'
               b'{"method":"org.varlink.service.GetInterfaceDescription","parameters":{"interface":"io.kvmid"}}\0')
    r1, r2, r3 = c.recv(), c.recv(), c.recv()
    t.ok("vendor" in r1["parameters"] and "uptime_usec" in r2["parameters"] and "description" in r3["parameters"],
         "pipelined calls in one write answered in order")
    msg = b'{"method":"org.varlink.service.GetInfo"}\0'
    for b in msg:
        c.send_raw(bytes([b]))
    t.ok("vendor" in c.recv()["parameters"], "a call written byte by byte is answered")
    r = c.call("org.varlink.service.GetInfo", upgrade=True)
    t.eq(r, {"error": "org.varlink.service.InvalidParameter", "parameters": {"parameter": "upgrade"}},
         "upgrade refused with InvalidParameter 'upgrade'")
    r = c.call("org.varlink.service.GetInfo", extra_key=1)
    t.eq(r.get("parameters"), {"parameter": "extra_key"}, "unknown top-level key named")
    c.send_raw(b'{"method":"not a method"}\0')
    t.eq(c.recv().get("parameters"), {"parameter": "method"}, "malformed method name: InvalidParameter 'method'")
    c.send_raw(b'{"method":"org.varlink.service.GetInfo","more":"yes"}\0')
    t.eq(c.recv().get("parameters"), {"parameter": "more"}, "non-boolean 'more' named")
    r = c.call("org.varlink.service.GetInfo")
    t.ok("vendor" in r["parameters"], "connection still usable after recoverable errors")
    c.close()

    # Framing errors: clear error, then the connection closes.
    cases = [
        (b'{"method": \0', "io.kvmid.ProtocolError", "invalid JSON"),
        (b'{"method":"org.varlink.service.GetInfo","x":"\xff\xfe"}\0', "io.kvmid.ProtocolError", "invalid UTF-8"),
        (b'[1,2]\0', "io.kvmid.ProtocolError", "JSON that is not an object"),
        (b'{"method":"org.varlink.service.GetInfo"} {"a":1}\0', "io.kvmid.ProtocolError", "bytes after the object"),
        (b'{"method":"org.varlink.service.GetInfo","parameters":' + b'{"a":' * 40 + b'1' + b'}' * 41 + b'\0',
         "io.kvmid.LimitExceeded", "nesting deeper than max-depth"),
    ]
    for data, error, desc in cases:
        x = d.connect("admin")
        x.send_raw(data)
        r = x.recv()
        t.eq(r and r.get("error"), error, desc + ": " + error)
        t.ok(x.at_eof(), desc + ": connection closed after the error")
        x.close()
    x = d.connect("admin")
    x.send_raw(b'{"method":"org.varlink.service.GetInfo","parameters":' + b'{"a":' * 40 + b'1' + b'}' * 41 + b'\0')
    t.eq(x.recv().get("parameters"), {"limit": "max-depth", "max": 32}, "LimitExceeded names the limit and its value")
    x.close()
    # Trailing whitespace inside a message is fine.
    x = d.connect("admin")
    x.send_raw(b'{"method":"org.varlink.service.GetInfo"}  \n\0')
    t.ok("vendor" in x.recv().get("parameters", {}), "trailing whitespace after the object accepted")
    x.close()

    st = json.loads(d.kvmictl("--json=short", "status")[1])
    adm = [l for l in st["listeners"] if l["name"] == "admin"][0]
    t.ok(adm["errors"] >= 10 and adm["calls"] >= 30, "GetStatus counts calls and errors")

    # The sockets kvmid binds: 0660, group kvmid-admin, kvmid-introspector
    # and kvm (DESIGN.md); where that group does not exist, kvmid's own.
    for name, group in (("admin", "kvmid-admin"), ("introspector", "kvmid-introspector"), ("hypervisor", "kvm")):
        st = os.stat(d.socket(name))
        t.ok(stat.S_ISSOCK(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o660,
             "%s socket: a socket with mode 0660" % name, oct(st.st_mode))
        try:
            want_gid = grp.getgrnam(group).gr_gid
        except KeyError:
            want_gid = os.getegid()
        t.eq(st.st_gid, want_gid, "%s socket: group %s (or ours if there is none)" % (name, group))
    t.eq(d.stop(), 0, "kvmid exits 0 on SIGTERM")
finally:
    d.cleanup()

# socket =, mode =, group = of a listener: the path (its directories
# created), the mode and the group are the ones configured.
def other_group():
    """A group to give the socket to, other than our own if we can."""
    mine = os.getegid()
    if os.geteuid() == 0:
        for g in grp.getgrall():
            if g.gr_gid != mine:
                return g.gr_name, g.gr_gid
    for gid in os.getgroups():
        if gid != mine:
            try:
                return grp.getgrgid(gid).gr_name, gid
            except KeyError:
                pass
    return grp.getgrgid(mine).gr_name, mine


elsewhere = tempfile.mkdtemp(prefix="kvmid-test-sock-")
gname, gid = other_group()
custom = os.path.join(elsewhere, "sub", "dir", "admin.sock")
d = Daemon("[admin]\nsocket = %s\nmode = 0620\ngroup = %s\n[hypervisor]\ngroup = %s\n" % (custom, gname, gname))
try:
    st = os.stat(custom)
    t.ok(stat.S_ISSOCK(st.st_mode), "socket = PATH: kvmid listens there, creating its directories")
    t.eq(oct(stat.S_IMODE(st.st_mode)), oct(0o620), "mode = 0620: the socket's mode")
    t.eq(st.st_gid, gid, "group = %s: the socket's group" % gname)
    hst = os.stat(d.socket("hypervisor"))
    t.ok(hst.st_gid == gid and stat.S_IMODE(hst.st_mode) == 0o660, "group = on another listener, mode left at 0660",
         (hst.st_gid, oct(hst.st_mode)))
    t.ok(not os.path.exists(d.socket("admin")), "nothing bound at the default admin path")
    x = Varlink(custom)
    r = x.call("io.kvmid.Admin.GetStatus")
    adm = [l for l in r["parameters"]["listeners"] if l["name"] == "admin"][0]
    t.eq(adm["socket"], custom, "GetStatus reports the configured socket path")
    x.close()
    t.eq(d.stop(), 0, "kvmid exits 0 on SIGTERM")
    t.ok(not os.path.exists(custom), "the configured socket is unlinked at exit")
finally:
    d.cleanup()
    shutil.rmtree(elsewhere, ignore_errors=True)
t.done()
