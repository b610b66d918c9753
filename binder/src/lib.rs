// SPDX-License-Identifier: MIT OR Apache-2.0
//! vfio-early: put chosen PCI devices on vfio-pci from the initramfs, before any native driver.
//!
//! Pure parts (`cmdline`, `entry`, `config`, `plan`, `iomem`, `legacy`, `report`) take text and
//! facts; `sysfs`/`scan` read under one root; `apply` is the only writer, through [`apply::Kernel`].

// Errors carry bounded copies of user tokens by value (no heap); they are rare and short-lived.
#![allow(clippy::result_large_err)]

pub mod apply;
pub mod capture;
pub mod cmdline;
pub mod config;
pub mod device;
pub mod entry;
pub mod iomem;
pub mod kmsg;
pub mod legacy;
pub mod pci;
pub mod plan;
pub mod report;
pub mod rom;
pub mod romcli;
pub mod run;
pub mod scan;
pub mod state;
pub mod sysfs;
pub mod text;
