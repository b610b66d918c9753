// SPDX-License-Identifier: MIT OR Apache-2.0
//! vfio-early's pure layer: text and facts in, values out. Settings and their entries, the PCI
//! vocabulary, the planner, the ROM format, what became of each device, the split run's record,
//! the JSON writer and every path of our own. No file is opened here (no `std::fs`, no `nix`),
//! and no `unsafe`: every input is a value a caller read.
#![forbid(unsafe_code)]
// Errors and outcomes carry bounded copies of messages by value (no heap); they are few and
// short-lived.
#![allow(clippy::result_large_err, clippy::large_enum_variant)]

pub mod cmdline;
pub mod config;
pub mod device;
pub mod entry;
pub mod handoff;
pub mod iomem;
pub mod json;
pub mod layout;
pub mod legacy;
pub mod outcome;
pub mod pci;
pub mod plan;
pub mod report;
pub mod rom;
pub mod text;
