#!/bin/sh
# vfio-early generator tests only: sourced by dracut's shell init (cmdline 00,
# before 00-vfio-early.sh); the work is in /usr/bin/vfiotest-early.
/usr/bin/vfiotest-early
:
