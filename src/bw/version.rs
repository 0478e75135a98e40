//! `bw --version`: which bw colibri-vault would run, for `doctor`.
//!
//! bw creates its app-data dir and `data.json` even for `--version`, so the call runs with a
//! throw-away app-data dir (0700, removed afterwards): asking for the version never touches the
//! real one, which may hold a session. It gets the same from-scratch environment and deadline as
//! every bw call. Only a version number is taken from stdout; nothing else of it is kept.

use std::ffi::OsString;
use std::path::Path;
use std::time::Duration;

use crate::compat::{Parsed, Version};
use crate::sanitize;

/// Runs `program --version` and parses what it prints. The error is a sanitized sentence.
pub fn installed_version(program: &Path, timeout: Duration) -> Result<Parsed, String> {
    let scratch = tempfile::Builder::new()
        .prefix("colibri-vault-bw-version-")
        .tempdir()
        .map_err(|e| format!("could not create a temporary app-data dir: {e}"))?;
    let dir = scratch.path().as_os_str().to_owned();
    let env: [(&str, OsString); 3] = [
        ("PATH", OsString::from(super::FIXED_PATH)),
        ("HOME", dir.clone()),
        ("BITWARDENCLI_APPDATA_DIR", dir),
    ];
    let call =
        super::process::Call { program, args: &["--version"], env: &env, timeout, interruptible: true };
    let out = match super::process::run(&call) {
        Ok(out) => out,
        Err(super::process::RunError::Start(e)) => return Err(format!("could not start it: {e}")),
        Err(super::process::RunError::Timeout) => {
            return Err(format!("`bw --version` did not finish within {} s", timeout.as_secs()));
        }
        Err(super::process::RunError::Interrupted(signal)) => {
            return Err(format!("interrupted by signal {signal}"));
        }
    };
    if !out.status.success() {
        let stderr = sanitize::clean_bytes(&out.stderr, 200);
        return Err(format!("`bw --version` failed ({}): {stderr}", out.status));
    }
    parse(&out.stdout)
}

/// The version in `bw --version`'s output (`2026.6.0\n`).
fn parse(stdout: &[u8]) -> Result<Parsed, String> {
    std::str::from_utf8(stdout).ok().and_then(Version::parse).ok_or_else(|| {
        format!("`bw --version` printed no version number: {}", sanitize::clean_bytes(stdout, 80))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_bws_output_and_refuses_anything_else() {
        assert_eq!(parse(b"2026.6.0\n").unwrap().version, Version::new(2026, 6, 0));
        let e = parse(b"\x1b]0;owned\x07 2026.6.0").unwrap_err();
        assert!(!e.contains('\x1b') && e.contains("\\x1b"), "{e}");
        assert!(parse(b"").is_err());
    }

    #[test]
    fn runs_the_program_in_a_scratch_app_data_dir() {
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("bw");
        let seen = dir.path().join("seen");
        std::fs::write(
            &script,
            format!(
                "#!/bin/sh\nprintf '%s' \"$BITWARDENCLI_APPDATA_DIR\" > {}\necho 2026.9.0\n",
                seen.display()
            ),
        )
        .unwrap();
        std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        let found = installed_version(&script, Duration::from_secs(10)).unwrap();
        assert_eq!(found.version, Version::new(2026, 9, 0));
        let appdata = std::fs::read_to_string(&seen).unwrap();
        assert!(appdata.contains("colibri-vault-bw-version-"), "{appdata}");
        assert!(!Path::new(&appdata).exists(), "the scratch dir is removed");
    }
}
