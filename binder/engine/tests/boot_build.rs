// SPDX-License-Identifier: MIT OR Apache-2.0
//! The engine's two binaries answer for themselves. (Being an integration test of this crate,
//! it also makes `cargo test --workspace` build them, for the host crate's tests that run
//! the boot build on fake trees.)

use std::process::Command;

#[test]
fn the_boot_build_names_its_release() {
    let out = Command::new(env!("CARGO_BIN_EXE_vfio-early-boot"))
        .arg("--version")
        .output()
        .expect("run the boot build");
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim_end(),
        vfio_early_engine::BOOT_VERSION_LINE
    );
}

#[test]
fn the_shim_refuses_to_run_as_anything_but_pid_1() {
    let out = Command::new(env!("CARGO_BIN_EXE_vfio-early-init"))
        .output()
        .expect("run the shim");
    assert_ne!(out.status.code(), Some(0));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("not PID 1: nothing done"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
