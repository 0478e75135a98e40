//! Cloned-jail detection (issue 11, part 2) through the built binary, with the fake bw: a jail
//! copied from a provisioned one (`bastille clone`, `cp -a`, a hard link) carries an env file
//! colibri-vault wrote for another tenant. The start hook and `doctor` find it whether the new
//! jail is registered or not, and name the tenant it belonged to; it is replaced for a tenant
//! (removed even when the vault cannot be reached), only reported for a jail without one, and
//! removed by `doctor --fix`.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::fake_bw::{Fault, Item};
use crate::vault::{Vault, vault};

/// `cp -a FROM TO`: a copied jail (new inodes, same bytes, modes and owners).
fn copy(from: &Path, to: &Path) {
    std::fs::create_dir_all(to.parent().unwrap()).unwrap();
    let status = Command::new("cp").arg("-a").arg(from).arg(to).status().unwrap();
    assert!(status.success());
}

fn hook(v: &Vault, jail: &str) -> crate::support::host::Outcome {
    let root = v.host.root_of(jail);
    v.host.run(&["hook", "start", jail, root.to_str().unwrap()])
}

fn env(v: &Vault, jail: &str) -> PathBuf {
    v.host.root_of(jail).join(".env")
}

/// A vault serving `web` (registered and provisioned) and `web2`'s collection (not registered).
fn setup() -> Vault {
    let mut v = vault(&["web"]);
    let web2 = "00000000-0000-4000-8000-0000000000f2";
    v.fake.collection(web2, "web2");
    v.fake.item(
        Item::login("10000000-0000-4000-8000-0000000000f2", "DB_PASSWORD", "pw-of-web2").in_collection(web2),
    );
    v.fake.install();
    v.host.run(&["provision", "web"]).expect(0);
    v
}

#[test]
fn a_copied_jail_is_found_registered_or_not_and_named_after_the_tenant_it_belonged_to() {
    let v = setup();
    copy(&v.host.base.join("web"), &v.host.base.join("web2"));
    let copied = std::fs::read(env(&v, "web2")).unwrap();
    assert!(String::from_utf8_lossy(&copied).contains("pw-of-web"));

    // Not registered: the hook reports, leaves the file alone, and does not block the jail.
    let out = hook(&v, "web2");
    out.expect(0)
        .stderr_has("jail web2: ")
        .stderr_has("is a copy of an env file colibri-vault wrote for tenant web");
    out.stderr_has("this jail has no tenant, so it is left in place");
    assert_eq!(std::fs::read(env(&v, "web2")).unwrap(), copied);
    assert!(!out.all_output().contains("pw-of-web"), "no value in the report");

    // doctor finds it as well, and removes it with --fix.
    let doctor = v.host.run(&["doctor"]);
    doctor.expect(78);
    let line = doctor.stdout.lines().find(|l| l.contains("jail web2 (no tenant)")).unwrap_or_else(|| {
        panic!("doctor did not report web2:\n{}", doctor.stdout);
    });
    assert!(line.starts_with("problem") && line.contains("tenant web's secrets"), "{line}");
    assert!(env(&v, "web2").exists(), "doctor without --fix removes nothing");
    let fixed = v.host.run(&["doctor", "--fix"]);
    assert!(fixed.stdout.contains("jail web2 (no tenant): removed"), "{}", fixed.stdout);
    assert!(!env(&v, "web2").exists());
    assert!(env(&v, "web").exists(), "the original stays");

    // Registered: the hook names the tenant the file belonged to and replaces it.
    copy(&env(&v, "web"), &env(&v, "web2"));
    let root = v.host.root_of("web2");
    v.host.run(&["tenant", "add", "web2", "--root", root.to_str().unwrap()]).expect(0);
    let out = hook(&v, "web2");
    out.expect(0).stderr_has("is a copy of an env file colibri-vault wrote for tenant web");
    out.stderr_has("replacing it with tenant web2's own").stderr_has("jail web2: wrote");
    let written = std::fs::read_to_string(env(&v, "web2")).unwrap();
    assert!(written.contains("DB_PASSWORD='pw-of-web2'") && !written.contains("pw-of-web'"), "{written}");
    // Its own file is its own from now on.
    let again = hook(&v, "web2");
    again.expect(0).stderr_has("is fresh");
    assert!(!again.stderr.contains("copy of"), "{}", again.stderr);
    let doctor = v.host.run(&["doctor"]);
    assert!(!doctor.stdout.contains("tenant web's secrets"), "{}", doctor.stdout);
    v.assert_clean();
}

#[test]
fn a_hard_link_and_an_old_copy_are_found_too_and_a_jails_own_file_is_not() {
    let mut v = setup();
    // A hard link to web's file (the same inode, reached from another jail).
    std::fs::create_dir_all(v.host.jail("linked")).unwrap();
    std::fs::hard_link(env(&v, "web"), env(&v, "linked")).unwrap();
    hook(&v, "linked").expect(0).stderr_has(&format!(
        "is the env file colibri-vault wrote for tenant web at {} (the same file",
        env(&v, "web").display()
    ));
    // A copy taken before web's secrets were rotated still holds web's (older) secrets.
    copy(&v.host.base.join("web"), &v.host.base.join("old"));
    v.fake.set_password("10000000-0000-4000-8000-000000000000", "rotated");
    v.fake.install();
    v.host.run(&["provision", "web"]).expect(0);
    hook(&v, "old").expect(0).stderr_has("is a copy of an env file colibri-vault wrote for tenant web");
    // A jail's own env file, which colibri-vault never wrote, is none of its business.
    std::fs::create_dir_all(v.host.jail("own")).unwrap();
    std::fs::write(env(&v, "own"), "APP_MODE='dev'\n").unwrap();
    let out = hook(&v, "own");
    out.expect(0);
    assert!(out.stderr.is_empty(), "{}", out.stderr);
    // What a jail without a tenant planted is never followed or waited on: a link to web's
    // file (on the host side it leads to a tenant's secrets), a FIFO.
    let planted = v.host.jail("planted");
    std::os::unix::fs::symlink(env(&v, "web"), planted.join(".env")).unwrap();
    let root = planted.to_str().unwrap();
    let out = v.host.run_bounded(&["hook", "start", "planted", root]);
    out.expect(0);
    assert!(out.stderr.is_empty(), "a link was followed: {}", out.stderr);
    std::fs::remove_file(planted.join(".env")).unwrap();
    nix::unistd::mkfifo(&planted.join(".env"), nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    v.host.run_bounded(&["hook", "start", "planted", root]).expect(0);
    v.assert_clean();
}

#[test]
fn a_tenants_foreign_file_goes_even_when_the_vault_cannot_be_reached() {
    let mut v = setup();
    let root = v.host.root_of("web2");
    copy(&v.host.base.join("web"), &v.host.base.join("web2"));
    v.host.run(&["tenant", "add", "web2", "--root", root.to_str().unwrap()]).expect(0);
    v.fake.fault(Fault::fail("login", 1, "Something broke"));
    v.fake.install();
    // Policy continue: the jail starts, without fresh secrets, but not with web's.
    let out = hook(&v, "web2");
    out.expect(0).stderr_has("tenant web").stderr_has(&format!("removed {}", env(&v, "web2").display()));
    assert!(!env(&v, "web2").exists(), "another tenant's secrets stayed in the jail");
    assert!(env(&v, "web").exists());
    v.assert_clean();
}

/// The cloned-jail check keeps a hook for a jail without a tenant cheap: it reads, and writes
/// nothing anywhere, the tenant database included (opening it does not even record the schema
/// version again).
#[test]
fn a_hook_for_a_jail_without_a_tenant_writes_nothing_not_even_the_database() {
    let v = setup();
    let other = v.host.jail("other");
    std::fs::write(other.join(".env"), "APP_MODE='dev'\n").unwrap();
    let jail = crate::support::host::snapshot(&other);
    let when = std::time::SystemTime::now() - std::time::Duration::from_secs(60);
    crate::support::host::set_mtime(&v.host.db, when);
    let db = || {
        let state = crate::support::host::file_state(&v.host.db);
        (colibri_vault::envfile::sha256_hex(&state.bytes), state.mtime)
    };
    let before = db();
    for _ in 0..2 {
        hook(&v, "other").expect(0);
    }
    assert_eq!(db(), before, "the database was written");
    assert_eq!(crate::support::host::snapshot(&other), jail);
}
