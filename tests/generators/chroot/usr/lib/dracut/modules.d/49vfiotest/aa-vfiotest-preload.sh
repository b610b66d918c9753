#!/bin/sh
# vfio-early generator tests only: sourced by dracut's shell init (cmdline 00,
# before 00-vfio-early.sh).
if [ "$(getarg test.preload=)" = vfio-pci ]; then
    modprobe vfio-pci
    echo "vfiotest: preloaded vfio-pci rc=$?" >/dev/kmsg
fi
:
