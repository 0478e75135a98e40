# colibri-vault. POSIX make syntax only: this file must work with FreeBSD's make (bmake) and GNU make.

PREFIX=		/usr/local
DESTDIR=
CARGO=		cargo
CARGO_TARGET_DIR=	target
BINDIR=		$(PREFIX)/sbin
MANDIR=		$(PREFIX)/share/man/man8
FREEBSD_TARGET=	x86_64-unknown-freebsd
DATADIR=	$(PREFIX)/share/colibri-vault
ETCDIR=		$(PREFIX)/etc/colibri
DEVDDIR=	$(PREFIX)/etc/devd
PYTHON=		python3

all: build

build:
	$(CARGO) build --release --locked

# The test-only Bitwarden-protocol server (its own cargo workspace; never installed).
BWSERVER_MANIFEST=	dev/bwserver/Cargo.toml

# Lints: formatting, clippy for Linux and for FreeBSD (the crate and the test server), shell
# scripts, the man page.
check:
	$(CARGO) fmt --all --check
	$(CARGO) fmt --manifest-path $(BWSERVER_MANIFEST) --all --check
	$(CARGO) clippy --locked --all-targets -- -D warnings
	$(CARGO) clippy --locked --manifest-path $(BWSERVER_MANIFEST) --all-targets -- -D warnings
	sh scripts/clippy-freebsd.sh
	sh scripts/lint-extra.sh

# The whole test suite (what CI runs): the lints above, then every test. The test server is
# built first: the crate's tests run the real bw against it (tests/it/server.rs).
test: check
	$(CARGO) build --locked --manifest-path $(BWSERVER_MANIFEST)
	$(CARGO) test --locked --manifest-path $(BWSERVER_MANIFEST)
	$(CARGO) test --locked

demo:
	$(CARGO) build --locked
	sh scripts/demo.sh $(CARGO_TARGET_DIR)/debug/colibri-vault

install: build
	mkdir -p $(DESTDIR)$(BINDIR) $(DESTDIR)$(MANDIR)
	install -m 0555 $(CARGO_TARGET_DIR)/release/colibri-vault $(DESTDIR)$(BINDIR)/colibri-vault
	install -m 0444 docs/colibri-vault.8 $(DESTDIR)$(MANDIR)/colibri-vault.8
	mkdir -p $(DESTDIR)$(DATADIR)/templates/colibri/provision $(DESTDIR)$(ETCDIR) $(DESTDIR)$(DEVDDIR)
	install -m 0444 bastille-templates/colibri/provision/Bastillefile $(DESTDIR)$(DATADIR)/templates/colibri/provision/Bastillefile
	install -m 0600 port/files/provider.env.sample $(DESTDIR)$(ETCDIR)/provider.env.sample
	rm -f $(DESTDIR)$(DEVDDIR)/colibri_vault.conf.sample
	sed 's|%%PREFIX%%|$(PREFIX)|g' port/files/colibri_vault-devd.conf.in > $(DESTDIR)$(DEVDDIR)/colibri_vault.conf.sample
	chmod 0444 $(DESTDIR)$(DEVDDIR)/colibri_vault.conf.sample

clean:
	$(CARGO) clean

# The port's Makefile.crates and distinfo from Cargo.lock (may download crates to measure them).
port-crates:
	$(PYTHON) scripts/port-crates.py

# Builds a real FreeBSD executable with cargo-zigbuild and checks it is a FreeBSD ELF.
freebsd-link-check:
	sh scripts/freebsd-link-check.sh

.PHONY: all build check test demo install clean port-crates freebsd-link-check
