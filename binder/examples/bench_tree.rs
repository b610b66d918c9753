// SPDX-License-Identifier: MIT OR Apache-2.0
//! Generates the benchmark's fake root: `cargo run --example bench_tree -- DIR [--modprobe
//! exe|bind|log|noop] [--shell PATH] [--devices N] [--targets 1|8] [--entries address|id]
//! [--prebound] [--all-bars] [--foreign-parts]` fills DIR (absent or empty) and prints only the target BDFs, space
//! separated, for tests/bench/bench.sh to hand to the classic script.
//!
//! The default machine (no option but `--modprobe`/`--shell`) is the one every earlier figure was
//! measured on, byte for byte, except `proc/bus/pci/devices` (now in the kernel's full format; no
//! address entry reads it):
//! one PCI domain, 256 functions in 64 IOMMU groups of 4, like a two-socket workstation with many
//! cards (every group as the kernel would form it: functions of one multi-function device without
//! ACS between them share a group; ACS root ports isolate buses).
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
//! Other machines, for the scaling table:
//! - `--devices N`: 256 (the default), any multiple of 256 up to 65536, or 16. A multiple of 256
//!   repeats the machine above in PCI domains 0000, 0001, ... (a many-segment server: each domain
//!   its own root ports, cards, NICs and IOMMU groups, numbered on from the previous domain's; the
//!   boot display only in domain 0). Domain d's windows sit at CPU address `d << 44` above
//!   domain 0's, as on arm64 servers where every segment's 32-bit window is translated up high.
//!   16 is a desktop: one slot of 4 root ports (group 0) and NVIDIA cards on buses 01-03
//!   (groups 1-3), 01 the boot display: room for one target only.
//! - `--targets 1|8` (default 8): the first target (0000:03:00.0) or all eight; always in domain
//!   0, so an address entry's plan is the same at every size.
//! - `--entries address|id` (default address): `id` gives the target cards a model no other card
//!   has (NVIDIA TU104 10de:1e87, AMD Navi 22 1002:73df) and lists those IDs instead of the
//!   addresses, so an ID entry matches exactly the targets (the binder refuses one that matches
//!   more than 64 devices).
//! - `--foreign-parts`: the cards' USB and UCSI functions carry another vendor's ID (1b21,
//!   ASMedia), so they are not the cards' parts: the binder takes each target and its audio only,
//!   the job issue 12's syscall budget was set on (before issue 28 took the whole card).
//! - `--all-bars`: `proc/iomem` lists every memory BAR of every function (ROMs, 64-bit BARs, the
//!   audio, USB and second NIC BARs) and every bridge's prefetchable window, as the kernel does;
//!   without it, only what the default machine has always listed (each display's first two BARs,
//!   each NIC's BAR 0). The scaling table uses it at every size: about 17 KiB per 256 devices.
//!
//! Every device has its 256-byte `config` (`Dev::config`: the IDs, class, header type and BARs
//! of its other files), which `lspci -A linux-sysfs` reads (bench.sh part 4).
//!
//! `proc/bus/pci/devices` is written as drivers/pci/proc.c prints it (bus+devfn, vendor+device,
//! IRQ, 7 base addresses with their flag bits, 7 sizes, the driver): about 256 bytes a line, so
//! 1 MiB at 4096 devices. The binder's ID entries pre-filter with it.
//!
//! `sbin/modprobe`:
//! - `exe` (bench.sh's default table): a symlink to this very program, which acts as the fake modprobe
//!   when called by a name ending in `modprobe` (logs, honours `modprobe.exit`, runs
//!   `FakeTree::vfio_pci_init`, imitating vfio-pci's module init, so the binder's verification
//!   succeeds). Cheapest imitation: one exec and a few syscalls per device; build the example
//!   static (musl) so the exec is quick.
//! - `bind` (default): the shell script of `Modprobe::Bind`, run by `--shell` (default `/bin/sh`);
//!   about 100 times costlier than `exe` (byte-at-a-time `read`, one `ln` fork per link).
//! - `log`: records the call only; nothing gets bound, so the binder takes its failure path.
//! - `noop`: does next to nothing and exits 0: a 301-byte static x86-64 ELF (elsewhere a
//!   shell script) that makes 3 syscalls: `readlink(/proc/self/exe)` to find the tree,
//!   `rename(sys/bus/pci/drivers/.vfio-pci, sys/bus/pci/drivers/vfio-pci)`, `exit_group(0)`.
//!   Without `--prebound` there is nothing to rename: it has done nothing.
//!
//! `--prebound`, with `noop`: the trick that isolates each tool's own work from the kernel
//! stand-in. The devices the binder will fence (each target and its audio function) already have
//! their `driver -> ../../../bus/pci/drivers/vfio-pci` link, while their `uevent` has no
//! `DRIVER=` line; vfio-pci's directory as its module init would leave it (`bind`, `unbind`,
//! `new_id`, `remove_id` and a link per device) is staged as `drivers/.vfio-pci`. The binder reads
//! the driver from `uevent` when it scans (sysfs.rs `read_device`: free, so it fences them) and
//! sees no `drivers/vfio-pci` (`Root::driver_registered`: not loaded, so it runs modprobe); the
//! modprobe's one rename "loads" vfio-pci, with every fenced device already bound; the binder
//! verifies from what the kernel shows after modprobe (vfio-pci's directory, the `driver` links:
//! `Root::driver_of`) and reports "N bound". The classic script writes its overrides and runs the same modprobe.
//! Both take their normal success path at a constant, equal cost for the stand-in, so what is
//! left to measure is each tool's own work. (Were `drivers/vfio-pci` there from the start,
//! vfio-pci would count as loaded and the binder would write `drivers_probe` per device instead
//! of running modprobe: another path.) bench.sh checks after every run that the rename happened.

#[path = "../tests/common/mod.rs"]
mod common;

use common::{Dev, FakeTree, Modprobe};
use std::fmt::Write as _;
use std::fs::{self, OpenOptions};
use std::io::Write as _;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

const MEM32: u64 = 0x40200; // IORESOURCE_MEM | SIZEALIGN
const MEM64_PREF: u64 = 0x14220c; // MEM | MEM_64 | PREFETCH | SIZEALIGN, BAR type bits 0xc
const IO: u64 = 0x40101; // IORESOURCE_IO | SIZEALIGN, BAR space bit
const ROM: u64 = 0x46200; // MEM | READONLY | PREFETCH | SIZEALIGN
const ROM_SHADOW: u64 = 0x212; // MEM | PCI_FIXED | ROM_SHADOW (0x2)
const IORESOURCE_MEM: u64 = 0x200;
const IORESOURCE_MEM_64: u64 = 0x100000;

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
/// The target cards' own models with `--entries id`: TU104 (RTX 2080) and Navi 22 (RX 6700 XT).
const NVIDIA_TARGET: Card = Card {
    vendor: 0x10de,
    ids: [0x1e87, 0x10f8, 0x1ad8, 0x1ad9],
    subsys: (0x1043, 0x866a),
};
const AMD_TARGET: Card = Card {
    vendor: 0x1002,
    ids: [0x73df, 0xab28, 0x73a6, 0x73a4],
    subsys: (0x1da2, 0x445e),
};
const GPU_CLASSES: [u32; 4] = [0x030000, 0x040300, 0x0c0330, 0x0c8000];
const TARGET_BUSES: [u32; 8] = [0x03, 0x05, 0x07, 0x09, 0x0b, 0x0d, 0x12, 0x14];

/// The `noop` modprobe's code (x86-64, position independent; `as` of the text below, the strings
/// of `NOOP_STRINGS` right after it). It finds the tree from its own path and renames a staged
/// `drivers/.vfio-pci` (made by `--prebound`) to `drivers/vfio-pci`; when there is none, the
/// rename fails and it has done nothing. Exit status 0 either way.
/// ```text
///     sub rsp, 8192
///     mov eax, 89                 # readlink("/proc/self/exe", rsp, 4000)
///     lea rdi, [rip + exe]
///     mov rsi, rsp
///     mov edx, 4000
///     syscall
///     sub rax, 13                 # strip "sbin/modprobe": the root, with its slash
///     jl 1f
///     mov rbx, rax
///     lea rdi, [rsp + rbx]        # old = root + "sys/bus/pci/drivers/.vfio-pci"
///     lea rsi, [rip + old]
///     mov ecx, 30
///     rep movsb
///     lea rdi, [rsp + 4096]       # new = root + "sys/bus/pci/drivers/vfio-pci"
///     mov rsi, rsp
///     mov rcx, rbx
///     rep movsb
///     lea rsi, [rip + old]
///     mov ecx, 20
///     rep movsb
///     lea rsi, [rip + new]
///     mov ecx, 9
///     rep movsb
///     mov eax, 82                 # rename(old, new)
///     mov rdi, rsp
///     lea rsi, [rsp + 4096]
///     syscall
/// 1:  mov eax, 231                # exit_group(0)
///     xor edi, edi
///     syscall
/// exe: .asciz "/proc/self/exe"
/// old: .asciz "sys/bus/pci/drivers/.vfio-pci"
/// new: .asciz "vfio-pci"
/// ```
#[rustfmt::skip]
const NOOP_CODE: [u8; 127] = [
    0x48, 0x81, 0xec, 0x00, 0x20, 0x00, 0x00, 0xb8, 0x59, 0x00, 0x00, 0x00,
    0x48, 0x8d, 0x3d, 0x6c, 0x00, 0x00, 0x00, 0x48, 0x89, 0xe6, 0xba, 0xa0,
    0x0f, 0x00, 0x00, 0x0f, 0x05, 0x48, 0x83, 0xe8, 0x0d, 0x7c, 0x53, 0x48,
    0x89, 0xc3, 0x48, 0x8d, 0x3c, 0x1c, 0x48, 0x8d, 0x35, 0x5d, 0x00, 0x00,
    0x00, 0xb9, 0x1e, 0x00, 0x00, 0x00, 0xf3, 0xa4, 0x48, 0x8d, 0xbc, 0x24,
    0x00, 0x10, 0x00, 0x00, 0x48, 0x89, 0xe6, 0x48, 0x89, 0xd9, 0xf3, 0xa4,
    0x48, 0x8d, 0x35, 0x3f, 0x00, 0x00, 0x00, 0xb9, 0x14, 0x00, 0x00, 0x00,
    0xf3, 0xa4, 0x48, 0x8d, 0x35, 0x4f, 0x00, 0x00, 0x00, 0xb9, 0x09, 0x00,
    0x00, 0x00, 0xf3, 0xa4, 0xb8, 0x52, 0x00, 0x00, 0x00, 0x48, 0x89, 0xe7,
    0x48, 0x8d, 0xb4, 0x24, 0x00, 0x10, 0x00, 0x00, 0x0f, 0x05, 0xb8, 0xe7,
    0x00, 0x00, 0x00, 0x31, 0xff, 0x0f, 0x05,
];
const NOOP_STRINGS: &[u8] = b"/proc/self/exe\0sys/bus/pci/drivers/.vfio-pci\0vfio-pci\0";

/// A static x86-64 ELF executable of [`NOOP_CODE`]: the ELF header, one `PT_LOAD` (R+X) of the
/// whole file at 0x400000, the code right after the program header.
fn noop_elf() -> Vec<u8> {
    const BASE: u64 = 0x40_0000;
    let body = [&NOOP_CODE[..], NOOP_STRINGS].concat();
    let size = (64 + 56 + body.len()) as u64;
    let mut e = vec![0x7f, b'E', b'L', b'F', 2, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    e.extend_from_slice(&2u16.to_le_bytes()); // ET_EXEC
    e.extend_from_slice(&0x3eu16.to_le_bytes()); // EM_X86_64
    e.extend_from_slice(&1u32.to_le_bytes()); // EV_CURRENT
    e.extend_from_slice(&(BASE + 64 + 56).to_le_bytes()); // e_entry
    e.extend_from_slice(&64u64.to_le_bytes()); // e_phoff
    e.extend_from_slice(&0u64.to_le_bytes()); // e_shoff: no sections
    e.extend_from_slice(&0u32.to_le_bytes()); // e_flags
    e.extend_from_slice(&64u16.to_le_bytes()); // e_ehsize
    e.extend_from_slice(&56u16.to_le_bytes()); // e_phentsize
    e.extend_from_slice(&1u16.to_le_bytes()); // e_phnum
    e.extend_from_slice(&[0; 6]); // e_shentsize, e_shnum, e_shstrndx
    e.extend_from_slice(&1u32.to_le_bytes()); // PT_LOAD
    e.extend_from_slice(&5u32.to_le_bytes()); // PF_R | PF_X
    e.extend_from_slice(&0u64.to_le_bytes()); // p_offset
    e.extend_from_slice(&BASE.to_le_bytes()); // p_vaddr
    e.extend_from_slice(&BASE.to_le_bytes()); // p_paddr
    e.extend_from_slice(&size.to_le_bytes()); // p_filesz
    e.extend_from_slice(&size.to_le_bytes()); // p_memsz
    e.extend_from_slice(&0x1000u64.to_le_bytes()); // p_align
    e.extend_from_slice(&body);
    e
}

fn usage() -> ! {
    eprintln!(
        "usage: bench_tree DIR [--modprobe exe|bind|log|noop] [--shell PATH] [--devices N] \
         [--targets 1|8] [--entries address|id] [--prebound] [--all-bars] [--foreign-parts]"
    );
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

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Exe,
    Noop,
    Script(Modprobe),
}

struct Opts {
    dir: PathBuf,
    kind: Kind,
    shell: String,
    devices: u32,
    targets: usize,
    id_entries: bool,
    prebound: bool,
    all_bars: bool,
    foreign_parts: bool,
}

fn parse_args() -> Opts {
    let mut dir = None;
    let mut o = Opts {
        dir: PathBuf::new(),
        kind: Kind::Script(Modprobe::Bind),
        shell: String::from("/bin/sh"),
        devices: 256,
        targets: 8,
        id_entries: false,
        prebound: false,
        all_bars: false,
        foreign_parts: false,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--modprobe" => {
                o.kind = match args.next().as_deref() {
                    Some("exe") => Kind::Exe,
                    Some("noop") => Kind::Noop,
                    Some("log") => Kind::Script(Modprobe::Log),
                    Some("bind") => Kind::Script(Modprobe::Bind),
                    _ => usage(),
                }
            }
            "--shell" => o.shell = args.next().unwrap_or_else(|| usage()),
            "--devices" => {
                o.devices = match args.next().and_then(|n| n.parse().ok()) {
                    Some(n @ 16) => n,
                    Some(n) if n % 256 == 0 && (256..=65536).contains(&n) => n,
                    _ => usage(),
                }
            }
            "--targets" => {
                o.targets = match args.next().as_deref() {
                    Some("1") => 1,
                    Some("8") => 8,
                    _ => usage(),
                }
            }
            "--entries" => {
                o.id_entries = match args.next().as_deref() {
                    Some("address") => false,
                    Some("id") => true,
                    _ => usage(),
                }
            }
            "--prebound" => o.prebound = true,
            "--all-bars" => o.all_bars = true,
            "--foreign-parts" => o.foreign_parts = true,
            _ if dir.is_none() && !a.starts_with('-') => dir = Some(PathBuf::from(a)),
            _ => usage(),
        }
    }
    o.dir = dir.unwrap_or_else(|| usage());
    o
}

/// The shape of one PCI domain and how many there are.
struct Layout {
    domains: u32,
    /// Slots of 4 root ports on bus 00, one IOMMU group each.
    slots: u32,
    /// Buses 01..=buses hold a card or a NIC, one IOMMU group each.
    buses: u32,
}

impl Layout {
    fn of(devices: u32) -> Layout {
        if devices == 16 {
            Layout {
                domains: 1,
                slots: 1,
                buses: 3,
            }
        } else {
            Layout {
                domains: devices / 256,
                slots: 16,
                buses: 0x30,
            }
        }
    }

    fn groups_per_domain(&self) -> u32 {
        self.slots + self.buses
    }
}

/// Where domain `d`'s windows start, above domain 0's.
fn dom_off(d: u32) -> u64 {
    u64::from(d) << 44
}

/// 32 MiB of 32-bit MMIO per secondary bus.
fn mem32_base(d: u32, bus: u64) -> u64 {
    dom_off(d) + 0x8000_0000 + bus * 0x0200_0000
}

/// 512 MiB of 64-bit prefetchable MMIO per secondary bus.
fn pref_base(d: u32, bus: u64) -> u64 {
    dom_off(d) + 0x40_0000_0000 + bus * 0x2000_0000
}

fn io_base(d: u32, bus: u32) -> u64 {
    u64::from(d) * 0x1_0000 + 0x3000 + u64::from(bus) * 0x100
}

/// One line of `/proc/bus/pci/devices`, as drivers/pci/proc.c `show_device` prints it.
fn proc_pci_line(dev: &Dev, irq: u32) -> String {
    let (bus, rest) = dev.bdf[5..].split_once(':').expect("BDF");
    let (slot, func) = rest.split_once('.').expect("BDF");
    let hex = |s: &str| u32::from_str_radix(s, 16).expect("BDF");
    let mut s = format!(
        "{:02x}{:02x}\t{:04x}{:04x}\t{irq:x}",
        hex(bus),
        hex(slot) << 3 | hex(func),
        dev.vendor,
        dev.device
    );
    let bar = |i: usize| dev.bars.iter().find(|b| b.0 == i).copied();
    for i in 0..7 {
        let v = bar(i).map_or(0, |(_, start, _, flags)| start | (flags & 0xf));
        let _ = write!(s, "\t{v:16x}");
    }
    for i in 0..7 {
        let v = bar(i).map_or(
            0,
            |(_, start, end, _)| {
                if start < end {
                    end - start + 1
                } else {
                    0
                }
            },
        );
        let _ = write!(s, "\t{v:16x}");
    }
    s.push('\t');
    if let Some(d) = &dev.driver {
        s.push_str(d);
    }
    s.push('\n');
    s
}

/// What one bus contributes to `proc/iomem`: its 32-bit window's lines and its prefetchable
/// window's, each `(start, end, name)` under the bus line, plus the BOOTFB inside the boot
/// display's BAR 1.
#[derive(Default)]
struct BusMem {
    low: Vec<(u64, u64, String)>,
    pref: Vec<(u64, u64, String)>,
}

impl BusMem {
    /// The device's memory BARs that go in `proc/iomem` (`all`: every one; else only the ones the
    /// default machine has always listed: `listed`).
    fn add(&mut self, dev: &Dev, all: bool, listed: &[usize]) {
        for &(i, start, end, flags) in &dev.bars {
            if flags & IORESOURCE_MEM == 0 || flags == ROM_SHADOW || i > 6 {
                continue;
            }
            if !all && !listed.contains(&i) {
                continue;
            }
            let line = (start, end, dev.bdf.clone());
            // 64-bit BARs sit in the bridge's prefetchable window, the rest (ROMs too) in its
            // 32-bit one.
            if flags & IORESOURCE_MEM_64 != 0 {
                self.pref.push(line);
            } else {
                self.low.push(line);
            }
        }
        self.low.sort();
        self.pref.sort();
    }
}

fn main() -> ExitCode {
    let argv0 = PathBuf::from(std::env::args_os().next().unwrap_or_default());
    if argv0.to_string_lossy().ends_with("modprobe") {
        return fake_modprobe(&argv0);
    }
    let o = parse_args();
    let lay = Layout::of(o.devices);
    if o.targets > 1 && lay.buses < 0x14 {
        eprintln!(
            "bench_tree: {} devices hold {} cards: room for 1 target, not {}",
            o.devices,
            lay.buses - 1,
            o.targets
        );
        return ExitCode::from(2);
    }
    if o.prebound && o.kind != Kind::Noop {
        eprintln!("bench_tree: --prebound goes with --modprobe noop (nothing would bind for real)");
        return ExitCode::from(2);
    }
    if fs::read_dir(&o.dir).is_ok_and(|mut d| d.next().is_some()) {
        eprintln!("bench_tree: {} is not empty", o.dir.display());
        return ExitCode::from(2);
    }
    let t = FakeTree::at(&o.dir);
    match o.kind {
        Kind::Script(k) => {
            t.modprobe(k, &o.shell);
        }
        Kind::Exe => {
            let me = std::env::current_exe().expect("own path");
            t.remove("sbin/modprobe")
                .symlink("sbin/modprobe", &me.to_string_lossy());
        }
        Kind::Noop => {
            if cfg!(target_arch = "x86_64") {
                t.remove("sbin/modprobe")
                    .bytes("sbin/modprobe", &noop_elf());
                let p = t.path("sbin/modprobe");
                fs::set_permissions(&p, fs::Permissions::from_mode(0o755))
                    .unwrap_or_else(|e| panic!("chmod {}: {e}", p.display()));
            } else {
                t.script(
                    "sbin/modprobe",
                    "#!/bin/sh\n\
                     d=${0%/*}/../sys/bus/pci/drivers\n\
                     if [ -d \"$d/.vfio-pci\" ]; then mv \"$d/.vfio-pci\" \"$d/vfio-pci\"; fi\n\
                     exit 0\n",
                );
            }
        }
    }
    let target_buses = &TARGET_BUSES[..o.targets];

    let mut proc_pci = String::new();
    let mut add = |d: Dev, irq: u32| {
        proc_pci.push_str(&proc_pci_line(&d, irq));
        t.device(d);
    };
    let mut iomem = String::from(
        "00000000-00000fff : Reserved\n\
         00001000-0009ffff : System RAM\n\
         000a0000-000bffff : PCI Bus 0000:00\n\
         000c0000-000dffff : PCI Bus 0000:00\n\
         \x20 000c0000-000cffff : Video ROM\n\
         00100000-7fffffff : System RAM\n",
    );
    let mut targets = Vec::new();
    let mut ids = Vec::new();
    for dom in 0..lay.domains {
        let goff = dom * lay.groups_per_domain();
        // Bus 00: slots of 4 root ports, one group per slot.
        for slot in 0..lay.slots {
            for f in 0..4u32 {
                let port = slot * 4 + f; // leads to bus port+1
                let bus = u64::from(port + 1);
                let mut d = Dev::new(
                    &format!("{dom:04x}:00:{:02x}.{f}", slot + 1),
                    0x1022,
                    0x1483,
                    0x060400,
                )
                .subsys(0x1022, 0x1453)
                .group(goff + slot)
                .driver("pcieport");
                if bus <= u64::from(lay.buses) {
                    // Bridge windows (resource lines 14, 15) only toward populated buses.
                    let (m, p) = (mem32_base(dom, bus), pref_base(dom, bus));
                    d = d
                        .bar(14, m, m + 0x01ff_ffff, 0x200)
                        .bar(15, p, p + 0x1fff_ffff, 0x102200);
                }
                add(d, 0x18 + (port & 7));
            }
        }

        let _ = writeln!(
            iomem,
            "{:08x}-{:08x} : PCI Bus {dom:04x}:00",
            dom_off(dom) + 0x8000_0000,
            dom_off(dom) + 0xefff_ffff
        );
        let mut pref = String::new();
        // Buses 01-30: 24 cards then 24 NICs, one group per bus.
        for bus in 1..=lay.buses {
            let group = goff + lay.slots - 1 + bus;
            let (m, p) = (mem32_base(dom, bus.into()), pref_base(dom, bus.into()));
            let mut mem = BusMem::default();
            if bus <= 0x18 {
                let target = dom == 0 && target_buses.contains(&bus);
                let card = match (bus <= 0x10, target && o.id_entries) {
                    (true, false) => &NVIDIA,
                    (true, true) => &NVIDIA_TARGET,
                    (false, false) => &AMD,
                    (false, true) => &AMD_TARGET,
                };
                let boot = dom == 0 && bus == 1;
                for f in 0..4u32 {
                    let bdf = format!("{dom:04x}:{bus:02x}:00.{f}");
                    let vendor = match f {
                        2 | 3 if o.foreign_parts => 0x1b21,
                        _ => card.vendor,
                    };
                    let mut d =
                        Dev::new(&bdf, vendor, card.ids[f as usize], GPU_CLASSES[f as usize])
                            .subsys(card.subsys.0, card.subsys.1)
                            .group(group);
                    match f {
                        0 => {
                            let io = io_base(dom, bus);
                            d = d
                                .boot_vga(boot)
                                .bar(0, m, m + 0x00ff_ffff, MEM32)
                                .bar(1, p, p + 0x0fff_ffff, MEM64_PREF)
                                .bar(3, p + 0x1000_0000, p + 0x11ff_ffff, MEM64_PREF)
                                .bar(5, io, io + 0x7f, IO);
                            d = if boot {
                                d.bar(6, 0xc0000, 0xdffff, ROM_SHADOW)
                            } else {
                                d.bar(6, m + 0x0100_0000, m + 0x0107_ffff, ROM)
                            };
                            if target {
                                targets.push(bdf.clone());
                                let id = format!("{:04x}:{:04x}", card.vendor, card.ids[0]);
                                if !ids.contains(&id) {
                                    ids.push(id);
                                }
                            }
                            mem.add(&d, o.all_bars, &[0, 1]);
                        }
                        1 => {
                            d = d.bar(0, m + 0x0108_0000, m + 0x0108_3fff, MEM32);
                            mem.add(&d, o.all_bars, &[]);
                        }
                        2 => {
                            d = d.bar(0, p + 0x1200_0000, p + 0x1203_ffff, MEM64_PREF);
                            mem.add(&d, o.all_bars, &[]);
                        }
                        _ => {
                            d = d.bar(0, m + 0x0108_4000, m + 0x0108_4fff, MEM32);
                            mem.add(&d, o.all_bars, &[]);
                        }
                    }
                    add(d, 0x10 + ((bus * 4 + f) & 0x1f));
                }
            } else {
                for f in 0..4u32 {
                    let bdf = format!("{dom:04x}:{bus:02x}:00.{f}");
                    let b0 = m + u64::from(f) * 0x0010_0000;
                    let b3 = m + 0x0100_0000 + u64::from(f) * 0x4000;
                    let d = Dev::new(&bdf, 0x8086, 0x1521, 0x020000)
                        .subsys(0x8086, 0x5001)
                        .group(group)
                        .bar(0, b0, b0 + 0x000f_ffff, MEM32)
                        .bar(3, b3, b3 + 0x3fff, MEM32);
                    mem.add(&d, o.all_bars, &[0]);
                    add(d, 0x10 + ((bus * 4 + f) & 0x1f));
                }
            }
            // Widths as the kernel's r_show: at least 8 hex digits.
            let _ = writeln!(
                iomem,
                "  {m:08x}-{:08x} : PCI Bus {dom:04x}:{bus:02x}",
                m + 0x01ff_ffff
            );
            for (s, e, name) in &mem.low {
                let _ = writeln!(iomem, "    {s:08x}-{e:08x} : {name}");
            }
            if !mem.pref.is_empty() || o.all_bars {
                let _ = writeln!(
                    pref,
                    "  {p:08x}-{:08x} : PCI Bus {dom:04x}:{bus:02x}",
                    p + 0x1fff_ffff
                );
                for (s, e, name) in &mem.pref {
                    let _ = writeln!(pref, "    {s:08x}-{e:08x} : {name}");
                    if dom == 0 && bus == 1 && *s == p {
                        let _ = writeln!(pref, "      {p:08x}-{:08x} : BOOTFB", p + 0x7f_ffff);
                    }
                }
            }
        }
        if dom == 0 {
            iomem.push_str(
                "f0000000-f7ffffff : PCI MMCONFIG 0000 [bus 00-7f]\n\
                 fed00000-fed003ff : HPET 0\n\
                 100000000-107fffffff : System RAM\n",
            );
        }
        let _ = writeln!(
            iomem,
            "{:08x}-{:08x} : PCI Bus {dom:04x}:00",
            dom_off(dom) + 0x40_0000_0000,
            dom_off(dom) + 0x7f_ffff_ffff
        );
        iomem.push_str(&pref);
    }
    t.file("proc/iomem", &iomem);
    t.file("proc/bus/pci/devices", &proc_pci);

    if o.prebound {
        // vfio-pci as its module init leaves it, staged under another name for `noop` to rename.
        let staged = "sys/bus/pci/drivers/.vfio-pci";
        for f in ["bind", "unbind", "new_id", "remove_id"] {
            t.file(&format!("{staged}/{f}"), "");
        }
        for b in &targets {
            // What the binder fences in `companions` mode: the whole card (each target, its
            // audio, and its USB and UCSI unless they are another vendor's).
            let parts: &[u32] = if o.foreign_parts {
                &[0, 1]
            } else {
                &[0, 1, 2, 3]
            };
            for f in parts.iter().map(|f| format!("{}.{f}", &b[..b.len() - 2])) {
                let rel = FakeTree::dev_rel(&f);
                t.symlink(
                    &format!("{rel}/driver"),
                    "../../../bus/pci/drivers/vfio-pci",
                )
                .symlink(
                    &format!("{staged}/{f}"),
                    &format!("../../../../{}", rel.trim_start_matches("sys/")),
                );
            }
        }
    }

    let entries = if o.id_entries {
        ids.join(",")
    } else {
        targets.join(",")
    };
    t.cmdline(&format!(
        "BOOT_IMAGE=/vmlinuz-6.1.0-18-amd64 root=UUID=0f3d6a7c-5b1e-4f3a-9d2e-7a1c2b3d4e5f ro \
         quiet amd_iommu=on iommu=pt vfio-early.devices={entries}"
    ));
    println!("{}", targets.join(" "));
    ExitCode::SUCCESS
}
