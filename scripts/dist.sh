#!/bin/sh
# make dist: the source tarball the FreeBSD port fetches, and its distinfo entry.
#
# The tarball is `git archive` of a commit (DIST_REF, default HEAD; a release
# uses its tag, so the tarball can be made again byte for byte), with the
# prefix colibri-vault-VERSION/ that the port's WRKSRC expects and Cargo.lock
# in it (USES=cargo builds offline against it). port/distinfo is left out
# (.gitattributes export-ignore): it describes the tarball, so it cannot be in
# it. Its SHA256 and SIZE are written into the port's distinfo
# (scripts/port-crates.py --distfile), next to the crates'.
#
# Settings (environment): DIST_REF, DIST_DIR (where the tarball goes, default
# the repository), PORT_DIR (the port whose distinfo is updated, default port).

set -eu

cd "$(dirname "$0")/.."

ref=${DIST_REF:-HEAD}
dist_dir=${DIST_DIR:-.}
port_dir=${PORT_DIR:-port}

fail() {
	echo "dist: $*" >&2
	exit 1
}

command -v git >/dev/null 2>&1 || fail "git is not installed"
git rev-parse --verify --quiet "$ref^{commit}" >/dev/null || fail "$ref is not a commit"
version=$(git show "$ref:Cargo.toml" | sed -n 's/^version = "\(.*\)"$/\1/p' | head -n 1)
[ -n "$version" ] || fail "no version in $ref:Cargo.toml"
name=colibri-vault-$version
if [ "$ref" = HEAD ] && [ -n "$(git status --porcelain --untracked-files=no)" ]; then
	echo "dist: warning: uncommitted changes are not in the tarball (it is made from $ref)" >&2
fi

mkdir -p "$dist_dir"
tarball=$dist_dir/$name.tar.gz
git archive --format=tar --prefix="$name/" "$ref" | gzip -n -9 >"$tarball.tmp"
mv "$tarball.tmp" "$tarball"

listing=$(tar -tzf "$tarball")
for file in Cargo.toml Cargo.lock src/main.rs Makefile; do
	printf '%s\n' "$listing" | grep -qx "$name/$file" || fail "$tarball lacks $name/$file"
done

python3 scripts/port-crates.py --port "$port_dir" --distfile "$tarball"
echo "dist: $tarball ($(wc -c <"$tarball" | tr -d ' ') bytes) and $port_dir/distinfo"
