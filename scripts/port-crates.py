#!/usr/bin/env python3
"""Generate the FreeBSD port's Makefile.crates and the crate lines of its distinfo.

The port (port/, laid out as security/colibri-vault) builds with USES=cargo, which
fetches every crate listed in CARGO_CRATES (all crates.io packages of Cargo.lock,
for every platform) and checks each against distinfo (SHA256 and SIZE). On
FreeBSD `make cargo-crates` and `make makesum` do this; here this script does it
from Cargo.lock so the port stays in step with the lockfile:

    make port-crates            # rewrite port/Makefile.crates and port/distinfo
    scripts/port-crates.py --check
    scripts/port-crates.py --print makefile-crates|sha256
    scripts/port-crates.py --distfile colibri-vault-0.1.0.tar.gz   # (make dist)

Cargo.lock's `checksum` of a crates.io package is the SHA256 of its .crate file.
The SIZE is taken from the existing distinfo when the checksum is unchanged,
otherwise from the .crate in cargo's download cache ($CARGO_HOME/registry/cache),
running `cargo fetch --locked` (network) once if some are missing. Entries of
distinfo that are not crates (the release tarball) are kept as they are;
`--distfile FILE` sets FILE's own SHA256 and SIZE (what `make dist` does).
"""

import argparse
import hashlib
import os
import subprocess
import sys
import time
from pathlib import Path

REGISTRY = "registry+https://github.com/rust-lang/crates.io-index"
CRATE_DIR = "rust/crates"
ROOT = Path(__file__).resolve().parent.parent


def read_lock(path):
    """The crates.io packages of a Cargo.lock, in file order, as (name-version, sha256).

    Cargo.lock is TOML written by cargo in a fixed shape: one [[package]] table per
    package with `key = "value"` lines, so reading those lines is enough.
    """
    crates = []
    package = None

    def flush():
        if package is not None and package.get("source") == REGISTRY:
            if "checksum" not in package:
                sys.exit(f"{path}: {package.get('name')} has no checksum")
            crates.append((f"{package['name']}-{package['version']}", package["checksum"]))

    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("["):
            flush()
            package = {} if line.strip() == "[[package]]" else None
            continue
        if package is None:
            continue
        key, sep, value = line.partition(" = ")
        if sep and key in ("name", "version", "source", "checksum") and value.startswith('"'):
            package[key] = value.strip().strip('"')
    flush()
    return crates


def makefile_crates(crates):
    """Makefile.crates text, in the layout of the ports framework's `make cargo-crates`."""
    if not crates:
        return ""
    lines = []
    for i, (crate, _) in enumerate(crates):
        lead = "CARGO_CRATES=\t" if i == 0 else "\t\t"
        tail = " \\" if i < len(crates) - 1 else ""
        lines.append(f"{lead}{crate}{tail}")
    return "\n".join(lines) + "\n"


def distfile(crate):
    return f"{CRATE_DIR}/{crate}.crate"


def sha256_lines(crates):
    return "".join(f"SHA256 ({distfile(c)}) = {sha}\n" for c, sha in crates)


def parse_distinfo(path):
    """(timestamp or None, {distfile: {"SHA256": .., "SIZE": ..}}, other distfiles in order)."""
    timestamp, entries, order = None, {}, []
    if not path.exists():
        return timestamp, entries, order
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("TIMESTAMP = "):
            timestamp = line.split(" = ", 1)[1]
            continue
        kind, _, rest = line.partition(" (")
        name, sep, value = rest.partition(") = ")
        if not sep:
            continue
        if name not in entries:
            entries[name] = {}
            order.append(name)
        entries[name][kind] = value
    return timestamp, entries, order


def cargo_home():
    return Path(os.environ.get("CARGO_HOME", Path.home() / ".cargo"))


def cached_crate(crate):
    for cache in sorted((cargo_home() / "registry" / "cache").glob("*")):
        candidate = cache / f"{crate}.crate"
        if candidate.is_file():
            return candidate
    return None


def sizes(crates, known, lock):
    """SIZE of every crate: from distinfo when its SHA256 is unchanged, else the cache."""
    result, missing = {}, []
    for crate, sha in crates:
        entry = known.get(distfile(crate), {})
        if entry.get("SHA256") == sha and entry.get("SIZE", "").isdigit():
            result[crate] = entry["SIZE"]
        else:
            missing.append((crate, sha))
    uncached = [c for c, _ in missing if cached_crate(c) is None]
    if uncached:
        print(f"port-crates: {len(uncached)} crate(s) not in cargo's cache, running cargo fetch",
              file=sys.stderr)
        subprocess.run(
            ["cargo", "fetch", "--locked", "--manifest-path", str(lock.parent / "Cargo.toml")],
            check=True,
        )
    for crate, sha in missing:
        path = cached_crate(crate)
        if path is None:
            sys.exit(f"port-crates: {crate}.crate is not in {cargo_home()}/registry/cache")
        data = path.read_bytes()
        if hashlib.sha256(data).hexdigest() != sha:
            sys.exit(f"port-crates: {path} does not match the checksum in {lock}")
        result[crate] = str(len(data))
    return result


def distinfo_text(crates, port, lock, tarball=None):
    timestamp, entries, order = parse_distinfo(port / "distinfo")
    if tarball is not None:
        data = tarball.read_bytes()
        name = tarball.name
        new = {"SHA256": hashlib.sha256(data).hexdigest(), "SIZE": str(len(data))}
        if entries.get(name) != new:
            timestamp = None
        if name not in entries:
            order.insert(0, name)
        entries[name] = new
    size = sizes(crates, entries, lock)
    crate_files = {distfile(c) for c, _ in crates}
    out = []
    for name in order:
        # Entries that are not crates (e.g. the release tarball) stay as they are.
        if not name.startswith(f"{CRATE_DIR}/"):
            for kind, value in entries[name].items():
                out.append(f"{kind} ({name}) = {value}\n")
    for crate, sha in crates:
        out.append(f"SHA256 ({distfile(crate)}) = {sha}\n")
        out.append(f"SIZE ({distfile(crate)}) = {size[crate]}\n")
    old_crates = {n: e for n, e in entries.items() if n.startswith(f"{CRATE_DIR}/")}
    new_crates = {distfile(c): {"SHA256": sha, "SIZE": size[c]} for c, sha in crates}
    unchanged = old_crates == new_crates and set(old_crates) == crate_files
    if timestamp is None or not unchanged:
        timestamp = str(int(time.time()))
    return f"TIMESTAMP = {timestamp}\n" + "".join(out)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lock", type=Path, default=ROOT / "Cargo.lock")
    parser.add_argument("--port", type=Path, default=ROOT / "port")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--check", action="store_true",
                      help="exit 1 if Makefile.crates or distinfo is out of date")
    mode.add_argument("--print", choices=["makefile-crates", "sha256"],
                      help="write the generated text to stdout, change nothing")
    parser.add_argument("--distfile", type=Path,
                        help="also record this file's SHA256 and SIZE (the release tarball)")
    args = parser.parse_args()

    crates = read_lock(args.lock)
    if args.print == "makefile-crates":
        sys.stdout.write(makefile_crates(crates))
        return 0
    if args.print == "sha256":
        sys.stdout.write(sha256_lines(crates))
        return 0

    wanted = {
        args.port / "Makefile.crates": makefile_crates(crates),
        args.port / "distinfo": distinfo_text(crates, args.port, args.lock, args.distfile),
    }
    if args.check:
        stale = [p for p, text in wanted.items()
                 if not p.exists() or p.read_text(encoding="utf-8") != text]
        for path in stale:
            print(f"{path} is out of date with {args.lock}: run `make port-crates`",
                  file=sys.stderr)
        return 1 if stale else 0
    for path, text in wanted.items():
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8")
            print(f"port-crates: wrote {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
