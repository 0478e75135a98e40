//! A jail's root user owns everything under the jail root and may plant links there; the
//! tenant database may hold a root colibri-vault would never have accepted. Each test plants
//! something, runs the binary, and proves that nothing outside the jail root changed (bytes and
//! mtimes of every target) and that the run was refused with `EX_CANTCREAT` (73).

use std::fs;
use std::os::unix::fs::symlink;

use crate::core::{EXPECTED_SH, SECRETS, s, web};
use crate::support::host::{Host, file_state, names, snapshot};

/// A host file a planted link points at: content a jail must not be able to overwrite.
fn host_file(host: &Host, name: &str) -> std::path::PathBuf {
    let path = host.path().join(name);
    fs::write(&path, "root:*:0:0::0:0:Charlie &:/root:/bin/csh\n").unwrap();
    path
}

#[test]
fn a_planted_env_symlink_to_a_host_file_is_refused() {
    let (host, root) = web(&[]);
    let target = host_file(&host, "master.passwd");
    symlink(&target, root.join(".env")).unwrap();
    let before = file_state(&target);

    host.run(&["provision", "web"]).expect(73).stderr_has("a symbolic link (planted in the jail?)");
    assert_eq!(file_state(&target), before);

    host.run(&["tenant", "set", "web", "--on-failure", "fail"]).expect(0);
    host.run(&["hook", "start", "web", s(&root)]).expect(73);
    assert_eq!(file_state(&target), before);
    assert_eq!(fs::read_link(root.join(".env")).unwrap(), target, "the link itself is left alone");
    assert_eq!(names(&root), [".env"], "no temporary file");
    assert_eq!(names(host.path()).iter().filter(|n| n.contains("colibri-tmp")).count(), 0);
}

#[test]
fn a_planted_env_symlink_to_a_missing_host_file_creates_nothing() {
    let (host, root) = web(&[]);
    let target = host.path().join("created-by-the-jail");
    symlink(&target, root.join(".env")).unwrap();
    host.run(&["provision", "web"]).expect(73);
    assert!(fs::symlink_metadata(&target).is_err());
}

#[test]
fn a_symlinked_parent_directory_of_the_env_path_is_refused() {
    let (host, root) = web(&["--env-path", "etc/app.env", "--on-failure", "fail"]);
    let hostdir = host.path().join("host-etc");
    fs::create_dir(&hostdir).unwrap();
    fs::write(hostdir.join("app.env"), "HOST=1\n").unwrap();
    symlink(&hostdir, root.join("etc")).unwrap();
    let before = snapshot(&hostdir);

    host.run(&["provision", "web"]).expect(73).stderr_has("symbolic link");
    assert_eq!(snapshot(&hostdir), before);
    host.run(&["hook", "start", "web", s(&root)]).expect(73).stderr_has("so jail(8) does not start the jail");
    assert_eq!(snapshot(&hostdir), before);
}

#[test]
fn a_deeper_symlinked_directory_is_refused_too() {
    let (host, root) = web(&["--env-path", "usr/local/etc/app.env"]);
    let hostdir = host.path().join("host-etc");
    fs::create_dir(&hostdir).unwrap();
    fs::create_dir_all(root.join("usr/local")).unwrap();
    symlink(&hostdir, root.join("usr/local/etc")).unwrap();
    let before = snapshot(&hostdir);
    host.run(&["provision", "web"]).expect(73);
    assert_eq!(snapshot(&hostdir), before);
    assert!(names(&hostdir).is_empty());
}

#[test]
fn a_planted_directory_or_fifo_at_the_env_path_is_refused() {
    let (host, root) = web(&[]);
    fs::create_dir(root.join(".env")).unwrap();
    host.run(&["provision", "web"]).expect(73).stderr_has("it is a directory");
    assert!(names(&root.join(".env")).is_empty());
    fs::remove_dir(root.join(".env")).unwrap();

    nix::unistd::mkfifo(&root.join(".env"), nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    // A FIFO would block a reader forever: refused without opening it.
    host.run(&["provision", "web"]).expect(73).stderr_has("it is a FIFO");
}

#[test]
fn a_hard_link_to_a_host_file_is_replaced_not_written_through() {
    let (host, root) = web(&[]);
    let target = host_file(&host, "hostfile");
    fs::hard_link(&target, root.join(".env")).unwrap();
    let before = file_state(&target);
    host.run(&["provision", "web"]).expect(0);
    assert_eq!(file_state(&target), before);
    assert_eq!(fs::read_to_string(root.join(".env")).unwrap(), EXPECTED_SH);
}

#[test]
fn a_registered_root_outside_the_base_is_refused() {
    let (host, _) = web(&[]);
    host.secrets("evil", SECRETS);
    let outside = host.path().join("outside/root");
    fs::create_dir_all(&outside).unwrap();
    host.insert_raw("evil", &outside, "evil");

    host.run(&["provision", "evil"])
        .expect(73)
        .stderr_has("refused: registered root")
        .stderr_has("must lie strictly under the jail root base");
    assert!(names(&outside).is_empty());
    // A hook (policy continue by default: exit 0, but nothing written and the reason logged).
    host.run(&["hook", "start", "evil", s(&outside)]).expect(0).stderr_has("refused");
    assert!(names(&outside).is_empty());
}

#[test]
fn a_registered_root_that_climbs_out_of_the_base_is_refused() {
    let (host, _) = web(&[]);
    host.secrets("evil", SECRETS);
    let outside = host.path().join("outside");
    fs::create_dir_all(&outside).unwrap();
    host.insert_raw("evil", &host.base.join("../outside"), "evil");
    host.run(&["provision", "evil"]).expect(73).stderr_has("must be normalized");
    assert!(names(&outside).is_empty());
}

#[test]
fn a_symlink_in_the_host_side_part_of_the_root_is_refused() {
    let host = Host::new();
    host.secrets("web", SECRETS);
    let real = host.path().join("elsewhere");
    fs::create_dir_all(real.join("root")).unwrap();
    // Registered while the root does not exist yet (accepted: it is checked when it exists) ...
    host.run(&["tenant", "add", "web", "--root", s(&host.root_of("web"))]).expect(0);
    // ... then the host-side part becomes a link: the pipeline refuses it when it walks the path.
    symlink(&real, host.base.join("web")).unwrap();
    host.run(&["provision", "web"]).expect(73).stderr_has("symbolic link");
    // `tenant add` refuses such a root outright once it exists.
    host.run(&["tenant", "remove", "web"]).expect(0);
    host.run(&["tenant", "add", "web", "--root", s(&host.root_of("web"))])
        .expect(64)
        .stderr_has("symbolic link");
    assert!(names(&real.join("root")).is_empty());
}

#[test]
fn hook_stop_refuses_a_planted_symlink_or_directory() {
    let (host, root) = web(&["--cleanup-on-stop", "--on-failure", "fail"]);
    let target = host_file(&host, "hostfile");
    symlink(&target, root.join(".env")).unwrap();
    let before = file_state(&target);
    host.run(&["hook", "stop", "web", s(&root)]).expect(73).stderr_has("refusing to remove it");
    assert_eq!(file_state(&target), before);
    assert!(fs::symlink_metadata(root.join(".env")).unwrap().file_type().is_symlink());

    fs::remove_file(root.join(".env")).unwrap();
    fs::create_dir(root.join(".env")).unwrap();
    fs::write(root.join(".env/keep"), "x").unwrap();
    host.run(&["hook", "stop", "web", s(&root)]).expect(73).stderr_has("it is a directory");
    assert_eq!(names(&root.join(".env")), ["keep"]);

    // Policy continue: exit 0, the refusal still reported.
    host.run(&["tenant", "set", "web", "--on-failure", "continue"]).expect(0);
    host.run(&["hook", "stop", "web", s(&root)]).expect(0).stderr_has("refusing to remove it");
    assert_eq!(names(&root.join(".env")), ["keep"]);
}

/// A jail that swaps a directory of the env path for a symlink *while* colibri-vault writes
/// (atomically, with `renameat2` `RENAME_EXCHANGE`, in a tight loop) never gets a byte written
/// outside its root: each run either writes into the real directory or refuses (73).
#[cfg(target_os = "linux")]
#[test]
fn a_directory_swapped_for_a_symlink_during_writes_never_leaks() {
    use std::ffi::CString;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    let (host, root) = web(&["--env-path", "etc/app.env"]);
    fs::create_dir(root.join("etc")).unwrap();
    let outside = host.path().join("host-etc");
    fs::create_dir(&outside).unwrap();
    symlink(&outside, root.join("etc.alt")).unwrap();
    let a = CString::new(root.join("etc").to_str().unwrap()).unwrap();
    let b = CString::new(root.join("etc.alt").to_str().unwrap()).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let swaps = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let swapper = {
        let (stop, swaps) = (Arc::clone(&stop), Arc::clone(&swaps));
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                // SAFETY: two valid NUL-terminated paths, AT_FDCWD, a documented flag.
                let rc = unsafe {
                    libc::renameat2(
                        libc::AT_FDCWD,
                        a.as_ptr(),
                        libc::AT_FDCWD,
                        b.as_ptr(),
                        libc::RENAME_EXCHANGE,
                    )
                };
                assert_eq!(rc, 0, "renameat2: {}", std::io::Error::last_os_error());
                swaps.fetch_add(1, Ordering::Relaxed);
            }
        })
    };
    let (mut written, mut refused) = (0, 0);
    for i in 0..150 {
        // A new value each time, so every run really writes.
        host.secrets("web", &format!("RUN='{i}'\n"));
        match host.run(&["provision", "web"]).code {
            Some(0) => written += 1,
            Some(73) => refused += 1,
            other => panic!("unexpected status {other:?}"),
        }
        assert!(names(&outside).is_empty(), "run {i} wrote outside the root: {:?}", names(&outside));
    }
    stop.store(true, Ordering::Relaxed);
    swapper.join().unwrap();
    assert!(swaps.load(Ordering::Relaxed) > 1000, "the swapper did not race");
    assert!(written > 0 && refused > 0, "both outcomes should occur: {written} written, {refused} refused");
    assert!(names(&outside).is_empty());
}
