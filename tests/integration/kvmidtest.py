"""Harness for kvmid integration tests: start the real daemon in a temporary
directory, talk to it over its sockets, report as TAP."""

import hashlib
import hmac
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

KVMID = os.environ.get("KVMID", "kvmid")
KVMICTL = os.environ.get("KVMICTL", "kvmictl")
SANITIZERS = os.environ.get("SANITIZERS") == "yes"


class Tap:
    """Minimal TAP producer; the automake tap-driver counts every point."""

    def __init__(self):
        self.n = 0
        self.failed = 0

    def ok(self, cond, desc, diag=None):
        self.n += 1
        if not cond:
            self.failed += 1
        print("%sok %d - %s" % ("" if cond else "not ", self.n, desc), flush=True)
        if not cond and diag is not None:
            for line in str(diag).splitlines():
                print("# " + line, flush=True)
        return cond

    def eq(self, got, want, desc):
        return self.ok(got == want, desc, "got:  %r\nwant: %r" % (got, want))

    def skip(self, desc, reason):
        self.n += 1
        print("ok %d - %s # SKIP %s" % (self.n, desc, reason), flush=True)

    def done(self):
        print("1..%d" % self.n, flush=True)
        sys.exit(1 if self.failed else 0)


def wait_for(cond, timeout=10):
    """Poll cond until it is true (True) or timeout seconds pass (False)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if cond():
            return True
        time.sleep(0.05)
    return False


def skip_all(reason):
    print("1..0 # SKIP %s" % reason, flush=True)
    sys.exit(0)


class Varlink:
    """A raw varlink connection: whole messages or arbitrary bytes."""

    def __init__(self, path, timeout=10):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect(path)
        self.buf = b""

    def close(self):
        self.sock.close()

    def send_raw(self, data):
        self.sock.sendall(data)

    def send(self, method, parameters=None, more=False, oneway=False, **extra):
        msg = {"method": method}
        if parameters is not None:
            msg["parameters"] = parameters
        if more:
            msg["more"] = True
        if oneway:
            msg["oneway"] = True
        msg.update(extra)
        self.send_raw(json.dumps(msg).encode() + b"\0")

    def recv(self):
        """Next message as a dict; None on EOF."""
        while b"\0" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                return None
            self.buf += chunk
        msg, _, self.buf = self.buf.partition(b"\0")
        return json.loads(msg)

    def call(self, method, parameters=None, **kw):
        self.send(method, parameters, **kw)
        return self.recv()

    def at_eof(self, timeout=5):
        """True if the server closes the connection (after any replies)."""
        self.sock.settimeout(timeout)
        try:
            while True:
                chunk = self.sock.recv(65536)
                if not chunk:
                    return True
                self.buf += chunk
        except (socket.timeout, TimeoutError):
            return False
        except ConnectionResetError:
            return True


def off_host_libvirt(config):
    """config, kept off the host's libvirt (kvmid's default is
    qemu:///system) unless it has a [libvirt] section of its own."""
    return config if "[libvirt]" in config else config + "\n[libvirt]\nuri = none\n"


def auth_proof(key, nonce, name, binding=None):
    """io.kvmid.Introspector's proof: HMAC-SHA256(key, "kvmid-auth-v1" 0x00 ||
    nonce || name 0x00 || binding), binding "unix:EUID" unless given."""
    msg = b"kvmid-auth-v1\0" + nonce + name.encode() + b"\0" + (binding or "unix:%d" % os.getuid()).encode()
    return hmac.new(key, msg, hashlib.sha256).hexdigest()


def authenticate(conn, name, key, binding=None):
    """Hello then Authenticate on conn (anything with call(method, params)
    returning the reply); returns Authenticate's reply."""
    nonce = bytes.fromhex(conn.call("io.kvmid.Introspector.Hello")["parameters"]["nonce"])
    return conn.call("io.kvmid.Introspector.Authenticate", {"name": name, "proof": auth_proof(key, nonce, name, binding)})


class Daemon:
    """The real kvmid in a temp runtime dir."""

    def __init__(self, config="", valgrind=False, extra_args=(), env=None, name="kvmid", preexec_fn=None):
        self.dir = tempfile.mkdtemp(prefix="kvmid-test-")
        self.runtime = os.path.join(self.dir, "run")
        self.config_path = os.path.join(self.dir, "kvmid.conf")
        self.log_path = os.path.join(self.dir, "kvmid.log")
        self.valgrind_log = os.path.join(self.dir, "valgrind.log")
        self.write_config(config)
        cmd = [KVMID, "--foreground", "--config", self.config_path, "--runtime-dir", self.runtime,
               "--log-level", "debug"] + list(extra_args)
        if valgrind:
            cmd = [os.environ.get("VALGRIND", "valgrind"), "--error-exitcode=99", "--leak-check=full",
                   "--errors-for-leak-kinds=definite", "--show-leak-kinds=definite",
                   "--log-file=" + self.valgrind_log] + cmd
        e = dict(os.environ)
        e["KVMID_VALIDATE_REPLIES"] = "1"
        e.pop("NOTIFY_SOCKET", None)
        if env:
            e.update(env)
        self.log = open(self.log_path, "w")
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT, env=e, preexec_fn=preexec_fn)
        self.wait_ready(60 if valgrind else 10)

    def write_config(self, text):
        with open(self.config_path, "w") as f:
            f.write(off_host_libvirt(text))

    def socket(self, name):
        return os.path.join(self.runtime, {"admin": "io.kvmid.Admin",
                                           "introspector": "io.kvmid.Introspector",
                                           "hypervisor": "io.kvmid.Hypervisor"}[name])

    def wait_ready(self, timeout):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("kvmid exited with %s:\n%s" % (self.proc.returncode, self.logtext()))
            if "ready" in self.logtext():
                return
            time.sleep(0.05)
        raise RuntimeError("kvmid did not become ready:\n" + self.logtext())

    def connect(self, name="admin", timeout=10):
        return Varlink(self.socket(name), timeout)

    def logtext(self):
        with open(self.log_path) as f:
            return f.read()

    def kvmictl(self, *args, socket_name="admin", timeout=30):
        p = subprocess.run([KVMICTL, "--socket", self.socket(socket_name)] + list(args),
                           capture_output=True, text=True, timeout=timeout)
        return p.returncode, p.stdout, p.stderr

    def kvmictl_stream(self, *args, timeout=30):
        """kvmictl ARGS left running (stdout and stderr piped), returned once
        kvmid has dispatched its call: a stream such as events says nothing
        before its first item, so this counts the admin listener's calls
        (each GetStatus counts itself).  None if the call never arrived."""
        v = self.connect("admin", timeout)

        def calls():
            st = v.call("io.kvmid.Admin.GetStatus")["parameters"]
            return [x for x in st["listeners"] if x["name"] == "admin"][0]["calls"]

        before = calls()
        proc = subprocess.Popen([KVMICTL, "--socket", self.socket("admin")] + list(args),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        polls = [0]

        def dispatched():
            polls[0] += 1
            return calls() - before - polls[0] >= 1

        ok = wait_for(dispatched, timeout)
        v.close()
        if not ok:
            proc.kill()
            proc.wait()
            return None
        return proc

    def signal(self, sig):
        self.proc.send_signal(sig)

    def stop(self, timeout=30):
        """SIGTERM and wait; returns the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                return None
        self.log.close()
        return self.proc.returncode

    def cleanup(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


KVMI_SIM = os.environ.get("KVMI_SIM", "kvmi-sim")


def domains_config(dirpath, domains, extra=""):
    """kvmid.conf text for target domains [(name, uuid, cookie bytes or None)];
    cookie files are written into dirpath (mode 0600)."""
    text = extra
    for name, uuid, cookie in domains:
        text += "[domain %s]\nuuid = %s\n" % (name, uuid)
        if cookie is None:
            text += "cookie = none\n"
        else:
            path = os.path.join(dirpath, "cookie-" + name)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            os.write(fd, cookie)
            os.close(fd)
            text += "cookie-file = %s\n" % path
    return text


def kvmi_socket(daemon):
    return os.path.join(daemon.runtime, "kvmi")


def run_sim(args, timeout=60):
    """kvmi-sim in one-shot mode: (exit code, report dict or None, stderr)."""
    p = subprocess.run([KVMI_SIM] + list(args), capture_output=True, text=True, timeout=timeout)
    try:
        report = json.loads(p.stdout) if p.stdout.strip() else None
    except ValueError:
        report = None
    return p.returncode, report, p.stderr


class Sim:
    """kvmi-sim in control mode: JSON-lines commands over its control socket."""

    def __init__(self, args, workdir, timeout=30):
        self.path = os.path.join(workdir, "sim-%d.ctl" % id(self))
        self.err = open(os.path.join(workdir, "sim-%d.err" % id(self)), "w+")
        self.proc = subprocess.Popen([KVMI_SIM, "--control", self.path] + list(args),
                                     stdout=subprocess.PIPE, stderr=self.err, text=True)
        line = self.proc.stdout.readline()
        if line.strip() != "ready":
            raise RuntimeError("kvmi-sim did not start: %r %s" % (line, self.stderr()))
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect(self.path)
        self.f = self.sock.makefile("rw")

    def stderr(self):
        self.err.flush()
        self.err.seek(0)
        return self.err.read()

    def cmd(self, **kw):
        self.f.write(json.dumps(kw) + "\n")
        self.f.flush()
        line = self.f.readline()
        if not line:
            raise RuntimeError("kvmi-sim closed its control socket: " + self.stderr())
        return json.loads(line)

    def close(self):
        try:
            self.cmd(cmd="quit")
        except (OSError, RuntimeError, ValueError):
            pass
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.sock.close()
        self.err.close()


def finish(proc, timeout):
    """(exit code, or None if it was still running after timeout; stderr)."""
    try:
        proc.wait(timeout)
    except Exception:
        proc.kill()
        proc.wait()
        return None, proc.stderr.read().decode()
    return proc.returncode, proc.stderr.read().decode()
