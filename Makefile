# SPDX-License-Identifier: MIT OR Apache-2.0
# vfio-early: build, check, install.

TARGET   := x86_64-unknown-linux-musl
BIN      := target/$(TARGET)/release/vfio-early
# The boot binary lives in every initramfs, so it is built size-tuned: std rebuilt by nightly
# cargo with panics that abort at once (no panic message or backtrace machinery: -330 KiB).
# Without a nightly toolchain that has rust-src, the stable build is used: correct, but larger.
NIGHTLY_RUSTFLAGS := -C relocation-model=static -Zunstable-options -Cpanic=immediate-abort

.PHONY: all static check test clean

all: static

static:
	@if cargo +nightly --version >/dev/null 2>&1 && \
	    [ -d "$$(rustc +nightly --print sysroot)/lib/rustlib/src/rust/library" ] && \
	    [ -d "$$(rustc +nightly --print sysroot)/lib/rustlib/$(TARGET)" ]; then \
		echo "static: nightly build-std (size-tuned)"; \
		RUSTFLAGS="$(NIGHTLY_RUSTFLAGS)" cargo +nightly build --release --target $(TARGET) \
			-p vfio-early -Z build-std=std,panic_abort; \
	else \
		echo "static: nightly with rust-src and the $(TARGET) target missing: stable build (larger)"; \
		cargo build --release --target $(TARGET) -p vfio-early; \
	fi

check:
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings
	cargo test --workspace

test: check

clean:
	cargo clean
