#!/usr/bin/env python3
"""Guest-request ack round trip, as the vCPU sees it (event sent → CONTINUE
received), through kvmid versus the floor: the same kvmi-sim client code
against a minimal echo peer over socketpairs, with the same message sizes
and concurrency, measured in the same run.

Usage: bench-ack.py [--shape TARGETSxVCPUS]... [--events N] [--rounds N]
(default shapes: 1x1, the bare round trip, and 4x4, several targets and
vCPUs sending at once)
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
ap.add_argument("--shape", action="append", help="TARGETSxVCPUS, e.g. 4x4 (repeatable)")
ap.add_argument("--events", type=int, default=5000, help="per vCPU")
ap.add_argument("--rounds", type=int, default=3, help="alternating floor/kvmid runs; the median is reported")
args = ap.parse_args()

shapes = [tuple(int(x) for x in sh.split("x")) for sh in (args.shape or ["1x1", "4x4"])]
work = tempfile.mkdtemp(prefix="kvmid-bench-")
uuids = ["00000000-0000-4000-8000-%012d" % i for i in range(max(t for t, _ in shapes))]
conf = "[kvmi]\nmax-channels = 4096\n" + "".join(
    "[domain t%d]\nuuid = %s\ncookie = none\n" % (i, u) for i, u in enumerate(uuids))
with open(os.path.join(work, "kvmid.conf"), "w") as f:
    f.write(conf + "[libvirt]\nuri = none\n")      # off the host's libvirt
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


def run(floor, targets, vcpus):
    cmd = [SIM, "--vcpus", str(vcpus), "--events", str(args.events), "--rate", "0", "--timeout", "60"]
    cmd += ["--floor"] if floor else ["--socket", sock]
    for i, u in enumerate(uuids[:targets]):
        cmd += ["--vm", "t%d,%s" % (i, u)]
    cpu0 = cpu_of(d.pid)
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    if p.returncode != 0:
        sys.exit("kvmi-sim failed (%s): %s" % ("floor" if floor else "kvmid", p.stderr.strip()))
    tot = json.loads(p.stdout)["total"]
    tot["kvmid_cpu_s"] = cpu_of(d.pid) - cpu0
    return tot


def median(rs, key):
    vals = sorted(r["latency_ns"][key] if key in ("p50", "p99", "max") else r[key] for r in rs)
    return vals[len(vals) // 2]


missed = 0
try:
    print("guest-request ack round trip as the vCPU sees it; %d events per vCPU, median of %d alternating runs"
          % (args.events, args.rounds))
    print("%-8s %-14s %10s %10s %12s %16s" % ("shape", "", "p50", "p99", "events/s", "kvmid CPU/event"))
    for targets, vcpus in shapes:
        floors, kvmids = [], []
        for _ in range(args.rounds):
            floors.append(run(True, targets, vcpus))
            kvmids.append(run(False, targets, vcpus))
        f50, f99, k50, k99 = (median(floors, "p50"), median(floors, "p99"), median(kvmids, "p50"),
                              median(kvmids, "p99"))
        frate, krate = median(floors, "events_per_sec"), median(kvmids, "events_per_sec")
        cpu = median(kvmids, "kvmid_cpu_s") / (targets * vcpus * args.events)
        shape = "%dx%d" % (targets, vcpus)
        print("%-8s %-14s %8.1fus %8.1fus %12.0f" % (shape, "floor", f50 / 1e3, f99 / 1e3, frate))
        print("%-8s %-14s %8.1fus %8.1fus %12.0f %14.2fus" % ("", "kvmid", k50 / 1e3, k99 / 1e3, krate, cpu * 1e6))
        ok = k50 / f50 <= 1.3 and k99 / f99 <= 2.0
        missed += not ok
        print("%-8s %-14s %9.2fx %9.2fx %11.2fx   target p50<=1.3x, p99<=2x: %s"
              % ("", "kvmid/floor", k50 / f50, k99 / f99, krate / frate, "met" if ok else "MISSED"))
finally:
    d.terminate()
    d.wait()
    shutil.rmtree(work, ignore_errors=True)
sys.exit(1 if missed else 0)
