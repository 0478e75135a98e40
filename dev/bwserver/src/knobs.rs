//! `DIR/knobs.json`: what a test changes while the server runs. Re-read on every request, so a
//! test rewrites it (atomically: write a temp file, rename) and the next request obeys it. A
//! missing file means "behave like a healthy Vaultwarden".

use std::path::Path;

use serde::Deserialize;

use crate::spec::{CollectionSpec, ItemSpec};

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Knobs {
    /// `POST /identity/connect/token`
    #[serde(default)]
    pub token: Option<Fault>,
    /// `GET /api/sync`
    #[serde(default)]
    pub sync: Option<Fault>,
    /// `GET /api/accounts/revision-date`
    #[serde(default)]
    pub revision_date: Option<Fault>,
    /// `GET /api/config`
    #[serde(default)]
    pub config: Option<Fault>,
    /// `GET /api/organizations/{id}/collections`
    #[serde(default)]
    pub org_collections: Option<Fault>,
    /// `GET /api/version`
    #[serde(default)]
    pub version: Option<Fault>,
    /// `POST /api/accounts/key-management/user-key-id` (bw 2026.9.0 posts it after unlocking;
    /// Vaultwarden up to 1.37.3 answers 404: `"not_found"`).
    #[serde(default)]
    pub user_key_id: Option<Fault>,
    /// What the server reports about itself (default: Vaultwarden 1.37.2, API 2026.6.0).
    #[serde(default)]
    pub server_version: Option<ServerVersion>,
    /// As Vaultwarden with `REQUIRE_DEVICE_EMAIL=true` whose mail cannot be sent: a login from a
    /// device that has not logged in successfully before is refused.
    #[serde(default)]
    pub require_device_email: bool,
    /// Vaultwarden's login limiter; absent: its defaults (burst 10, one more every 60 s).
    #[serde(default)]
    pub rate_limit: Option<RateLimit>,
    /// Lifetime of new access tokens (`exp` and `expires_in`); default 7200 like Vaultwarden.
    #[serde(default)]
    pub token_lifetime_secs: Option<u64>,
    /// Fields to drop from the documents the server sends, e.g. `token.AccountKeys` or
    /// `sync.ciphers[].organizationId` (see `wire::omit_fields`).
    #[serde(default)]
    pub omit_fields: Vec<String>,
    /// Replaces the spec's collections.
    #[serde(default)]
    pub collections: Option<Vec<CollectionSpec>>,
    /// Replaces the spec's items.
    #[serde(default)]
    pub items: Option<Vec<ItemSpec>>,
}

/// `server_version`: the strings `/api/version` and `/api/config` report, verbatim.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerVersion {
    /// `/api/version` (Vaultwarden's release).
    #[serde(default)]
    pub vaultwarden: Option<String>,
    /// `version` of `/api/config` (the Bitwarden API release it emulates).
    #[serde(default)]
    pub api: Option<String>,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimit {
    /// Requests allowed at once; 0 turns the limiter off.
    pub max_burst: u32,
    /// One more request is allowed every this many seconds.
    pub period_secs: f64,
}

impl Default for RateLimit {
    /// Vaultwarden's `LOGIN_RATELIMIT_MAX_BURST=10`, `LOGIN_RATELIMIT_SECONDS=60`.
    fn default() -> Self {
        Self { max_burst: 10, period_secs: 60.0 }
    }
}

/// What an endpoint does instead of (or before) its normal answer: a named preset, or the
/// general form.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Fault {
    Preset(Preset),
    Custom(CustomFault),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Preset {
    /// 400 `Incorrect client_secret` (Vaultwarden, wrong secret).
    IncorrectClientSecret,
    /// 400 `Invalid client_id` (Vaultwarden, unknown user).
    InvalidClientId,
    /// 400 with OAuth `"error":"invalid_client"`; bw prints its own message.
    InvalidClient,
    /// 429 with Vaultwarden's body (`Too many login requests` on the token endpoint).
    RateLimited,
    /// 500 `{"message":"Internal error"}`.
    InternalError,
    /// 500 with an HTML body, as a proxy in front of a dead server answers.
    InternalErrorHtml,
    /// 503 with a plain-text body.
    ServiceUnavailable,
    /// 401 (bw retries once, then logs itself out).
    Unauthorized,
    /// 404 with a plain-text body.
    NotFound,
    /// Close the connection without answering.
    DropConnection,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CustomFault {
    /// Sleep this long before answering (whatever the answer is).
    #[serde(default)]
    pub delay_secs: f64,
    /// Answer with this status instead of the normal response. Absent: the normal response.
    #[serde(default)]
    pub status: Option<u16>,
    /// For a JSON error: the message in Vaultwarden's error body (default per status).
    #[serde(default)]
    pub message: Option<String>,
    /// For a JSON error: the OAuth `error` field (default `""`).
    #[serde(default)]
    pub error: Option<String>,
    /// A raw body instead of Vaultwarden's JSON error body.
    #[serde(default)]
    pub body: Option<String>,
    /// Content type of `body` (default `text/plain; charset=utf-8`).
    #[serde(default)]
    pub content_type: Option<String>,
}

impl Knobs {
    /// Read `DIR/knobs.json`. Missing is the default; anything else unreadable is an error the
    /// caller turns into a loud 500.
    pub fn load(dir: &Path) -> Result<Self, String> {
        let path = dir.join("knobs.json");
        match std::fs::read_to_string(&path) {
            Ok(text) => serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Self::default()),
            Err(e) => Err(format!("{}: {e}", path.display())),
        }
    }

    pub fn rate_limit(&self) -> RateLimit {
        self.rate_limit.unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_presets_custom_faults_and_replacements() {
        let k: Knobs = serde_json::from_str(
            r#"{
                "token": "incorrect_client_secret",
                "sync": {"status": 500, "message": "boom", "delay_secs": 0.5},
                "revision_date": {"delay_secs": 3},
                "rate_limit": {"max_burst": 1, "period_secs": 60},
                "omit_fields": ["token.AccountKeys"],
                "items": [{"type": "login", "name": "K", "password": "v"}],
                "user_key_id": "not_found",
                "server_version": {"vaultwarden": "1.35.2", "api": "2025.12.0"},
                "require_device_email": true
            }"#,
        )
        .unwrap();
        assert!(matches!(k.token, Some(Fault::Preset(Preset::IncorrectClientSecret))));
        let Some(Fault::Custom(sync)) = &k.sync else { panic!("custom fault expected") };
        assert_eq!(sync.status, Some(500));
        assert!(matches!(k.revision_date, Some(Fault::Custom(CustomFault { status: None, .. }))));
        assert_eq!(k.rate_limit().max_burst, 1);
        assert_eq!(k.items.unwrap()[0].name, "K");
        assert!(matches!(k.user_key_id, Some(Fault::Preset(Preset::NotFound))));
        assert_eq!(k.server_version.unwrap().vaultwarden.as_deref(), Some("1.35.2"));
        assert!(k.require_device_email);
    }

    #[test]
    fn rejects_unknown_knobs() {
        assert!(serde_json::from_str::<Knobs>(r#"{"tokne": "rate_limited"}"#).is_err());
        assert!(serde_json::from_str::<Knobs>(r#"{"token": "no_such_preset"}"#).is_err());
    }

    #[test]
    fn defaults_to_vaultwarden() {
        let k = Knobs::default();
        assert_eq!(k.rate_limit().max_burst, 10);
        assert!(k.token.is_none() && k.items.is_none());
        assert!(k.user_key_id.is_none() && k.server_version.is_none() && !k.require_device_email);
    }
}
