#!/bin/sh
# Build one fuzz harness with libFuzzer, ASan and UBSan and run it on its
# seed corpus: run-libfuzzer.sh NAME [SECONDS] [LIBFUZZER-ARGS...]
# NAME is varlink-wire, varlink-idl, kvmi, policy or audit; SECONDS
# defaults to 60.  New corpus entries go to $FUZZ_WORK/NAME (default
# /tmp/kvmid-fuzz), crashes to the current directory (crash-*), and the
# seed corpus is never written to.
set -eu
top=$(cd "$(dirname "$0")/../.." && pwd)
name=${1:?usage: run-libfuzzer.sh NAME [SECONDS] [LIBFUZZER-ARGS...]}
seconds=${2:-60}
[ $# -ge 2 ] && shift 2 || shift $#
harness=$top/tests/fuzz/fuzz-$name.c
[ -f "$harness" ] || { echo "run-libfuzzer.sh: no harness $harness" >&2; exit 2; }
CC=${CC:-clang}
work=${FUZZ_WORK:-/tmp/kvmid-fuzz}
mkdir -p "$work/$name"

# proto/ is pure C over json-c and libcrypto: no configure needed.
$CC -g -O1 -std=gnu11 -D_GNU_SOURCE -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
	-I"$top/proto" $(pkg-config --cflags json-c libcrypto) \
	-o "$work/fuzz-$name" "$harness" \
	"$top/proto/varlink-wire.c" "$top/proto/varlink-idl.c" "$top/proto/kvmi.c" \
	"$top/proto/policy.c" "$top/proto/policy-parse.c" "$top/proto/policy-eval.c" \
	"$top/proto/audit-record.c" \
	$(pkg-config --libs json-c libcrypto)

exec "$work/fuzz-$name" -max_total_time="$seconds" -jobs=1 -workers=1 "$@" \
	"$work/$name" "$top/tests/fuzz/corpus/$name"
