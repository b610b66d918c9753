#!/bin/sh
# vfio-early generator tests only: sourced by dracut's shell init (cmdline 00, after
# 00-vfio-early.sh); the work is in /usr/bin/vfiotest-after-fence.
/usr/bin/vfiotest-after-fence cmdlined
:
