#!/bin/sh
# The README demo: install what is missing, build, start kvmid in a
# temporary runtime directory with two simulated targets (kvmi-sim plays
# their QEMU and KVMI kernel side), and drive it with kvmictl.
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
sh "$top/tests/deps.sh"
echo "== building kvmid in $top/build"
sh "$top/tests/build.sh" "$top/build"
b="$top/build"
make -C "$b" -s tests/sim/kvmi-sim >/dev/null

run=$(mktemp -d /tmp/kvmid-demo.XXXXXX)
cleanup() {
  [ -z "${sim:-}" ] || kill "$sim" 2>/dev/null || true
  [ -z "${pid:-}" ] || kill "$pid" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$run"
}
trap cleanup EXIT

# Two targets with QEMU cookies, an introspector identity, a policy.
printf 'web1 secret' > "$run/web1.cookie"
printf 'db1 secret' > "$run/db1.cookie"
head -c 32 /dev/urandom > "$run/forensics.key"
chmod 600 "$run"/*.cookie "$run/forensics.key"
cat > "$run/policy" <<POLICY
# Forensics may watch and map the web tier; nobody touches PCI targets.
deny  introspector=any target=label:pci perm=all
allow introspector=forensics target=web* perm=attach,events,map max-mappings=16 rate=20/s
default deny
POLICY
# The host's libvirt, played by libvirt's built-in test driver: names,
# UUIDs, states and vsock CIDs come from it, and kvmid's metadata element
# says which domain is a target or an introspector VM.
dom() { # name uuid cid metadata
  printf "  <domain type='test'><name>%s</name><uuid>%s</uuid><memory>65536</memory><vcpu>2</vcpu>\n" "$1" "$2"
  printf "    <os><type>hvm</type></os><metadata>%s</metadata>\n" "$4"
  printf "    <devices><vsock model='virtio'><cid auto='no' address='%s'/></vsock></devices></domain>\n" "$3"
}
NS="xmlns:kvmid='http://kvmid.io/xmlns/introspection/1'"
{
  echo "<node>"
  dom web1 6f1d4a4e-8c55-4b4e-9d1e-2a7b3c4d5e01 21 "<kvmid:introspection $NS role='target' cookie-file='$run/web1.cookie'/>"
  dom db1 6f1d4a4e-8c55-4b4e-9d1e-2a7b3c4d5e02 22 \
      "<kvmid:introspection $NS role='target' cookie-file='$run/db1.cookie'><kvmid:label>pci</kvmid:label></kvmid:introspection>"
  dom introvm 6f1d4a4e-8c55-4b4e-9d1e-2a7b3c4d5eff 30 "<kvmid:introspection $NS role='introspector'/>"
  echo "</node>"
} > "$run/node.xml"
cat > "$run/kvmid.conf" <<CONF
[libvirt]
uri = test://$run/node.xml
[policy]
file = $run/policy
# The forensics tool runs for the introspector VM introvm; here it reaches
# kvmid over the Unix socket as this user (in production: vsock from introvm).
[introspector forensics]
key-file = $run/forensics.key
domain = introvm
uid = $(id -u)
[domain introvm]
uuid = 6f1d4a4e-8c55-4b4e-9d1e-2a7b3c4d5eff
role = introspector
cookie = none
[domain web1]
uuid = 6f1d4a4e-8c55-4b4e-9d1e-2a7b3c4d5e01
cookie-file = $run/web1.cookie
[domain db1]
uuid = 6f1d4a4e-8c55-4b4e-9d1e-2a7b3c4d5e02
cookie-file = $run/db1.cookie
label = pci
CONF

"$b/kvmid" --foreground --config "$run/kvmid.conf" --runtime-dir "$run/run" 2>"$run/kvmid.log" &
pid=$!
i=0
until [ -S "$run/run/io.kvmid.Admin" ]; do
  i=$((i + 1)); [ $i -lt 100 ] || { cat "$run/kvmid.log"; exit 1; }
  sleep 0.1
done
export KVMID_SOCKET="$run/run/io.kvmid.Admin"
step() { printf '\n$ %s\n' "$*"; "$@"; }

step "$b/kvmictl" status
step "$b/kvmictl" introspect

# The simulated targets connect like QEMU would, then their in-guest agents
# issue guest-request hypercalls (rdx carries the agent's payload).  The
# same kvmi-sim plays the introspector VM: the forensics tool with two
# subscribers on web1, and its VMM asking kvmid before mapping pages.
"$b/tests/sim/kvmi-sim" --socket "$run/run/kvmi" --vcpus 2 --control "$run/sim.ctl" \
    --vm "web1,6f1d4a4e-8c55-4b4e-9d1e-2a7b3c4d5e01,$run/web1.cookie" \
    --vm "db1,6f1d4a4e-8c55-4b4e-9d1e-2a7b3c4d5e02,$run/db1.cookie" \
    --introspector "forensics,$run/forensics.key,introvm" --attach web1 --subscribers 2 \
    >"$run/sim.out" 2>"$run/sim.err" &
sim=$!
i=0
until grep -q ready "$run/sim.out" 2>/dev/null; do
  i=$((i + 1)); [ $i -lt 100 ] || { cat "$run/sim.err"; exit 1; }
  sleep 0.1
done
python3 - "$run/sim.ctl" <<'PY'
import json, socket, sys
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); f = s.makefile("rw")
def cmd(**kw):
    f.write(json.dumps(kw) + "\n"); f.flush()
    return json.loads(f.readline())
for vm, n, rdx in (("web1", 250, 0x1001), ("db1", 100, 0x2002)):
    r = cmd(cmd="send", vm=vm, count=n, regs={"rdx": rdx})
    print("kvmi-sim: %s sent %d guest requests, %d acked, ack p50 %.1f us" %
          (vm, r["sent"], r["acked"], r["latency_ns"]["p50"] / 1e3))
cmd(cmd="intro-wait")
st = cmd(cmd="intro-status")
for sub in st["subscribers"]:
    print("forensics subscriber %d: %d events delivered, %d missed, in order: %s" %
          (sub["index"], sub["delivered"], sub["missed"], sub["ordered"]))
m = cmd(cmd="intro-map", target="web1", count=1)
for x in m["maps"]:
    print("introvm maps web1 gpa 0x%x at 0x%x with token %s: %s" %
          (x["target_gpa"], x["local_gpa"], x["token_id"], x["decision"]))
m = cmd(cmd="intro-deny", target="web1")
for x in m.get("maps", [])[-1:]:
    print("introvm replays the used token %s: %s (%s)" % (x["token_id"], x["decision"], x.get("reason")))
PY

step "$b/kvmictl" domains
step "$b/kvmictl" domain web1
step "$b/kvmictl" sessions
step "$b/kvmictl" tokens
step "$b/kvmictl" mappings
step "$b/kvmictl" audit tail -n 6 --kind token-mint --kind map-allow --kind map-deny --kind session-open
step "$b/kvmictl" policy show
step "$b/kvmictl" policy explain --introspector forensics --target web1 --perm map
step "$b/kvmictl" policy explain --introspector forensics --target db1 --perm events
step "$b/kvmictl" --json=short call io.kvmid.Admin.GetDomain '{"domian":"web1"}' || true

printf '\n(kvmid log: stopping kvmid)\n'
kill -TERM "$sim" "$pid"; wait "$pid" || true; pid=
sed 's/^/  /' "$run/kvmid.log"
