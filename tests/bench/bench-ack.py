#!/usr/bin/env python3
"""Guest-request ack round trip, as the vCPU sees it (event sent → CONTINUE
received), through kvmid versus the floor: the same kvmi-sim client code
against a minimal echo peer over socketpairs, with the same message sizes
and concurrency, measured in the same run.

Usage: bench-ack.py [--targets N] [--vcpus N] [--events N]
Needs KVMID and KVMI_SIM (paths to the built binaries) or a build dir in
./build.  Targets: p50 within 1.3x and p99 within 2x of the floor."""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

top = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
KVMID = os.environ.get("KVMID", os.path.join(top, "build", "kvmid"))
SIM = os.environ.get("KVMI_SIM", os.path.join(top, "build", "tests", "sim", "kvmi-sim"))

ap = argparse.ArgumentParser()
ap.add_argument("--targets", type=int, default=4)
ap.add_argument("--vcpus", type=int, default=4)
ap.add_argument("--events", type=int, default=5000, help="per vCPU")
ap.add_argument("--rounds", type=int, default=3, help="alternating floor/kvmid runs; the median is reported")
args = ap.parse_args()

work = tempfile.mkdtemp(prefix="kvmid-bench-")
uuids = ["00000000-0000-4000-8000-%012d" % i for i in range(args.targets)]
conf = "[kvmi]\nmax-channels = 4096\n" + "".join(
    "[domain t%d]\nuuid = %s\ncookie = none\n" % (i, u) for i, u in enumerate(uuids))
with open(os.path.join(work, "kvmid.conf"), "w") as f:
    f.write(conf)
log = open(os.path.join(work, "kvmid.log"), "w")
d = subprocess.Popen([KVMID, "--foreground", "--config", os.path.join(work, "kvmid.conf"),
                      "--runtime-dir", os.path.join(work, "run"), "--log-level", "warning"], stdout=log, stderr=log)
sock = os.path.join(work, "run", "kvmi")
for _ in range(200):
    if os.path.exists(sock):
        break
    time.sleep(0.05)


def cpu_of(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run(floor):
    cmd = [SIM, "--vcpus", str(args.vcpus), "--events", str(args.events), "--rate", "0", "--timeout", "60"]
    cmd += ["--floor"] if floor else ["--socket", sock]
    for i, u in enumerate(uuids):
        cmd += ["--vm", "t%d,%s" % (i, u)]
    cpu0 = cpu_of(d.pid)
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    if p.returncode != 0:
        sys.exit("kvmi-sim failed (%s): %s" % ("floor" if floor else "kvmid", p.stderr.strip()))
    tot = json.loads(p.stdout)["total"]
    tot["kvmid_cpu_s"] = cpu_of(d.pid) - cpu0
    return tot


try:
    floors, kvmids = [], []
    for _ in range(args.rounds):
        floors.append(run(True))
        kvmids.append(run(False))

    def median(rs, key):
        vals = sorted(r["latency_ns"][key] if key in ("p50", "p99", "max") else r[key] for r in rs)
        return vals[len(vals) // 2]

    f50, f99, k50, k99 = median(floors, "p50"), median(floors, "p99"), median(kvmids, "p50"), median(kvmids, "p99")
    frate, krate = median(floors, "events_per_sec"), median(kvmids, "events_per_sec")
    n = args.targets * args.vcpus * args.events
    cpu = median(kvmids, "kvmid_cpu_s")
    print("guest-request ack round trip: %d targets x %d vCPUs, %d events per run, median of %d runs"
          % (args.targets, args.vcpus, n, args.rounds))
    print("%-22s %12s %12s %14s" % ("", "p50", "p99", "events/s"))
    print("%-22s %10.1fus %10.1fus %14.0f" % ("raw socketpair floor", f50 / 1e3, f99 / 1e3, frate))
    print("%-22s %10.1fus %10.1fus %14.0f" % ("through kvmid", k50 / 1e3, k99 / 1e3, krate))
    print("%-22s %11.2fx %11.2fx %13.2fx" % ("kvmid / floor", k50 / f50, k99 / f99, krate / frate))
    print("kvmid CPU per event: %.2f us" % (cpu / n * 1e6))
    ok50, ok99 = k50 / f50 <= 1.3, k99 / f99 <= 2.0
    print("target p50 <= 1.3x: %s; p99 <= 2x: %s" % ("met" if ok50 else "MISSED", "met" if ok99 else "MISSED"))
finally:
    d.terminate()
    d.wait()
    shutil.rmtree(work, ignore_errors=True)
