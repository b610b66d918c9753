#!/usr/bin/env python3
# SPDX-License-Identifier: MIT OR Apache-2.0
"""The ROM checks that need no QEMU, through the real binary's CLI. One line per check:
`PASS name` or `FAIL name: reason` (run.sh counts them).

  checks.py --bin VFIO_EARLY --fixtures DIR --out DIR [--update-goldens] [--only GROUP...]

Groups:
  fixtures   every fixture of fixtures.lst is present, with the bytes the goldens were reviewed on
  goldens    `rom inspect FILE --json` equals golden/<package>/<file>.json, exit code agrees,
             and every golden field agrees with an independent reading of the bytes (crosscheck)
  crafted    every error and warning kind of rom.rs (read from its source) is produced by a
             crafted input (make-test-rom.py) and asserted through --json
  clean      decoy header + fixture + trailing junk -> `rom clean` gives back exactly the fixture,
             for every valid fixture and the generated ROM; no-chain input and existing output
  device     `rom inspect BDF --root FAKE` on a fake sysfs tree whose `rom` is a FIFO served
             like the kernel's (write 1, read, write 0): IDs warning, state restored, refusal
             while a driver holds the device
  tooling    `rom persist`, `rom known`, `rom libvirt` on a fake root
  defects    defects found in rom.rs, each with its fix (they fail until it is applied)
--update-goldens rewrites golden/ (and SHA256SUMS) from the current binary: review every
changed file by hand against the bytes before committing it (golden/REVIEW.md).
"""

import argparse
import hashlib
import importlib.util
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree (make-test-rom.py is imported)
HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
GOLDEN = os.path.join(HERE, "golden")
ROM_RS = os.path.join(REPO, "binder", "core", "src", "rom.rs")

spec = importlib.util.spec_from_file_location("make_test_rom", os.path.join(HERE, "make-test-rom.py"))
mtr = importlib.util.module_from_spec(spec)
spec.loader.exec_module(mtr)

RESULTS = []


def result(name, ok, why=""):
    RESULTS.append(ok)
    if ok:
        print(f"PASS {name}", flush=True)
    else:
        print(f"FAIL {name}: {why}", flush=True)


def run(bin_, *args, timeout=120):
    p = subprocess.run([bin_, *args], capture_output=True, timeout=timeout)
    return p.returncode, p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace")


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


# ------------------------------------------------------------------ findings: message -> kind
# The Display texts of rom::Finding; each regex captures the variant's fields.
KINDS = {
    "Empty": r"^empty: no ROM data",
    "NoSignature": r"^no 55 AA signature at offset (0x[0-9a-f]+)$",
    "PcirPointer": r"^image (\d+): PCIR pointer (0x[0-9a-f]+) is zero or out of bounds$",
    "PcirSignature": r"^image (\d+): no PCIR signature where the pointer says$",
    "PcirLength": r"^image (\d+): PCIR structure length (\d+) is too short$",
    "ZeroLength": r"^image (\d+): image length is zero$",
    "PastEnd": r"^image (\d+): ends at (0x[0-9a-f]+), past the end of the data \((0x[0-9a-f]+)\): truncated$",
    "NoLastImage": r"^the chain of (\d+) images has no last-image flag$",
    "Huge": r"^(\d+) bytes: more than 16 MiB, not a ROM$",
    "AllOnes": r"^all bytes are 0xFF",
    "MisalignedPcir": r"^image (\d+): PCIR pointer (0x[0-9a-f]+) is not 4-byte aligned$",
    "Checksum": r"^image (\d+): x86 checksum is not zero$",
    "X86Size": r"^image (\d+): x86 size (\d+) differs from the PCIR length (\d+)",
    "Ids": r"^image (\d+): IDs ([0-9a-f]{4}):([0-9a-f]{4}) differ from the device's ([0-9a-f]{4}):([0-9a-f]{4})$",
    "NoEfiImage": r"^a display ROM without an EFI image",
    "EfiHeader": r"^image (\d+): EFI header fields are not valid$",
    "Trailing": r"^(\d+) bytes of (padding|trailing data) after the last image$",
    "Vendors": r"^the images name several vendors$",
}


def kind_of(msg):
    """(kind, fields) of a finding message; fields as strings; ("?", msg) if unknown."""
    for kind, rx in KINDS.items():
        m = re.match(rx, msg)
        if m:
            return kind, m.groups()
    return "?", (msg,)


def findings(report):
    """[(severity, kind, fields)] of an inspect --json report."""
    out = []
    for sev in ("errors", "warnings"):
        for msg in report.get(sev, []):
            k, f = kind_of(msg)
            out.append((sev[:-1], k, f))
    return out


def rom_rs_kinds():
    """The variants of rom::Finding and which are errors, read from rom.rs itself."""
    src = open(ROM_RS).read()
    body = re.search(r"pub enum Finding \{(.*?)\n\}", src, re.S).group(1)
    kinds = re.findall(r"^    ([A-Z][A-Za-z0-9]*)\b", body, re.M)
    is_err = re.search(r"fn is_error\(&self\) -> bool \{(.*?)\n    \}", src, re.S).group(1)
    errors = set(re.findall(r"Finding::([A-Z][A-Za-z0-9]*)", is_err))
    return kinds, errors


# ------------------------------------------------------------------ independent reading
def u8(d, o):
    return d[o] if 0 <= o < len(d) else None


def u16(d, o):
    return struct.unpack_from("<H", d, o)[0] if 0 <= o and o + 2 <= len(d) else None


def u32(d, o):
    return struct.unpack_from("<I", d, o)[0] if 0 <= o and o + 4 <= len(d) else None


def reference(d):
    """What the bytes say, read with struct from the PCI Firmware spec's layout (see
    FIELD-NOTES "Expansion ROMs"): images, chain end and finding kinds. Written apart from
    rom.rs on purpose: goldens are checked against it, not only against themselves."""
    images, fs, chain_end = [], [], None
    n_ = len(d)
    if n_ == 0:
        return images, None, [("error", "Empty", ())]
    if n_ > (16 << 20):
        return images, None, [("error", "Huge", (str(n_),))]
    if d.count(0xFF) == n_:
        return images, None, [("error", "AllOnes", ())]
    off, done = 0, False
    for n in range(16):
        if n > 0 and off >= n_:
            break
        if d[off : off + 2] != b"\x55\xAA":
            fs.append(("error", "NoSignature", (hex(off),)))
            done = True
            break
        ptr = u16(d, off + 0x18) or 0
        p = off + ptr
        if ptr == 0 or p + 0x18 > n_:
            fs.append(("error", "PcirPointer", (str(n), hex(ptr))))
            done = True
            break
        if d[p : p + 4] != b"PCIR":
            fs.append(("error", "PcirSignature", (str(n),)))
            done = True
            break
        if ptr % 4:
            fs.append(("warning", "MisalignedPcir", (str(n), hex(ptr))))
        plen = u16(d, p + 0x0A)
        if plen < 0x18:
            fs.append(("error", "PcirLength", (str(n), str(plen))))
            done = True
            break
        length = u16(d, p + 0x10) * 512
        if length == 0:
            fs.append(("error", "ZeroLength", (str(n),)))
            done = True
            break
        rev, ctype = d[p + 0x0C], d[p + 0x14]
        img = {
            "offset": off,
            "pcir_offset": p,
            "vendor": f"{u16(d, p + 4):04x}",
            "device": f"{u16(d, p + 6):04x}",
            "pcir_length": plen,
            "pcir_revision": rev,
            "class": f"0x{d[p + 0x0D] | d[p + 0x0E] << 8 | d[p + 0x0F] << 16:06x}",
            "length": length,
            "code_revision": u16(d, p + 0x12),
            "code_type_value": ctype,
            "code_type": {0: "x86", 1: "open-firmware", 2: "pa-risc", 3: "efi"}.get(ctype, "unknown"),
            "last": bool(d[p + 0x15] & 0x80),
        }
        dl = []
        lp = u16(d, p + 8)
        if rev >= 3 and lp:
            at = p + lp
            while len(dl) < 16 and (u16(d, at) or 0) != 0:
                dl.append(f"{u16(d, at):04x}")
                at += 2
        img["device_list"] = dl
        if ctype == 0:
            size = d[off + 2] * 512
            img["x86_size"] = size
            img["x86_checksum_ok"] = size > 0 and off + size <= n_ and sum(d[off : off + size]) % 256 == 0
        if ctype == 3:
            img["efi"] = {
                "signature": hex(u32(d, off + 4)),
                "subsystem": u16(d, off + 8),
                "machine": f"0x{u16(d, off + 0x0A):04x}",
                "compression": u16(d, off + 0x0C),
                "image_offset": hex(u16(d, off + 0x16)),
            }
        images.append(img)
        end = off + length
        if end > n_:
            fs.append(("error", "PastEnd", (str(n), hex(end), hex(n_))))
            done = True
            break
        if img["last"]:
            chain_end = end
            done = True
            break
        off = end
    if not done:
        fs.append(("error", "NoLastImage", (str(len(images)),)))
    for n, img in enumerate(images):
        if img.get("x86_checksum_ok") is False:
            fs.append(("warning", "Checksum", (str(n),)))
        if "x86_size" in img and img["x86_size"] != img["length"]:
            fs.append(("warning", "X86Size", (str(n), str(img["x86_size"]), str(img["length"]))))
        e = img.get("efi")
        if e and not (
            e["signature"] == "0xef1"
            and e["subsystem"] in (11, 12)
            and e["machine"] in ("0x014c", "0x8664", "0x0ebc", "0xaa64", "0x5064")
            and e["compression"] <= 1
            and int(e["image_offset"], 16) < img["length"]
        ):
            fs.append(("warning", "EfiHeader", (str(n),)))
    if any(i["class"].startswith("0x03") for i in images) and not any(i["code_type_value"] == 3 for i in images):
        fs.append(("warning", "NoEfiImage", ()))
    if any(i["vendor"] != images[0]["vendor"] for i in images):
        fs.append(("warning", "Vendors", ()))
    if chain_end is not None and chain_end < n_:
        rest = d[chain_end:]
        blank = rest.count(0xFF) == len(rest) or rest.count(0) == len(rest)
        fs.append(("warning", "Trailing", (str(len(rest)), "padding" if blank else "trailing data")))
    return images, chain_end, fs


def crosscheck(d, golden):
    """Differences between the golden report and an independent reading of the bytes."""
    probs = []
    images, chain_end, fs = reference(d)
    if golden.get("size") != len(d):
        probs.append(f"size {golden.get('size')} != {len(d)}")
    if golden.get("chain_end") != chain_end:
        probs.append(f"chain_end {golden.get('chain_end')} != {chain_end}")
    want_ok = not any(s == "error" for s, _, _ in fs)
    if golden.get("ok") != want_ok:
        probs.append(f"ok {golden.get('ok')} != {want_ok}")
    gi = golden.get("images", [])
    if len(gi) != len(images):
        probs.append(f"{len(gi)} images != {len(images)}")
    for n, (g, r) in enumerate(zip(gi, images)):
        for k, v in r.items():
            if g.get(k) != v:
                probs.append(f"image {n} {k}: golden {g.get(k)!r}, bytes {v!r}")
        extra = set(g) - set(r)
        if extra:
            probs.append(f"image {n}: golden has fields the bytes do not explain: {sorted(extra)}")
    got = sorted(findings(golden))
    want = sorted(fs)
    if got != want:
        probs.append(f"findings {got} != bytes say {want}")
    return probs


# ------------------------------------------------------------------ fixtures and goldens
def read_list():
    pkgs, roms = {}, []
    for line in open(os.path.join(HERE, "fixtures.lst")):
        f = line.split()
        if not f or f[0].startswith("#"):
            continue
        if f[0] == "package":
            pkgs[f[1]] = f[2]
        elif f[0] == "rom":
            roms.append((f[1], f[2]))
    return pkgs, roms


def golden_path(pkg, rel):
    return os.path.join(GOLDEN, pkg, os.path.basename(rel) + ".json")


def read_sums():
    sums = {}
    path = os.path.join(GOLDEN, "SHA256SUMS")
    if os.path.exists(path):
        for line in open(path):
            h, name = line.split(None, 1)
            sums[name.strip()] = h
    return sums


def check_fixtures(a, roms):
    sums = read_sums()
    for pkg, rel in roms:
        path = os.path.join(a.fixtures, pkg, rel)
        name = f"fixture {pkg}/{os.path.basename(rel)}"
        if not os.path.isfile(path):
            result(name, False, f"{path} missing: the fetch failed (run tests/roms/fetch-fixtures.sh)")
            continue
        h = sha256(path)
        want = sums.get(f"{pkg}/{rel}")
        if a.update_goldens:
            continue
        if want is None:
            result(name, False, "no reviewed sha256 in golden/SHA256SUMS")
        elif h != want:
            ver = open(os.path.join(a.fixtures, pkg, ".from")).read().strip()
            result(name, False, f"bytes differ from the reviewed ones ({ver}): review and --update-goldens")
        else:
            result(name, True)


def check_goldens(a, roms):
    sums = {}
    for pkg, rel in roms:
        path = os.path.join(a.fixtures, pkg, rel)
        name = f"golden {pkg}/{os.path.basename(rel)}"
        if not os.path.isfile(path):
            result(name, False, "fixture missing")
            continue
        rc, out, err = run(a.bin, "rom", "inspect", path, "--json")
        gp = golden_path(pkg, rel)
        if a.update_goldens:
            os.makedirs(os.path.dirname(gp), exist_ok=True)
            with open(gp, "w") as f:
                f.write(out)
            sums[f"{pkg}/{rel}"] = sha256(path)
            print(f"UPDATED {gp}")
            continue
        probs = []
        if not os.path.exists(gp):
            result(name, False, f"no golden {gp}")
            continue
        want = open(gp).read()
        if out != want:
            probs.append(f"output differs from {os.path.relpath(gp, REPO)}: got {out.strip()[:300]}")
        try:
            g = json.loads(want)
            d = open(path, "rb").read()
            if rc != (0 if g["ok"] else 1):
                probs.append(f"exit {rc} but ok={g['ok']}")
            probs += crosscheck(d, g)
        except (ValueError, KeyError) as e:
            probs.append(f"golden unreadable: {e}")
        result(name, not probs, "; ".join(probs))
    if a.update_goldens:
        with open(os.path.join(GOLDEN, "SHA256SUMS"), "w") as f:
            for k in sorted(sums):
                f.write(f"{sums[k]}  {k}\n")


# ------------------------------------------------------------------ crafted inputs
# variant -> (exit code, [(severity, kind, fields or None)]): every listed finding must be in
# the report, and no other error. Fields are compared when given.
CRAFTED = {
    "valid": (0, []),
    "empty": (1, [("error", "Empty", ())]),
    "all-ones": (1, [("error", "AllOnes", ())]),
    "no-signature": (1, [("error", "NoSignature", ("0x0",))]),
    "no-signature-later": (1, [("error", "NoSignature", ("0x400",))]),
    "pcir-pointer-zero": (1, [("error", "PcirPointer", ("0", "0x0"))]),
    "pcir-pointer-oob": (1, [("error", "PcirPointer", ("0", "0xfff0"))]),
    "pcir-signature": (1, [("error", "PcirSignature", ("0",))]),
    "pcir-length": (1, [("error", "PcirLength", ("0", "16"))]),
    "zero-length": (1, [("error", "ZeroLength", ("1",))]),
    "past-end": (1, [("error", "PastEnd", ("1", "0x10000", "0x500"))]),
    "no-last": (1, [("error", "NoLastImage", ("2",))]),
    "huge": (1, [("error", "Huge", (str((2 << 30) + 512),))]),
    "misaligned-pcir": (0, [("warning", "MisalignedPcir", ("0", "0x1e"))]),
    "checksum": (0, [("warning", "Checksum", ("0",))]),
    "x86-size": (0, [("warning", "X86Size", ("0", "512", "1024"))]),
    "no-efi": (0, [("warning", "NoEfiImage", ())]),
    "efi-header": (0, [("warning", "EfiHeader", ("1",))]),
    "vendors": (0, [("warning", "Vendors", ())]),
    "trailing-blank": (0, [("warning", "Trailing", ("512", "padding"))]),
    "trailing-data": (0, [("warning", "Trailing", ("512", "trailing data"))]),
    # Read no further than 16 MiB + 1 byte: the real size comes from the file, not the read.
    "large": (1, [("error", "Huge", (str((16 << 20) + 512),))]),
}


def check_crafted(a):
    work = os.path.join(a.out, "crafted")
    os.makedirs(work, exist_ok=True)
    kinds, errors = rom_rs_kinds()
    covered = {}
    for variant, (want_rc, want) in CRAFTED.items():
        path = os.path.join(work, variant + ".rom")
        name = f"crafted {variant}"
        try:
            mtr.build(path, variant)
            rc, out, err = run(a.bin, "rom", "inspect", path, "--json")
        finally:
            if variant in ("huge", "large") and os.path.exists(path):
                os.unlink(path)  # 2 GiB sparse / 16 MiB: not kept
        probs = []
        try:
            r = json.loads(out)
        except ValueError:
            result(name, False, f"--json output is not JSON (exit {rc}): {out[:200]!r} {err[:200]!r}")
            continue
        got = findings(r)
        if rc != want_rc:
            probs.append(f"exit {rc}, expected {want_rc}")
        if r.get("ok") != (want_rc == 0):
            probs.append(f"ok={r.get('ok')}")
        for sev, kind, fields in want:
            hit = [g for g in got if g[0] == sev and g[1] == kind and (fields is None or g[2] == fields)]
            if not hit:
                probs.append(f"no {sev} {kind}{fields or ''} in {got}")
            else:
                covered.setdefault(kind, []).append(variant)
        unknown = [g for g in got if g[1] == "?"]
        if unknown:
            probs.append(f"unknown finding texts (update KINDS): {unknown}")
        extra_errors = [g for g in got if g[0] == "error" and not any(g[1] == w[1] for w in want)]
        if extra_errors:
            probs.append(f"unexpected errors {extra_errors}")
        # Severity agrees with rom.rs's is_error.
        for sev, kind, _ in got:
            if kind in kinds and (sev == "error") != (kind in errors):
                probs.append(f"{kind} reported as {sev}, is_error says otherwise")
        result(name, not probs, "; ".join(probs))
    # The IDs warning needs a device: the `device` group covers it (registered there).
    covered.setdefault("Ids", []).append("device group (rom inspect BDF)")
    missing = [k for k in kinds if k not in covered]
    result(
        f"crafted coverage: all {len(kinds)} finding kinds of rom.rs",
        not missing and all(k in KINDS for k in kinds),
        f"no crafted input produces {missing}; kinds without a message pattern: {[k for k in kinds if k not in KINDS]}",
    )
    return covered


# ------------------------------------------------------------------ clean round trips
def dump_around(rom):
    """An NVFlash/GPU-Z style dump: decoy `55 AA` bytes (one a complete legacy image header
    whose chain breaks), the ROM, trailing vendor data holding `55 AA` too."""
    near_miss = mtr.legacy_image(0x10DE, 0x1C03, 0x030000, 1, last=False)
    head = (
        b"NVFLASH\x00\x55\xAA decoy \x55\xAA\x00\x00 GPU-Z \x55\xAA\x18\x00"
        + bytes(40)
        + bytes(near_miss)
        + bytes(mtr.garbage(333, 11))
    )
    tail = b"NVIDIA trailing \x55\xAA\x40\x00" + bytes(mtr.garbage(1000, 13)) + b"\x55\xAA"
    return head, head + rom + tail, tail


def check_clean(a, roms):
    work = os.path.join(a.out, "clean")
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    cases = []
    for pkg, rel in roms:
        path = os.path.join(a.fixtures, pkg, rel)
        gp = golden_path(pkg, rel)
        if not (os.path.isfile(path) and os.path.exists(gp)):
            continue
        g = json.load(open(gp))
        if g["ok"] and g["chain_end"] == g["size"]:
            cases.append((f"{pkg}/{os.path.basename(rel)}", open(path, "rb").read()))
    gen = os.path.join(work, "generated.rom")
    mtr.build(gen, "valid", size=256 * 1024)
    cases.append(("generated 256 KiB legacy+EFI", open(gen, "rb").read()))
    result(f"clean: {len(cases) - 1} valid fixtures found", len(cases) > 20, "expected over 20 valid fixtures")
    for n, (label, rom) in enumerate(cases):
        head, dump, tail = dump_around(rom)
        din, dout = os.path.join(work, f"{n}.dump"), os.path.join(work, f"{n}.clean")
        open(din, "wb").write(dump)
        rc, out, err = run(a.bin, "rom", "clean", din, dout)
        probs = []
        if rc != 0:
            probs.append(f"exit {rc}: {err.strip()}")
        elif open(dout, "rb").read() != rom:
            got = open(dout, "rb").read()
            probs.append(f"output ({len(got)} bytes) is not the fixture ({len(rom)} bytes)")
        want = f"kept bytes {len(head):#x}..{len(head) + len(rom):#x} ({len(rom)} bytes); cut {len(head)} bytes before and {len(tail)} after"
        if rc == 0 and want not in out:
            probs.append(f"stdout lacks {want!r}: {out.strip()}")
        result(f"clean round trip {label}", not probs, "; ".join(probs))
    # The generator's own dump variant.
    dv = os.path.join(work, "dump-variant.rom")
    mtr.build(dv, "dump")
    valid = os.path.join(work, "valid.rom")
    mtr.build(valid, "valid")
    rc, out, err = run(a.bin, "rom", "clean", dv, os.path.join(work, "dump-variant.clean"))
    ok = rc == 0 and open(os.path.join(work, "dump-variant.clean"), "rb").read() == open(valid, "rb").read()
    result("clean round trip make-test-rom --variant dump", ok, f"exit {rc} {err.strip()}")
    # Nothing to keep: exit 1, no output written.
    junk = os.path.join(work, "junk.bin")
    open(junk, "wb").write(dump_around(b"")[1])
    target = os.path.join(work, "junk.clean")
    rc, out, err = run(a.bin, "rom", "clean", junk, target)
    result("clean without a complete chain: exit 1, nothing written", rc == 1 and not os.path.exists(target),
           f"exit {rc}, output exists: {os.path.exists(target)}")
    # An existing output is never replaced.
    target = os.path.join(work, "exists.clean")
    open(target, "wb").write(b"keep me")
    rc, out, err = run(a.bin, "rom", "clean", os.path.join(work, "0.dump"), target)
    result("clean never replaces an existing output", rc == 2 and open(target, "rb").read() == b"keep me",
           f"exit {rc}, content {open(target, 'rb').read()[:16]!r}")


# ------------------------------------------------------------------ known defects
def check_defects(a):
    """Checks that fail on the rom.rs of 2026-11 (commit 0bc5e98): each names the defect and
    its fix. They pass once rom.rs is fixed."""
    work = os.path.join(a.out, "defects")
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    # 1. walk() accepts a PCIR structure that runs past its image's end (fields read from
    #    whatever follows); clean_range then keeps a chain that inspect rejects.
    src = os.path.join(work, "pcir-past-image.rom")
    mtr.build(src, "pcir-past-image")
    rc, out, err = run(a.bin, "rom", "inspect", src, "--json")
    r = json.loads(out)
    result("defect: inspect rejects a PCIR that runs past its image's end (PCI FW 3.0: inside the image)",
           rc == 1 and any(k == "PcirPointer" for _, k, _ in findings(r)),
           f"exit {rc}, reads it as usable: {r['errors']} {r['warnings']}; fix: in rom.rs walk(), after "
           "`length` is known, `if ptr as usize + PCIR_MIN as usize > length` -> Finding::PcirPointer")
    kept = os.path.join(work, "pcir-past-image.clean")
    rc, out, err = run(a.bin, "rom", "clean", src, kept)
    if rc == 0:
        rc2, out2, _ = run(a.bin, "rom", "inspect", kept, "--json")
        r2 = json.loads(out2)
        ok, why = rc2 == 0, f"`rom clean` wrote {os.path.getsize(kept)} bytes that `rom inspect` calls unusable: {r2['errors']}"
    else:
        ok, why = True, ""
    result("defect: what rom clean keeps passes rom inspect", ok, why)
    # 2. clean_range walks a chain from every `55 AA` and each walk sums up to 16 x 130560
    #    bytes of x86 checksums it never uses: crafted input costs ~11 s per MiB.
    src = os.path.join(work, "slow-clean.rom")
    mtr.build(src, "slow-clean")
    t0 = time.monotonic()
    try:
        rc, out, err = run(a.bin, "rom", "clean", src, os.path.join(work, "slow-clean.clean"), timeout=120)
        took = time.monotonic() - t0
    except subprocess.TimeoutExpired:
        rc, took = None, 120.0
    result("defect: rom clean of a crafted 1 MiB dump takes under 3 s",
           took < 3 and rc == 1,
           f"took {took:.1f} s (exit {rc}); fix: compute x86 checksums in inspect() only, not in the "
           "image_at() that clean_range's walk calls for every `55 AA`")


# ------------------------------------------------------------------ fake device (FIFO rom)
def serve_fifo(fifo, rom_path, log_path):
    """The kernel's side of a sysfs `rom` file: a write (enable), a read to EOF, a write
    (disable). Each open of the FIFO meets one of ours, in that order."""
    data = open(rom_path, "rb").read()
    with open(log_path, "w") as log:
        with open(fifo, "rb") as f:
            log.write(f"W {f.read()!r}\n")
            log.flush()
        with open(fifo, "wb") as f:
            f.write(data)
        log.write(f"R {len(data)}\n")
        log.flush()
        with open(fifo, "rb") as f:
            log.write(f"W {f.read()!r}\n")


def fake_device(root, bdf, ids, subsys, klass, driver=None, rom=None):
    d = os.path.join(root, "sys/bus/pci/devices", bdf)
    os.makedirs(os.path.join(d, "power"), exist_ok=True)
    open(os.path.join(d, "uevent"), "w").write(
        (f"DRIVER={driver}\n" if driver else "")
        + f"PCI_CLASS={klass:X}\nPCI_ID={ids}\nPCI_SUBSYS_ID={subsys}\nPCI_SLOT_NAME={bdf}\n"
    )
    open(os.path.join(d, "enable"), "w").write("0\n")
    open(os.path.join(d, "power/control"), "w").write("auto\n")
    if driver:
        os.makedirs(os.path.join(root, "sys/bus/pci/drivers", driver), exist_ok=True)
        os.symlink(f"../../../bus/pci/drivers/{driver}", os.path.join(d, "driver"))
    if rom is not None:
        shutil.copy(rom, os.path.join(d, "rom"))
    return d


def inspect_via_fifo(a, root, bdf, rom_path, extra=()):
    d = os.path.join(root, "sys/bus/pci/devices", bdf)
    fifo = os.path.join(d, "rom")
    if os.path.exists(fifo):
        os.unlink(fifo)
    os.mkfifo(fifo)
    log = os.path.join(root, "fifo.log")
    srv = subprocess.Popen([sys.executable, __file__, "--serve-fifo", fifo, rom_path, log])
    try:
        rc, out, err = run(a.bin, "rom", "--root", root, "inspect", bdf.split(":", 1)[1], "--json", *extra, timeout=30)
        srv.wait(timeout=10)
    except subprocess.TimeoutExpired:
        srv.kill()
        return None, "", "timed out (FIFO sequence not as the kernel's)", ""
    finally:
        if srv.poll() is None:
            srv.kill()
    return rc, out, err, open(log).read() if os.path.exists(log) else ""


def check_device(a):
    work = os.path.join(a.out, "device")
    shutil.rmtree(work, ignore_errors=True)
    rom = os.path.join(work, "valid.rom")
    os.makedirs(work)
    mtr.build(rom, "valid")
    bdf = "0000:01:00.0"

    # IDs differ from the device's: one warning per image, still usable.
    root = os.path.join(work, "ids")
    dev = fake_device(root, bdf, "10DE:1C03", "1043:85F4", 0x030000)
    rc, out, err, log = inspect_via_fifo(a, root, bdf, rom)
    probs = []
    try:
        r = json.loads(out)
        got = [g for g in findings(r) if g[1] == "Ids"]
        want = [("warning", "Ids", (str(n), "1234", "1111", "10de", "1c03")) for n in (0, 1)]
        if got != want:
            probs.append(f"Ids findings {got} != {want}")
        if rc != 0 or not r["ok"]:
            probs.append(f"exit {rc}, ok {r['ok']}: IDs are a warning")
        if r["size"] != os.path.getsize(rom):
            probs.append(f"read {r['size']} bytes")
    except ValueError:
        probs.append(f"not JSON (exit {rc}): {out!r} {err!r}")
    if log.splitlines() != ["W b'1\\n'", f"R {os.path.getsize(rom)}", "W b'0\\n'"]:
        probs.append(f"rom file sequence {log.splitlines()} (want write 1, read, write 0)")
    state = (open(f"{dev}/enable").read().strip(), open(f"{dev}/power/control").read().strip())
    if state != ("0", "auto"):
        probs.append(f"enable/power.control left {state}, want ('0', 'auto')")
    result("device: rom inspect BDF: IDs warning per image, rom enabled-read-disabled, state restored",
           not probs, "; ".join(probs))

    # The right IDs: no warning at all.
    root = os.path.join(work, "match")
    fake_device(root, bdf, "1234:1111", "1AF4:1100", 0x038000)
    rc, out, err, log = inspect_via_fifo(a, root, bdf, rom)
    try:
        r = json.loads(out)
        ok = rc == 0 and r["ok"] and not r["warnings"] and not r["errors"]
        why = f"exit {rc}, {r['errors']} {r['warnings']}"
    except ValueError:
        ok, why = False, f"not JSON: {out!r} {err!r}"
    result("device: rom inspect BDF with matching IDs: clean", ok, why)

    # A driver holds it: refused, nothing written (the rom file, a plain file here, is intact).
    root = os.path.join(work, "bound")
    dev = fake_device(root, bdf, "1234:1111", "1AF4:1100", 0x038000, driver="bochs-drm", rom=rom)
    rc, out, err = run(a.bin, "rom", "--root", root, "inspect", "01:00.0")
    intact = open(f"{dev}/rom", "rb").read() == open(rom, "rb").read() and open(f"{dev}/enable").read() == "0\n"
    result("device: rom inspect BDF refuses while a driver holds it, touches nothing",
           rc == 2 and "bound to bochs-drm" in err and "--force" in err and intact,
           f"exit {rc}, stderr {err.strip()!r}, files intact {intact}")
    # --force reads anyway.
    os.unlink(f"{dev}/rom")
    rc, out, err, log = inspect_via_fifo(a, root, bdf, rom, extra=("--force",))
    result("device: rom inspect BDF --force reads under a driver", rc == 0 and '"ok":true' in out,
           f"exit {rc}: {err.strip()} {out[:200]}")

    # No ROM BAR: no rom attribute.
    root = os.path.join(work, "norom")
    fake_device(root, bdf, "1234:1111", "1AF4:1100", 0x038000)
    rc, out, err = run(a.bin, "rom", "--root", root, "inspect", "01:00.0")
    result("device: rom inspect BDF without a ROM BAR: exit 2, says so", rc == 2 and "no ROM BAR" in err,
           f"exit {rc}, stderr {err.strip()!r}")
    rc, out, err = run(a.bin, "rom", "--root", root, "inspect", "02:00.0")
    result("device: rom inspect BDF of no device: exit 2", rc == 2 and "no such PCI device" in err,
           f"exit {rc}, stderr {err.strip()!r}")


# ------------------------------------------------------------------ persist, known, libvirt
def check_tooling(a):
    work = os.path.join(a.out, "tooling")
    shutil.rmtree(work, ignore_errors=True)
    root = os.path.join(work, "root")
    run_dir = os.path.join(root, "run/vfio-early/roms")
    var_dir = os.path.join(root, "var/lib/vfio-early/roms")
    os.makedirs(os.path.join(run_dir, "shadow"))
    roms = {}
    for n, size in enumerate((64 * 1024, 128 * 1024)):
        p = os.path.join(work, f"v{n}.rom")
        mtr.build(p, "valid", size=size)
        roms[n] = open(p, "rb").read()

    def capture(data, sub=""):
        h = hashlib.sha256(data).hexdigest()
        name = f"1234-1111-1af4-1100-{h[:12]}.rom"
        p = os.path.join(run_dir, sub, name)
        open(p, "wb").write(data)
        open(p + ".json", "w").write(json.dumps({"sha256": h}) + "\n")
        return name, h

    n0, h0 = capture(roms[0])
    ns, hs = capture(roms[0][:1024], "shadow")
    rc, out, err = run(a.bin, "rom", "--root", root, "persist")
    moved = all(
        os.path.exists(os.path.join(var_dir, s, n)) and os.path.exists(os.path.join(var_dir, s, n + ".json"))
        and not os.path.exists(os.path.join(run_dir, s, n))
        for s, n in (("", n0), ("shadow", ns))
    )
    same = moved and open(os.path.join(var_dir, n0), "rb").read() == roms[0]
    result("tooling: rom persist moves captures and sidecars /run -> /var/lib (shadow kept apart)",
           rc == 0 and moved and same and out.count("ROM kept:") == 2, f"exit {rc}, moved {moved}, {out!r} {err!r}")

    capture(roms[0])  # read again at boot
    rc, out, err = run(a.bin, "rom", "--root", root, "persist")
    result("tooling: rom persist drops a capture already stored and says to rebuild the image",
           rc == 0 and "read again" in out and not os.path.exists(os.path.join(run_dir, n0)),
           f"exit {rc}, {out!r} {err!r}")

    n1, h1 = capture(roms[1])  # same card, other content: a flashed vBIOS?
    rc, out, err = run(a.bin, "rom", "--root", root, "persist")
    result("tooling: rom persist keeps both when the same card's ROM changed, warns",
           rc == 0 and "differs from the stored" in err and os.path.exists(os.path.join(var_dir, n0))
           and os.path.exists(os.path.join(var_dir, n1)), f"exit {rc}, {out!r} {err!r}")

    rc, out, err = run(a.bin, "rom", "--root", root, "known")
    want = "".join(sorted(f"1234:1111:1af4:1100 {h}\n" for h in (h0, h1)))
    result("tooling: rom known lists the clean stored captures (not the shadow copy)", rc == 0 and out == want,
           f"exit {rc}, {out!r} != {want!r}")

    fake_device(root, "0000:01:00.0", "1234:1111", "1AF4:1100", 0x038000)
    now = time.time()
    os.utime(os.path.join(var_dir, n0), (now - 100, now - 100))
    os.utime(os.path.join(var_dir, n1), (now, now))
    rc, out, err = run(a.bin, "rom", "--root", root, "libvirt", "01:00.0")
    ok = (rc == 0 and f"<rom file='/var/lib/vfio-early/roms/{n1}'/>" in out
          and "<address domain='0x0000' bus='0x01' slot='0x00' function='0x0'/>" in out and "2 captures" in err)
    result("tooling: rom libvirt names the newest capture of the card", ok, f"exit {rc}, {out!r} {err!r}")
    fake_device(root, "0000:02:00.0", "1234:1111", "1AF4:1101", 0x038000)
    rc, out, err = run(a.bin, "rom", "--root", root, "libvirt", "02:00.0")
    result("tooling: rom libvirt without a capture of the card: exit 1", rc == 1 and "no capture" in err,
           f"exit {rc}, {err!r}")


def main():
    if len(sys.argv) == 5 and sys.argv[1] == "--serve-fifo":
        serve_fifo(*sys.argv[2:])
        return 0
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", required=True)
    ap.add_argument("--fixtures", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--update-goldens", action="store_true")
    ap.add_argument("--only", nargs="*", default=[])
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    _, roms = read_list()
    want = lambda g: not a.only or g in a.only
    if want("fixtures"):
        check_fixtures(a, roms)
    if want("goldens"):
        check_goldens(a, roms)
    if a.update_goldens:
        return 0
    if want("crafted"):
        check_crafted(a)
    if want("clean"):
        check_clean(a, roms)
    if want("device"):
        check_device(a)
    if want("tooling"):
        check_tooling(a)
    if want("defects"):
        check_defects(a)
    return 0 if all(RESULTS) else 1


if __name__ == "__main__":
    sys.exit(main())
