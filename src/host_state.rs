//! Host-side state never lies inside a jail (DESIGN.md, security invariant 7).
//!
//! What it is for: every path a setting names on the host — the provider env, the tenant
//! database, the state dir (bw's `data.json` holds the API secret while a session runs), the run
//! dir (lock and spool), the secrets dir, `bastille.conf`, the bw and jexec executables and
//! `NODE_EXTRA_CA_CERTS` — is refused (`EX_CONFIG`, 78, naming the setting, the path and why)
//! when it lies inside the jail root base or inside any registered tenant's root. A jail's root
//! user is uid 0, so ownership checks alone pass whatever it planted there.
//!
//! What it guarantees: "inside" is decided on where the path really leads, not on its text: each
//! component is looked at with `lstat` from `/`, symbolic links are followed (a link on the host
//! that leads into a jail is caught, and so is any link the path passes through inside a jail,
//! which the jail could retarget later), `..` is applied to what is really there, trailing
//! slashes do not matter, and components that do not exist yet count as the plain directories
//! creating them would make. The path's text (normalized) is checked too. A path is refused when
//! it, or any place its resolution passes through, equals or lies under the base or a root (in
//! their text or resolved form).
//!
//! Not for: checking what a file is (`hostfile`) or writing beneath a root (`safe_write`).

use std::collections::VecDeque;
use std::ffi::OsString;
use std::path::{Component, Path, PathBuf};

use crate::config::Settings;
use crate::error::{Error, Result};
use crate::sanitize::clean;
use crate::tenant::Store;

/// Most symbolic links followed for one path (the kernel's own limit is of this order).
const MAX_LINKS: usize = 40;

/// One host-side path a setting names.
#[derive(Clone, Debug)]
pub struct Location {
    pub setting: &'static str,
    pub path: PathBuf,
}

impl Location {
    /// Why this place must not be in a jail.
    fn why(&self) -> &'static str {
        match self.setting {
            "COLIBRI_PROVIDER_ENV" => "it holds the vault credentials and colibri-vault's settings",
            "COLIBRI_DB" => "it holds the tenants, their roots and their failure policies",
            "COLIBRI_STATE_DIR" => "bw keeps the API secret in its data.json there while a session runs",
            "COLIBRI_RUN_DIR" => "it holds the host-wide lock and the request spool",
            "COLIBRI_SECRETS_DIR" => "it holds the secrets of every tenant",
            "BASTILLE_CONFIG" => "/bin/sh sources it as root",
            "COLIBRI_BW" => "colibri-vault runs it as root with the vault credentials",
            "COLIBRI_JEXEC" => "colibri-vault runs it as root to enter jails",
            "NODE_EXTRA_CA_CERTS" => "bw trusts it to authenticate the vault server",
            JAIL_CONF => "jail(8) runs its exec.* lines as root",
            _ => "it is host-side state",
        }
    }

    /// What to do about it.
    fn fix(&self) -> &'static str {
        match self.setting {
            JAIL_CONF => {
                "a jail's jail.conf must lie outside its root: register the jail's real root (Bastille's <jailsdir>/<jail>/root), not the directory holding its jail.conf"
            }
            _ => {
                "host-side state must never lie inside a jail: move it outside the jail root base and every tenant's root"
            }
        }
    }
}

/// The name [`check_jail_conf`] gives a jail.conf in its refusals.
const JAIL_CONF: &str = "jail.conf";

/// Every host-side path `settings` name. The bw executable counts when it is a path or found on
/// the fixed PATH; `NODE_EXTRA_CA_CERTS` when set to an absolute path.
pub fn locations(settings: &Settings) -> Vec<Location> {
    let mut out = vec![
        Location { setting: "COLIBRI_PROVIDER_ENV", path: settings.provider_env.clone() },
        Location { setting: "COLIBRI_DB", path: settings.db.clone() },
        Location { setting: "COLIBRI_STATE_DIR", path: settings.state_dir.clone() },
        Location { setting: "COLIBRI_RUN_DIR", path: settings.run_dir.clone() },
        Location { setting: "COLIBRI_SECRETS_DIR", path: settings.secrets_dir.clone() },
        Location { setting: "BASTILLE_CONFIG", path: settings.bastille_config.clone() },
    ];
    if let Some(bw) = crate::bw::find(&settings.bw).filter(|p| p.is_absolute()) {
        out.push(Location { setting: "COLIBRI_BW", path: bw });
    }
    out.push(Location { setting: "COLIBRI_JEXEC", path: settings.jexec.clone() });
    if let Some(ca) = settings.credential("NODE_EXTRA_CA_CERTS").map(|v| PathBuf::from(v.expose()))
        && ca.is_absolute()
    {
        out.push(Location { setting: "NODE_EXTRA_CA_CERTS", path: ca });
    }
    out
}

/// A place that belongs to jails: the jail root base, or one tenant's root.
#[derive(Clone, Debug)]
pub struct JailPlace {
    /// For messages, e.g. "the jail root base /usr/local/bastille/jails (`COLIBRI_JAIL_ROOT_BASE`)".
    what: String,
    /// Its normalized text and where it resolves to.
    forms: Vec<PathBuf>,
}

impl JailPlace {
    fn new(what: String, path: &Path) -> JailPlace {
        let mut forms = vec![lexical(path)];
        let real = trace(path).real;
        if !forms.contains(&real) {
            forms.push(real);
        }
        JailPlace { what, forms }
    }

    /// The jail root base: every jail lives under it.
    pub fn base(settings: &Settings) -> JailPlace {
        let base = &settings.jail_root_base;
        JailPlace::new(
            format!("the jail root base {} (COLIBRI_JAIL_ROOT_BASE)", clean(&base.to_string_lossy())),
            base,
        )
    }

    /// A registered tenant's root. `None` for a root that cannot be one (relative, or `/`, the
    /// host itself): the pipeline refuses such a row anyway.
    pub fn tenant_root(tenant: &str, root: &Path) -> Option<JailPlace> {
        let normalized = lexical(root);
        (root.is_absolute() && normalized != Path::new("/")).then(|| {
            JailPlace::new(
                format!("the root {} of tenant {}", clean(&root.to_string_lossy()), clean(tenant)),
                root,
            )
        })
    }
}

/// Where a path leads: `real` is its resolution, `visited` every place resolving it passed
/// through (each component reached, each link followed), `real` last.
#[derive(Debug, PartialEq, Eq)]
struct Trace {
    real: PathBuf,
    visited: Vec<PathBuf>,
}

/// Resolves `path` (absolute; a relative one is taken from `/`) the way the kernel would, with
/// components that do not exist yet taken as directories.
fn trace(path: &Path) -> Trace {
    let mut pending: VecDeque<OsString> = parts(path).collect();
    let mut real = PathBuf::from("/");
    let mut visited = Vec::new();
    // How many of the last components of `real` do not exist.
    let mut missing = 0usize;
    let mut links = 0usize;
    while let Some(part) = pending.pop_front() {
        if part == ".." {
            real.pop();
            missing = missing.saturating_sub(1);
            continue;
        }
        let next = real.join(&part);
        if missing > 0 {
            missing += 1;
            real = next;
            visited.push(real.clone());
            continue;
        }
        match std::fs::symlink_metadata(&next) {
            Ok(meta) if meta.file_type().is_symlink() && links < MAX_LINKS => {
                links += 1;
                visited.push(next.clone());
                let Ok(target) = std::fs::read_link(&next) else {
                    real = next;
                    continue;
                };
                if target.is_absolute() {
                    real = PathBuf::from("/");
                    missing = 0;
                }
                for (i, p) in parts(&target).enumerate() {
                    pending.insert(i, p);
                }
            }
            Ok(_) => {
                real = next;
                visited.push(real.clone());
            }
            Err(_) => {
                missing = 1;
                real = next;
                visited.push(real.clone());
            }
        }
    }
    Trace { real, visited }
}

/// The normal components of `path` and its `..`s, in order (`.`, `/` and empty parts dropped).
fn parts(path: &Path) -> impl Iterator<Item = OsString> + '_ {
    path.components().filter_map(|c| match c {
        Component::Normal(name) => Some(name.to_owned()),
        Component::ParentDir => Some(OsString::from("..")),
        Component::RootDir | Component::CurDir | Component::Prefix(_) => None,
    })
}

/// `path` normalized as text: absolute, `.` and repeated or trailing slashes dropped, `..`
/// applied to the text.
fn lexical(path: &Path) -> PathBuf {
    let mut out = PathBuf::from("/");
    for part in parts(path) {
        if part == ".." {
            out.pop();
        } else {
            out.push(part);
        }
    }
    out
}

/// A location with where it leads, worked out once for every place it is compared with.
struct Traced<'a> {
    location: &'a Location,
    text: PathBuf,
    trace: Trace,
}

impl Traced<'_> {
    fn new(location: &Location) -> Traced<'_> {
        Traced { location, text: lexical(&location.path), trace: trace(&location.path) }
    }

    /// Whether the location lies inside `place`; if so, the refusal.
    fn refusal(&self, place: &JailPlace) -> Option<Error> {
        let Traced { location, text, trace } = self;
        let inside = |p: &Path| place.forms.iter().any(|j| p.starts_with(j));
        let shown = clean(&location.path.to_string_lossy());
        let how = if inside(text) || inside(&trace.real) {
            if trace.real == *text || !inside(&trace.real) {
                format!("{shown} lies inside")
            } else {
                format!("{shown} (which resolves to {}) lies inside", clean(&trace.real.to_string_lossy()))
            }
        } else {
            let through = trace.visited.iter().find(|p| inside(p))?;
            format!("{shown} passes through {}, inside", clean(&through.to_string_lossy()))
        };
        Some(Error::HostStateInJail {
            setting: location.setting,
            message: format!(
                "{} {how} {}: a jail's root user (uid 0 there) could read or replace it, and {}; {}",
                location.setting,
                place.what,
                location.why(),
                location.fix()
            ),
        })
    }
}

/// Whether `location` lies inside `place`; if so, the refusal.
fn refusal(location: &Location, place: &JailPlace) -> Option<Error> {
    Traced::new(location).refusal(place)
}

/// For each location inside one of `places`, the refusal for the first such place.
pub fn refusals(locations: &[Location], places: &[JailPlace]) -> Vec<Error> {
    locations
        .iter()
        .filter_map(|l| {
            let traced = Traced::new(l);
            places.iter().find_map(|p| traced.refusal(p))
        })
        .collect()
}

fn first_refusal(locations: &[Location], places: &[JailPlace]) -> Result<()> {
    refusals(locations, places).into_iter().next().map_or(Ok(()), Err)
}

/// The tenants' roots first (the more telling place), then the base.
fn all_places(settings: &Settings, roots: &[(String, PathBuf)]) -> Vec<JailPlace> {
    let mut places = tenant_places(roots);
    places.push(JailPlace::base(settings));
    places
}

/// Before the provider env is read: it must not lie inside the jail root base known so far
/// (from a flag, the environment or the default; the file may still move the base, which
/// [`check_settings`] then checks).
pub fn check_provider_env(path: &Path, base: &Path) -> Result<()> {
    let place = JailPlace::new(
        format!("the jail root base {} (COLIBRI_JAIL_ROOT_BASE)", clean(&base.to_string_lossy())),
        base,
    );
    first_refusal(&[Location { setting: "COLIBRI_PROVIDER_ENV", path: path.to_owned() }], &[place])
}

/// Every host-side setting against the jail root base (tenant roots need the database:
/// [`check_with_store`]).
pub fn check_settings(settings: &Settings) -> Result<()> {
    first_refusal(&locations(settings), &[JailPlace::base(settings)])
}

/// Whether the database lies outside the jail root base, so that its rows may be trusted at
/// all (a hook reads its tenant's failure policy from it even when the settings failed).
pub fn database_outside_base(settings: &Settings) -> bool {
    let db = Location { setting: "COLIBRI_DB", path: settings.db.clone() };
    refusal(&db, &JailPlace::base(settings)).is_none()
}

/// Whether the database lies outside every tenant's root registered in it (checked once
/// [`database_outside_base`] allowed opening it).
pub fn database_outside_roots(settings: &Settings, store: &Store) -> bool {
    let db = Location { setting: "COLIBRI_DB", path: settings.db.clone() };
    store.roots().is_ok_and(|roots| refusals(&[db], &tenant_places(&roots)).is_empty())
}

/// The places of these tenants' roots (name, root as stored).
fn tenant_places(roots: &[(String, PathBuf)]) -> Vec<JailPlace> {
    roots.iter().filter_map(|(name, root)| JailPlace::tenant_root(name, root)).collect()
}

/// Every host-side setting against the base and these tenants' roots (name, root): the
/// registered ones, or what `tenant add|set` is about to register, so that a root containing
/// host-side state is refused.
pub fn check_roots(settings: &Settings, roots: &[(String, PathBuf)]) -> Result<()> {
    first_refusal(&locations(settings), &all_places(settings, roots))
}

/// Every host-side setting against the base and every registered tenant's root.
pub fn check_with_store(settings: &Settings, store: &Store) -> Result<()> {
    check_roots(settings, &store.roots()?)
}

/// For `doctor`: every host-side setting inside the base or one of these roots, each reported.
pub fn findings(settings: &Settings, roots: &[(String, PathBuf)]) -> Vec<Error> {
    refusals(&locations(settings), &all_places(settings, roots))
}

/// A jail's `jail.conf` (which lies under the jail root base by Bastille's design) must not lie
/// inside any tenant's root (name, root).
pub fn check_jail_conf(path: &Path, roots: &[(String, PathBuf)]) -> Result<()> {
    first_refusal(&[Location { setting: JAIL_CONF, path: path.to_owned() }], &tenant_places(roots))
}

/// Whether two directories are the same place: the same text once normalized, or the same
/// place once resolved.
pub fn same_place(a: &Path, b: &Path) -> bool {
    lexical(a) == lexical(b) || trace(a).real == trace(b).real
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn loc(path: &Path) -> Location {
        Location { setting: "COLIBRI_STATE_DIR", path: path.to_owned() }
    }

    fn refused(path: &Path, place: &Path) -> bool {
        refusal(&loc(path), &JailPlace::new("the place".into(), place)).is_some()
    }

    #[test]
    fn text_forms_inside_or_not() {
        let base = Path::new("/nonexistent-colibri/jails");
        for inside in [
            "/nonexistent-colibri/jails",
            "/nonexistent-colibri/jails/",
            "/nonexistent-colibri/jails/web/root/state",
            "/nonexistent-colibri/jails//web/./root/",
            "/nonexistent-colibri/x/../jails/web",
            "/nonexistent-colibri/jails/web/../../jails/db",
        ] {
            assert!(refused(Path::new(inside), base), "{inside}");
        }
        for outside in [
            "/nonexistent-colibri/jailsX/web",
            "/nonexistent-colibri/jail",
            "/nonexistent-colibri",
            "/var/db/colibri",
        ] {
            assert!(!refused(Path::new(outside), base), "{outside}");
        }
        // Passing through a jail and coming back out is refused: the jail could swap what it
        // passes through for a link.
        assert!(refused(Path::new("/nonexistent-colibri/jails/web/root/../../../etc"), base));
    }

    #[test]
    fn links_on_the_host_that_lead_into_a_jail_are_followed() {
        let d = tempfile::tempdir().unwrap();
        let base = d.path().join("jails");
        let root = base.join("web/root");
        std::fs::create_dir_all(&root).unwrap();
        let host = d.path().join("host");
        std::fs::create_dir(&host).unwrap();
        // An existing link to a directory in a jail, and a dangling one to a place not made yet.
        symlink(&root, host.join("to-root")).unwrap();
        symlink(root.join("not-yet/state"), host.join("dangling")).unwrap();
        symlink("../jails/web/root", host.join("relative")).unwrap();
        for path in
            ["to-root", "to-root/state/", "dangling", "dangling/bw", "relative/x", "missing/../to-root"]
        {
            assert!(refused(&host.join(path), &base), "{path}");
            assert!(refused(&host.join(path), &root), "{path}");
        }
        assert!(!refused(&host.join("state"), &base));
        // A base that is itself reached through a link.
        symlink(&base, d.path().join("base-link")).unwrap();
        assert!(refused(&root.join("state"), &d.path().join("base-link")));
        assert!(refused(&d.path().join("base-link/web/root/x"), &base));
        // A link inside the jail that points back out is still a path through the jail.
        symlink(&host, root.join("out")).unwrap();
        assert!(refused(&root.join("out/state"), &root));
        // A link loop does not hang.
        symlink(host.join("loop"), host.join("loop")).unwrap();
        assert!(!refused(&host.join("loop/x"), &base));
    }

    #[test]
    fn messages_name_the_setting_the_path_and_why() {
        let e = refusal(
            &loc(Path::new("/nonexistent-colibri/jails/web/root/state")),
            &JailPlace::new(
                "the jail root base /nonexistent-colibri/jails (COLIBRI_JAIL_ROOT_BASE)".into(),
                Path::new("/nonexistent-colibri/jails"),
            ),
        )
        .unwrap();
        assert_eq!(e.exit_code(), 78);
        let text = e.to_string();
        assert!(text.starts_with("COLIBRI_STATE_DIR /nonexistent-colibri/jails/web/root/state lies inside the jail root base /nonexistent-colibri/jails (COLIBRI_JAIL_ROOT_BASE)"), "{text}");
        assert!(text.contains("data.json"), "{text}");
    }

    #[test]
    fn tenant_roots_that_cannot_be_jails_do_not_count() {
        assert!(JailPlace::tenant_root("t", Path::new("/")).is_none());
        assert!(JailPlace::tenant_root("t", Path::new("/a/..")).is_none());
        assert!(JailPlace::tenant_root("t", Path::new("relative")).is_none());
        assert!(JailPlace::tenant_root("t", Path::new("/j/t/root")).is_some());
    }
}
