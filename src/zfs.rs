//! Whether a jail's root lies on a ZFS dataset that has snapshots: with delivery `file`, every
//! snapshot keeps a copy of the secrets as they were then (and `zfs send`, `bastille export`
//! and clones carry them). For `doctor`'s warning; read-only, bounded.
//!
//! The dataset is the source of the mount that holds the path (the longest mount point above
//! it with file system type `zfs`, from the mount table: FreeBSD's getfsstat, Linux's
//! mountinfo); its snapshots come from `zfs list -H -t snapshot -o name -r DATASET`, run with
//! an empty environment and a deadline. Not for: anything that changes a dataset.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::bw::process::{self, Call, RunError};

/// Longest time `zfs list` may take.
pub const DEADLINE: Duration = Duration::from_secs(10);

/// Where `zfs` is looked for (FreeBSD's first).
const ZFS: [&str; 3] = ["/sbin/zfs", "/usr/sbin/zfs", "/usr/local/sbin/zfs"];

/// The ZFS dataset holding `path`, if it is on ZFS.
pub fn dataset_of(path: &Path) -> Option<String> {
    let real = std::fs::canonicalize(path).ok()?;
    let table = crate::memfs::Table::read().ok()?;
    dataset_in(
        table.entries().iter().map(|m| (m.fstype.as_str(), m.target.as_path(), m.source.as_str())),
        &real,
    )
}

/// The source of the deepest mount holding `path` when that mount is ZFS (pure: for tests).
fn dataset_in<'a>(mounts: impl Iterator<Item = (&'a str, &'a Path, &'a str)>, path: &Path) -> Option<String> {
    let (fstype, _, source) = mounts
        .filter(|(_, target, _)| path.starts_with(target))
        .max_by_key(|(_, target, _)| target.components().count())?;
    (fstype == "zfs").then(|| source.to_owned())
}

/// The snapshots of `dataset` and of the datasets below it.
pub fn snapshots(dataset: &str) -> Result<Vec<String>, String> {
    let zfs = ZFS.iter().map(PathBuf::from).find(|p| p.exists()).ok_or("zfs(8) not found")?;
    let call = Call {
        program: &zfs,
        args: &["list", "-H", "-t", "snapshot", "-o", "name", "-r", dataset],
        env: &[],
        timeout: DEADLINE,
        interruptible: true,
    };
    match process::run(&call) {
        Ok(out) if out.status.success() => Ok(parse(&out.stdout)),
        Ok(out) => Err(format!(
            "zfs list failed ({}): {}",
            out.status,
            crate::sanitize::sanitize(&String::from_utf8_lossy(&out.stderr), 200)
        )),
        Err(RunError::Start(e)) => Err(format!("could not start {}: {e}", zfs.display())),
        Err(RunError::Timeout) => Err(format!("zfs list did not finish within {} s", DEADLINE.as_secs())),
        Err(RunError::Interrupted(signal)) => Err(format!("interrupted by signal {signal}")),
    }
}

/// `zfs list -H -o name` output: one name per line.
fn parse(stdout: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(stdout)
        .lines()
        .map(str::trim)
        .filter(|l| l.contains('@'))
        .map(str::to_owned)
        .collect()
}

/// doctor's warning for a `file` tenant whose root is on `dataset` with `snapshots`.
pub fn finding(tenant: &str, root: &Path, dataset: &str, snapshots: &[String]) -> Option<String> {
    if snapshots.is_empty() {
        return None;
    }
    let shown: Vec<&str> = snapshots.iter().take(3).map(String::as_str).collect();
    let more = if snapshots.len() > 3 { format!(" and {} more", snapshots.len() - 3) } else { String::new() };
    Some(format!(
        "{tenant}: its root {} lies on ZFS dataset {dataset}, which has {} snapshot{} ({}{more}): each keeps a copy of the secrets written before it, and travels with zfs send, bastille export and clones; delivery memory keeps them off the jail's disk (colibri-vault tenant set {tenant} --delivery memory), or destroy the old snapshots",
        root.display(),
        snapshots.len(),
        if snapshots.len() == 1 { "" } else { "s" },
        shown.join(", ")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_deepest_mount_decides() {
        let mounts = [
            ("ufs", Path::new("/"), "/dev/ada0p2"),
            ("zfs", Path::new("/usr/local/bastille"), "zroot/bastille"),
            ("zfs", Path::new("/usr/local/bastille/jails/web/root"), "zroot/bastille/jails/web/root"),
            (
                "nullfs",
                Path::new("/usr/local/bastille/jails/web/root/.bastille"),
                "/usr/local/bastille/releases/14.2",
            ),
        ];
        let of = |p: &str| dataset_in(mounts.iter().copied(), Path::new(p));
        assert_eq!(
            of("/usr/local/bastille/jails/web/root").as_deref(),
            Some("zroot/bastille/jails/web/root")
        );
        assert_eq!(of("/usr/local/bastille/jails/shop/root").as_deref(), Some("zroot/bastille"));
        assert_eq!(of("/usr/local/bastille/jails/web/root/.bastille"), None);
        assert_eq!(of("/usr/local/bastille2/x"), None, "a prefix of the text is not a parent");
        assert_eq!(of("/var/jails/x"), None);
    }

    #[test]
    fn snapshots_are_listed_and_named() {
        assert_eq!(
            parse(b"zroot/j/web/root@a\nzroot/j/web/root@b\n\n"),
            ["zroot/j/web/root@a", "zroot/j/web/root@b"]
        );
        assert_eq!(finding("web", Path::new("/j/web/root"), "zroot/j/web/root", &[]), None);
        let five: Vec<String> = (1..=5).map(|i| format!("zroot/j/web/root@s{i}")).collect();
        let text = finding("web", Path::new("/j/web/root"), "zroot/j/web/root", &five).unwrap();
        assert!(
            text.contains(
                "has 5 snapshots (zroot/j/web/root@s1, zroot/j/web/root@s2, zroot/j/web/root@s3 and 2 more)"
            ),
            "{text}"
        );
        assert!(text.contains("--delivery memory"), "{text}");
    }
}
