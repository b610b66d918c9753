# SPDX-License-Identifier: MIT OR Apache-2.0
# vfio-early: build, check, install.

TARGET   := x86_64-unknown-linux-musl
BIN      := target/$(TARGET)/release/vfio-early
# The boot binary lives in every initramfs, so it is built size-tuned: std rebuilt by nightly
# cargo with panics that abort at once (no panic message or backtrace machinery: -330 KiB).
# Without a nightly toolchain that has rust-src, the stable build is used: correct, but larger.
NIGHTLY_RUSTFLAGS := -C relocation-model=static -Zunstable-options -Cpanic=immediate-abort

# Install layout: the same on Debian/Ubuntu, Fedora/RHEL and Arch (merged /usr).
DESTDIR        ?=
PREFIX         ?= /usr
BINDIR         ?= $(PREFIX)/bin
SYSCONFDIR     ?= /etc
LIBDIR         ?= $(PREFIX)/lib
DATADIR        ?= $(PREFIX)/share
MANDIR         ?= $(DATADIR)/man
DOCDIR         ?= $(DATADIR)/doc/vfio-early
HOOKLIBDIR     ?= $(LIBDIR)/vfio-early
# The generators and systemd search these directories only, whatever PREFIX is.
SYSTEMDUNITDIR ?= /usr/lib/systemd/system
DRACUTDIR      ?= /usr/lib/dracut/modules.d
INITRAMFSTOOLSDIR ?= /usr/share/initramfs-tools
INITCPIODIR    ?= /usr/lib/initcpio
SUBST = sed -e 's|@BINDIR@|$(BINDIR)|g' -e 's|@SYSCONFDIR@|$(SYSCONFDIR)|g' -e 's|@HOOKLIBDIR@|$(HOOKLIBDIR)|g' \
	-e 's|@SYSTEMDUNITDIR@|$(SYSTEMDUNITDIR)|g'

.PHONY: all static check test clean install

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

# Installs what `make static` built; it does not build (packagers build first, then install).
install:
	@test -x $(BIN) || { echo "install: $(BIN) missing: run make static first" >&2; exit 1; }
	install -Dm755 $(BIN) $(DESTDIR)$(BINDIR)/vfio-early
	$(SUBST) hooks-common/hook-lib.sh | install -Dm644 /dev/stdin $(DESTDIR)$(HOOKLIBDIR)/hook-lib.sh
	install -Dm644 systemd/vfio-early.service $(DESTDIR)$(SYSTEMDUNITDIR)/vfio-early.service
	install -Dm644 systemd/vfio-early-rom-persist.service $(DESTDIR)$(SYSTEMDUNITDIR)/vfio-early-rom-persist.service
	install -Dm755 openrc/vfio-early-rom-persist $(DESTDIR)$(SYSCONFDIR)/init.d/vfio-early-rom-persist
	$(SUBST) dracut-module/50vfio-early/module-setup.sh | install -Dm755 /dev/stdin $(DESTDIR)$(DRACUTDIR)/50vfio-early/module-setup.sh
	install -Dm755 dracut-module/50vfio-early/vfio-early.sh $(DESTDIR)$(DRACUTDIR)/50vfio-early/vfio-early.sh
	$(SUBST) initramfs-tools-hook/hooks/vfio-early | install -Dm755 /dev/stdin $(DESTDIR)$(INITRAMFSTOOLSDIR)/hooks/vfio-early
	install -Dm755 initramfs-tools-hook/scripts/init-top/00-vfio-early $(DESTDIR)$(INITRAMFSTOOLSDIR)/scripts/init-top/00-vfio-early
	$(SUBST) mkinitcpio-hook/install/vfio-early | install -Dm644 /dev/stdin $(DESTDIR)$(INITCPIODIR)/install/vfio-early
	install -Dm644 mkinitcpio-hook/hooks/vfio-early $(DESTDIR)$(INITCPIODIR)/hooks/vfio-early
	install -Dm644 docs/vfio-early.8 $(DESTDIR)$(MANDIR)/man8/vfio-early.8
	install -Dm644 vfio-early.conf.example $(DESTDIR)$(DOCDIR)/vfio-early.conf.example
	install -Dm644 README.md $(DESTDIR)$(DOCDIR)/README.md
