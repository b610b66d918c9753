// SPDX-License-Identifier: MIT OR Apache-2.0
//! `vfio-early addon` on fake kernel trees: what the archive holds (read back by the image
//! reader), byte-for-byte modules in load order, settings that survive the command-line form,
//! the same bytes from the same inputs, and every refusal named with nothing written. The boot
//! with it is the generator suite's (tests/generators: dsd-addon*).

mod common;
#[path = "common/exe.rs"]
mod exe;

use common::FakeTree;
use vfio_early::initrd;
use vfio_early_system::modload::Manifest;

const KVER: &str = "6.1.0-50-amd64";
const MODS: &str = "lib/modules/6.1.0-50-amd64";

/// An ELF relocatable object (what a module is) carrying a `.modinfo` vermagic.
fn module(kver: &str, tag: &str) -> Vec<u8> {
    let mut b = b"\x7fELF\x02\x01\x01\0".to_vec();
    b.resize(64, 0);
    b[16] = 1; // e_type ET_REL
    b.extend_from_slice(format!("\0license=GPL\0vermagic={kver} SMP mod_unload\0{tag}").as_bytes());
    b
}

/// A static executable as far as the program headers go (64-bit, no PT_INTERP).
fn static_elf() -> Vec<u8> {
    let mut b = b"\x7fELF\x02\x01\x01\0".to_vec();
    b.resize(64, 0);
    b[54] = 56; // e_phentsize; e_phnum 0
    b.extend_from_slice(b"static boot build");
    b
}

fn kernel_tree() -> FakeTree {
    let t = FakeTree::new();
    t.file(
        &format!("{MODS}/modules.dep"),
        "kernel/drivers/vfio/pci/vfio-pci.ko: kernel/drivers/vfio/pci/vfio-pci-core.ko kernel/drivers/vfio/vfio.ko kernel/virt/lib/irqbypass.ko\n\
         kernel/drivers/vfio/pci/vfio-pci-core.ko: kernel/drivers/vfio/vfio.ko kernel/virt/lib/irqbypass.ko\n\
         kernel/drivers/vfio/vfio.ko:\n\
         kernel/virt/lib/irqbypass.ko:\n\
         kernel/drivers/vfio/vfio_iommu_type1.ko: kernel/drivers/vfio/vfio.ko\n\
         kernel/drivers/gpu/drm/tiny/bochs.ko:\n",
    )
    .file(
        &format!("{MODS}/modules.softdep"),
        "softdep vfio post: vfio_iommu_type1 vfio_iommu_spapr_tce\n",
    )
    .file(&format!("{MODS}/modules.builtin"), "kernel/drivers/pci/pcie/portdrv.ko\n");
    for (path, tag) in [
        ("kernel/drivers/vfio/pci/vfio-pci.ko", "pci"),
        ("kernel/drivers/vfio/pci/vfio-pci-core.ko", "core"),
        ("kernel/drivers/vfio/vfio.ko", "vfio"),
        ("kernel/virt/lib/irqbypass.ko", "irqbypass"),
        ("kernel/drivers/vfio/vfio_iommu_type1.ko", "type1"),
    ] {
        t.bytes(&format!("{MODS}/{path}"), &module(KVER, tag));
    }
    t.bytes("usr/lib/vfio-early/vfio-early-boot", &static_elf());
    t
}

/// The add-on written to out.img, and its manifest's text.
fn manifest(t: &FakeTree) -> (initrd::Listing, String) {
    const MANIFEST: &str = "usr/lib/vfio-early/addon/manifest";
    let l = initrd::read(&t.path("out.img"), &[MANIFEST]).unwrap();
    let m = String::from_utf8_lossy(&l.files[MANIFEST]).into_owned();
    (l, m)
}

fn addon(t: &FakeTree, extra: &[&str]) -> (i32, String, String) {
    let out = t.path("out.img");
    let mut args = vec!["addon", "--kver", KVER, "-o", out.to_str().unwrap()];
    args.extend_from_slice(extra);
    exe::run(exe::HOST, t, &args)
}

#[test]
fn the_archive_holds_what_a_systemd_initrd_needs_and_nothing_of_the_base() {
    let t = kernel_tree();
    let (code, out, err) = addon(&t, &[]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains(&format!("for kernel {KVER}")) && out.contains("5 modules"),
        "{out}"
    );
    let img = t.path("out.img");
    let bytes = std::fs::read(&img).unwrap();
    assert_eq!(bytes.len() % 4, 0, "padded so another archive may follow");
    let l = initrd::read(
        &img,
        &[
            "usr/lib/vfio-early/addon/manifest",
            "usr/lib/vfio-early/addon/modules/vfio.ko",
            "usr/lib/systemd/system/vfio-early-addon.service",
        ],
    )
    .unwrap();
    assert_eq!(l.parts, ["none"]);
    for (path, mode) in &l.members {
        assert!(
            path.starts_with("usr/") || path == "usr",
            "{path}: only usr/ (bin, sbin, lib, lib64 would replace merged-/usr links)"
        );
        if mode & 0o170000 == 0o040000 {
            assert_eq!(*mode, 0o040755, "{path}");
        }
    }
    assert_eq!(l.members["usr/lib/vfio-early/addon/vfio-early"], 0o100755);
    assert_eq!(
        l.members["usr/lib/systemd/system/sysinit.target.wants/vfio-early-addon.service"],
        0o120777
    );
    let m = Manifest::parse(&String::from_utf8_lossy(
        &l.files["usr/lib/vfio-early/addon/manifest"],
    ))
    .unwrap();
    assert_eq!(m.kernel.as_str(), KVER);
    let names: Vec<&str> = m.modules.iter().map(|m| m.name.as_str()).collect();
    // Each after what it needs (modules.dep's order), vfio_iommu_type1 right after vfio (its
    // post softdep).
    assert_eq!(
        names,
        [
            "vfio",
            "vfio_iommu_type1",
            "irqbypass",
            "vfio_pci_core",
            "vfio_pci"
        ]
    );
    assert_eq!(
        l.files["usr/lib/vfio-early/addon/modules/vfio.ko"],
        module(KVER, "vfio"),
        "byte for byte"
    );
    assert!(!l.has("usr/lib/vfio-early/addon/modules/bochs.ko"));
    let unit = String::from_utf8_lossy(&l.files["usr/lib/systemd/system/vfio-early-addon.service"]);
    assert!(
        unit.contains("ExecStart=/usr/lib/vfio-early/addon/vfio-early fence"),
        "{unit}"
    );
    assert!(
        unit.contains("ConditionPathExists=!/usr/bin/vfio-early"),
        "{unit}"
    );

    // The same inputs, the same bytes (SOURCE_DATE_EPOCH unset: every mtime 0).
    let (code, _, err) = addon(&t, &[]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(std::fs::read(&img).unwrap(), bytes);
    // Binary and modules plus at most 8 KiB (the budget; the suite measures the real one).
    let payload = static_elf().len() + 5 * module(KVER, "core").len();
    assert!(
        bytes.len() - payload <= 8192,
        "{} bytes beyond the payload",
        bytes.len() - payload
    );
}

#[test]
fn settings_ride_as_a_cmdline_d_file_the_boot_reads_back() {
    let t = kernel_tree();
    t.file(
        "etc/vfio-early.conf",
        "# mine\ndevices = 01:00.0@1234:1111\ngroup = whole\ntimeout = 5\n",
    );
    let conf = t.path("etc/vfio-early.conf");
    let (code, _, err) = addon(&t, &["--conf", conf.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    let want = "etc/cmdline.d/zz-vfio-early-addon.conf";
    let l = initrd::read(&t.path("out.img"), &[want]).unwrap();
    let words = String::from_utf8_lossy(&l.files[want]).into_owned();
    assert!(
        words.contains("vfio-early.devices=01:00.0@1234:1111 "),
        "{words}"
    );
    assert!(words.contains("vfio-early.group=whole") && words.contains("vfio-early.timeout=5"));
    // The boot build's own reading of cmdline.d: a tree with that file only plans that device.
    let b = FakeTree::new();
    b.file("etc/cmdline.d/zz-vfio-early-addon.conf", &words)
        .cmdline("quiet");
    let (code, out, err) = exe::run(exe::HOST, &b, &["plan"]);
    assert!(
        out.contains("01:00.0") || err.contains("01:00.0"),
        "{code} {out} {err}"
    );
    assert!(
        !err.contains("not `key") && !err.contains("unknown"),
        "{err}"
    );

    // A config the boot parser rejects is refused, naming the token; nothing written.
    std::fs::remove_file(t.path("out.img")).unwrap();
    t.file("etc/vfio-early.conf", "devices = 01:00.0\ncolour = blue\n");
    let (code, _, err) = addon(&t, &["--conf", conf.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(err.contains("colour"), "{err}");
    assert!(!t.exists("out.img"));
}

#[test]
fn every_malformed_input_is_refused_by_name_and_nothing_is_written() {
    type Break = fn(&FakeTree);
    let cases: [(&str, Break, &str); 7] = [
        (
            "dynamic binary",
            |t| {
                // Debian's /bin/sh is dynamically linked.
                t.bytes(
                    "usr/lib/vfio-early/vfio-early-boot",
                    &std::fs::read("/bin/sh").unwrap(),
                );
            },
            "dynamically linked",
        ),
        (
            "not an executable",
            |t| {
                t.file("usr/lib/vfio-early/vfio-early-boot", "#!/bin/sh\n");
            },
            "not an ELF executable",
        ),
        (
            "no binary",
            |t| {
                t.remove("usr/lib/vfio-early/vfio-early-boot");
            },
            "vfio-early-boot",
        ),
        (
            "missing module",
            |t| {
                t.remove(&format!("{MODS}/kernel/virt/lib/irqbypass.ko"));
            },
            "irqbypass.ko: modules.dep names it, but the file is missing",
        ),
        (
            "another kernel's module",
            |t| {
                t.bytes(
                    &format!("{MODS}/kernel/drivers/vfio/vfio.ko"),
                    &module("6.1.0-49-amd64", "old"),
                );
            },
            "is a module for kernel 6.1.0-49-amd64, not 6.1.0-50-amd64",
        ),
        (
            "no vfio-pci",
            |t| {
                t.file(
                    &format!("{MODS}/modules.dep"),
                    "kernel/drivers/gpu/drm/tiny/bochs.ko:\n",
                );
            },
            "has no vfio-pci",
        ),
        (
            "no modules.dep",
            |t| {
                t.remove(&format!("{MODS}/modules.dep"));
            },
            "depmod 6.1.0-50-amd64",
        ),
    ];
    for (what, damage, said) in cases {
        let t = kernel_tree();
        t.file("out.img", "the old add-on");
        damage(&t);
        let (code, _, err) = addon(&t, &[]);
        assert_eq!(code, 1, "{what}: {err}");
        assert!(err.contains(said), "{what}: {err}");
        assert_eq!(
            t.read("out.img"),
            "the old add-on",
            "{what}: the old file stays"
        );
    }
    // No such kernel; a kernel release that is a path.
    let t = kernel_tree();
    let (code, _, err) = exe::run(exe::HOST, &t, &["addon", "--kver", "9.9.9", "-o", "x.img"]);
    assert_eq!(code, 1);
    assert!(err.contains("no modules for kernel 9.9.9"), "{err}");
    let (code, _, err) = exe::run(
        exe::HOST,
        &t,
        &["addon", "--kver", "../../x", "-o", "x.img"],
    );
    assert_eq!(code, 2);
    assert!(err.contains("\"../../x\" is not a kernel release"), "{err}");
    let (code, _, err) = exe::run(exe::HOST, &t, &["addon", "--kver", KVER]);
    assert_eq!(code, 2);
    assert!(err.contains("-o FILE"), "{err}");
}

/// `data` compressed by xz (as Debian's kernels compress modules).
fn xz(data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut c = std::process::Command::new("xz")
        .args(["-c", "--check=crc32"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("xz");
    c.stdin.take().unwrap().write_all(data).unwrap();
    let out = c.wait_with_output().unwrap();
    assert!(out.status.success());
    out.stdout
}

#[test]
fn compressed_modules_need_a_kernel_that_decompresses() {
    let t = kernel_tree();
    let dep = t
        .read(&format!("{MODS}/modules.dep"))
        .replace("vfio.ko", "vfio.ko.xz");
    t.file(&format!("{MODS}/modules.dep"), &dep)
        .bytes(
            &format!("{MODS}/kernel/drivers/vfio/vfio.ko.xz"),
            &xz(&module(KVER, "vfio")),
        )
        .file(
            &format!("boot/config-{KVER}"),
            "CONFIG_MODULES=y\n# CONFIG_MODULE_DECOMPRESS is not set\n",
        );
    let (code, _, err) = addon(&t, &[]);
    assert_eq!(code, 1);
    assert!(err.contains("CONFIG_MODULE_DECOMPRESS is not set"), "{err}");
    t.file(
        &format!("boot/config-{KVER}"),
        "CONFIG_MODULE_DECOMPRESS=y\n",
    );
    let (code, _, err) = addon(&t, &[]);
    assert_eq!(code, 0, "{err}");
    let (_, m) = manifest(&t);
    assert!(m.contains("module vfio vfio.ko.xz\n"), "{m}");
}

#[test]
fn the_rdinit_shim_rides_along_when_the_package_has_it() {
    let t = kernel_tree();
    let (code, out, err) = addon(&t, &[]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("no rdinit shim"), "{out}");
    let l = initrd::read(&t.path("out.img"), &[]).unwrap();
    assert!(!l.has("usr/lib/vfio-early/init"));

    let mut shim = static_elf();
    shim.extend_from_slice(b" shim");
    t.bytes("usr/lib/vfio-early/init", &shim);
    let (code, out, err) = addon(&t, &[]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains(&format!("the rdinit shim {}", shim.len())),
        "{out}"
    );
    let l = initrd::read(&t.path("out.img"), &["usr/lib/vfio-early/init"]).unwrap();
    assert_eq!(l.members["usr/lib/vfio-early/init"], 0o100755);
    assert_eq!(l.files["usr/lib/vfio-early/init"], shim, "byte for byte");

    let (code, out, _) = addon(&t, &["--no-init"]);
    assert_eq!(code, 0);
    assert!(out.contains("no rdinit shim"), "{out}");
    // Named, it must be there and static; both flags are a usage error.
    let missing = t.path("nope");
    let (code, _, err) = addon(&t, &["--init", missing.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(err.contains("nope: no such file"), "{err}");
    let (code, _, err) = addon(&t, &["--init", "/bin/sh"]);
    assert_eq!(code, 1);
    assert!(err.contains("dynamically linked"), "{err}");
    let (code, _, err) = addon(&t, &["--init", "/x", "--no-init"]);
    assert_eq!(code, 2, "{err}");
}

#[test]
fn the_output_is_a_regular_file_or_nothing_and_keeps_its_mode() {
    use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
    let t = kernel_tree();
    let out = t.path("out.img");
    // Whatever is not a regular file is refused by kind and left as it was (`-o /dev/null`
    // turned a system's /dev/null into a 1 MB file).
    nix::unistd::mkfifo(&out, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    let (code, _, err) = addon(&t, &[]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("a FIFO, not a regular file: not replaced"),
        "{err}"
    );
    assert!(std::fs::symlink_metadata(&out)
        .unwrap()
        .file_type()
        .is_fifo());
    std::fs::remove_file(&out).unwrap();
    std::fs::create_dir(&out).unwrap();
    let (code, _, err) = addon(&t, &[]);
    assert_eq!(code, 2);
    assert!(err.contains("a directory, not a regular file"), "{err}");
    std::fs::remove_dir(&out).unwrap();
    t.file("target.img", "keep me");
    std::os::unix::fs::symlink("target.img", &out).unwrap();
    let (code, _, err) = addon(&t, &[]);
    assert_eq!(code, 2);
    assert!(err.contains("a symbolic link: not replaced"), "{err}");
    assert_eq!(t.read("target.img"), "keep me");
    std::fs::remove_file(&out).unwrap();
    // An existing file: replaced whole, its 0600 kept (it was made 0644).
    t.file("out.img", "old");
    std::fs::set_permissions(&out, std::fs::Permissions::from_mode(0o600)).unwrap();
    let (code, _, err) = addon(&t, &[]);
    assert_eq!(code, 0, "{err}");
    let m = std::fs::metadata(&out).unwrap();
    assert_eq!(m.mode() & 0o777, 0o600);
    assert!(m.len() > 1000);
    // `-o -`: the archive on stdout, nothing on disk.
    let (code, stdout, err) = exe::run(exe::HOST, &t, &["addon", "--kver", KVER, "-o", "-"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        stdout.starts_with("070701"),
        "{}",
        &stdout[..stdout.len().min(40)]
    );
    assert!(err.contains("wrote the add-on to stdout"), "{err}");
    assert!(!t.path("-").exists());
}

/// A hostile input: its name, how it is made, extra arguments, what the refusal says.
type Case<'a> = (&'a str, Box<dyn Fn(&FakeTree) + 'a>, Vec<&'a str>, &'a str);

#[test]
fn every_input_is_a_regular_file_read_with_a_cap_and_every_module_a_module() {
    use std::os::unix::fs::symlink;
    let vfio = format!("{MODS}/kernel/drivers/vfio/vfio.ko");
    let mkfifo = |t: &FakeTree, rel: &str| {
        let p = t.path(rel);
        let _ = std::fs::remove_file(&p);
        nix::unistd::mkfifo(&p, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    };
    let cases: Vec<Case> = vec![
        (
            "an empty module",
            Box::new(|t: &FakeTree| {
                t.bytes(&vfio, b"");
            }),
            vec![],
            "vfio.ko is not a kernel module (not an ELF file)",
        ),
        (
            "a truncated module",
            Box::new(|t: &FakeTree| {
                t.bytes(&vfio, &module(KVER, "vfio")[..30]);
            }),
            vec![],
            "vfio.ko is not a kernel module (not an ELF file)",
        ),
        (
            "a module that is a link to text",
            Box::new(|t: &FakeTree| {
                t.file("etc/passwd", "root:x:0:0:root:/root:/bin/sh\n")
                    .remove(&vfio);
                symlink(t.path("etc/passwd"), t.path(&vfio)).unwrap();
            }),
            vec![],
            "vfio.ko is not a kernel module (not an ELF file)",
        ),
        (
            "a module that is a link to /dev/zero",
            Box::new(|t: &FakeTree| {
                t.remove(&vfio);
                symlink("/dev/zero", t.path(&vfio)).unwrap();
            }),
            vec![],
            "vfio.ko: not a regular file",
        ),
        (
            "an executable in a module's place",
            Box::new(|t: &FakeTree| {
                t.bytes(&vfio, &static_elf());
            }),
            vec![],
            "an ELF file, but not a relocatable object",
        ),
        (
            "a module without vermagic",
            Box::new(|t: &FakeTree| {
                let mut m = module(KVER, "vfio");
                m.truncate(64);
                t.bytes(&vfio, &m);
            }),
            vec![],
            "no vermagic in its .modinfo",
        ),
        (
            "modules.dep a FIFO",
            Box::new(|t: &FakeTree| {
                mkfifo(t, &format!("{MODS}/modules.dep"));
            }),
            vec![],
            "modules.dep: not a regular file",
        ),
        (
            "a 300 MB modules.dep",
            Box::new(|t: &FakeTree| {
                let f = std::fs::OpenOptions::new()
                    .append(true)
                    .open(t.path(&format!("{MODS}/modules.dep")))
                    .unwrap();
                f.set_len(300 << 20).unwrap();
            }),
            vec![],
            "modules.dep: longer than 16777216 bytes",
        ),
        (
            "--conf a FIFO",
            Box::new(|t: &FakeTree| {
                mkfifo(t, "etc/vfio-early.conf");
            }),
            vec!["--conf", "etc/vfio-early.conf"],
            "vfio-early.conf: not a regular file",
        ),
        (
            "an xz bomb in a module's place",
            Box::new(|t: &FakeTree| {
                let dep = t
                    .read(&format!("{MODS}/modules.dep"))
                    .replace("vfio.ko", "vfio.ko.xz");
                t.file(&format!("{MODS}/modules.dep"), &dep)
                    .file(
                        &format!("boot/config-{KVER}"),
                        "CONFIG_MODULE_DECOMPRESS=y\n",
                    )
                    .bytes(&format!("{vfio}.xz"), &xz(&vec![0u8; 100 << 20]));
            }),
            vec![],
            "decompresses to more than 67108864 bytes",
        ),
    ];
    for (name, setup, extra, needle) in cases {
        let t = kernel_tree();
        setup(&t);
        let extra: Vec<String> = extra
            .iter()
            .map(|a| {
                if a.starts_with("etc/") {
                    t.path(a).to_string_lossy().into_owned()
                } else {
                    a.to_string()
                }
            })
            .collect();
        let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
        let (code, _, err) = addon(&t, &extra);
        assert_ne!(code, 0, "{name}: {err}");
        assert!(err.contains(needle), "{name}: want {needle:?} in {err}");
        assert!(!t.path("out.img").exists(), "{name}: nothing written");
    }
    // A module built into the kernel is not wanted, even with a stale file in modules.dep.
    let t = kernel_tree();
    t.file(
        &format!("{MODS}/modules.builtin"),
        "kernel/drivers/pci/pcie/portdrv.ko\nkernel/virt/lib/irqbypass.ko\n",
    );
    let (code, _, err) = addon(&t, &[]);
    assert_eq!(code, 0, "{err}");
    let (l, m) = manifest(&t);
    assert!(!m.contains("irqbypass"), "{m}");
    assert!(!l.has("usr/lib/vfio-early/addon/modules/irqbypass.ko"));
}
