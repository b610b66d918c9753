# SPDX-License-Identifier: MIT OR Apache-2.0
# shellcheck shell=bash
# shellcheck disable=SC2034 # settings and results are used by the sourcing scripts
#
# QEMU test harness library, sourced by tests/qemu/run.sh and tests/demo.sh
# (and later by boots of dracut / initramfs-tools images). Pieces:
#   ensure_host                      setup check (runs setup-host.sh as root if needed)
#   build_binder                     make static; sets BINDER_BIN
#   build_image OUT.img              test initramfs around tests/qemu/init
#   machine_args "card1 vga ..."     sets MACHINE_QEMU (array) and MACHINE_APPEND
#   boot_vm DIR INITRD APPEND ARGS.. one QEMU boot under a hang guard
#   boot_scenario DIR MACHINE ARGS PRELOAD [INITRD]
#   check_report DIR EXPECT LOGS     prints one reason per failed expectation
#   timing_line DIR / show_report DIR
#   ensure_test_rom SPEC             a generated expansion ROM (tests/roms/make-test-rom.py)
#   rom_checks DIR CHECKS            host-side checks of the ROM captures a boot reported
# Nothing here exits: functions return non-zero and callers decide.

# depmod and modprobe live in sbin, which a non-root PATH may lack.
export PATH="$PATH:/usr/sbin:/sbin"

QEMU_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
TESTS_DIR=$(dirname "$QEMU_DIR")
REPO_DIR=$(dirname "$TESTS_DIR")
CACHE_DIR="$TESTS_DIR/.cache"
KERNEL_ROOT="$CACHE_DIR/kernel"
OUT_DIR="${VFIO_EARLY_TEST_OUT:-$TESTS_DIR/out}"
MUSL_TARGET=x86_64-unknown-linux-musl
# Host-side hang guard per boot (seconds); the guest has its own (test.guard).
BOOT_TIMEOUT="${BOOT_TIMEOUT:-240}"
GUEST_GUARD="${GUEST_GUARD:-120}"
# Modules (with all their dependencies) put in the test image: the binder's
# vfio-pci, and the native drivers of q35's devices and of the stand-in card,
# so coldplug really races the binder.
IMAGE_MODULES="${IMAGE_MODULES:-vfio-pci bochs snd-hda-intel ahci i2c-i801 lpc_ich xhci-pci}"
# Initramfs images by key (the scenario table's 7th field); "test" is the
# image build_image makes around tests/qemu/init.
declare -gA IMAGES=()

h_say() { printf '%s\n' "$*"; }
h_err() { printf 'ERROR: %s\n' "$*" >&2; }

ensure_host() {
    if "$TESTS_DIR/setup-host.sh" --check >/dev/null; then
        return 0
    fi
    if [ "$(id -u)" -ne 0 ]; then
        "$TESTS_DIR/setup-host.sh" --check >&2 || true
        h_err "host not ready and not root: run tests/setup-host.sh as root"
        return 1
    fi
    "$TESTS_DIR/setup-host.sh"
}

# The single kernel release extracted by setup-host.sh.
kernel_version() {
    local d
    d=$(find "$KERNEL_ROOT/lib/modules" -mindepth 1 -maxdepth 1 -type d 2>/dev/null | head -n1)
    [ -n "$d" ] || { h_err "no kernel in $KERNEL_ROOT: run tests/setup-host.sh"; return 1; }
    basename "$d"
}

kernel_image() {
    local kver
    kver=$(kernel_version) || return 1
    printf '%s\n' "$KERNEL_ROOT/boot/vmlinuz-$kver"
}

# Sets BINDER_BIN. VFIO_EARLY_BIN overrides the build (e.g. a prebuilt binary).
build_binder() {
    if [ -n "${VFIO_EARLY_BIN:-}" ]; then
        BINDER_BIN=$VFIO_EARLY_BIN
    else
        # What the hooks put into every image: the static boot build (bind only).
        make -s -C "$REPO_DIR" static >&2 || { h_err "make static failed"; return 1; }
        BINDER_BIN="$REPO_DIR/target/$MUSL_TARGET/release/vfio-early-boot"
    fi
    [ -x "$BINDER_BIN" ] || { h_err "binder not executable: $BINDER_BIN"; return 1; }
    # The image carries no libc for it: it must be static (static-pie
    # counts: ldd says "statically linked" for it).
    if ! ldd "$BINDER_BIN" 2>&1 | grep -qE 'not a dynamic executable|statically linked'; then
        h_err "binder is dynamically linked: $BINDER_BIN"
        return 1
    fi
}

# Copy a host file into the image at the same path (following symlinks).
copy_to_image() {
    local stage=$1 src=$2
    mkdir -p "$stage$(dirname "$src")"
    cp -L "$src" "$stage$src"
}

# Copy an ELF program and every library ldd lists, loader included.
copy_exec_to_image() {
    local stage=$1 prog=$2 lib
    copy_to_image "$stage" "$prog"
    for lib in $(ldd "$prog" | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }'); do
        copy_to_image "$stage" "$lib"
    done
}

# Module file paths (relative to lib/modules/KVER) for the given names, with
# all dependencies and soft dependencies, as the kernel's own modprobe sees them.
module_closure() {
    local kver=$1 m out all=""
    shift
    for m in "$@"; do
        out=$(modprobe -d "$KERNEL_ROOT" -S "$kver" --show-depends "$m") ||
            { h_err "module $m not found for $kver"; return 1; }
        all+="$out"$'\n'
    done
    awk -v p="$KERNEL_ROOT/lib/modules/$kver/" '$1 == "insmod" { sub(p, "", $2); print $2 }' <<<"$all" | sort -u
}

# build_image OUT.img: newc cpio (uncompressed: TCG unpacks it faster) with
# busybox, the real kmod as modprobe, the binder and IMAGE_MODULES.
# Sets MODULE_FILES (paths under lib/modules/KVER).
build_image() {
    local img=$1 kver stage rc=0
    kver=$(kernel_version) || return 1
    [ -n "${BINDER_BIN:-}" ] || { h_err "build_binder first"; return 1; }
    mkdir -p "$(dirname "$img")"
    stage=$(mktemp -d "$(dirname "$img")/stage.XXXXXX")
    if ! fill_image "$stage" "$kver" || ! pack_image "$stage" "$img"; then
        rc=1
    fi
    rm -rf "$stage"
    return "$rc"
}

# Every step is checked explicitly: build_image calls this as an if
# condition, where set -e does not apply.
fill_image() {
    local stage=$1 kver=$2 applet rel tool kmod_bin
    mkdir -p "$stage"/{bin,sbin,usr/bin,usr/sbin,etc,proc,sys,dev,run,tmp,lib/modules} || return 1

    cp "$(command -v busybox)" "$stage/bin/busybox" || return 1
    for applet in $(busybox --list); do
        case $applet in
            # kmod provides these: busybox's modprobe does not read the real
            # modules.dep.bin and the binder must run the system's modprobe.
            modprobe | insmod | rmmod | lsmod | depmod | modinfo | busybox) ;;
            *) ln -s busybox "$stage/bin/$applet" || return 1 ;;
        esac
    done
    kmod_bin=$(readlink -f "$(command -v kmod)")
    copy_exec_to_image "$stage" "$kmod_bin" || { h_err "copying $kmod_bin and its libraries failed"; return 1; }
    for tool in modprobe insmod rmmod lsmod depmod modinfo; do
        ln -s "$kmod_bin" "$stage/sbin/$tool" || return 1
    done

    install -m 755 "$BINDER_BIN" "$stage/usr/bin/vfio-early" || return 1
    # The host build beside it, for the booted system's view (test.status).
    install -m 755 "$(dirname "$BINDER_BIN")/vfio-early" "$stage/usr/bin/vfio-early-host" || return 1
    # Names for status, as an installed system has them (Debian's pci.ids package).
    if [ -f /usr/share/misc/pci.ids ]; then
        install -D -m 644 /usr/share/misc/pci.ids "$stage/usr/share/misc/pci.ids" || return 1
    fi
    install -m 755 "$QEMU_DIR/init" "$stage/init" || return 1
    # Marks an initramfs for the binder's boot mode (as dracut/systemd do).
    printf 'NAME="vfio-early test initramfs"\nID=vfio-early-test\nVERSION_ID=1\n' \
        >"$stage/etc/initrd-release" || return 1

    # shellcheck disable=SC2086 # the module list is space separated on purpose
    MODULE_FILES=$(module_closure "$kver" $IMAGE_MODULES) || return 1
    [ -n "$MODULE_FILES" ] || { h_err "no module files for: $IMAGE_MODULES"; return 1; }
    for rel in $MODULE_FILES; do
        if ! install -D -m 644 "$KERNEL_ROOT/lib/modules/$kver/$rel" "$stage/lib/modules/$kver/$rel"; then
            h_err "copying module $rel failed"
            return 1
        fi
    done
    for rel in modules.order modules.builtin modules.builtin.modinfo; do
        cp "$KERNEL_ROOT/lib/modules/$kver/$rel" "$stage/lib/modules/$kver/" ||
            { h_err "copying $rel failed"; return 1; }
    done
    depmod -b "$stage" "$kver" || { h_err "depmod -b $stage failed"; return 1; }
    # Not strictly needed (init switches to devtmpfs' console) but lets the
    # kernel open a console for /init from the start; needs root.
    mknod -m 600 "$stage/dev/console" c 5 1 2>/dev/null || true
    # The image's own kmod must resolve vfio-pci the way the guest will.
    modprobe -d "$stage" -S "$kver" --show-depends vfio-pci >/dev/null ||
        { h_err "vfio-pci does not resolve inside the image tree"; return 1; }
}

# build_shimlink_image BASE OUT: BASE plus a newc overlay (the kernel unpacks concatenated
# archives in order) in which /init is a symlink to the static rdinit shim at
# /usr/lib/vfio-early/init and the test init is /sbin/init: the kernel starts the shim through
# the link, and the shim must know itself by its file, skip /init and start /sbin/init.
build_shimlink_image() {
    local base=$1 out=$2 stage shim=$REPO_DIR/target/$MUSL_TARGET/release/vfio-early-init
    [ -x "$shim" ] || { h_err "no static rdinit shim at $shim (make static)"; return 1; }
    stage=$(mktemp -d "$(dirname "$out")/shimlink.XXXXXX")
    mkdir -p "$stage/usr/lib/vfio-early" "$stage/sbin" &&
        install -m 755 "$shim" "$stage/usr/lib/vfio-early/init" &&
        install -m 755 "$QEMU_DIR/init" "$stage/sbin/init" &&
        ln -s usr/lib/vfio-early/init "$stage/init" &&
        pack_image "$stage" "$stage.cpio" &&
        cat "$base" "$stage.cpio" >"$out"
    local rc=$?
    rm -rf "$stage" "$stage.cpio"
    [ "$rc" -eq 0 ] || h_err "building $out failed"
    return "$rc"
}

pack_image() {
    local stage=$1 img=$2
    (cd "$stage" && find . -mindepth 1 -print0 | LC_ALL=C sort -z |
        cpio --null --create --format=newc --quiet --reproducible) >"$img.tmp" ||
        { h_err "cpio failed"; rm -f "$img.tmp"; return 1; }
    mv "$img.tmp" "$img"
}

# machine_args "PIECES": QEMU devices for the named pieces.
#   card1    stand-in GPU: root port 00:04.0 -> bochs-display 01:00.0 + ich9-intel-hda 01:00.1
#   card2    card1 plus an identical card behind root port 00:05.0 (02:00.0 + 02:00.1)
#   card4    card2 with two more functions on each card's slot: qemu-xhci (.2, 1b36:000d, USB)
#            and pci-ipmi-kcs (.3, serial bus class 0c07) with its ipmi-bmc-sim: a four-function
#            card (QEMU gives no function the display's vendor ID: the USB is another vendor's)
#   solo     a single-function card: root port 00:06.0 -> bochs-display, alone on its bus (01:00.0
#            when no other card is there)
#   vga      a primary VGA (-device VGA) on pcie.0 at 00:02.0 (boot_vga=1)
#   noiommu  no intel-iommu device and no intel_iommu=on
#   card1rom=SPEC  card1's display (01:00.0) with romfile= the test ROM SPEC
#            (ensure_test_rom); an empty SPEC (`card1rom=`) gives it no ROM BAR at all.
#            Without this piece it has QEMU's default ROM (vgabios-bochs-display.bin).
# Sets MACHINE_QEMU (array) and MACHINE_APPEND (kernel arguments).
machine_args() {
    local piece iommu=1 card1=0 card2=0 card4=0 solo=0 vga=0 rom1="" rom1_set=0
    MACHINE_QEMU=()
    MACHINE_APPEND=""
    for piece in $1; do
        case $piece in
            card1) card1=1 ;;
            card2) card1=1; card2=1 ;;
            card4) card1=1; card2=1; card4=1 ;;
            solo) solo=1 ;;
            vga) vga=1 ;;
            noiommu) iommu=0 ;;
            card1rom=*)
                card1=1
                rom1_set=1
                if [ -n "${piece#card1rom=}" ]; then
                    rom1=$(ensure_test_rom "${piece#card1rom=}") || return 1
                fi
                ;;
            *) h_err "unknown machine piece: $piece"; return 1 ;;
        esac
    done
    # The IOMMU must exist before the devices it translates for.
    if [ "$iommu" -eq 1 ]; then
        MACHINE_QEMU+=(-device intel-iommu)
        MACHINE_APPEND="intel_iommu=on"
    fi
    # shellcheck disable=SC2054 # the commas are QEMU's option syntax
    if [ "$vga" -eq 1 ]; then
        MACHINE_QEMU+=(-device VGA,bus=pcie.0,addr=02.0)
    fi
    # shellcheck disable=SC2054
    if [ "$card1" -eq 1 ]; then
        local display=bochs-display,bus=rp1,addr=00.0,multifunction=on
        [ "$rom1_set" -eq 0 ] || display+=",romfile=$rom1"
        MACHINE_QEMU+=(-device pcie-root-port,id=rp1,bus=pcie.0,addr=04.0,chassis=1,slot=1
            -device "$display"
            -device ich9-intel-hda,bus=rp1,addr=00.1)
    fi
    # shellcheck disable=SC2054
    if [ "$card2" -eq 1 ]; then
        MACHINE_QEMU+=(-device pcie-root-port,id=rp2,bus=pcie.0,addr=05.0,chassis=2,slot=2
            -device bochs-display,bus=rp2,addr=00.0,multifunction=on
            -device ich9-intel-hda,bus=rp2,addr=00.1)
    fi
    # shellcheck disable=SC2054
    if [ "$solo" -eq 1 ]; then
        MACHINE_QEMU+=(-device pcie-root-port,id=rp3,bus=pcie.0,addr=06.0,chassis=3,slot=3
            -device bochs-display,bus=rp3,addr=00.0)
    fi
    # shellcheck disable=SC2054
    if [ "$card4" -eq 1 ]; then
        local rp
        for rp in 1 2; do
            MACHINE_QEMU+=(-device "qemu-xhci,bus=rp$rp,addr=00.2"
                -device "ipmi-bmc-sim,id=bmc$rp"
                -device "pci-ipmi-kcs,bmc=bmc$rp,bus=rp$rp,addr=00.3")
        done
    fi
}

# boot_vm DIR INITRD APPEND [QEMU ARGS...]: one boot. Writes DIR/console.log
# (ttyS0: kernel console), DIR/report.txt (ttyS1: the report only),
# DIR/qemu.stderr, DIR/qemu.rc (124 = hang guard hit), DIR/wall (seconds),
# DIR/cmdline. Returns QEMU's status.
# x86's COMMAND_LINE_SIZE is 2048: the longest command line the kernel keeps whole is 2047 bytes.
CMDLINE_MAX=2047
# pad_cmdline LINE: LINE with its `test.pad-to-max` word replaced by a `test.pad=xxx...` argument
# that makes the whole line exactly CMDLINE_MAX bytes (what follows the word is then the very end
# of the longest command line the kernel keeps).
pad_cmdline() {
    local line=$1 fill
    case " $line " in *" test.pad-to-max "*) ;; *) printf '%s\n' "$line"; return 0 ;; esac
    fill=$((CMDLINE_MAX - ${#line} + ${#test_pad_word} - ${#test_pad_arg}))
    [ "$fill" -ge 0 ] || { h_err "command line already longer than $CMDLINE_MAX bytes"; return 1; }
    printf '%s\n' "${line/test.pad-to-max/$test_pad_arg$(printf '%*s' "$fill" '' | tr ' ' x)}"
}
test_pad_word=test.pad-to-max
test_pad_arg=test.pad=

boot_vm() {
    local dir=$1 initrd=$2 append=$3 kernel t0 t1 rc
    shift 3
    kernel=$(kernel_image) || return 1
    rm -rf "$dir"
    mkdir -p "$dir"
    append=$(pad_cmdline "console=ttyS0 panic=-1 test.guard=$GUEST_GUARD${append:+ $append}") || return 1
    # --foreground keeps timeout (and QEMU) in the job's process group, which
    # an interrupted run.sh kills.
    local cmd=(timeout --foreground --kill-after=10 "$BOOT_TIMEOUT"
        qemu-system-x86_64 -accel tcg -M q35 -m 512 -smp "${QEMU_SMP:-1}" -nodefaults
        -vga none -display none -no-reboot
        -serial "file:$dir/console.log" -serial "file:$dir/report.txt"
        -kernel "$kernel" -initrd "$initrd"
        -append "$append"
        "$@")
    printf '%q ' "${cmd[@]}" >"$dir/cmdline"
    echo >>"$dir/cmdline"
    local attempt
    for attempt in 1 2 3; do
        t0=$(date +%s.%N)
        rc=0
        "${cmd[@]}" </dev/null >"$dir/qemu.stderr" 2>&1 || rc=$?
        t1=$(date +%s.%N)
        # TCG on a loaded host can miss the IO-APIC timer check and the kernel panics long
        # before /init (nothing of ours has run): that boot says nothing, so it is run again,
        # and the retry is recorded.
        grep -q "timer doesn't work through Interrupt-remapped IO-APIC" "$dir/console.log" 2>/dev/null || break
        echo "attempt $attempt: kernel panic in IO-APIC timer setup (TCG under load), before /init; booted again" >>"$dir/retries"
    done
    echo "$rc" >"$dir/qemu.rc"
    awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f\n", b - a }' >"$dir/wall"
    return "$rc"
}

# boot_scenario DIR MACHINE ARGS PRELOAD [INITRD]: a boot of the test image
# (INITRD defaults to IMAGES[test]).
boot_scenario() {
    local dir=$1 machine=$2 args=$3 preload=$4 initrd=${5:-${IMAGES[test]:-}} append
    [ -n "$initrd" ] || { h_err "boot_scenario: no initrd"; return 1; }
    machine_args "$machine" || return 1
    append="$MACHINE_APPEND${preload:+ test.preload=$preload}${args:+ $args}"
    boot_vm "$dir" "$initrd" "$append" "${MACHINE_QEMU[@]}"
}

# The report without carriage returns (the tty adds them).
report_text() {
    [ -f "$1/report.txt" ] || return 0
    tr -d '\r' <"$1/report.txt"
}

# "BDF DRIVER" per device, from the REPORT lines.
report_drivers() { report_text "$1" | awk '$1 == "REPORT" && NF == 5 { print $2, $5 }'; }

# The binder's own kernel records (prefix "vfio-early: "), with timestamps;
# other lines that merely mention vfio-early (the command line) are left out.
report_klog() {
    report_text "$1" | sed -n 's/^KLOG \(\[ *[0-9.]*\] vfio-early: \)/\1/p'
}

# 01:00.0 -> 0000:01:00.0
full_bdf() {
    case $1 in
        ????:??:??.?) printf '%s\n' "$1" ;;
        *) printf '0000:%s\n' "$1" ;;
    esac
}

# Why a boot is unusable, empty if it has a complete report.
boot_problem() {
    local dir=$1 rc
    rc=$(cat "$dir/qemu.rc" 2>/dev/null || echo missing)
    if [ "$rc" = 124 ] || [ "$rc" = 137 ]; then
        echo "boot hung (killed after ${BOOT_TIMEOUT}s)"
    elif ! report_text "$dir" | grep -qx 'REPORT-END'; then
        echo "no REPORT-END (qemu rc=$rc)"
    elif [ -z "$(report_drivers "$dir")" ]; then
        echo "no REPORT lines"
    fi
}

# check_report DIR EXPECT LOGS: prints one reason per unmet expectation and
# returns 1 if there is any.
#   EXPECT: space separated BDF=driver, BDF!=driver, *!=driver (no device on it)
#   LOGS:   ';' separated substrings that must appear in the binder's records
check_report() {
    local dir=$1 expect=$2 logs=$3 problem drivers klog e bdf want got sub bad=0 rc line
    problem=$(boot_problem "$dir")
    if [ -n "$problem" ]; then
        echo "$problem"
        return 1
    fi
    drivers=$(report_drivers "$dir")
    klog=$(report_klog "$dir")
    rc=$(report_text "$dir" | awk '$1 == "BINDER-EXIT" { print $2 }')
    if [ "$rc" != 0 ]; then
        echo "binder exit status ${rc:-unknown}, boot mode must exit 0"
        bad=1
    fi
    # A scenario whose preload failed did not test what it claims.
    line=$(report_text "$dir" | awk '$1 == "PRELOAD" && $3 != "rc=0" { print "preload of " $2 " failed (" $3 ")" }')
    if [ -n "$line" ]; then echo "$line"; bad=1; fi
    for e in $expect; do
        case $e in
            '*!='*)
                want=${e#*!=}
                got=$(awk -v d="$want" '$2 == d { printf "%s ", $1 }' <<<"$drivers")
                if [ -n "$got" ]; then echo "on $want but should not be: $got"; bad=1; fi
                ;;
            *'!='*)
                bdf=$(full_bdf "${e%%!=*}")
                want=${e#*!=}
                got=$(awk -v b="$bdf" '$1 == b { print $2 }' <<<"$drivers")
                if [ -z "$got" ]; then
                    echo "$bdf absent from the report"; bad=1
                elif [ "$got" = "$want" ]; then
                    echo "$bdf on $want, should not be"; bad=1
                fi
                ;;
            *=*)
                bdf=$(full_bdf "${e%%=*}")
                want=${e#*=}
                got=$(awk -v b="$bdf" '$1 == b { print $2 }' <<<"$drivers")
                if [ -z "$got" ]; then
                    echo "$bdf absent from the report"; bad=1
                elif [ "$got" != "$want" ]; then
                    echo "$bdf on $got, expected $want"; bad=1
                fi
                ;;
            *) echo "bad expectation: $e"; bad=1 ;;
        esac
    done
    local IFS=';'
    for sub in $logs; do
        sub=$(sed 's/^ *//; s/ *$//' <<<"$sub")
        [ -n "$sub" ] || continue
        if ! grep -qF -- "$sub" <<<"$klog"; then
            echo "binder log lacks: $sub"; bad=1
        fi
    done
    return "$bad"
}

# One line of numbers for a boot: wall time, the binder's guest time from
# /proc/uptime around it (10 ms resolution, includes exec), the span of its
# kernel records, and the time its own summary record states. printk and
# /proc/uptime use different clocks: compare deltas, never raw values.
# " (booted N times: ...)" when boot_vm had to boot again.
retry_note() {
    [ -f "$1/retries" ] || return 0
    printf ' (booted %s times: the kernel panicked in IO-APIC timer setup, before /init)' "$(($(wc -l <"$1/retries") + 1))"
}

timing_line() {
    local dir=$1
    report_text "$dir" | awk -v wall="$(cat "$dir/wall" 2>/dev/null)" '
        $1 == "UPTIME-BEFORE" { b = $2 }
        $1 == "UPTIME-AFTER"  { a = $2 }
        $1 == "KLOG" && $0 ~ /\] vfio-early: / {
            t = $0; sub(/^KLOG \[ */, "", t); sub(/\].*/, "", t)
            if (n == 0) first = t; last = t; n++
        }
        $1 == "KLOG" && /\] vfio-early: ([a-z]+: )?summary: .* in [0-9]+ ms/ {
            own = $0; sub(/.* in /, "", own); sub(/ ms.*/, "", own)
        }
        END {
            printf "boot %ss wall", wall
            if (b != "" && a != "") printf ", binder %d ms by /proc/uptime (%.2f -> %.2f)", (a - b) * 1000 + 0.5, b, a
            else printf ", binder time n/a"
            if (n > 0) printf ", %d kernel records spanning %.1f ms (%.6f -> %.6f)", n, (last - first) * 1000, first, last
            else printf ", no binder records"
            if (own != "") printf ", summary says %s ms", own
            printf "\n"
        }'
}

# Human view: the binder's records and a device -> driver table.
show_report() {
    local dir=$1
    echo "vfio-early kernel log:"
    report_klog "$dir" | sed 's/^/  /'
    [ -n "$(report_klog "$dir")" ] || echo "  (none)"
    echo "PCI devices:"
    report_text "$dir" | awk '$1 == "REPORT" && NF == 5 {
        printf "  %-14s %-10s %-9s %s\n", $2, $3, $4, $5 }'
}

# ensure_test_rom SPEC: prints the path of the generated ROM SPEC, making it first if needed
# (atomically: parallel boots may ask at once). SPEC is a make-test-rom.py variant with an
# optional size suffix: valid-64k, valid-1m, broken-chain. IDs 1234:1111 (bochs-display),
# class 0x038000, a 1 KiB legacy image (SeaBIOS runs it: retf) then an EFI image.
ROM_GEN_DIR="$OUT_DIR/qemu/roms"
ensure_test_rom() {
    local spec=$1 variant size=65536 path num
    case $spec in
        '' | */* | *..* | *[!a-z0-9-]*) h_err "bad test ROM name: $spec"; return 1 ;;
    esac
    variant=$spec
    num=${spec##*-}
    num=${num%[km]}
    case $spec in
        *-*[!0-9]*[km] | *-[km]) ;;
        *-*k) variant=${spec%-*}; size=$((num * 1024)) ;;
        *-*m) variant=${spec%-*}; size=$((num * 1024 * 1024)) ;;
    esac
    path="$ROM_GEN_DIR/$spec.rom"
    if [ ! -s "$path" ]; then
        mkdir -p "$ROM_GEN_DIR" || return 1
        python3 "$TESTS_DIR/roms/make-test-rom.py" --variant "$variant" --size "$size" \
            --legacy-blocks 2 "$path" >&2 || { h_err "make-test-rom.py failed for $spec"; return 1; }
    fi
    printf '%s\n' "$path"
}

# The test ROMs the loaded scenario rows use, made afresh (the generator may have changed)
# before the parallel boots start.
prepare_test_roms() {
    local m piece
    rm -f "$ROM_GEN_DIR"/*.rom
    for m in "${S_MACHINE[@]}"; do
        for piece in $m; do
            case $piece in
                card1rom=?*) ensure_test_rom "${piece#card1rom=}" >/dev/null || return 1 ;;
            esac
        done
    done
}

# rom_checks DIR CHECKS: host-side checks of what the guest's init reported about
# /run/vfio-early/roms (ROMFILE and ROMJSON lines); prints one reason per failure.
#   rom=SPEC   one clean capture of 01:00.0, byte-identical to the test ROM SPEC, named and
#              described (sidecar) right
#   shadow=BDF one shadow copy of BDF under shadow/, sidecar verdict shadow
#   noroms     nothing stored
rom_checks() {
    local dir=$1 checks=$2 c args=() kver path
    kver=$(kernel_version 2>/dev/null) || kver=""
    for c in $checks; do
        case $c in
            rom=*)
                path=$(ensure_test_rom "${c#rom=}") || { echo "test ROM ${c#rom=} unavailable"; return 1; }
                args+=(--rom "$path")
                ;;
            *) args+=("--$c") ;;
        esac
    done
    report_text "$dir" | python3 "$TESTS_DIR/roms/check-capture.py" --kernel "$kver" "${args[@]}"
}

# host_checks DIR CHECKS: `status ARGS...` checks the guest's `status --json` against the
# report (tests/qemu/check-status.py ARGS); anything else is rom_checks words.
host_checks() {
    local dir=$1 checks=$2
    case $checks in
        status*)
            # shellcheck disable=SC2086 # the arguments are words on purpose
            report_text "$dir" | python3 "$QEMU_DIR/check-status.py" ${checks#status}
            ;;
        *) rom_checks "$dir" "$checks" ;;
    esac
}

# read_scenarios FILE: loads the table into S_NAME, S_MACHINE, S_ARGS,
# S_PRELOAD, S_EXPECT, S_LOGS, S_IMAGE (optional 7th field, an IMAGES key,
# default "test"), S_CHECKS (optional 8th field: host_checks words). Further
# arguments are name globs selecting rows.
read_scenarios() {
    local file=$1 line name machine args preload expect logs image checks keep g
    shift
    S_NAME=() S_MACHINE=() S_ARGS=() S_PRELOAD=() S_EXPECT=() S_LOGS=() S_IMAGE=() S_CHECKS=()
    while IFS= read -r line || [ -n "$line" ]; do
        case $line in '#'* | '') continue ;; esac
        IFS='|' read -r name machine args preload expect logs image checks <<<"$line"
        name=$(trim "$name")
        [ -n "$name" ] || continue
        keep=$(($# == 0))
        for g in "$@"; do
            # shellcheck disable=SC2254 # the argument is a glob on purpose
            case $name in $g) keep=1 ;; esac
        done
        [ "$keep" -eq 1 ] || continue
        S_NAME+=("$name")
        S_MACHINE+=("$(trim "$machine")")
        S_ARGS+=("$(trim "$args")")
        S_PRELOAD+=("$(trim "$preload")")
        S_EXPECT+=("$(trim "$expect")")
        S_LOGS+=("$(trim "$logs")")
        image=$(trim "$image")
        S_IMAGE+=("${image:-test}")
        S_CHECKS+=("$(trim "$checks")")
    done <"$file"
}

trim() { sed 's/^[[:space:]]*//; s/[[:space:]]*$//' <<<"$1"; }

# Starts row K's boot in the background; sets RUN_PIDS[K].
start_row_boot() {
    local runs=$1 k=$2 img=${IMAGES[${S_IMAGE[$2]}]:-}
    if [ -z "$img" ]; then
        # An unknown image key leaves a boot dir without a report: the row fails.
        mkdir -p "$runs/${S_NAME[k]}"
        echo "no image for key ${S_IMAGE[k]}" >"$runs/${S_NAME[k]}/qemu.rc"
        true &
    else
        boot_scenario "$runs/${S_NAME[k]}" "${S_MACHINE[k]}" "${S_ARGS[k]}" "${S_PRELOAD[k]}" "$img" \
            >/dev/null 2>&1 </dev/null &
    fi
    RUN_PIDS[k]=$!
}

# Ends the boots run_scenarios started (each is its own process group).
stop_row_boots() {
    local p
    for p in "${RUN_PIDS[@]}"; do
        kill -- -"$p" 2>/dev/null || true
    done
}

# run_scenarios RUNS_DIR: boots every loaded row, JOBS at a time (default 2),
# and reports in table order: PASS/FAIL with reasons and the binder's timing.
# Sets PASSED and FAILED.
run_scenarios() {
    local runs=$1 n=${#S_NAME[@]} jobs=${JOBS:-2} i next reasons dir line status extra
    RUN_PIDS=()
    PASSED=0 FAILED=0
    mkdir -p "$runs"
    prepare_test_roms || h_err "making the test ROMs failed: rows using them will fail"
    # Each boot gets its own process group so an interrupt ends it whole.
    set -m
    trap 'stop_row_boots; exit 130' INT TERM
    next=0
    while [ "$next" -lt "$n" ] && [ "$next" -lt "$jobs" ]; do
        start_row_boot "$runs" "$next"
        next=$((next + 1))
    done
    for ((i = 0; i < n; i++)); do
        wait "${RUN_PIDS[i]}" 2>/dev/null || true
        if [ "$next" -lt "$n" ]; then
            start_row_boot "$runs" "$next"
            next=$((next + 1))
        fi
        dir="$runs/${S_NAME[i]}"
        status=0
        reasons=$(check_report "$dir" "${S_EXPECT[i]}" "${S_LOGS[i]}") || status=1
        # The 8th field: host-side checks of what the guest reported (a failed boot has none).
        if [ -n "${S_CHECKS[i]:-}" ] && [ -z "$(boot_problem "$dir")" ]; then
            extra=$(host_checks "$dir" "${S_CHECKS[i]}") || status=1
            reasons=$(printf '%s\n%s\n' "$reasons" "$extra" | sed '/^$/d')
        fi
        if [ "$status" -eq 0 ]; then
            PASSED=$((PASSED + 1))
            printf 'PASS %-20s %s%s\n' "${S_NAME[i]}" "$(timing_line "$dir")" "$(retry_note "$dir")"
        else
            FAILED=$((FAILED + 1))
            printf 'FAIL %-20s %s%s\n' "${S_NAME[i]}" "$(timing_line "$dir")" "$(retry_note "$dir")"
            while IFS= read -r line; do printf '       reason: %s\n' "$line"; done <<<"$reasons"
            report_klog "$dir" | sed 's/^/       log: /'
            line=$(report_drivers "$dir" | sed 's/^0000://' | tr ' \n' '= ')
            [ -z "$line" ] || printf '       devices: %s\n' "$line"
            printf '       see: %s/{report.txt,console.log,cmdline}\n' "$dir"
        fi
    done
    trap - INT TERM
    set +m
}
