// SPDX-License-Identifier: MIT OR Apache-2.0
//! vfio-early: put chosen PCI devices on vfio-pci from the initramfs, before any native driver.
//!
//! The workspace in four crates, each using only those before it (Cargo enforces it; no module
//! of a crate names another around a circle, `tests/layers.rs` checks):
//! - `vfio-early-core` (`binder/core`): pure. Settings and entries, PCI vocabulary, the planner,
//!   the ROM format, outcomes, the handoff's format, the JSON writer, the path layout.
//! - `vfio-early-system` (`binder/system`): the system under one root. Bounded reads, the one
//!   safe writer, sysfs, the kernel log, spawning with bounded waits, module loading.
//! - `vfio-early-engine` (`binder/engine`): the boot. Sources, scan, apply, ROM capture, one
//!   run, the split run's owner, the summary and state file, the shim; the boot build
//!   (`vfio-early-boot`) and the shim (`vfio-early-init`) are its binaries.
//! - `vfio-early` (`binder`, this crate): the host commands (`status`, `check`, `add`/`remove`,
//!   `rom`, `addon`) and the `vfio-early` binary.

// Errors and outcomes carry bounded copies of messages by value (no heap); they are few and
// short-lived.
#![forbid(unsafe_code)]
#![allow(clippy::result_large_err, clippy::large_enum_variant)]

#[macro_use]
extern crate vfio_early_system;

pub mod addon;
pub mod check;
pub mod confedit;
pub mod help;
pub mod imagetool;
pub mod initrd;
pub mod nextboot;
pub mod pciids;
pub mod romcli;
pub mod statefile;
pub mod status;
