//! `jail enable|disable` and `doctor` through the binary, on a Bastille layout in a temp dir:
//! `bastille.conf` (a sourced sh file) names the jails directory, each jail has its jail.conf
//! (fixtures written after Bastille's create code, in tests/fixtures/jailconf/).

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::support::host::Host;

/// A standard jail, a VNET jail, a jailed-ZFS jail, an OCI jail.
const FIXTURES: [&str; 4] = ["standard", "vnet", "zfs", "oci"];

fn fixture(name: &str) -> String {
    std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/jailconf").join(format!("{name}.conf")),
    )
    .unwrap()
}

/// The jail name a fixture's block is for (its first word).
fn block_name(text: &str) -> String {
    text.lines().find(|l| l.trim_end().ends_with('{')).unwrap().split_whitespace().next().unwrap().to_owned()
}

/// A host whose bastille.conf points at `<tmp>/bastille/jails`, with `jail`'s jail.conf = `text`.
fn bastille(host: &mut Host, text: &str) -> PathBuf {
    let jails = host.path().join("bastille/jails");
    let jail = block_name(text);
    std::fs::create_dir_all(jails.join(&jail)).unwrap();
    let conf = host.path().join("bastille.conf");
    std::fs::write(
        &conf,
        "bastille_prefix=\"PREFIX\"\nbastille_jailsdir=\"${bastille_prefix}/jails\"\n"
            .replace("PREFIX", host.path().join("bastille").to_str().unwrap()),
    )
    .unwrap();
    std::fs::set_permissions(&conf, std::fs::Permissions::from_mode(0o644)).unwrap();
    host.set_env("BASTILLE_CONFIG", conf.as_os_str());
    let path = jails.join(&jail).join("jail.conf");
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn enable_twice_equals_once_and_disable_restores_every_fixture() {
    for file in FIXTURES {
        let mut host = Host::new();
        let original = fixture(file);
        let jail = block_name(&original);
        let path = bastille(&mut host, &original);
        host.run(&["jail", "enable", &jail]).expect(0);
        let once = std::fs::read_to_string(&path).unwrap();
        assert_ne!(once, original, "{file}");
        let sbin = Path::new(env!("CARGO_BIN_EXE_colibri-vault")).parent().unwrap().display().to_string();
        let line = format!("exec.created += \"{sbin}/colibri-vault hook start $name ${{path}}\";");
        assert_eq!(once.matches(&line).count(), 1, "{file}:\n{once}");
        // Every other byte is unchanged: removing our line gives the original back.
        let without: String = once.split_inclusive('\n').filter(|l| !l.contains(&line)).collect();
        assert_eq!(without, original, "{file}");
        // The line sits inside the jail's block, before its closing brace.
        let ours = once.find(&line).unwrap();
        assert!(once[ours..].contains('}'), "{file}");
        host.run(&["jail", "enable", &jail]).expect(0).stderr_has("already as asked");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), once, "{file}: enable twice == once");
        host.run(&["jail", "disable", &jail]).expect(0);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), original, "{file}: disable restores");
    }
}

#[test]
fn poststart_stage_and_stop_hook_for_cleanup_tenants() {
    let mut host = Host::new();
    let path = bastille(&mut host, &fixture("standard"));
    let jail = block_name(&fixture("standard"));
    host.tenant(&jail, &["--cleanup-on-stop"]);
    host.run(&["jail", "enable", &jail, "--stage", "poststart"]).expect(0);
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains("exec.poststart += \""), "{text}");
    assert!(text.contains("colibri-vault hook stop $name ${path}\";"), "{text}");
    // Switching stage replaces our start line.
    host.run(&["jail", "enable", &jail]).expect(0);
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(!text.contains("exec.poststart += \""), "{text}");
    assert_eq!(text.matches("hook start").count(), 1);
    host.run(&["jail", "enable", &jail, "--stage", "later"]).expect(64);
}

#[test]
fn a_file_it_cannot_understand_is_refused_and_left_alone() {
    let mut host = Host::new();
    let broken = "web {\n  path = /x;\n  exec.start = \"unterminated;\n}\n";
    let path = bastille(&mut host, broken);
    host.run(&["jail", "enable", "web"]).expect(78).stderr_has("the file was not changed");
    assert_eq!(std::fs::read_to_string(&path).unwrap(), broken);
    host.run(&["jail", "enable", "nosuchjail"]).expect(78).stderr_has("is nosuchjail a Bastille jail?");
    host.run(&["jail", "enable", "../etc"]).expect(64);
}

#[test]
fn the_replacement_keeps_mode_and_leaves_no_temp_file() {
    let mut host = Host::new();
    let path = bastille(&mut host, &fixture("vnet"));
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
    host.run(&["jail", "enable", &block_name(&fixture("vnet"))]).expect(0);
    assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o640);
    let names: Vec<_> =
        std::fs::read_dir(path.parent().unwrap()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(names, ["jail.conf"]);
}

#[test]
fn doctor_reports_problems_and_what_to_do() {
    let mut host = Host::new();
    let path = bastille(&mut host, &fixture("standard"));
    let jail = block_name(&fixture("standard"));
    host.tenant(&jail, &[]);
    host.secrets(&jail, "A=1\n");
    let out = host.run(&["doctor"]);
    out.expect(0);
    assert!(out.stdout.contains(&format!("no hook in {}", path.display())), "{}", out.stdout);
    assert!(out.stdout.contains("no exec.timeout"), "{}", out.stdout);
    host.run(&["jail", "enable", &jail]).expect(0);
    host.run(&["provision", &jail]).expect(0);
    let out = host.run(&["doctor"]);
    assert!(out.stdout.contains(&format!("ok       {jail}: hook at exec.created")), "{}", out.stdout);
    // A file colibri-vault did not write (a cloned jail's) is pointed out.
    std::fs::write(host.root_of(&jail).join(".env"), "OTHER_TENANT='x'\n").unwrap();
    let out = host.run(&["doctor"]);
    assert!(out.stdout.contains("differs from what colibri-vault last wrote"), "{}", out.stdout);
    // A root that became a symlink is a problem: exit 78.
    let root = host.root_of(&jail);
    std::fs::rename(&root, root.with_file_name("moved")).unwrap();
    std::os::unix::fs::symlink(root.with_file_name("moved"), &root).unwrap();
    let out = host.run(&["doctor"]);
    out.expect(78);
    assert!(out.stdout.contains("problem"), "{}", out.stdout);
}

/// `hook devd` resolves the jail through the kernel, which only FreeBSD has: here it must say
/// so plainly instead of guessing a jail (the FreeBSD path is compiled and linted, not run).
#[cfg(not(target_os = "freebsd"))]
#[test]
fn hook_devd_needs_the_freebsd_kernel_and_says_so() {
    let host = Host::new();
    host.tenant("web", &[]);
    host.secrets("web", "A=1\n");
    host.run(&["hook", "devd", "--jid", "7"])
        .expect(73)
        .stderr_has("cannot resolve JID 7: jails exist only on FreeBSD");
    assert!(!host.root_of("web").join(".env").exists());
    // Bad arguments on a hook line are never a reason to block a jail: logged, exit 0.
    host.run(&["hook", "devd", "--jid", "seven"]).expect(0).stderr_has("hook: bad arguments");
}
