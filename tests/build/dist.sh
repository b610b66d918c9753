#!/bin/bash
# SPDX-License-Identifier: MIT OR Apache-2.0
#
# The source tarball a packager starts from: `make dist`, then, from the extracted tarball alone,
#   msrv      `cargo build --offline --locked` with an empty cargo home (nothing from a registry)
#             and exactly the toolchain `rust-version` in Cargo.toml names, installed by rustup;
#             when rustup cannot install it, "skipped" and why, then the same build with the
#             default toolchain ("offline")
# Ends with "N passed, M failed, K skipped".
set -u
repo=$(cd "$(dirname "$0")/../.." && pwd)
out="$repo/tests/out/build"
rm -rf "$out"
mkdir -p "$out"
passed=0 failed=0 skipped=0
line() { # PASS|FAIL|SKIP NAME DETAIL
    case $1 in PASS) passed=$((passed + 1)) ;; FAIL) failed=$((failed + 1)) ;; SKIP) skipped=$((skipped + 1)) ;; esac
    printf '%s %-8s %s\n' "$1" "$2" "$3"
}
finish() {
    echo "$passed passed, $failed failed, $skipped skipped"
    [ "$failed" -eq 0 ]
    exit
}

version=$(sed -n 's/^version = "\(.*\)"/\1/p' "$repo/Cargo.toml" | head -n 1)
msrv=$(sed -n 's/^rust-version = "\(.*\)"/\1/p' "$repo/Cargo.toml" | head -n 1)
if ! make -s -C "$repo" dist >"$out/dist.log" 2>&1; then
    line FAIL dist "make dist failed (see $out/dist.log)"
    finish
fi
tarball="$repo/target/dist/vfio-early-$version.tar.gz"
tar -C "$out" -xzf "$tarball" || { line FAIL dist "cannot extract $tarball"; finish; }
src="$out/vfio-early-$version"
n_crates=$(find "$src/vendor" -mindepth 1 -maxdepth 1 -type d | wc -l)
line PASS dist "$(stat -c %s "$tarball") bytes, $n_crates vendored crates"

# A cargo home with nothing in it: no registry index, no cached crates. The build from the
# tarball uses exactly the toolchain rust-version names; when rustup cannot provide it, that
# check is skipped (and says why) and the offline build runs with the default toolchain.
# (`make deb` builds the static musl binary from the same tarball, offline.)
mkdir -p "$out/cargo-home"
toolchain=""
if [ -z "$msrv" ]; then
    line FAIL msrv "Cargo.toml states no rust-version"
elif ! command -v rustup >/dev/null 2>&1; then
    line SKIP msrv "rustup not found: cannot install Rust $msrv here"
elif rustup toolchain list | grep -q "^$msrv[.-]" ||
    rustup toolchain install "$msrv" --profile minimal >"$out/msrv-install.log" 2>&1; then
    toolchain="+$msrv"
else
    line SKIP msrv "rustup could not install Rust $msrv (see $out/msrv-install.log)"
fi
# shellcheck disable=SC2086 # no word or one
if (cd "$src" && CARGO_HOME="$out/cargo-home" cargo $toolchain build --offline --locked --release -p vfio-early -p vfio-early-engine --target-dir "$out/t") >"$out/build.log" 2>&1; then
    what="$(rustc $toolchain --version) built $(stat -c %s "$out/t/release/vfio-early") bytes from the tarball alone, offline, empty CARGO_HOME"
    if [ -n "$toolchain" ]; then line PASS msrv "$what"; else line PASS offline "$what"; fi
else
    name=offline
    [ -z "$toolchain" ] || name=msrv
    line FAIL "$name" "see $out/build.log: $(grep -m 3 -E '^error' "$out/build.log" | tr '\n' ' ')"
fi
finish
