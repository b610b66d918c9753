// SPDX-License-Identifier: MIT OR Apache-2.0
//! vfio-early's system layer, under one root directory: bounded reads of every input, the one
//! safe writer, sysfs, the kernel log, children and their bounded waits, module loading, the
//! boot build's allocator, stdout and stderr that never panic. The workspace's `unsafe` calls
//! live here, each with the reason it is sound.
#![deny(clippy::undocumented_unsafe_blocks)]
// Errors and outcomes carry bounded copies of messages by value (no heap); they are few and
// short-lived.
#![allow(clippy::result_large_err, clippy::large_enum_variant)]

#[macro_use]
pub mod out;

pub mod arena;
pub mod files;
pub mod kmsg;
pub mod modload;
pub mod modopts;
pub mod read;
pub mod spawn;
pub mod sysfs;
pub mod unix;
