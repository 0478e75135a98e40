//! Request handling: routing, the knobs, the login rate limiter, bearer-token checks and the
//! request log. JSON bodies come from [`crate::wire`]; the HTTP framing from [`crate::http`].
//!
//! Each request re-reads `knobs.json`, brings the vault up to date with it, decides the answer,
//! appends one line to `requests.jsonl`, and only then sleeps (a knob delay) and answers, so the
//! log shows a request even when the client gives up waiting.

use std::collections::HashSet;
use std::fs::File;
use std::io::{BufReader, Write as _};
use std::net::TcpStream;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use rustls::{ServerConfig, ServerConnection, StreamOwned};
use serde_json::{Value, json};

use crate::account::{Account, Vault};
use crate::crypto::{hmac_sha256, hmac_sha256_verify};
use crate::http::{Request, Response, read_request, write_response};
use crate::knobs::{CustomFault, Fault, Knobs, Preset, RateLimit};
use crate::spec::Spec;
use crate::wire;

const DEFAULT_TOKEN_LIFETIME_SECS: u64 = 7200;
/// How long an idle keep-alive connection may hold its thread.
const IDLE_TIMEOUT: Duration = Duration::from_secs(300);

pub struct Server {
    pub dir: PathBuf,
    pub url: String,
    pub spec: Spec,
    pub account: Account,
    pub vault: Mutex<Vault>,
    limiter: Mutex<Limiter>,
    log: Mutex<File>,
    /// `deviceIdentifier`s that have logged in successfully (Vaultwarden's devices table, for
    /// the one user): a device is new until its first successful login.
    known_devices: Mutex<HashSet<String>>,
}

/// What to do with one request once it is decided.
enum Answer {
    Respond(Response),
    /// Close the connection without a response.
    Drop,
}

struct Decision {
    answer: Answer,
    delay: Duration,
    /// For the log: the token request's `grant_type`.
    grant_type: Option<String>,
    /// For the log: the token request's `deviceIdentifier`, and whether that device was new.
    device: Option<(String, bool)>,
}

impl Decision {
    fn now(answer: Answer) -> Self {
        Self { answer, delay: Duration::ZERO, grant_type: None, device: None }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Route {
    Token,
    Config,
    Version,
    Sync,
    RevisionDate,
    OrgCollections,
    UserKeyId,
    NotFound,
}

impl Route {
    fn of(method: &str, path: &str) -> Self {
        let path = path.trim_end_matches('/');
        match (method, path) {
            ("POST", "/identity/connect/token") => Route::Token,
            ("GET", "/api/config") => Route::Config,
            ("GET", "/api/version") => Route::Version,
            ("POST", "/api/accounts/key-management/user-key-id") => Route::UserKeyId,
            ("GET", "/api/sync") => Route::Sync,
            ("GET", "/api/accounts/revision-date") => Route::RevisionDate,
            ("GET", p) if is_org_collections(p) => Route::OrgCollections,
            _ => Route::NotFound,
        }
    }

    fn fault(self, knobs: &Knobs) -> Option<&Fault> {
        match self {
            Route::Token => knobs.token.as_ref(),
            Route::Config => knobs.config.as_ref(),
            Route::Version => knobs.version.as_ref(),
            Route::UserKeyId => knobs.user_key_id.as_ref(),
            Route::Sync => knobs.sync.as_ref(),
            Route::RevisionDate => knobs.revision_date.as_ref(),
            Route::OrgCollections => knobs.org_collections.as_ref(),
            Route::NotFound => None,
        }
    }
}

fn is_org_collections(path: &str) -> bool {
    path.strip_prefix("/api/organizations/")
        .and_then(|rest| rest.strip_suffix("/collections"))
        .is_some_and(|id| !id.is_empty() && !id.contains('/'))
}

impl Server {
    pub fn new(dir: PathBuf, url: String, spec: Spec, account: Account, vault: Vault) -> Self {
        let log = File::options()
            .create(true)
            .append(true)
            .open(dir.join("requests.jsonl"))
            .expect("DIR is writable: ca.pem was written there");
        Self {
            dir,
            url,
            spec,
            account,
            vault: Mutex::new(vault),
            limiter: Mutex::new(Limiter::default()),
            log: Mutex::new(log),
            known_devices: Mutex::new(HashSet::new()),
        }
    }

    /// Serve one TLS connection until the client closes it.
    pub fn serve(self: &Arc<Self>, tcp: TcpStream, tls: Arc<ServerConfig>) {
        let _ = tcp.set_read_timeout(Some(IDLE_TIMEOUT));
        let _ = tcp.set_nodelay(true);
        let Ok(conn) = ServerConnection::new(tls) else { return };
        let mut stream = BufReader::new(StreamOwned::new(conn, tcp));
        // Handshake failures, resets and idle timeouts all just end the connection.
        while let Ok(Some(request)) = read_request(&mut stream) {
            let decision = self.decide(&request);
            self.log(&request, &decision);
            std::thread::sleep(decision.delay);
            let Answer::Respond(response) = decision.answer else { return };
            let written = write_response(stream.get_mut(), &response, request.keep_alive);
            if written.is_err() || !request.keep_alive {
                return;
            }
        }
    }

    fn decide(&self, request: &Request) -> Decision {
        let knobs = match Knobs::load(&self.dir) {
            Ok(knobs) => knobs,
            Err(e) => return self.broken_knobs(&e),
        };
        if let Err(e) = self.refresh_vault(&knobs) {
            return self.broken_knobs(&format!("knobs.json items/collections: {e}"));
        }
        let route = Route::of(&request.method, &request.path);
        let form = (route == Route::Token).then(|| form(&request.body));
        let fault = route.fault(&knobs);
        let delay = match fault {
            Some(Fault::Custom(c)) => Duration::try_from_secs_f64(c.delay_secs).unwrap_or_default(),
            _ => Duration::ZERO,
        };
        let forced = match fault {
            Some(Fault::Preset(p)) => Some(preset_answer(*p, route)),
            Some(Fault::Custom(c)) if c.status.is_some() => Some(custom_answer(c, route)),
            _ => None,
        };
        let device = form.as_deref().and_then(|f| lookup(f, "deviceIdentifier")).map(|d| {
            let known = self.known_devices.lock().unwrap_or_else(PoisonError::into_inner).contains(d);
            (d.to_owned(), !known)
        });
        let reported = knobs.server_version.clone().unwrap_or_default();
        let answer = forced.unwrap_or_else(|| {
            Answer::Respond(match route {
                Route::Token => self.token(form.as_deref().unwrap_or_default(), &knobs),
                Route::Config => self.document(
                    "config",
                    wire::config_response(reported.api.as_deref().unwrap_or(wire::API_VERSION)),
                    &knobs,
                ),
                Route::Version => Response::json(
                    200,
                    &wire::version_response(
                        reported.vaultwarden.as_deref().unwrap_or(wire::VAULTWARDEN_VERSION),
                    ),
                ),
                Route::NotFound => not_found(),
                Route::Sync | Route::RevisionDate | Route::OrgCollections | Route::UserKeyId => {
                    self.authenticated(route, request, &knobs)
                }
            })
        });
        let grant_type = form.as_deref().and_then(|f| lookup(f, "grant_type")).map(str::to_owned);
        Decision { answer, delay, grant_type, device }
    }

    fn broken_knobs(&self, error: &str) -> Decision {
        eprintln!("colibri-bwserver ({}): {error}", self.url);
        Decision::now(Answer::Respond(Response::text(
            500,
            "text/plain; charset=utf-8",
            &format!("colibri-bwserver: {error}"),
        )))
    }

    fn refresh_vault(&self, knobs: &Knobs) -> Result<(), String> {
        let collections = knobs.collections.as_deref().unwrap_or(&self.spec.collections);
        let items = knobs.items.as_deref().unwrap_or(&self.spec.items);
        let mut vault = self.vault.lock().unwrap_or_else(PoisonError::into_inner);
        vault.update(self.account.org_id, collections, items, SystemTime::now()).map(|_| ())
    }

    /// The API-key grant, checked in Vaultwarden's order (rate limit before credentials, so
    /// failed logins count too).
    fn token(&self, form: &[(String, String)], knobs: &Knobs) -> Response {
        let bad = |message: &str| Response::json(400, &wire::error_body(message, ""));
        let field = |name: &str| lookup(form, name).filter(|v| !v.is_empty());
        if field("grant_type") != Some("client_credentials") {
            return bad("colibri-bwserver only supports grant_type=client_credentials");
        }
        for (name, message) in [
            ("client_id", "client_id cannot be blank"),
            ("client_secret", "client_secret cannot be blank"),
            ("scope", "scope cannot be blank"),
            ("deviceIdentifier", "device_identifier cannot be blank"),
            ("deviceName", "device_name cannot be blank"),
            ("deviceType", "device_type cannot be blank"),
        ] {
            if field(name).is_none() {
                return bad(message);
            }
        }
        let allowed = self
            .limiter
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .allow(knobs.rate_limit(), Instant::now());
        if !allowed {
            return Response::json(429, &wire::error_body("Too many login requests", ""));
        }
        if field("scope") != Some("api") {
            return bad("Scope not supported");
        }
        let client_id = field("client_id").unwrap_or_default();
        if !client_id.starts_with("user.") {
            return bad("Malformed client_id");
        }
        if client_id != self.account.client_id {
            return bad("Invalid client_id");
        }
        if field("client_secret") != Some(self.account.client_secret.as_str()) {
            return bad("Incorrect client_secret");
        }
        // Vaultwarden mails the owner about a new device; with REQUIRE_DEVICE_EMAIL a failed
        // mail fails the login, and the device stays new (identity.rs, user_api_key_login).
        let device = field("deviceIdentifier").unwrap_or_default();
        let mut known = self.known_devices.lock().unwrap_or_else(PoisonError::into_inner);
        if knobs.require_device_email && !known.contains(device) {
            return bad("Could not send login notification email. Please contact your administrator.");
        }
        known.insert(device.to_owned());
        drop(known);
        let lifetime = knobs.token_lifetime_secs.unwrap_or(DEFAULT_TOKEN_LIFETIME_SECS);
        let mut claims = wire::token_claims(&self.account, &self.url, unix_now(), lifetime);
        self.omit("jwt", &mut claims, knobs);
        let token = self.sign(&claims);
        self.document("token", wire::token_response(&self.account, &token, lifetime), knobs)
    }

    fn authenticated(&self, route: Route, request: &Request, knobs: &Knobs) -> Response {
        if !self.bearer_is_valid(request) {
            return Response::json(401, &wire::error_body("Unauthorized", ""));
        }
        let vault = self.vault.lock().unwrap_or_else(PoisonError::into_inner);
        let (section, doc) = match route {
            Route::Sync => ("sync", wire::sync_response(&self.account, &vault)),
            Route::RevisionDate => ("revision_date", wire::revision_date(&vault)),
            Route::OrgCollections => {
                let wanted = format!("/api/organizations/{}/collections", self.account.org_id);
                if request.path.trim_end_matches('/') != wanted {
                    return not_found();
                }
                ("org_collections", wire::org_collections(&self.account, &vault))
            }
            // Accepted, as Vaultwarden does after PR #7693 (merged after 1.37.3); not reported
            // back, so bw 2026.9.0 posts it after every unlock.
            Route::UserKeyId => return Response::text(200, "application/json; charset=utf-8", ""),
            Route::Token | Route::Config | Route::Version | Route::NotFound => {
                unreachable!("routed elsewhere")
            }
        };
        drop(vault);
        self.document(section, doc, knobs)
    }

    /// A 200 JSON response, minus the fields `knobs.json` says to omit.
    fn document(&self, section: &str, mut doc: Value, knobs: &Knobs) -> Response {
        self.omit(section, &mut doc, knobs);
        Response::json(200, &doc)
    }

    fn omit(&self, section: &str, doc: &mut Value, knobs: &Knobs) {
        for path in wire::omit_fields(section, doc, &knobs.omit_fields) {
            eprintln!("colibri-bwserver: omit_fields: {path} matched nothing (url {})", self.url);
        }
    }

    /// An HS256 JWT. bw only decodes it (§5); the signature is for this server's own check.
    fn sign(&self, claims: &Value) -> String {
        let header = B64URL.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
        let payload = B64URL.encode(claims.to_string());
        let signing_input = format!("{header}.{payload}");
        let signature = hmac_sha256(&self.account.token_key, signing_input.as_bytes());
        format!("{signing_input}.{}", B64URL.encode(signature))
    }

    /// A token this run signed and that has not expired, as Vaultwarden requires.
    fn bearer_is_valid(&self, request: &Request) -> bool {
        let Some(token) = request.header("authorization").and_then(|h| h.strip_prefix("Bearer ")) else {
            return false;
        };
        let Some((signing_input, signature)) = token.trim().rsplit_once('.') else {
            return false;
        };
        let Ok(signature) = B64URL.decode(signature) else { return false };
        if !hmac_sha256_verify(&self.account.token_key, signing_input.as_bytes(), &signature) {
            return false;
        }
        let claims = signing_input
            .split_once('.')
            .and_then(|(_, p)| B64URL.decode(p).ok())
            .and_then(|p| serde_json::from_slice::<Value>(&p).ok());
        // A token issued with `jwt.exp` omitted never expires.
        claims.is_some_and(|c| c["exp"].as_u64().is_none_or(|exp| exp > unix_now()))
    }

    fn log(&self, request: &Request, decision: &Decision) {
        let mut entry = json!({
            "time": humantime::format_rfc3339_millis(SystemTime::now()).to_string(),
            "method": request.method,
            "path": request.path,
        });
        match &decision.answer {
            Answer::Respond(r) => entry["status"] = json!(r.status),
            Answer::Drop => entry["dropped"] = json!(true),
        }
        if let Some(grant_type) = &decision.grant_type {
            entry["grant_type"] = json!(grant_type);
        }
        if let Some((device, new)) = &decision.device {
            entry["device_identifier"] = json!(device);
            entry["new_device"] = json!(new);
        }
        if request.header("authorization").is_some() {
            entry["authorization"] = json!(true);
        }
        if !decision.delay.is_zero() {
            entry["delay_secs"] = json!(decision.delay.as_secs_f64());
        }
        let mut line = entry.to_string();
        line.push('\n');
        let mut log = self.log.lock().unwrap_or_else(PoisonError::into_inner);
        let _ = log.write_all(line.as_bytes());
    }
}

fn form(body: &[u8]) -> Vec<(String, String)> {
    form_urlencoded::parse(body).into_owned().collect()
}

fn lookup<'a>(form: &'a [(String, String)], name: &str) -> Option<&'a str> {
    form.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

fn not_found() -> Response {
    Response::text(404, "text/plain; charset=utf-8", "Not Found")
}

fn preset_answer(preset: Preset, route: Route) -> Answer {
    let json = |status: u16, message: &str, error: &str| {
        Answer::Respond(Response::json(status, &wire::error_body(message, error)))
    };
    let text = |status: u16, content_type: &str, body: &str| {
        Answer::Respond(Response::text(status, content_type, body))
    };
    match preset {
        Preset::IncorrectClientSecret => json(400, "Incorrect client_secret", ""),
        Preset::InvalidClientId => json(400, "Invalid client_id", ""),
        Preset::InvalidClient => json(400, "Incorrect client_secret", "invalid_client"),
        Preset::RateLimited => json(429, default_message(429, route), ""),
        Preset::InternalError => json(500, "Internal error", ""),
        Preset::InternalErrorHtml => text(
            500,
            "text/html; charset=utf-8",
            "<html><body><h1>500 Internal Server Error</h1></body></html>",
        ),
        Preset::ServiceUnavailable => text(503, "text/plain; charset=utf-8", "Service Unavailable"),
        Preset::Unauthorized => json(401, "Unauthorized", ""),
        Preset::NotFound => Answer::Respond(not_found()),
        Preset::DropConnection => Answer::Drop,
    }
}

fn custom_answer(fault: &CustomFault, route: Route) -> Answer {
    let status = fault.status.unwrap_or(500);
    if let Some(body) = &fault.body {
        let content_type = fault.content_type.as_deref().unwrap_or("text/plain; charset=utf-8");
        return Answer::Respond(Response::text(status, content_type, body));
    }
    let message = fault.message.as_deref().unwrap_or(default_message(status, route));
    let error = fault.error.as_deref().unwrap_or("");
    let mut response = Response::json(status, &wire::error_body(message, error));
    if let Some(content_type) = &fault.content_type {
        response.content_type.clone_from(content_type);
    }
    Answer::Respond(response)
}

fn default_message(status: u16, route: Route) -> &'static str {
    match status {
        400 if route == Route::Token => "Incorrect client_secret",
        400 => "Bad request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        429 if route == Route::Token => "Too many login requests",
        429 => "Too many requests",
        503 => "Service Unavailable",
        _ => "Internal error",
    }
}

/// Vaultwarden's login limiter (governor's GCRA with `Quota::with_period(60 s)
/// .allow_burst(10)`): a bucket of `max_burst` that regains one request every `period_secs`.
struct Limiter {
    tokens: f64,
    last: Option<Instant>,
}

impl Default for Limiter {
    fn default() -> Self {
        Self { tokens: f64::INFINITY, last: None }
    }
}

impl Limiter {
    fn allow(&mut self, limit: RateLimit, now: Instant) -> bool {
        if limit.max_burst == 0 {
            return true;
        }
        let burst = f64::from(limit.max_burst);
        let regained = match self.last {
            Some(last) if limit.period_secs > 0.0 => {
                now.duration_since(last).as_secs_f64() / limit.period_secs
            }
            Some(_) => f64::INFINITY,
            None => burst,
        };
        self.tokens = (self.tokens + regained).min(burst);
        self.last = Some(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limiter_allows_a_burst_then_one_per_period() {
        let limit = RateLimit { max_burst: 3, period_secs: 60.0 };
        let mut l = Limiter::default();
        let t0 = Instant::now();
        assert!(l.allow(limit, t0));
        assert!(l.allow(limit, t0));
        assert!(l.allow(limit, t0));
        assert!(!l.allow(limit, t0 + Duration::from_secs(30)));
        assert!(l.allow(limit, t0 + Duration::from_secs(61)));
        assert!(!l.allow(limit, t0 + Duration::from_secs(62)));
        let off = RateLimit { max_burst: 0, period_secs: 60.0 };
        assert!((0..100).all(|_| l.allow(off, t0)));
    }

    #[test]
    fn routes() {
        assert!(Route::of("POST", "/identity/connect/token") == Route::Token);
        assert!(Route::of("GET", "/identity/connect/token") == Route::NotFound);
        assert!(Route::of("GET", "/api/organizations/abc/collections") == Route::OrgCollections);
        assert!(Route::of("GET", "/api/organizations//collections") == Route::NotFound);
        assert!(Route::of("GET", "/api/accounts/profile") == Route::NotFound);
        assert!(Route::of("GET", "/api/version") == Route::Version);
        assert!(Route::of("POST", "/api/accounts/key-management/user-key-id") == Route::UserKeyId);
        assert!(Route::of("GET", "/api/accounts/key-management/user-key-id") == Route::NotFound);
    }
}
