#!/bin/sh
# Lints that cargo does not run: shellcheck on every shell script in the
# repository, mandoc on the man page. Called by `make check`.
#
# A missing tool is a failure, never a skip: a lint that could not run has not
# passed.

set -eu

cd "$(dirname "$0")/.."

status=0

need() {
	if ! command -v "$1" >/dev/null 2>&1; then
		echo "lint-extra: $1 is not installed; install it ($2) and run again" >&2
		exit 1
	fi
}

need shellcheck "Debian: apt-get install shellcheck; FreeBSD: pkg install hs-ShellCheck"
need mandoc "Debian: apt-get install mandoc; FreeBSD: in the base system"

# Every shell script: *.sh files and files whose first line is a sh or bash
# shebang (the rc.d script is port/files/colibri_vault.in), outside .git and
# cargo's target directories.
list=$(mktemp)
trap 'rm -f "$list"' EXIT
find . \( -name .git -o -name target \) -prune -o -type f -print | sort |
while IFS= read -r file; do
	case $file in
	*.sh)
		echo "$file"
		continue
		;;
	esac
	first=$(head -n 1 "$file" 2>/dev/null | tr -d '\000') || first=
	case $first in
	'#!/bin/sh'* | '#!/usr/bin/env sh'* | '#!/bin/bash'* | '#!/usr/bin/env bash'*)
		echo "$file"
		;;
	esac
done >"$list"

if [ ! -s "$list" ]; then
	echo "lint-extra: found no shell scripts, which cannot be right" >&2
	exit 1
fi

count=0
while IFS= read -r file; do
	count=$((count + 1))
	if ! shellcheck -x "$file"; then
		status=1
	fi
done <"$list"
echo "lint-extra: shellcheck checked $count script(s)"

# mandoc -T lint exits non-zero when it reports anything at or above -W.
for page in docs/*.[1-9]; do
	if [ ! -f "$page" ]; then
		echo "lint-extra: no man page in docs/" >&2
		status=1
		continue
	fi
	if ! mandoc -T lint -W warning "$page"; then
		status=1
	fi
	echo "lint-extra: mandoc checked $page"
done

if [ "$status" -ne 0 ]; then
	echo "lint-extra: FAILED" >&2
fi
exit "$status"
