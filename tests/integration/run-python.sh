#!/bin/sh
# Test driver shim: run an integration test with python3, or skip (TAP) when
# python3 is missing.
if [ -z "${PYTHON3:-}" ] || [ "$PYTHON3" = no ]; then
  echo "1..0 # SKIP python3 is not installed (apt-get install -y python3)"
  exit 0
fi
exec "$PYTHON3" "$@"
