#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# libvirt qemu hook for kvmid: installed as /etc/libvirt/hooks/qemu.d/50-kvmid.
# libvirt runs it as: 50-kvmid NAME OP SUBOP EXTRA, the domain XML on stdin.
# Bounded: kvmictl gives up after 5 s, timeout(1) kills it after 10 s.  See kvmid(8).
exec timeout 10 @bindir@/kvmictl --timeout 5 --socket @runstatedir@/kvmid/io.kvmid.Hypervisor hook qemu "$1" "$2" "$3"
