//! After a `refresh`: each tenant whose env file's content changed gets its on-change command
//! run inside its jail, `jexec -l JAIL /bin/sh -c COMMAND` (`COLIBRI_JEXEC`), once the vault
//! session has closed and the host-wide lock is released, so a slow command never holds up a
//! starting jail. Tenants whose file did not change run nothing.
//!
//! What it guarantees:
//! - **No secret reaches the command** through argv (jexec's options, the jail, the command as
//!   configured) or its environment (built from scratch: `PATH` only, and jexec's `-l` starts
//!   the command with the jail's login environment); stdin is /dev/null. What it reads inside
//!   the jail is the jail's business.
//! - **Bounded**: a deadline (`COLIBRI_ON_CHANGE_TIMEOUT`); at the deadline, or when
//!   colibri-vault receives a terminating signal, the command's process group is killed. A
//!   background process it leaves holding its output is not waited for (`Capture::LOG`).
//! - **Reported once**: its output (capped) is logged, scrubbed of the tenant's values and
//!   sanitized; the outcome replaces `pending` in the refresh's log row. A command that fails
//!   leaves the new file in place and is not retried: the next refresh finds the file unchanged
//!   and runs it only if the content changes again.
//! - **A jail that is not running** (the kernel says so, on FreeBSD) runs nothing and is no
//!   failure: it reads the new file when it starts. Elsewhere there is no kernel to ask, and
//!   jexec's own refusal is the report.

use std::ffi::OsString;
use std::fmt::Write as _;

use super::{Ctx, Pending, Trigger, materialize};
use crate::bw::process::{self, Call, Capture, RunError};
use crate::error::Error;
use crate::secret::Secret;
use crate::source::Fetched;
use crate::tenant::Store;

/// A tenant whose command is due, its refresh's log row, and the values its file held before.
pub(super) struct Due {
    pub row: Option<i64>,
    pub pending: Pending,
    pub replaced: Vec<Secret>,
}

/// What an on-change command did, when it did not fail.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ran {
    /// It ran and exited 0.
    Succeeded,
    /// The jail is not running: nothing ran.
    NotRunning,
}

/// One tenant's on-change command and what became of it.
pub struct CommandReport {
    pub jail: String,
    pub result: Result<Ran, Error>,
}

/// The environment jexec starts with (it replaces it with the jail's login environment).
const PATH: &str = "/sbin:/bin:/usr/sbin:/usr/bin";

/// Most of the command's output (each stream) shown in one log line, in characters.
const OUTPUT_SHOWN: usize = 600;

/// Whether `p`'s on-change command runs: a refresh (not a dry run) changed its file's content
/// and the tenant has one.
pub(super) fn runs_for(p: &Pending, content_changed: bool) -> bool {
    p.opts.trigger == Trigger::Refresh
        && !p.opts.dry_run
        && content_changed
        && p.tenant.options.on_change.is_some()
}

/// Runs every due command in turn (none after a terminating signal), logs and records each.
pub(super) fn run_due(
    ctx: &Ctx<'_>,
    store: &mut Store,
    due: Vec<Due>,
    fetched: &Fetched,
) -> Vec<CommandReport> {
    let mut reports = Vec::with_capacity(due.len());
    for Due { row, pending: p, replaced } in due {
        let jail = &p.jail;
        let (result, outcome) = if let Some(signal) = crate::signals::received() {
            let e = Error::Interrupted(signal);
            let outcome = format!("not run: {e}");
            (Err(e), outcome)
        } else {
            let result = run_one(ctx, &p, fetched, replaced);
            let outcome = outcome_of(ctx, jail, &result);
            (result, outcome)
        };
        if let Some(row) = row
            && let Err(e) = store.set_on_change(row, &outcome)
        {
            ctx.log.error(&format!("jail {jail}: could not record the on-change command's outcome: {e}"));
        }
        reports.push(CommandReport { jail: jail.clone(), result });
    }
    reports
}

/// What the log row says of a command that was due (a failure has been logged already).
fn outcome_of(ctx: &Ctx<'_>, jail: &str, result: &Result<Ran, Error>) -> String {
    match result {
        Ok(Ran::Succeeded) => "ok".to_owned(),
        Ok(Ran::NotRunning) => {
            ctx.log.notice(&format!(
                "jail {jail}: not running; its on-change command was not run (the jail reads the new file when it starts)"
            ));
            "not run: the jail is not running".to_owned()
        }
        Err(e @ Error::Interrupted(_)) => {
            ctx.log.error(&format!("jail {jail}: on-change command: {e}"));
            format!("not finished: {e}")
        }
        Err(Error::OnChange { problem }) => format!("failed: {problem}"),
        Err(e) => format!("failed: {e}"),
    }
}

/// `jexec -l JAIL /bin/sh -c COMMAND` for one tenant, logged.
fn run_one(ctx: &Ctx<'_>, p: &Pending, fetched: &Fetched, replaced: Vec<Secret>) -> Result<Ran, Error> {
    let Some(command) = p.tenant.options.on_change.as_deref() else { return Ok(Ran::Succeeded) };
    let jail = &p.jail;
    // The JID the kernel gave for the path checked in step 3: a jail started since under the
    // same name is not entered.
    let target = match p.jid {
        Some(jid) => jid.to_string(),
        None if crate::jail::KERNEL_KNOWS => return Ok(Ran::NotRunning),
        None => jail.clone(),
    };
    let settings = ctx.settings;
    let env = [("PATH", OsString::from(PATH))];
    let call = Call {
        program: &settings.jexec,
        args: &["-l", &target, "/bin/sh", "-c", command],
        env: &env,
        timeout: settings.on_change_timeout,
        interruptible: true,
    };
    let jexec = settings.jexec.display();
    let output = match process::run_with(&call, Capture::LOG) {
        Ok(output) => output,
        Err(RunError::Start(e)) => {
            let e = Error::OnChange { problem: format!("could not start: {jexec}: {e}") };
            ctx.log.error(&format!("jail {jail}: {e}"));
            return Err(e);
        }
        Err(RunError::Timeout) => {
            let e = Error::OnChange {
                problem: format!(
                    "did not finish within {} s (COLIBRI_ON_CHANGE_TIMEOUT) and was killed with its process group",
                    settings.on_change_timeout.as_secs()
                ),
            };
            ctx.log.error(&format!("jail {jail}: {e}; the env file stays the new one{}", rerun_note()));
            return Err(e);
        }
        Err(RunError::Interrupted(signal)) => return Err(Error::Interrupted(signal)),
    };
    // The command may print what it read: none of the tenant's values, new or replaced,
    // reaches a log.
    let mut values: Vec<Secret> = materialize::entries(&p.tenant, fetched, &mut |_| {})
        .map(|entries| entries.into_values().map(|e| e.value).collect())
        .unwrap_or_default();
    values.extend(replaced);
    let shown = shown_output(&output.stdout, &output.stderr, &values);
    if output.status.success() {
        ctx.log.notice(&format!("jail {jail}: on-change command ran inside the jail (exit 0){shown}"));
        return Ok(Ran::Succeeded);
    }
    let how = match (output.status.code(), std::os::unix::process::ExitStatusExt::signal(&output.status)) {
        (Some(code), _) => format!("exited with status {code}"),
        (None, Some(signal)) => format!("was killed by signal {signal}"),
        (None, None) => "failed".to_owned(),
    };
    let e = Error::OnChange { problem: how };
    ctx.log.error(&format!("jail {jail}: {e}{shown}; the env file stays the new one{}", rerun_note()));
    Err(e)
}

fn rerun_note() -> &'static str {
    "; the next refresh runs the command again only if the content changes again"
}

/// "; stdout: …; stderr: …" (each capped, scrubbed of `values`, sanitized), or nothing.
fn shown_output(stdout: &[u8], stderr: &[u8], values: &[Secret]) -> String {
    let refs: Vec<&Secret> = values.iter().collect();
    let mut shown = String::new();
    for (name, bytes) in [("stdout", stdout), ("stderr", stderr)] {
        let text = String::from_utf8_lossy(bytes);
        let text = crate::sanitize::scrub(text.trim_end(), &refs);
        if !text.is_empty() {
            let _ = write!(shown, "; {name}: {}", crate::sanitize::sanitize(&text, OUTPUT_SHOWN));
        }
    }
    shown
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_is_scrubbed_sanitized_and_capped() {
        let values = [Secret::from("hunter2-secret")];
        let shown = shown_output(b"DB=hunter2-secret\n\x1b[2Jdone\n", b"", &values);
        assert_eq!(shown, "; stdout: DB=[redacted]\\n\\x1b[2Jdone");
        let long = "x".repeat(5000);
        let shown = shown_output(b"", long.as_bytes(), &values);
        assert!(shown.starts_with("; stderr: xxx") && shown.chars().count() < OUTPUT_SHOWN + 20, "{shown}");
        assert_eq!(shown_output(b"\n", b"", &values), "");
    }
}
