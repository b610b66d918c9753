#!/usr/bin/env python3
# SPDX-License-Identifier: MIT OR Apache-2.0
"""Host-side check of `vfio-early status --json` run inside a booted QEMU guest (tests/qemu/init
with test.status prints it as `STATUSJSON {...}`) against the truth the same report gives: the
REPORT (driver per device), DEVINFO (group, boot_vga, override) and STATE (the binder's state
file) lines. Reads the report on stdin; prints one reason per failed expectation; exit 1 if any.

  check-status.py --bind BDF,... --twin BDF,... --boot-vga BDF

--bind: the devices the binder took (this boot bound; next boot would bind them again).
--twin: identical devices nobody asked for (not asked, native driver).
--boot-vga: the boot display.
--cmdline BDF=LINE: `vfio-early cmdline BDF` (a CMDLINE line) exits 0 printing exactly LINE.
--refused BDF=TEXT: `vfio-early cmdline BDF` exits 1, prints nothing, and names TEXT on stderr.
--check-exit N: `vfio-early check --json` (a CHECKJSON line) exited N.
--check-ok T,T: each topic T has an ok finding and no error.
--check-error TOPIC:TEXT: an error finding of TOPIC whose text holds TEXT.
--check-clean: no error finding at all.
"""

import argparse
import json
import sys


def full(bdf):
    return bdf if bdf.count(":") == 2 else "0000:" + bdf


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bind", default="")
    ap.add_argument("--twin", default="")
    ap.add_argument("--boot-vga", default="")
    ap.add_argument("--cmdline", action="append", default=[])
    ap.add_argument("--refused", action="append", default=[])
    ap.add_argument("--check-exit", type=int)
    ap.add_argument("--check-ok", default="")
    ap.add_argument("--check-error", action="append", default=[])
    ap.add_argument("--check-clean", action="store_true")
    a = ap.parse_args()
    check = None
    cmdlines = {}

    drivers, info, state, status, bad = {}, {}, None, None, []
    for line in sys.stdin.read().replace("\r", "").splitlines():
        word, _, rest = line.partition(" ")
        if word == "REPORT" and len(rest.split()) == 4:
            bdf, ids, cls, drv = rest.split()
            drivers[bdf] = (ids, cls, drv)
        elif word == "DEVINFO":
            bdf, *kv = rest.split()
            info[bdf] = dict(x.split("=", 1) for x in kv)
        elif word == "STATE":
            state = json.loads(rest)
        elif word == "CMDLINE":
            bdf, _, rest2 = rest.partition(" rc=")
            rc, _, rest2 = rest2.partition(" out=")
            out, _, err = rest2.partition(" err=")
            cmdlines[bdf] = (rc, out, err)
        elif word == "CHECKJSON":
            try:
                check = json.loads(rest)
            except ValueError as e:
                bad.append(f"check --json printed no JSON ({e}): {rest[:200]}")
        elif word == "STATUSJSON":
            try:
                status = json.loads(rest)
            except ValueError as e:
                bad.append(f"status --json printed no JSON ({e}): {rest[:200]}")
    if status is None:
        bad.append("no STATUSJSON line: `vfio-early status --json` did not run or print")
    if state is None:
        bad.append("no STATE line: the binder wrote no state file")
    if not any(c.startswith("0x03") or c.startswith("0x0403") for _, c, _ in drivers.values()):
        bad.append("no REPORT line for a display or audio function: the guest's sysfs walk printed nothing to compare")
    if bad:
        print("\n".join(bad))
        return 1

    if (status.get("schema"), status.get("version")) != ("vfio-early-status", 1):
        bad.append(f"schema {status.get('schema')!r} version {status.get('version')!r}")
    if status.get("iommu") is not True:
        bad.append("status says the IOMMU is off")
    if status.get("state", {}).get("status") != "read":
        bad.append(f"status did not read the state file: {status.get('state')}")
    shown = {d["bdf"]: d for d in status.get("devices", [])}

    # Every display and audio function of the machine is shown, with the truth about it.
    for bdf, (ids, cls, drv) in drivers.items():
        if not (cls.startswith("0x03") or cls.startswith("0x0403")):
            continue
        d = shown.get(bdf)
        if d is None:
            bad.append(f"{bdf} ({cls}) is not shown")
            continue
        if f"{d['vendor']}:{d['device']}" != ids:
            bad.append(f"{bdf}: IDs {d['vendor']}:{d['device']}, sysfs says {ids}")
        if (d["driver"] or "none") != drv:
            bad.append(f"{bdf}: driver {d['driver']}, the driver link says {drv}")
        i = info.get(bdf, {})
        if str(d["group"]) != i.get("group", "none").replace("none", "None"):
            bad.append(f"{bdf}: group {d['group']}, sysfs says {i.get('group')}")
        override = d["driver_override"] or "none"
        if override != i.get("override", "none"):
            bad.append(f"{bdf}: override {override}, sysfs says {i.get('override')}")
        want_boot = i.get("boot_vga") == "1"
        if bool(d["boot_display"]) != want_boot:
            bad.append(f"{bdf}: boot_display {d['boot_display']}, boot_vga is {i.get('boot_vga')}")

    records = {r["bdf"]: r for r in state.get("devices", [])}
    for bdf in filter(None, a.bind.split(",")):
        bdf, d = full(bdf), shown.get(full(bdf))
        if d is None:
            bad.append(f"{bdf} is not shown")
            continue
        this = d.get("this_boot") or {}
        if this.get("result") != records.get(bdf, {}).get("result") or this.get("result") != "bound":
            bad.append(f"{bdf}: this boot {this.get('result')}, the state file says {records.get(bdf, {}).get('result')}")
        if d["next_boot"]["fate"] != "would-bind":
            bad.append(f"{bdf}: next boot {d['next_boot']} (its drivers are modules: free at boot)")
    for bdf in filter(None, a.twin.split(",")):
        bdf, d = full(bdf), shown.get(full(bdf))
        if d is None:
            bad.append(f"{bdf} (the twin) is not shown")
            continue
        if d.get("this_boot") is not None or d["next_boot"]["fate"] != "not-asked":
            bad.append(f"{bdf}: the twin is {d.get('this_boot')} / {d['next_boot']}, not 'not asked'")
    if a.boot_vga:
        d = shown.get(full(a.boot_vga))
        if d is None or d["boot_display"] is not True or d["boot_display_by"] != "boot_vga":
            bad.append(f"{a.boot_vga}: not shown as the boot display: {d}")
    if a.check_exit is not None or a.check_ok or a.check_error or a.check_clean:
        if check is None:
            bad.append("no CHECKJSON line: `vfio-early check --json` did not run or print")
        else:
            found = check.get("findings", [])
            if a.check_exit is not None and check.get("exit") != a.check_exit:
                bad.append(f"check exited {check.get('exit')}, want {a.check_exit}: {[(f['level'], f['text']) for f in found if f['level'] != 'ok']}")
            for topic in filter(None, a.check_ok.split(",")):
                levels = [f["level"] for f in found if f["topic"] == topic]
                if "ok" not in levels or "error" in levels:
                    bad.append(f"check topic {topic}: {[(f['level'], f['text']) for f in found if f['topic'] == topic]}")
            for spec in a.check_error:
                topic, _, text = spec.partition(":")
                if not any(f["level"] == "error" and f["topic"] == topic and text in f["text"] for f in found):
                    bad.append(f"check: no error {topic} finding with {text!r}: {[(f['level'], f['topic'], f['text']) for f in found]}")
            if a.check_clean:
                errors = [f["text"] for f in found if f["level"] == "error"]
                if errors:
                    bad.append(f"check found errors on a working machine: {errors}")
    for spec in a.cmdline:
        bdf, _, want = spec.partition("=")
        got = cmdlines.get(bdf)
        if got is None or got[0] != "0" or got[1] != want:
            bad.append(f"cmdline {bdf}: {got}, want exit 0 and {want!r}")
    for spec in a.refused:
        bdf, _, text = spec.partition("=")
        got = cmdlines.get(bdf)
        if got is None or got[0] != "1" or got[1] != "" or text not in got[2] or "would refuse" not in got[2]:
            bad.append(f"cmdline {bdf}: {got}, want exit 1, nothing printed, and 'would refuse ... {text}'")
    if bad:
        print("\n".join(bad))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
