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

    fn seconds(&self, flag: Option<&String>, var: &str, default: u64) -> Result<Duration> {
        let raw = self.get(flag.map(OsString::from).as_ref(), var, &default.to_string());
        raw.to_str()
            .and_then(|s| s.trim().parse::<u64>().ok())
            .map(Duration::from_secs)
            .ok_or_else(|| Error::Config(format!("{var} must be a whole number of seconds")))
    }
}

impl Settings {
    /// Resolves every setting. `env` reads the process environment (injected for tests).
    pub fn resolve(flags: &Flags, env: &dyn Fn(&str) -> Option<OsString>) -> Result<Settings> {
        Self::resolve_from(flags, env, true)
    }

    /// Settings from flags, environment and defaults only, for when the provider env itself is
    /// unusable: a hook still needs the database to learn the tenant's failure policy.
    pub fn resolve_without_provider_env(
        flags: &Flags,
        env: &dyn Fn(&str) -> Option<OsString>,
    ) -> Result<Settings> {
        Self::resolve_from(flags, env, false)
    }

    fn resolve_from(
        flags: &Flags,
        env: &dyn Fn(&str) -> Option<OsString>,
        read_file: bool,
    ) -> Result<Settings> {
        let provider_env = flags
            .provider_env
            .clone()
            .or_else(|| env("COLIBRI_PROVIDER_ENV").filter(|v| !v.is_empty()).map(PathBuf::from))
            .unwrap_or_else(|| PathBuf::from(DEFAULT_PROVIDER_ENV));
        let (file, found) = if read_file {
            // A provider env inside a jail is refused before a byte of it is trusted.
            let base = flags
                .jail_root_base
                .clone()
                .or_else(|| env("COLIBRI_JAIL_ROOT_BASE").filter(|v| !v.is_empty()).map(PathBuf::from))
                .unwrap_or_else(|| PathBuf::from(DEFAULT_JAIL_ROOT_BASE));
            crate::host_state::check_provider_env(&provider_env, &base)?;
            load_provider_env(&provider_env)?
        } else {
            (BTreeMap::new(), false)
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
        let bw_timeout = table.seconds(flags.bw_timeout.as_ref(), "COLIBRI_BW_TIMEOUT", 60)?;
        if bw_timeout.is_zero() {
            return Err(Error::Config("COLIBRI_BW_TIMEOUT must be at least 1 second".into()));
        }
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
            lock_timeout: table.seconds(flags.lock_timeout.as_ref(), "COLIBRI_LOCK_TIMEOUT", 300)?,
            fresh_for: table.seconds(flags.fresh_for.as_ref(), "COLIBRI_FRESH_FOR", 300)?,
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
pub const SETTING_KEYS: [&str; 11] = [
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
    "BASTILLE_CONFIG",
];

fn load_provider_env(path: &Path) -> Result<(BTreeMap<String, Secret>, bool)> {
    let Some(bytes) = kvfile::read_private(path, &crate::hostfile::PROVIDER_ENV)? else {
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
