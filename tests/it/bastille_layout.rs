//! Bastille's layout against colibri-vault's settings and tenants (issue 9, first-time operator):
//! `jail enable` and `doctor` compare a jail's `path` in its jail.conf with the tenant's
//! registered root and the jail root base, and `COLIBRI_JAIL_ROOT_BASE` with Bastille's
//! `bastille_jailsdir`, and say what to do (warnings: either side may be the one to correct, and
//! the hook refuses a mismatch by itself). A jail.conf inside a tenant's root is refused, and
//! everything `doctor` prints from the database or a jail is sanitized.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::core::s;
use crate::support::host::Host;

/// A Bastille layout whose `bastille_jailsdir` is `jailsdir`, with `web/jail.conf` setting
/// `path = <path>`. Returns the jail.conf.
fn layout(host: &mut Host, jailsdir: &Path, path: &str) -> PathBuf {
    fs::create_dir_all(jailsdir.join("web")).unwrap();
    let conf = host.path().join("bastille.conf");
    fs::write(&conf, format!("bastille_jailsdir={}\n", s(jailsdir))).unwrap();
    fs::set_permissions(&conf, fs::Permissions::from_mode(0o644)).unwrap();
    host.set_env("BASTILLE_CONFIG", conf.as_os_str());
    let jail_conf = jailsdir.join("web/jail.conf");
    fs::write(&jail_conf, format!("web {{\n  host.hostname = web;\n  path = {path};\n}}\n")).unwrap();
    jail_conf
}

#[test]
fn a_matching_layout_gives_no_warning() {
    let mut host = Host::new();
    let root = host.tenant("web", &[]);
    let base = host.base.clone();
    layout(&mut host, &base, &format!("{}/", s(&root)));
    let out = host.run(&["jail", "enable", "web"]);
    out.expect(0);
    assert!(!out.stderr.contains("warning"), "{}", out.stderr);
    let out = host.run(&["doctor"]);
    out.expect(0);
    assert!(
        out.stdout.contains("ok       COLIBRI_JAIL_ROOT_BASE is Bastille's jails directory"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("ok       web: the path in"), "{}", out.stdout);
}

#[test]
fn a_jail_path_that_is_not_the_registered_root_is_pointed_out_with_the_fix() {
    let mut host = Host::new();
    host.tenant("web", &[]);
    let base = host.base.clone();
    let other = host.base.join("web-old/root");
    let conf = layout(&mut host, &base, s(&other));
    let out = host.run(&["jail", "enable", "web"]);
    out.expect(0)
        .stderr_has(&format!("sets path = {} for jail web", s(&other)))
        .stderr_has(&format!("colibri-vault tenant set web --root {}", s(&other)));
    assert!(fs::read_to_string(&conf).unwrap().contains("hook start"));
    let out = host.run(&["doctor"]);
    assert!(
        out.stdout.contains(&format!("warning  {} sets path = {}", s(&conf), s(&other))),
        "{}",
        out.stdout
    );
    // The hook itself refuses that jail's start, as the warning said it would.
    host.secrets("web", "A=1\n");
    host.run(&["tenant", "set", "web", "--on-failure", "fail"]).expect(0);
    host.run(&["hook", "start", "web", s(&other)]).expect(73).stderr_has("differs from the registered root");
}

#[test]
fn a_base_that_is_not_bastilles_jails_directory_is_pointed_out_with_the_fix() {
    let mut host = Host::new();
    let jailsdir = host.path().join("bastille/jails");
    let conf = layout(&mut host, &jailsdir, s(&jailsdir.join("web/root")));
    let expected = format!("is not Bastille's jails directory {}", s(&jailsdir));
    let fix = format!("set COLIBRI_JAIL_ROOT_BASE={} in the provider env", s(&jailsdir));
    // No tenant yet: the jail's path is outside the base, so none could ever be registered.
    let out = host.run(&["jail", "enable", "web"]);
    out.expect(0).stderr_has(&expected).stderr_has(&fix).stderr_has("not a normalized path strictly under");
    assert!(fs::read_to_string(&conf).unwrap().contains("hook start"));
    let out = host.run(&["doctor"]);
    assert!(out.stdout.contains(&expected) && out.stdout.contains(&fix), "{}", out.stdout);
    // Following the advice silences it.
    host.append_provider_env(&format!("COLIBRI_JAIL_ROOT_BASE={}\n", s(&jailsdir)));
    host.set_env("COLIBRI_JAIL_ROOT_BASE", "");
    let out = host.run(&["jail", "enable", "web"]);
    out.expect(0);
    assert!(!out.stderr.contains("Bastille's jails directory"), "{}", out.stderr);
}

#[test]
fn a_jail_path_jail8_works_out_cannot_be_compared_and_says_so() {
    let mut host = Host::new();
    host.tenant("web", &[]);
    let base = host.base.clone();
    layout(&mut host, &base, &format!("\"{}/$name/root\"", s(&base)));
    host.run(&["jail", "enable", "web"]).expect(0).stderr_has("cannot compare it with the registered root");
}

#[test]
fn a_jail_conf_inside_a_tenants_root_is_refused() {
    let mut host = Host::new();
    // The tenant registered with Bastille's jail directory as its root: its jail.conf is then
    // the jail's to edit, and jail(8) runs its exec lines as root.
    let jail_dir = host.base.join("web");
    fs::create_dir_all(&jail_dir).unwrap();
    host.run(&["tenant", "add", "web", "--root", s(&jail_dir)]).expect(0);
    let base = host.base.clone();
    let conf = layout(&mut host, &base, s(&jail_dir));
    let before = fs::read_to_string(&conf).unwrap();
    for args in [&["jail", "enable", "web"][..], &["jail", "disable", "web"][..]] {
        host.run(args).expect(78).stderr_has("jail.conf").stderr_has("of tenant web");
        assert_eq!(fs::read_to_string(&conf).unwrap(), before);
    }
    let out = host.run(&["doctor"]);
    out.expect(78);
    assert!(out.stdout.contains(&format!("problem  web: jail.conf {}", s(&conf))), "{}", out.stdout);
}

#[test]
fn doctor_sanitizes_what_comes_from_the_database_and_the_jails() {
    let host = Host::new();
    let root = host.tenant("web", &[]);
    host.secrets("web", "A=1\n");
    // A hostile env path (set directly in the database) with a file at it in the jail, and a
    // raw tenant row whose root carries terminal controls.
    let hostile_dir = "e\u{1b}[31mred\u{7}\u{202e}";
    fs::create_dir(root.join(hostile_dir)).unwrap();
    fs::write(root.join(hostile_dir).join(".env"), "X=1\n").unwrap();
    let conn = rusqlite::Connection::open(&host.db).unwrap();
    conn.execute(
        "UPDATE colibri_vault_tenant_options SET env_path = ?1 WHERE tenant_id = 'web'",
        [format!("{hostile_dir}/.env")],
    )
    .unwrap();
    conn.execute(
        "INSERT INTO tenants (tenant_id, jail_root_path, collection_id, status, created_at, updated_at)
         VALUES ('evil', ?1, 'evil', 'provisioned', NULL, NULL)",
        [format!("{}/ev\u{1b}]0;owned\u{7}il/root", s(&host.base))],
    )
    .unwrap();
    drop(conn);
    let out = host.run(&["doctor"]);
    for c in ['\u{1b}', '\u{7}', '\u{202e}'] {
        assert!(!out.stdout.contains(c), "doctor printed {c:?} raw:\n{}", out.stdout);
    }
    assert!(out.stdout.contains("\\x1b[31mred"), "{}", out.stdout);
    assert!(out.stdout.contains("ev\\x1b]0;owned\\x07il"), "{}", out.stdout);
}
