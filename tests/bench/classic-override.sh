#!/bin/sh
# SPDX-License-Identifier: MIT OR Apache-2.0
# The classic vfio-pci override script (the Arch wiki / forum "vfio-pci-override.sh" by BDF), as the
# benchmark's baseline: for each BDF, put vfio-pci in driver_override of every device of its IOMMU
# group, then load vfio-pci, which binds them at module init. ROOT prefixes every path so it runs
# on a fake tree. The usual copies list the group with $(ls ...) and first test $(ls -A
# /sys/class/iommu); this one globs instead (no fork), so the baseline is the fast variant.
# No `set -e`, like the original: a missing device does not stop the others.
# Usage: ROOT=TREE busybox sh classic-override.sh BDF...
ROOT=${ROOT:-}
for BDF in "$@"; do
	for d in "$ROOT"/sys/bus/pci/devices/"$BDF"/iommu_group/devices/*; do
		echo vfio-pci > "$d/driver_override"
	done
done
"$ROOT"/sbin/modprobe -i vfio-pci
