// SPDX-License-Identifier: MIT OR Apache-2.0
//! `vfio-early COMMAND --help`: each command's usage, options, exit codes and an example.

/// The host build's commands, in the order `--help` lists them.
pub const COMMANDS: [&str; 11] = [
    "bind", "plan", "config", "status", "cmdline", "check", "add", "remove", "rom", "addon", "help",
];

/// The help of one command; `None` for a word that is not one.
pub fn of(command: &str) -> Option<&'static str> {
    Some(match command {
        "bind" => BIND,
        "plan" => PLAN,
        "config" => CONFIG,
        "status" => STATUS,
        "cmdline" => CMDLINE,
        "check" => CHECK,
        "add" => ADD,
        "remove" => REMOVE,
        "rom" => crate::romcli::USAGE,
        "addon" => ADDON,
        _ => return None,
    })
}

const BIND: &str = "\
Usage: vfio-early bind [--root DIR]        (or vfio-early with no command)

Puts the devices of vfio-early.devices= and /etc/vfio-early.conf on vfio-pci. Acts only inside
an initramfs, where the hooks run it before udev (as the boot build, vfio-early-boot); on a
running system it changes nothing and says which command to use instead.

Exit codes: 0 inside an initramfs, whatever happened (the kernel log and
/run/vfio-early/state.json say what); 2 outside one.
Example (what the next boot would do, without acting): vfio-early plan
";

const PLAN: &str = "\
Usage: vfio-early plan [--cmdline STRING] [--root DIR]

What a boot would do on this system, device by device, read by the boot's own code; changes
nothing. --cmdline: plan for this kernel command line instead of /proc/cmdline.

Exit codes: 0 every entry would be bound, 1 something is refused or malformed, 2 usage.
Example: vfio-early plan --cmdline 'vfio-early.devices=01:00.0'
";

const CONFIG: &str = "\
Usage: vfio-early config [--file FILE] [--root DIR]

What /etc/vfio-early.conf (or FILE) sets, read by the boot's parser: one `key = value` line per
key, problems named on stderr.

Exit codes: 0 clean, 1 a problem (named on stderr), 2 unreadable file or usage.
Example: vfio-early config --file ./vfio-early.conf
";

const STATUS: &str = "\
Usage: vfio-early status [--json] [--all] [--root DIR]

Every display and audio device (--all: every device) by IOMMU group: its driver, override, reset
method, whether it is the boot display, what this boot did with it and what the next boot would.
--json: the same as one JSON document.

Exit codes: 0 shown, 2 usage.
Example: vfio-early status
";

const CMDLINE: &str = "\
Usage: vfio-early cmdline BDF... [--root DIR]

The kernel argument that gives these devices to vfio-pci at boot: each device and the rest of its
card pinned to their IDs, with the IOMMU argument when it is off; or, on stderr, why the next boot
would refuse one. Warns when the kill switch is set or the configuration file names devices too.

Exit codes: 0 printed, 1 the next boot would refuse a device (named on stderr), 2 usage.
Example: vfio-early cmdline 01:00.0
";

const CHECK: &str = "\
Usage: vfio-early check [--json] [--image FILE] [--root DIR]

Whether the next boot will work: one finding a line (ok, warn, error, needs root), each with its
fix: the IOMMU, the kernel's vfio modules, the configuration, each device, the initramfs (--image:
this image instead of the running kernel's), leftovers of older setups, this boot's outcome.

Exit codes: 0 ready, 1 warnings (or what only root can read), 2 errors.
Example: sudo vfio-early check
";

const ADD: &str = "\
Usage: vfio-early add BDF[+flags]... [--dry-run] [--root DIR]

Puts these devices, pinned to their IDs, into /etc/vfio-early.conf (their card's other functions
come along at boot), after judging them as the next boot would; refused ones are not written.
Flags: +unbind +boot-vga +guarded +reset=METHOD. --dry-run: say what would be written.
Rebuild the initramfs afterwards (check says how).

Exit codes: 0 written (or nothing to do), 1 refused or not listed, 2 usage or unwritable.
Example: sudo vfio-early add 01:00.0
";

const REMOVE: &str = "\
Usage: vfio-early remove BDF... [--dry-run] [--root DIR]

Takes these devices' entries out of /etc/vfio-early.conf; other entries on their lines and the
comments stay. --dry-run: say what would change.

Exit codes: 0 written (or nothing to do), 1 not listed, 2 usage or unwritable.
Example: sudo vfio-early remove 01:00.0
";

const ADDON: &str = "\
Usage: vfio-early addon -o FILE [--kver K] [--conf F] [--binary B] [--init B | --no-init]

An initrd add-on for a systemd initrd built without vfio-early (immutable systems, UKIs): loaded
after the main image, it binds as the hooks do, for kernel K (default: the running one) with F's
settings; with the rdinit shim (the packaged one unless --no-init) for images booted with
rdinit=/usr/lib/vfio-early/init. -o -: the add-on on stdout.

Exit codes: 0 written, 1 refused (why on stderr), 2 usage or unwritable.
Example: vfio-early addon -o /boot/efi/loader/addons/vfio-early.initrd
";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_command_has_its_own_help() {
        let mut seen = Vec::new();
        for c in COMMANDS.iter().filter(|c| **c != "help") {
            let text = of(c).unwrap_or_else(|| panic!("{c}: no help"));
            assert!(text.contains(&format!("vfio-early {c}")), "{c}: {text}");
            assert!(text.contains("xit code"), "{c}: exit codes");
            assert!(text.contains("Example"), "{c}: an example");
            assert!(
                !seen.contains(&text),
                "{c}: the same text as another command"
            );
            seen.push(text);
        }
        assert_eq!(of("frobnicate"), None);
    }
}
