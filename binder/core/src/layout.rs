// SPDX-License-Identifier: MIT OR Apache-2.0
//! Every path of vfio-early's own, in one place. Relative to the root every command takes
//! (`--root`, `/` at boot), except [`SHIM_PATH`], which `rdinit=` names. The hooks and units get
//! the installed paths from the Makefile's substitutions.

/// The configuration file, and dracut's command-line drop-ins (`*.conf`, read in name order).
pub const CONFIG_FILE: &str = "etc/vfio-early.conf";
pub const CMDLINE_D: &str = "etc/cmdline.d";
/// Inside an image: the captures already stored when it was built (`rom known`).
pub const ROMS_KNOWN: &str = "etc/vfio-early/roms.known";

/// This boot's directory (`/run` is a tmpfs that switch-root carries into the system), opened
/// as its parent and name so no component is followed as a symlink.
pub const RUN_PARENT: &str = "run";
pub const RUN_NAME: &str = "vfio-early";
pub const RUN_DIR: &str = "run/vfio-early";
/// What the run says it did (docs/interface.md), by name in [`RUN_DIR`] and by path.
pub const STATE_NAME: &str = "state.json";
pub const STATE_FILE: &str = "run/vfio-early/state.json";
/// Where modprobe's messages go (kept for troubleshooting, quoted in the failure line).
pub const MODPROBE_LOG_NAME: &str = "modprobe.log";
pub const MODPROBE_LOG: &str = "run/vfio-early/modprobe.log";
/// The split run's record of work to do, renamed once the rest reported (or the settle stood in
/// for it), and the pid of the `finish` a shell init's fence started, for `wait`.
pub const HANDOFF_NAME: &str = "handoff";
pub const HANDOFF_DONE_NAME: &str = "handoff.done";
pub const FINISH_PID_NAME: &str = "finish.pid";

/// ROM captures: this boot's, and the ones kept across boots.
pub const ROMS_RUN_DIR: &str = "run/vfio-early/roms";
pub const ROMS_VAR_DIR: &str = "var/lib/vfio-early/roms";

/// Where packages install the boot build and the rdinit shim; the add-on puts the shim at the
/// same path, so the one `rdinit=` works for both.
pub const BOOT_BINARY: &str = "usr/lib/vfio-early/vfio-early-boot";
pub const SHIM: &str = "usr/lib/vfio-early/init";
pub const SHIM_PATH: &str = "/usr/lib/vfio-early/init";
/// The package's own directory (the parent of the above).
pub const PKG_DIR: &str = "usr/lib/vfio-early";
/// The hooks' binder inside an image.
pub const HOOK_BINARY: &str = "usr/bin/vfio-early";

/// The initrd add-on: its binder, its modules and their manifest, its command-line drop-in.
pub const ADDON_DIR: &str = "usr/lib/vfio-early/addon";
pub const ADDON_BINARY: &str = "usr/lib/vfio-early/addon/vfio-early";
pub const ADDON_MANIFEST: &str = "usr/lib/vfio-early/addon/manifest";
pub const ADDON_MODULES: &str = "usr/lib/vfio-early/addon/modules";
pub const ADDON_CMDLINE: &str = "etc/cmdline.d/zz-vfio-early-addon.conf";

/// The kernel's files read in more than one place (under the same root).
pub const PROC_CMDLINE: &str = "proc/cmdline";
pub const OSRELEASE: &str = "proc/sys/kernel/osrelease";
pub const IOMMU_GROUPS: &str = "sys/kernel/iommu_groups";
pub const PCI_DEVICES: &str = "sys/bus/pci/devices";
pub const PCI_DRIVERS: &str = "sys/bus/pci/drivers";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_agree_with_their_parts() {
        assert_eq!(RUN_DIR, format!("{RUN_PARENT}/{RUN_NAME}"));
        assert_eq!(STATE_FILE, format!("{RUN_DIR}/{STATE_NAME}"));
        assert_eq!(MODPROBE_LOG, format!("{RUN_DIR}/{MODPROBE_LOG_NAME}"));
        assert_eq!(ROMS_RUN_DIR, format!("{RUN_DIR}/roms"));
        assert_eq!(SHIM_PATH, format!("/{SHIM}"));
        for p in [ADDON_BINARY, ADDON_MANIFEST, ADDON_MODULES] {
            assert!(p.starts_with(ADDON_DIR), "{p}");
        }
        assert!(ADDON_CMDLINE.starts_with(CMDLINE_D));
    }
}
