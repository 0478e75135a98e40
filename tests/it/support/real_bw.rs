//! Finding the real Bitwarden CLI for the tiers that run it.
//!
//! In CI (`CI=true`) the real bw must be there (`.ci/run` installs it from npm): its absence
//! fails the test. Elsewhere a missing bw is announced loudly on stderr and the caller returns
//! early; it is never silent.

use std::path::PathBuf;

/// The real `bw`: `$REAL_BW`, else `bw` on this process's `PATH`.
pub fn find() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("REAL_BW") {
        return Some(PathBuf::from(p));
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path).map(|d| d.join("bw")).find(|p| p.is_file())
}

/// The real bw, or `None` after a loud notice (and a failure in CI).
#[track_caller]
pub fn require(what: &str) -> Option<PathBuf> {
    let found = find();
    if found.is_none() {
        super::skip(what, "real bw not installed: npm install -g @bitwarden/cli");
    }
    found
}

/// Where `.ci/run` installs the other tested bw releases: each under its own npm prefix, so the
/// `bw` on PATH stays the recommended one.
pub const RELEASES_DIR: &str = "/opt/colibri-test";

/// A specific bw release (one of `compat::BW_TESTED` besides the recommended one):
/// `$COLIBRI_TEST_BW_<version with _>` (e.g. `COLIBRI_TEST_BW_2026_9_0`), else
/// `/opt/colibri-test/bw-<version>/bin/bw`, checked with `--version`. `None` after a loud
/// notice, a failure under `CI=true`.
#[track_caller]
pub fn require_release(what: &str, version: &str) -> Option<PathBuf> {
    let var = format!("COLIBRI_TEST_BW_{}", version.replace('.', "_"));
    let path = std::env::var_os(&var)
        .map_or_else(|| PathBuf::from(format!("{RELEASES_DIR}/bw-{version}/bin/bw")), PathBuf::from);
    let reported = std::process::Command::new(&path)
        .arg("--version")
        .env("BITWARDENCLI_APPDATA_DIR", std::env::temp_dir().join("colibri-test-bw-version"))
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned());
    if reported.as_deref() == Some(version) {
        return Some(path);
    }
    super::skip(
        what,
        &format!(
            "bw {version} not at {} (${var}); install it with: npm install -g --prefix {RELEASES_DIR}/bw-{version} @bitwarden/cli@{version}",
            path.display()
        ),
    );
    None
}

/// The keys of bw's `data.json` that still hold a credential: an API client secret or id, or
/// an access or refresh token, with a non-null value. After `bw logout` the real bw keeps
/// these keys with `null` values, so the check is on values, not names.
pub fn credentials_in(data_json: &str) -> Vec<String> {
    fn walk(value: &serde_json::Value, path: &str, found: &mut Vec<String>) {
        if let Some(map) = value.as_object() {
            for (key, inner) in map {
                let here = format!("{path}/{key}");
                let sensitive = ["apiKeyClientSecret", "apiKeyClientId", "accessToken", "refreshToken"]
                    .iter()
                    .any(|k| key.contains(k));
                if sensitive && !inner.is_null() {
                    found.push(here.clone());
                }
                walk(inner, &here, found);
            }
        }
    }
    let mut found = Vec::new();
    match serde_json::from_str::<serde_json::Value>(data_json) {
        Ok(value) => walk(&value, "", &mut found),
        Err(_) => found.push("(data.json is not JSON)".into()),
    }
    found
}

#[cfg(test)]
mod tests {
    #[test]
    fn null_credentials_do_not_count() {
        let logged_in =
            r#"{"user_1":{"token_apiKeyClientSecret":"s","token_accessToken":"jwt"},"global":{"x":1}}"#;
        assert_eq!(super::credentials_in(logged_in).len(), 2);
        let logged_out = r#"{"user_1_token_apiKeyClientSecret":null,"user_1_token_accessToken":null}"#;
        assert!(super::credentials_in(logged_out).is_empty());
    }
}
