//! A throwaway host for running the built `colibri-vault` against, in a temporary directory.
//!
//! `Host::new()` lays out what a FreeBSD host running colibri-vault has: a jail root base
//! (`jails/`), a provider env (mode 0600) selecting the `dir` source, a secrets directory for
//! `<collection>.env` files (0600), and the places for the tenant database, the state and the
//! run directory (not created: colibri-vault must create or refuse them itself). `run()` starts
//! the binary with a cleared environment plus only the `COLIBRI_*` variables pointing at this
//! host (and `PATH`), stdin at /dev/null, and returns its status, stdout and stderr.
//!
//! Not for: anything FreeBSD-specific (no kernel jail lookup happens on Linux; the registered
//! root is used, as DESIGN.md step 1 says).

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fs;
use std::io::Read;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use tempfile::TempDir;

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_colibri-vault");

/// What children get as `PATH` (DESIGN.md's fixed lookup path).
pub const PATH: &str = "/usr/local/bin:/usr/bin:/bin";

/// How long `run_bounded` lets a run take before calling it hung: far more than any refusal
/// needs, even on a loaded machine; it is a hang detector, not a speed check.
pub const WATCHDOG: Duration = Duration::from_secs(60);

/// The result of one run of the binary.
#[derive(Debug)]
pub struct Outcome {
    /// The exit status; `None` if a signal ended the process.
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Outcome {
    /// Panics, showing stdout and stderr, unless the exit status is `code`.
    #[track_caller]
    pub fn expect(&self, code: i32) -> &Self {
        assert_eq!(
            self.code,
            Some(code),
            "expected exit status {code}\n--- stdout:\n{}\n--- stderr:\n{}",
            self.stdout,
            self.stderr
        );
        self
    }

    /// Panics unless stderr contains `needle`.
    #[track_caller]
    pub fn stderr_has(&self, needle: &str) -> &Self {
        assert!(self.stderr.contains(needle), "stderr lacks {needle:?}:\n{}", self.stderr);
        self
    }

    /// stdout and stderr together, for "this value appears nowhere" checks.
    pub fn all_output(&self) -> String {
        format!("{}\n{}", self.stdout, self.stderr)
    }
}

pub struct Host {
    dir: TempDir,
    pub base: PathBuf,
    pub provider_env: PathBuf,
    pub secrets_dir: PathBuf,
    pub db: PathBuf,
    pub state_dir: PathBuf,
    pub run_dir: PathBuf,
    env: BTreeMap<String, OsString>,
}

impl Host {
    /// A host with an empty jail root base, the `dir` source selected in the provider env and
    /// no database yet.
    pub fn new() -> Host {
        let dir = tempfile::Builder::new().prefix("colibri-it-").tempdir().expect("tempdir");
        let root = dir.path().to_owned();
        let host = Host {
            base: root.join("jails"),
            provider_env: root.join("etc/provider.env"),
            secrets_dir: root.join("etc/secrets"),
            db: root.join("db/colibri.sqlite"),
            state_dir: root.join("state"),
            run_dir: root.join("run"),
            env: BTreeMap::new(),
            dir,
        };
        fs::create_dir_all(&host.base).unwrap();
        fs::create_dir_all(&host.secrets_dir).unwrap();
        fs::set_permissions(&host.secrets_dir, fs::Permissions::from_mode(0o700)).unwrap();
        host.write_provider_env("COLIBRI_SOURCE=dir\n");
        host
    }

    /// The temporary directory everything lives in.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Replaces the provider env's content (mode 0600).
    pub fn write_provider_env(&self, text: &str) {
        write_private(&self.provider_env, text.as_bytes());
    }

    /// Appends `text` (whole lines) to the provider env.
    pub fn append_provider_env(&self, text: &str) {
        let old = fs::read_to_string(&self.provider_env).unwrap();
        self.write_provider_env(&format!("{old}{text}"));
    }

    /// Sets (or overrides) one variable of the child's environment.
    pub fn set_env(&mut self, key: &str, value: impl Into<OsString>) -> &mut Self {
        self.env.insert(key.to_owned(), value.into());
        self
    }

    /// Creates `base/<name>/root` (mode 0755) and returns it.
    pub fn jail(&self, name: &str) -> PathBuf {
        let root = self.root_of(name);
        fs::create_dir_all(&root).unwrap();
        root
    }

    /// Where the jail `name`'s root is (or would be).
    pub fn root_of(&self, name: &str) -> PathBuf {
        self.base.join(name).join("root")
    }

    /// Writes the `dir` source's `<collection>.env` (mode 0600).
    pub fn secrets(&self, collection: &str, text: &str) -> PathBuf {
        let path = self.secrets_path(collection);
        write_private(&path, text.as_bytes());
        path
    }

    pub fn secrets_path(&self, collection: &str) -> PathBuf {
        self.secrets_dir.join(format!("{collection}.env"))
    }

    /// Creates the jail's root and registers a tenant for it with `tenant add` plus `extra`
    /// options; returns the root.
    pub fn tenant(&self, name: &str, extra: &[&str]) -> PathBuf {
        let root = self.jail(name);
        let root_arg = root.to_str().unwrap().to_owned();
        let mut args = vec!["tenant", "add", name, "--root", &root_arg];
        args.extend_from_slice(extra);
        self.run(&args).expect(0);
        root
    }

    /// Registers `name` the way colibri-daemon (or a hand edit) can: a raw `tenants` row, no
    /// validation at all (a root outside the base, any collection stays registered).
    pub fn insert_raw(&self, name: &str, root: &Path, collection: &str) {
        let conn = rusqlite::Connection::open(&self.db).unwrap();
        conn.execute(
            "INSERT INTO tenants (tenant_id, jail_root_path, collection_id, status, created_at, updated_at)
             VALUES (?1, ?2, ?3, 'provisioned', 1700000000, NULL)",
            rusqlite::params![name, root.to_str().unwrap(), collection],
        )
        .unwrap();
    }

    /// The command for `args`, with this host's clean environment, not yet started.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(BIN);
        command.args(args);
        self.prepare(&mut command);
        command
    }

    fn prepare(&self, command: &mut Command) {
        command
            .env_clear()
            .env("PATH", PATH)
            .env("COLIBRI_PROVIDER_ENV", &self.provider_env)
            .env("COLIBRI_DB", &self.db)
            .env("COLIBRI_JAIL_ROOT_BASE", &self.base)
            .env("COLIBRI_STATE_DIR", &self.state_dir)
            .env("COLIBRI_RUN_DIR", &self.run_dir)
            .env("COLIBRI_SECRETS_DIR", &self.secrets_dir)
            .envs(&self.env)
            .stdin(Stdio::null());
    }

    /// Runs the binary with `args` and waits for it.
    pub fn run(&self, args: &[&str]) -> Outcome {
        output(&mut self.command(args))
    }

    /// Starts the binary with `args` in its own process group, stdout and stderr piped.
    pub fn spawn(&self, args: &[&str]) -> Child {
        let mut command = self.command(args);
        command.process_group(0).stdout(Stdio::piped()).stderr(Stdio::piped());
        command.spawn().expect("start colibri-vault")
    }

    /// Runs the binary with `args` under a watchdog ([`bounded`]): the test fails, instead of
    /// hanging, if the run takes longer than [`WATCHDOG`].
    #[track_caller]
    pub fn run_bounded(&self, args: &[&str]) -> Outcome {
        bounded(self.spawn(args), WATCHDOG)
    }

    /// Runs the binary under `/bin/sh` with a file-size limit of `blocks` × 512 bytes and
    /// SIGXFSZ ignored, so that writing a larger file fails with EFBIG instead of killing it:
    /// a write that fails after the temporary file was created.
    pub fn run_with_file_size_limit(&self, blocks: u32, args: &[&str]) -> Outcome {
        let mut command = Command::new("/bin/sh");
        command
            .arg("-c")
            .arg(format!("ulimit -f {blocks}; trap '' XFSZ; exec \"$0\" \"$@\""))
            .arg(BIN)
            .args(args);
        self.prepare(&mut command);
        output(&mut command)
    }

    /// Runs `program pre_args… BIN args…` with this host's environment: the binary started by
    /// a wrapper (`unshare` with a mount namespace, a shell preparing something first).
    pub fn run_wrapped(&self, program: &str, pre_args: &[&str], args: &[&str]) -> Outcome {
        let mut command = Command::new(program);
        command.args(pre_args).arg(BIN).args(args);
        self.prepare(&mut command);
        output(&mut command)
    }
}

/// Waits for `child` (started in its own process group, stdout and stderr piped). If it has
/// not finished within `limit`, kills its whole group and fails the test: for inputs that used to
/// make colibri-vault hang, so that a regression fails instead of hanging the suite.
#[track_caller]
pub fn bounded(mut child: Child, limit: Duration) -> Outcome {
    let drain = |stream: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            if let Some(mut stream) = stream {
                let _ = stream.read_to_end(&mut bytes);
            }
            String::from_utf8_lossy(&bytes).into_owned()
        })
    };
    let stdout = drain(child.stdout.take().map(|s| Box::new(s) as Box<dyn Read + Send>));
    let stderr = drain(child.stderr.take().map(|s| Box::new(s) as Box<dyn Read + Send>));
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for colibri-vault") {
            break status;
        }
        if started.elapsed() > limit {
            let pid = i32::try_from(child.id()).unwrap();
            // SAFETY: signals the process group the test started (its leader is the child).
            unsafe { libc::killpg(pid, libc::SIGKILL) };
            let _ = child.wait();
            panic!("colibri-vault did not finish within {limit:?}: it hung (killed by the test)");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    Outcome { code: status.code(), stdout: stdout.join().unwrap(), stderr: stderr.join().unwrap() }
}

fn output(command: &mut Command) -> Outcome {
    let out = command.output().expect("start colibri-vault");
    Outcome {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Writes `bytes` to `path` (creating parents) and sets mode 0600.
pub fn write_private(path: &Path, bytes: &[u8]) {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).unwrap();
    }
    fs::write(path, bytes).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(0o600)).unwrap();
}

/// What a file looks like from outside: for "nothing changed" checks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileState {
    pub bytes: Vec<u8>,
    pub mtime: SystemTime,
    pub ino: u64,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
}

/// The state of the regular file at `path` (symlinks not followed).
pub fn file_state(path: &Path) -> FileState {
    let meta = fs::symlink_metadata(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert!(meta.is_file(), "{} is not a regular file", path.display());
    FileState {
        bytes: fs::read(path).unwrap(),
        mtime: meta.modified().unwrap(),
        ino: meta.ino(),
        mode: meta.mode() & 0o7777,
        uid: meta.uid(),
        gid: meta.gid(),
    }
}

/// Every entry under `dir` (recursively, symlinks not followed): relative path → (mode, mtime,
/// content for files, target for links). Comparing two snapshots shows any change.
pub fn snapshot(dir: &Path) -> BTreeMap<PathBuf, (u32, SystemTime, Vec<u8>)> {
    let mut out = BTreeMap::new();
    let meta = fs::symlink_metadata(dir).unwrap();
    out.insert(PathBuf::new(), (meta.mode(), meta.modified().unwrap(), Vec::new()));
    walk(dir, dir, &mut out);
    out
}

fn walk(top: &Path, dir: &Path, out: &mut BTreeMap<PathBuf, (u32, SystemTime, Vec<u8>)>) {
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let meta = fs::symlink_metadata(&path).unwrap();
        let content = if meta.is_file() {
            fs::read(&path).unwrap()
        } else if meta.file_type().is_symlink() {
            fs::read_link(&path).unwrap().into_os_string().into_encoded_bytes()
        } else {
            Vec::new()
        };
        out.insert(
            path.strip_prefix(top).unwrap().to_owned(),
            (meta.mode(), meta.modified().unwrap(), content),
        );
        if meta.is_dir() {
            walk(top, &path, out);
        }
    }
}

/// The names in `dir`, sorted (for "no temporary file left" checks).
pub fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> =
        fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    names
}

/// Sets the file's modification time back to `when` (so that a rewrite, however fast, shows).
pub fn set_mtime(path: &Path, when: SystemTime) {
    fs::File::options().write(true).open(path).unwrap().set_modified(when).unwrap();
}

/// Files under `dir` (recursively, links not followed) whose bytes hold any of `needles`; none
/// if `dir` does not exist.
pub fn holding(dir: &Path, needles: &[&str]) -> Vec<PathBuf> {
    if !dir.exists() {
        return Vec::new();
    }
    snapshot(dir)
        .into_iter()
        .filter(|(_, (_, _, bytes))| {
            needles.iter().any(|n| bytes.windows(n.len()).any(|w| w == n.as_bytes()))
        })
        .map(|(path, _)| path)
        .collect()
}
