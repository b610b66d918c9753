#!/usr/bin/env python3
# SPDX-License-Identifier: MIT OR Apache-2.0
"""Makes PCI expansion ROM images for the tests (importable: see build()).

The valid ROM is what a real GPU ROM looks like, with nothing else in it:
  image 0: legacy x86, `55 AA`, initialization size, `retf` at offset 3 (a real entry point:
           SeaBIOS calls it), PCIR revision 3 at 0x20, checksum zero over the image;
  image 1: EFI (code type 3), EFI header fields valid (signature 0x0EF1, boot-service driver,
           x64, uncompressed, image offset inside the image), flagged last.
Both images carry the given vendor:device and class; the total is a multiple of 512.

  make-test-rom.py [--vendor 1234] [--device 1111] [--class 038000] [--size BYTES]
                   [--legacy-blocks N] [--variant NAME] OUT
  make-test-rom.py --list          the variants, one per line, with what each one is

--size is the total size of the valid chain (default 64 KiB; the EFI image takes what the
legacy image leaves). Variants that SeaBIOS survives when booted as a romfile: valid,
broken-chain (its first image is valid). Others are for the parser only: SeaBIOS executes
legacy images and a broken one can hang the guest in firmware.
"""

import argparse
import os
import struct
import sys

BLOCK = 512
PCIR_AT = 0x20  # legacy image: PCIR pointer, 4-byte aligned
EFI_PCIR_AT = 0x1C
EFI_IMAGE_AT = 0x40  # EFI image: where its PE image starts
NAME = b"vfio-early test ROM\0"


def pcir(vendor, device, klass, blocks, code_type, last, revision=3, length=0x1C):
    """A PCI data structure (PCI Firmware 3.0), 0x1C bytes."""
    return (
        b"PCIR"
        + struct.pack("<HHHHB", vendor, device, 0, length, revision)
        + struct.pack("<I", klass)[:3]
        + struct.pack("<HHBB", blocks, 0x0001, code_type, 0x80 if last else 0)
        + struct.pack("<HHH", blocks if code_type == 0 else 0, 0, 0)
    )


def legacy_image(vendor, device, klass, blocks, last=False, pcir_at=PCIR_AT, checksum=True):
    d = bytearray(blocks * BLOCK)
    d[0:2] = b"\x55\xAA"
    d[2] = blocks  # initialization size, 512-byte units
    d[3] = 0xCB  # retf: the init entry returns at once
    struct.pack_into("<H", d, 0x18, pcir_at)
    d[pcir_at : pcir_at + 0x1C] = pcir(vendor, device, klass, blocks, 0, last)
    d[0x60 : 0x60 + len(NAME)] = NAME
    if checksum:
        fix_checksum(d, blocks * BLOCK)
    return d


def fix_checksum(d, size, at=None):
    """Makes bytes 0..size sum to zero through byte `at` (default: the range's last byte)."""
    at = size - 1 if at is None else at
    d[at] = 0
    d[at] = (-sum(d[:size])) & 0xFF


def efi_image(vendor, device, klass, blocks, last=True, subsystem=11, machine=0x8664):
    d = bytearray(blocks * BLOCK)
    d[0:2] = b"\x55\xAA"
    struct.pack_into("<H", d, 0x02, blocks)  # initialization size (u16 for EFI images)
    struct.pack_into("<IHHH", d, 0x04, 0x0EF1, subsystem, machine, 0)
    struct.pack_into("<H", d, 0x16, EFI_IMAGE_AT)
    struct.pack_into("<H", d, 0x18, EFI_PCIR_AT)
    d[EFI_PCIR_AT : EFI_PCIR_AT + 0x1C] = pcir(vendor, device, klass, blocks, 3, last)
    d[EFI_IMAGE_AT : EFI_IMAGE_AT + 2] = b"MZ"  # where a PE image would start
    d[0x80 : 0x80 + len(NAME)] = NAME
    return d


def garbage(n, seed=1):
    """Deterministic bytes holding no `55 AA` pair (a xorshift stream, pairs broken up)."""
    out = bytearray(n)
    x = seed or 1
    for i in range(n):
        x ^= (x << 13) & 0xFFFFFFFF
        x ^= x >> 17
        x ^= (x << 5) & 0xFFFFFFFF
        out[i] = x & 0xFF
        if i and out[i - 1] == 0x55 and out[i] == 0xAA:
            out[i] = 0xAB
    return out


def valid(vendor, device, klass, size, legacy_blocks):
    if size % BLOCK or size < (legacy_blocks + 1) * BLOCK:
        raise ValueError(f"size {size}: a multiple of 512 holding {legacy_blocks + 1} blocks at least")
    efi_blocks = size // BLOCK - legacy_blocks
    if efi_blocks > 0xFFFF:
        raise ValueError("the EFI image is limited to 65535 blocks")
    return legacy_image(vendor, device, klass, legacy_blocks) + efi_image(vendor, device, klass, efi_blocks)


def set_pcir(d, image_at, field, fmt, value):
    """Patches one PCIR field of the image at image_at (fields: offsets from PCIR start)."""
    p = image_at + struct.unpack_from("<H", d, image_at + 0x18)[0]
    struct.pack_into(fmt, d, p + field, value)


def variants(vendor, device, klass, size, legacy_blocks):
    """name -> (what it is, bytes or a callable writing the file)."""
    lb = legacy_blocks
    L = lb * BLOCK

    def v():
        return valid(vendor, device, klass, size, lb)

    def patched(fn):
        d = v()
        fn(d)
        return d

    def misaligned():
        # PCIR at 0x1E: still found, not 4-byte aligned; checksum kept valid.
        d = legacy_image(vendor, device, klass, lb, pcir_at=0x1E)
        return d + efi_image(vendor, device, klass, size // BLOCK - lb)

    def x86_size():
        # Initialization size one block smaller than the PCIR length (as in a resized shadow
        # copy), the checksum right over that smaller range.
        if lb < 2:
            raise ValueError("x86-size needs --legacy-blocks 2 or more")
        d = v()
        d[2] = lb - 1
        fix_checksum(d, L - BLOCK)
        return d

    def no_efi():
        return legacy_image(vendor, device, klass, lb, last=True)

    def efi_header():
        return legacy_image(vendor, device, klass, lb) + efi_image(
            vendor, device, klass, size // BLOCK - lb, subsystem=10, machine=0x1234
        )

    def vendors():
        return legacy_image(vendor, device, klass, lb) + efi_image(
            (vendor + 1) & 0xFFFF, device, klass, size // BLOCK - lb
        )

    def no_signature_later():
        # First image valid, not last; where the second should start: garbage.
        return legacy_image(vendor, device, klass, lb) + garbage(BLOCK, seed=7)

    def pcir_past_image():
        # One legacy image of one block, flagged last, whose PCIR starts 0x10 bytes before the
        # image's end: its last 0x0C bytes (class high byte, length, indicator...) lie in the
        # trailing data. The PCI Firmware spec puts the PCIR inside its image.
        d = bytearray(BLOCK + 64)
        d[0:4] = b"\x55\xAA\x01\xCB"
        struct.pack_into("<H", d, 0x18, BLOCK - 0x10)
        d[BLOCK - 0x10 : BLOCK + 0x0C] = pcir(vendor, device, klass, 1, 0, True)
        fix_checksum(d, BLOCK, at=0x100)
        return d

    def slow_clean(path):
        # 1 MiB of 64-byte image headers (55 AA, init size 255 blocks, PCIR at +0x20, one block
        # long, never last): from every one of them a 16-image chain to walk, checksums included.
        chunk = bytearray(64)
        chunk[0:3] = b"\x55\xAA\xFF"
        struct.pack_into("<H", chunk, 0x18, 0x20)
        chunk[0x20:0x3C] = pcir(vendor, device, klass, 1, 0, False)
        with open(path, "wb") as f:
            f.write(bytes(chunk) * ((1 << 20) // 64))

    def large(path):
        with open(path, "wb") as f:
            f.write(v())
            f.truncate((16 << 20) + BLOCK)

    def huge(path):
        with open(path, "wb") as f:
            f.write(v())
            f.truncate((2 << 30) + BLOCK)  # sparse: no disk used

    def dump():
        # An NVFlash/GPU-Z style dump: header with decoy `55 AA` bytes (one a whole image
        # header whose chain breaks), the ROM, then vendor data with `55 AA` in it.
        near_miss = legacy_image(vendor, device, klass, 1)  # valid, not last; then junk
        head = b"NVFLASH dump\0\x55\xAA decoy\x55\xAA\x00\x00" + bytes(64) + near_miss + garbage(300, 3)
        tail = b"NVIDIA data \x55\xAA\x01\x02" + garbage(777, 5)
        return bytes(head) + bytes(v()) + tail

    return {
        "valid": ("legacy x86 + EFI, both IDs, last flag on the EFI image (bootable)", v),
        "broken-chain": (
            "first image valid and not flagged last, then garbage: SeaBIOS runs image 0 and survives",
            no_signature_later,
        ),
        "no-last": ("valid, but the EFI image lacks the last-image flag", lambda: patched(
            lambda d: set_pcir(d, L, 0x15, "<B", 0))),
        "empty": ("0 bytes", lambda: b""),
        "all-ones": ("every byte 0xFF", lambda: b"\xff" * size),
        "no-signature": ("no 55 AA at offset 0", lambda: bytes(BLOCK)),
        "no-signature-later": ("second image without 55 AA", no_signature_later),
        "pcir-pointer-zero": ("PCIR pointer 0", lambda: patched(lambda d: struct.pack_into("<H", d, 0x18, 0))),
        "pcir-pointer-oob": ("PCIR pointer past the end", lambda: patched(
            lambda d: struct.pack_into("<H", d, 0x18, 0xFFF0))),
        "pcir-signature": ("no PCIR signature where the pointer says", lambda: patched(
            lambda d: d.__setitem__(slice(PCIR_AT, PCIR_AT + 4), b"PCIX"))),
        "pcir-length": ("PCIR structure length 0x10", lambda: patched(lambda d: set_pcir(d, 0, 0x0A, "<H", 0x10))),
        "zero-length": ("PCIR image length 0 in image 1", lambda: patched(lambda d: set_pcir(d, L, 0x10, "<H", 0))),
        "past-end": ("truncated inside image 1", lambda: v()[: L + BLOCK // 2]),
        "huge": ("over 2 GiB (sparse file)", huge),
        "misaligned-pcir": ("PCIR pointer 0x1E", misaligned),
        "checksum": ("x86 checksum off by one", lambda: patched(lambda d: d.__setitem__(0x60, d[0x60] ^ 1))),
        "x86-size": ("initialization size one block smaller than the PCIR length", x86_size),
        "no-efi": ("display class, legacy image only", no_efi),
        "efi-header": ("EFI subsystem 10 and machine 0x1234", efi_header),
        "vendors": ("the EFI image names another vendor", vendors),
        "trailing-blank": ("512 bytes of 0xFF after the chain", lambda: v() + b"\xff" * BLOCK),
        "trailing-data": ("vendor data after the chain", lambda: v() + b"NVIDIA" + garbage(506, 9)),
        "large": ("valid chain padded with zeros to 16 MiB + 512", large),
        "pcir-past-image": ("one image whose PCIR runs 0x0C bytes past the image's end, then 64 bytes", pcir_past_image),
        "slow-clean": ("1 MiB of image headers each starting a 16-image chain (rom clean's worst case)", slow_clean),
        "dump": ("header with decoys + the valid ROM + trailing data (rom clean gives `valid`)", dump),
    }


def build(path, variant="valid", vendor=0x1234, device=0x1111, klass=0x038000, size=64 * 1024, legacy_blocks=2):
    """Writes the variant to path (atomically) and returns its description."""
    table = variants(vendor, device, klass, size, legacy_blocks)
    if variant not in table:
        raise KeyError(f"unknown variant {variant!r}; known: {', '.join(table)}")
    what, make = table[variant]
    tmp = f"{path}.tmp.{os.getpid()}"
    try:
        if make.__code__.co_argcount == 1:
            make(tmp)
        else:
            with open(tmp, "wb") as f:
                f.write(make())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return what


def main():
    hexint = lambda s: int(s, 16)
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--vendor", type=hexint, default=0x1234)
    ap.add_argument("--device", type=hexint, default=0x1111)
    ap.add_argument("--class", dest="klass", type=hexint, default=0x038000, help="PCI class, hex (bochs-display: 038000)")
    ap.add_argument("--size", type=lambda s: int(s, 0), default=64 * 1024, help="valid chain size, a multiple of 512")
    ap.add_argument("--legacy-blocks", type=int, default=2, help="legacy image size in 512-byte blocks (1-255)")
    ap.add_argument("--variant", default="valid")
    ap.add_argument("--list", action="store_true")
    ap.add_argument("out", nargs="?")
    a = ap.parse_args()
    if a.list:
        for name, (what, _) in variants(a.vendor, a.device, a.klass, a.size, a.legacy_blocks).items():
            print(f"{name:20} {what}")
        return 0
    if not a.out:
        ap.error("OUT is required")
    if not 1 <= a.legacy_blocks <= 255:
        ap.error("--legacy-blocks: 1 to 255")
    try:
        build(a.out, a.variant, a.vendor, a.device, a.klass, a.size, a.legacy_blocks)
    except (KeyError, ValueError) as e:
        print(f"make-test-rom: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
