#!/bin/sh
# The README demo: install what is missing, build, start kvmid on its
# built-in defaults in a temporary runtime directory, and drive it with
# kvmictl.
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
sh "$top/tests/deps.sh"
echo "== building kvmid in $top/build"
sh "$top/tests/build.sh" "$top/build"
b="$top/build"

run=$(mktemp -d /tmp/kvmid-demo.XXXXXX)
trap 'kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; rm -rf "$run"' EXIT
"$b/kvmid" --foreground --runtime-dir "$run" 2>"$run/kvmid.log" &
pid=$!
i=0
until [ -S "$run/io.kvmid.Admin" ]; do
  i=$((i + 1)); [ $i -lt 100 ] || { cat "$run/kvmid.log"; exit 1; }
  sleep 0.1
done
export KVMID_SOCKET="$run/io.kvmid.Admin"

step() { printf '\n$ %s\n' "$*"; "$@"; }
step "$b/kvmictl" status
step "$b/kvmictl" introspect
step "$b/kvmictl" introspect io.kvmid.Admin
step "$b/kvmictl" --json=short call io.kvmid.Admin.GetStatus '{"nope":1}' || true
printf '\n(kvmid log: %s; stopping kvmid)\n' "$run/kvmid.log"
kill -TERM "$pid"; wait "$pid" || true
sed 's/^/  /' "$run/kvmid.log"
