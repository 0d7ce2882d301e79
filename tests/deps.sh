#!/bin/sh
# Install the Debian 12 packages kvmid needs to build and test, when missing.
# Sourced-or-run by tests/demo.sh and tests/run-all.sh; needs root for apt.
set -eu
pkgs="build-essential autoconf automake libtool pkg-config
      libevent-dev libjson-c-dev libsystemd-dev libvirt-dev libxml2-dev libssl-dev libinih-dev check
      python3 mandoc valgrind varlink-go systemd strace libvirt-daemon libvirt-clients"
missing=""
for p in $pkgs; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "deps: missing Debian packages:$missing; run as root or: apt-get install -y$missing" >&2
    exit 1
  fi
  echo "deps: installing$missing"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # shellcheck disable=SC2086
  apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi
