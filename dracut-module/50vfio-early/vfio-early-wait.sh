#!/bin/sh
# SPDX-License-Identifier: MIT OR Apache-2.0
# Sourced by dracut's shell init at pre-pivot 99, before switch_root: the rest of the binder's
# run (vfio-pci's load, the checks, the report) is waited for up to its deadline, stopped past
# it, then every device the fence took is settled and named.
[ -x /usr/bin/vfio-early ] && /usr/bin/vfio-early wait
:
