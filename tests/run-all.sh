#!/bin/sh
# The whole test suite: install what is missing, then the plain build's
# make check, the README demo, the sanitizer (ASan+UBSan) build's make
# check, and make distcheck.  Ends with one line "N passed, N failed, N skipped".
set -u
top=$(cd "$(dirname "$0")/.." && pwd)
sh "$top/tests/deps.sh" || exit 1
status=0
build_failures=0

suite() { # name dir configure-args...
  name=$1; dir=$2; shift 2
  echo "== $name: build in $dir"
  # Results of an earlier run must not count for this one.
  [ -d "$dir" ] && find "$dir" -name '*.trs' -delete
  if ! sh "$top/tests/build.sh" "$dir" "$@"; then
    echo "== $name: build FAILED"; status=1; build_failures=$((build_failures + 1)); return
  fi
  echo "== $name: make check"
  if ! make -C "$dir" -s -j"$(nproc)" check >"$dir/check.out" 2>&1; then
    status=1
    grep -E '^(FAIL|ERROR)' "$dir/check.out" || tail -n 30 "$dir/check.out"
  fi
  grep -E '^# (TOTAL|PASS|SKIP|FAIL|ERROR)' "$dir/check.out" | sed "s/^/  /"
  grep -E '^SKIP' "$dir/check.out" | sed "s/^/  /"
}

suite "plain build" "$top/build"

# The README's other command: the demo must keep working.
echo "== README demo (tests/demo.sh)"
demo_result=PASS
if ! sh "$top/tests/demo.sh" >"$top/build/demo.out" 2>&1; then
  demo_result=FAIL; status=1
  tail -n 30 "$top/build/demo.out"
fi
echo "  demo: $demo_result"
suite "sanitizer build (ASan+UBSan)" "$top/build-san" --enable-sanitizers

echo "== make distcheck"
dist_result=PASS
if ! make -C "$top/build" -s distcheck >"$top/build/distcheck.out" 2>&1; then
  dist_result=FAIL; status=1
  tail -n 40 "$top/build/distcheck.out"
fi
echo "  distcheck: $dist_result"

# Every test result of both builds, plus distcheck and the demo as one
# each, plus a build that failed as one failure.  distcheck's own tree
# (build/kvmid-VERSION) is left out; the pattern is anchored so a checkout
# that itself lives in a kvmid-* directory still counts.
results=$(find "$top/build" "$top/build-san" \( -path "$top/build/kvmid-*" -o -path "$top/build-san/kvmid-*" \) \
               -prune -o -name '*.trs' -print |
          xargs cat 2>/dev/null | sed -n 's/^:test-result: //p'; echo "$dist_result"; echo "$demo_result")
passed=$(printf '%s\n' "$results" | grep -c '^PASS')
failed=$(( $(printf '%s\n' "$results" | grep -cE '^(FAIL|ERROR|XPASS)') + build_failures ))
skipped=$(printf '%s\n' "$results" | grep -c '^SKIP')
[ "$failed" -eq 0 ] || status=1
echo "$passed passed, $failed failed, $skipped skipped"
exit $status
