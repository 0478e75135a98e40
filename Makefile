# colibri-vault. POSIX make syntax only: this file must work with FreeBSD's make (bmake) and GNU make.

PREFIX=		/usr/local
DESTDIR=
CARGO=		cargo
CARGO_TARGET_DIR=	target
BINDIR=		$(PREFIX)/sbin
MANDIR=		$(PREFIX)/share/man/man8
FREEBSD_TARGET=	x86_64-unknown-freebsd

all: build

build:
	$(CARGO) build --release --locked

# Lints: formatting, clippy for Linux and for FreeBSD, shell scripts, the man page.
check:
	$(CARGO) fmt --all --check
	$(CARGO) clippy --locked --all-targets -- -D warnings
	sh scripts/clippy-freebsd.sh
	sh scripts/lint-extra.sh

# The whole test suite (what CI runs): the lints above, then every test.
test: check
	$(CARGO) test --locked

demo:
	$(CARGO) build --locked
	sh scripts/demo.sh $(CARGO_TARGET_DIR)/debug/colibri-vault

install: build
	mkdir -p $(DESTDIR)$(BINDIR) $(DESTDIR)$(MANDIR)
	install -m 0555 $(CARGO_TARGET_DIR)/release/colibri-vault $(DESTDIR)$(BINDIR)/colibri-vault
	install -m 0444 docs/colibri-vault.8 $(DESTDIR)$(MANDIR)/colibri-vault.8

clean:
	$(CARGO) clean

.PHONY: all build check test demo install clean
