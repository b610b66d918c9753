#!/bin/bash
# SPDX-License-Identifier: MIT OR Apache-2.0
# Benchmark: vfio-early (boot mode, `--root TREE`) against the classic override script
# (classic-override.sh under busybox sh) on the same generated 256-device tree
# (binder/examples/bench_tree.rs). Prints wall time, syscall count and peak RSS for both and the
# ratios. It asserts nothing about speed: it only fails when it cannot measure.
#
# Environment: N (timed runs per tool, default 200), M (RSS runs, default 20),
# BIN (the binder, default the release musl build, built unless NO_BUILD=1),
# MODPROBE (the fake sbin/modprobe, see bench_tree.rs: exe (default), bind or log),
# BUSYBOX (default: busybox on PATH; runs the classic script, and the fake modprobe if a script).
set -eu
export LC_ALL=C # EPOCHREALTIME's decimal point, sort order

N=${N:-200}
M=${M:-20}
MODPROBE=${MODPROBE:-exe}
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
target=${CARGO_TARGET_DIR:-$repo/target}
BIN=${BIN:-$target/x86_64-unknown-linux-musl/release/vfio-early-boot}

die() { echo "bench: $*" >&2; exit 1; }

# The measuring tools; the lead's setup script installs them too.
missing=
command -v strace >/dev/null || missing="$missing strace"
[ -x /usr/bin/time ] || missing="$missing time"
command -v busybox >/dev/null || missing="$missing busybox-static"
if [ -n "$missing" ]; then
	if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
		die "missing:$missing"
	fi
	echo "bench: installing$missing" >&2
	apt-get update -qq >&2
	# shellcheck disable=SC2086 # a list of package names
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >&2
fi
BUSYBOX=${BUSYBOX:-$(command -v busybox)}

if [ "${NO_BUILD:-0}" != 1 ]; then
	make -s -C "$repo" static >&2
fi
[ -x "$BIN" ] || die "no binder at $BIN"
# Static like the binder: with MODPROBE=exe it is also the fake modprobe, exec'd once per run.
(cd "$repo" && cargo build -q --release --target x86_64-unknown-linux-musl --example bench_tree -p vfio-early) >&2
gen=$target/x86_64-unknown-linux-musl/release/examples/bench_tree

# tmpfs when there is one: the tree copies stay in memory and disk noise stays out.
base=/dev/shm
[ -d "$base" ] && [ -w "$base" ] || base=${TMPDIR:-/tmp}
work=$(mktemp -d "$base/vfio-early-bench.XXXXXX")
trap 'rm -rf "$work"' EXIT

# The fake modprobe imitates vfio-pci's module init so the binder verifies a real bind. Both
# jobs pay for it; `exe` keeps it small next to what is measured.
BDFS=$("$gen" "$work/template" --modprobe "$MODPROBE" --shell "$BUSYBOX sh")
ndev=$(find "$work/template/sys/bus/pci/devices" -mindepth 1 -maxdepth 1 | wc -l)
ngrp=$(find "$work/template/sys/kernel/iommu_groups" -mindepth 1 -maxdepth 1 | wc -l)

# Own peak RSS needs a ptrace helper; without a C compiler that column says n/a.
peakrss=
if command -v cc >/dev/null && cc -O2 -o "$work/peakrss" "$here/peakrss.c" 2>/dev/null; then
	peakrss=$work/peakrss
fi

tree=$work/t
reset() { rm -rf "$tree" && cp -a "$work/template" "$tree"; }

# The two jobs, as argument vectors: same tree path, same targets.
# shellcheck disable=SC2206 # BDFS is a space-separated list of BDFs
bdfs=($BDFS)
run_binder=("$BIN" --root "$tree")
run_classic=(env "ROOT=$tree" "$BUSYBOX" sh "$here/classic-override.sh" "${bdfs[@]}")
run_spawn=("$BUSYBOX" true)

# One untimed run each: exit status and what it did to the tree.
reset
set +e
"${run_binder[@]}" >"$work/binder.out" 2>&1
binder_rc=$?
set -e
fenced() { grep -lx vfio-pci "$tree"/sys/bus/pci/devices/*/driver_override 2>/dev/null | wc -l; }
bound() { find "$tree/sys/bus/pci/drivers/vfio-pci" -mindepth 1 -maxdepth 1 -type l 2>/dev/null | wc -l; }
b_fenced=$(fenced)
b_bound=$(bound)
b_summary=$(grep -o 'summary:.*' "$tree/dev/kmsg" 2>/dev/null | tail -n 1 || true)
reset
"${run_classic[@]}" >"$work/classic.out" 2>&1 || die "classic script failed: $(cat "$work/classic.out")"
c_fenced=$(fenced)
c_bound=$(bound)

# Wall time: microseconds from bash's clock around the whole child (fork+exec included: the
# spawn baseline row shows that constant). Order alternates so neither tool always runs warm.
timed() { # OUTFILE CMD...
	local out=$1 t0 t1
	shift
	if [ "$*" != "${run_spawn[*]}" ]; then reset; fi # the baseline needs no tree
	t0=${EPOCHREALTIME/./}
	"$@" >/dev/null 2>&1 || true
	t1=${EPOCHREALTIME/./}
	echo "$((10#$t1 - 10#$t0))" >>"$out"
}
: >"$work/w.binder"
: >"$work/w.classic"
: >"$work/w.spawn"
for ((i = 0; i < N; i++)); do
	if ((i % 2)); then
		timed "$work/w.binder" "${run_binder[@]}"
		timed "$work/w.classic" "${run_classic[@]}"
	else
		timed "$work/w.classic" "${run_classic[@]}"
		timed "$work/w.binder" "${run_binder[@]}"
	fi
	timed "$work/w.spawn" "${run_spawn[@]}"
done

# The fake modprobe alone, on a tree fenced as each job leaves it (16 or 32 overrides): the part
# of each wall time that stands in for the kernel, so the table can show what is left.
K=$((N < 50 ? N : 50))
fence() { # BDF...: what the override writes leave behind
	local b
	for b in "$@"; do echo vfio-pci >"$tree/sys/bus/pci/devices/$b/driver_override"; done
}
b_set=() c_set=()
for b in "${bdfs[@]}"; do
	b_set+=("$b" "${b%.0}.1")
	c_set+=("${b%.0}.0" "${b%.0}.1" "${b%.0}.2" "${b%.0}.3")
done
: >"$work/w.mp16"
: >"$work/w.mp32"
for ((i = 0; i < K; i++)); do
	for job in b c; do
		reset
		if [ "$job" = b ]; then fence "${b_set[@]}"; else fence "${c_set[@]}"; fi
		t0=${EPOCHREALTIME/./}
		"$tree/sbin/modprobe" vfio-pci >/dev/null 2>&1 || true
		t1=${EPOCHREALTIME/./}
		if [ "$job" = b ]; then out=$work/w.mp16; else out=$work/w.mp32; fi
		echo "$((10#$t1 - 10#$t0))" >>"$out"
	done
done

median() { sort -n "$1" | awk '{v[NR]=$1} END {m=int((NR+1)/2); printf "%.3f", (NR%2 ? v[m] : (v[m]+v[m+1])/2)/1000}'; }
minimum() { sort -n "$1" | awk 'NR==1 {printf "%.3f", $1/1000}'; }

# Syscalls: strace -f follows the modprobe child and its children. Every line of -o output is
# one syscall, except "<... resumed>" halves, signal and exit lines. The first line's pid is the
# process under test.
syscalls() { # NAME CMD...
	local name=$1
	shift
	reset
	strace -f -qq -o "$work/strace.$name" "$@" >/dev/null 2>&1 || true
	awk 'NR==1 {main=$1}
	     $2 ~ /^(<\.\.\.|---|\+\+\+)/ {next}
	     {all++; if ($1 == main) own++}
	     END {print all+0, own+0}' "$work/strace.$name"
}
read -r b_sys b_sys_own < <(syscalls binder "${run_binder[@]}")
read -r c_sys c_sys_own < <(syscalls classic "${run_classic[@]}")
top() { # the process under test's most frequent syscalls
	awk 'NR==1 {main=$1} $1 == main && $2 !~ /^(<\.\.\.|---|\+\+\+)/ {sub(/\(.*/, "", $2); n[$2]++}
	     END {for (s in n) print n[s], s}' "$work/strace.$1" | sort -rn | head -n 6 |
		awk '{printf "%s%s %s", (NR>1 ? ", " : ""), $2, $1}'
}

# Peak RSS over M runs (the largest seen): GNU time's %M (the process or its largest child,
# whichever is bigger) and, with the helper, the process's own VmHWM.
rss() { # CMD...
	local i tm own tmax=0 omax=0
	for ((i = 0; i < M; i++)); do
		reset
		/usr/bin/time -f %M -o "$work/tm" "$@" >/dev/null 2>&1 || true
		tm=$(tail -n 1 "$work/tm")
		((tm > tmax)) && tmax=$tm
		if [ -n "$peakrss" ]; then
			reset
			"$peakrss" "$work/hwm" "$@" >/dev/null 2>&1 || true
			own=$(cat "$work/hwm")
			((own > omax)) && omax=$own
		fi
	done
	[ -n "$peakrss" ] || omax=n/a
	echo "$tmax $omax"
}
read -r b_rss b_rss_own < <(rss "${run_binder[@]}")
read -r c_rss c_rss_own < <(rss "${run_classic[@]}")

ratio() { awk -v a="$1" -v b="$2" 'BEGIN {if (a ~ /^[0-9.]+$/ && b ~ /^[0-9.]+$/ && b > 0) printf "%.2f", a/b; else printf "n/a"}'; }
row() { printf '%-34s %12s %12s %8s\n' "$1" "$2" "$3" "$(ratio "$2" "$3")"; }

b_med=$(median "$work/w.binder")
c_med=$(median "$work/w.classic")
b_min=$(minimum "$work/w.binder")
c_min=$(minimum "$work/w.classic")
size=$(stat -c %s "$BIN")

echo "vfio-early bench: $ndev devices, $ngrp IOMMU groups, ${#bdfs[@]} targets; N=$N timed runs per tool, fresh tree each"
echo "  vfio-early: $BIN ($size bytes), exit $binder_rc${b_summary:+, kmsg \"$b_summary\"}"
echo "  classic:    $BUSYBOX sh tests/bench/classic-override.sh (glob variant, no forks but modprobe)"
echo "  modprobe:   fake ($MODPROBE, see binder/examples/bench_tree.rs), in both jobs' wall time, total syscalls and %M"
echo
printf '%-34s %12s %12s %8s\n' "" vfio-early classic ratio
row "wall median (ms)" "$b_med" "$c_med"
row "wall min (ms)" "$b_min" "$c_min"
b_mp=$(median "$work/w.mp16")
c_mp=$(median "$work/w.mp32")
row "  of which fake modprobe (median, ms)" "$b_mp" "$c_mp"
row "wall median less modprobe (ms)" "$(awk -v a="$b_med" -v b="$b_mp" 'BEGIN {printf "%.3f", a-b}')" \
	"$(awk -v a="$c_med" -v b="$c_mp" 'BEGIN {printf "%.3f", a-b}')"
row "syscalls, total (with modprobe)" "$b_sys" "$c_sys"
row "syscalls, process itself" "$b_sys_own" "$c_sys_own"
row "peak RSS KiB, time %M (max of $M)" "$b_rss" "$c_rss"
row "peak RSS KiB, own VmHWM (max of $M)" "$b_rss_own" "$c_rss_own"
row "devices given the override" "$b_fenced" "$c_fenced"
row "devices bound (fake modprobe)" "$b_bound" "$c_bound"
echo
echo "fake modprobe alone: $K runs on trees fenced as each job leaves them (16 / 32 overrides)"
echo "spawn baseline (busybox true, same timer): median $(median "$work/w.spawn") ms, min $(minimum "$work/w.spawn") ms"
echo "top syscalls, vfio-early: $(top binder)"
echo "top syscalls, classic:    $(top classic)"
