//! Delivery `memory` and the `files` layout, through the built binary, with real mounts: each
//! test runs in a mount namespace of its own thread (`support::mounts`), where the binary's
//! Linux twin of the FreeBSD code mounts a `tmpfs` under the run dir and binds it read-only
//! into the jail root. Proves: the jail sees the secrets read-only, its disk never holds a byte
//! of them (the root without its mounts is scanned), a symlink planted at any level of the
//! secrets directory is refused with nothing mounted and nothing written through it, a stop
//! (or a missed one, a changed setting, a removed tenant) leaves no mount and no memory fs, a
//! run killed between its mount and its write leaves nothing stale after the next run, `status`
//! shows the mounts; and for the `files` layout (both deliveries): 0400 files owned as
//! configured, a whole set swapped in at once (a reader never sees a mix), unchanged sets kept
//! with their mtimes, `/var/run` refused on the jail's disk.

use std::fmt::Write as _;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use crate::core::{EXPECTED_SH, OWNER, SECRETS, VALUES, s, web};
use crate::support::host::{Host, file_state, holding, names, snapshot};
use crate::support::mounts::{self, Mount, Unmount};

/// What the `web` tenant's mounts are called in the mount table (Linux).
const TAG: &str = "colibri-vault-web";

/// Parts of `SECRETS`' values: none may be on a jail's disk with delivery memory.
const NEEDLES: [&str; 3] = ["key-Zr81Lw04", "pw-Qx7", "line-Tq2"];

/// The `web` tenant's mounts, in mount order.
fn ours() -> Vec<Mount> {
    mounts::table().into_iter().filter(|m| m.source == TAG).collect()
}

fn mem_dir(host: &Host) -> PathBuf {
    host.run_dir.join("mem/web")
}

/// What a write from inside the jail gets.
#[track_caller]
fn refused_read_only(result: std::io::Result<()>, what: &str) {
    let e = result.expect_err(what);
    assert_eq!(e.raw_os_error(), Some(libc::EROFS), "{what}: {e}");
}

#[test]
fn memory_delivery_is_read_only_in_the_jail_and_never_on_its_disk() {
    mounts::private("delivery memory (tmpfs and a read-only bind mount)", || {
        for layout in ["env", "files", "both"] {
            let (host, root) = web(&["--delivery", "memory", "--layout", layout]);
            let _unmount = Unmount(host.path().to_owned());
            let view = root.join("var/run/secrets");
            host.run(&["hook", "start", "web", s(&root)]).expect(0).stderr_has("wrote");

            let mounted = ours();
            assert_eq!(mounted.len(), 2, "{layout}: {mounted:?}");
            assert_eq!(
                (mounted[0].target.as_path(), mounted[0].read_only),
                (mem_dir(&host).as_path(), false)
            );
            assert_eq!((mounted[1].target.as_path(), mounted[1].read_only), (view.as_path(), true));
            let top = fs::metadata(&view).unwrap();
            assert_eq!((top.mode() & 0o7777, top.uid(), top.gid()), (0o700, 1234, 5678), "{layout}");

            // What the jail sees.
            let has_env = layout != "files";
            let has_files = layout != "env";
            if has_env {
                let env = file_state(&view.join(".env"));
                assert_eq!((env.mode, env.uid, env.gid), (0o600, 1234, 5678));
                assert_eq!(String::from_utf8(env.bytes).unwrap(), EXPECTED_SH);
            } else {
                assert!(!view.join(".env").exists());
            }
            for (name, value) in VALUES {
                let file = view.join(name);
                if has_files {
                    assert_eq!(fs::read_link(&file).unwrap(), Path::new("..data").join(name));
                    assert_eq!(fs::read(&file).unwrap(), value.as_bytes(), "{layout} {name}");
                    let meta = fs::metadata(&file).unwrap();
                    assert_eq!(
                        (meta.mode() & 0o7777, meta.uid(), meta.gid(), meta.nlink()),
                        (0o400, 1234, 5678, 1)
                    );
                } else {
                    assert!(fs::symlink_metadata(&file).is_err(), "{layout} {name}");
                }
            }

            // Read-only from inside: nothing can be made, changed or removed there.
            refused_read_only(fs::write(view.join("planted"), b"x"), "create");
            refused_read_only(fs::set_permissions(&view, fs::Permissions::from_mode(0o777)), "chmod");
            let some = if has_env { ".env" } else { "API_KEY" };
            refused_read_only(fs::remove_file(view.join(some)), "unlink");
            refused_read_only(fs::rename(view.join(some), view.join("other")), "rename");
            refused_read_only(fs::create_dir(view.join("d")), "mkdir");
            refused_read_only(symlink("/etc/passwd", view.join("link")), "symlink");

            // The jail's disk: the root without the mounts in it holds no byte of the secrets.
            let bare = host.path().join("bare");
            mounts::bare(&root, &bare);
            assert_eq!(holding(&bare, &NEEDLES), Vec::<PathBuf>::new(), "{layout}");
            assert!(
                names(&bare.join("var/run/secrets")).is_empty(),
                "{layout}: the mount point is empty below"
            );

            let status = host.run(&["status"]);
            assert!(
                status.expect(0).stdout.contains(&format!("memory fs, read-only at {}", view.display())),
                "{}",
                status.stdout
            );
            let rows: serde_json::Value =
                serde_json::from_str(&host.run(&["status", "--json"]).stdout).unwrap();
            assert_eq!(rows[0]["delivery"], format!("memory/{layout}"));
            assert_eq!(rows[0]["mounts"][1]["kind"], "jail view");
            assert_eq!(rows[0]["mounts"][1]["read_only"], true);

            // Started again (a missed stop): fresh, the same mounts, nothing doubled.
            host.run(&["hook", "start", "web", s(&root)]).expect(0).stderr_has("is fresh");
            assert_eq!(ours(), mounted);

            // Stopped: no view, no memory fs, no directory; no byte of the secrets anywhere.
            host.run(&["hook", "stop", "web", s(&root)]).expect(0).stderr_has("unmounted");
            assert_eq!(ours(), Vec::new(), "{layout}");
            assert!(!mem_dir(&host).exists());
            fs::remove_dir(&bare).unwrap_or(());
            for dir in [&host.base, &host.run_dir, &host.state_dir] {
                assert_eq!(holding(dir, &NEEDLES), Vec::<PathBuf>::new(), "{layout}: {}", dir.display());
            }
            assert!(host.run(&["status"]).stdout.contains("not mounted"));
            // Started again after the stop: fetched again (nothing in memory survived the stop).
            host.run(&["hook", "start", "web", s(&root)]).expect(0).stderr_has("wrote");
            assert_eq!(ours().len(), 2);
        }
        // The scan is not blind: with delivery file the same secrets are on the jail's disk.
        let (host, _root) = web(&[]);
        host.run(&["hook", "start", "web"]).expect(0);
        assert_eq!(holding(&host.base, &NEEDLES), [PathBuf::from("web/root/.env")]);
    });
}

#[test]
fn a_symlink_planted_at_any_level_of_the_secrets_directory_is_refused() {
    mounts::private("planted links at the mount point", || {
        for (delivery, dir) in [("memory", "var/run/secrets"), ("file", "var/db/secrets")] {
            let parts: Vec<&str> = dir.split('/').collect();
            for level in 1..=parts.len() {
                let (host, root) =
                    web(&["--delivery", delivery, "--layout", "files", "--on-failure", "fail"]);
                let _unmount = Unmount(host.path().to_owned());
                // A host directory holding the rest of the path, so that following the link
                // would succeed.
                let host_dir = host.path().join("host-dir");
                fs::create_dir_all(host_dir.join(parts[level..].join("/"))).unwrap();
                fs::write(host_dir.join("marker"), b"host").unwrap();
                let at = root.join(parts[..level].join("/"));
                fs::create_dir_all(at.parent().unwrap()).unwrap();
                symlink(&host_dir, &at).unwrap();
                let before = snapshot(&host_dir);

                let out = host.run(&["hook", "start", "web", s(&root)]);
                out.expect(73).stderr_has("symbolic link");
                assert_eq!(ours(), Vec::new(), "{delivery} {level}: nothing stays mounted");
                assert!(mounts::under(&host_dir).is_empty(), "{delivery} {level}");
                assert!(!mem_dir(&host).exists(), "{delivery} {level}");
                assert_eq!(
                    snapshot(&host_dir),
                    before,
                    "{delivery} {level}: nothing written through the link"
                );

                // Once the link is gone, the same start works.
                fs::remove_file(&at).unwrap();
                host.run(&["hook", "start", "web", s(&root)]).expect(0).stderr_has("wrote");
                assert_eq!(fs::read(root.join(dir).join("API_KEY")).unwrap(), b"key-Zr81Lw04");
            }
        }
    });
}

#[test]
fn missed_stops_changed_settings_and_removed_tenants_leave_no_stale_mount() {
    mounts::private("stale mounts", || {
        let (host, root) = web(&["--delivery", "memory"]);
        let _unmount = Unmount(host.path().to_owned());
        host.run(&["hook", "start", "web", s(&root)]).expect(0);
        // The stop was missed and the secrets directory moved: the next start moves the view.
        host.run(&["tenant", "set", "web", "--mount-point", "/run/app"]).expect(0);
        host.run(&["hook", "start", "web", s(&root)]).expect(0);
        let views: Vec<PathBuf> = ours().into_iter().filter(|m| m.read_only).map(|m| m.target).collect();
        assert_eq!(views, [root.join("run/app")]);
        assert_eq!(fs::read_to_string(root.join("run/app/.env")).unwrap(), EXPECTED_SH);
        assert!(names(&root.join("var/run/secrets")).is_empty());
        // Back to the jail's disk: its next start unmounts everything.
        host.run(&["tenant", "set", "web", "--delivery", "file"]).expect(0);
        host.run(&["hook", "start", "web", s(&root)])
            .expect(0)
            .stderr_has("unmounted its memory file system");
        assert_eq!(ours(), Vec::new());
        assert!(!mem_dir(&host).exists());
        assert_eq!(fs::read_to_string(root.join(".env")).unwrap(), EXPECTED_SH);
        // A tenant removed while mounted takes its mounts along (its hooks will do nothing).
        host.run(&["tenant", "set", "web", "--delivery", "memory"]).expect(0);
        host.run(&["hook", "start", "web", s(&root)]).expect(0);
        assert_eq!(ours().len(), 2);
        host.run(&["tenant", "remove", "web"]).expect(0).stderr_has("unmounted the memory file system");
        assert_eq!(ours(), Vec::new());
        assert!(!mem_dir(&host).exists());
    });
}

/// Runs `hook start web` and kills it (SIGKILL: no cleanup) as soon as its read-only view is
/// mounted: fanotify holds it at each open on the jails' own disk (a tmpfs of the test's, so
/// only this run's opens are watched), and its check after the mount walks the root again.
/// Returns whether it was killed there; `None` (through `skip`) without fanotify.
fn start_killed_after_the_mount(host: &Host, root: &Path) -> Option<bool> {
    use nix::sys::fanotify::{
        EventFFlags, Fanotify, FanotifyResponse, InitFlags, MarkFlags, MaskFlags, Response,
    };
    let view = root.join("var/run/secrets");
    let fan = Fanotify::init(
        InitFlags::FAN_CLASS_CONTENT | InitFlags::FAN_CLOEXEC | InitFlags::FAN_NONBLOCK,
        EventFFlags::O_RDONLY | EventFFlags::O_LARGEFILE,
    )
    .and_then(|fan| {
        fan.mark(
            MarkFlags::FAN_MARK_ADD | MarkFlags::FAN_MARK_MOUNT,
            MaskFlags::FAN_OPEN_PERM | MaskFlags::FAN_ONDIR,
            nix::fcntl::AT_FDCWD,
            Some(&host.base),
        )
        .map(|()| fan)
    });
    let fan = match fan {
        Ok(fan) => fan,
        Err(e) => {
            crate::support::skip("a run killed between mount and write", &format!("fanotify: {e}"));
            return None;
        }
    };
    let mut child = host.spawn(&["hook", "start", "web", s(root)]);
    let pid = nix::unistd::Pid::from_raw(i32::try_from(child.id()).unwrap());
    let mut killed = false;
    loop {
        match fan.read_events() {
            Ok(events) => {
                for event in events {
                    let fd = event.fd().expect("no queue overflow");
                    if !killed && ours().iter().any(|m| m.target == view && m.read_only) {
                        nix::sys::signal::kill(pid, nix::sys::signal::SIGKILL).unwrap();
                        killed = true;
                    }
                    fan.write_response(FanotifyResponse::new(fd, Response::FAN_ALLOW)).expect("allow");
                }
            }
            Err(nix::errno::Errno::EAGAIN) => {
                if child.try_wait().unwrap().is_some() {
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
            Err(e) => panic!("fanotify read: {e}"),
        }
    }
    let status = child.wait().unwrap();
    Some(killed && status.code().is_none())
}

#[test]
fn a_run_killed_between_its_mount_and_its_write_leaves_nothing_stale_after_the_next_run() {
    mounts::private("a crash between mount and write", || {
        for next_run_fails in [true, false] {
            let host = Host::new();
            let _unmount = Unmount(host.path().to_owned());
            mounts::tmpfs(&host.base, "8m");
            host.secrets("web", SECRETS);
            let root = host.tenant("web", &["--owner", OWNER, "--delivery", "memory"]);
            let view = root.join("var/run/secrets");
            let Some(killed) = start_killed_after_the_mount(&host, &root) else { return };
            assert!(killed, "killed after the mount");
            // What the crash left: the memory fs and its view, nothing written in it.
            assert_eq!(ours().len(), 2, "{:?}", ours());
            assert!(names(&view).is_empty(), "{:?}", names(&view));

            if next_run_fails {
                // The next start cannot fetch: the empty mounts it found go, nothing stays.
                fs::remove_file(host.secrets_path("web")).unwrap();
                host.run(&["hook", "start", "web", s(&root)]).expect(0).stderr_has("does not exist");
                assert_eq!(ours(), Vec::new());
                assert!(!mem_dir(&host).exists());
            } else {
                // The next start repairs: one memory fs, one read-only view, the content.
                host.run(&["hook", "start", "web", s(&root)]).expect(0).stderr_has("wrote");
                let mounted = ours();
                assert_eq!(mounted.len(), 2, "{mounted:?}");
                assert!(mounted[1].read_only && mounted[1].target == view);
                assert_eq!(fs::read_to_string(view.join(".env")).unwrap(), EXPECTED_SH);
                host.run(&["hook", "stop", "web", s(&root)]).expect(0);
                assert_eq!(ours(), Vec::new());
            }
        }
    });
}

/// `NAME='g<gen>-<i>'` lines for `n` variables: every value names its generation.
fn generation(round: usize, n: usize) -> String {
    (0..n).fold(String::new(), |mut text, i| {
        let _ = writeln!(text, "V{i}='g{round}-{i}'");
        text
    })
}

/// Reads the set through `..data` as a consumer that wants one consistent set would, until
/// `stop`; panics on a mix of generations or an incomplete set while it is the current one.
fn read_sets(dir: &Path, n: usize, stop: &AtomicBool, complete: &AtomicUsize) {
    // One more read after the writes, so that a starved reader still reads a whole set.
    let mut last = false;
    while !last {
        last = stop.load(Ordering::Relaxed);
        let Ok(set) = fs::canonicalize(dir.join("..data")) else { continue };
        let values: Vec<Option<String>> =
            (0..n).map(|i| fs::read_to_string(set.join(format!("V{i}"))).ok()).collect();
        if values.iter().all(Option::is_some) {
            let gens: Vec<&str> =
                values.iter().map(|v| v.as_deref().unwrap().split('-').next().unwrap()).collect();
            assert!(gens.iter().all(|g| *g == gens[0]), "a mixed set: {values:?}");
            complete.fetch_add(1, Ordering::Relaxed);
        } else {
            // Only an old set may be going away: the current one is always whole.
            let now = fs::canonicalize(dir.join("..data")).ok();
            assert_ne!(now.as_ref(), Some(&set), "the current set is incomplete: {values:?}");
        }
    }
}

#[test]
fn the_files_layout_swaps_in_a_whole_set_in_both_deliveries() {
    mounts::private("the files layout in memory", || {
        for (delivery, dir) in [("file", "var/db/secrets"), ("memory", "var/run/secrets")] {
            let (host, root) = web(&["--delivery", delivery, "--layout", "files", "--cleanup-on-stop"]);
            let _unmount = Unmount(host.path().to_owned());
            let dir = root.join(dir);
            host.run(&["provision", "web"]).expect(0).stderr_has("wrote");
            assert!(!root.join(".env").exists() && !dir.join(".env").exists(), "{delivery}: no env file");
            let listing = names(&dir);
            assert_eq!(listing.len(), 5, "{delivery}: {listing:?}");
            assert!(
                listing.iter().any(|n| n.starts_with("..set.")) && listing.contains(&"..data".to_owned())
            );
            let dir_meta = fs::metadata(&dir).unwrap();
            assert_eq!((dir_meta.mode() & 0o7777, dir_meta.uid(), dir_meta.gid()), (0o700, 1234, 5678));

            // Unchanged: nothing rewritten, mtimes kept.
            let before: Vec<_> =
                VALUES.iter().map(|(n, _)| file_state(&fs::canonicalize(dir.join(n)).unwrap())).collect();
            let data_before = fs::symlink_metadata(dir.join("..data")).unwrap().modified().unwrap();
            host.run(&["provision", "web"]).expect(0).stderr_has("unchanged");
            let after: Vec<_> =
                VALUES.iter().map(|(n, _)| file_state(&fs::canonicalize(dir.join(n)).unwrap())).collect();
            assert_eq!(before, after, "{delivery}");
            assert_eq!(fs::symlink_metadata(dir.join("..data")).unwrap().modified().unwrap(), data_before);

            // A reader going through ..data sees one whole set, whatever the writes in between;
            // a variable that goes takes its name along; no leftovers.
            let n = 6;
            host.secrets("web", &generation(0, n));
            host.run(&["provision", "web"]).expect(0);
            assert!(!dir.join("API_KEY").exists(), "{delivery}: a gone variable's link goes");
            let stop = Arc::new(AtomicBool::new(false));
            let complete = Arc::new(AtomicUsize::new(0));
            let reader = {
                let (dir, stop, complete) = (dir.clone(), Arc::clone(&stop), Arc::clone(&complete));
                std::thread::spawn(move || read_sets(&dir, n, &stop, &complete))
            };
            for round in 1..=25 {
                host.secrets("web", &generation(round, n));
                host.run(&["provision", "web"]).expect(0).stderr_has("wrote");
            }
            stop.store(true, Ordering::Relaxed);
            reader.join().expect("the reader saw a mixed or incomplete set");
            assert!(complete.load(Ordering::Relaxed) > 0, "the reader read whole sets");
            assert_eq!(names(&dir).len(), n + 2, "{delivery}: {:?}", names(&dir));
            assert_eq!(fs::read_to_string(dir.join("V3")).unwrap(), "g25-3");

            // Stopped: the files go (delivery file asked for cleanup; memory always).
            host.run(&["hook", "stop", "web", s(&root)]).expect(0);
            assert!(names(&dir).is_empty(), "{delivery}: {:?}", names(&dir));
            assert_eq!(ours(), Vec::new());
        }
        // On the jail's disk, /var/run is refused: rc's cleanvar empties it at every start.
        let (host, root) = web(&[]);
        host.run(&["tenant", "set", "web", "--layout", "both", "--mount-point", "/var/run/secrets"])
            .expect(64)
            .stderr_has("cleanvar");
        host.run(&[
            "tenant",
            "set",
            "web",
            "--delivery",
            "memory",
            "--layout",
            "both",
            "--mount-point",
            "/var/run/secrets",
        ])
        .expect(0);
        let _ = root;
    });
}

#[test]
fn doctor_reports_the_mounts_and_the_jail_mounts_that_would_hide_them() {
    mounts::private("doctor and the memory fs", || {
        let (mut host, root) = web(&["--delivery", "memory"]);
        let _unmount = Unmount(host.path().to_owned());
        // A Bastille layout whose jail.conf mounts a tmpfs above the secrets directory and whose
        // fstab mounts something exactly there.
        let jailsdir = host.base.clone();
        let bastille_conf = host.path().join("bastille.conf");
        fs::write(&bastille_conf, format!("bastille_jailsdir={}\n", s(&jailsdir))).unwrap();
        host.set_env("BASTILLE_CONFIG", bastille_conf.as_os_str());
        let view = root.join("var/run/secrets");
        let fstab = jailsdir.join("web/fstab");
        fs::write(&fstab, format!("# Bastille's\n/usr/local/shared {} nullfs ro 0 0\n", s(&view))).unwrap();
        let conf = jailsdir.join("web/jail.conf");
        fs::write(
            &conf,
            format!(
                "web {{\n  path = {};\n  mount.fstab = {};\n  mount += \"tmpfs {}/var/run tmpfs rw 0 0\";\n  exec.timeout = 60;\n}}\n",
                s(&root),
                s(&fstab),
                s(&root)
            ),
        )
        .unwrap();

        let out = host.run(&["doctor"]);
        let text = &out.stdout;
        assert!(text.contains("web: delivery memory, nothing mounted"), "{text}");
        assert!(text.contains("web: no stop hook in"), "{text}");
        assert!(
            text.contains(&format!(
                "{} line 2 mounts /usr/local/shared on {}, at the memory fs's view",
                s(&fstab),
                s(&view)
            )),
            "{text}"
        );
        assert!(
            text.contains(&format!(
                "{} line 4 mounts tmpfs on {}/var/run, above the memory fs's view",
                s(&conf),
                s(&root)
            )),
            "{text}"
        );

        host.run(&["jail", "enable", "web"]).expect(0);
        assert!(fs::read_to_string(&conf).unwrap().contains("hook stop"), "memory tenants get the stop hook");
        fs::write(&fstab, "").unwrap();
        host.run(&["hook", "start", "web", s(&root)]).expect(0);
        let text = host.run(&["doctor"]).stdout;
        assert!(
            text.contains(&format!("ok       web: memory fs mounted, read-only at {}", s(&view))),
            "{text}"
        );
        assert!(!text.contains("no stop hook"), "{text}");

        // Made writable behind colibri-vault's back: a problem (78).
        nix::mount::mount(
            None::<&str>,
            &view,
            None::<&str>,
            nix::mount::MsFlags::MS_REMOUNT | nix::mount::MsFlags::MS_BIND,
            None::<&str>,
        )
        .unwrap();
        let out = host.run(&["doctor"]);
        out.expect(78);
        assert!(
            out.stdout.contains(&format!("problem  web: the view at {} is writable", s(&view))),
            "{}",
            out.stdout
        );
        // The mount point moved without a start since: the old view is stale.
        host.run(&["hook", "start", "web", s(&root)]).expect(0);
        host.run(&["tenant", "set", "web", "--mount-point", "/run/app"]).expect(0);
        let text = host.run(&["doctor"]).stdout;
        assert!(text.contains(&format!("web: a stale view at {}", s(&view))), "{text}");
        assert!(!text.contains("still on the jail's disk"), "{text}");
        // What delivery file wrote before a switch to memory stays on the jail's disk: said.
        fs::write(root.join(".env"), EXPECTED_SH).unwrap();
        let text = host.run(&["doctor"]).stdout;
        assert!(
            text.contains(&format!(
                "web: delivery memory, but {} (written with delivery file?) is still on the jail's disk",
                s(&root.join(".env"))
            )),
            "{text}"
        );
    });
}
