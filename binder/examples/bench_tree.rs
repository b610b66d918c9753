// SPDX-License-Identifier: MIT OR Apache-2.0
//! Generates the benchmark's fake root: `cargo run --example bench_tree -- DIR [--modprobe
//! exe|bind|log] [--shell PATH]` fills DIR (absent or empty) and prints only the 8 target BDFs,
//! space separated, for tests/bench/bench.sh to hand to the classic script.
//!
//! The machine: one PCI domain, 256 functions in 64 IOMMU groups of 4, like a two-socket
//! workstation with many cards (every group as the kernel would form it: functions of one
//! multi-function device without ACS between them share a group; ACS root ports isolate buses).
//! - Groups 0-15, bus 00: 16 slots 00:01-00:10, each 4 PCIe root ports (functions 0-3, class
//!   0x060400, AMD 1022:1483) sharing a group, bound to the built-in `pcieport`. Port n leads to
//!   bus n+1; the first 48 buses are populated.
//! - Groups 16-31, buses 01-10: NVIDIA Turing cards (TU106, 10de:1f02), 4 functions each:
//!   VGA 0x030000, HDMI audio 0x040300 (10de:10f9), USB xHCI 0x0c0330 (10de:1ada),
//!   USB-C UCSI 0x0c8000 (10de:1adb).
//! - Groups 32-39, buses 11-18: AMD Navi 21 cards (1002:73bf), the same 4-function layout
//!   (audio 1002:ab28, xHCI 1002:73a6, UCSI 1002:73a4).
//! - Groups 40-63, buses 19-30: Intel I350-T4 quad-port NICs (8086:1521, class 0x020000).
//!
//! Nothing but the root ports is bound (native modules are not loaded yet in an initramfs). The
//! card on bus 01 is the boot display (`boot_vga` 1, shadow ROM line, BOOTFB in `proc/iomem`).
//! Targets: the VGA functions on buses 03 05 07 09 0b 0d (NVIDIA) and 12 14 (AMD), listed in
//! `proc/cmdline` as `vfio-early.devices=`. In the default `companions` mode the binder takes
//! each target and its audio function (16 devices); the classic script overrides all 4 functions
//! of each group (32 devices).
//!
//! `sbin/modprobe` imitates vfio-pci's module init, so the binder's verification succeeds:
//! - `exe`: a symlink to this very program, which acts as the fake modprobe when called by a
//!   name ending in `modprobe` (logs, honours `modprobe.exit`, runs `FakeTree::vfio_pci_init`).
//!   Cheapest: one exec and a few syscalls per device, so it weighs little in the measurements;
//!   build the example static (musl) so the exec is quick.
//! - `bind` (default): the shell script of `Modprobe::Bind`, run by `--shell` (default `/bin/sh`);
//!   about 100 times costlier than `exe` (byte-at-a-time `read`, one `ln` fork per link).
//! - `log`: records the call only; nothing gets bound, so the binder takes its failure path.

#[path = "../tests/common/mod.rs"]
mod common;

use common::{Dev, FakeTree, Modprobe};
use std::fmt::Write as _;
use std::fs::{self, OpenOptions};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

const MEM32: u64 = 0x40200; // IORESOURCE_MEM | SIZEALIGN
const MEM64_PREF: u64 = 0x14220c; // MEM | MEM_64 | PREFETCH | SIZEALIGN, BAR type bits 0xc
const IO: u64 = 0x40101; // IORESOURCE_IO | SIZEALIGN, BAR space bit
const ROM: u64 = 0x46200; // MEM | READONLY | PREFETCH | SIZEALIGN
const ROM_SHADOW: u64 = 0x212; // MEM | PCI_FIXED | ROM_SHADOW (0x2)

struct Card {
    ids: [u16; 4],
    vendor: u16,
    subsys: (u16, u16),
}

const NVIDIA: Card = Card {
    vendor: 0x10de,
    ids: [0x1f02, 0x10f9, 0x1ada, 0x1adb],
    subsys: (0x1043, 0x8670),
};
const AMD: Card = Card {
    vendor: 0x1002,
    ids: [0x73bf, 0xab28, 0x73a6, 0x73a4],
    subsys: (0x1da2, 0x440e),
};
const GPU_CLASSES: [u32; 4] = [0x030000, 0x040300, 0x0c0330, 0x0c8000];
const TARGET_BUSES: [u32; 8] = [0x03, 0x05, 0x07, 0x09, 0x0b, 0x0d, 0x12, 0x14];

fn usage() -> ! {
    eprintln!("usage: bench_tree DIR [--modprobe exe|bind|log] [--shell PATH]");
    std::process::exit(2);
}

/// The `exe` fake modprobe: `<root>/sbin/modprobe ARGS` is a symlink to this program.
fn fake_modprobe(argv0: &Path) -> ExitCode {
    let root = argv0
        .parent()
        .and_then(Path::parent)
        .unwrap_or(Path::new("."));
    let args: Vec<String> = std::env::args().skip(1).collect();
    let log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(root.join("modprobe.log"))
        .and_then(|mut f| f.write_all(format!("{}\n", args.join(" ")).as_bytes()));
    if let Err(e) = log {
        eprintln!("modprobe (fake): {}: {e}", root.display());
        return ExitCode::from(1);
    }
    if let Ok(code) = fs::read_to_string(root.join("modprobe.exit")) {
        return ExitCode::from(code.trim().parse::<u8>().unwrap_or(1));
    }
    if args.iter().any(|a| a == "vfio-pci" || a == "vfio_pci") {
        FakeTree::open(root).vfio_pci_init();
    }
    ExitCode::SUCCESS
}

fn main() -> ExitCode {
    let argv0 = PathBuf::from(std::env::args_os().next().unwrap_or_default());
    if argv0.to_string_lossy().ends_with("modprobe") {
        return fake_modprobe(&argv0);
    }
    let mut dir = None;
    let mut kind = Some(Modprobe::Bind);
    let mut shell = String::from("/bin/sh");
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--modprobe" => {
                kind = match args.next().as_deref() {
                    Some("exe") => None,
                    Some("log") => Some(Modprobe::Log),
                    Some("bind") => Some(Modprobe::Bind),
                    _ => usage(),
                }
            }
            "--shell" => shell = args.next().unwrap_or_else(|| usage()),
            _ if dir.is_none() && !a.starts_with('-') => dir = Some(PathBuf::from(a)),
            _ => usage(),
        }
    }
    let dir = dir.unwrap_or_else(|| usage());
    if fs::read_dir(&dir).is_ok_and(|mut d| d.next().is_some()) {
        eprintln!("bench_tree: {} is not empty", dir.display());
        return ExitCode::from(2);
    }
    let t = FakeTree::at(&dir);
    match kind {
        Some(k) => {
            t.modprobe(k, &shell);
        }
        None => {
            let me = std::env::current_exe().expect("own path");
            t.remove("sbin/modprobe")
                .symlink("sbin/modprobe", &me.to_string_lossy());
        }
    }

    // Bus 00: 16 slots of 4 root ports, one group per slot.
    for slot in 0..16u32 {
        for f in 0..4u32 {
            let port = slot * 4 + f; // leads to bus port+1
            let bus = u64::from(port + 1);
            let mut d = Dev::new(
                &format!("00:{:02x}.{f}", slot + 1),
                0x1022,
                0x1483,
                0x060400,
            )
            .subsys(0x1022, 0x1453)
            .group(slot)
            .driver("pcieport");
            if bus <= 0x30 {
                // Bridge windows (resource lines 14, 15) only toward populated buses.
                d = d
                    .bar(14, mem32_base(bus), mem32_base(bus) + 0x01ff_ffff, 0x200)
                    .bar(15, pref_base(bus), pref_base(bus) + 0x1fff_ffff, 0x102200);
            }
            t.device(d);
        }
    }

    let mut iomem = String::from(
        "00000000-00000fff : Reserved\n\
         00001000-0009ffff : System RAM\n\
         000a0000-000bffff : PCI Bus 0000:00\n\
         000c0000-000dffff : PCI Bus 0000:00\n\
         \x20 000c0000-000cffff : Video ROM\n\
         00100000-7fffffff : System RAM\n\
         80000000-efffffff : PCI Bus 0000:00\n",
    );
    let mut pref = String::new();
    let mut targets = Vec::new();
    // Buses 01-30: 24 cards then 24 NICs, one group per bus.
    for bus in 1..=0x30u32 {
        let group = 15 + bus;
        let (m, p) = (mem32_base(bus.into()), pref_base(bus.into()));
        let _ = writeln!(
            iomem,
            "  {m:08x}-{:08x} : PCI Bus 0000:{bus:02x}",
            m + 0x01ff_ffff
        );
        if bus <= 0x18 {
            let card = if bus <= 0x10 { &NVIDIA } else { &AMD };
            let boot = bus == 1;
            for f in 0..4u32 {
                let bdf = format!("0000:{bus:02x}:00.{f}");
                let mut d = Dev::new(
                    &bdf,
                    card.vendor,
                    card.ids[f as usize],
                    GPU_CLASSES[f as usize],
                )
                .subsys(card.subsys.0, card.subsys.1)
                .group(group);
                match f {
                    0 => {
                        d = d
                            .boot_vga(boot)
                            .bar(0, m, m + 0x00ff_ffff, MEM32)
                            .bar(1, p, p + 0x0fff_ffff, MEM64_PREF)
                            .bar(3, p + 0x1000_0000, p + 0x11ff_ffff, MEM64_PREF)
                            .bar(5, io_base(bus), io_base(bus) + 0x7f, IO);
                        d = if boot {
                            d.bar(6, 0xc0000, 0xdffff, ROM_SHADOW)
                        } else {
                            d.bar(6, m + 0x0100_0000, m + 0x0107_ffff, ROM)
                        };
                        let _ = writeln!(iomem, "    {m:08x}-{:08x} : {bdf}", m + 0x00ff_ffff);
                        // Widths as the kernel's r_show: at least 8 hex digits.
                        let _ = writeln!(
                            pref,
                            "  {p:08x}-{:08x} : PCI Bus 0000:{bus:02x}\n    {p:08x}-{:08x} : {bdf}",
                            p + 0x1fff_ffff,
                            p + 0x0fff_ffff
                        );
                        if boot {
                            let _ = writeln!(pref, "      {p:08x}-{:08x} : BOOTFB", p + 0x7f_ffff);
                        }
                        if TARGET_BUSES.contains(&bus) {
                            targets.push(bdf.clone());
                        }
                    }
                    1 => d = d.bar(0, m + 0x0108_0000, m + 0x0108_3fff, MEM32),
                    2 => d = d.bar(0, p + 0x1200_0000, p + 0x1203_ffff, MEM64_PREF),
                    _ => d = d.bar(0, m + 0x0108_4000, m + 0x0108_4fff, MEM32),
                }
                t.device(d);
            }
        } else {
            for f in 0..4u32 {
                let bdf = format!("0000:{bus:02x}:00.{f}");
                let b0 = m + u64::from(f) * 0x0010_0000;
                let b3 = m + 0x0100_0000 + u64::from(f) * 0x4000;
                t.device(
                    Dev::new(&bdf, 0x8086, 0x1521, 0x020000)
                        .subsys(0x8086, 0x5001)
                        .group(group)
                        .bar(0, b0, b0 + 0x000f_ffff, MEM32)
                        .bar(3, b3, b3 + 0x3fff, MEM32),
                );
                let _ = writeln!(iomem, "    {b0:08x}-{:08x} : {bdf}", b0 + 0x000f_ffff);
            }
        }
    }
    iomem.push_str(
        "f0000000-f7ffffff : PCI MMCONFIG 0000 [bus 00-7f]\n\
         fed00000-fed003ff : HPET 0\n\
         100000000-107fffffff : System RAM\n\
         4000000000-7fffffffff : PCI Bus 0000:00\n",
    );
    iomem.push_str(&pref);
    t.file("proc/iomem", &iomem);

    t.cmdline(&format!(
        "BOOT_IMAGE=/vmlinuz-6.1.0-18-amd64 root=UUID=0f3d6a7c-5b1e-4f3a-9d2e-7a1c2b3d4e5f ro \
         quiet amd_iommu=on iommu=pt vfio-early.devices={}",
        targets.join(",")
    ));
    println!("{}", targets.join(" "));
    ExitCode::SUCCESS
}

/// 32 MiB of 32-bit MMIO per secondary bus.
fn mem32_base(bus: u64) -> u64 {
    0x8000_0000 + bus * 0x0200_0000
}

/// 512 MiB of 64-bit prefetchable MMIO per secondary bus.
fn pref_base(bus: u64) -> u64 {
    0x40_0000_0000 + bus * 0x2000_0000
}

fn io_base(bus: u32) -> u64 {
    0x3000 + u64::from(bus) * 0x100
}
