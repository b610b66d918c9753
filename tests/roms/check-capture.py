#!/usr/bin/env python3
# SPDX-License-Identifier: MIT OR Apache-2.0
"""Host-side checks of the ROM captures a QEMU test boot reported (tests/qemu/init prints
`ROMFILE sha256 size path` and `ROMJSON path json` for /run/vfio-early/roms). Reads the report
on stdin; prints one reason per failed expectation; exit 1 if any.

  check-capture.py [--kernel KVER] [--rom FILE] [--bdf BDF] [--ids V:D:SV:SD] [--shadow BDF] [--noroms]

--rom FILE: exactly one clean capture, byte-identical to FILE (sha256 and size), named
  vvvv-dddd-ssss-ssss-<12 hex>.rom with the device's IDs, and its sidecar right: version,
  file, sha256, bdf, IDs, kernel, verdict clean, size, read_bytes, enable_set_here and its
  note, time, and the embedded report (ok, chain_end, images) agreeing with FILE.
--shadow BDF: exactly one capture under shadow/, sidecar verdict shadow for BDF.
--noroms: nothing stored at all.
"""

import argparse
import hashlib
import json
import re
import sys
import time

RUN = "/run/vfio-early/roms/"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--kernel", default="")
    ap.add_argument("--rom")
    ap.add_argument("--bdf", default="0000:01:00.0")
    ap.add_argument("--ids", default="1234:1111:1af4:1100", help="bochs-display under QEMU")
    ap.add_argument("--shadow")
    ap.add_argument("--noroms", action="store_true")
    a = ap.parse_args()

    files, sidecars, bad = {}, {}, []
    for line in sys.stdin.read().replace("\r", "").splitlines():
        if line.startswith("ROMFILE "):
            _, sha, size, path = line.split(None, 3)
            files[path] = (sha, int(size))
        elif line.startswith("ROMJSON "):
            _, path, text = line.split(" ", 2)
            try:
                sidecars[path] = json.loads(text)
            except ValueError as e:
                bad.append(f"sidecar {path} is not JSON ({e}): {text[:200]}")
        elif line.startswith("ROMOTHER "):
            bad.append(f"unexpected file in {RUN}: {line.split(' ', 1)[1]} (a leftover temporary?)")

    clean = {p: v for p, v in files.items() if not p.startswith(RUN + "shadow/")}
    shadow = {p: v for p, v in files.items() if p.startswith(RUN + "shadow/")}
    for p in files:
        if p + ".json" not in sidecars:
            bad.append(f"{p} has no sidecar {p}.json")

    if a.noroms and files:
        bad.append(f"nothing should be stored, found {sorted(files)}")

    if a.rom:
        data = open(a.rom, "rb").read()
        sha = hashlib.sha256(data).hexdigest()
        v, d, sv, sd = a.ids.split(":")
        if len(clean) != 1:
            bad.append(f"one clean capture expected, found {sorted(clean)}")
        for path, (gsha, gsize) in clean.items():
            if (gsha, gsize) != (sha, len(data)):
                bad.append(f"{path}: sha256 {gsha[:16]}.. size {gsize}, the ROM given to QEMU is {sha[:16]}.. size {len(data)}: not byte-identical")
            want_name = f"{v}-{d}-{sv}-{sd}-{sha[:12]}.rom"
            if path != RUN + want_name:
                bad.append(f"capture named {path}, expected {RUN}{want_name}")
            j = sidecars.get(path + ".json")
            if j is None:
                continue
            want = {
                "version": 1,
                "file": want_name,
                "sha256": sha,
                "bdf": a.bdf,
                "vendor": v,
                "device": d,
                "subvendor": sv,
                "subdevice": sd,
                "verdict": "clean",
                "size": len(data),
                "read_bytes": len(data),  # the kernel cuts the BAR at the chain's end
            }
            if a.kernel:
                want["kernel"] = a.kernel
            for k, val in want.items():
                if j.get(k) != val:
                    bad.append(f"sidecar {k}: {j.get(k)!r}, expected {val!r}")
            if not isinstance(j.get("enable_set_here"), bool):
                bad.append(f"sidecar enable_set_here: {j.get('enable_set_here')!r}")
            elif j["enable_set_here"] != ("note" in j):
                bad.append("sidecar note present iff enable_set_here: not so")
            t = j.get("time")
            # The guest clock is the host's RTC at boot: within a day of now.
            if not isinstance(t, int) or abs(t - time.time()) > 86400:
                bad.append(f"sidecar time {t!r} is not a plausible Unix time")
            r = j.get("report", {})
            if not (r.get("ok") is True and r.get("size") == len(data) and r.get("chain_end") == len(data)):
                bad.append(f"sidecar report: ok {r.get('ok')}, size {r.get('size')}, chain_end {r.get('chain_end')}")
            imgs = r.get("images", [])
            if [(i.get("code_type"), i.get("vendor"), i.get("device")) for i in imgs] != [("x86", v, d), ("efi", v, d)]:
                bad.append(f"sidecar report images {[(i.get('code_type'), i.get('vendor'), i.get('device')) for i in imgs]}")
            if r.get("errors") or r.get("warnings"):
                bad.append(f"sidecar report findings: {r.get('errors')} {r.get('warnings')}")

    if a.shadow:
        if len(shadow) != 1:
            bad.append(f"one shadow copy expected under {RUN}shadow/, found {sorted(shadow)}")
        if clean:
            bad.append(f"a shadow copy must not be stored as a clean capture: {sorted(clean)}")
        for path, (gsha, gsize) in shadow.items():
            j = sidecars.get(path + ".json") or {}
            for k, val in {"verdict": "shadow", "bdf": a.shadow, "sha256": gsha, "size": gsize}.items():
                if j.get(k) != val:
                    bad.append(f"shadow sidecar {k}: {j.get(k)!r}, expected {val!r}")
            if not re.fullmatch(r"[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-" + gsha[:12] + r"\.rom", path.rsplit("/", 1)[1]):
                bad.append(f"shadow copy name {path}")

    for b in bad:
        print(b)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
