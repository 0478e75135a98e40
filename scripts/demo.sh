#!/bin/sh
# colibri-vault demo: a throwaway host under a temporary directory, one tenant,
# one jail start hook, and what it wrote. Nothing outside the temporary
# directory is touched, nothing needs root, and no value is ever printed.
#
# Usage: sh scripts/demo.sh PATH/TO/colibri-vault   (make demo does this)

set -eu

if [ $# -ne 1 ]; then
	echo "usage: sh scripts/demo.sh PATH/TO/colibri-vault (or: make demo)" >&2
	exit 64
fi
case $1 in
/*) bin=$1 ;;
*) bin=$(pwd)/$1 ;;
esac
if [ ! -x "$bin" ]; then
	echo "demo: $bin is not an executable; build it first (make demo does)" >&2
	exit 66
fi

tmpdir=${TMPDIR:-/tmp}
tmp=$(mktemp -d "${tmpdir%/}/colibri-demo.XXXXXX")
# Resolve symlinks in the temporary path (macOS /tmp, a symlinked TMPDIR):
# colibri-vault refuses a jail root reached through a symlink.
tmp=$(cd "$tmp" && pwd -P)
cleanup() {
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

say() {
	printf '\n==> %s\n' "$*"
}

# The jail's root is owned by whoever runs the demo (a real host: root:wheel).
owner="$(id -u):$(id -g)"
base=$tmp/jails
root=$base/web/root
provider_env=$tmp/etc/colibri/provider.env
secrets=$tmp/etc/colibri/secrets

say "Laying out a throwaway host in $tmp"
umask 077
mkdir -p "$root" "$secrets"
chmod 755 "$tmp" "$base" "$base/web" "$root"
echo "    jail root base  $base"
echo "    jail web        $root"

say "Provider env (mode 0600) selecting the dir source instead of Vaultwarden"
# On a real host this file holds BW_CLIENTID, BW_CLIENTSECRET, BW_PASSWORD and
# BW_SERVER; the COLIBRI_* lines are optional settings.
cat >"$provider_env" <<EOF
COLIBRI_SOURCE=dir
COLIBRI_SECRETS_DIR=$secrets
COLIBRI_DB=$tmp/db/colibri.sqlite
COLIBRI_JAIL_ROOT_BASE=$base
COLIBRI_STATE_DIR=$tmp/state
COLIBRI_RUN_DIR=$tmp/run
EOF
chmod 600 "$provider_env"
sed 's/^/    /' "$provider_env"

say "Sample secrets for collection web ($secrets/web.env, mode 0600; values masked here)"
# DB_PASSWORD holds a single quote and a dollar sign: the env file must keep
# both literally when /bin/sh sources it.
cat >"$secrets/web.env" <<'EOF'
DB_PASSWORD="s3cr'et\$pw"
DATABASE_URL='postgres://web@db.internal:5432/web'
SMTP_PASSWORD='hunter2-but-longer'
STRIPE_API_KEY=sk_test_4eC39HqLyjWDarjtT1zdp7dc
EOF
chmod 600 "$secrets/web.env"
sed -n 's/^\([A-Za-z_][A-Za-z0-9_]*\)=.*/    \1=********/p' "$secrets/web.env"

# colibri-vault with a clean environment (only the provider env's location),
# its output indented; the demo stops if it fails.
cv() {
	echo "    \$ colibri-vault $*"
	rc=0
	out=$(env -i PATH=/usr/bin:/bin COLIBRI_PROVIDER_ENV="$provider_env" "$bin" "$@" 2>&1) || rc=$?
	if [ -n "$out" ]; then
		printf '%s\n' "$out" | sed 's/^/    /'
	fi
	if [ "$rc" -ne 0 ]; then
		echo "demo: FAILED: colibri-vault $1 exited with status $rc" >&2
		exit "$rc"
	fi
}

say "Registering tenant web (jail name = tenant = collection)"
cv tenant add web --root "$root" --owner "$owner"

say "The jail starts: jail(8) runs exec.created = colibri-vault hook start \$name \${path}"
cv hook start web "$root"

envfile=$root/.env
if [ ! -f "$envfile" ]; then
	echo "demo: FAILED: $envfile was not written" >&2
	exit 1
fi

say "What was written into the jail"
# ls -ln prints mode, numeric owner and group the same way on FreeBSD and Linux.
# shellcheck disable=SC2012
ls -ln "$envfile" | awk '{ printf "    mode %s  owner %s:%s  %s bytes\n", $1, $3, $4, $5 }'
echo "    $envfile (values masked):"
sed -n 's/^\([A-Za-z_][A-Za-z0-9_]*\)=.*/      \1=********/p' "$envfile"

say "Check: /bin/sh sources it and gets DB_PASSWORD back exactly (quote and \$ intact)"
if (
	set -a
	# shellcheck source=/dev/null
	. "$envfile"
	[ "$DB_PASSWORD" = "s3cr'et\$pw" ]
); then
	echo "    yes"
else
	echo "demo: FAILED: DB_PASSWORD did not survive /bin/sh" >&2
	exit 1
fi

say "Status"
cv status

say "The jail restarts: provisioned less than COLIBRI_FRESH_FOR (300 s) ago and intact, so the vault is not asked"
cv hook start web "$root"

say "Done; removing $tmp"
