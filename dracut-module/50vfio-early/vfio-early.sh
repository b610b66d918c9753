#!/bin/sh
# SPDX-License-Identifier: MIT OR Apache-2.0
# Sourced by dracut's shell init at cmdline 00: never exit, always let the boot continue.
[ -x /usr/bin/vfio-early ] && /usr/bin/vfio-early
:
