//! What the Bitwarden-compatible server says about itself, for `doctor`: `GET /api/version`
//! (Vaultwarden's release, `"1.37.2"`) and `GET /api/config` (`server.name`, `"Vaultwarden"`,
//! and `version`, the Bitwarden API release it emulates, `"2026.6.0"`).
//!
//! Guarantees: both requests are unauthenticated GETs (no credential, cookie or token is ever
//! sent; a `BW_SERVER` carrying a user name or password is refused, not contacted); https only,
//! no redirect followed, no proxy (bw gets none either); each request is bounded by a deadline
//! and its answer by a size cap; the server is trusted the way bw trusts it, Mozilla's roots
//! (which Node bundles) plus the certificates in `NODE_EXTRA_CA_CERTS`; and everything the
//! server says is parsed or sanitized before it is shown. Not for: talking to the vault (bw does
//! that).

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use ureq::tls::{Certificate, PemItem, RootCerts, TlsConfig};

use crate::compat::{Parsed, Version};
use crate::sanitize;

/// The deadline of each request.
pub const TIMEOUT: Duration = Duration::from_secs(10);
/// The most of an answer read.
const MAX_BODY: u64 = 64 * 1024;
/// The most of a `NODE_EXTRA_CA_CERTS` file read.
const MAX_CA_FILE: u64 = 4 * 1024 * 1024;
/// Longest server-provided text shown.
const MAX_TEXT: usize = 80;

/// The server's own description, every string sanitized.
#[derive(Debug, Default)]
pub struct ServerInfo {
    /// `server.name` of `/api/config` (`Vaultwarden`); `None` when absent (Bitwarden's own server).
    pub name: Option<String>,
    /// `/api/version`, as the server wrote it (sanitized), when it answered one.
    pub version_text: Option<String>,
    /// `version_text` parsed.
    pub version: Option<Parsed>,
    /// `version` of `/api/config`: the Bitwarden API release the server emulates.
    pub api_version: Option<Version>,
}

impl ServerInfo {
    pub fn is_vaultwarden(&self) -> bool {
        self.name.as_deref() == Some("Vaultwarden")
    }
}

/// Asks `server` (the `BW_SERVER` URL) about itself. Errors are sanitized sentences.
pub fn query(server: &str, ca_file: Option<&Path>, timeout: Duration) -> Result<ServerInfo, String> {
    let base = base_url(server)?;
    let agent = agent(ca_file, timeout)?;
    let config = get(&agent, &format!("{base}/api/config"))?;
    let version = get(&agent, &format!("{base}/api/version"))?;
    let mut info = ServerInfo::default();
    if let Some(body) = config {
        let value: serde_json::Value = serde_json::from_str(&body).map_err(|_| {
            format!("{base}/api/config did not answer JSON: is BW_SERVER a Bitwarden server?")
        })?;
        info.name = value["server"]["name"].as_str().map(|n| sanitize::sanitize(n, MAX_TEXT));
        info.api_version = value["version"].as_str().and_then(Version::parse).map(|p| p.version);
    }
    if let Some(body) = version {
        // A JSON string; a server that answers something else gets it shown, sanitized.
        let text = serde_json::from_str::<String>(&body).unwrap_or(body);
        info.version = Version::parse(&text);
        info.version_text = Some(sanitize::sanitize(text.trim(), MAX_TEXT));
    }
    Ok(info)
}

/// `server` without a trailing `/`, refused unless it is a plain `https://` URL.
fn base_url(server: &str) -> Result<&str, String> {
    let base = server.trim_end_matches('/');
    let Some(rest) = base.strip_prefix("https://") else {
        return Err("BW_SERVER is not an https:// URL".into());
    };
    let authority = rest.split('/').next().unwrap_or_default();
    if authority.contains('@') {
        return Err("BW_SERVER contains a user name or password; remove it (bw needs none there)".into());
    }
    if authority.is_empty() || base.contains(['?', '#']) || base.chars().any(|c| c.is_control() || c == ' ') {
        return Err(format!("BW_SERVER is not a usable URL: {}", sanitize::sanitize(base, MAX_TEXT)));
    }
    Ok(base)
}

fn agent(ca_file: Option<&Path>, timeout: Duration) -> Result<ureq::Agent, String> {
    let mut roots: Vec<Certificate<'static>> =
        webpki_root_certs::TLS_SERVER_ROOT_CERTS.iter().map(|c| Certificate::from_der(c.as_ref())).collect();
    if let Some(path) = ca_file {
        roots.extend(extra_certs(path)?);
    }
    let tls = TlsConfig::builder().root_certs(RootCerts::Specific(Arc::new(roots))).build();
    let config = ureq::Agent::config_builder()
        .tls_config(tls)
        .https_only(true)
        .max_redirects(0)
        .proxy(None)
        .timeout_global(Some(timeout))
        .http_status_as_error(false)
        .user_agent(concat!("colibri-vault/", env!("CARGO_PKG_VERSION"), " doctor"))
        .build();
    Ok(config.into())
}

/// The certificates of a `NODE_EXTRA_CA_CERTS` PEM file.
fn extra_certs(path: &Path) -> Result<Vec<Certificate<'static>>, String> {
    use std::io::Read as _;
    let fail = |e: &dyn std::fmt::Display| format!("NODE_EXTRA_CA_CERTS {}: {e}", path.display());
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(MAX_CA_FILE).read_to_end(&mut bytes))
        .map_err(|e| fail(&e))?;
    let mut certs = Vec::new();
    for item in ureq::tls::parse_pem(&bytes) {
        if let PemItem::Certificate(cert) = item.map_err(|e| fail(&e))? {
            certs.push(cert);
        }
    }
    if certs.is_empty() {
        return Err(fail(&"holds no PEM certificate"));
    }
    Ok(certs)
}

/// The body of a 200 answer; `None` for a 404 (an endpoint this server does not have).
fn get(agent: &ureq::Agent, url: &str) -> Result<Option<String>, String> {
    let shown = sanitize::sanitize(url, 200);
    let mut response = agent
        .get(url)
        .header("Accept", "application/json")
        .call()
        .map_err(|e| format!("could not GET {shown}: {}", sanitize::sanitize(&e.to_string(), 300)))?;
    match response.status().as_u16() {
        200 => {}
        404 => return Ok(None),
        status => return Err(format!("GET {shown} answered HTTP {status}")),
    }
    let body = response.body_mut().with_config().limit(MAX_BODY).read_to_string().map_err(|e| {
        format!("could not read the answer of {shown}: {}", sanitize::sanitize(&e.to_string(), 300))
    })?;
    Ok(Some(body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_https_urls_are_contacted() {
        assert_eq!(base_url("https://vault.example.org/").unwrap(), "https://vault.example.org");
        assert_eq!(base_url("https://h:8443/vault").unwrap(), "https://h:8443/vault");
        for bad in [
            "http://vault.example.org",
            "https://user:pw@vault.example.org",
            "https://token@vault.example.org/x",
            "https://",
            "https://h/?x=1",
            "https://h/#f",
            "https://h/\u{1b}[2J",
        ] {
            let e = base_url(bad).unwrap_err();
            assert!(!e.contains("pw@") && !e.contains('\u{1b}'), "{e}");
        }
    }

    #[test]
    fn a_missing_or_empty_ca_file_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("none.pem");
        assert!(extra_certs(&missing).unwrap_err().contains("none.pem"));
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        assert!(extra_certs(&empty).unwrap_err().contains("no PEM certificate"));
    }

    #[test]
    fn nothing_listening_is_an_error_naming_the_url() {
        // Port 9 on loopback: nothing listens; the error names the URL, sanitized.
        let e = query("https://127.0.0.1:9", None, Duration::from_secs(5)).unwrap_err();
        assert!(e.contains("https://127.0.0.1:9/api/config"), "{e}");
    }
}
