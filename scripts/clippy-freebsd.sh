#!/bin/sh
# clippy for x86_64-unknown-freebsd: the FreeBSD-only code (jail crate, sysctl, procctl,
# O_RESOLVE_BENEATH) is compiled and linted only here, since nothing here runs FreeBSD.
#
# If the rustup target is not installed, this step alone is skipped with a loud warning
# (issue 2); `.ci/run` installs it, and the link check fails outright without it.

set -eu

cd "$(dirname "$0")/.."

target=${FREEBSD_TARGET:-x86_64-unknown-freebsd}

if ! rustup target list --installed 2>/dev/null | grep -qx "$target"; then
	cat >&2 <<MSG

########################################################################
# WARNING: the Rust target $target is not installed.
# SKIPPED: cargo clippy --target $target (FreeBSD code NOT linted).
# Install it with: rustup target add $target
########################################################################

MSG
	exit 0
fi

exec cargo clippy --locked --target "$target" --all-targets -- -D warnings
