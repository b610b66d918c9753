// SPDX-License-Identifier: MIT OR Apache-2.0
//! vfio-early: put chosen PCI devices on vfio-pci from the initramfs, before any native driver.
//!
//! Pure parts (`cmdline`, `entry`, `config`, `device`, `plan`, `iomem`, `legacy`, `report`,
//! `rom`) take text and facts; `sysfs`/`scan` read under one root; every write to the kernel goes
//! through [`apply::Kernel`] (`apply` binds, `romread` reads a ROM), which tests record and
//! inject faults into; files are written by `state` (the state file) and `romstore` (captures).

// Errors and outcomes carry bounded copies of messages by value (no heap); they are few and
// short-lived.
#![allow(clippy::result_large_err, clippy::large_enum_variant)]

#[macro_use]
pub mod out;

pub mod addon;
pub mod apply;
pub mod arena;
pub mod bootstate;
pub mod check;
pub mod cmdline;
pub mod confedit;
pub mod config;
pub mod device;
pub mod entry;
pub mod files;
pub mod generator;
pub mod handoff;
pub mod initrd;
pub mod iomem;
pub mod kmsg;
pub mod layout;
pub mod legacy;
pub mod modload;
pub mod modopts;
pub mod nextboot;
pub mod pci;
pub mod pciids;
pub mod plan;
pub mod read;
pub mod report;
pub mod rom;
pub mod romcli;
pub mod romread;
pub mod romstore;
pub mod run;
pub mod scan;
pub mod shim;
pub mod split;
pub mod state;
pub mod status;
pub mod sysfs;
pub mod text;
pub mod wait;

/// The boot build's `--version` line, one string in the binary: `check` reads it in an image's
/// copy to say which release an image carries.
pub const BOOT_VERSION_LINE: &str =
    concat!("vfio-early ", env!("CARGO_PKG_VERSION"), " (boot build)");
