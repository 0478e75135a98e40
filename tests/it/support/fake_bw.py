#!/usr/bin/env python3
"""A fake Bitwarden CLI (`bw` 2026.6.0) for colibri-vault's integration tests.

What it is for: letting tests drive colibri-vault's vault session without a server, while behaving like
the real CLI as recorded in ../shared/reference/bw-cli.md (and read off the npm build of 2026.6.0):
the same exit codes, the same stdout/stderr bytes (no trailing newline except `--version`), the
unauthenticated -> locked -> unlocked states kept in `$BITWARDENCLI_APPDATA_DIR/data.json`, the prompt
trap (exit 0, stdout "\\n") when `--nointeraction` is missing, a second unlock invalidating the first
session key, and the API client secret in clear text in data.json until logout.

What it guarantees on top, for the tests' assertions (never something the real bw does):
  * `calls.jsonl` next to this script: one JSON line per call (argv, the environment exactly as
    received, pid/ppid/pgid, timestamps, rc, stdout, stderr);
  * `violations.jsonl`: overlapping vault sessions and secrets in argv;
  * fault knobs (fail, hang, garbage, empty, signal, sync_fails), latency and a self-signed CA
    (`caFile`), from `fake-bw.json`.

What it is not: a Bitwarden implementation. There is no crypto; the item cache in data.json is only
obfuscated so that no secret value is stored in clear (as in the real data.json, where they are
EncStrings). Only `login --apikey` is implemented (no password or SSO login).

Configuration never comes from the environment (the program under test builds bw's environment from
scratch): it is read from `fake-bw.json` in this script's own directory. Stdlib only.
"""

import base64
import datetime
import errno
import fcntl
import hashlib
import json
import os
import signal
import stat
import sys
import time
import uuid

VERSION = "2026.6.0"
HERE = os.path.dirname(os.path.realpath(__file__))
CONFIG_PATH = os.path.join(HERE, "fake-bw.json")
CALLS_PATH = os.path.join(HERE, "calls.jsonl")
VIOLATIONS_PATH = os.path.join(HERE, "violations.jsonl")
STATE_PATH = os.path.join(HERE, "fake-bw-state.json")
LOCK_PATH = os.path.join(HERE, "fake-bw.lock")

# Exact texts from the recording (bw-cli.md, appendix A).
NOT_LOGGED_IN = "You are not logged in."
VAULT_LOCKED = "Vault is locked."
LOGGED_IN_SHORT = "\nTo unlock your vault, use the `unlock` command. ex:\n$ bw unlock"
WRONG_PASSWORD = (
    "ERROR bitwarden_crypto::keys::master_key: error=The decryption operation failed\n\n"
    "ERROR bitwarden_core::client::internal: error=Cryptography error, The decryption operation failed\n\n"
    "ERROR bitwarden_core::key_management::crypto: error=Cryptography error, "
    "The decryption operation failed\n\n"
    "Cryptography error, The decryption operation failed"
)
INSECURE = "Error: Insecure URL not allowed. All URLs must use HTTPS."
PASSWORD_REQUIRED = (
    "Master password is required. Try again in interactive mode or provide a password file or "
    "environment variable."
)
LIST_OBJECTS = ["items", "folders", "collections", "org-collections", "org-members", "organizations"]
GET_OBJECTS = [
    "item", "username", "password", "uri", "totp", "notes", "exposed", "attachment", "folder",
    "collection", "org-collection", "organization", "template", "fingerprint", "send",
]
CARD_FIELDS = ["cardholderName", "brand", "number", "expMonth", "expYear", "code"]
IDENTITY_FIELDS = [
    "title", "firstName", "middleName", "lastName", "address1", "address2", "address3", "city",
    "state", "postalCode", "country", "company", "email", "phone", "ssn", "username",
    "passportNumber", "licenseNumber",
]

# Options that take a value, per command (commander definitions of bw 2026.6.0).
GLOBAL_VALUE_OPTS = {"--session"}
GLOBAL_FLAGS = {"--pretty", "--raw", "--response", "--cleanexit", "--quiet", "--nointeraction"}
COMMAND_VALUE_OPTS = {
    "login": {"--method", "--code", "--passwordenv", "--passwordfile"},
    "unlock": {"--passwordenv", "--passwordfile"},
    "list": {"--search", "--url", "--folderid", "--collectionid", "--organizationid"},
    "get": {"--itemid", "--output", "--organizationid"},
    "config": {"--web-vault", "--api", "--identity", "--icons", "--notifications", "--events",
               "--key-connector"},
}
COMMAND_FLAGS = {
    "login": {"--apikey", "--check", "--sso"},
    "unlock": {"--check"},
    "list": {"--trash", "--archived"},
    "sync": {"--force", "-f", "--last"},
}
COMMANDS = {"login", "logout", "lock", "unlock", "sync", "config", "status", "list", "get"}
POSITIONALS = {  # (required, optional)
    "login": (0, 2), "unlock": (0, 1), "list": (1, 0), "get": (2, 0), "config": (1, 1),
    "logout": (0, 0), "lock": (0, 0), "sync": (0, 0), "status": (0, 0),
}
ARG_NAMES = {"list": ["object"], "get": ["object", "id"], "config": ["setting"]}


class Finish(Exception):
    """Ends the command: output is already in the Output object."""


class Output:
    def __init__(self, env):
        self.env = env
        self.stdout = ""
        self.stderr = ""
        self.rc = 0

    def flag(self, name):
        return self.env.get(name) == "true"

    # --- BaseProgram.processResponse ------------------------------------------------------------
    def error(self, message, data=None):
        if not self.flag("BW_QUIET"):
            if self.flag("BW_RESPONSE"):
                body = {"success": False, "message": message}
                if data is not None:
                    body["data"] = data
                self.write_out(self.to_json(body))
            else:
                self.write_err(message)
        self.rc = 0 if self.env.get("BW_CLEANEXIT") else 1
        raise Finish()

    def success(self, data):
        if self.flag("BW_RESPONSE"):
            out = self.to_json({"success": True, "data": data})
        else:
            kind = data.get("object")
            out = None
            if kind == "template":
                out = self.to_json(data["template"])
            elif kind == "string":
                out = data.get("data")
            elif kind == "list":
                out = self.to_json(data["data"])
            elif kind == "message":
                out = self.message_text(data)
            else:
                out = self.to_json(data)
        if out is not None and not self.flag("BW_QUIET"):
            self.write_out(out)
        self.rc = 0
        raise Finish()

    def message_text(self, data):
        if self.flag("BW_RAW"):
            return data.get("raw")
        out = ""
        if data.get("title") is not None:
            out = data["title"]
        if data.get("message") is not None:
            if data.get("title") is not None:
                out += "\n"
            out += data["message"]
        return None if out.strip() == "" else out

    def to_json(self, obj):
        if self.flag("BW_PRETTY"):
            return json.dumps(obj, indent=2, ensure_ascii=False, separators=(",", ": "))
        return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))

    # CliUtils.writeLn(s, finalLine=true): a newline only when the stream is a TTY.
    def write_out(self, text):
        self.stdout += text + ("\n" if isatty(1) else "")

    def write_err(self, text):
        self.stderr += text + ("\n" if isatty(2) else "")

    def prompt_trap(self, prompt):
        """inquirer prompting on a stdin that is not a TTY: prompt on stderr, `\\n` on stdout, rc 0."""
        n = len(prompt)
        self.stderr += "%s\x1b[%dD\x1b[%dC" % (prompt, n, n)
        self.stdout += "\n"
        self.rc = 0
        raise Finish()


def message(title, text=None, raw=None):
    data = {"noColor": False, "object": "message", "title": title, "message": text}
    if raw is not None:
        data["raw"] = raw
    return data


def isatty(fd):
    try:
        return os.isatty(fd)
    except OSError:
        return False


def now_iso(t=None):
    t = time.time() if t is None else t
    d = datetime.datetime.fromtimestamp(t, datetime.timezone.utc)
    return d.strftime("%Y-%m-%dT%H:%M:%S.") + "%03dZ" % (d.microsecond // 1000)


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def sha256(text):
    return hashlib.sha256(text.encode("utf-8", "surrogateescape")).hexdigest()


# --- files --------------------------------------------------------------------------------------


class Lock:
    """An exclusive flock on one lock file beside this script, shared by every state file."""

    def __enter__(self):
        self.fd = os.open(LOCK_PATH, os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(self.fd, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc):
        fcntl.flock(self.fd, fcntl.LOCK_UN)
        os.close(self.fd)


def read_json(path, default):
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        return default


def write_json_in_place(path, obj, mode=0o600):
    """Rewrites `path` in place (keeping its inode and mode, as node's writeFile does)."""
    data = (json.dumps(obj, indent=2, ensure_ascii=False) + "\n").encode()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)


def write_json_atomically(path, obj):
    """Replaces `path` by a rename: the fake's own bookkeeping (not bw's data.json, which the real
    bw rewrites in place) must survive a SIGKILL in the middle of a call, which colibri-vault
    sends when it is stopped by a signal."""
    data = (json.dumps(obj, indent=2, ensure_ascii=False) + "\n").encode()
    tmp = "%s.%d.tmp" % (path, os.getpid())
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def append_line(path, obj):
    line = (json.dumps(obj, ensure_ascii=True, separators=(",", ":")) + "\n").encode()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)


def load_config():
    try:
        with open(CONFIG_PATH, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError) as e:
        sys.stderr.write("fake bw: cannot read %s: %s\n" % (CONFIG_PATH, e))
        sys.exit(70)


# --- what the process received ------------------------------------------------------------------


def received_environment():
    """The environment exactly as the caller passed it.

    CPython's C-locale coercion (PEP 538) adds LC_CTYPE=C.UTF-8 to os.environ when the caller passed
    no locale; on Linux the untouched block is in /proc/self/environ. Elsewhere, undo the coercion.
    """
    try:
        with open("/proc/self/environ", "rb") as f:
            raw = f.read()
        env = {}
        for entry in raw.split(b"\0"):
            if not entry:
                continue
            k, _, v = entry.partition(b"=")
            env[k.decode("utf-8", "replace")] = v.decode("utf-8", "replace")
        return env
    except OSError:
        env = dict(os.environ)
        if env.get("LC_CTYPE") in ("C.UTF-8", "C.utf8") and "LANG" not in env and "LC_ALL" not in env:
            del env["LC_CTYPE"]
        return env


def stdin_kind():
    try:
        st = os.fstat(0)
    except OSError:
        return "closed"
    if stat.S_ISCHR(st.st_mode):
        try:
            if st.st_rdev == os.stat("/dev/null").st_rdev:
                return "null"
        except OSError:
            pass
        return "tty" if isatty(0) else "char"
    if stat.S_ISFIFO(st.st_mode):
        return "pipe"
    if stat.S_ISREG(st.st_mode):
        return "file"
    if stat.S_ISSOCK(st.st_mode):
        return "socket"
    return "other"


def pid_alive(pid):
    if not pid or pid <= 1:
        return pid == 1
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except OSError:
        pass
    import subprocess  # only where there is no /proc (FreeBSD)

    try:
        out = subprocess.run(["ps", "-o", "stat=", "-p", str(pid)], capture_output=True, text=True,
                             env={"PATH": "/bin:/usr/bin"}, timeout=5).stdout.strip()
        return bool(out) and not out.startswith("Z")
    except (OSError, subprocess.SubprocessError):
        return True


# --- argument parsing (commander, as configured by bw) -------------------------------------------


class Args:
    def __init__(self):
        self.command = None
        self.positionals = []
        self.opts = {}
        self.flags = set()
        self.version = False
        self.help = False
        self.error = None  # (message, newline) printed by commander itself, rc 1

    def step(self):
        if self.version:
            return "version"
        if self.command is None:
            return "help"
        if self.command == "list" and self.positionals:
            return "list " + self.positionals[0].lower()
        if self.command == "get" and self.positionals:
            return "get " + self.positionals[0].lower()
        if self.command in ("login", "unlock") and "--check" in self.flags:
            return self.command + " --check"
        return self.command


def parse_args(argv):
    a = Args()
    i = 0
    while i < len(argv):
        tok = argv[i]
        i += 1
        if tok == "--":
            a.positionals.extend(argv[i:])
            break
        if tok.startswith("-") and tok != "-":
            name, eq, val = tok.partition("=")
            cmd_vals = COMMAND_VALUE_OPTS.get(a.command, set())
            cmd_flags = COMMAND_FLAGS.get(a.command, set())
            if name in ("-v", "--version"):
                a.version = True
                return a
            if name in ("-h", "--help"):
                a.help = True
                continue
            if name in GLOBAL_VALUE_OPTS or name in cmd_vals:
                if not eq:
                    if i >= len(argv):
                        a.error = "error: option '%s <%s>' argument missing" % (name, name.lstrip("-"))
                        return a
                    val = argv[i]
                    i += 1
                a.opts[name] = val
            elif name in GLOBAL_FLAGS or name in cmd_flags:
                a.flags.add("--force" if name == "-f" else name)
            else:
                a.error = "error: unknown option '%s'" % tok
                return a
        elif a.command is None:
            if tok not in COMMANDS:
                a.command = tok
                a.error = "Invalid command: %s\nSee --help for a list of available commands." % tok
                return a
            a.command = tok
        else:
            a.positionals.append(tok)
    if a.command is not None and not a.help:
        required, optional = POSITIONALS[a.command]
        if len(a.positionals) < required:
            a.error = "error: missing required argument '%s'" % ARG_NAMES[a.command][len(a.positionals)]
    return a


# --- the fake "server" and data.json -----------------------------------------------------------


def norm_url(url):
    """environment.service formatUrl()."""
    if url is None or url == "":
        return None
    url = url.rstrip("/")
    if not url.startswith("http://") and not url.startswith("https://"):
        url = "https://" + url
    return url.strip()


def fetch_failure(url):
    """The node-fetch error for a URL the fake does not serve."""
    rest = url.split("://", 1)[1]
    hostport = rest.split("/", 1)[0]
    if hostport.startswith("["):
        host, _, port = hostport[1:].partition("]")
        port = port.lstrip(":")
    else:
        host, _, port = hostport.partition(":")
    port = port or "443"
    if host == "localhost":
        host = "127.0.0.1"
    if all(c.isdigit() or c == "." for c in host) or ":" in host:
        reason = "connect ECONNREFUSED %s:%s" % (host, port)
    else:
        reason = "getaddrinfo ENOTFOUND %s" % host
    return "FetchError: request to %s failed, reason: %s" % (url, reason)


class Vault:
    """data.json of one appdata dir, with the fake's notion of who is logged in and unlocked."""

    def __init__(self, path, data):
        self.path = path
        self.data = data
        self.dirty = False

    def set(self, key, value):
        self.data[key] = value
        self.dirty = True

    def drop(self, key):
        if key in self.data:
            del self.data[key]
            self.dirty = True

    def base_url(self):
        env = self.data.get("global_environment_environment") or {}
        return (env.get("urls") or {}).get("base")

    def user_id(self):
        return self.data.get("global_account_activeAccountId")

    def authed(self):
        uid = self.user_id()
        return bool(uid) and bool(self.data.get("user_%s_token_accessToken" % uid))

    def email(self):
        uid = self.user_id()
        return ((self.data.get("global_account_accounts") or {}).get(uid) or {}).get("email")

    def last_sync(self):
        uid = self.user_id()
        return self.data.get("user_%s_vaultSync_lastSync" % uid) if uid else None

    def protected_key(self):
        uid = self.user_id()
        return self.data.get("__PROTECTED__%s_user_auto" % uid) if uid else None

    def unlocked(self, session):
        prot = self.protected_key()
        return bool(session) and prot is not None and prot == "fake-protected:" + sha256(session)

    def cache(self):
        uid = self.user_id()
        blob = self.data.get("user_%s_fakeVault_cache" % uid) if uid else None
        return None if blob is None else unseal(uid, blob)


def seal(uid, obj):
    """Obfuscates the cached vault like an EncString, so no secret value sits in clear in data.json."""
    plain = json.dumps(obj, separators=(",", ":")).encode()
    iv = os.urandom(16)
    ct = xor_stream(uid, iv, plain)
    mac = hashlib.sha256(iv + ct).digest()
    return "2.%s|%s|%s" % (base64.b64encode(iv).decode(), base64.b64encode(ct).decode(),
                           base64.b64encode(mac).decode())


def unseal(uid, blob):
    iv_b64, ct_b64, _ = blob[2:].split("|")
    iv = base64.b64decode(iv_b64)
    return json.loads(xor_stream(uid, iv, base64.b64decode(ct_b64)))


def xor_stream(uid, iv, data):
    out = bytearray()
    counter = 0
    while len(out) < len(data):
        out += hashlib.sha256(uid.encode() + iv + counter.to_bytes(8, "big")).digest()
        counter += 1
    return bytes(a ^ b for a, b in zip(data, out))


def server_snapshot(cfg):
    return {
        "collections": list(cfg.get("collections") or []),
        "items": list(cfg.get("items") or []),
    }


def served(cfg, base):
    """Whether a request to `base` reaches the fake server."""
    if cfg.get("unreachable"):
        return False
    return norm_url(cfg.get("serverUrl")) == base


# --- rendering, in bw's key order (CipherResponse, CollectionResponse, OrganizationResponse) ----


def org_of(cfg):
    return cfg.get("organization") or {}


def collection_json(cfg, c):
    return {
        "object": "collection",
        "id": c["id"],
        "organizationId": c.get("organizationId", org_of(cfg).get("id")),
        "name": c["name"],
        "externalId": c.get("externalId"),
    }


def organization_json(cfg):
    org = org_of(cfg)
    return {"object": "organization", "id": org.get("id"), "name": org.get("name"), "status": 2,
            "type": 0, "enabled": True}


def item_json(cfg, it):
    o = {
        "type": it.get("type", 1),
        "name": it.get("name", ""),
        "favorite": bool(it.get("favorite", False)),
        "reprompt": it.get("reprompt", 0),
        "id": it["id"],
        "collectionIds": list(it.get("collectionIds") or []),
        "object": "item",
    }
    org_id = it.get("organizationId", org_of(cfg).get("id"))
    if org_id is not None:
        o["organizationId"] = org_id
    if it.get("notes") is not None:
        o["notes"] = it["notes"]
    o["fields"] = []
    t = o["type"]
    if t == 1:
        login = it.get("login") or {}
        lj = {"uris": [], "fido2Credentials": []}
        for k in ("username", "password", "totp"):
            if login.get(k) is not None:
                lj[k] = login[k]
        lj["passwordRevisionDate"] = login.get("passwordRevisionDate")
        o["login"] = lj
    elif t == 2:
        o["secureNote"] = {"type": 0}
    elif t == 3:
        card = it.get("card") or {}
        o["card"] = {k: card[k] for k in CARD_FIELDS if card.get(k) is not None}
    elif t == 4:
        ident = it.get("identity") or {}
        o["identity"] = {k: ident[k] for k in IDENTITY_FIELDS if ident.get(k) is not None}
    o["passwordHistory"] = []
    o["creationDate"] = it.get("creationDate", "2026-11-22T07:41:37.389Z")
    o["revisionDate"] = it.get("revisionDate", "2026-11-22T07:41:37.391Z")
    if it.get("deletedDate") is not None:
        o["deletedDate"] = it["deletedDate"]
    o["attachments"] = []
    return o


def search_match(it, query):
    """SearchService.searchCiphersBasic."""
    q = query.strip().lower()
    if q in (it.get("name") or "").lower():
        return True
    if len(q) >= 8 and it["id"].lower().startswith(q):
        return True
    login = it.get("login") or {}
    if it.get("type", 1) == 1 and login.get("username") and q in login["username"].lower():
        return True
    return False


# --- the commands -----------------------------------------------------------------------------


class Bw:
    sync_fails_at_login = False  # the `sync_fails` knob

    def __init__(self, cfg, args, env, out, vault):
        self.cfg = cfg
        self.args = args
        self.env = env
        self.out = out
        self.vault = vault

    def can_interact(self):
        return self.env.get("BW_NOINTERACTION") != "true"

    def session(self):
        return self.env.get("BW_SESSION")

    def exit_if_not_authed(self):
        if not self.vault.authed():
            self.out.error(NOT_LOGGED_IN)

    def exit_if_locked(self):
        self.exit_if_not_authed()
        if self.vault.unlocked(self.session()):
            return
        if not self.can_interact():
            self.out.error(VAULT_LOCKED)
        self.out.prompt_trap("? Master password: [input is hidden] ")

    def run(self):
        getattr(self, "cmd_" + self.args.command)()

    # config <setting> [value]
    def cmd_config(self):
        setting = self.args.positionals[0].lower()
        if setting != "server":
            self.out.error("Unknown setting.")
        value = self.args.positionals[1] if len(self.args.positionals) > 1 else None
        url_opts = [k for k in self.args.opts if k in COMMAND_VALUE_OPTS["config"]]
        if (value is None or value.strip() == "") and not url_opts:
            self.out.success({"object": "string",
                              "data": self.vault.base_url() or "https://bitwarden.com"})
        if self.vault.user_id():
            self.out.error("Logout required before server config update.")
        if value in ("null", "bitwarden.com", "https://bitwarden.com"):
            value = None
        o = self.args.opts
        urls = {  # the key order of the real data.json
            "base": norm_url(value), "api": norm_url(o.get("--api")),
            "identity": norm_url(o.get("--identity")), "webVault": norm_url(o.get("--web-vault")),
            "icons": norm_url(o.get("--icons")), "notifications": norm_url(o.get("--notifications")),
            "events": norm_url(o.get("--events")), "keyConnector": norm_url(o.get("--key-connector")),
            "send": None,
        }
        self.vault.set("global_environment_environment", {"region": "Self-hosted", "urls": urls})
        if "global_applicationId_appId" not in self.vault.data:
            self.vault.set("global_applicationId_appId", str(uuid.uuid4()))
        self.out.success(message("Saved setting `config`."))

    # status
    def cmd_status(self):
        v = self.vault
        tpl = {"serverUrl": v.base_url(), "lastSync": v.last_sync()}
        if v.user_id():
            tpl["userEmail"] = v.email()
            tpl["userId"] = v.user_id()
        if not v.authed():
            status = "unauthenticated"
        elif v.unlocked(self.session()):
            status = "unlocked"
        else:
            status = "locked"
        tpl["status"] = status
        self.out.success({"object": "template", "template": tpl})

    # login --check / login --apikey
    def cmd_login(self):
        if "--check" in self.args.flags:
            if self.vault.authed():
                self.out.success(message("You are logged in!"))
            self.out.error(NOT_LOGGED_IN)
        if self.vault.authed():
            self.out.error("You are already logged in as %s." % self.vault.email())
        if "--apikey" not in self.args.flags:
            self.out.error("fake bw: only `login --apikey` is implemented")
        client_id = self.env.get("BW_CLIENTID") or None
        if client_id is None and self.can_interact():
            self.out.prompt_trap("? client_id: ")
        client_secret = self.env.get("BW_CLIENTSECRET") or None
        if client_secret is None and self.can_interact():
            self.out.prompt_trap("? client_secret: ")
        if client_id is None or client_id.strip() == "":
            self.out.error("client_id is required.")
        if client_secret is None:
            self.out.error("client_secret is required.")
        bogus_session = base64.b64encode(os.urandom(64)).decode()  # LoginCommand.validatedParams
        if not client_id.startswith("user"):
            self.out.error("Invalid API Key; Organization API Key currently not supported")
        base = self.vault.base_url()
        identity = (base + "/identity") if base else "https://identity.bitwarden.com"
        if not identity.startswith("https://"):
            self.out.error(INSECURE)
        if base is None or not served(self.cfg, base):
            self.out.error(fetch_failure(identity + "/connect/token"))
        self.check_ca(identity + "/connect/token", "")
        acct = self.cfg.get("account") or {}
        if client_id != acct.get("clientId"):
            self.out.error("Invalid client_id")
        if client_secret != acct.get("clientSecret"):
            self.out.error("Incorrect client_secret")
        uid = acct["userId"]
        v = self.vault
        v.set("global_account_accounts", {uid: {"email": acct.get("email"), "emailVerified": True,
                                                "name": acct.get("name")}})
        v.set("global_account_activeAccountId", uid)
        v.set("user_%s_token_apiKeyClientId" % uid, client_id)
        v.set("user_%s_token_apiKeyClientSecret" % uid, client_secret)
        v.set("user_%s_token_accessToken" % uid, fake_jwt(acct, base))
        org = org_of(self.cfg)
        if org.get("id"):
            v.set("user_%s_organizations_organizations" % uid,
                  {org["id"]: {"id": org["id"], "name": org.get("name"), "status": 2, "type": 0,
                               "enabled": True}})
        if "global_applicationId_appId" not in v.data:
            v.set("global_applicationId_appId", str(uuid.uuid4()))
        if not self.sync_fails_at_login:
            v.set("user_%s_fakeVault_cache" % uid, seal(uid, server_snapshot(self.cfg)))
            v.set("user_%s_vaultSync_lastSync" % uid, now_iso())
        if self.can_interact():
            self.out.success(message("You are logged in!", LOGGED_IN_SHORT))
        self.out.success(message("You are logged in!", session_text(bogus_session), raw=bogus_session))

    # unlock [password] / unlock --check
    def cmd_unlock(self):
        v = self.vault
        if "--check" in self.args.flags:
            self.exit_if_not_authed()
            if v.unlocked(self.session()):
                self.out.success(message("Vault is unlocked!"))
            self.out.error(VAULT_LOCKED)
        self.exit_if_not_authed()
        password = self.args.positionals[0] if self.args.positionals else None
        if not password:
            if self.args.opts.get("--passwordfile"):
                path = self.args.opts["--passwordfile"]
                try:
                    with open(path, encoding="utf-8") as f:
                        password = f.readline().rstrip("\r\n")
                except OSError as e:
                    self.out.error("%s: %s, open '%s'" % (errno.errorcode.get(e.errno, "EIO"),
                                                          e.strerror.lower(), path))
            elif self.args.opts.get("--passwordenv"):
                var = self.args.opts["--passwordenv"]
                if self.env.get(var):
                    password = self.env[var]
                else:
                    self.out.stderr += "Warning: Provided passwordenv %s is not set\n" % var
        if not password:
            if not self.can_interact():
                self.out.error(PASSWORD_REQUIRED)
            self.out.prompt_trap("? Master password: [input is hidden] ")
        key = base64.b64encode(os.urandom(64)).decode()  # setNewSessionKey: 88 chars
        uid = v.user_id()
        if v.cache() is None:
            # The sync during login failed: no user key to decrypt. The real bw exits 0 and prints
            # nothing at all (bitwarden-protocol.md section 6).
            v.drop("__PROTECTED__%s_user_auto" % uid)
            self.out.rc = 0
            raise Finish()
        if password != (self.cfg.get("account") or {}).get("masterPassword"):
            self.out.error(WRONG_PASSWORD)
        v.set("__PROTECTED__%s_user_auto" % uid, "fake-protected:" + sha256(key))
        self.out.success(message("Your vault is now unlocked!", session_text(key),
                                 raw=key))

    def cmd_lock(self):
        self.exit_if_not_authed()
        self.vault.drop("__PROTECTED__%s_user_auto" % self.vault.user_id())
        self.out.success(message("Your vault is locked."))

    def cmd_logout(self):
        self.exit_if_not_authed()
        uid = self.vault.user_id()
        for key in list(self.vault.data):
            if key.startswith("user_%s_" % uid) or key.startswith("__PROTECTED__%s_" % uid):
                self.vault.drop(key)
        self.vault.drop("global_account_accounts")
        self.vault.drop("global_account_activeAccountId")
        self.out.success(message("You have logged out."))

    def cmd_sync(self):
        self.exit_if_not_authed()
        v = self.vault
        uid = v.user_id()
        if "--last" in self.args.flags:
            self.out.success({"object": "string", "data": v.last_sync()})
        base = v.base_url()
        if base is None or not served(self.cfg, base):
            self.out.error("Syncing failed: " + fetch_failure(base + "/api/accounts/revision-date"))
        self.check_ca(base + "/api/accounts/revision-date", "Syncing failed: ")
        v.set("user_%s_fakeVault_cache" % uid, seal(uid, server_snapshot(self.cfg)))
        v.set("user_%s_vaultSync_lastSync" % uid, now_iso())
        self.out.success(message("Syncing complete."))

    def check_ca(self, url, prefix):
        """A server with a throw-away CA: node trusts it only through NODE_EXTRA_CA_CERTS."""
        ca = self.cfg.get("caFile")
        if ca and self.env.get("NODE_EXTRA_CA_CERTS") != ca:
            self.out.error("%sFetchError: request to %s failed, reason: self-signed certificate in "
                           "certificate chain" % (prefix, url))

    def server_down_noise(self):
        base = self.vault.base_url()
        if base is None or served(self.cfg, base):
            return
        err = fetch_failure(base + "/api/config")
        port = err.rsplit(":", 1)[1] if "ECONNREFUSED" in err else ""
        self.out.stderr += (
            "Unable to fetch ServerConfig from %s/api %s\n" % (base, err)
            + "    at ClientRequest.<anonymous> (/usr/local/lib/node_modules/@bitwarden/cli/"
              "node_modules/node-fetch/lib/index.js:1501:11)\n"
            "    at ClientRequest.emit (node:events:524:28)\n"
            "    at emitErrorEvent (node:_http_client:101:11)\n"
            "    at TLSSocket.socketErrorListener (node:_http_client:504:5)\n"
            "    at TLSSocket.emit (node:events:524:28)\n"
            "    at emitErrorNT (node:internal/streams/destroy:169:8)\n"
            "    at emitErrorCloseNT (node:internal/streams/destroy:128:3)\n"
            "    at process.processTicksAndRejections (node:internal/process/task_queues:82:21) {\n"
            "  type: 'system',\n"
            "  errno: 'ECONNREFUSED',\n"
            "  code: 'ECONNREFUSED'\n"
            "}\n"
        ) if port else ""

    def cmd_list(self):
        obj = self.args.positionals[0]
        if obj not in LIST_OBJECTS:
            self.out.error('Unknown object "%s". Allowed objects are: %s.'
                           % (obj, ", ".join(LIST_OBJECTS)))
        self.exit_if_locked()
        cache = self.vault.cache()
        if cache is None:
            self.out.error(VAULT_LOCKED)
        self.server_down_noise()
        opts = self.args.opts
        search = opts.get("--search")
        search = search if search is not None and search.strip() != "" else None
        if obj == "items":
            self.out.success({"object": "list", "data": self.list_items(cache, opts, search)})
        if obj in ("collections", "org-collections"):
            org_id = opts.get("--organizationid")
            if obj == "org-collections":
                if org_id is None:
                    self.out.error("`organizationid` option is required.")
                source = server_snapshot(self.cfg)["collections"]  # fetched from the server
            else:
                source = cache["collections"]
            cols = [collection_json(self.cfg, c) for c in source]
            if org_id is not None:
                cols = [c for c in cols if c["organizationId"] == org_id]
            if search is not None:
                cols = [c for c in cols if search.strip().lower() in c["name"].lower()]
            self.out.success({"object": "list", "data": cols})
        if obj == "organizations":
            orgs = [organization_json(self.cfg)] if org_of(self.cfg).get("id") else []
            if search is not None:
                orgs = [o for o in orgs if search.strip().lower() in (o["name"] or "").lower()]
            self.out.success({"object": "list", "data": orgs})
        self.out.success({"object": "list", "data": []})  # folders, org-members

    def list_items(self, cache, opts, search):
        trash = "--trash" in self.args.flags
        items = [it for it in cache["items"] if (it.get("deletedDate") is not None) == trash]
        col, org, folder = (opts.get("--collectionid"), opts.get("--organizationid"),
                            opts.get("--folderid"))
        if col is not None or org is not None or folder is not None:
            def keep(it):
                cids = it.get("collectionIds") or []
                item_org = it.get("organizationId", org_of(self.cfg).get("id"))
                if folder is not None and folder == "null":
                    return True  # the fake has no folders
                if org is not None and ((org == "notnull" and item_org is not None)
                                        or org == item_org):
                    return True
                if col is not None:
                    if col == "notnull" and cids:
                        return True
                    if col == "null" and not cids:
                        return True
                    if col in cids:
                        return True
                return False
            items = [it for it in items if keep(it)]
        if search is not None:
            items = [it for it in items if search_match(it, search)]
        return [item_json(self.cfg, it) for it in items]

    def cmd_get(self):
        obj = self.args.positionals[0]
        if obj not in GET_OBJECTS:
            self.out.error('Unknown object "%s". Allowed objects are: %s.'
                           % (obj, ", ".join(GET_OBJECTS)))
        self.exit_if_locked()
        cache = self.vault.cache()
        if cache is None:
            self.out.error(VAULT_LOCKED)
        if obj not in ("item", "password", "username", "notes"):
            self.out.error("fake bw: `get %s` is not implemented" % obj)
        ident = self.args.positionals[1]
        live = [it for it in cache["items"] if it.get("deletedDate") is None]
        found = [it for it in cache["items"] if it["id"] == ident]
        if not found:
            found = [it for it in live if search_match(it, ident)]
        if len(found) > 1:
            ids = [it["id"] for it in found]
            self.out.error("More than one result was found. Try getting a specific object by `id` "
                           "instead. The following objects were found:" + "".join("\n" + i for i in ids),
                           data=ids)
        if not found:
            self.out.error("Not found.")
        it = found[0]
        if obj == "item":
            self.out.success(item_json(self.cfg, it))
        if obj == "notes":
            if not it.get("notes"):
                self.out.error("No notes available for this item.")
            self.out.success({"object": "string", "data": it["notes"]})
        login = it.get("login") or {}
        if it.get("type", 1) != 1 or not login.get(obj):
            self.out.error("No %s available for this login." % obj)
        self.out.success({"object": "string", "data": login[obj]})


def session_text(key):
    return (
        "\nTo unlock your vault, set your session key to the `BW_SESSION` environment variable. ex:\n"
        '$ export BW_SESSION="%s"\n> $env:BW_SESSION="%s"\n\n'
        "You can also pass the session key to any command with the `--session` option. ex:\n"
        "$ bw list items --session %s" % (key, key, key)
    )


def fake_jwt(acct, base):
    header = b64url(json.dumps({"alg": "RS256", "typ": "JWT"}, separators=(",", ":")).encode())
    payload = b64url(json.dumps({
        "nbf": int(time.time()), "exp": int(time.time()) + 3600, "iss": (base or "") + "/identity",
        "sub": acct.get("userId"), "email": acct.get("email"), "client_id": acct.get("clientId"),
        "scope": ["api"], "amr": ["Application"],
    }, separators=(",", ":")).encode())
    return "%s.%s.%s" % (header, payload, b64url(os.urandom(32)))


# --- the process ------------------------------------------------------------------------------


def init_storage(appdata, out):
    """NodeEnvSecureStorageService / LowdbStorageService start-up: create the dir and data.json."""
    if not os.path.isdir(appdata):
        out.stderr += 'Could not find dir, "%s"; creating it instead.\n' % appdata
        os.makedirs(appdata, mode=0o700, exist_ok=True)
    path = os.path.normpath(os.path.join(appdata, "data.json"))
    if not os.path.exists(path):
        out.stderr += 'Could not find data file, "%s"; creating it instead.\n' % path
        write_json_in_place(path, {"stateVersion": 79})
    return path


def pick_fault(cfg, step, nth):
    for f in cfg.get("faults") or []:
        if f.get("step") == step and (f.get("nth") is None or int(f["nth"]) == nth):
            return f
    return None


def secret_violations(cfg, argv, state):
    acct = cfg.get("account") or {}
    found = []
    named = [("client secret", acct.get("clientSecret")), ("master password", acct.get("masterPassword"))]
    keys = set((state.get("validKeys") or {}).values())
    for idx, arg in enumerate(argv):
        for what, secret in named:
            if secret and (arg == secret or (len(secret) >= 6 and secret in arg)):
                found.append({"kind": "secret_in_argv", "what": what, "argIndex": idx})
        for candidate in (arg, arg.partition("=")[2]):
            if candidate and "fake-protected:" + sha256(candidate) in keys:
                found.append({"kind": "secret_in_argv", "what": "session key", "argIndex": idx})
                break
    return found


def overlap_violations(state, appdata, step, ppid):
    found = []
    sessions = state.setdefault("sessions", {})
    for other_dir, s in list(sessions.items()):
        owner = s.get("ppid")
        if owner != ppid and not pid_alive(owner):
            # Its owner died without logging out (a crash); the next run may clean up after it.
            if other_dir == appdata:
                s["adoptedFrom"] = owner
                s["ppid"] = ppid
            continue
        if owner != ppid:
            found.append({"kind": "overlap", "message":
                          "`%s` from ppid %d while the vault session of ppid %d in %s is open"
                          % (step, ppid, owner, other_dir)})
        elif other_dir != appdata and step in ("login", "unlock"):
            found.append({"kind": "overlap", "message":
                          "`%s` in %s while the same process has a vault session open in %s"
                          % (step, appdata, other_dir)})
    return found


def main():
    for sig in (signal.SIGINT, signal.SIGPIPE):
        signal.signal(sig, signal.SIG_DFL)  # die by the signal, like node
    start = time.time()
    cfg = load_config()
    env = received_environment()
    argv = [a.encode("utf-8", "surrogateescape").decode("utf-8", "replace") for a in sys.argv[1:]]
    args = parse_args(argv)
    # Global options become BW_* variables (Program.register), so the rest reads only `env`.
    for flag, var in (("--pretty", "BW_PRETTY"), ("--raw", "BW_RAW"), ("--quiet", "BW_QUIET"),
                      ("--response", "BW_RESPONSE"), ("--cleanexit", "BW_CLEANEXIT"),
                      ("--nointeraction", "BW_NOINTERACTION")):
        if flag in args.flags:
            env[var] = "true"
    if "--session" in args.opts:
        env["BW_SESSION"] = args.opts["--session"]
    out = Output(env)
    ppid = os.getppid()
    appdata_env = os.environ.get("BITWARDENCLI_APPDATA_DIR")
    appdata = appdata_env or os.path.join(os.path.expanduser("~"), ".config", "Bitwarden CLI")
    appdata_key = os.path.abspath(appdata)
    step = args.step()
    record = {
        "pid": os.getpid(), "ppid": ppid, "pgid": os.getpgid(0), "sid": os.getsid(0),
        "argv0": sys.argv[0], "argv": argv, "env": received_environment(), "cwd": safe_cwd(),
        "stdin": stdin_kind(), "appdata": appdata_key, "appdataFromEnv": appdata_env is not None,
        "step": step, "nth": 0, "fault": None, "start": start, "end": None, "rc": None,
        "signal": None, "hung": False, "childPid": None, "stdout": "", "stderr": "",
    }
    violations = []

    with Lock():
        data_path = init_storage(appdata, out)
        state = read_json(STATE_PATH, {})
        counts = state.setdefault("counts", {})
        counts[step] = counts.get(step, 0) + 1
        record["nth"] = counts[step]
        fault = pick_fault(cfg, step, record["nth"])
        record["fault"] = fault.get("action") if fault else None
        violations += secret_violations(cfg, argv, state)
        violations += overlap_violations(state, appdata_key, step, ppid)
        write_json_atomically(STATE_PATH, state)
        note_violations(violations, record)

    time.sleep(float(cfg.get("latency") or 0) + float((cfg.get("stepLatency") or {}).get(step, 0)))

    when_after = bool(fault and fault.get("when") == "after")
    faulted_before = bool(fault and not when_after and fault.get("action") != "sync_fails")
    if faulted_before:
        apply_fault(fault, out, record)  # the step's work is never done
    elif args.error is not None:
        out.stderr += args.error + ("\n" if args.error.startswith("error:") else "")
        out.rc = 1
    elif args.version:
        out.stdout += (cfg.get("version") or VERSION) + "\n"
    elif args.help or args.command is None:
        out.stdout += "Usage: bw [options] [command]\n"
    else:
        with Lock():
            state = read_json(STATE_PATH, {})
            late = [v for v in overlap_violations(state, appdata_key, step, ppid)
                    if not any(v["message"] == w.get("message") for w in violations)]
            note_violations(late, record)
            vault = Vault(data_path, read_json(data_path, {"stateVersion": 79}))
            bw = Bw(cfg, args, env, out, vault)
            bw.sync_fails_at_login = bool(fault and fault.get("action") == "sync_fails")
            was_authed = vault.authed()
            try:
                bw.run()
            except Finish:
                pass
            if vault.dirty:
                write_json_in_place(data_path, vault.data)
            track_session(state, appdata_key, ppid, vault, was_authed)
            write_json_atomically(STATE_PATH, state)

    if fault and when_after:
        apply_fault(fault, out, record)
    finish(record, out)


def safe_cwd():
    try:
        return os.getcwd()
    except OSError:
        return None


def track_session(state, appdata, ppid, vault, was_authed):
    sessions = state.setdefault("sessions", {})
    keys = state.setdefault("validKeys", {})
    if not was_authed and vault.authed():
        sessions[appdata] = {"ppid": ppid, "opened": time.time(), "openedByPid": os.getpid()}
    if not vault.authed():
        sessions.pop(appdata, None)
    prot = vault.protected_key()
    if prot:
        keys[appdata] = prot
    else:
        keys.pop(appdata, None)


def note_violations(found, record):
    for v in found:
        v.update({"pid": record["pid"], "ppid": record["ppid"], "step": record["step"],
                  "appdata": record["appdata"], "time": time.time()})
        append_line(VIOLATIONS_PATH, v)


def apply_fault(fault, out, record):
    action = fault.get("action")
    if action == "fail":
        out.stdout = fault.get("stdout", "")
        out.stderr = fault.get("stderr", "")
        out.rc = int(fault.get("rc", 1))
    elif action == "garbage":
        out.stdout = fault.get("stdout", "<html><body>502 Bad Gateway</body></html>")
        out.stderr = fault.get("stderr", "")
        out.rc = 0
    elif action == "empty":
        out.stdout = ""
        out.stderr = fault.get("stderr", "")
        out.rc = 0
    elif action == "hang":
        if fault.get("ignoreTerm"):
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
        seconds = float(fault.get("seconds", 3600))
        if fault.get("child"):
            pid = os.fork()
            if pid == 0:  # a helper in the same process group, holding stdout/stderr open
                time.sleep(seconds)
                os._exit(0)
            record["childPid"] = pid
        record["hung"] = True
        if out.stderr:
            write_all(2, out.stderr)  # what bw printed before it stopped answering
            record["stderr"] = out.stderr
        with Lock():
            append_line(CALLS_PATH, record)
        time.sleep(seconds)
        sys.exit(0)
    elif action == "signal":
        sig = fault.get("signal", "SIGKILL")
        signum = int(sig) if str(sig).isdigit() else int(getattr(signal, sig if sig.startswith("SIG")
                                                                  else "SIG" + sig))
        record["signal"] = signum
        record["end"] = time.time()
        with Lock():
            append_line(CALLS_PATH, record)
        try:
            signal.signal(signum, signal.SIG_DFL)
        except (OSError, ValueError):
            pass
        os.kill(os.getpid(), signum)
        time.sleep(1)
        os._exit(128 + signum)
    else:
        out.stdout = ""
        out.stderr = "fake bw: unknown fault action %r" % action
        out.rc = 70


def finish(record, out):
    record["end"] = time.time()
    record["rc"] = out.rc
    record["stdout"] = out.stdout
    record["stderr"] = out.stderr
    with Lock():
        append_line(CALLS_PATH, record)
    write_all(1, out.stdout)
    write_all(2, out.stderr)
    sys.exit(out.rc)


def write_all(fd, text):
    data = text.encode("utf-8", "surrogateescape")
    while data:
        try:
            n = os.write(fd, data)
        except OSError:
            return  # the reader went away; the real bw does not care either
        data = data[n:]


if __name__ == "__main__":
    main()
