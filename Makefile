# SPDX-License-Identifier: MIT OR Apache-2.0
# vfio-early: build, check, install, package.
#
#   make                 the static musl binaries, stable cargo (what the packages and tests ship):
#                        vfio-early (host commands), vfio-early-boot (bind only, for the images) and
#                        vfio-early-init (the rdinit shim)
#   make TARGET=         the native (glibc, dynamic) binaries: `cargo build --release`; hooks copy their libraries
#   make small           the size-tuned static binaries (nightly cargo, build-std): opt-in
#   make check           fmt, clippy -D warnings, tests
#   make install         DESTDIR, PREFIX, BINDIR, ...; install-* installs one part
#   make dist            source tarball with vendored crates, builds with --offline
#   make deb             Debian package from the dist tarball (debhelper)

VERSION   := $(shell sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n 1)
CARGO     ?= cargo
CARGOFLAGS ?=
# Empty TARGET: the host's own target (target/release/).
TARGET    ?= x86_64-unknown-linux-musl
TARGETDIR ?= target
# The two builds of one crate: vfio-early (the host commands) and vfio-early-boot (bind only: what
# every initramfs carries).
BIN       ?= $(TARGETDIR)/$(if $(TARGET),$(TARGET)/)release/vfio-early
BOOT_BIN  ?= $(dir $(BIN))vfio-early-boot
# The rdinit shim (PID 1 of an image without a hook, before its own init).
INIT_BIN  ?= $(dir $(BIN))vfio-early-init
# The size-tuned build: std rebuilt by nightly cargo with panics that abort at once (no panic
# message or backtrace machinery). Its own target dir, so it never replaces the stable binary.
SMALL_TARGETDIR := $(TARGETDIR)/small
SMALL_RUSTFLAGS := -C relocation-model=static -Zunstable-options -Cpanic=immediate-abort -Cforce-unwind-tables=no

# Install layout: the same on Debian/Ubuntu, Fedora/RHEL and Arch (merged /usr).
DESTDIR        ?=
PREFIX         ?= /usr
BINDIR         ?= $(PREFIX)/bin
SYSCONFDIR     ?= /etc
LIBDIR         ?= $(PREFIX)/lib
DATADIR        ?= $(PREFIX)/share
MANDIR         ?= $(DATADIR)/man
DOCDIR         ?= $(DATADIR)/doc/vfio-early
# The package's own directory: hook-lib.sh and the boot build (the hooks copy it into images).
PKGLIBDIR      ?= $(LIBDIR)/vfio-early
HOOKLIBDIR     ?= $(PKGLIBDIR)
BOOTBIN        ?= $(PKGLIBDIR)/vfio-early-boot
# Fixed: rdinit= names it, and the add-on puts it at the same path.
INITSHIM       := /usr/lib/vfio-early/init
# The generators and systemd search these directories only, whatever PREFIX is.
SYSTEMDUNITDIR ?= /usr/lib/systemd/system
DRACUTDIR      ?= /usr/lib/dracut/modules.d
INITRAMFSTOOLSDIR ?= /usr/share/initramfs-tools
INITCPIODIR    ?= /usr/lib/initcpio
OPENRCDIR      ?= $(SYSCONFDIR)/init.d
KERNELINSTALLDIR ?= $(LIBDIR)/kernel/install.d
KERNELHOOKDIR  ?= $(SYSCONFDIR)/kernel
SUBST = sed -e 's|@BINDIR@|$(BINDIR)|g' -e 's|@SYSCONFDIR@|$(SYSCONFDIR)|g' -e 's|@HOOKLIBDIR@|$(HOOKLIBDIR)|g' \
	-e 's|@BOOTBIN@|$(BOOTBIN)|g' \
	-e 's|@SYSTEMDUNITDIR@|$(SYSTEMDUNITDIR)|g'
# install-subst SRC DEST MODE: a file with the install paths filled in.
install-subst = $(SUBST) $(1) | install -Dm$(3) /dev/stdin $(DESTDIR)$(2)

DIST      := vfio-early-$(VERSION)
DISTDIR   := $(TARGETDIR)/dist
DEBDIR    := $(TARGETDIR)/debian

.PHONY: all build static small check test clean dist deb \
	install install-bin install-hooklib install-initramfs-tools install-dracut install-mkinitcpio \
	install-systemd install-openrc install-addon install-kernel-install install-kernel-hooks install-doc

all: build

build:
	$(CARGO) build --release --locked -p vfio-early -p vfio-early-engine $(if $(TARGET),--target $(TARGET)) $(CARGOFLAGS)

# The name the test scripts use: the default (static musl) build.
static: build

small:
	RUSTFLAGS="$(SMALL_RUSTFLAGS)" $(CARGO) +nightly build --release --locked -p vfio-early -p vfio-early-engine \
		--target x86_64-unknown-linux-musl --target-dir $(SMALL_TARGETDIR) -Z build-std=std,panic_abort $(CARGOFLAGS)

check:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	$(CARGO) test --workspace

test: check

clean:
	$(CARGO) clean

# Installs what `make` built; it does not build (packagers build first, then install).
install: install-bin install-hooklib install-initramfs-tools install-dracut install-mkinitcpio \
	install-systemd install-openrc install-addon install-doc

install-bin:
	@for b in $(BIN) $(BOOT_BIN) $(INIT_BIN); do \
		test -x $$b || { echo "install: $$b missing: run make first" >&2; exit 1; }; done
	install -Dm755 $(BIN) $(DESTDIR)$(BINDIR)/vfio-early
	install -Dm755 $(BOOT_BIN) $(DESTDIR)$(BOOTBIN)
	install -Dm755 $(INIT_BIN) $(DESTDIR)$(INITSHIM)

install-hooklib:
	$(call install-subst,hooks-common/hook-lib.sh,$(HOOKLIBDIR)/hook-lib.sh,644)

install-initramfs-tools: install-hooklib
	$(call install-subst,initramfs-tools-hook/hooks/vfio-early,$(INITRAMFSTOOLSDIR)/hooks/vfio-early,755)
	$(call install-subst,initramfs-tools-hook/scripts/init-top/00-vfio-early,$(INITRAMFSTOOLSDIR)/scripts/init-top/00-vfio-early,755)
	$(call install-subst,initramfs-tools-hook/scripts/init-bottom/vfio-early,$(INITRAMFSTOOLSDIR)/scripts/init-bottom/vfio-early,755)

install-dracut: install-hooklib
	$(call install-subst,dracut-module/50vfio-early/module-setup.sh,$(DRACUTDIR)/50vfio-early/module-setup.sh,755)
	$(call install-subst,dracut-module/50vfio-early/vfio-early.sh,$(DRACUTDIR)/50vfio-early/vfio-early.sh,755)
	$(call install-subst,dracut-module/50vfio-early/vfio-early-wait.sh,$(DRACUTDIR)/50vfio-early/vfio-early-wait.sh,755)

install-mkinitcpio: install-hooklib
	$(call install-subst,mkinitcpio-hook/install/vfio-early,$(INITCPIODIR)/install/vfio-early,644)
	$(call install-subst,mkinitcpio-hook/hooks/vfio-early,$(INITCPIODIR)/hooks/vfio-early,644)

install-systemd:
	$(call install-subst,systemd/vfio-early.service,$(SYSTEMDUNITDIR)/vfio-early.service,644)
	$(call install-subst,systemd/vfio-early-finish.service,$(SYSTEMDUNITDIR)/vfio-early-finish.service,644)
	$(call install-subst,systemd/vfio-early-rom-persist.service,$(SYSTEMDUNITDIR)/vfio-early-rom-persist.service,644)

# What rebuilds the initrd add-on for each new kernel (acting only once the admin has created
# $(SYSCONFDIR)/vfio-early/addon.enabled): a kernel-install plugin, and Debian's kernel hooks.
install-addon: install-kernel-install install-kernel-hooks

install-kernel-install:
	$(call install-subst,addon/85-vfio-early-addon.install,$(KERNELINSTALLDIR)/85-vfio-early-addon.install,755)

install-kernel-hooks:
	$(call install-subst,addon/kernel-hook,$(KERNELHOOKDIR)/postinst.d/zz-vfio-early-addon,755)
	$(call install-subst,addon/kernel-hook,$(KERNELHOOKDIR)/postrm.d/zz-vfio-early-addon,755)

install-openrc:
	$(call install-subst,openrc/vfio-early-rom-persist,$(OPENRCDIR)/vfio-early-rom-persist,755)

install-doc:
	install -Dm644 docs/vfio-early.8 $(DESTDIR)$(MANDIR)/man8/vfio-early.8
	install -Dm644 vfio-early.conf.example $(DESTDIR)$(DOCDIR)/vfio-early.conf.example
	install -Dm644 README.md $(DESTDIR)$(DOCDIR)/README.md
	install -d $(DESTDIR)$(DOCDIR)/docs
	install -m644 docs/*.md $(DESTDIR)$(DOCDIR)/docs/
	install -Dm644 CHANGELOG.md $(DESTDIR)$(DOCDIR)/CHANGELOG.md

# The files git tracks (as they are in the work tree) plus every crate the lock file names,
# vendored, with a cargo config that points at them: `cargo build --offline` needs nothing else.
dist:
	@command -v git >/dev/null || { echo "dist: needs git (the tarball holds the files git tracks)" >&2; exit 1; }
	rm -rf $(DISTDIR)/$(DIST) $(DISTDIR)/$(DIST).tar.gz
	mkdir -p $(DISTDIR)/$(DIST)/.cargo
	git ls-files -z | xargs -0 cp --parents -t $(DISTDIR)/$(DIST)
	$(CARGO) vendor --locked --versioned-dirs $(DISTDIR)/$(DIST)/vendor >$(DISTDIR)/$(DIST)/.cargo/config.toml
	sed -i 's|directory = ".*"|directory = "vendor"|' $(DISTDIR)/$(DIST)/.cargo/config.toml
	tar -C $(DISTDIR) --sort=name --owner=0 --group=0 --numeric-owner --mtime=@$$(git log -1 --format=%ct) -czf $(DISTDIR)/$(DIST).tar.gz $(DIST)
	rm -rf $(DISTDIR)/$(DIST)
	@echo "dist: $(DISTDIR)/$(DIST).tar.gz"

# Builds the .deb from the dist tarball (offline), the way a Debian source package would.
# DEB_BUILD_OPTIONS defaults to nocheck: `make check` runs the tests.
DEB_BUILD_OPTIONS ?= nocheck
deb: dist
	rm -rf $(DEBDIR)
	mkdir -p $(DEBDIR)
	tar -C $(DEBDIR) -xzf $(DISTDIR)/$(DIST).tar.gz
	cp -r packaging/debian $(DEBDIR)/$(DIST)/debian
	# debhelper (compat 13) points HOME at a scratch directory: name rustup's homes explicitly.
	cd $(DEBDIR)/$(DIST) && DEB_BUILD_OPTIONS="$(DEB_BUILD_OPTIONS)" \
		RUSTUP_HOME="$${RUSTUP_HOME:-$$HOME/.rustup}" CARGO_HOME="$${CARGO_HOME:-$$HOME/.cargo}" \
		dpkg-buildpackage -b -uc -us
	@ls $(DEBDIR)/*.deb
