#!/bin/bash
# SPDX-License-Identifier: MIT OR Apache-2.0
#
# Expansion ROM capture across switch_root and an initramfs rebuild, with an
# image built by the real mkinitramfs (initramfs-tools) in the chroot of
# tests/generators/run.sh (run it first: this reuses its caches).
#   boot 1: the binder captures the card's ROM in the initramfs; the real root's
#           init runs `vfio-early rom persist`; the stored ROM must be
#           byte-identical to the card's romfile, with a valid sidecar;
#   then:   the stored capture goes into the chroot's /var/lib and the image is
#           rebuilt (the hook embeds `vfio-early rom known`);
#   boot 2: the binder does not read the ROM (the log says so) and the stored
#           file is untouched.
# Ends with "N passed, M failed"; exits non-zero if M > 0.
set -u
# shellcheck source=tests/generators/lib.sh
. "$(dirname "$0")/lib.sh"
trap 'gen_umount_all' EXIT
export PATH="$PATH:/usr/sbin:/sbin"

PASSED=0 FAILED=0
check() { # NAME CONDITION-RESULT DETAIL
    if [ "$2" = 0 ]; then
        PASSED=$((PASSED + 1)); printf 'PASS %-28s %s\n' "$1" "${3:-}"
    else
        FAILED=$((FAILED + 1)); printf 'FAIL %-28s %s\n' "$1" "${3:-}"
    fi
}
finish() { echo "$PASSED passed, $FAILED failed"; [ "$FAILED" -eq 0 ]; exit; }

ensure_host || exit 1
(cd "$REPO_DIR" && make -s static) >"$GEN_OUT/make-static.log" 2>&1 || { h_err "make static failed"; exit 1; }
gen_root_ensure || exit 1
gen_stage_install || exit 1
gen_install_test_pieces "$GEN_ROOT" || exit 1
gen_set_root_state "$GEN_ROOT" main || exit 1
gen_rootfs_ensure || exit 1
W="$GEN_OUT/rom-persist"
rm -rf "$W"
mkdir -p "$W"
ROM=$(ensure_test_rom valid) || exit 1
ROM_SHA=$(sha256sum "$ROM" | cut -d' ' -f1)
ROM_DIR=/var/lib/vfio-early/roms

# build IMAGE: mkinitramfs in the chroot as it stands now.
build() {
    gen_mount_root "$GEN_ROOT" || return 1
    gen_chroot "$GEN_ROOT" mkinitramfs -o /var/tmp/vfiotest-rom.img "$GEN_KVER" >"$1.log" 2>&1
    local rc=$?
    gen_umount_all
    [ "$rc" -eq 0 ] && mv "$GEN_ROOT/var/tmp/vfiotest-rom.img" "$1"
}

# boot DIR IMAGE: card 1 carries the ROM; the real root is a writable copy kept across boots.
boot() {
    machine_args "card2 card1rom=valid" || return 1
    # shellcheck disable=SC2054 # the commas are QEMU's option syntax
    boot_vm "$1" "$2" "$MACHINE_APPEND root=/dev/vda rw rootfstype=ext4 $GEN_LOG_ARGS vfio-early.devices=01:00.0 vfio-early.rom=01:00.0 test.rompersist=1" \
        "${MACHINE_QEMU[@]}" -m 1024 \
        -drive "file=$W/root.ext4,if=none,id=rootdisk,format=raw" \
        -device virtio-blk-pci,drive=rootdisk,bus=pcie.0,addr=06.0 >/dev/null 2>&1 </dev/null
}

has() { grep -qF -- "$2" "$1/report.txt" 2>/dev/null; }
on_vfio() { grep -qE '^REPORT 0000:01:00\.0 [^ ]+ [^ ]+ vfio-pci' "$1/report.txt" 2>/dev/null; }
store_line() { sed -n 's/^ROMSTORE //p' "$1/report.txt" 2>/dev/null | head -n 1; }

# ---- boot 1: capture and persist
cp "$GEN_ROOTFS" "$W/root.ext4"
rm -rf "$GEN_ROOT$ROM_DIR"
build "$W/image1.img" || { check build-1 1 "mkinitramfs failed (see $W/image1.img.log)"; finish; }
boot "$W/boot1" "$W/image1.img"
has "$W/boot1" REPORT-END; check boot-1-completes $? "$W/boot1/report.txt"
has "$W/boot1" "ROM captured:"; check boot-1-captures $? "log: $(grep -o 'vfio-early: 0000:01:00.0 \[1234:1111\]: ROM[^"]*' "$W/boot1/report.txt" | head -n 1)"
on_vfio "$W/boot1"; check boot-1-card-on-vfio $?
read -r sha1 name1 mtime1 <<<"$(store_line "$W/boot1")"
[ "${sha1:-}" = "$ROM_SHA" ]; check stored-rom-identical $? "stored ${name1:-nothing} sha256 ${sha1:-none}, romfile $ROM_SHA"

# The sidecar, read from the disk image on the host.
debugfs -R "rdump $ROM_DIR $W" "$W/root.ext4" >/dev/null 2>&1
side="$W/roms/${name1:-none}.json"
python3 - "$side" "$ROM_SHA" "$GEN_KVER" <<'EOF'
import json, sys
s = json.load(open(sys.argv[1]))
want = {"sha256": sys.argv[2], "bdf": "0000:01:00.0", "vendor": "1234", "device": "1111",
        "kernel": sys.argv[3], "verdict": "clean"}
bad = {k: s.get(k) for k, v in want.items() if s.get(k) != v}
bad.update({"report.ok": s["report"]["ok"]} if not s["report"]["ok"] else {})
if bad or s.get("time", 0) < 1_600_000_000 or s.get("size") != s["report"]["chain_end"]:
    sys.exit(f"sidecar differs: {bad}, time {s.get('time')}, size {s.get('size')}")
EOF
check sidecar-valid $? "$side"

# ---- rebuild: the chroot's /var/lib holds the capture, as on the real machine
mkdir -p "$GEN_ROOT$ROM_DIR"
cp "$W/roms/"* "$GEN_ROOT$ROM_DIR/" 2>/dev/null
build "$W/image2.img"
check rebuild $? "$W/image2.img.log"
rm -rf "$GEN_ROOT/var/lib/vfio-early"

# ---- boot 2: the image knows the capture
boot "$W/boot2" "$W/image2.img"
has "$W/boot2" REPORT-END; check boot-2-completes $? "$W/boot2/report.txt"
has "$W/boot2" "ROM not read: the initramfs knows a stored capture"; check boot-2-does-not-read $?
! has "$W/boot2" "ROM captured:"; check boot-2-captures-nothing $?
on_vfio "$W/boot2"; check boot-2-card-on-vfio $?
read -r sha2 name2 mtime2 <<<"$(store_line "$W/boot2")"
[ "${sha2:-}:${name2:-}:${mtime2:-}" = "$sha1:$name1:$mtime1" ]
check stored-rom-untouched $? "after boot 2: ${name2:-none} ${sha2:-none} mtime ${mtime2:-none} (boot 1: $mtime1)"
finish
