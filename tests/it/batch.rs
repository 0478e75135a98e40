//! Boot storms (issue 5): one vault session for many jails. Group commit for concurrent hooks,
//! freshness after a boot pre-provision, and `--boot` skipping a root that is not there yet.

use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use crate::support::fake_bw::Item;
use crate::vault::{SESSION, Vault, vault};

fn hook(v: &Vault, jail: &str) -> Child {
    let root = v.host.root_of(jail);
    v.host.command(&["hook", "start", jail, root.to_str().unwrap()]).stderr(Stdio::null()).spawn().unwrap()
}

fn logins(v: &Vault) -> usize {
    v.steps().iter().filter(|s| *s == "login").count()
}

fn env_of(v: &Vault, jail: &str) -> String {
    std::fs::read_to_string(v.host.root_of(jail).join(".env")).unwrap_or_default()
}

#[test]
fn concurrent_hooks_share_one_login() {
    let names: Vec<String> = (0..12).map(|i| format!("g{i:02}")).collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let mut v = vault(&refs);
    // Slow enough that every hook has registered before the first one lists the vault.
    v.fake.set_latency(0.5);
    v.fake.install();
    let children: Vec<Child> = names.iter().map(|n| hook(&v, n)).collect();
    for mut child in children {
        assert_eq!(child.wait().unwrap().code(), Some(0));
    }
    assert_eq!(v.steps(), SESSION, "12 concurrent hooks, one session");
    assert_eq!(logins(&v), 1);
    for name in &names {
        assert!(env_of(&v, name).contains(&format!("DB_PASSWORD='pw-of-{name}'")), "{name}");
    }
    // Every tenant has its own log row, written by the one session's holder.
    let status = v.host.run(&["status", "--json"]);
    assert_eq!(status.stdout.matches("\"outcome\": \"written\"").count(), 12, "{}", status.stdout);
    v.assert_clean();
    assert!(std::fs::read_dir(v.host.run_dir.join("spool")).unwrap().next().is_none(), "spool left empty");
}

#[test]
fn a_request_after_the_claim_is_served_by_the_next_session_not_from_a_stale_listing() {
    let mut v = vault(&["early", "late"]);
    v.fake.set_step_latency("list items", 2.0);
    v.fake.install();
    let mut first = hook(&v, "early");
    // Wait until the holder has claimed the spool and is inside its slow listing.
    let deadline = Instant::now() + Duration::from_secs(30);
    while !v.steps().contains(&"list collections".to_owned()) {
        assert!(Instant::now() < deadline, "{:?}", v.steps());
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(300));
    // The vault changes, then a hook for `late` arrives: the running listing predates both.
    v.fake.item(
        Item::login("40000000-0000-4000-8000-000000000001", "LATE_KEY", "added-after-the-listing")
            .in_collection("00000000-0000-4000-8000-000000000001"),
    );
    v.fake.set_step_latency("list items", 0.0);
    v.fake.install();
    let mut second = hook(&v, "late");
    assert_eq!(first.wait().unwrap().code(), Some(0));
    assert_eq!(second.wait().unwrap().code(), Some(0));
    assert_eq!(logins(&v), 2, "the late request needed a session of its own: {:?}", v.steps());
    assert!(env_of(&v, "late").contains("LATE_KEY='added-after-the-listing'"), "{}", env_of(&v, "late"));
    assert!(env_of(&v, "early").contains("DB_PASSWORD='pw-of-early'"));
    v.assert_clean();
}

#[test]
fn a_waiter_gets_the_holders_failure_through_its_own_policy() {
    let mut v = vault(&["holder", "waiter"]);
    v.host.run(&["tenant", "set", "waiter", "--on-failure", "fail"]).expect(0);
    // The holder's listing fails: both tenants fail in that one session.
    v.fake.set_latency(0.4);
    v.fake.fault(crate::support::fake_bw::Fault::fail("list items", 1, "Something broke"));
    v.fake.install();
    let mut holder = hook(&v, "holder");
    std::thread::sleep(Duration::from_millis(200));
    let waiter = v.host.command(&["hook", "start", "waiter"]).output().unwrap();
    assert_eq!(holder.wait().unwrap().code(), Some(0), "policy continue");
    assert_eq!(waiter.status.code(), Some(69), "policy fail: the holder's status");
    let stderr = String::from_utf8_lossy(&waiter.stderr);
    assert!(stderr.contains("Something broke") && stderr.contains("another run's vault session"), "{stderr}");
    assert_eq!(logins(&v), 1);
    v.assert_clean();
}

#[test]
fn hooks_after_a_boot_pre_provision_skip_the_vault_until_the_file_changes() {
    let names = ["b1", "b2", "b3"];
    let v = vault(&names);
    v.host.run(&["provision", "--all", "--boot"]).expect(0);
    assert_eq!(v.steps(), SESSION);
    for name in names {
        let out = v.host.run(&["hook", "start", name]);
        out.expect(0).stderr_has("is fresh; vault not asked");
    }
    assert_eq!(v.steps().len(), SESSION.len(), "fresh hooks made no bw call");
    // A changed file, then a removed one, each mean a fetch.
    std::fs::write(v.host.root_of("b1").join(".env"), "TAMPERED='1'\n").unwrap();
    v.host.run(&["hook", "start", "b1"]).expect(0);
    assert_eq!(logins(&v), 2);
    assert!(env_of(&v, "b1").contains("DB_PASSWORD='pw-of-b1'"));
    std::fs::remove_file(v.host.root_of("b2").join(".env")).unwrap();
    v.host.run(&["hook", "start", "b2"]).expect(0);
    assert_eq!(logins(&v), 3);
    // With the window disabled, every hook fetches.
    let mut v = v;
    v.host.set_env("COLIBRI_FRESH_FOR", "0");
    v.host.run(&["hook", "start", "b3"]).expect(0);
    assert_eq!(logins(&v), 4);
    v.assert_clean();
}

#[test]
fn boot_skips_an_unreachable_root_and_serves_the_rest() {
    let v = vault(&["up", "down"]);
    std::fs::remove_dir(v.host.root_of("down")).unwrap();
    let out = v.host.run(&["provision", "--all", "--boot"]);
    out.expect(0).stderr_has("jail down: skipped at boot");
    assert!(env_of(&v, "up").contains("pw-of-up"));
    assert_eq!(logins(&v), 1);
    // Without --boot the same is a failure.
    v.host.run(&["provision", "--all"]).expect(73);
    // A root that exists but is reached through a symlink is refused at boot too, not skipped.
    let elsewhere = v.host.path().join("elsewhere");
    std::fs::create_dir(&elsewhere).unwrap();
    std::os::unix::fs::symlink(&elsewhere, v.host.root_of("down")).unwrap();
    v.host.run(&["provision", "--all", "--boot"]).expect(73).stderr_has("symbolic link");
    assert!(std::fs::read_dir(&elsewhere).unwrap().next().is_none());
    v.assert_clean();
}

#[test]
fn changed_tenant_settings_end_freshness() {
    let v = vault(&["web"]);
    v.host.run(&["provision", "web"]).expect(0);
    v.host.run(&["hook", "start", "web"]).expect(0).stderr_has("is fresh");
    // The operator switches the format: the next hook must write JSON, not keep the sh file.
    v.host.run(&["tenant", "set", "web", "--format", "json"]).expect(0);
    v.host.run(&["hook", "start", "web"]).expect(0).stderr_has("wrote");
    assert!(env_of(&v, "web").starts_with('{'), "{}", env_of(&v, "web"));
    assert_eq!(logins(&v), 2);
    // And once written, the window applies again.
    v.host.run(&["hook", "start", "web"]).expect(0).stderr_has("is fresh");
    v.assert_clean();
}
