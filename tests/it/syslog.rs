//! What colibri-vault sends to syslog, captured for real: the binary runs in a private mount
//! namespace whose `/dev/log` is a datagram socket this test reads (glibc's syslog(3) writes
//! there). Proves invariants 2 and 5 for syslog: outcomes are logged with the ident
//! `colibri-vault`, and no secret value and no raw control character reaches it.
//! Needs root and unshare(1) (CI runs as root); elsewhere it says so loudly.

use std::os::unix::net::UnixDatagram;
use std::time::Duration;

use crate::support::fake_bw::{Account, Fault, Item};
use crate::vault::vault;

#[test]
fn syslog_gets_outcomes_but_no_secret_and_no_control_character() {
    if !nix::unistd::geteuid().is_root()
        || std::process::Command::new("unshare").arg("--version").output().is_err()
    {
        crate::support::skip("syslog capture", "needs root and unshare(1)");
        return;
    }
    let mut v = vault(&["web"]);
    let id = "00000000-0000-4000-8000-000000000000";
    v.fake.item(
        Item::login("60000000-0000-4000-8000-000000000000", "evil\u{1b}[2J name", "x").in_collection(id),
    );
    v.fake.install();
    let socket_path = v.host.path().join("log.sock");
    let socket = UnixDatagram::bind(&socket_path).unwrap();
    socket.set_read_timeout(Some(Duration::from_millis(500))).unwrap();

    let run = |args: &[&str]| {
        let script = format!(
            "set -e; d=$(mktemp -d); mount --bind /dev \"$d\"; mount -t tmpfs tmpfs /dev; \
             touch /dev/null; mount --bind \"$d/null\" /dev/null; ln -s {} /dev/log; exec \"$@\"",
            socket_path.display()
        );
        let command = v.host.command(args);
        let program = command.get_program().to_owned();
        let argv: Vec<_> = command.get_args().map(std::ffi::OsStr::to_owned).collect();
        let env: Vec<_> =
            command.get_envs().filter_map(|(k, v)| Some((k.to_owned(), v?.to_owned()))).collect();
        let out = std::process::Command::new("unshare")
            .args(["--mount", "--propagation", "private", "sh", "-c", &script, "sh"])
            .arg(program)
            .args(argv)
            .env_clear()
            .envs(env)
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        assert!(out.status.code().is_some(), "{out:?}");
        out
    };
    // A success with a hostile item name, then a failure whose bw stderr echoes the secret.
    run(&["hook", "start", "web"]);
    let secret = Account::default().client_secret;
    v.fake.fault(Fault::fail("list items", 1, &format!("boom {secret} \u{1b}]0;x\u{7}")));
    v.fake.install();
    run(&["provision", "web"]);

    let mut lines = Vec::new();
    let mut buf = [0u8; 8192];
    while let Ok(n) = socket.recv(&mut buf) {
        lines.push(String::from_utf8_lossy(&buf[..n]).into_owned());
    }
    let all = lines.join("\n");
    assert!(lines.iter().all(|l| l.contains("colibri-vault[")), "ident and pid: {lines:?}");
    assert!(all.contains("jail web: wrote"), "{lines:?}");
    assert!(all.contains("evil\\x1b[2J name"), "the hostile name, escaped: {lines:?}");
    assert!(all.contains("bw list items failed: boom [redacted]"), "{lines:?}");
    for forbidden in
        [secret.as_str(), "pw-of-web", "https://api.example/$x", &Account::default().master_password]
    {
        assert!(!all.contains(forbidden), "{forbidden:?} reached syslog: {lines:?}");
    }
    assert!(
        !all.chars().any(|c| c == '\u{1b}' || c == '\u{7}'),
        "raw control characters in syslog: {lines:?}"
    );
}
