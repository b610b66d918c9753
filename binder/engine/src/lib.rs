// SPDX-License-Identifier: MIT OR Apache-2.0
//! vfio-early's boot: where the settings come from, the scan, every write to the kernel
//! (through [`apply::Kernel`], which tests record and inject faults into), ROM capture, one run
//! and the split run's protocol, the summary and the state file; the rdinit shim. The boot
//! build and the shim are this crate's binaries: they cannot reach a host command.
#![forbid(unsafe_code)]
// Errors and outcomes carry bounded copies of messages by value (no heap); they are few and
// short-lived.
#![allow(clippy::result_large_err, clippy::large_enum_variant)]

#[macro_use]
extern crate vfio_early_system;

pub mod apply;
pub mod boot;
pub mod options;
pub mod romread;
pub mod romstore;
pub mod scan;
pub mod shim;
pub mod sources;
pub mod split;
pub mod summary;

/// The boot build's `--version` line, one string in the binary: `check` reads it in an image's
/// copy to say which release an image carries.
pub const BOOT_VERSION_LINE: &str =
    concat!("vfio-early ", env!("CARGO_PKG_VERSION"), " (boot build)");
