#!/bin/bash
# SPDX-License-Identifier: MIT OR Apache-2.0
# Benchmark: vfio-early (boot mode, `--root TREE`) against the classic override script
# (classic-override.sh under busybox sh) on generated fake sysfs trees
# (binder/examples/bench_tree.rs). Four parts, all printed as numbers:
# 1. The default table, on the 256-device machine every earlier figure was measured on, with
#    the `exe` fake modprobe binding for real: wall time, syscalls, peak RSS, ratios.
# 2. Own work, paired: P pairs, each one run of each tool (order alternating) on fresh copies of
#    the same machine prebound (`--prebound`, modprobe `noop`: both tools take their normal
#    success path while the kernel stand-in costs one rename; see bench_tree.rs). Per run: CPU
#    time, user + sys, of the tool and its children (cputime.c), and, from S strace runs, the
#    tool's own syscalls. The per-pair CPU ratio vfio-early / classic as min / median / max.
# 3. Scaling: vfio-early alone on prebound trees of 16, 256, 1024 and 4096 devices (`--all-bars`:
#    proc/iomem as the kernel lists it), 1 and 8 targets, address and ID entries: own syscalls and
#    the median CPU time of K runs; the 4096/16 ratios, the address entries' CPU ratio measured
#    again in R pairs (one run on each tree, order alternating) so the load moves both alike.
# 4. The host's `vfio-early status` (and `status --all`) against `lspci -nnk` on the 4096-device
#    machine after the boot's run, every device with its `config` file: Q rounds of status,
#    lspci, status --all (sides swapped every round), CPU time user+sys, the per-round ratio
#    status / lspci as min / median / max; syscalls (perf stat, else strace) and VmHWM from one
#    run each.
# It asserts nothing about speed: it fails only when it cannot measure (a tool fails, or does not
# end as its success path does). The figures also go, one `key value` line each, to
# $BENCH_OUT/results (default tests/out/bench/results), which tests/bench/budget.sh checks against
# tests/bench/budgets (the issues' budgets).
#
# Environment: N (timed runs per tool in the default table, default 200), M (RSS runs, default
# 20), P (pairs, default 100), S (strace runs per tool in the pairs, default 3), K (CPU runs per
# scaling configuration, default 21), R (pairs for the 4096/16 CPU ratio, default 41), SIZES
# (default "16 256 1024 4096"), BIN (the binder, default the release musl boot build, built unless
# NO_BUILD=1), MODPROBE (the default table's fake sbin/modprobe, see bench_tree.rs: exe (default),
# bind or log), BUSYBOX (default: busybox on PATH; runs the classic script, and the fake modprobe
# if a script), Q (rounds of status against lspci, default 41; 0 leaves part 4 out), HOST_BIN
# (the host build, default the release musl vfio-early, built with BIN), LSPCI (default lspci on
# PATH), PCIIDS (the pci.ids lspci reads, copied into the tree for status; default
# /usr/share/misc/pci.ids, else /usr/share/hwdata/pci.ids).
set -eu
export LC_ALL=C # EPOCHREALTIME's decimal point, sort order

N=${N:-200}
M=${M:-20}
P=${P:-100}
S=${S:-3}
K=${K:-21}
R=${R:-41}
SIZES=${SIZES:-16 256 1024 4096}
Q=${Q:-41}
MODPROBE=${MODPROBE:-exe}
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
target=${CARGO_TARGET_DIR:-$repo/target}
BIN=${BIN:-$target/x86_64-unknown-linux-musl/release/vfio-early-boot}
HOST_BIN=${HOST_BIN:-$target/x86_64-unknown-linux-musl/release/vfio-early}
OUT=${BENCH_OUT:-$repo/tests/out/bench}

die() { echo "bench: $*" >&2; exit 1; }

# No figures from an earlier run may stand for this one's: the budget check reads this file.
mkdir -p "$OUT"
rm -f "$OUT/results"

# The measuring tools; the lead's setup script installs them too.
missing=
command -v strace >/dev/null || missing="$missing strace"
[ -x /usr/bin/time ] || missing="$missing time"
command -v busybox >/dev/null || missing="$missing busybox-static"
command -v cc >/dev/null || missing="$missing gcc libc6-dev"
if [ "$Q" -gt 0 ]; then
	command -v "${LSPCI:-lspci}" >/dev/null || missing="$missing pciutils"
	[ -n "${PCIIDS:-}" ] || [ -r /usr/share/misc/pci.ids ] || [ -r /usr/share/hwdata/pci.ids ] ||
		missing="$missing pci.ids"
fi
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
LSPCI=${LSPCI:-$(command -v lspci || echo lspci)}
if [ -z "${PCIIDS:-}" ]; then
	PCIIDS=/usr/share/misc/pci.ids
	[ -r "$PCIIDS" ] || PCIIDS=/usr/share/hwdata/pci.ids
fi

if [ "${NO_BUILD:-0}" != 1 ]; then
	make -s -C "$repo" static >&2
fi
[ -x "$BIN" ] || die "no binder at $BIN"
[ "$Q" = 0 ] || [ -x "$HOST_BIN" ] || die "no host build at $HOST_BIN"
# Static like the binder: with MODPROBE=exe it is also the fake modprobe, exec'd once per run.
(cd "$repo" && cargo build -q --release --target x86_64-unknown-linux-musl --example bench_tree -p vfio-early) >&2
gen=$target/x86_64-unknown-linux-musl/release/examples/bench_tree

# tmpfs when there is one: the tree copies stay in memory and disk noise stays out.
base=/dev/shm
[ -d "$base" ] && [ -w "$base" ] || base=${TMPDIR:-/tmp}
work=$(mktemp -d "$base/vfio-early-bench.XXXXXX")
trap 'rm -rf "$work"' EXIT
results=$work/results
: >"$results"
result() { echo "$1 $2" >>"$results"; }

# The helpers: own peak RSS (ptrace) and CPU time (wait4's rusage).
peakrss=$work/peakrss
cputime=$work/cputime
cc -O2 -o "$peakrss" "$here/peakrss.c" || die "cannot build peakrss.c"
cc -O2 -o "$cputime" "$here/cputime.c" || die "cannot build cputime.c"

# Numbers in a file, one a line: min, median, max.
stat_of() { # min|median|max FILE
	sort -n "$2" | awk -v w="$1" '{v[NR] = $1}
		END {if (!NR) {print "n/a"; exit}
		     m = int((NR + 1) / 2)
		     if (w == "min") print v[1]; else if (w == "max") print v[NR]
		     else print (NR % 2 ? v[m] : (v[m] + v[m + 1]) / 2)}'
}
ms() { awk -v u="$1" 'BEGIN {printf "%.3f", u / 1000}'; } # microseconds as milliseconds
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {if (a ~ /^[0-9.]+$/ && b ~ /^[0-9.]+$/ && b > 0) printf "%.2f", a/b; else printf "n/a"}'; }
row() { printf '%-38s %12s %12s %8s\n' "$1" "$2" "$3" "$(ratio "$2" "$3")"; }

# Syscalls: strace -f follows the modprobe child and its children. Every line of -o output is
# one syscall, except "<... resumed>" halves, signal and exit lines. The first line's pid is the
# process under test: its lines are its own syscalls.
count_syscalls() { # STRACE_FILE: "ALL OWN"
	awk 'NR==1 {main=$1}
	     $2 ~ /^(<\.\.\.|---|\+\+\+)/ {next}
	     {all++; if ($1 == main) own++}
	     END {print all+0, own+0}' "$1"
}
top() { # STRACE_FILE: the process under test's most frequent syscalls
	awk 'NR==1 {main=$1} $1 == main && $2 !~ /^(<\.\.\.|---|\+\+\+)/ {sub(/\(.*/, "", $2); n[$2]++}
	     END {for (s in n) print n[s], s}' "$1" | sort -k1,1rn -k2 | head -n 6 |
		awk '{printf "%s%s %s", (NR>1 ? ", " : ""), $2, $1}'
}

# Seconds each part took, to the results (bench.seconds.PART).
lap=$SECONDS
lap() { result "bench.seconds.$1" "$((SECONDS - lap))"; lap=$SECONDS; }

######## 1. The default table: the 256-device machine, the fake modprobe binding for real.

BDFS=$("$gen" "$work/template" --modprobe "$MODPROBE" --shell "$BUSYBOX sh")
ndev=$(find "$work/template/sys/bus/pci/devices" -mindepth 1 -maxdepth 1 | wc -l)
ngrp=$(find "$work/template/sys/kernel/iommu_groups" -mindepth 1 -maxdepth 1 | wc -l)

tree=$work/t
reset() { rm -rf "$tree" && cp -a "$work/template" "$tree"; }

# The two jobs, as argument vectors: same tree path, same targets. The script's ROOT comes from
# the environment, not through env(1): env's own exec and dynamic loading would count as the
# script's (about 40 syscalls and its CPU). The binder reads no environment variable.
# shellcheck disable=SC2206 # BDFS is a space-separated list of BDFs
bdfs=($BDFS)
export ROOT=$tree
run_binder=("$BIN" --root "$tree")
run_classic=("$BUSYBOX" sh "$here/classic-override.sh" "${bdfs[@]}")
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

syscalls() { # NAME CMD...
	local name=$1
	shift
	reset
	strace -f -qq -o "$work/strace.$name" "$@" >/dev/null 2>&1 || true
	count_syscalls "$work/strace.$name"
}
read -r b_sys b_sys_own < <(syscalls binder "${run_binder[@]}")
read -r c_sys c_sys_own < <(syscalls classic "${run_classic[@]}")
# The job issue 12's budget was set on: the same machine with the cards' USB and UCSI of another
# vendor, so the binder takes each target and its audio only (issue 28 made it take the whole
# card, twice the devices). Measured beside the whole card, which the table shows.
"$gen" "$work/i12.template" --modprobe "$MODPROBE" --shell "$BUSYBOX sh" --foreign-parts >/dev/null
rm -rf "$work/i12" && cp -a "$work/i12.template" "$work/i12"
strace -f -qq -o "$work/strace.i12" "$BIN" --root "$work/i12" >/dev/null 2>&1 || true
read -r _ b_sys_own_i12 < <(count_syscalls "$work/strace.i12")
grep -q "summary: $((2 * ${#bdfs[@]})) bound, 0 refused, 0 failed" "$work/i12/dev/kmsg" ||
	die "vfio-early on the issue-12 machine: $(grep -o 'summary:.*' "$work/i12/dev/kmsg" || echo 'no summary')"

# Peak RSS over M runs (the largest seen): GNU time's %M (the process or its largest child,
# whichever is bigger) and, with the helper, the process's own VmHWM.
rss() { # CMD...
	local i tm own tmax=0 omax=0
	for ((i = 0; i < M; i++)); do
		reset
		/usr/bin/time -f %M -o "$work/tm" "$@" >/dev/null 2>&1 || true
		tm=$(tail -n 1 "$work/tm")
		((tm > tmax)) && tmax=$tm
		reset
		"$peakrss" "$work/hwm" "$@" >/dev/null 2>&1 || true
		own=$(cat "$work/hwm")
		((own > omax)) && omax=$own
	done
	echo "$tmax $omax"
}
read -r b_rss b_rss_own < <(rss "${run_binder[@]}")
read -r c_rss c_rss_own < <(rss "${run_classic[@]}")

b_med=$(stat_of median "$work/w.binder")
c_med=$(stat_of median "$work/w.classic")
b_min=$(stat_of min "$work/w.binder")
c_min=$(stat_of min "$work/w.classic")
size=$(stat -c %s "$BIN")

echo "vfio-early bench: $ndev devices, $ngrp IOMMU groups, ${#bdfs[@]} targets; N=$N timed runs per tool, fresh tree each"
echo "  vfio-early: $BIN ($size bytes), exit $binder_rc${b_summary:+, kmsg \"$b_summary\"}"
echo "  classic:    $BUSYBOX sh tests/bench/classic-override.sh (glob variant, no forks but modprobe)"
echo "  modprobe:   fake ($MODPROBE, see binder/examples/bench_tree.rs), in both jobs' wall time, total syscalls and %M"
echo
printf '%-38s %12s %12s %8s\n' "" vfio-early classic ratio
row "wall median (ms)" "$(ms "$b_med")" "$(ms "$c_med")"
row "wall min (ms)" "$(ms "$b_min")" "$(ms "$c_min")"
row "syscalls, total (with modprobe)" "$b_sys" "$c_sys"
row "syscalls, process itself" "$b_sys_own" "$c_sys_own"
row "  ...taking each target and its audio" "$b_sys_own_i12" "-"
row "peak RSS KiB, time %M (max of $M)" "$b_rss" "$c_rss"
row "peak RSS KiB, own VmHWM (max of $M)" "$b_rss_own" "$c_rss_own"
row "devices given the override" "$b_fenced" "$c_fenced"
row "devices bound (fake modprobe)" "$b_bound" "$c_bound"
echo
echo "spawn baseline (busybox true, same timer): median $(ms "$(stat_of median "$work/w.spawn")") ms, min $(ms "$(stat_of min "$work/w.spawn")") ms"
echo "top syscalls, vfio-early: $(top "$work/strace.binder")"
echo "top syscalls, classic:    $(top "$work/strace.classic")"
result default.devices "$ndev"
result default.targets "${#bdfs[@]}"
result default.wall_median_ms.binder "$(ms "$b_med")"
result default.wall_median_ms.classic "$(ms "$c_med")"
result default.syscalls_total.binder "$b_sys"
result default.syscalls_total.classic "$c_sys"
result default.own_syscalls.binder "$b_sys_own_i12"
result default.own_syscalls_whole_card.binder "$b_sys_own"
result default.own_syscalls.classic "$c_sys_own"
result default.rss_time_kib.binder "$b_rss"
result default.rss_time_kib.classic "$c_rss"
result default.rss_own_kib.binder "$b_rss_own"
result default.rss_own_kib.classic "$c_rss_own"

lap default

######## 2. Own work, paired: the same machine prebound, modprobe noop.

"$gen" "$work/pb.template" --modprobe noop --prebound >/dev/null
pb=$work/pb
pb_reset() { rm -rf "$pb" && cp -a "$work/pb.template" "$pb"; }
pb_binder=("$BIN" --root "$pb")
pb_classic=("$BUSYBOX" sh "$here/classic-override.sh" "${bdfs[@]}")
export ROOT=$pb
expect=$((4 * ${#bdfs[@]})) # each target's whole card: display, audio, USB, UCSI
# Each run must end as its success path does, or what was measured is something else.
pb_check() { # TOOL EXIT
	[ "$2" = 0 ] || die "$1 exited $2 on the prebound tree"
	[ -d "$pb/sys/bus/pci/drivers/vfio-pci" ] || die "$1 did not run modprobe (no drivers/vfio-pci after the run)"
	if [ "$1" = vfio-early ]; then
		grep -q "summary: $expect bound, 0 refused, 0 failed" "$pb/dev/kmsg" ||
			die "vfio-early on the prebound tree: $(grep -o 'summary:.*' "$pb/dev/kmsg" || echo 'no summary'), not $expect bound"
	else
		[ "$(grep -lx vfio-pci "$pb"/sys/bus/pci/devices/*/driver_override | wc -l)" = "$((4 * ${#bdfs[@]}))" ] ||
			die "classic: not every function of the targets' groups has the override"
	fi
}
cpu_run() { # TOOL CMD...: one run on a fresh copy; prints "TOTAL USER SYS" microseconds
	local tool=$1 rc=0
	shift
	pb_reset
	"$cputime" "$work/cpu" "$@" >/dev/null 2>&1 || rc=$?
	pb_check "$tool" "$rc"
	cat "$work/cpu"
}
: >"$work/pcpu.binder"
: >"$work/pcpu.classic"
: >"$work/pratio"
for ((i = 0; i < P; i++)); do
	if ((i % 2)); then
		b=$(cpu_run vfio-early "${pb_binder[@]}")
		c=$(cpu_run classic "${pb_classic[@]}")
	else
		c=$(cpu_run classic "${pb_classic[@]}")
		b=$(cpu_run vfio-early "${pb_binder[@]}")
	fi
	echo "$b" >>"$work/pcpu.binder"
	echo "$c" >>"$work/pcpu.classic"
	ratio "${b%% *}" "${c%% *}" >>"$work/pratio"
	echo >>"$work/pratio"
done
col() { awk -v c="$1" '{print $c}' "$2" >"$2.$1"; echo "$2.$1"; } # one column, as its own file
: >"$work/psys.binder"
: >"$work/psys.classic"
for ((i = 0; i < S; i++)); do
	for tool in vfio-early classic; do
		pb_reset
		rc=0
		if [ "$tool" = vfio-early ]; then
			strace -f -qq -o "$work/strace.pb.$tool" "${pb_binder[@]}" >/dev/null 2>&1 || rc=$?
			f=$work/psys.binder
		else
			strace -f -qq -o "$work/strace.pb.$tool" "${pb_classic[@]}" >/dev/null 2>&1 || rc=$?
			f=$work/psys.classic
		fi
		pb_check "$tool" "$rc"
		read -r _ own < <(count_syscalls "$work/strace.pb.$tool")
		echo "$own" >>"$f"
	done
done
pb_b=$(stat_of median "$(col 1 "$work/pcpu.binder")")
pb_c=$(stat_of median "$(col 1 "$work/pcpu.classic")")
r_min=$(stat_of min "$work/pratio")
r_med=$(stat_of median "$work/pratio")
r_max=$(stat_of max "$work/pratio")
sys_b=$(stat_of median "$work/psys.binder")
sys_c=$(stat_of median "$work/psys.classic")
spread() { # FILE: "all equal" or "min-max"
	local lo hi
	lo=$(stat_of min "$1")
	hi=$(stat_of max "$1")
	if [ "$lo" = "$hi" ]; then echo "all $lo"; else echo "$lo-$hi"; fi
}

echo
echo "own work, paired: $P pairs on fresh copies of the same machine prebound (modprobe noop: both"
echo "  tools take their success path, the kernel stand-in is one rename); CPU time user+sys of the"
echo "  tool and its children (wait4; its user/sys split is tick-sampled, so only the sum is shown),"
echo "  own syscalls from $S strace runs per tool"
printf '%-38s %12s %12s %8s\n' "" vfio-early classic ratio
row "CPU median (us)" "$pb_b" "$pb_c"
row "CPU min (us)" "$(stat_of min "$work/pcpu.binder.1")" "$(stat_of min "$work/pcpu.classic.1")"
row "own syscalls (median of $S)" "$sys_b" "$sys_c"
echo "per-pair CPU ratio vfio-early/classic: min $r_min, median $r_med, max $r_max"
echo "own syscalls per run: vfio-early $(spread "$work/psys.binder"), classic $(spread "$work/psys.classic")"
echo "top syscalls, vfio-early: $(top "$work/strace.pb.vfio-early")"
echo "top syscalls, classic:    $(top "$work/strace.pb.classic")"
result paired.pairs "$P"
result paired.cpu_us_median.binder "$pb_b"
result paired.cpu_us_median.classic "$pb_c"
result paired.cpu_ratio.min "$r_min"
result paired.cpu_ratio.median "$r_med"
result paired.cpu_ratio.max "$r_max"
result paired.own_syscalls.binder "$sys_b"
result paired.own_syscalls.classic "$sys_c"
result paired.syscalls_ratio "$(ratio "$sys_b" "$sys_c")"

lap paired

######## 3. Scaling: vfio-early alone, on prebound trees of every size.

# One prebound tree per configuration, made by `mktree NAME DEVICES TARGETS ENTRIES`: its root is
# $work/NAME, its targets' driver_override files (all four functions) are in NAME_over.
mktree() {
	local list b f
	rm -rf "${work:?}/$1"
	list=$("$gen" "$work/$1" --devices "$2" --targets "$3" --entries "$4" --prebound --modprobe noop --all-bars)
	local -n made=$1_over
	made=()
	for b in $list; do
		for f in 0 1 2 3; do made+=("$work/$1/sys/bus/pci/devices/${b%.0}.$f/driver_override"); done
	done
}
# What one successful binder run changes in a prebound tree, put back without a copy (a
# 4096-device tree is 67,000 entries); checked once per tree against a listing of the fresh one.
tree_reset() { # NAME
	local t=$work/$1 f
	local -n over=$1_over
	[ ! -d "$t/sys/bus/pci/drivers/vfio-pci" ] || mv "$t/sys/bus/pci/drivers/vfio-pci" "$t/sys/bus/pci/drivers/.vfio-pci"
	rm -rf "$t/run/vfio-early"
	: >"$t/dev/kmsg"
	for f in "${over[@]}"; do printf '(null)\n' >"$f"; done
}
listing() { find "$work/$1" -printf '%y %P %s %l\n' | sort | md5sum; }
tree_check() { # NAME EXIT TARGETS: the run took its success path (each target's whole card bound)
	local t=$work/$1
	[ "$2" = 0 ] || die "vfio-early exited $2 on tree $1"
	[ -d "$t/sys/bus/pci/drivers/vfio-pci" ] || die "vfio-early did not run modprobe on tree $1"
	grep -q "summary: $((4 * $3)) bound, 0 refused, 0 failed" "$t/dev/kmsg" ||
		die "vfio-early on tree $1: $(grep -o 'summary:.*' "$t/dev/kmsg" || echo 'no summary'), not $((4 * $3)) bound"
}
cpu_once() { # NAME TARGETS: one run, its CPU microseconds printed, the tree put back
	local rc=0
	"$cputime" "$work/cpu" "$BIN" --root "$work/$1" >/dev/null 2>&1 || rc=$?
	tree_check "$1" "$rc" "$2"
	tree_reset "$1"
	awk '{print $1}' "$work/cpu"
}
echo
echo "scaling: vfio-early alone on prebound trees (modprobe noop; proc/iomem with every BAR, as the"
echo "  kernel lists it; proc/bus/pci/devices in the kernel's format); own syscalls from one strace"
echo "  run, CPU time user+sys of K=$K runs"
printf '%7s %7s %7s %10s %10s %10s %10s %10s\n' devices targets entries syscalls "CPU us" "CPU min" iomem "pci/devs"
for n in $SIZES; do
	for entries in address id; do
		for tg in 1 8; do
			if [ "$n" -lt 256 ] && [ "$tg" -gt 1 ]; then
				printf '%7s %7s %7s %10s %10s %10s\n' "$n" "$tg" "$entries" n/a n/a "(room for 1 target)"
				continue
			fi
			mktree st "$n" "$tg" "$entries"
			fresh=$(listing st)
			rc=0
			strace -f -qq -o "$work/strace.scale" "$BIN" --root "$work/st" >/dev/null 2>&1 || rc=$?
			tree_check st "$rc" "$tg"
			read -r _ own < <(count_syscalls "$work/strace.scale")
			[ "$n" != 4096 ] || [ "$tg" != 1 ] || cp "$work/strace.scale" "$work/strace.4096.$entries"
			tree_reset st
			[ "$(listing st)" = "$fresh" ] || die "the reset does not restore tree st ($n devices, $tg targets, $entries entries)"
			: >"$work/scpu"
			for ((k = 0; k < K; k++)); do cpu_once st "$tg" >>"$work/scpu"; done
			med=$(stat_of median "$work/scpu")
			printf '%7s %7s %7s %10s %10s %10s %10s %10s\n' "$n" "$tg" "$entries" "$own" "$med" \
				"$(stat_of min "$work/scpu")" "$(($(stat -c %s "$work/st/proc/iomem") / 1024))K" \
				"$(($(stat -c %s "$work/st/proc/bus/pci/devices") / 1024))K"
			result "scale.$n.$tg.$entries.own_syscalls" "$own"
			result "scale.$n.$tg.$entries.cpu_us_median" "$med"
			rm -rf "$work/st"
		done
	done
done
get() { awk -v k="$1" '$1 == k {print $2}' "$results"; }
has_size() { case " $SIZES " in *" $1 "*) return 0 ;; esac; return 1; }
for entries in address id; do
	[ ! -f "$work/strace.4096.$entries" ] ||
		echo "top syscalls at 4096 devices, 1 target, $entries entries: $(top "$work/strace.4096.$entries")"
done
# The ratios of a big tree to a small one. Syscalls are exact; CPU time, from the table's medians
# of separate runs, moves with the machine's load, so the budgeted one (address entries, 4096 to
# 16 devices, 1 target) is measured again in R pairs, one run on each tree, order alternating.
scale_ratio() { # BIG SMALL TARGETS ENTRIES
	local s c
	s=$(ratio "$(get "scale.$1.$3.$4.own_syscalls")" "$(get "scale.$2.$3.$4.own_syscalls")")
	c=$(ratio "$(get "scale.$1.$3.$4.cpu_us_median")" "$(get "scale.$2.$3.$4.cpu_us_median")")
	echo "ratio $1/$2 devices, $3 target(s), $4 entries: syscalls $s, CPU $c (table medians)"
	result "scale.ratio_$1_$2.$3.$4.syscalls" "$s"
	if [ "$4" != address ] || [ "$3" != 1 ]; then result "scale.ratio_$1_$2.$3.$4.cpu" "$c"; fi
}
if has_size 4096 && has_size 16; then
	scale_ratio 4096 16 1 id
	scale_ratio 4096 16 1 address
	mktree small 16 1 address
	mktree big 4096 1 address
	: >"$work/sratio"
	for ((i = 0; i < R; i++)); do
		if ((i % 2)); then
			c16=$(cpu_once small 1)
			c4k=$(cpu_once big 1)
		else
			c4k=$(cpu_once big 1)
			c16=$(cpu_once small 1)
		fi
		ratio "$c4k" "$c16" >>"$work/sratio"
		echo >>"$work/sratio"
	done
	rm -rf "$work/small" "$work/big"
	echo "  paired over R=$R pairs, 4096/16 devices, 1 target, address entries: CPU ratio min $(stat_of min "$work/sratio"), median $(stat_of median "$work/sratio"), max $(stat_of max "$work/sratio")"
	result scale.ratio_4096_16.1.address.cpu "$(stat_of median "$work/sratio")"
fi
if has_size 4096 && has_size 256; then scale_ratio 4096 256 8 address; fi

lap scaling

######## 4. The host's `status` against lspci, on the 4096-device machine.

# Issue 13: `status` within 2x of `lspci -nnk -O sysfs.path=TREE` on the same tree. The tree is
# the 4096-device machine (1 target, address entry, every BAR in proc/iomem) after the boot's
# run on it: prebound, so the boot binds its target and audio function and writes its state file,
# which status reads as this boot's record. Every device has its `config` (FakeTree::device),
# which lspci reads; pci.ids is lspci's own file, copied in for status (it reads the root's).
if [ "$Q" -gt 0 ]; then
	lt=$work/lt
	rm -rf "$lt"
	"$gen" "$lt" --devices 4096 --targets 1 --entries address --prebound --modprobe noop --all-bars >/dev/null
	mkdir -p "$lt/usr/share/misc"
	cp "$PCIIDS" "$lt/usr/share/misc/pci.ids"
	rc=0
	"$BIN" --root "$lt" >/dev/null 2>&1 || rc=$?
	tree_check lt "$rc" 1
	lt_dev=$(find "$lt/sys/bus/pci/devices" -mindepth 1 -maxdepth 1 | wc -l)
	lt_grp=$(find "$lt/sys/kernel/iommu_groups" -mindepth 1 -maxdepth 1 | wc -l)
	lt_drv=$(find "$lt/sys/devices" -mindepth 3 -maxdepth 3 -name driver -type l | wc -l)
	run_status=("$HOST_BIN" status --root "$lt")
	run_all=("$HOST_BIN" status --all --root "$lt")
	run_lspci=("$LSPCI" -nnk -A linux-sysfs -O "sysfs.path=$lt/sys/bus/pci")
	# Each tool once: exit status, and that it shows this tree as it is.
	before=$(listing lt)
	for t in status all lspci; do
		rc=0
		case $t in
		status) "${run_status[@]}" >"$work/out.$t" 2>"$work/err.$t" || rc=$? ;;
		all) "${run_all[@]}" >"$work/out.$t" 2>"$work/err.$t" || rc=$? ;;
		lspci) "${run_lspci[@]}" >"$work/out.$t" 2>"$work/err.$t" || rc=$? ;;
		esac
		[ "$rc" = 0 ] || die "$t exited $rc on the 4096-device tree: $(head -c 500 "$work/err.$t")"
	done
	[ "$(listing lt)" = "$before" ] || die "status or lspci changed the tree"
	# lspci: every device of the tree, with the IDs and subsystem IDs its uevent gives, and the
	# driver of every bound one.
	awk -F= 'FNR == 1 {split(FILENAME, p, "/"); b = p[length(p) - 1]}
		 $1 == "PCI_ID" {id[b] = tolower($2)} $1 == "PCI_SUBSYS_ID" {ss[b] = tolower($2)}
		 END {for (b in id) print b, id[b], ss[b]}' "$lt"/sys/devices/*/*/uevent | sort >"$work/ids.tree"
	awk '/^[0-9a-f]/ {b = $1; n = split($0, w, "["); id[b] = substr(w[n], 1, 9)}
	     /^\tSubsystem:/ {n = split($0, w, "["); ss[b] = substr(w[n], 1, 9)}
	     END {for (b in id) print b, id[b], ss[b]}' "$work/out.lspci" | sort >"$work/ids.lspci"
	cmp -s "$work/ids.tree" "$work/ids.lspci" ||
		die "lspci does not show the tree's devices with their IDs: $(diff "$work/ids.tree" "$work/ids.lspci" | head -n 5)"
	[ "$(grep -c $'^\tKernel driver in use: ' "$work/out.lspci")" = "$lt_drv" ] ||
		die "lspci -k does not show the $lt_drv drivers bound"
	# status: the IOMMU groups, this boot's record (the whole card: 4 functions), names for every device, no problem; --all
	# every device.
	grep -qx "IOMMU: on, $lt_grp groups" "$work/out.status" || die "status: $(head -n 1 "$work/out.status")"
	grep -qx 'this boot: 4 devices considered, 4 bound' "$work/out.status" ||
		die "status does not show this boot's record: $(sed -n 2p "$work/out.status")"
	! grep -q '^names: \|^problem: ' "$work/out.status" || die "status: $(grep '^names: \|^problem: ' "$work/out.status" | head -n 3)"
	shown() { grep -c '^  [0-9a-f]\{4\}:[0-9a-f]\{2\}:[0-9a-f]\{2\}\.[0-7]  ' "$1"; }
	[ "$(shown "$work/out.all")" = "$lt_dev" ] || die "status --all shows $(shown "$work/out.all") devices, not $lt_dev"
	[ "$(shown "$work/out.status")" -gt 0 ] || die "status shows no device"

	# Q rounds, lspci in the middle and the two status runs on either side, sides swapped every
	# round: each status run has an lspci run next to it under the same load.
	sl_once() { # NAME CMD...: one run, its CPU microseconds (user+sys) appended to $work/sl.NAME
		local name=$1 rc=0
		shift
		"$cputime" "$work/cpu" "$@" >/dev/null 2>&1 || rc=$?
		[ "$rc" = 0 ] || die "$name exited $rc on the 4096-device tree"
		awk '{print $1}' "$work/cpu" >>"$work/sl.$name"
	}
	: >"$work/sl.status"
	: >"$work/sl.all"
	: >"$work/sl.lspci"
	for ((i = 0; i < Q; i++)); do
		if ((i % 2)); then
			sl_once all "${run_all[@]}"
			sl_once lspci "${run_lspci[@]}"
			sl_once status "${run_status[@]}"
		else
			sl_once status "${run_status[@]}"
			sl_once lspci "${run_lspci[@]}"
			sl_once all "${run_all[@]}"
		fi
	done
	[ "$(listing lt)" = "$before" ] || die "status or lspci changed the tree"
	paste "$work/sl.status" "$work/sl.lspci" | awk '{printf "%.2f\n", $1 / $2}' >"$work/sl.r.status"
	paste "$work/sl.all" "$work/sl.lspci" | awk '{printf "%.2f\n", $1 / $2}' >"$work/sl.r.all"
	# Syscalls: neither tool has children, so all of them are its own. perf's syscall tracepoint
	# counts them exactly at no cost; strace, the fallback, takes 15 s over lspci's 130,000.
	if perf stat -x, -e raw_syscalls:sys_enter -o "$work/perf" true >/dev/null 2>&1; then
		sl_how="perf stat"
	else
		sl_how=strace
	fi
	declare -A sl_sys sl_rss sl_lines
	for t in status all lspci; do
		case $t in
		status) cmd=("${run_status[@]}") ;;
		all) cmd=("${run_all[@]}") ;;
		lspci) cmd=("${run_lspci[@]}") ;;
		esac
		if [ "$sl_how" = strace ]; then
			strace -f -qq -o "$work/strace.sl.$t" "${cmd[@]}" >/dev/null 2>&1 || die "$t under strace failed"
			read -r _ own < <(count_syscalls "$work/strace.sl.$t")
		else
			perf stat -x, -e raw_syscalls:sys_enter -o "$work/perf" "${cmd[@]}" >/dev/null 2>&1 ||
				die "$t under perf stat failed"
			own=$(awk -F, '$3 == "raw_syscalls:sys_enter" {print $1}' "$work/perf")
		fi
		sl_sys[$t]=$own
		"$peakrss" "$work/hwm" "${cmd[@]}" >/dev/null 2>&1 || die "$t under peakrss failed"
		sl_rss[$t]=$(cat "$work/hwm")
		sl_lines[$t]=$(wc -l <"$work/out.$t")
	done
	sl_row() { printf '%-32s %12s %14s %12s\n' "$@"; }
	echo
	echo "status against lspci: $lt_dev devices in $lt_grp IOMMU groups, after the boot's run (state file),"
	echo "  every device with its config; Q=$Q rounds of status, lspci, status --all (sides swapped each"
	echo "  round); CPU time user+sys; lspci is $LSPCI -nnk -A linux-sysfs -O sysfs.path=TREE/sys/bus/pci"
	sl_row "" status "status --all" "lspci -nnk"
	sl_row "CPU median (us)" "$(stat_of median "$work/sl.status")" "$(stat_of median "$work/sl.all")" "$(stat_of median "$work/sl.lspci")"
	sl_row "CPU min (us)" "$(stat_of min "$work/sl.status")" "$(stat_of min "$work/sl.all")" "$(stat_of min "$work/sl.lspci")"
	sl_row "syscalls ($sl_how)" "${sl_sys[status]}" "${sl_sys[all]}" "${sl_sys[lspci]}"
	sl_row "peak RSS KiB, own VmHWM" "${sl_rss[status]}" "${sl_rss[all]}" "${sl_rss[lspci]}"
	sl_row "output lines" "${sl_lines[status]}" "${sl_lines[all]}" "${sl_lines[lspci]}"
	sl_row "devices shown" "$(shown "$work/out.status")" "$(shown "$work/out.all")" "$(grep -c '^[0-9a-f]' "$work/out.lspci")"
	echo "per-round CPU ratio status/lspci:       min $(stat_of min "$work/sl.r.status"), median $(stat_of median "$work/sl.r.status"), max $(stat_of max "$work/sl.r.status")"
	echo "per-round CPU ratio status --all/lspci: min $(stat_of min "$work/sl.r.all"), median $(stat_of median "$work/sl.r.all"), max $(stat_of max "$work/sl.r.all")"
	if [ -s "$work/err.lspci" ]; then echo "lspci's stderr: $(head -n 1 "$work/err.lspci")"; fi
	if [ "$sl_how" = strace ]; then
		echo "top syscalls, status: $(top "$work/strace.sl.status")"
		echo "top syscalls, lspci:  $(top "$work/strace.sl.lspci")"
	fi
	result status.devices "$lt_dev"
	result status.rounds "$Q"
	result status.cpu_us_median.status "$(stat_of median "$work/sl.status")"
	result status.cpu_us_median.status_all "$(stat_of median "$work/sl.all")"
	result status.cpu_us_median.lspci "$(stat_of median "$work/sl.lspci")"
	for w in min median max; do
		result "status.cpu_ratio_vs_lspci.$w" "$(stat_of "$w" "$work/sl.r.status")"
		result "status.all.cpu_ratio_vs_lspci.$w" "$(stat_of "$w" "$work/sl.r.all")"
	done
	result status.syscalls.status "${sl_sys[status]}"
	result status.syscalls.status_all "${sl_sys[all]}"
	result status.syscalls.lspci "${sl_sys[lspci]}"
	result status.rss_own_kib.status "${sl_rss[status]}"
	result status.rss_own_kib.status_all "${sl_rss[all]}"
	result status.rss_own_kib.lspci "${sl_rss[lspci]}"
	rm -rf "$lt"
fi

lap status
result bench.seconds "$SECONDS"
mv "$results" "$OUT/results"
echo
secs() { awk -v k="bench.seconds.$1" '$1 == k {print $2}' "$OUT/results"; }
echo "bench: $SECONDS s (the build included; default table $(secs default) s, paired $(secs paired) s, scaling $(secs scaling) s, status $(secs status) s); figures in $OUT/results"
