#!/bin/bash
# SPDX-License-Identifier: MIT OR Apache-2.0
#
# "Try it": builds the binder and a test initramfs (preparing the host with
# setup-host.sh first if needed, as root), boots a QEMU VM whose stand-in GPU
# sits at 01:00.0 (display) + 01:00.1 (HDMI audio) with
# vfio-early.devices=01:00.0, and shows where the card went. Exit 0 when both
# functions ended on vfio-pci.
set -eu
# shellcheck source=tests/qemu/lib.sh
. "$(dirname "$0")/qemu/lib.sh"

ensure_host
build_binder
dir="$OUT_DIR/demo"
img="$OUT_DIR/demo-initrd.img"
build_image "$img"
args="vfio-early.devices=01:00.0"
echo "Booting a q35 VM (TCG, about 10 s) with the kernel argument: $args"
boot_scenario "$dir" card1 "$args" "" "$img" || true

problem=$(boot_problem "$dir")
if [ -n "$problem" ]; then
    echo "The demo VM gave no report: $problem"
    echo "Console log: $dir/console.log"
    exit 1
fi
show_report "$dir"
echo "Timing: $(timing_line "$dir")"
if reasons=$(check_report "$dir" "01:00.0=vfio-pci 01:00.1=vfio-pci" ""); then
    echo "RESULT: the card 01:00.0 + 01:00.1 went to vfio-pci before its native drivers could take it."
    exit 0
fi
echo "RESULT: the card did NOT go to vfio-pci:"
while IFS= read -r line; do echo "  $line"; done <<<"$reasons"
echo "Logs: $dir/report.txt, $dir/console.log"
exit 1
