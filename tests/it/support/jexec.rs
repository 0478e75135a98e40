//! A fake jexec(8) for the on-change commands of `refresh` (`COLIBRI_JEXEC`).
//!
//! Linux has no jails: the fake takes `-l JAIL COMMAND…` as FreeBSD's jexec does, records
//! each call (its argv and its whole environment) in `jexec.log` next to it, and runs COMMAND
//! in the jail's root (`BASE/JAIL/root`) in place of entering the jail. For the jails it is
//! told are not running it fails as the real one does (`jexec: jail "NAME" not found`, status
//! 1). Not for: anything about what jexec -l does to the environment inside a real jail.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

pub struct FakeJexec {
    pub path: PathBuf,
    log: PathBuf,
}

/// One call of the fake: its arguments and its environment (`NAME=value` lines).
#[derive(Debug, Clone)]
pub struct JexecCall {
    pub args: Vec<String>,
    pub env: Vec<String>,
}

impl FakeJexec {
    /// Writes the fake into `dir` for jails under `base`; the jails in `stopped` are not running.
    pub fn install(dir: &Path, base: &Path, stopped: &[&str]) -> FakeJexec {
        fs::create_dir_all(dir).unwrap();
        let path = dir.join("jexec");
        let log = dir.join("jexec.log");
        let stopped = stopped.join(" ");
        let script = format!(
            r#"#!/bin/sh
# A fake jexec(8): records the call, then runs the command in the jail's root.
{{
	echo "call"
	for arg in "$@"; do printf 'arg %s\n' "$arg"; done
	env | sed 's/^/env /'
}} >> '{log}'
[ "$1" = "-l" ] || {{ echo "usage: jexec [-l] jail command" >&2; exit 1; }}
jail=$2
shift 2
for down in {stopped}; do
	if [ "$down" = "$jail" ]; then
		echo "jexec: jail \"$jail\" not found" >&2
		exit 1
	fi
done
cd '{base}'/"$jail"/root || exit 1
exec "$@"
"#,
            log = log.display(),
            base = base.display(),
        );
        fs::write(&path, script).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
        FakeJexec { path, log }
    }

    /// Every call so far.
    pub fn calls(&self) -> Vec<JexecCall> {
        let text = fs::read_to_string(&self.log).unwrap_or_default();
        let mut calls: Vec<JexecCall> = Vec::new();
        for line in text.lines() {
            if line == "call" {
                calls.push(JexecCall { args: Vec::new(), env: Vec::new() });
            } else if let Some(call) = calls.last_mut() {
                if let Some(arg) = line.strip_prefix("arg ") {
                    call.args.push(arg.to_owned());
                } else if let Some(var) = line.strip_prefix("env ") {
                    call.env.push(var.to_owned());
                }
            }
        }
        calls
    }

    /// The calls for one jail.
    pub fn calls_for(&self, jail: &str) -> Vec<JexecCall> {
        self.calls().into_iter().filter(|c| c.args.get(1).map(String::as_str) == Some(jail)).collect()
    }
}
