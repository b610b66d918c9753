// SPDX-License-Identifier: MIT OR Apache-2.0
//! `vfio-early check` on fake trees: one test per finding, each warning and error with its fix,
//! the exit codes, the JSON, and a real image (cpio + gzip, as the generators write them).

mod common;
#[path = "common/exe.rs"]
mod exe;
#[path = "common/kmod.rs"]
mod kmod;

use std::process::Command;

use common::{Dev, FakeTree};
use serde_json::Value;

const REL: &str = "6.1.0-test";

/// The QEMU test machine on a host that is ready: IOMMU and interrupt remapping on, the vfio
/// modules in the kernel, card A configured, an initramfs-tools image holding vfio-early, and
/// this boot's binder having bound card A.
fn ready() -> FakeTree {
    let t = kmod::qemu_machine();
    t.set_driver("00:02.0", Some("bochs-drm"));
    t.set_driver("02:00.0", Some("bochs-drm"));
    t.set_driver("02:00.1", Some("snd_hda_intel"));
    t.file("proc/sys/kernel/osrelease", &format!("{REL}\n"))
        .file("proc/interrupts", " 24:  0  IR-PCI-MSI 512000-edge  ahci\n")
        .file(
            &format!("lib/modules/{REL}/modules.dep"),
            "kernel/drivers/vfio/vfio.ko.xz: kernel/drivers/vfio/vfio_iommu_type1.ko.xz\nkernel/drivers/vfio/pci/vfio-pci.ko.xz: kernel/drivers/vfio/pci/vfio-pci-core.ko.xz\n",
        )
        .file(&format!("lib/modules/{REL}/modules.builtin"), "kernel/drivers/pci/pcie/portdrv.ko\n")
        .file(
            &format!("lib/modules/{REL}/modules.alias"),
            "alias pci:v00001234d00001111sv*sd*bc03sc*i* bochs\nalias pci:v*d*sv*sd*bc04sc03i* snd_hda_intel\n",
        )
        .file("etc/vfio-early.conf", "devices = 0000:01:00.0@1234:1111:1af4:1100\n")
        .file("usr/share/initramfs-tools/hook-functions", "")
        .file("usr/sbin/update-initramfs", "")
        .file("usr/lib/vfio-early/vfio-early-boot", "the boot build\n")
        .modprobe_binds();
    kmod::driver_module(&t, REL, "bochs-drm", "bochs", false);
    kmod::driver_module(&t, REL, "snd_hda_intel", "snd_hda_intel", false);
    image(&t, &[]);
    // This boot: the binder ran on the same machine and bound card A.
    let b = FakeTree::new();
    let cp = Command::new("cp")
        .args(["-a", "--no-target-directory"])
        .arg(&t.root)
        .arg(&b.root)
        .output()
        .unwrap();
    assert!(cp.status.success());
    b.set_driver("02:00.0", None);
    b.set_driver("02:00.1", None);
    b.set_driver("00:02.0", None);
    let (code, _, err) = exe::run(exe::boot_exe(), &b, &[]);
    assert_eq!(code, 0, "{err}");
    t.file(
        "run/vfio-early/state.json",
        &b.read("run/vfio-early/state.json"),
    );
    t.set_driver("01:00.0", Some("vfio-pci"));
    t.set_driver("01:00.1", Some("vfio-pci"));
    t
}

/// /boot/initrd.img-REL as initramfs-tools writes it: a gzip-compressed newc cpio of the files
/// vfio-early's hook puts in (the tree's own config and boot build), except those in `skip`.
fn image(t: &FakeTree, skip: &[&str]) {
    let stage = tempfile::tempdir().unwrap();
    let put = |rel: &str, data: &[u8]| {
        if skip.contains(&rel) {
            return;
        }
        let p = stage.path().join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, data).unwrap();
    };
    put(
        "usr/bin/vfio-early",
        t.read("usr/lib/vfio-early/vfio-early-boot").as_bytes(),
    );
    put("scripts/init-top/00-vfio-early", b"#!/bin/sh\n");
    put(
        &format!("usr/lib/modules/{REL}/kernel/drivers/vfio/vfio.ko.xz"),
        b"ko",
    );
    put(
        &format!("usr/lib/modules/{REL}/kernel/drivers/vfio/pci/vfio-pci.ko.xz"),
        b"ko",
    );
    if t.exists("etc/vfio-early.conf") {
        put(
            "etc/vfio-early.conf",
            t.read("etc/vfio-early.conf").as_bytes(),
        );
    }
    let out = Command::new("sh")
        .arg("-c")
        .arg(
            "command -v cpio >/dev/null || { echo 'cpio is missing (tests/setup-host.sh installs it)' >&2; exit 1; }
             cd \"$1\" && find . | LC_ALL=C sort | cpio -o -H newc --quiet | gzip -1",
        )
        .arg("sh")
        .arg(stage.path())
        .output()
        .expect("cpio and gzip");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    t.bytes(&format!("boot/initrd.img-{REL}"), &out.stdout);
}

fn check(t: &FakeTree) -> (i32, String) {
    let (code, out, err) = exe::run(exe::HOST, t, &["check"]);
    (code, format!("{out}{err}"))
}

/// One finding of `check --json`: level, topic, text, fix.
type Row = (String, String, String, Option<String>);

/// The findings of `check --json`, with its exit code.
fn findings(t: &FakeTree) -> (i32, Vec<Row>) {
    let (code, out, err) = exe::run(exe::HOST, t, &["check", "--json"]);
    let j: Value =
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("not JSON ({e}): {out}{err}"));
    assert_eq!(
        (j["schema"].as_str(), j["version"].as_u64()),
        (Some("vfio-early-check"), Some(1))
    );
    assert_eq!(j["exit"], code);
    let list = j["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["level"].as_str().unwrap().to_string(),
                f["topic"].as_str().unwrap().to_string(),
                f["text"].as_str().unwrap().to_string(),
                f["fix"].as_str().map(str::to_string),
            )
        })
        .collect();
    (code, list)
}

#[track_caller]
fn has(
    list: &[(String, String, String, Option<String>)],
    level: &str,
    topic: &str,
    text: &str,
    fix: &str,
) {
    assert!(
        list.iter().any(|(l, tp, tx, fx)| l == level
            && tp == topic
            && tx.contains(text)
            && fx.as_deref().unwrap_or("").contains(fix)),
        "no {level} {topic} finding with {text:?} and fix {fix:?} in {list:#?}"
    );
}

#[test]
fn a_ready_host_says_so_and_exits_0() {
    let t = ready();
    let (code, out) = check(&t);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.ends_with("ready: the next boot will take what is configured\n"),
        "{out}"
    );
    let (_, f) = findings(&t);
    for (topic, text) in [
        ("iommu", "the IOMMU is on"),
        ("interrupt-remapping", "in use"),
        ("modules", "vfio (module), vfio-pci (module)"),
        ("config", "reads cleanly: 1 device entries"),
        ("device", "0000:01:00.0 [1234:1111]"),
        ("framebuffer", "found no firmware framebuffer"),
        ("image", "carries vfio-early, its hook and the vfio modules"),
        ("image", "carries the same /etc/vfio-early.conf"),
        ("this-boot", "0000:01:00.0 is on vfio-pci"),
        ("this-boot", "0000:01:00.1 is on vfio-pci"),
    ] {
        has(&f, "ok", topic, text, "");
    }
    assert!(f.iter().all(|x| x.0 == "ok"), "{f:#?}");
}

#[test]
fn iommu_interrupts_and_modules() {
    let t = ready();
    t.file("proc/interrupts", " 24:  0  PCI-MSI 512000-edge  ahci\n");
    let (code, f) = findings(&t);
    assert_eq!(code, 1);
    has(
        &f,
        "warn",
        "interrupt-remapping",
        "no interrupt is remapped",
        "allow_unsafe_interrupts=1",
    );
    t.file(
        &format!("lib/modules/{REL}/modules.dep"),
        "kernel/drivers/vfio/vfio.ko.xz:\n",
    );
    let (code, f) = findings(&t);
    assert_eq!(code, 2);
    has(&f, "error", "modules", "has no vfio-pci", "depmod");
    for g in t.devices() {
        let _ = std::fs::remove_file(t.path(&format!("{}/iommu_group", FakeTree::dev_rel(&g))));
    }
    std::fs::remove_dir_all(t.path("sys/kernel/iommu_groups")).unwrap();
    t.mkdir("sys/kernel/iommu_groups");
    let (_, f) = findings(&t);
    has(&f, "error", "iommu", "the IOMMU is off", "intel_iommu=on");
}

#[test]
fn configuration_and_device_findings_carry_their_fix() {
    let t = ready();
    t.file(
        "etc/vfio-early.conf",
        "devices = 0000:01:00.0@1234:1111:1af4:1100, zz:00.0\ngroop = whole\ndevices = 00:02.0\n",
    );
    image(&t, &[]);
    let (code, f) = findings(&t);
    assert_eq!(code, 2);
    has(
        &f,
        "error",
        "config",
        "bad device entry \"zz:00.0\"",
        "fix the /etc/vfio-early.conf line 1",
    );
    has(&f, "error", "config", "unknown key \"groop\"", "line 2");
    has(
        &f,
        "error",
        "device",
        "0000:00:02.0 [1234:1111] display controller (entry 00:02.0): refused: boot display",
        "+boot-vga",
    );
    t.file("etc/vfio-early.conf", "devices = 10de:ffff\n");
    image(&t, &[]);
    let (_, f) = findings(&t);
    has(
        &f,
        "warn",
        "device",
        "entry \"10de:ffff\" matches no device",
        "lspci -nn",
    );
    t.file("etc/vfio-early.conf", "# nothing yet\n");
    image(&t, &[]);
    let (_, f) = findings(&t);
    has(
        &f,
        "warn",
        "config",
        "nothing is configured",
        "sudo vfio-early add BDF",
    );
}

#[test]
fn an_unreadable_config_is_an_error_that_says_nothing_is_bound() {
    let t = ready();
    t.remove("etc/vfio-early.conf").mkdir("etc/vfio-early.conf");
    let (code, f) = findings(&t);
    assert_eq!(code, 2);
    has(
        &f,
        "error",
        "config",
        "/etc/vfio-early.conf: cannot be read: not a regular file; so nothing is bound",
        "fix the /etc/vfio-early.conf",
    );
}

#[test]
fn group_members_left_outside_get_the_add_command() {
    let t = ready();
    t.device(Dev::new("01:00.2", 0x1b36, 0x000d, 0x0c0330).group(5));
    let (code, f) = findings(&t);
    assert_eq!(code, 1);
    has(
        &f,
        "warn",
        "group",
        "IOMMU group 5: 0000:01:00.2",
        "sudo vfio-early add 0000:01:00.2+guarded",
    );
}

#[test]
fn a_framebuffer_this_boot_saw_is_an_error_and_no_record_is_said() {
    let t = ready();
    let state = t.read("run/vfio-early/state.json").replace(
        "bound to vfio-pci via modprobe",
        "refused: boot display (a firmware framebuffer lies in its BAR): the host console is on it",
    );
    t.file("run/vfio-early/state.json", &state);
    let (_, f) = findings(&t);
    has(
        &f,
        "error",
        "framebuffer",
        "this boot found a firmware framebuffer",
        "video=efifb:off",
    );
    // With +boot-vga the console is given up on purpose: no framebuffer finding.
    t.file(
        "etc/vfio-early.conf",
        "devices = 0000:01:00.0@1234:1111:1af4:1100+boot-vga\n",
    );
    let (_, f) = findings(&t);
    assert!(!f.iter().any(|x| x.1 == "framebuffer"), "{f:#?}");
    t.file(
        "etc/vfio-early.conf",
        "devices = 0000:01:00.0@1234:1111:1af4:1100\n",
    );
    t.remove("run/vfio-early/state.json");
    let (_, f) = findings(&t);
    has(
        &f,
        "warn",
        "framebuffer",
        "cannot be told now",
        "after the next boot",
    );
    has(
        &f,
        "error",
        "this-boot",
        "vfio-early did not run in this boot",
        "reboot",
    );
}

#[test]
fn the_image_must_carry_vfio_early_and_the_same_configuration() {
    let t = ready();
    image(
        &t,
        &["usr/bin/vfio-early", "scripts/init-top/00-vfio-early"],
    );
    let (_, f) = findings(&t);
    has(
        &f,
        "error",
        "image",
        "lacks usr/bin/vfio-early, its hook",
        "sudo update-initramfs -u",
    );
    // --image checks a given image instead (here the broken one, moved aside).
    let aside = t.path("broken.img");
    std::fs::rename(t.path(&format!("boot/initrd.img-{REL}")), &aside).unwrap();
    image(&t, &[]);
    let (code, out, _) = exe::run(
        exe::HOST,
        &t,
        &["check", "--image", aside.to_str().unwrap()],
    );
    assert_eq!(code, 2);
    assert!(out.contains("broken.img lacks usr/bin/vfio-early"), "{out}");
    let (_, f) = findings(&t);
    has(&f, "ok", "image", "carries vfio-early", "");
    image(&t, &[]);
    t.file(
        "etc/vfio-early.conf",
        "devices = 0000:02:00.0@1234:1111:1af4:1100\n",
    );
    let (_, f) = findings(&t);
    has(
        &f,
        "error",
        "image",
        "has another /etc/vfio-early.conf than /etc",
        "update-initramfs",
    );
    image(&t, &["etc/vfio-early.conf"]);
    let (_, f) = findings(&t);
    has(
        &f,
        "error",
        "image",
        "has no /etc/vfio-early.conf",
        "update-initramfs",
    );
    t.file(&format!("boot/initrd.img-{REL}"), "not an image");
    let (_, f) = findings(&t);
    has(
        &f,
        "error",
        "image",
        "the image cannot be read",
        "update-initramfs",
    );
    t.remove(&format!("boot/initrd.img-{REL}"));
    let (_, f) = findings(&t);
    has(
        &f,
        "error",
        "image",
        "no initramfs-tools image for kernel 6.1.0-test",
        "update-initramfs",
    );
    // Old and new side by side: the image's copy names its release (or predates naming it).
    let older = format!(
        "carries vfio-early 0.0.1, older than this host's {}",
        env!("CARGO_PKG_VERSION")
    );
    for (copy, said) in [
        ("\0vfio-early 0.0.1 (boot build)\0", older.as_str()),
        (
            "a boot build of old\n",
            "carries an older vfio-early than this host's",
        ),
    ] {
        t.file("usr/lib/vfio-early/vfio-early-boot", copy);
        image(&t, &[]);
        t.file(
            "usr/lib/vfio-early/vfio-early-boot",
            &format!("\0{}\0", vfio_early_engine::BOOT_VERSION_LINE),
        );
        let (_, f) = findings(&t);
        has(&f, "warn", "image", said, "update-initramfs");
    }
}

#[test]
fn hacks_that_fight_it_are_named_with_the_line_to_remove() {
    let t = ready();
    t.cmdline("quiet vfio-pci.ids=1234:1111");
    t.file(
        "etc/modprobe.d/vfio.conf",
        "options vfio-pci ids=1234:1111\ninstall vfio-pci /usr/local/bin/vfio-override.sh\nsoftdep bochs pre: vfio-pci\n",
    );
    t.file(
        "etc/mkinitcpio.conf",
        "MODULES=(bochs ext4)\nHOOKS=(base udev)\n",
    );
    t.file(
        "etc/dracut.conf.d/gpu.conf",
        "force_drivers+=\" snd_hda_intel \"\n",
    );
    let (code, f) = findings(&t);
    assert_eq!(code, 1, "{f:#?}");
    has(
        &f,
        "warn",
        "leftover",
        "vfio-pci.ids=",
        "remove vfio-pci.ids=",
    );
    has(
        &f,
        "warn",
        "leftover",
        "/etc/modprobe.d/vfio.conf: `options vfio-pci ids=`",
        "remove that line from /etc/modprobe.d/vfio.conf",
    );
    has(
        &f,
        "warn",
        "leftover",
        "an `install vfio-pci` line",
        "remove that line",
    );
    has(
        &f,
        "warn",
        "leftover",
        "`softdep ... pre: vfio-pci`",
        "remove that line",
    );
    has(
        &f,
        "warn",
        "leftover",
        "/etc/mkinitcpio.conf forces bochs, the native driver of 0000:01:00.0",
        "remove bochs from /etc/mkinitcpio.conf",
    );
    has(
        &f,
        "warn",
        "leftover",
        "/etc/dracut.conf.d/gpu.conf forces snd_hda_intel",
        "remove snd_hda_intel",
    );
    assert!(
        !f.iter().any(|x| x.2.contains("ext4")),
        "only a listed card's drivers"
    );
}

#[test]
fn a_device_the_boot_did_not_bind_says_why() {
    let t = ready();
    t.set_driver("01:00.1", Some("snd_hda_intel"));
    let (code, f) = findings(&t);
    assert_eq!(code, 1);
    has(&f, "warn", "this-boot", "0000:01:00.1 is on snd_hda_intel now, not vfio-pci: this boot: bound to vfio-pci via modprobe (bound)", "dmesg");
}

#[test]
fn what_only_root_can_read_says_needs_root() {
    let t = ready();
    let img = t.path(&format!("boot/initrd.img-{REL}"));
    std::fs::set_permissions(&img, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let out = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .arg(exe::HOST)
        .arg("--root")
        .arg(&t.root)
        .args(["check", "--json"])
        .output()
        .expect("setpriv (util-linux) runs");
    let j: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(j["exit"], 1, "never ready while something is unread");
    let image = j["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["topic"] == "image")
        .unwrap();
    assert_eq!(image["level"], "needs root", "{image}");
}

#[test]
fn an_image_without_vfio_early_is_ready_only_with_an_addon_for_this_kernel() {
    use vfio_early::initrd::Newc;
    use vfio_early_core::layout::ADDON_MANIFEST as MANIFEST;
    use vfio_early_system::modload::Manifest;
    let t = ready();
    image(
        &t,
        &["usr/bin/vfio-early", "scripts/init-top/00-vfio-early"],
    );
    let addon = |kernel: &str| {
        let m = Manifest {
            kernel: kernel.try_into().unwrap(),
            modules: heapless::Vec::new(),
        };
        let mut w = Newc::new(0);
        w.member(MANIFEST, 0o100644, m.render().as_bytes());
        w.finish()
    };
    let at = format!("boot/vfio-early-addon-{REL}.img");
    t.bytes(&at, &addon(REL));
    let (_, f) = findings(&t);
    has(
        &f,
        "warn",
        "image",
        &format!("{at} carries it"),
        "after the image's own",
    );
    assert!(
        !f.iter().any(|(l, tp, _, _)| l == "error" && tp == "image"),
        "{f:#?}"
    );
    // Left from the previous kernel: the next boot binds nothing.
    t.bytes(&at, &addon("6.1.0-old"));
    let (_, f) = findings(&t);
    has(
        &f,
        "error",
        "image",
        "is for kernel 6.1.0-old, not 6.1.0-test",
        "vfio-early addon --kver 6.1.0-test",
    );
    // A kernel-install entry's add-on counts too.
    t.remove(&at);
    t.bytes(
        &format!("boot/0123abcd/{REL}/initrd-vfio-early"),
        &addon(REL),
    );
    let (_, f) = findings(&t);
    has(&f, "warn", "image", "initrd-vfio-early carries it", "");
}

/// `check --image PATH --json` under an address-space limit (MiB); (exit code, all output).
fn check_image_limited(t: &FakeTree, image: &std::path::Path, mib: u64) -> (i32, String) {
    use std::os::unix::process::CommandExt;
    let mut cmd = Command::new(exe::HOST);
    cmd.arg("--root")
        .arg(&t.root)
        .args(["check", "--image"])
        .arg(image)
        .stdin(std::process::Stdio::null());
    // SAFETY: setrlimit is async-signal-safe; it runs in the child between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            let lim = nix::libc::rlimit {
                rlim_cur: mib << 20,
                rlim_max: mib << 20,
            };
            if nix::libc::setrlimit(nix::libc::RLIMIT_AS, &lim) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = cmd
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run check");
    // The hang guard (a blocked read, a scan four bytes at a time over gigabytes).
    let start = std::time::Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break s;
        }
        if start.elapsed() > std::time::Duration::from_secs(30) {
            let _ = child.kill();
            panic!("check --image {} still running after 30 s", image.display());
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    let out = child.wait_with_output().expect("output");
    (
        status.code().unwrap_or(-1),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[test]
fn check_reads_images_as_regular_files_in_bounded_time_and_memory() {
    use std::io::{Seek, SeekFrom, Write};
    let t = ready();
    // A FIFO: named, never waited on.
    let fifo = t.path("image.fifo");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    let (_, out) = check_image_limited(&t, &fifo, 256);
    assert!(out.contains("not a regular file"), "{out}");

    // A sparse 4 GiB of nothing, then the image: the hole costs nothing (it took minutes when
    // zeros were read four bytes at a time), and the archive after it is found.
    image(&t, &[]);
    let real = std::fs::read(t.path(&format!("boot/initrd.img-{REL}"))).unwrap();
    let sparse = t.path("sparse.img");
    let mut f = std::fs::File::create(&sparse).unwrap();
    f.seek(SeekFrom::Start(4 << 30)).unwrap();
    f.write_all(&real).unwrap();
    drop(f);
    let (_, out) = check_image_limited(&t, &sparse, 256);
    assert!(
        out.contains("carries vfio-early, its hook and the vfio modules"),
        "{out}"
    );
    std::fs::remove_file(&sparse).unwrap();

    // 16 MiB of written zeros before it: read by the chunk.
    let zeros = t.path("zeros.img");
    let mut f = std::fs::File::create(&zeros).unwrap();
    f.write_all(&vec![0u8; 16 << 20]).unwrap();
    f.write_all(&real).unwrap();
    drop(f);
    let (_, out) = check_image_limited(&t, &zeros, 256);
    assert!(out.contains("carries vfio-early"), "{out}");
    std::fs::remove_file(&zeros).unwrap();

    // 60,000 members with 2,000-byte names (120 MB of names) behind zstd: no name is kept, so
    // check stays within 96 MiB of address space (every name kept needed more than that).
    let mut a = vfio_early::initrd::Newc::new(0);
    let long = "d".repeat(1990);
    for i in 0..60_000 {
        a.member(&format!("{long}/{i:07}"), 0o100644, b"");
    }
    let cpio = a.finish();
    let mut z = Command::new("zstd")
        .args(["-1", "-q", "-c"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("zstd (tests/setup-host.sh installs it)");
    let mut stdin = z.stdin.take().unwrap();
    let feeder = std::thread::spawn(move || stdin.write_all(&cpio));
    let packed = z.wait_with_output().unwrap();
    feeder.join().unwrap().unwrap();
    assert!(packed.status.success());
    let many = t.path("many.img");
    std::fs::write(&many, &packed.stdout).unwrap();
    let (_, out) = check_image_limited(&t, &many, 96);
    assert!(out.contains("lacks usr/bin/vfio-early"), "{out}");
}
