#!/bin/sh
# SPDX-License-Identifier: MIT OR Apache-2.0
# Sourced by dracut's shell init at cmdline 00: never exit, always let the boot continue.
# `fence` returns once the overrides are written; the rest is waited for at pre-pivot.
[ -x /usr/bin/vfio-early ] && /usr/bin/vfio-early fence
:
