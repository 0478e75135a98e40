//! Bastille's own settings: where it keeps its jails (`bastille_jailsdir` in `bastille.conf`).
//!
//! `bastille.conf` is a sourced sh file (values refer to each other, e.g.
//! `"${bastille_prefix}/jails"`), so `/bin/sh` reads it, as Bastille's own rc.d script does —
//! as root. So before anything runs, the file is opened without blocking and checked on the
//! opened descriptor (`hostfile::BASTILLE_CONF`): a regular file (never a FIFO or device, which
//! would hang the read), owned by root or the running user, writable by neither group nor others.
//! The bytes checked are the bytes run: they reach `/bin/sh` in its environment, not by name, so
//! the file cannot be swapped in between. The shell gets an empty environment, stdin at
//! /dev/null, its own process group, a deadline ([`DEADLINE`]), and is killed with its group
//! when the deadline passes or colibri-vault receives a terminating signal.
//!
//! It also compares Bastille's layout with colibri-vault's: `COLIBRI_JAIL_ROOT_BASE` with
//! `bastille_jailsdir` ([`base_finding`]) and a jail's `path` in its jail.conf with the tenant's
//! registered root and the base ([`jail_findings`]). `jail enable` and `doctor` show each as a
//! warning saying what to do, not a refusal: either side may be the one to correct, and the hook
//! itself refuses a mismatch at every start, writing nothing.
//!
//! Not for: editing jail.conf files (`jailconf`).

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::bw::process::{self, Call, RunError};
use crate::error::{Error, Result};
use crate::hostfile;
use crate::jailconf::JailPath;
use crate::sanitize::clean;

/// Where Bastille keeps its jails when `bastille.conf` does not say (its shipped default).
pub const DEFAULT_JAILSDIR: &str = "/usr/local/bastille/jails";

/// Longest time `/bin/sh` may take to read `bastille.conf` (Bastille's takes milliseconds).
pub const DEADLINE: Duration = Duration::from_secs(10);

/// Largest `bastille.conf` read (Bastille's is a few KiB; the text travels in the environment).
const LIMIT: u64 = 64 * 1024;

/// The variable that carries the file's text to the shell.
const TEXT_VAR: &str = "COLIBRI_BASTILLE_CONF";

/// Bastille's jails directory as `bastille.conf` at `config` sets it. A missing file, or one that
/// leaves the variable empty, means Bastille's default [`DEFAULT_JAILSDIR`].
pub fn jailsdir(config: &Path) -> Result<PathBuf> {
    let shown = clean(&config.to_string_lossy());
    let rules = hostfile::Rules { limit: LIMIT, ..hostfile::BASTILLE_CONF };
    let Some(text) = hostfile::read(config, &rules)? else {
        return Ok(PathBuf::from(DEFAULT_JAILSDIR));
    };
    if text.contains(&0) {
        return Err(Error::Config(format!("{shown} contains a NUL byte: it is not a sh file")));
    }
    let env = [
        ("PATH", OsString::from("/bin:/usr/bin:/sbin:/usr/sbin")),
        (TEXT_VAR, OsString::from_vec(text.to_vec())),
    ];
    let script = format!(r#"eval "${TEXT_VAR}"; printf %s "$bastille_jailsdir""#);
    let call = Call {
        program: Path::new("/bin/sh"),
        args: &["-c", &script, "sh"],
        env: &env,
        timeout: DEADLINE,
        interruptible: true,
    };
    let output = match process::run(&call) {
        Ok(output) => output,
        Err(RunError::Start(e)) => {
            return Err(Error::Config(format!("could not start /bin/sh to read {shown}: {e}")));
        }
        Err(RunError::Timeout) => {
            return Err(Error::Config(format!(
                "/bin/sh did not finish reading {shown} within {} s and was killed",
                DEADLINE.as_secs()
            )));
        }
        Err(RunError::Interrupted(signal)) => return Err(Error::Interrupted(signal)),
    };
    if !output.status.success() {
        return Err(Error::Config(format!(
            "/bin/sh could not read {shown} ({}): {}",
            output.status,
            short_text(&output.stderr)
        )));
    }
    if output.stdout.is_empty() {
        return Ok(PathBuf::from(DEFAULT_JAILSDIR));
    }
    let dir = PathBuf::from(OsString::from_vec(output.stdout.to_vec()));
    if !dir.is_absolute() {
        return Err(Error::Config(format!(
            "{shown} sets bastille_jailsdir to {}, which is not an absolute path",
            clean(&dir.to_string_lossy())
        )));
    }
    Ok(dir)
}

fn shown(path: &Path) -> String {
    clean(&path.to_string_lossy())
}

/// `COLIBRI_JAIL_ROOT_BASE` against Bastille's `bastille_jailsdir` (read from `config`): a
/// warning when they are not the same place. Jails whose roots still lie under the base work;
/// those that do not are in [`jail_findings`].
pub fn base_finding(base: &Path, jailsdir: &Path, config: &Path) -> Option<String> {
    (!crate::host_state::same_place(base, jailsdir)).then(|| {
        format!(
            "COLIBRI_JAIL_ROOT_BASE {} is not Bastille's jails directory {} (bastille_jailsdir in {}); \
             jail roots must lie under the base: set COLIBRI_JAIL_ROOT_BASE={} in the provider env",
            shown(base),
            shown(jailsdir),
            shown(config),
            shown(jailsdir)
        )
    })
}

/// A jail's `path` in its jail.conf (`conf`) against the tenant's registered root (if any) and
/// the base: what the hook will compare at every start, found before the start. Each is a
/// warning saying what to do; none is a refusal, since either side may be the one to correct
/// (and the hook refuses a mismatch by itself, writing nothing).
pub fn jail_findings(
    conf: &Path,
    jail: &str,
    path: &JailPath,
    base: &Path,
    root: Option<&Path>,
) -> Vec<String> {
    let jail = clean(jail);
    let value = match path {
        JailPath::Unset => {
            return vec![format!(
                "{} sets no path for jail {jail}: the hook compares the jail's ${{path}} with the registered root",
                shown(conf)
            )];
        }
        JailPath::Computed(statement) => {
            return vec![format!(
                "{}: `{}` for jail {jail} is worked out by jail(8); colibri-vault cannot compare it with the registered root before the jail starts",
                shown(conf),
                clean(statement)
            )];
        }
        JailPath::Literal(value) => PathBuf::from(value),
    };
    let mut out = Vec::new();
    let normalized = crate::config::normalize_dir(&value);
    if let Some(root) = root
        && normalized != crate::config::normalize_dir(root)
    {
        out.push(format!(
            "{} sets path = {} for jail {jail}, but tenant {jail} is registered with root {}: the hook will refuse every start of the jail. Correct the wrong one: colibri-vault tenant set {jail} --root {}, or the path line in {}",
            shown(conf),
            shown(&value),
            shown(root),
            shown(&normalized),
            shown(conf)
        ));
    }
    if crate::tenant::validate_root(&value, base).is_err() {
        out.push(format!(
            "{} sets path = {} for jail {jail}, which is not a normalized path strictly under COLIBRI_JAIL_ROOT_BASE {}: no tenant can be registered there and colibri-vault will never write there. Set COLIBRI_JAIL_ROOT_BASE in the provider env to the directory Bastille keeps its jails in",
            shown(conf),
            shown(&value),
            shown(base)
        ));
    }
    out
}

/// A short, single-line, printable rendering of a child's stderr for an error message.
fn short_text(bytes: &[u8]) -> String {
    const MAX: usize = 300;
    let text = String::from_utf8_lossy(bytes);
    let mut out: String =
        text.trim().chars().map(|c| if c.is_control() { ' ' } else { c }).take(MAX).collect();
    if text.trim().chars().count() > MAX {
        out.push('…');
    }
    if out.is_empty() {
        out.push_str("no message");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn bastille_jailsdir_sources_the_settings_file() {
        let dir = tempfile::tempdir().unwrap();
        let conf = dir.path().join("bastille.conf");
        fs::write(
            &conf,
            "bastille_prefix=\"/tank/bastille\"   ## default\n\
             bastille_jailsdir=\"${bastille_prefix}/jails\"\n\
             [ -n \"$nothing\" ] && echo never\n",
        )
        .unwrap();
        fs::set_permissions(&conf, fs::Permissions::from_mode(0o644)).unwrap();
        assert_eq!(jailsdir(&conf).unwrap(), Path::new("/tank/bastille/jails"));

        let missing = dir.path().join("absent.conf");
        assert_eq!(jailsdir(&missing).unwrap(), Path::new(DEFAULT_JAILSDIR));

        fs::write(&conf, "bastille_prefix=/x\n").unwrap();
        assert_eq!(jailsdir(&conf).unwrap(), Path::new(DEFAULT_JAILSDIR));

        fs::write(&conf, "bastille_jailsdir=relative/jails\n").unwrap();
        let err = jailsdir(&conf).unwrap_err();
        assert!(err.to_string().contains("not an absolute path"), "{err}");

        fs::write(&conf, "if then fi (\n").unwrap();
        let err = jailsdir(&conf).unwrap_err();
        assert!(err.to_string().contains("/bin/sh could not read"), "{err}");

        fs::write(&conf, "bastille_jailsdir=/j\n").unwrap();
        fs::set_permissions(&conf, fs::Permissions::from_mode(0o664)).unwrap();
        let err = jailsdir(&conf).unwrap_err();
        assert_eq!(err.exit_code(), 77);
        assert!(err.to_string().contains("chmod go-w"), "{err}");
    }

    #[test]
    fn the_shell_sees_the_checked_text_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let conf = dir.path().join("bastille.conf");
        // Quotes, `$`, backslashes and newlines in the text survive the trip.
        fs::write(&conf, "a='x \"$y\" \\\\ '\nbastille_jailsdir=\"/j/$HOME/${a%% *}\"\n").unwrap();
        fs::set_permissions(&conf, fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(jailsdir(&conf).unwrap(), Path::new("/j//x"));
    }
}
