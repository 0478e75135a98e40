//! Which `bw` and which Vaultwarden colibri-vault works with: the one place that records the
//! tested bw versions, the tested Vaultwarden, and the known-bad pairs (with how each shows in
//! bw's stderr and what fixes it).
//!
//! bw and Vaultwarden are released independently and drift apart: a bw upgrade can stop logging
//! in to a Vaultwarden that worked the day before. `doctor` compares the versions it finds with
//! these tables; a failed session whose bw stderr matches a known failure says which one it is
//! and what to do (`explain`). Every string here is ours; the versions come from parsing, never
//! from echoing what bw or the server sent. Not for: talking to bw or the server (see `doctor`
//! and `bw`).

use std::fmt;
use std::fmt::Write as _;

/// A `MAJOR.MINOR.PATCH` release number (bw uses `YEAR.MONTH.PATCH`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Version {
    pub major: u32,
    pub minor: u32,
    pub patch: u32,
}

impl Version {
    pub const fn new(major: u32, minor: u32, patch: u32) -> Version {
        Version { major, minor, patch }
    }

    /// Parses `1.37.2`, `v1.37.2`, `2026.6.0\n`, and a development build such as
    /// `1.37.2-3a1b2c3d (main)`, which comes back with `dev = true` (a commit after that
    /// release). Anything else is `None`.
    pub fn parse(text: &str) -> Option<Parsed> {
        let text = text.trim();
        let text = text.strip_prefix('v').unwrap_or(text);
        let end = text.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(text.len());
        let (number, rest) = text.split_at(end);
        let mut parts = number.split('.');
        let mut next = || parts.next().filter(|p| !p.is_empty() && p.len() <= 9)?.parse::<u32>().ok();
        let version = Version::new(next()?, next()?, next()?);
        if parts.next().is_some() {
            return None;
        }
        let dev = match rest.as_bytes().first() {
            None => false,
            Some(b'-' | b'+') => true,
            Some(_) => return None,
        };
        Some(Parsed { version, dev })
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

/// A parsed version and whether it was a development build after that release.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Parsed {
    pub version: Version,
    pub dev: bool,
}

/// The bw releases the test suite runs (`.ci/run` installs each; `tests/it/packaging.rs` checks
/// that it does). The supported range is from the first to the last.
pub const BW_TESTED: [Version; 2] = [Version::new(2026, 6, 0), Version::new(2026, 9, 0)];

/// The bw the documentation tells operators to pin, and the one the whole suite runs:
/// it logs in to every Vaultwarden from 1.35.3 on.
pub const BW_RECOMMENDED: Version = BW_TESTED[0];

/// The Vaultwarden releases bw was recorded against (`../shared/reference/bw-cli.md`) and that
/// `dev/bwserver` imitates.
pub const VAULTWARDEN_TESTED: [Version; 1] = [Version::new(1, 37, 2)];

/// The command that installs the recommended bw from npm (README, pkg-message, messages).
pub fn pin_command() -> String {
    format!("npm install -g @bitwarden/cli@{BW_RECOMMENDED}")
}

/// How to get a supported bw, for messages that find none.
pub fn install_hint() -> String {
    format!(
        "install a supported bw ({}; or build the port security/bitwarden-cli with \
         LICENSES_ACCEPTED+=BITWARDEN) or set COLIBRI_BW to its path",
        pin_command()
    )
}

/// Whether `bw` is within the supported range.
pub fn bw_supported(bw: Version) -> bool {
    BW_TESTED[0] <= bw && bw <= BW_TESTED[BW_TESTED.len() - 1]
}

/// A bw release line that cannot work with a Vaultwarden release line.
pub struct Incompatibility {
    /// Where it was reported.
    pub reference: &'static str,
    /// bw from this release on…
    pub bw_from: Version,
    /// …fails with Vaultwarden up to and including this release.
    pub vaultwarden_through: Version,
    /// What an operator sees.
    pub symptom: &'static str,
    /// Substrings of bw's stderr that identify it (any one of them).
    pub markers: &'static [&'static str],
    /// What to do, in words.
    pub fix: &'static str,
}

/// Known-bad pairs, from dani-garcia/vaultwarden's issue tracker and sources.
pub const KNOWN_BAD: [Incompatibility; 2] = [
    Incompatibility {
        // bw 2026.9.0 records the user key's id after unlocking (POST
        // /api/accounts/key-management/user-key-id); Vaultwarden has no such route until
        // PR #7693, merged after 1.37.3, so the unlock fails.
        reference: "vaultwarden#7750",
        bw_from: Version::new(2026, 9, 0),
        vaultwarden_through: Version::new(1, 37, 3),
        symptom: "bw unlock fails: the server answers HTTP 404 to POST /api/accounts/key-management/user-key-id",
        markers: &["KeyIdBackfillError", "key_id_backfill", "user-key-id"],
        fix: "pin bw to 2026.8.0 or older (tested: 2026.6.0), or upgrade Vaultwarden to a release after 1.37.3",
    },
    Incompatibility {
        // bw 2025.12.0 requires UserDecryptionOptions in the API-key token response, which
        // Vaultwarden sends from 1.35.3 on (PR #6712).
        reference: "vaultwarden#6709, #6729",
        bw_from: Version::new(2025, 12, 0),
        vaultwarden_through: Version::new(1, 35, 2),
        symptom: "bw login fails: \"User Decryption Options are required for client initialization\"",
        markers: &["User Decryption Options are required"],
        fix: "upgrade Vaultwarden to 1.35.3 or later (bw 2025.11.0, the last bw that logs in to it, is not supported by colibri-vault)",
    },
];

/// Vaultwarden's answer when it must mail the owner about a login from a new device
/// (`REQUIRE_DEVICE_EMAIL=true`) and the mail fails (`src/api/identity.rs`, `user_api_key_login`).
pub const NEW_DEVICE_MARKER: &str = "Could not send login notification email";

/// The cause and the fix of a failed bw call whose stderr matches a known failure.
pub fn explain(stderr: &str) -> Option<String> {
    if stderr.contains(NEW_DEVICE_MARKER) {
        return Some(
            "Vaultwarden refused a login from a device it does not know yet: it must e-mail the account \
             owner about new devices (REQUIRE_DEVICE_EMAIL=true) and could not send the mail; fix the \
             server's SMTP settings or unset REQUIRE_DEVICE_EMAIL. colibri-vault logs in as one device \
             (bw's app id, kept in $COLIBRI_STATE_DIR/bw across runs and logouts), so once a login \
             succeeds this no longer happens; keep that directory, since removing it makes the host \
             a new device"
                .to_owned(),
        );
    }
    let bad = KNOWN_BAD.iter().find(|bad| bad.markers.iter().any(|m| stderr.contains(m)))?;
    Some(format!(
        "this is the known incompatibility of bw {} and later with Vaultwarden {} and earlier ({}): {}; \
         fix: {} (`colibri-vault doctor` shows both versions; to pin bw: {}, or set COLIBRI_BW)",
        bad.bw_from,
        bad.vaultwarden_through,
        bad.reference,
        bad.symptom,
        bad.fix,
        pin_command()
    ))
}

/// What `doctor` concludes about a pair of versions.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// A known-bad pair: sessions fail.
    Bad(String),
    /// A pair that may fail (a development build just past a known-bad release).
    Doubtful(String),
}

/// The known-bad pairs that `bw` and Vaultwarden `server` fall into.
pub fn check_pair(bw: Version, server: Parsed) -> Vec<Verdict> {
    KNOWN_BAD
        .iter()
        .filter(|bad| bw >= bad.bw_from && server.version <= bad.vaultwarden_through)
        .map(|bad| {
            let mut text = format!(
                "bw {bw} with Vaultwarden {}: known-bad pair ({}): {}; fix: {}",
                server.version, bad.reference, bad.symptom, bad.fix
            );
            if bad.fix.starts_with("pin bw") {
                let _ = write!(text, " (to pin bw: {}, or set COLIBRI_BW)", pin_command());
            }
            if server.dev && server.version == bad.vaultwarden_through {
                Verdict::Doubtful(format!(
                    "{text} (this Vaultwarden is a development build after {}, which may have the fix)",
                    server.version
                ))
            } else {
                Verdict::Bad(text)
            }
        })
        .collect()
}

/// `1.2.3, 4.5.6`
pub fn list(versions: &[Version]) -> String {
    versions.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(text: &str) -> Version {
        Version::parse(text).unwrap().version
    }

    #[test]
    fn parses_release_and_development_versions() {
        assert_eq!(
            Version::parse("2026.6.0\n"),
            Some(Parsed { version: Version::new(2026, 6, 0), dev: false })
        );
        assert_eq!(Version::parse("v1.37.2").unwrap().version, Version::new(1, 37, 2));
        let dev = Version::parse("1.37.3-3a1b2c3d (main)").unwrap();
        assert_eq!((dev.version, dev.dev), (Version::new(1, 37, 3), true));
        for bad in ["", "1.37", "1.37.2.1", "x1.2.3", "1..2", "1.2.3x", "99999999999.1.1", "\u{1b}[31m1.2.3"]
        {
            assert_eq!(Version::parse(bad), None, "{bad:?}");
        }
        assert!(v("2026.10.0") > v("2026.9.0"), "numeric, not lexical");
    }

    #[test]
    fn the_tables_are_consistent() {
        assert!(BW_TESTED.windows(2).all(|w| w[0] < w[1]), "BW_TESTED is sorted");
        assert!(bw_supported(BW_RECOMMENDED));
        assert!(bw_supported(v("2026.7.0")) && !bw_supported(v("2026.5.0")) && !bw_supported(v("2026.10.0")));
        // The recommended bw logs in to the tested Vaultwarden.
        for server in VAULTWARDEN_TESTED {
            assert!(check_pair(BW_RECOMMENDED, Parsed { version: server, dev: false }).is_empty());
        }
        assert_eq!(pin_command(), "npm install -g @bitwarden/cli@2026.6.0");
    }

    #[test]
    fn known_bad_pairs_are_found_and_good_ones_are_not() {
        let server = |t: &str| Version::parse(t).unwrap();
        let bad = check_pair(v("2026.9.0"), server("1.37.2"));
        assert!(
            matches!(&bad[..], [Verdict::Bad(t)] if t.contains("vaultwarden#7750") && t.contains("pin bw"))
        );
        assert!(check_pair(v("2026.9.0"), server("1.37.4")).is_empty());
        assert!(check_pair(v("2026.8.0"), server("1.37.2")).is_empty());
        assert!(matches!(&check_pair(v("2026.9.0"), server("1.37.3-abc"))[..], [Verdict::Doubtful(_)]));
        // An old server falls into both.
        assert_eq!(check_pair(v("2026.9.0"), server("1.35.2")).len(), 2);
        let old = check_pair(v("2026.6.0"), server("1.35.2"));
        assert!(matches!(&old[..], [Verdict::Bad(t)] if t.contains("1.35.3 or later")));
    }

    #[test]
    fn failures_are_explained_from_bws_real_stderr() {
        // bw 2026.9.0 against dev/bwserver with the user_key_id knob (same text as vaultwarden#7750).
        let stderr = "ERROR bitwarden_user_crypto_management::key_id_backfill: Failed to post the user key id: \
                      Response(ResponseContent { status: 404, message: \"Not Found\" })\n\
                      Error [KeyIdBackfillError]: API call failed during user key id backfill";
        let text = explain(stderr).unwrap();
        assert!(text.contains("vaultwarden#7750") && text.contains("npm install -g @bitwarden/cli@2026.6.0"));
        let text =
            explain("User Decryption Options are required for client initialization. Response is nullish.");
        assert!(text.unwrap().contains("1.35.3 or later"));
        let text = explain("Could not send login notification email. Please contact your administrator.");
        assert!(text.unwrap().contains("REQUIRE_DEVICE_EMAIL"));
        assert_eq!(explain("Incorrect client_secret"), None);
        assert_eq!(explain(""), None);
    }
}
