//! The FreeBSD packaging: the port under `port/`, the Bastille template, the rc.d script, the devd
//! rule and the man page, checked the way the tools that consume them would check them (none of
//! which runs here: `make makesum`, `pkg create` and Bastille need FreeBSD).

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const REGEN: &str = "run `make port-crates` and commit port/Makefile.crates and port/distinfo";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(rel: &str) -> String {
    fs::read_to_string(root().join(rel)).unwrap_or_else(|e| panic!("read {rel}: {e}"))
}

/// A child with a clean environment (only PATH), run in the repository.
fn run(program: &str, args: &[&str]) -> Output {
    let output = Command::new(program)
        .args(args)
        .current_dir(root())
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", std::env::var_os("HOME").unwrap_or_default())
        .output()
        .unwrap_or_else(|e| panic!("could not start {program}: {e}"));
    assert!(
        output.status.success(),
        "{program} {args:?} failed ({}):\n{}{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// `name-version` and checksum of every crates.io package in Cargo.lock, read independently of
/// scripts/port-crates.py.
fn lock_crates() -> Vec<(String, String)> {
    let lock = read("Cargo.lock");
    let mut crates = Vec::new();
    for block in lock.split("[[package]]").skip(1) {
        let field = |key: &str| {
            block.lines().find_map(|l| {
                l.strip_prefix(key)
                    .and_then(|r| r.strip_prefix(" = \""))
                    .and_then(|r| r.strip_suffix('"'))
                    .map(str::to_owned)
            })
        };
        if field("source").as_deref() == Some("registry+https://github.com/rust-lang/crates.io-index") {
            let name = field("name").expect("name");
            let version = field("version").expect("version");
            crates.push((format!("{name}-{version}"), field("checksum").expect("checksum")));
        }
    }
    assert!(!crates.is_empty(), "no crates.io packages in Cargo.lock");
    crates
}

#[test]
fn makefile_crates_is_what_the_script_generates_from_cargo_lock() {
    let generated = run("python3", &["scripts/port-crates.py", "--print", "makefile-crates"]);
    let generated = String::from_utf8(generated.stdout).unwrap();
    let committed = read("port/Makefile.crates");
    assert!(committed == generated, "port/Makefile.crates does not match Cargo.lock: {REGEN}");
    // The script's output lists every crates.io package, in Cargo.lock's order.
    let listed: Vec<&str> =
        committed.split_whitespace().filter(|w| *w != "\\" && !w.starts_with("CARGO_CRATES=")).collect();
    let expected: Vec<String> = lock_crates().into_iter().map(|(c, _)| c).collect();
    assert_eq!(listed, expected, "{REGEN}");
    assert!(committed.starts_with("CARGO_CRATES=\t"));
}

#[test]
fn distinfo_has_the_lockfile_checksum_and_a_size_for_every_crate() {
    let distinfo = read("port/distinfo");
    let mut sha = BTreeMap::new();
    let mut size = BTreeMap::new();
    for line in distinfo.lines() {
        let Some((kind, rest)) = line.split_once(" (") else {
            assert!(line.starts_with("TIMESTAMP = "), "odd distinfo line {line:?}");
            continue;
        };
        let (file, value) = rest.split_once(") = ").expect("KIND (file) = value");
        let Some(crate_) = file.strip_prefix("rust/crates/").and_then(|f| f.strip_suffix(".crate")) else {
            continue; // the release tarball
        };
        let map = match kind {
            "SHA256" => &mut sha,
            "SIZE" => &mut size,
            other => panic!("unknown distinfo kind {other}"),
        };
        assert!(map.insert(crate_.to_owned(), value.to_owned()).is_none(), "{line} twice");
    }
    let crates = lock_crates();
    for (crate_, checksum) in &crates {
        assert_eq!(
            sha.get(crate_),
            Some(checksum),
            "distinfo SHA256 of {crate_} is not Cargo.lock's checksum: {REGEN}"
        );
        let bytes = size.get(crate_).and_then(|s| s.parse::<u64>().ok());
        assert!(bytes.is_some_and(|b| b > 0), "distinfo has no SIZE for {crate_}: {REGEN}");
    }
    let in_lock: BTreeSet<&String> = crates.iter().map(|(c, _)| c).collect();
    let stale: Vec<&String> = sha.keys().chain(size.keys()).filter(|c| !in_lock.contains(c)).collect();
    assert!(stale.is_empty(), "distinfo lists crates not in Cargo.lock {stale:?}: {REGEN}");

    // And the SHA256 lines are exactly those the script generates.
    let generated = run("python3", &["scripts/port-crates.py", "--print", "sha256"]);
    let generated = String::from_utf8(generated.stdout).unwrap();
    let committed: String =
        distinfo.lines().filter(|l| l.starts_with("SHA256 (rust/crates/")).flat_map(|l| [l, "\n"]).collect();
    assert!(committed == generated, "distinfo SHA256 lines differ from the script's: {REGEN}");
}

/// `VAR=\tvalue` assignments of a ports Makefile (continuation lines joined).
fn port_vars() -> BTreeMap<String, String> {
    let text = read("port/Makefile").replace("\\\n", " ");
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.starts_with('\t'))
        .filter_map(|l| l.split_once('='))
        .filter(|(k, _)| !k.contains(' ') && !k.contains(':'))
        .map(|(k, v)| {
            let v = v.split(" #").next().unwrap_or("").trim();
            (k.trim_end_matches('+').to_owned(), v.split_whitespace().collect::<Vec<_>>().join(" "))
        })
        .collect()
}

#[test]
fn port_makefile_declares_what_the_port_needs() {
    let vars = port_vars();
    let get = |k: &str| vars.get(k).map_or("", String::as_str);
    assert_eq!(get("PORTNAME"), "colibri-vault");
    assert_eq!(get("USES"), "cargo");
    assert_eq!(get("USE_RC_SUBR"), "colibri_vault");
    // A distfile story: Mk/Uses/cargo.mk appends the crates to DISTFILES, so bsd.port.mk's
    // `DISTFILES?=` default never applies and the port must name its own tarball (as
    // www/newsboat does); it comes from a master site, LOCAL until one is published.
    assert_eq!(get("DISTFILES"), "${DISTNAME}${EXTRACT_SUFX}");
    assert_eq!(get("MASTER_SITES"), "LOCAL/${PORTNAME}");
    // Supported from FreeBSD 14.0 (scripts/freebsd-link-check.sh checks the binary for it).
    assert!(read("port/Makefile").contains(
        ".if ${OPSYS} == FreeBSD && ${OSVERSION} < 1400000\nIGNORE=\t\tneeds FreeBSD 14.0 or later\n"
    ));
    assert_eq!(get("LICENSE"), "BSD2CLAUSE");
    assert!(read("port/Makefile").contains(".include <bsd.port.mk>"));
    // The version is the crate's.
    let manifest = read("Cargo.toml");
    assert!(
        manifest.contains(&format!("\nversion = \"{}\"\n", get("DISTVERSION"))),
        "port/Makefile DISTVERSION {} is not Cargo.toml's version",
        get("DISTVERSION")
    );
}

/// Option helpers a port may define for an option (Mk/Components/options.mk's
/// `_ALL_OPTIONS_HELPERS` for the kinds used here, plus `_DESC`).
const OPTION_HELPERS: [&str; 4] = ["DESC", "RUN_DEPENDS", "RUN_DEPENDS_OFF", "VARS"];

#[test]
fn bw_is_an_option_off_by_default_never_a_hard_dependency() {
    // security/bitwarden-cli sets LICENSE=BITWARDEN GPLv3, LICENSE_COMB=multi and
    // LICENSE_PERMS_BITWARDEN=none: bsd.licenses.mk then asks for confirmation, and under BATCH
    // (the package builders) sets IGNORE, so the builders skip it and every port that depends
    // on it. bw is an OPTION, off by default, on the architectures bitwarden-cli builds for.
    let vars = port_vars();
    let text = read("port/Makefile");
    for kind in ["RUN_DEPENDS", "BUILD_DEPENDS", "LIB_DEPENDS", "DEPENDS"] {
        assert!(!vars.contains_key(kind), "port/Makefile sets {kind}: bw must not be a hard dependency");
    }
    assert!(!vars.contains_key("ONLY_FOR_ARCHS"), "only bw was limited to aarch64 and amd64");
    for arch in ["aarch64", "amd64"] {
        assert_eq!(vars.get(&format!("OPTIONS_DEFINE_{arch}")).map(String::as_str), Some("BW"), "{arch}");
    }
    for key in vars.keys() {
        if key.starts_with("OPTIONS_DEFAULT") || key == "OPTIONS_SET" {
            assert!(!vars[key].split_whitespace().any(|o| o == "BW"), "BW must be off by default");
        }
        if let Some(helper) = key.strip_prefix("BW_") {
            assert!(OPTION_HELPERS.contains(&helper), "{key} is not an option helper");
        }
    }
    assert_eq!(vars["BW_RUN_DEPENDS"], "bw:security/bitwarden-cli");
    assert!(vars["BW_DESC"].contains("LICENSES_ACCEPTED+=BITWARDEN"), "{}", vars["BW_DESC"]);
    // The only mention of bitwarden-cli as a dependency is the option helper.
    let mentions: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("security/bitwarden-cli") && !l.starts_with('#') && !l.starts_with("BW_DESC="))
        .collect();
    assert_eq!(mentions, ["BW_RUN_DEPENDS=\tbw:security/bitwarden-cli"]);
    // The option machinery needs bsd.port.options.mk before the conditional part.
    let options = text.find(".include <bsd.port.options.mk>").expect("bsd.port.options.mk");
    assert!(options < text.find(".include <bsd.port.mk>").unwrap());
}

#[test]
fn make_dist_makes_the_tarball_with_cargo_lock_and_its_distinfo_entry() {
    let tmp = tempfile::tempdir().unwrap();
    let port = tmp.path().join("port");
    fs::create_dir_all(&port).unwrap();
    for file in ["distinfo", "Makefile.crates"] {
        fs::copy(root().join("port").join(file), port.join(file)).unwrap();
    }
    let dist = |make: &str| {
        let out = Command::new(make)
            .arg("dist")
            .current_dir(root())
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", std::env::var_os("HOME").unwrap_or_default())
            .env("DIST_DIR", tmp.path())
            .env("PORT_DIR", &port)
            .output()
            .unwrap();
        assert!(out.status.success(), "{make} dist: {}", String::from_utf8_lossy(&out.stderr));
        fs::read(tmp.path().join(format!("colibri-vault-{}.tar.gz", port_vars()["DISTVERSION"]))).unwrap()
    };
    let tarball = dist("make");
    let name = format!("colibri-vault-{}", port_vars()["DISTVERSION"]);
    let listing =
        Command::new("tar").arg("-tzf").arg(tmp.path().join(format!("{name}.tar.gz"))).output().unwrap();
    let listing = String::from_utf8(listing.stdout).unwrap();
    for file in ["Cargo.lock", "Cargo.toml", "src/main.rs", "Makefile", "port/files/provider.env.sample"] {
        assert!(listing.lines().any(|l| l == format!("{name}/{file}")), "{file} not in the tarball");
    }
    assert!(listing.lines().all(|l| l.starts_with(&format!("{name}/"))), "WRKSRC is {name}");
    assert!(!listing.contains("port/distinfo"), "the distinfo describes the tarball: not in it");
    // distinfo gets the tarball's SHA256 and SIZE, and keeps every crate line.
    let distinfo = fs::read_to_string(port.join("distinfo")).unwrap();
    let sha = colibri_vault::envfile::sha256_hex(&tarball);
    assert!(distinfo.contains(&format!("SHA256 ({name}.tar.gz) = {sha}\n")), "{distinfo}");
    assert!(distinfo.contains(&format!("SIZE ({name}.tar.gz) = {}\n", tarball.len())), "{distinfo}");
    let crates =
        |t: &str| t.lines().filter(|l| l.contains("(rust/crates/")).map(str::to_owned).collect::<Vec<_>>();
    assert_eq!(crates(&distinfo), crates(&read("port/distinfo")));
    // The same commit gives the same bytes, with FreeBSD's make too.
    assert_eq!(dist("bmake"), tarball, "make dist is not reproducible");
}

/// The files pkg-plist lists, relative to PREFIX, with `%%DATADIR%%` and friends expanded.
fn plist_files() -> BTreeSet<String> {
    let portname = port_vars()["PORTNAME"].clone();
    let mut files = BTreeSet::new();
    for line in read("port/pkg-plist").lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with("@comment") {
            continue;
        }
        let path = if let Some(rest) = line.strip_prefix("@sample") {
            // `@sample(owner,group,mode) etc/foo.sample`
            rest.rsplit(' ').next().unwrap().to_owned()
        } else {
            assert!(!line.starts_with('@'), "unexpected keyword in pkg-plist: {line}");
            line.to_owned()
        };
        let path = path
            .replace("%%DATADIR%%", &format!("share/{portname}"))
            .replace("%%ETCDIR%%", &format!("etc/{portname}"));
        assert!(!path.contains("%%"), "unexpanded {path}");
        assert!(files.insert(path.clone()), "{path} listed twice in pkg-plist");
    }
    files
}

fn walk(dir: &Path, base: &Path, out: &mut BTreeMap<String, u32>) {
    for entry in fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        let path = entry.path();
        let meta = fs::symlink_metadata(&path).unwrap();
        if meta.is_dir() {
            walk(&path, base, out);
        } else {
            let rel = path.strip_prefix(base).unwrap().to_string_lossy().into_owned();
            out.insert(rel, meta.permissions().mode() & 0o7777);
        }
    }
}

#[test]
fn pkg_plist_lists_exactly_what_make_install_and_the_port_install() {
    let tmp = tempfile::tempdir().unwrap();
    // `make install` runs `$(CARGO) build` first: CARGO=true skips it, as the port's do-install
    // does, and a stand-in executable takes the release binary's place.
    let target = tmp.path().join("target");
    fs::create_dir_all(target.join("release")).unwrap();
    fs::write(target.join("release/colibri-vault"), "#!/bin/sh\n").unwrap();
    let stage = tmp.path().join("stage");
    run(
        "make",
        &[
            "install",
            &format!("DESTDIR={}", stage.display()),
            "PREFIX=/usr/local",
            "CARGO=true",
            &format!("CARGO_TARGET_DIR={}", target.display()),
        ],
    );
    let prefix = stage.join("usr/local");
    let mut staged = BTreeMap::new();
    walk(&stage, &prefix, &mut staged);
    assert!(staged.keys().all(|p| !p.starts_with("..")), "make install wrote outside PREFIX: {staged:?}");

    // What the ports framework adds or changes: USE_RC_SUBR installs files/NAME.in as
    // etc/rc.d/NAME and lists it itself (so pkg-plist must not), and man pages are gzipped.
    let rc = port_vars()["USE_RC_SUBR"].clone();
    for name in rc.split_whitespace() {
        let script = root().join(format!("port/files/{name}.in"));
        assert!(script.is_file(), "USE_RC_SUBR={name} but no {}", script.display());
    }
    let expected: BTreeSet<String> = staged
        .keys()
        .map(|p| if p.starts_with("share/man/man") { format!("{p}.gz") } else { p.clone() })
        .collect();
    let plist = plist_files();
    for name in rc.split_whitespace() {
        assert!(!plist.contains(&format!("etc/rc.d/{name}")), "USE_RC_SUBR lists etc/rc.d/{name}");
    }
    let missing: Vec<_> = expected.difference(&plist).collect();
    let extra: Vec<_> = plist.difference(&expected).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "pkg-plist is out of step with `make install`:\n  installed but not in pkg-plist: \
         {missing:?}\n  in pkg-plist but not installed: {extra:?}"
    );

    // Samples are installed as such, and the provider env sample is private from the start.
    for line in read("port/pkg-plist").lines().filter(|l| l.starts_with("@sample")) {
        let path = line.rsplit(' ').next().unwrap();
        assert!(path.ends_with(".sample"), "{line}");
    }
    assert_eq!(staged["etc/colibri/provider.env.sample"], 0o600);
    assert_eq!(staged["sbin/colibri-vault"] & 0o111, 0o111);
    let devd = fs::read_to_string(prefix.join("etc/devd/colibri_vault.conf.sample")).unwrap();
    assert!(!devd.contains("%%"), "unsubstituted devd rule:\n{devd}");
    assert!(devd.contains("action \"/usr/local/sbin/colibri-vault hook devd --jid $jid\";"));
    let template = prefix.join("share/colibri-vault/templates/colibri/provision/Bastillefile");
    assert_eq!(fs::read_to_string(template).unwrap(), read(BASTILLEFILE));
}

#[test]
fn rc_script_follows_rc_subr_conventions() {
    let rc = read("port/files/colibri_vault.in");
    assert!(rc.starts_with("#!/bin/sh\n"));
    for line in [
        "# PROVIDE: colibri_vault\n",
        "# BEFORE: jail bastille\n",
        "# KEYWORD: nojail\n",
        ". /etc/rc.subr\n",
        "\tname=colibri_vault\n",
        "\trcvar=colibri_vault_enable\n",
        "load_rc_config \"${name}\"\n",
        ": \"${colibri_vault_enable:=NO}\"\n",
        ": \"${colibri_vault_flags:=}\"\n",
        "\t%%PREFIX%%/sbin/colibri-vault ${rc_flags} provision --all --boot\n",
        "run_rc_command \"$1\"\n",
    ] {
        assert!(rc.contains(line), "rc.d script lacks {line:?}");
    }
    let require = rc.lines().find_map(|l| l.strip_prefix("# REQUIRE: ")).unwrap();
    assert!(require.split_whitespace().any(|w| w == "NETWORKING"), "{require}");
    // `command` would make rc.subr refuse to start while a jail hook's colibri-vault runs.
    assert!(!rc.lines().any(|l| l.trim_start().starts_with("command=")));
}

const PERIODIC: &str = "port/files/490.colibri-vault-refresh.in";

/// Runs the periodic script as periodic(8) does (`/bin/sh SCRIPT`, output captured), with
/// `periodic_conf` as /etc/periodic.conf and a stand-in colibri-vault that records its
/// arguments and exits with `status`. Returns the script's status, its output, and the
/// stand-in's arguments (`None`: it did not run).
fn run_periodic(periodic_conf: &str, status: i32) -> (i32, String, Option<String>) {
    let tmp = tempfile::tempdir().unwrap();
    let prefix = tmp.path().join("prefix");
    fs::create_dir_all(prefix.join("sbin")).unwrap();
    let called = tmp.path().join("called");
    let stand_in = prefix.join("sbin/colibri-vault");
    fs::write(
        &stand_in,
        format!(
            "#!/bin/sh\necho \"$*\" > '{}'\necho 'colibri-vault: jail web: wrote' >&2\nexit {status}\n",
            called.display()
        ),
    )
    .unwrap();
    fs::set_permissions(&stand_in, fs::Permissions::from_mode(0o755)).unwrap();
    // /etc/defaults/periodic.conf: source_periodic_confs reads the periodic.conf files.
    let conf = tmp.path().join("periodic.conf");
    fs::write(&conf, periodic_conf).unwrap();
    let defaults = tmp.path().join("defaults-periodic.conf");
    fs::write(
        &defaults,
        format!("daily_show_success=YES\nsource_periodic_confs() {{\n\t. '{}'\n}}\n", conf.display()),
    )
    .unwrap();
    let script = read(PERIODIC)
        .replace("%%PREFIX%%", prefix.to_str().unwrap())
        .replace("/etc/defaults/periodic.conf", defaults.to_str().unwrap());
    let path = tmp.path().join("490.colibri-vault-refresh");
    fs::write(&path, script).unwrap();
    let out = Command::new("/bin/sh").arg(&path).env_clear().env("PATH", "/usr/bin:/bin").output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    let args = fs::read_to_string(&called).ok().map(|a| a.trim_end().to_owned());
    (out.status.code().unwrap(), text, args)
}

#[test]
fn periodic_script_is_off_by_default_and_refreshes_every_tenant_in_one_run() {
    let script = read(PERIODIC);
    assert!(script.starts_with("#!/bin/sh\n"), "a periodic(8) script lint-extra shellchecks");
    assert!(script.contains("\n\tsource_periodic_confs\n"));
    // Off by default: nothing runs, nothing is printed.
    for conf in ["", "daily_colibri_vault_refresh_enable=NO\n", "daily_colibri_vault_refresh_enable=maybe\n"]
    {
        assert_eq!(run_periodic(conf, 0), (0, String::new(), None), "{conf:?}");
    }
    // Enabled (any case), with global flags before the command: one refresh of every tenant.
    for enable in ["YES", "yes"] {
        let conf = format!(
            "daily_colibri_vault_refresh_enable={enable}\ndaily_colibri_vault_refresh_flags='-q --on-change-timeout 120'\n"
        );
        let (rc, text, args) = run_periodic(&conf, 0);
        assert_eq!(rc, 0, "{text}");
        assert_eq!(args.as_deref(), Some("-q --on-change-timeout 120 refresh --all"));
        assert!(text.contains("Refreshing jail secrets") && text.contains("jail web: wrote"), "{text}");
    }
    // A failure is status 3: periodic(8) never masks that output.
    let (rc, text, _) = run_periodic("daily_colibri_vault_refresh_enable=YES\n", 69);
    assert_eq!(rc, 3, "{text}");
    assert!(text.contains("jail web: wrote"));
    // Installed where periodic(8) looks for the ports' daily scripts, for the port too.
    assert!(plist_files().contains("etc/periodic/daily/490.colibri-vault-refresh"));
}

#[test]
fn devd_rule_matches_kmod_devctl_jail_created_events() {
    let devd = read("port/files/colibri_vault-devd.conf.in");
    let rule = devd.lines().filter(|l| !l.trim_start().starts_with('#')).collect::<Vec<_>>().join("\n");
    for line in [
        "match \"system\"\t\t\"kernel\";",
        "match \"subsystem\"\t\"jail\";",
        "match \"type\"\t\t\"created\";",
        "action \"%%PREFIX%%/sbin/colibri-vault hook devd --jid $jid\";",
    ] {
        assert!(rule.contains(line), "devd rule lacks {line:?}:\n{rule}");
    }
    assert!(rule.trim_start().starts_with("notify "));
    assert!(rule.trim_end().ends_with("};"));
    assert_eq!(rule.matches('{').count(), rule.matches('}').count());
    assert!(devd.contains("OPTIONAL") && devd.contains("asynchronous"));
}

#[test]
fn pkg_message_covers_the_first_steps() {
    let message = read("port/pkg-message");
    assert!(message.starts_with("[\n{ type: install\n  message: <<EOM\n"));
    assert!(message.ends_with("EOM\n}\n]\n"));
    let pin = colibri_vault::compat::pin_command();
    for step in [
        pin.as_str(),
        "npm-node22",
        "LICENSES_ACCEPTED+=BITWARDEN",
        "COLIBRI_BW",
        "colibri-vault doctor",
        "ln -s /usr/local/share/colibri-vault/templates/colibri",
        "chmod 600 provider.env",
        "colibri-vault tenant add",
        "colibri-vault jail enable",
        "bastille template web colibri/provision",
        "sysrc colibri_vault_enable=YES",
        "--on-change",
        "daily_colibri_vault_refresh_enable=YES",
    ] {
        assert!(message.contains(step), "pkg-message lacks {step:?}");
    }
}

const BASTILLEFILE: &str = "bastille-templates/colibri/provision/Bastillefile";

/// The hooks Bastille's template.sh knows (its `case` plus the documented hooks that it runs as
/// `bastille <cmd>`), in the upper case Bastillefiles use.
const BASTILLE_KEYWORDS: [&str; 20] = [
    "ARG",
    "ARG+",
    "CMD",
    "CONFIG",
    "CP",
    "COPY",
    "HPKG",
    "INCLUDE",
    "LIMITS",
    "LINE_IN_FILE",
    "LIF",
    "MOUNT",
    "FSTAB",
    "OVERLAY",
    "PKG",
    "RDR",
    "RENDER",
    "RESTART",
    "SERVICE",
    "SYSRC",
];

/// Bastille's `config set` accepts only these characters in a value (config.sh).
fn bastille_value_ok(value: &str) -> bool {
    !value.is_empty() && value.chars().all(|c| c.is_ascii_alphanumeric() || "._/:| $!&%=(){}-".contains(c))
}

/// The template's lines as Bastille's template.sh reads them: `\`-continuations joined, blank
/// and `#` lines dropped.
fn bastille_lines(text: &str) -> Vec<String> {
    let mut lines = Vec::new();
    let mut pending = String::new();
    for line in text.lines() {
        if let Some(head) = line.strip_suffix('\\') {
            pending.push_str(head);
            continue;
        }
        pending.push_str(line);
        let trimmed = pending.trim();
        if !trimmed.is_empty() && !trimmed.starts_with('#') {
            lines.push(pending.clone());
        }
        pending.clear();
    }
    lines
}

#[test]
fn bastillefile_is_what_bastille_accepts() {
    let text = read(BASTILLEFILE);
    assert!(text.ends_with('\n'), "a Bastillefile must end with a newline");
    let lines = bastille_lines(&text);
    let keywords: Vec<&str> = lines.iter().map(|l| l.split(' ').next().unwrap()).collect();
    for k in &keywords {
        assert!(BASTILLE_KEYWORDS.contains(k), "unknown Bastille keyword {k}");
    }
    assert_eq!(keywords, ["CONFIG", "RESTART"], "set the hook, then restart so it applies");
    assert_eq!(lines[1], "RESTART");

    // CONFIG set PROPERTY "VALUE": template.sh substitutes ${JAIL_NAME} and evals
    // `bastille config JAIL set PROPERTY "VALUE"`.
    let config = lines[0].strip_prefix("CONFIG ").unwrap();
    let (action, rest) = config.split_once(' ').unwrap();
    let (property, quoted) = rest.split_once(' ').unwrap();
    assert_eq!(action, "set");
    assert_eq!(property, "exec.poststart", "CONFIG set exec.created would clobber Bastille's += lines");
    let value = quoted
        .strip_prefix('"')
        .and_then(|v| v.strip_suffix('"'))
        .expect("the CONFIG value is double-quoted so eval keeps it one argument");
    // Nothing for eval to expand or unquote, apart from the ${JAIL_NAME} Bastille substitutes.
    let without_name = value.replace("${JAIL_NAME}", "");
    assert!(
        !without_name.contains(['$', '"', '\'', '\\', '`']),
        "value {value:?} has characters eval would interpret"
    );
    assert!(bastille_value_ok(value), "{value:?} has characters `bastille config` refuses");
    let applied = value.replace("${JAIL_NAME}", "web-1");
    assert!(bastille_value_ok(&applied));

    // What `bastille config web-1 set` then writes into jail.conf, and what it runs.
    let jail_conf_line = format!("  {property} = '{applied}';");
    assert_eq!(jail_conf_line, "  exec.poststart = '/usr/local/sbin/colibri-vault hook start web-1';");
    let argv: Vec<&str> = applied.split(' ').collect();
    assert_eq!(argv, ["/usr/local/sbin/colibri-vault", "hook", "start", "web-1"]);

    // The binary is where `make install` (PREFIX=/usr/local, sbin) and the port put it.
    let makefile = read("Makefile");
    assert!(makefile.contains("PREFIX=\t\t/usr/local\n"));
    assert!(makefile.contains("BINDIR=\t\t$(PREFIX)/sbin\n"));
    // No ARG: Bastille passes ARG values through eval on the host; secrets never go there.
    assert!(!keywords.iter().any(|k| k.starts_with("ARG")));
}

#[test]
fn bastille_checks_reject_what_bastille_rejects() {
    // The checks above are only worth something if they fail on bad templates.
    assert!(!bastille_value_ok("/usr/local/sbin/colibri-vault hook start 'web'"));
    assert!(!bastille_value_ok("/x; rm -rf /"));
    assert!(!bastille_value_ok("a\"b"));
    assert!(!bastille_value_ok(""));
    assert_eq!(
        bastille_lines("# c\n\nCONFIG set a \\\nb\n  # indented comment\nRESTART"),
        ["CONFIG set a b", "RESTART"]
    );
}

/// Every long option `colibri-vault … --help` lists, per command.
fn cli_options() -> BTreeMap<String, BTreeSet<String>> {
    let commands: [&[&str]; 15] = [
        &[],
        &["tenant", "add"],
        &["tenant", "list"],
        &["tenant", "show"],
        &["tenant", "set"],
        &["tenant", "remove"],
        &["provision"],
        &["refresh"],
        &["hook", "start"],
        &["hook", "stop"],
        &["hook", "devd"],
        &["jail", "enable"],
        &["jail", "disable"],
        &["status"],
        &["doctor"],
    ];
    let mut all = BTreeMap::new();
    for command in commands {
        let mut args: Vec<&str> = command.to_vec();
        args.push("--help");
        let output =
            Command::new(env!("CARGO_BIN_EXE_colibri-vault")).args(&args).env_clear().output().unwrap();
        assert!(output.status.success(), "colibri-vault {args:?} failed");
        let help = String::from_utf8(output.stdout).unwrap();
        let options: BTreeSet<String> = help
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
            .filter(|w| w.starts_with("--") && w.len() > 2)
            .filter(|w| !matches!(*w, "--help" | "--version"))
            .map(str::to_owned)
            .collect();
        all.insert(command.join(" "), options);
    }
    all
}

#[test]
fn man_page_documents_every_option_and_no_other() {
    let page = read("docs/colibri-vault.8");
    let documented: BTreeSet<String> = page
        .split(|c: char| c.is_whitespace())
        .collect::<Vec<_>>()
        .windows(2)
        .filter(|w| w[0].ends_with("Fl") && w[1].starts_with('-') && w[1].len() > 1)
        .map(|w| format!("-{}", w[1].trim_end_matches([',', '.', ';'])))
        .filter(|o| o.starts_with("--"))
        .collect();
    let cli = cli_options();
    let mut known = BTreeSet::new();
    for (command, options) in &cli {
        for option in options {
            assert!(
                documented.contains(option),
                "colibri-vault {command} {option} is not in docs/colibri-vault.8"
            );
            known.insert(option.clone());
        }
    }
    let stale: Vec<_> = documented.difference(&known).collect();
    assert!(stale.is_empty(), "docs/colibri-vault.8 documents options the CLI lacks: {stale:?}");
    for verb in [
        "tenant add",
        "tenant list",
        "tenant show",
        "tenant set",
        "tenant remove",
        "provision",
        "refresh",
        "hook start",
        "hook stop",
        "hook devd",
        "jail enable",
        "jail disable",
        "status",
        "doctor",
    ] {
        assert!(page.contains(&format!(".Cm {verb}")), "the man page lacks {verb}");
    }
    let environment = &page[page.find(".Sh ENVIRONMENT").unwrap()..page.find(".Sh FILES").unwrap()];
    let words: Vec<&str> = environment.split_whitespace().collect();
    // The code's own lists, so a setting added to the code but not the man page fails here.
    let variables = ["COLIBRI_PROVIDER_ENV"]
        .into_iter()
        .chain(colibri_vault::config::SETTING_KEYS)
        .chain(colibri_vault::config::CREDENTIAL_KEYS);
    for variable in variables {
        assert!(
            words.windows(2).any(|w| w == ["Ev", variable]),
            "the man page's ENVIRONMENT lacks {variable}"
        );
    }
    for status in ["0", "64", "65", "66", "69", "73", "75", "77", "78"] {
        assert!(page.contains(&format!("\n.It {status}\n")), "EXIT STATUS lacks {status}");
    }
}

#[test]
fn ci_installs_the_tested_bw_releases_and_the_docs_pin_the_recommended_one() {
    use colibri_vault::compat::{BW_RECOMMENDED, BW_TESTED};
    let ci = read(".ci/run");
    let value = |key: &str| {
        ci.lines()
            .find_map(|l| l.strip_prefix(&format!("{key}=")))
            .unwrap_or_else(|| panic!(".ci/run sets no {key}"))
            .trim_matches('"')
            .to_owned()
    };
    assert_eq!(value("BW_VERSION"), BW_RECOMMENDED.to_string(), "the bw on PATH in CI");
    let others: Vec<String> =
        BW_TESTED.iter().filter(|v| **v != BW_RECOMMENDED).map(ToString::to_string).collect();
    assert_eq!(value("BW_OTHER_VERSIONS"), others.join(" "), "compat::BW_TESTED must all be installed");
    let pin = colibri_vault::compat::pin_command();
    for doc in ["README.md", "port/pkg-message", "docs/colibri-vault.8"] {
        let text = read(doc).replace("\\-", "-").replace("\\&", "");
        assert!(text.contains(&pin), "{doc} does not pin bw with {pin:?}");
        assert!(text.contains("COLIBRI_BW"), "{doc} does not document COLIBRI_BW");
    }
}
