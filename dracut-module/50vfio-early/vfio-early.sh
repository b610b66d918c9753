#!/bin/sh
# SPDX-License-Identifier: MIT OR Apache-2.0
# Sourced by dracut's shell init at cmdline 00: never exit, always let the boot continue.
# `fence` returns once the overrides are written; the rest of the run (vfio-pci's load, the
# checks, the report) goes on beside udev and is waited for at pre-pivot.
if [ -x /usr/bin/vfio-early ]; then
    /usr/bin/vfio-early fence
    if [ -e /run/vfio-early/handoff ]; then
        /usr/bin/vfio-early finish </dev/null >/dev/null 2>&1 &
        echo $! >/run/vfio-early/finish.pid
    fi
fi
:
