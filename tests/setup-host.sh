#!/bin/bash
# SPDX-License-Identifier: MIT OR Apache-2.0
#
# Prepares a Debian bookworm host for the tests: Debian packages (QEMU,
# busybox-static, kmod, cpio, strace, time, gzip, make, binutils; dpkg-dev,
# debhelper and lintian for the .deb; git for `make dist`; dash for the hooks;
# pciutils and pci.ids: lspci for the status benchmark, names in the QEMU image; zstd: check
# reads zstd-compressed initramfs images through it),
# the musl Rust target, rustfmt and clippy, nightly with rust-src (the
# size-tuned build, measured by tests/size-budget.sh), cargo-fuzz (crates.io),
# and the Debian kernel linux-image-amd64 depends on, downloaded and extracted
# (not installed) into tests/.cache/kernel/ with its modules.dep. The suites
# that need more install it themselves from Debian's packages: debootstrap and
# e2fsprogs (tests/generators, tests/packaging), makepkg,
# pacman-package-manager, rpm, fakeroot, libarchive-tools and zstd
# (tests/packaging/arch-rpm.sh). Idempotent: a second run changes nothing.
#
#   tests/setup-host.sh          install what is missing (needs root)
#   tests/setup-host.sh --check  only verify; exit 1 naming what is missing
set -eu

# depmod and modprobe live in sbin, which a non-root PATH may lack.
export PATH="$PATH:/usr/sbin:/sbin"

TESTS_DIR=$(cd "$(dirname "$0")" && pwd)
CACHE_DIR="$TESTS_DIR/.cache"
KERNEL_DIR="$CACHE_DIR/kernel"
# The stamp names the kernel package extracted in KERNEL_DIR; a different
# package version means a fresh extraction.
KERNEL_STAMP="$KERNEL_DIR/.package"
MUSL_TARGET=x86_64-unknown-linux-musl

# Debian packages and one command each must provide (checked after install,
# so a package that installs without its command still fails loudly).
# strace and time serve the benchmark; make and binutils (readelf) the static
# build and its size check in tests/run-all.sh.
PACKAGES="qemu-system-x86 busybox-static kmod cpio strace time gzip make binutils dpkg-dev debhelper lintian git dash pciutils pci.ids zstd"
COMMANDS="qemu-system-x86_64 busybox kmod modprobe depmod cpio strace /usr/bin/time gzip ldd dpkg-deb make readelf dpkg-buildpackage dh lintian git dash lspci zstd"
# rustup components tests/run-all.sh uses (fmt and clippy checks).
RUST_COMPONENTS="rustfmt clippy"

die() {
    printf 'setup-host: ERROR: %s\n' "$*" >&2
    exit 1
}
say() { printf 'setup-host: %s\n' "$*"; }

check_only=0
case "${1:-}" in
    --check) check_only=1 ;;
    "") ;;
    *) die "usage: $0 [--check]" ;;
esac

missing_packages() {
    local p
    for p in $PACKAGES; do
        # "install ok installed" is the only state in which the files are there.
        if [ "$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null)" != "install ok installed" ]; then
            printf '%s ' "$p"
        fi
    done
}

missing_commands() {
    local c
    for c in $COMMANDS; do
        command -v "$c" >/dev/null 2>&1 || printf '%s ' "$c"
    done
    # status's names (the QEMU image carries the database).
    [ -f /usr/share/misc/pci.ids ] || printf '%s ' /usr/share/misc/pci.ids
    # busybox-static must be the static one: it runs inside the guest alone.
    if command -v busybox >/dev/null 2>&1 && ldd "$(command -v busybox)" >/dev/null 2>&1; then
        printf 'busybox(static) '
    fi
}

have_musl_target() {
    command -v rustup >/dev/null 2>&1 &&
        rustup target list --installed 2>/dev/null | grep -qx "$MUSL_TARGET"
}

missing_components() {
    local c installed
    installed=$(rustup component list --installed 2>/dev/null)
    for c in $RUST_COMPONENTS; do
        grep -q "^$c-" <<<"$installed" || printf '%s ' "$c"
    done
}

# The package linux-image-amd64 depends on, e.g. linux-image-6.1.0-56-amd64.
kernel_package() {
    apt-cache depends linux-image-amd64 2>/dev/null |
        awk '$1 == "Depends:" && $2 ~ /^linux-image-[0-9]/ { print $2; exit }'
}

kernel_extracted() {
    # Usable = stamp present, exactly one vmlinuz and one modules tree.
    [ -f "$KERNEL_STAMP" ] || return 1
    local n_vmlinuz n_mod
    n_vmlinuz=$(find "$KERNEL_DIR/boot" -maxdepth 1 -name 'vmlinuz-*' 2>/dev/null | wc -l)
    n_mod=$(find "$KERNEL_DIR/lib/modules" -mindepth 1 -maxdepth 1 -type d 2>/dev/null | wc -l)
    [ "$n_vmlinuz" -eq 1 ] && [ "$n_mod" -eq 1 ] &&
        [ -s "$(find "$KERNEL_DIR/lib/modules" -mindepth 2 -maxdepth 2 -name modules.dep | head -n1)" ]
}

report_state() {
    local bad=0 mp mc mr
    mp=$(missing_packages)
    mc=$(missing_commands)
    if [ -n "$mp" ]; then say "missing packages: $mp"; bad=1; fi
    if [ -n "$mc" ]; then say "missing commands: $mc"; bad=1; fi
    if ! have_musl_target; then say "missing rust target: $MUSL_TARGET"; bad=1; fi
    mr=$(missing_components)
    if [ -n "$mr" ]; then say "missing rustup components: $mr"; bad=1; fi
    if ! kernel_extracted; then say "missing extracted kernel in $KERNEL_DIR"; bad=1; fi
    return "$bad"
}

if [ "$check_only" -eq 1 ]; then
    if report_state; then
        say "host ready (kernel: $(cat "$KERNEL_STAMP"))"
        exit 0
    fi
    say "run as root: $0"
    exit 1
fi

if [ "$(id -u)" -ne 0 ]; then
    # Nothing can be installed, but a ready host is fine.
    report_state >&2 || die "must run as root to install what is missing"
    say "host ready, not root: nothing updated (kernel: $(cat "$KERNEL_STAMP"))"
    exit 0
fi
command -v apt-get >/dev/null 2>&1 || die "apt-get not found: this script targets Debian bookworm"

export DEBIAN_FRONTEND=noninteractive

updated=0
apt_update() {
    [ "$updated" -eq 0 ] || return 0
    say "apt-get update"
    apt-get update -q >/dev/null || die "apt-get update failed"
    updated=1
}

# Refresh package lists only when something must come from the mirror; the
# kernel package name is always looked up, so lists must exist at least once.
mp=$(missing_packages)
if [ -n "$mp" ] || [ -z "$(kernel_package)" ]; then
    apt_update
fi
if [ -n "$mp" ]; then
    say "installing: $mp"
    # shellcheck disable=SC2086 # word splitting of the package list is wanted
    apt-get install -y -q --no-install-recommends $mp >/dev/null ||
        die "apt-get install failed for: $mp"
fi
mc=$(missing_commands)
[ -z "$mc" ] || die "still missing after install: $mc"

if ! have_musl_target; then
    command -v rustup >/dev/null 2>&1 || die "rustup not found: install the Rust toolchain first"
    say "rustup target add $MUSL_TARGET"
    rustup target add "$MUSL_TARGET" || die "rustup target add $MUSL_TARGET failed"
fi
have_musl_target || die "rust target $MUSL_TARGET still not installed"
mr=$(missing_components)
if [ -n "$mr" ]; then
    say "rustup component add $mr"
    # shellcheck disable=SC2086 # word splitting of the component list is wanted
    rustup component add $mr || die "rustup component add $mr failed"
fi

# `make small` (the opt-in size-tuned binary) rebuilds std with nightly cargo: it needs the
# nightly toolchain's rust-src and its musl target.
if ! rustc +nightly --version >/dev/null 2>&1; then
    say "rustup toolchain install nightly --profile minimal"
    rustup toolchain install nightly --profile minimal || die "rustup toolchain install nightly failed"
fi
nightly_sysroot=$(rustc +nightly --print sysroot) || die "rustc +nightly does not run"
if [ ! -d "$nightly_sysroot/lib/rustlib/src/rust/library" ]; then
    say "rustup component add rust-src --toolchain nightly"
    rustup component add rust-src --toolchain nightly || die "rustup component add rust-src --toolchain nightly failed"
fi
if [ ! -d "$nightly_sysroot/lib/rustlib/$MUSL_TARGET" ]; then
    say "rustup target add $MUSL_TARGET --toolchain nightly"
    rustup target add "$MUSL_TARGET" --toolchain nightly || die "rustup target add $MUSL_TARGET --toolchain nightly failed"
fi

# The ROM parser's fuzzer (tests/roms/fuzz.sh), from crates.io.
if ! command -v cargo-fuzz >/dev/null 2>&1; then
    say "cargo install --locked cargo-fuzz"
    cargo install --locked cargo-fuzz || die "cargo install cargo-fuzz failed"
fi

# Sets pkg, ver and want (the kernel package and version to extract).
resolve_kernel() {
    pkg=$(kernel_package)
    [ -n "$pkg" ] || die "cannot resolve the package linux-image-amd64 depends on"
    ver=$(apt-cache policy "$pkg" | awk '$1 == "Candidate:" { print $2 }')
    if [ -z "$ver" ] || [ "$ver" = "(none)" ]; then
        die "no candidate version for $pkg"
    fi
    want="$pkg $ver"
}

kernel_current() { kernel_extracted && [ "$(cat "$KERNEL_STAMP")" = "$want" ]; }

resolve_kernel
if ! kernel_current && [ "$updated" -eq 0 ]; then
    # About to download: make sure the lists name a version the mirror still has.
    apt_update
    resolve_kernel
fi
if kernel_current; then
    say "kernel already extracted: $want"
else
    deb_dir="$CACHE_DIR/debs"
    mkdir -p "$deb_dir"
    # apt-get download writes into the current directory; its output (a
    # warning about the _apt sandbox user among it) is shown only on failure.
    deb=$(find "$deb_dir" -maxdepth 1 -name "${pkg}_*.deb" | head -n1)
    if [ -z "$deb" ] || ! dpkg-deb -f "$deb" Version | grep -qxF "$ver"; then
        rm -f "$deb_dir/${pkg}_"*.deb
        say "downloading $pkg $ver"
        if ! out=$(cd "$deb_dir" && apt-get download -q "$pkg=$ver" 2>&1); then
            printf '%s\n' "$out" >&2
            die "apt-get download $pkg=$ver failed"
        fi
        deb=$(find "$deb_dir" -maxdepth 1 -name "${pkg}_*.deb" | head -n1)
        [ -n "$deb" ] || die "download of $pkg produced no .deb in $deb_dir"
    fi
    say "extracting $deb into $KERNEL_DIR"
    # A fresh tree: a stale second version would make the kernel ambiguous.
    rm -rf "$KERNEL_DIR"
    mkdir -p "$KERNEL_DIR"
    dpkg-deb -x "$deb" "$KERNEL_DIR" || die "dpkg-deb -x $deb failed"
    # The package ships no modules.dep (its postinst makes it): make it here so
    # modprobe -d can resolve dependencies in the extracted tree.
    kver=$(basename "$(find "$KERNEL_DIR/lib/modules" -mindepth 1 -maxdepth 1 -type d | head -n1)")
    depmod -b "$KERNEL_DIR" "$kver" || die "depmod -b $KERNEL_DIR $kver failed"
    printf '%s\n' "$want" >"$KERNEL_STAMP"
    kernel_extracted || die "extracted tree in $KERNEL_DIR lacks boot/vmlinuz-* or lib/modules/*"
fi

report_state || die "host still not ready"
say "host ready (kernel: $want)"
