// SPDX-License-Identifier: MIT OR Apache-2.0
//! vfio-early: put chosen PCI devices on vfio-pci from the initramfs, before any native driver.
//!
//! The modules in layers; each names only modules of its own layer or of layers above it here,
//! and no two modules name each other, directly or around a circle (`tests/layers.rs` checks):
//! - **pure** (text and facts in, values out): `cmdline`, `entry`, `pci`, `text`, `legacy`,
//!   `config` (settings and their caps), `device`, `iomem`, `plan`, `report`, `rom`, `handoff`
//!   (the split run's record), `json`, `layout` (every path of our own), `arena`;
//! - **system** (under one root): `read` (every input read as a regular file with a cap),
//!   `files` (the one safe writer), `sysfs`, `kmsg` (the logger), `spawn` (children and their
//!   bounded waits), `modopts`, `modload`;
//! - **boot** (the boot build and the shim): `options`, `sources` (where the settings come
//!   from), `scan`, `apply` (every kernel write, through [`apply::Kernel`], which tests record
//!   and inject faults into), `romread`, `romstore`, `boot` (one run), `split` (the split run's
//!   owner: hand-off, finish, settle, wait), `summary` (the log's summary and the state file),
//!   `shim`;
//! - **host** (the `vfio-early` commands): `status`, `check`, `confedit`, `nextboot`, `romcli`,
//!   `addon`, `initrd`, `imagetool` (which initramfs generator builds the images), `statefile`
//!   (this boot's state file, read back), `pciids`, `out`.

// Errors and outcomes carry bounded copies of messages by value (no heap); they are few and
// short-lived.
#![allow(clippy::result_large_err, clippy::large_enum_variant)]

#[macro_use]
pub mod out;

pub mod addon;
pub mod apply;
pub mod arena;
pub mod boot;
pub mod check;
pub mod cmdline;
pub mod confedit;
pub mod config;
pub mod device;
pub mod entry;
pub mod files;
pub mod handoff;
pub mod imagetool;
pub mod initrd;
pub mod iomem;
pub mod json;
pub mod kmsg;
pub mod layout;
pub mod legacy;
pub mod modload;
pub mod modopts;
pub mod nextboot;
pub mod options;
pub mod outcome;
pub mod pci;
pub mod pciids;
pub mod plan;
pub mod read;
pub mod report;
pub mod rom;
pub mod romcli;
pub mod romread;
pub mod romstore;
pub mod scan;
pub mod shim;
pub mod sources;
pub mod spawn;
pub mod split;
pub mod statefile;
pub mod status;
pub mod summary;
pub mod sysfs;
pub mod text;

/// The boot build's `--version` line, one string in the binary: `check` reads it in an image's
/// copy to say which release an image carries.
pub const BOOT_VERSION_LINE: &str =
    concat!("vfio-early ", env!("CARGO_PKG_VERSION"), " (boot build)");
