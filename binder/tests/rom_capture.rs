// SPDX-License-Identifier: MIT OR Apache-2.0
//! ROM capture: the recorded sysfs sequence (and its restore order), storage, `rom persist`,
//! `rom known`. What a real card answers is proven in the QEMU boots.

mod common;

use std::io;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{rom_image, Dev, FakeTree};
use vfio_early_core::outcome::Deadline;
use vfio_early_core::pci::Bdf;
use vfio_early_engine::apply::{Kernel, ModprobeError};
use vfio_early_engine::romread::{self as capture, Access};
use vfio_early_engine::romstore::{self, Verdict};
use vfio_early_system::files::Dir;
use vfio_early_system::sysfs::{self, Root};

/// Records writes; never touches the tree (a write to the fake `rom` file would clobber it).
/// Writes of `fail` (an attribute and value) fail with EIO.
struct Recorder<'a> {
    root: &'a Path,
    calls: Vec<String>,
    fail: Option<&'static str>,
}

impl Kernel for Recorder<'_> {
    fn write(&mut self, path: &Path, value: &str) -> io::Result<()> {
        let rel = path.strip_prefix(self.root).unwrap_or(path);
        let name = rel
            .strip_prefix("sys/bus/pci/devices/0000:01:00.0")
            .unwrap_or(rel);
        let call = format!("{} <- {value:?}", name.display());
        self.calls.push(call.clone());
        match self.fail {
            Some(f) if f == call => Err(io::Error::from_raw_os_error(5)),
            _ => Ok(()),
        }
    }
    fn modprobe(&mut self, _: &str, _: Instant, _: Option<&Dir>) -> Result<(), ModprobeError> {
        Ok(())
    }
}

/// A two-image ROM (legacy + EFI) for 1234:1111, as the QEMU tests generate.
fn rom_bytes() -> Vec<u8> {
    [
        rom_image(0x1234, 0x1111, 0x030000, 2, 0, false),
        rom_image(0x1234, 0x1111, 0x030000, 1, 3, true),
    ]
    .concat()
}

/// A capture context on the tree with a recording kernel.
fn with_ctx<T>(
    t: &FakeTree,
    limit: Duration,
    fail: Option<&'static str>,
    f: impl FnOnce(&mut Access<'_, Recorder<'_>>) -> T,
) -> (T, Vec<String>) {
    let root = Root::new(&t.root);
    let mut k = Recorder {
        root: &t.root,
        calls: vec![],
        fail,
    };
    let mut access = Access {
        root: &root,
        kernel: &mut k,
        deadline: Deadline {
            start: Instant::now(),
            limit,
        },
    };
    let r = f(&mut access);
    (r, k.calls)
}

fn card(t: &FakeTree, rom: &[u8]) -> Bdf {
    t.device(Dev::new("01:00.0", 0x1234, 0x1111, 0x030000).group(1));
    let dev = "sys/bus/pci/devices/0000:01:00.0";
    t.bytes(&format!("{dev}/rom"), rom)
        .file(&format!("{dev}/power/control"), "auto\n");
    Bdf::parse("01:00.0").unwrap()
}

#[test]
fn read_sets_and_restores_in_reverse_order() {
    let t = FakeTree::new();
    let bdf = card(&t, &rom_bytes());
    let (read, calls) = with_ctx(&t, Duration::from_secs(10), None, |ctx| {
        capture::read_rom(ctx, &bdf)
    });
    let read = read.unwrap();
    assert_eq!(read.data, rom_bytes());
    assert!(read.enabled_here, "enable was 0 in the tree");
    assert_eq!(
        calls,
        [
            "power/control <- \"on\"",
            "enable <- \"1\"",
            "rom <- \"1\\n\"",
            "rom <- \"0\\n\"",
            "enable <- \"0\"",
            "power/control <- \"auto\"",
        ]
    );
}

#[test]
fn a_failed_restore_is_reported_and_the_others_still_run() {
    let t = FakeTree::new();
    let bdf = card(&t, &rom_bytes());
    let (read, calls) = with_ctx(
        &t,
        Duration::from_secs(10),
        Some("enable <- \"0\""),
        |ctx| capture::read_rom(ctx, &bdf),
    );
    let read = read.unwrap();
    assert_eq!(calls.len(), 6, "every restore tried: {calls:?}");
    assert_eq!(read.not_restored.len(), 1);
    assert_eq!(read.not_restored[0].0, "enable");
    assert!(read.not_restored[0].1.contains("os error 5"));
    // The sidecar says so.
    let st = romstore::store(
        &Root::new(&t.root),
        &sysfs::read_device(&Root::new(&t.root), &bdf, None)
            .unwrap()
            .unwrap(),
        &read,
        false,
        "test",
    )
    .ok()
    .unwrap();
    let side = std::fs::read_to_string(romstore::sidecar(&st.path)).unwrap();
    assert!(side.contains("\"not_restored\":[\"enable: "), "{side}");
}

#[test]
fn no_rom_bar_and_past_the_deadline_read_nothing() {
    let t = FakeTree::new();
    let bdf = card(&t, &rom_bytes());
    t.remove("sys/bus/pci/devices/0000:01:00.0/rom");
    let (r, calls) = with_ctx(&t, Duration::from_secs(10), None, |ctx| {
        capture::read_rom(ctx, &bdf)
    });
    assert!(matches!(r, Err(capture::CaptureError::NoRomBar)));
    assert!(calls.is_empty());
    card(&t, &rom_bytes());
    let (r, calls) = with_ctx(&t, Duration::ZERO, None, |ctx| {
        std::thread::sleep(Duration::from_millis(2));
        capture::read_rom(ctx, &bdf)
    });
    assert!(matches!(r, Err(capture::CaptureError::Deadline)));
    assert!(calls.is_empty());
}

fn stored(t: &FakeTree, data: &[u8]) -> romstore::Stored {
    let root = Root::new(&t.root);
    let dev = sysfs::read_device(&root, &Bdf::parse("01:00.0").unwrap(), None)
        .unwrap()
        .unwrap();
    let read = vfio_early_engine::romstore::RomRead {
        data: data.to_vec(),
        enabled_here: true,
        not_restored: Default::default(),
    };
    romstore::store(&root, &dev, &read, false, "6.1.0-test")
        .map_err(|_| "not stored")
        .unwrap()
}

#[test]
fn stores_the_clean_chain_with_a_sidecar_then_persist_moves_it_once() {
    let t = FakeTree::new();
    card(&t, &rom_bytes());
    // The sysfs read returns the whole BAR: the chain plus padding.
    let mut padded = rom_bytes();
    padded.resize(4096, 0xff);
    let st = stored(&t, &padded);
    assert_eq!(st.verdict, Verdict::Clean);
    assert_eq!(
        std::fs::read(&st.path).unwrap(),
        rom_bytes(),
        "only the chain is kept"
    );
    let side = std::fs::read_to_string(romstore::sidecar(&st.path)).unwrap();
    let sha = format!("\"sha256\":\"{}\"", romstore::sha256_hex(&rom_bytes()));
    for needle in [
        sha.as_str(),
        "\"bdf\":\"0000:01:00.0\"",
        "\"vendor\":\"1234\",\"device\":\"1111\"",
        "\"kernel\":\"6.1.0-test\"",
        "\"verdict\":\"clean\"",
        "\"read_bytes\":4096",
        "does not clear memory decoding",
    ] {
        assert!(side.contains(needle), "{needle} not in {side}");
    }

    let bin = env!("CARGO_BIN_EXE_vfio-early");
    let persist = || {
        let out = Command::new(bin)
            .args(["rom", "persist", "--root"])
            .arg(&t.root)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    let (code, out) = persist();
    assert_eq!(code, Some(0), "{out}");
    let name = st.path.file_name().unwrap().to_string_lossy().into_owned();
    let kept = t.path(&format!("var/lib/vfio-early/roms/{name}"));
    assert_eq!(std::fs::read(&kept).unwrap(), rom_bytes());
    assert!(romstore::sidecar(&kept).exists());
    assert!(!st.path.exists(), "moved, not copied");

    // The next boot read it again (the image did not know it yet): dropped, with the hint.
    stored(&t, &padded);
    let (_, out) = persist();
    assert!(
        out.contains("read again at boot although already stored; rebuild the initramfs"),
        "{out}"
    );

    // `rom known` now names it for the image.
    let out = Command::new(bin)
        .args(["rom", "known", "--root"])
        .arg(&t.root)
        .output()
        .unwrap();
    let known = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(
        known,
        format!(
            "1234:1111:0000:0000 {}\n",
            romstore::sha256_hex(&rom_bytes())
        )
    );
}

#[test]
fn a_changed_rom_is_kept_beside_the_old_one() {
    let t = FakeTree::new();
    card(&t, &rom_bytes());
    stored(&t, &rom_bytes());
    let bin = env!("CARGO_BIN_EXE_vfio-early");
    Command::new(bin)
        .args(["rom", "persist", "--root"])
        .arg(&t.root)
        .output()
        .unwrap();
    let mut flashed = rom_bytes();
    flashed[0x100] = 0x42; // new code...
    flashed[6] = flashed[6].wrapping_sub(0x42); // ...and a valid checksum
    stored(&t, &flashed);
    let out = Command::new(bin)
        .args(["rom", "persist", "--root"])
        .arg(&t.root)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("same card, other content: a flashed vBIOS?"),
        "{err}"
    );
    let n = std::fs::read_dir(t.path("var/lib/vfio-early/roms"))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "rom")
        })
        .count();
    assert_eq!(n, 2);
}

#[test]
fn an_invalid_rom_is_not_stored() {
    let t = FakeTree::new();
    card(&t, &[0xff; 2048]);
    let root = Root::new(&t.root);
    let dev = sysfs::read_device(&root, &Bdf::parse("01:00.0").unwrap(), None)
        .unwrap()
        .unwrap();
    let read = vfio_early_engine::romstore::RomRead {
        data: vec![0xff; 2048],
        enabled_here: false,
        not_restored: Default::default(),
    };
    let Err(Ok(report)) = romstore::store(&root, &dev, &read, false, "x") else {
        panic!("stored")
    };
    assert!(!report.ok());
    assert!(!t.exists("run/vfio-early/roms"));
}
