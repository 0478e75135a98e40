#!/bin/sh
# Builds a real FreeBSD executable of colibri-vault and checks that it is one.
#
# cargo check/clippy with --target x86_64-unknown-freebsd prove the code
# compiles for FreeBSD; only linking proves that every symbol it needs exists
# in FreeBSD's libc (and that the bundled SQLite's C code builds for it).
# cargo-zigbuild links with zig, which ships FreeBSD libc stubs, so no FreeBSD
# sysroot is needed. Nothing here can run the result.
#
# Needs: the rustup target, zig (PyPI package ziglang) and cargo-zigbuild
# (PyPI package cargo-zigbuild). A missing tool is a failure, never a skip.

set -eu

cd "$(dirname "$0")/.."

target=${FREEBSD_TARGET:-x86_64-unknown-freebsd}
target_dir=${LINK_CHECK_TARGET_DIR:-target/link-check}

fail() {
	echo "freebsd-link-check: $*" >&2
	exit 1
}

command -v cargo >/dev/null 2>&1 || fail "cargo is not installed"
command -v file >/dev/null 2>&1 || fail "file(1) is not installed (apt-get install file)"
cargo zigbuild --help >/dev/null 2>&1 ||
	fail "cargo-zigbuild is not installed (pip install cargo-zigbuild ziglang)"
if ! command -v zig >/dev/null 2>&1 && ! python3 -m ziglang version >/dev/null 2>&1; then
	fail "zig is not installed (pip install ziglang)"
fi
rustup target list --installed 2>/dev/null | grep -qx "$target" ||
	fail "the Rust target $target is not installed (rustup target add $target)"

echo "freebsd-link-check: cargo zigbuild --target $target --release"
cargo zigbuild --locked --release --target "$target" --target-dir "$target_dir" \
	--bin colibri-vault

binary=$target_dir/$target/release/colibri-vault
[ -f "$binary" ] || fail "no executable at $binary"

description=$(file -b "$binary")
echo "freebsd-link-check: $binary: $description"
case $description in
*ELF*executable*FreeBSD* | *ELF*FreeBSD*executable*) ;;
*) fail "$binary is not a FreeBSD ELF executable" ;;
esac
case $target in
x86_64-*)
	case $description in
	*x86-64*) ;;
	*) fail "$binary is not an x86-64 executable" ;;
	esac
	;;
esac
# The oldest FreeBSD the binary starts on: the newest libc symbol version it needs. FBSD_1.7 is
# FreeBSD 14.0's libc (e.g. __libc_start1); FBSD_1.8 would mean 15.0. README states 14.0.
command -v readelf >/dev/null 2>&1 || fail "readelf is not installed (apt-get install binutils)"
newest=$(readelf --version-info -W "$binary" | grep -o 'FBSD_1\.[0-9]*' | sed 's/FBSD_1\.//' | sort -n | tail -n 1)
[ -n "$newest" ] || fail "$binary names no FBSD_1.x symbol version"
echo "freebsd-link-check: newest libc symbol version needed: FBSD_1.$newest"
[ "$newest" -le 7 ] || fail "$binary needs FBSD_1.$newest, newer than FreeBSD 14.0's FBSD_1.7: update the minimum in README.md and port/Makefile"
echo "freebsd-link-check: ok (runs on FreeBSD 14.0 and later)"
