//! The writer's failure paths through the built binary, staged as a hostile jail root (or bad
//! luck) can stage them: file flags (`chattr +a`/`+i`, the Linux twins of FreeBSD's
//! `uappnd`/`uchg`) on the env file's directory, on the env file, and on the temporary file
//! between two of colibri-vault's steps (fanotify holds it there); a run killed outright before
//! its rename; a file system that fills up mid-write. After each failure no byte of the new
//! secrets is anywhere under the jail root base and no temporary file holding them is left, and
//! the next run behaves the same. Also: freshness means content *and* mode 0600, owner and one
//! link; content past the size limit is refused naming the limit; a missing jail root is told
//! apart from a missing directory inside the jail.
//!
//! Where this machine cannot stage something (a file system without flags, no fanotify, no
//! mount namespace) the test says so through `support::skip`, which fails under CI=true.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::core::{EXPECTED_SH, SECRETS, s, web};
use crate::support::host::{Host, file_state, holding, snapshot};
use crate::support::skip;

/// New secrets replacing `SECRETS` at the source: distinctive values, to look for afterwards.
const NEW: &str = "NEW_TOKEN='tok-Vb55Qe19'\nNEW_PASS='pw-Lr38Xa70'\n";

/// Each value of `NEW`, and a fragment of each: none may be on disk after a failed write.
const NEW_BYTES: [&str; 4] = ["tok-Vb55Qe19", "pw-Lr38Xa70", "Vb55Qe", "Lr38Xa"];

/// Clears every file flag under a directory when dropped: a flagged file would outlive the
/// test's temporary directory (and fail its removal) otherwise.
struct Unflag<'a>(&'a Path);

impl Drop for Unflag<'_> {
    fn drop(&mut self) {
        let _ = Command::new("chattr").args(["-R", "-a", "-i"]).arg(self.0).output();
    }
}

/// `chattr FLAG path`; false (through `skip`) if this file system cannot take it.
fn chattr(path: &Path, flag: &str) -> bool {
    match Command::new("chattr").arg(flag).arg(path).output() {
        Ok(out) if out.status.success() => true,
        Ok(out) => {
            skip("file flags (chattr)", &String::from_utf8_lossy(&out.stderr));
            false
        }
        Err(e) => {
            skip("file flags (chattr)", &e.to_string());
            false
        }
    }
}

/// Temporary files of ours under `dir` (recursively).
fn temps(dir: &Path) -> Vec<PathBuf> {
    snapshot(dir).into_keys().filter(|p| p.to_string_lossy().contains(".colibri-tmp.")).collect()
}

#[track_caller]
fn assert_no_new_secret(host: &Host) {
    assert_eq!(holding(&host.base, &NEW_BYTES), Vec::<PathBuf>::new(), "new secret bytes left on disk");
}

#[test]
fn a_flagged_env_directory_is_refused_before_any_secret_is_written() {
    for (flag, env_path) in [("+a", ".env"), ("+i", ".env"), ("+a", "etc/app.env"), ("+i", "etc/app.env")] {
        let (host, root) = web(&["--env-path", env_path, "--on-failure", "fail"]);
        host.append_provider_env("COLIBRI_FRESH_FOR=0\n");
        let env = root.join(env_path);
        let dir = env.parent().unwrap().to_owned();
        fs::create_dir_all(&dir).unwrap();
        host.run(&["provision", "web"]).expect(0);
        let before = file_state(&env);
        host.secrets("web", NEW);
        let _unflag = Unflag(host.path());
        if !chattr(&dir, flag) {
            return;
        }
        for _ in 0..2 {
            for args in [&["provision", "web"][..], &["hook", "start", "web", s(&root)]] {
                let out = host.run(args);
                assert_eq!(temps(&host.base), Vec::<PathBuf>::new(), "{flag} {env_path}");
                assert_no_new_secret(&host);
                assert_eq!(file_state(&env), before, "{flag} {env_path}: the old file stays");
                out.expect(73)
                    .stderr_has(&format!("its directory {} is flagged", dir.display()))
                    .stderr_has("nothing was written")
                    .stderr_has(&format!("chattr -{} {}", &flag[1..], dir.display()));
            }
        }
        assert!(chattr(&dir, &flag.replace('+', "-")));
        host.run(&["provision", "web"]).expect(0).stderr_has("wrote");
        assert!(fs::read_to_string(&env).unwrap().contains("tok-Vb55Qe19"));
        assert_eq!(temps(&host.base), Vec::<PathBuf>::new());
    }
}

#[test]
fn a_flagged_env_file_is_refused_unless_it_is_already_right() {
    for flag in ["+a", "+i"] {
        let (host, root) = web(&["--on-failure", "fail"]);
        let env = root.join(".env");
        host.run(&["provision", "web"]).expect(0);
        let before = file_state(&env);
        let _unflag = Unflag(host.path());
        if !chattr(&env, flag) {
            return;
        }
        // Nothing to change: the flag is no obstacle.
        host.run(&["provision", "web"]).expect(0).stderr_has("unchanged");
        host.secrets("web", NEW);
        for _ in 0..2 {
            let out = host.run(&["provision", "web"]);
            assert_eq!(temps(&host.base), Vec::<PathBuf>::new(), "{flag}");
            assert_no_new_secret(&host);
            assert_eq!(file_state(&env), before);
            out.expect(73).stderr_has("cannot be replaced; nothing was written").stderr_has(&format!(
                "chattr -{} {}",
                &flag[1..],
                env.display()
            ));
        }
    }
}

/// When the test acts on colibri-vault's temporary file.
#[cfg(target_os = "linux")]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Moment {
    /// At its creation, before any byte is written (`FAN_OPEN_PERM`).
    Open,
    /// At its read-back, after the whole content is written and before the rename
    /// (`FAN_ACCESS_PERM`).
    ReadBack,
}

/// What the test does then, as a process in the jail could.
#[cfg(target_os = "linux")]
#[derive(Clone, Copy, Debug)]
enum Act {
    /// Sets these `FS_*_FL` flags on the temporary file (by its descriptor, as fanotify hands it).
    FlagTemp(libc::c_int),
    /// Sets these flags on the directory holding it.
    FlagDir(libc::c_int),
    /// Kills colibri-vault outright.
    Kill,
}

#[cfg(target_os = "linux")]
const FS_APPEND_FL: libc::c_int = 0x20;
#[cfg(target_os = "linux")]
const FS_IMMUTABLE_FL: libc::c_int = 0x10;

#[cfg(target_os = "linux")]
fn add_flags(fd: std::os::fd::RawFd, add: libc::c_int) -> std::io::Result<()> {
    let mut fl: libc::c_int = 0;
    // SAFETY: FS_IOC_GETFLAGS/SETFLAGS read or write one int at a pointer live for the call.
    if unsafe { libc::ioctl(fd, libc::FS_IOC_GETFLAGS, &raw mut fl) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    fl |= add;
    // SAFETY: as above.
    if unsafe { libc::ioctl(fd, libc::FS_IOC_SETFLAGS, &raw const fl) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Runs `provision web` while fanotify holds it at `moment` on its temporary file for `..env`
/// in `root`, and does `act` there. `None` (through `skip`) without fanotify.
#[cfg(target_os = "linux")]
fn provision_while(
    host: &Host,
    root: &Path,
    moment: Moment,
    act: Act,
) -> Option<crate::support::host::Outcome> {
    use nix::sys::fanotify::{
        EventFFlags, Fanotify, FanotifyResponse, InitFlags, MarkFlags, MaskFlags, Response,
    };
    use std::os::fd::AsRawFd;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    let fan = match Fanotify::init(
        InitFlags::FAN_CLASS_CONTENT | InitFlags::FAN_CLOEXEC | InitFlags::FAN_NONBLOCK,
        EventFFlags::O_RDONLY | EventFFlags::O_LARGEFILE,
    ) {
        Ok(fan) => fan,
        Err(e) => {
            skip("acting on the temporary file between two steps", &format!("fanotify: {e}"));
            return None;
        }
    };
    let mask = MaskFlags::FAN_OPEN_PERM | MaskFlags::FAN_ACCESS_PERM | MaskFlags::FAN_EVENT_ON_CHILD;
    fan.mark(MarkFlags::FAN_MARK_ADD, mask, nix::fcntl::AT_FDCWD, Some(root)).expect("fanotify_mark");
    let dir = fs::File::open(root).unwrap();

    let child = host
        .command(&["provision", "web"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pid = nix::unistd::Pid::from_raw(i32::try_from(child.id()).unwrap());
    let stop = Arc::new(AtomicBool::new(false));
    let watcher = {
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || {
            let mut done = false;
            while !stop.load(Ordering::Relaxed) {
                let events = match fan.read_events() {
                    Ok(events) => events,
                    Err(nix::errno::Errno::EAGAIN) => {
                        std::thread::sleep(std::time::Duration::from_millis(1));
                        continue;
                    }
                    Err(e) => panic!("fanotify read: {e}"),
                };
                for event in events {
                    let fd = event.fd().expect("no queue overflow");
                    let path = fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd())).expect("fd path");
                    let name = path.file_name().unwrap().to_string_lossy().into_owned();
                    let now = if event.mask().contains(MaskFlags::FAN_OPEN_PERM) {
                        Moment::Open
                    } else {
                        Moment::ReadBack
                    };
                    if !done && now == moment && name.starts_with("..env.colibri-tmp.") {
                        done = true;
                        match act {
                            Act::FlagTemp(fl) => {
                                add_flags(fd.as_raw_fd(), fl).expect("flag the temporary file");
                            }
                            Act::FlagDir(fl) => {
                                add_flags(dir.as_raw_fd(), fl).expect("flag the directory");
                            }
                            Act::Kill => nix::sys::signal::kill(pid, nix::sys::signal::SIGKILL).unwrap(),
                        }
                    }
                    fan.write_response(FanotifyResponse::new(fd, Response::FAN_ALLOW)).expect("allow");
                }
            }
            done
        })
    };
    let out = child.wait_with_output().unwrap();
    stop.store(true, Ordering::Relaxed);
    assert!(watcher.join().unwrap(), "the {moment:?} of the temporary file was never seen");
    Some(crate::support::host::Outcome {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    })
}

/// The jail's root flags colibri-vault's temporary file (by name, as `chflags uappnd` would)
/// right after its creation or right before its rename: the run fails (73), and the file is
/// unflagged, emptied and removed through colibri-vault's descriptor.
#[cfg(target_os = "linux")]
#[test]
fn a_temporary_file_flagged_between_two_steps_is_emptied_and_removed() {
    let cases = [
        (Moment::Open, FS_APPEND_FL, "was flagged append-only (+a) before anything was written"),
        (Moment::Open, FS_IMMUTABLE_FL, "was flagged immutable (+i) before anything was written"),
        (Moment::ReadBack, FS_APPEND_FL, "the temporary file was flagged append-only (+a) meanwhile"),
        (Moment::ReadBack, FS_IMMUTABLE_FL, "the temporary file was flagged immutable (+i) meanwhile"),
    ];
    for (moment, fl, says) in cases {
        let (host, root) = web(&[]);
        host.run(&["provision", "web"]).expect(0);
        let before = file_state(&root.join(".env"));
        host.secrets("web", NEW);
        let _unflag = Unflag(host.path());
        if !chattr(&root, "+a") || !chattr(&root, "-a") {
            return;
        }
        let Some(out) = provision_while(&host, &root, moment, Act::FlagTemp(fl)) else { return };
        assert_eq!(temps(&host.base), Vec::<PathBuf>::new(), "{moment:?} {says}");
        assert_no_new_secret(&host);
        assert_eq!(file_state(&root.join(".env")), before, "{moment:?}");
        out.expect(73).stderr_has(says);
        assert!(!out.stderr.contains("remains"), "{moment:?}: {}", out.stderr);
        // The next run, left alone, writes.
        host.run(&["provision", "web"]).expect(0).stderr_has("wrote");
        assert_eq!(temps(&host.base), Vec::<PathBuf>::new());
    }
}

/// The jail's root flags the directory after colibri-vault created its temporary file and
/// wrote it: neither the rename nor the removal can happen, so the file is emptied through the
/// descriptor and the error names it. The next run, with the flag still there, is refused before
/// it creates anything; once the flag is gone, the next run removes the empty leftover.
#[cfg(target_os = "linux")]
#[test]
fn a_directory_flagged_before_the_rename_leaves_at_most_an_empty_named_file() {
    for fl in [FS_APPEND_FL, FS_IMMUTABLE_FL] {
        let (host, root) = web(&[]);
        host.run(&["provision", "web"]).expect(0);
        let before = file_state(&root.join(".env"));
        host.secrets("web", NEW);
        let _unflag = Unflag(host.path());
        if !chattr(&root, "+a") || !chattr(&root, "-a") {
            return;
        }
        let Some(out) = provision_while(&host, &root, Moment::ReadBack, Act::FlagDir(fl)) else { return };
        assert_no_new_secret(&host);
        let left = temps(&host.base);
        assert_eq!(left.len(), 1, "{left:?}");
        let leftover = host.base.join(&left[0]);
        out.expect(73).stderr_has("could not rename into place").stderr_has("an empty temporary file");
        assert!(
            out.stderr.contains(&leftover.display().to_string()),
            "the leftover is named: {}",
            out.stderr
        );
        assert_eq!(fs::metadata(&leftover).unwrap().len(), 0);
        assert_no_new_secret(&host);
        assert_eq!(file_state(&root.join(".env")), before);

        host.run(&["provision", "web"]).expect(73).stderr_has("is flagged").stderr_has("nothing was written");
        assert_eq!(temps(&host.base), left, "nothing new was created");
        assert_no_new_secret(&host);

        assert!(chattr(&root, "-a") && chattr(&root, "-i"));
        host.run(&["provision", "web"]).expect(0).stderr_has("wrote");
        assert_eq!(temps(&host.base), Vec::<PathBuf>::new(), "the empty leftover is gone too");
    }
}

/// A run killed outright (SIGKILL cannot be caught) after writing its temporary file and before
/// renaming it leaves a whole copy of the secrets; the jail's root even flags it to keep it.
/// The next hook, although inside the freshness window, does not count the file as fresh with
/// that copy next to it: it empties and removes the copy, and writes.
#[cfg(target_os = "linux")]
#[test]
fn a_run_killed_before_its_rename_leaves_no_copy_once_the_next_run_is_done() {
    let (host, root) = web(&[]);
    host.run(&["provision", "web"]).expect(0);
    host.secrets("web", NEW);
    let _unflag = Unflag(host.path());
    let Some(out) = provision_while(&host, &root, Moment::ReadBack, Act::Kill) else { return };
    assert_eq!(out.code, None, "killed: {out:?}");
    let left = temps(&host.base);
    assert_eq!(left.len(), 1, "{left:?}");
    assert_eq!(
        holding(&host.base, &NEW_BYTES),
        left,
        "the killed run's copy (what the next run must take away)"
    );
    if !chattr(&host.base.join(&left[0]), "+a") {
        return;
    }

    let out = host.run(&["hook", "start", "web"]);
    assert_eq!(temps(&host.base), Vec::<PathBuf>::new());
    out.expect(0)
        .stderr_has(&format!(
            "next to {}, an earlier run's temporary file",
            host.base.join(&left[0]).display()
        ))
        .stderr_has("wrote");
    assert_eq!(holding(&host.base, &NEW_BYTES), [PathBuf::from("web/root/.env")]);
    host.run(&["hook", "start", "web"]).expect(0).stderr_has("is fresh");
}

/// The file system fills up in the middle of the write (a tmpfs smaller than the content, in a
/// private mount namespace): the partial temporary file goes, twice.
#[test]
fn a_file_system_full_mid_write_leaves_no_partial_file() {
    let (host, root) = web(&["--on-failure", "fail"]);
    host.secrets("web", &format!("{NEW}BLOB='blob-Wd41{}'\n", "x".repeat(400_000)));
    let script = r#"root=$1; shift
mount -t tmpfs -o size=128k,mode=0755 tmpfs "$root" || exit 99
for run in 1 2; do
  "$@"; echo "status=$?"
  echo "entries: $(ls -A "$root")"
  grep -rlF -e tok-Vb55Qe19 -e pw-Lr38Xa70 -e blob-Wd41 -e Vb55Qe -e Lr38Xa "$root" | sed 's/^/holding: /'
done"#;
    let out = host.run_wrapped(
        "unshare",
        &["--mount", "--propagation", "private", "sh", "-c", script, "sh", s(&root)],
        &["provision", "web"],
    );
    if out.code != Some(0) {
        return skip("a full file system (tmpfs in a mount namespace)", &out.stderr);
    }
    assert_eq!(out.stdout, "status=73\nentries: \nstatus=73\nentries: \n", "stderr:\n{}", out.stderr);
    assert_eq!(out.stderr.matches("could not write: No space left on device").count(), 2, "{}", out.stderr);
}

/// Something done to the env file from inside the jail.
type Tamper = Box<dyn Fn(&Path)>;

/// Freshness is the writer's own rule: the content written last AND a regular file, mode 0600,
/// the configured owner, one link. Each change of those makes the next hook rewrite the file.
#[test]
fn a_hook_rewrites_an_env_file_whose_mode_owner_or_links_changed() {
    let (host, root) = web(&[]);
    let env = root.join(".env");
    host.run(&["hook", "start", "web"]).expect(0).stderr_has("wrote");
    host.run(&["hook", "start", "web"]).expect(0).stderr_has("is fresh; vault not asked");
    let chmod = |mode: u32| move |p: &Path| fs::set_permissions(p, fs::Permissions::from_mode(mode)).unwrap();
    let chown =
        |uid: u32, gid: u32| move |p: &Path| std::os::unix::fs::lchown(p, Some(uid), Some(gid)).unwrap();
    let link = |p: &Path| fs::hard_link(p, p.with_file_name("copy")).unwrap();
    let replace = |mode: u32| {
        move |p: &Path| {
            let other = p.with_file_name(".env.other");
            fs::write(&other, EXPECTED_SH).unwrap();
            fs::set_permissions(&other, fs::Permissions::from_mode(mode)).unwrap();
            std::os::unix::fs::chown(&other, Some(1234), Some(5678)).unwrap();
            fs::rename(&other, p).unwrap();
        }
    };
    let tampers: Vec<(&str, &str, Tamper)> = vec![
        ("chmod 644", "mode 0644, not 0600", Box::new(chmod(0o644))),
        ("chmod 640", "mode 0640, not 0600", Box::new(chmod(0o640))),
        ("chmod 2600", "mode 2600, not 0600", Box::new(chmod(0o2600))),
        ("chmod 400", "mode 0400, not 0600", Box::new(chmod(0o400))),
        ("chown 0:0", "owned by 0:0, not 1234:5678", Box::new(chown(0, 0))),
        ("chgrp 0", "owned by 1234:0, not 1234:5678", Box::new(chown(1234, 0))),
        ("a hard link", "2 hard links, not 1", Box::new(link)),
        ("the same bytes, mode 0604", "mode 0604, not 0600", Box::new(replace(0o604))),
    ];
    for (what, says, tamper) in tampers {
        tamper(&env);
        let doctor = host.run(&["doctor"]);
        let out = host.run(&["hook", "start", "web"]);
        let state = file_state(&env);
        assert_eq!((state.mode, state.uid, state.gid), (0o600, 1234, 5678), "after {what}");
        assert_eq!(String::from_utf8(state.bytes).unwrap(), EXPECTED_SH, "after {what}");
        assert_eq!(fs::symlink_metadata(&env).unwrap().nlink(), 1, "after {what}");
        out.expect(0)
            .stderr_has(&format!("{} is {says}: not fresh, rewriting it", env.display()))
            .stderr_has("wrote");
        assert!(
            doctor
                .stdout
                .contains(&format!("{} is {says}; the next hook or provision rewrites it", env.display())),
            "doctor after {what}: {}",
            doctor.stdout
        );
        // Right again: fresh again.
        host.run(&["hook", "start", "web"]).expect(0).stderr_has("is fresh; vault not asked");
    }
    // `provision` (no freshness) applies the same rule to "unchanged".
    fs::set_permissions(&env, fs::Permissions::from_mode(0o644)).unwrap();
    host.run(&["provision", "web"]).expect(0).stderr_has("wrote");
    host.run(&["provision", "web"]).expect(0).stderr_has("unchanged");
    assert_eq!(file_state(&env).mode, 0o600);
}

/// Rendered content past the writer's 16 MiB limit is bad vault data (65), said as such before
/// anything is written, dry run included, in every format.
#[test]
fn content_past_the_size_limit_says_the_limit() {
    let (host, root) = web(&["--on-failure", "fail"]);
    host.append_provider_env("COLIBRI_FRESH_FOR=0\n");
    let env = root.join(".env");
    host.run(&["provision", "web"]).expect(0);
    let before = file_state(&env);
    // 9 MiB of `"`: under the limit raw and in `sh`, past it in `dotenv` and `json` (escaped).
    let quotes = "\"".repeat(9 << 20);
    for (format, value) in [("sh", "b".repeat(17 << 20)), ("dotenv", quotes.clone()), ("json", quotes)] {
        host.run(&["tenant", "set", "web", "--format", format]).expect(0);
        host.secrets("web", &format!("{SECRETS}BLOB='{value}'\n"));
        // Every entry point for one format; one for the others (each run reads 17 MiB).
        let runs: &[&[&str]] = if format == "sh" {
            &[&["provision", "web"], &["provision", "--dry-run", "web"], &["hook", "start", "web"]]
        } else {
            &[&["provision", "web"]]
        };
        for args in runs {
            let out = host.run(args);
            out.expect(65)
                .stderr_has(&format!("format {format}, over the 16 MiB (16777216 bytes) limit"))
                .stderr_has(&format!("the largest value is BLOB's ({} bytes)", value.len()))
                .stderr_has("nothing was written");
            assert!(!out.stderr.contains("does not match"), "{}", out.stderr);
        }
        assert_eq!(file_state(&env), before, "{format}");
        assert_eq!(temps(&host.base), Vec::<PathBuf>::new());
    }
}

#[test]
fn a_missing_jail_root_is_not_a_missing_directory_inside_the_jail() {
    let (host, root) = web(&["--on-failure", "fail"]);
    // The jail was destroyed (or never created) after its tenant was registered.
    fs::remove_dir_all(host.base.join("web")).unwrap();
    for args in [&["provision", "web"][..], &["hook", "start", "web", s(&root)]] {
        host.run(args)
            .expect(73)
            .stderr_has(&format!(
                "the jail root does not exist ({} is missing)",
                host.base.join("web").display()
            ))
            .stderr_has("is the jail created");
    }
    fs::create_dir_all(root.join("usr")).unwrap();
    host.run(&["tenant", "set", "web", "--env-path", "usr/local/etc/app.env"]).expect(0);
    for args in [&["provision", "web"][..], &["hook", "start", "web", s(&root)]] {
        let out = host.run(args);
        out.expect(73).stderr_has(
            "directory /usr/local does not exist inside the jail; create it inside the jail first",
        );
        assert!(!out.stderr.contains("jail root does not exist"), "{}", out.stderr);
    }
}
