#!/bin/bash
# SPDX-License-Identifier: MIT OR Apache-2.0
#
# Fetches the real ROMs of tests/roms/fixtures.lst from Debian's packages (apt-get download,
# dpkg-deb -x) into tests/.cache/roms/<package>/. Nothing is committed. Fails loudly (exit 1,
# one "FETCH-FAIL" line per problem) when a package or a listed file cannot be had: the tests
# must never skip a fixture silently.
#
#   tests/roms/fetch-fixtures.sh            prints "FIXTURES <dir>" last on success
# Environment: ROM_FIXTURES_DIR (default tests/.cache/roms), ROM_FIXTURES_LIST (default
# tests/roms/fixtures.lst).
set -u
ROMS_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
TESTS_DIR=$(dirname "$ROMS_DIR")
DEST=${ROM_FIXTURES_DIR:-$TESTS_DIR/.cache/roms}
LIST=${ROM_FIXTURES_LIST:-$ROMS_DIR/fixtures.lst}
DEBS=$DEST/debs
mkdir -p "$DEBS" || { echo "FETCH-FAIL cannot create $DEBS"; exit 1; }

fail=0
updated=0
# apt-get download writes to the current directory; as root it warns that the _apt user
# cannot reach it: harmless, filtered.
apt_download() { (cd "$DEBS" && apt-get download "$@" 2>&1 | grep -v "^W: Download is performed unsandboxed") ; }

# The .deb of PKG already here (any version), or empty.
deb_of() { find "$DEBS" -maxdepth 1 -name "${1}_*.deb" | sort | tail -n 1; }

# Sets FETCHED_DEB (not run in a subshell: `updated` must stick).
fetch_package() {
    local pkg=$1 ver=$2 deb got
    FETCHED_DEB=
    deb=$(deb_of "$pkg")
    if [ -n "$deb" ]; then
        FETCHED_DEB=$deb
        return 0
    fi
    # The reviewed version first; the mirror may have moved on (point releases replace
    # versions), then its candidate: the SHA256SUMS check says whether the bytes changed.
    if ! apt_download "$pkg=$ver" >&2; then
        if [ "$updated" -eq 0 ]; then
            echo "fetch: $pkg=$ver not downloadable: apt-get update, then again" >&2
            apt-get update -qq >&2 || echo "fetch: apt-get update failed" >&2
            updated=1
        fi
        if ! apt_download "$pkg=$ver" >&2; then
            echo "fetch: NOTE: $pkg $ver is gone from the mirror: taking its candidate" >&2
            apt_download "$pkg" >&2 || return 1
        fi
    fi
    deb=$(deb_of "$pkg")
    [ -n "$deb" ] || return 1
    got=$(dpkg-deb -f "$deb" Version)
    [ "$got" = "$ver" ] || echo "fetch: NOTE: $pkg is $got, the goldens were reviewed on $ver" >&2
    FETCHED_DEB=$deb
}

while read -r kind name arg; do
    case $kind in
        package)
            fetch_package "$name" "$arg" </dev/null || FETCHED_DEB=
            deb=$FETCHED_DEB
            if [ -z "$deb" ]; then
                echo "FETCH-FAIL package $name ($arg): apt-get download failed (no network or mirror?)"
                fail=1
                continue
            fi
            stamp="$DEST/$name/.from"
            if [ "$(cat "$stamp" 2>/dev/null)" != "$(basename "$deb")" ]; then
                rm -rf "${DEST:?}/$name"
                mkdir -p "$DEST/$name"
                if ! dpkg-deb -x "$deb" "$DEST/$name"; then
                    echo "FETCH-FAIL package $name: dpkg-deb -x $deb failed"
                    fail=1
                    continue
                fi
                basename "$deb" >"$stamp"
            fi
            echo "fetch: $name $(dpkg-deb -f "$deb" Version)" >&2
            ;;
        rom)
            if [ ! -f "$DEST/$name/$arg" ] || [ ! -s "$DEST/$name/$arg" ]; then
                echo "FETCH-FAIL rom $name $arg: not in the package (or empty)"
                fail=1
            fi
            ;;
        '#'* | '') ;;
        *) echo "FETCH-FAIL bad line in $LIST: $kind $name $arg"; fail=1 ;;
    esac
done <"$LIST"

[ "$fail" -eq 0 ] || exit 1
echo "FIXTURES $DEST"
