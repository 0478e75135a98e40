//! Resolved settings: one value for each row of DESIGN.md's "Defaults" table.
//!
//! Precedence, highest first: a command-line flag, the process environment, a `COLIBRI_*` line
//! in the provider env file, the built-in default. The provider env's own location is decided by
//! flag or environment only. The provider env also carries the bootstrap credentials for `bw`;
//! they stay `Secret`s and are handed to the vault code as such.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::error::{Error, Result};
use crate::kvfile;
use crate::secret::Secret;

/// Where the secrets come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SourceKind {
    /// The Bitwarden CLI against Vaultwarden (the product's purpose).
    Bw,
    /// Host-side `<collection>.env` files: the embedded default for demos and tests.
    Dir,
}

/// Settings given on the command line (each `None` when the flag was absent).
#[derive(Clone, Debug, Default)]
pub struct Flags {
    pub provider_env: Option<PathBuf>,
    pub db: Option<PathBuf>,
    pub jail_root_base: Option<PathBuf>,
    pub state_dir: Option<PathBuf>,
    pub run_dir: Option<PathBuf>,
    pub source: Option<String>,
    pub secrets_dir: Option<PathBuf>,
    pub bw: Option<PathBuf>,
    pub bw_timeout: Option<String>,
    pub lock_timeout: Option<String>,
    pub fresh_for: Option<String>,
    pub bastille_config: Option<PathBuf>,
    pub jexec: Option<PathBuf>,
    pub on_change_timeout: Option<String>,
}

/// Keys a provider env may contain besides `COLIBRI_*` settings.
pub const CREDENTIAL_KEYS: [&str; 5] =
    ["BW_CLIENTID", "BW_CLIENTSECRET", "BW_PASSWORD", "BW_SERVER", "NODE_EXTRA_CA_CERTS"];

pub const DEFAULT_PROVIDER_ENV: &str = "/usr/local/etc/colibri/provider.env";
pub const DEFAULT_JAIL_ROOT_BASE: &str = "/usr/local/bastille/jails";

#[derive(Clone)]
pub struct Settings {
    pub provider_env: PathBuf,
    pub db: PathBuf,
    pub jail_root_base: PathBuf,
    pub state_dir: PathBuf,
    pub run_dir: PathBuf,
    pub source: SourceKind,
    pub secrets_dir: PathBuf,
    pub bw: PathBuf,
    pub bw_timeout: Duration,
    pub lock_timeout: Duration,
    pub fresh_for: Duration,
    pub bastille_config: PathBuf,
    /// jexec(8), which runs a tenant's on-change command inside its jail.
    pub jexec: PathBuf,
    /// How long a tenant's on-change command may run.
    pub on_change_timeout: Duration,
    /// `BW_*` and `NODE_EXTRA_CA_CERTS` from the provider env.
    pub credentials: BTreeMap<String, Secret>,
    /// Whether the provider env file existed.
    pub provider_env_found: bool,
}

struct Table<'a> {
    env: &'a dyn Fn(&str) -> Option<OsString>,
    file: BTreeMap<String, Secret>,
}

impl Table<'_> {
    fn get(&self, flag: Option<&OsString>, var: &str, default: &str) -> OsString {
        if let Some(value) = flag {
            return value.clone();
        }
        if let Some(value) = (self.env)(var).filter(|v| !v.is_empty()) {
            return value;
        }
        if let Some(value) = self.file.get(var) {
            return OsString::from(value.expose());
        }
        OsString::from(default)
    }

    fn path(&self, flag: Option<&PathBuf>, var: &str, default: &str) -> Result<PathBuf> {
        let value = PathBuf::from(self.get(flag.map(|p| p.as_os_str().to_owned()).as_ref(), var, default));
        if value.is_absolute() {
            Ok(value)
        } else {
            Err(Error::Config(format!(
                "{var} must be an absolute path, not {}",
                crate::sanitize::clean(&value.to_string_lossy())
            )))
        }
    }

    fn seconds(&self, flag: Option<&String>, setting: &Seconds) -> Result<Duration> {
        let raw = self.get(flag.map(OsString::from).as_ref(), setting.var, &setting.default.to_string());
        raw.to_str()
            .and_then(|s| s.trim().parse::<u64>().ok())
            .filter(|n| setting.range.contains(n))
            .map(Duration::from_secs)
            .ok_or_else(|| {
                Error::Config(format!(
                    "{} ({}) must be a whole number of seconds from {} to {} ({})",
                    setting.var,
                    setting.flag,
                    setting.range.start(),
                    setting.range.end(),
                    setting.max_in_words
                ))
            })
    }
}

/// A duration setting and the seconds it accepts. The maxima are far beyond any sensible wait,
/// and keep every deadline computed from them within what the clock can represent.
pub struct Seconds {
    pub var: &'static str,
    pub flag: &'static str,
    pub default: u64,
    pub range: std::ops::RangeInclusive<u64>,
    max_in_words: &'static str,
}

/// Each `bw` call: at least a second (0 would kill every call), at most an hour.
pub const BW_TIMEOUT: Seconds = Seconds {
    var: "COLIBRI_BW_TIMEOUT",
    flag: "--bw-timeout",
    default: 60,
    range: 1..=3600,
    max_in_words: "one hour",
};
/// The wait for the host-wide lock: 0 (do not wait) to a day.
pub const LOCK_TIMEOUT: Seconds = Seconds {
    var: "COLIBRI_LOCK_TIMEOUT",
    flag: "--lock-timeout",
    default: 300,
    range: 0..=86_400,
    max_in_words: "one day",
};
/// The hooks' freshness window: 0 (disabled) to 30 days.
pub const FRESH_FOR: Seconds = Seconds {
    var: "COLIBRI_FRESH_FOR",
    flag: "--fresh-for",
    default: 300,
    range: 0..=2_592_000,
    max_in_words: "30 days",
};

/// A tenant's on-change command, run inside its jail after `refresh` changed its secrets: at
/// least a second, at most an hour (the host-wide lock is not held meanwhile).
pub const ON_CHANGE_TIMEOUT: Seconds = Seconds {
    var: "COLIBRI_ON_CHANGE_TIMEOUT",
    flag: "--on-change-timeout",
    default: 60,
    range: 1..=3600,
    max_in_words: "one hour",
};

/// Where jexec(8) is on FreeBSD.
pub const DEFAULT_JEXEC: &str = "/usr/sbin/jexec";

impl Settings {
    /// Resolves every setting. `env` reads the process environment (injected for tests).
    pub fn resolve(flags: &Flags, env: &dyn Fn(&str) -> Option<OsString>) -> Result<Settings> {
        Self::resolve_from(flags, env, ProviderEnv::Credentials)
    }

    /// Settings from flags, environment and defaults only, for when the provider env itself is
    /// unusable: a hook still needs the database to learn the tenant's failure policy.
    pub fn resolve_without_provider_env(
        flags: &Flags,
        env: &dyn Fn(&str) -> Option<OsString>,
    ) -> Result<Settings> {
        Self::resolve_from(flags, env, ProviderEnv::Skip)
    }

    /// Settings for a command that needs no credentials (`tenant …`, `status`, `jail …`): a
    /// provider env that is too open to hold credentials still gives its `COLIBRI_*` settings
    /// (it must not be writable by others, nor be a FIFO, device or planted link); its
    /// credentials are dropped unread, and `warn` says what to fix.
    pub fn resolve_settings_only(
        flags: &Flags,
        env: &dyn Fn(&str) -> Option<OsString>,
        warn: &dyn Fn(&str),
    ) -> Result<Settings> {
        match Self::resolve(flags, env) {
            Err(Error::InsecureFile { path, problem, fix }) => {
                let settings = Self::resolve_from(flags, env, ProviderEnv::SettingsOnly)?;
                if settings.provider_env == path {
                    warn(&format!(
                        "{} is {problem}; fix it with: {fix} (this command needs no credentials: its COLIBRI_* settings were used)",
                        path.display()
                    ));
                    Ok(settings)
                } else {
                    Err(Error::InsecureFile { path, problem, fix })
                }
            }
            other => other,
        }
    }

    fn resolve_from(
        flags: &Flags,
        env: &dyn Fn(&str) -> Option<OsString>,
        read: ProviderEnv,
    ) -> Result<Settings> {
        let provider_env = flags
            .provider_env
            .clone()
            .or_else(|| env("COLIBRI_PROVIDER_ENV").filter(|v| !v.is_empty()).map(PathBuf::from))
            .unwrap_or_else(|| PathBuf::from(DEFAULT_PROVIDER_ENV));
        let (file, found) = if read == ProviderEnv::Skip {
            (BTreeMap::new(), false)
        } else {
            // A provider env inside a jail is refused before a byte of it is trusted.
            let base = flags
                .jail_root_base
                .clone()
                .or_else(|| env("COLIBRI_JAIL_ROOT_BASE").filter(|v| !v.is_empty()).map(PathBuf::from))
                .unwrap_or_else(|| PathBuf::from(DEFAULT_JAIL_ROOT_BASE));
            crate::host_state::check_provider_env(&provider_env, &base)?;
            let (mut file, found) = load_provider_env(&provider_env, read)?;
            if read == ProviderEnv::SettingsOnly {
                file.retain(|key, _| !CREDENTIAL_KEYS.contains(&key.as_str()));
            }
            (file, found)
        };
        let mut credentials = BTreeMap::new();
        let mut settings_from_file = BTreeMap::new();
        for (key, value) in file {
            if CREDENTIAL_KEYS.contains(&key.as_str()) {
                credentials.insert(key, value);
            } else {
                settings_from_file.insert(key, value);
            }
        }
        let table = Table { env, file: settings_from_file };

        let source = match table
            .get(flags.source.as_ref().map(OsString::from).as_ref(), "COLIBRI_SOURCE", "bw")
            .to_str()
        {
            Some("bw") => SourceKind::Bw,
            Some("dir") => SourceKind::Dir,
            _ => return Err(Error::Config("COLIBRI_SOURCE must be bw or dir".into())),
        };
        let bw_timeout = table.seconds(flags.bw_timeout.as_ref(), &BW_TIMEOUT)?;
        Ok(Settings {
            db: table.path(flags.db.as_ref(), "COLIBRI_DB", "/var/db/colibri/colibri.sqlite")?,
            jail_root_base: normalize_dir(&table.path(
                flags.jail_root_base.as_ref(),
                "COLIBRI_JAIL_ROOT_BASE",
                DEFAULT_JAIL_ROOT_BASE,
            )?),
            state_dir: table.path(flags.state_dir.as_ref(), "COLIBRI_STATE_DIR", "/var/db/colibri")?,
            run_dir: table.path(flags.run_dir.as_ref(), "COLIBRI_RUN_DIR", "/var/run/colibri")?,
            secrets_dir: table.path(
                flags.secrets_dir.as_ref(),
                "COLIBRI_SECRETS_DIR",
                "/usr/local/etc/colibri/secrets",
            )?,
            bw: PathBuf::from(table.get(
                flags.bw.as_ref().map(|p| p.as_os_str().to_owned()).as_ref(),
                "COLIBRI_BW",
                "bw",
            )),
            bw_timeout,
            lock_timeout: table.seconds(flags.lock_timeout.as_ref(), &LOCK_TIMEOUT)?,
            fresh_for: table.seconds(flags.fresh_for.as_ref(), &FRESH_FOR)?,
            jexec: table.path(flags.jexec.as_ref(), "COLIBRI_JEXEC", DEFAULT_JEXEC)?,
            on_change_timeout: table.seconds(flags.on_change_timeout.as_ref(), &ON_CHANGE_TIMEOUT)?,
            bastille_config: table.path(
                flags.bastille_config.as_ref(),
                "BASTILLE_CONFIG",
                "/usr/local/etc/bastille/bastille.conf",
            )?,
            source,
            provider_env,
            credentials,
            provider_env_found: found,
        })
    }

    pub fn credential(&self, key: &str) -> Option<&Secret> {
        self.credentials.get(key).filter(|v| !v.is_empty())
    }
}

/// The settings a `COLIBRI_*` (or `BASTILLE_CONFIG`) variable or provider env line may set.
pub const SETTING_KEYS: [&str; 13] = [
    "COLIBRI_DB",
    "COLIBRI_JAIL_ROOT_BASE",
    "COLIBRI_STATE_DIR",
    "COLIBRI_RUN_DIR",
    "COLIBRI_SOURCE",
    "COLIBRI_SECRETS_DIR",
    "COLIBRI_BW",
    "COLIBRI_BW_TIMEOUT",
    "COLIBRI_LOCK_TIMEOUT",
    "COLIBRI_FRESH_FOR",
    "COLIBRI_JEXEC",
    "COLIBRI_ON_CHANGE_TIMEOUT",
    "BASTILLE_CONFIG",
];

/// How much of the provider env a command reads.
#[derive(Clone, Copy, PartialEq, Eq)]
enum ProviderEnv {
    /// All of it, credentials included: it must be private.
    Credentials,
    /// Its `COLIBRI_*` settings only: it must not be writable by others.
    SettingsOnly,
    Skip,
}

fn load_provider_env(path: &Path, read: ProviderEnv) -> Result<(BTreeMap<String, Secret>, bool)> {
    let rules = if read == ProviderEnv::SettingsOnly {
        &crate::hostfile::PROVIDER_ENV_SETTINGS
    } else {
        &crate::hostfile::PROVIDER_ENV
    };
    let Some(bytes) = kvfile::read_private(path, rules)? else {
        return Ok((BTreeMap::new(), false));
    };
    let mut map = BTreeMap::new();
    for assignment in kvfile::parse(path, &bytes)? {
        let known = CREDENTIAL_KEYS.contains(&assignment.key.as_str())
            || SETTING_KEYS.contains(&assignment.key.as_str());
        if !known {
            return Err(Error::ConfigLine {
                file: path.to_owned(),
                line: assignment.line,
                problem: format!(
                    "unknown setting {} (known: {}, {})",
                    assignment.key,
                    CREDENTIAL_KEYS.join(", "),
                    SETTING_KEYS.join(", ")
                ),
            });
        }
        map.insert(assignment.key, assignment.value);
    }
    Ok((map, true))
}

/// A directory path without trailing slashes (but `/` stays `/`).
pub fn normalize_dir(path: &Path) -> PathBuf {
    path.components().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn no_env(_: &str) -> Option<OsString> {
        None
    }

    fn write_private(dir: &Path, text: &str) -> PathBuf {
        let path = dir.join("provider.env");
        std::fs::write(&path, text).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        path
    }

    #[test]
    fn defaults_when_nothing_is_set() {
        let flags = Flags { provider_env: Some("/nonexistent/provider.env".into()), ..Flags::default() };
        let s = Settings::resolve(&flags, &no_env).unwrap();
        assert_eq!(s.db, Path::new("/var/db/colibri/colibri.sqlite"));
        assert_eq!(s.jail_root_base, Path::new("/usr/local/bastille/jails"));
        assert_eq!(s.state_dir, Path::new("/var/db/colibri"));
        assert_eq!(s.run_dir, Path::new("/var/run/colibri"));
        assert_eq!(s.source, SourceKind::Bw);
        assert_eq!(s.secrets_dir, Path::new("/usr/local/etc/colibri/secrets"));
        assert_eq!(s.bw, Path::new("bw"));
        assert_eq!(s.bw_timeout, Duration::from_secs(60));
        assert_eq!(s.lock_timeout, Duration::from_secs(300));
        assert_eq!(s.fresh_for, Duration::from_secs(300));
        assert_eq!(s.bastille_config, Path::new("/usr/local/etc/bastille/bastille.conf"));
        assert_eq!(s.jexec, Path::new("/usr/sbin/jexec"));
        assert_eq!(s.on_change_timeout, Duration::from_secs(60));
        assert!(!s.provider_env_found);
    }

    #[test]
    fn flag_beats_environment_beats_file_beats_default() {
        let dir = tempfile::tempdir().unwrap();
        let path = write_private(
            dir.path(),
            "COLIBRI_DB=/file/db\nCOLIBRI_RUN_DIR=/file/run\nCOLIBRI_STATE_DIR=/file/state\nBW_PASSWORD='pw'\n",
        );
        let env = |key: &str| match key {
            "COLIBRI_DB" | "COLIBRI_RUN_DIR" => Some(OsString::from("/env/x")),
            _ => None,
        };
        let flags = Flags { provider_env: Some(path), db: Some("/flag/db".into()), ..Flags::default() };
        let s = Settings::resolve(&flags, &env).unwrap();
        assert_eq!(s.db, Path::new("/flag/db"));
        assert_eq!(s.run_dir, Path::new("/env/x"));
        assert_eq!(s.state_dir, Path::new("/file/state"));
        assert_eq!(s.lock_timeout, Duration::from_secs(300));
        assert_eq!(s.credential("BW_PASSWORD").unwrap().expose(), "pw");
        assert!(s.provider_env_found);
    }

    #[test]
    fn provider_env_location_from_environment() {
        let dir = tempfile::tempdir().unwrap();
        let path = write_private(dir.path(), "COLIBRI_SOURCE=dir\n");
        let env = |key: &str| (key == "COLIBRI_PROVIDER_ENV").then(|| path.clone().into_os_string());
        let s = Settings::resolve(&Flags::default(), &env).unwrap();
        assert_eq!(s.source, SourceKind::Dir);
    }

    #[test]
    fn unknown_or_bad_settings_are_configuration_errors() {
        let dir = tempfile::tempdir().unwrap();
        let path = write_private(dir.path(), "COLIBRI_TYPO=1\n");
        let flags = Flags { provider_env: Some(path), ..Flags::default() };
        let e = Settings::resolve(&flags, &no_env).err().unwrap();
        assert_eq!(e.exit_code(), 78);
        assert!(e.to_string().contains(":1: unknown setting COLIBRI_TYPO"), "{e}");

        let flags = Flags {
            provider_env: Some("/nonexistent".into()),
            bw_timeout: Some("soon".into()),
            ..Flags::default()
        };
        assert_eq!(Settings::resolve(&flags, &no_env).err().unwrap().exit_code(), 78);
        let flags = Flags {
            provider_env: Some("/nonexistent".into()),
            db: Some("relative.db".into()),
            ..Flags::default()
        };
        assert_eq!(Settings::resolve(&flags, &no_env).err().unwrap().exit_code(), 78);
    }

    #[test]
    fn durations_out_of_their_range_are_refused_with_the_range() {
        let resolve = |flags: Flags| Settings::resolve(&flags, &no_env);
        let base = || Flags { provider_env: Some("/nonexistent".into()), ..Flags::default() };
        for (setting, set) in [
            (&BW_TIMEOUT, (|f: &mut Flags, v: String| f.bw_timeout = Some(v)) as fn(&mut Flags, String)),
            (&LOCK_TIMEOUT, |f, v| f.lock_timeout = Some(v)),
            (&FRESH_FOR, |f, v| f.fresh_for = Some(v)),
            (&ON_CHANGE_TIMEOUT, |f, v| f.on_change_timeout = Some(v)),
        ] {
            let max = *setting.range.end();
            for bad in
                [u64::MAX.to_string(), "18446744073709551616".into(), (max + 1).to_string(), "-1".into()]
            {
                let mut flags = base();
                set(&mut flags, bad.clone());
                let e = resolve(flags).err().unwrap_or_else(|| panic!("{} {bad} accepted", setting.var));
                assert_eq!(e.exit_code(), 78);
                let range = format!("from {} to {max}", setting.range.start());
                assert!(e.to_string().contains(&range) && e.to_string().contains(setting.flag), "{e}");
            }
            for good in [*setting.range.start(), max] {
                let mut flags = base();
                set(&mut flags, good.to_string());
                resolve(flags).unwrap();
            }
        }
        let mut flags = base();
        flags.bw_timeout = Some("0".into());
        assert_eq!(resolve(flags).err().unwrap().exit_code(), 78);
        let mut flags = base();
        flags.on_change_timeout = Some("0".into());
        assert_eq!(resolve(flags).err().unwrap().exit_code(), 78);
        let mut flags = base();
        flags.jexec = Some("jexec".into());
        assert_eq!(resolve(flags).err().unwrap().exit_code(), 78, "COLIBRI_JEXEC must be absolute");
    }

    #[test]
    fn an_open_provider_env_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = write_private(dir.path(), "BW_PASSWORD=x\n");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let flags = Flags { provider_env: Some(path), ..Flags::default() };
        assert_eq!(Settings::resolve(&flags, &no_env).err().unwrap().exit_code(), 77);
    }

    #[test]
    fn trailing_slashes_are_normalized() {
        assert_eq!(
            normalize_dir(Path::new("/usr/local/bastille/jails/")),
            Path::new("/usr/local/bastille/jails")
        );
        assert_eq!(normalize_dir(Path::new("/")), Path::new("/"));
    }
}
