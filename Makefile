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
PERIODICDIR=	$(PREFIX)/etc/periodic/daily
PERIODIC=	490.colibri-vault-refresh
PYTHON=		python3
BENCH_FLAGS=

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
	mkdir -p $(DESTDIR)$(DATADIR)/templates/colibri/provision $(DESTDIR)$(ETCDIR) $(DESTDIR)$(DEVDDIR) $(DESTDIR)$(PERIODICDIR)
	install -m 0444 bastille-templates/colibri/provision/Bastillefile $(DESTDIR)$(DATADIR)/templates/colibri/provision/Bastillefile
	install -m 0600 port/files/provider.env.sample $(DESTDIR)$(ETCDIR)/provider.env.sample
	rm -f $(DESTDIR)$(DEVDDIR)/colibri_vault.conf.sample
	sed 's|%%PREFIX%%|$(PREFIX)|g' port/files/colibri_vault-devd.conf.in > $(DESTDIR)$(DEVDDIR)/colibri_vault.conf.sample
	chmod 0444 $(DESTDIR)$(DEVDDIR)/colibri_vault.conf.sample
	rm -f $(DESTDIR)$(PERIODICDIR)/$(PERIODIC)
	sed 's|%%PREFIX%%|$(PREFIX)|g' port/files/$(PERIODIC).in > $(DESTDIR)$(PERIODICDIR)/$(PERIODIC)
	chmod 0555 $(DESTDIR)$(PERIODICDIR)/$(PERIODIC)

clean:
	$(CARGO) clean

# A benchmark, not a test (docs/performance.md): the release binary against the fake bw, for 1, 10
# and 50 tenants; prints bw calls, logins, wall times, the no-tenant hook's median and peak RSS.
# Settings, in the environment or on the command line: BENCH_LATENCY (seconds per bw call, 0.2),
# BENCH_TENANTS (1,10,50), BENCH_RUNS (no-tenant hook runs, 200); BENCH_FLAGS for more (--json FILE).
bench:
	$(CARGO) build --release --locked
	$(PYTHON) scripts/bench.py --bin $(CARGO_TARGET_DIR)/release/colibri-vault $(BENCH_FLAGS)

# The port's Makefile.crates and distinfo from Cargo.lock (may download crates to measure them).
port-crates:
	$(PYTHON) scripts/port-crates.py

# The port's source tarball (git archive of DIST_REF, default HEAD; Cargo.lock included) and its
# SHA256 and SIZE in port/distinfo. Settings: DIST_REF, DIST_DIR, PORT_DIR (scripts/dist.sh).
dist:
	sh scripts/dist.sh

# Builds a real FreeBSD executable with cargo-zigbuild and checks it is a FreeBSD ELF.
freebsd-link-check:
	sh scripts/freebsd-link-check.sh

.PHONY: all build check test demo install clean bench port-crates dist freebsd-link-check
