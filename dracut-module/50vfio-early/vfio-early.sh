#!/bin/sh
# SPDX-License-Identifier: MIT OR Apache-2.0
# Sourced by dracut's shell init at cmdline 00: never exit, always let the boot continue.
# `fence` returns once the overrides are written, having started the rest of the run (vfio-pci's
# load, the checks, the report) beside udev; pre-pivot's `vfio-early wait` waits for it and
# settles every device it fenced.
[ -x /usr/bin/vfio-early ] && /usr/bin/vfio-early fence
:
