//! colibri-vault: puts each FreeBSD jail's secrets into the jail when it starts.
//!
//! `run` is the whole program; `main.rs` only calls it, so every destructor (zeroing secrets,
//! releasing the host lock, ending a `bw` session) runs before the process exits, after a
//! signal or a panic too.

pub mod bastille;
pub mod bug;
pub mod bw;
pub mod cli;
pub mod clock;
pub mod clones;
pub mod compat;
pub mod config;
pub mod deadline;
pub mod delivery;
pub mod doctor;
pub mod envfile;
pub mod error;
pub mod exit;
pub mod harden;
pub mod hook;
pub mod host_state;
pub mod hostfile;
pub mod jail;
pub mod jailconf;
pub mod kvfile;
pub mod lock;
pub mod logging;
pub mod memfs;
pub mod names;
pub mod operator;
pub mod output;
pub mod provision;
pub mod safe_write;
pub mod sanitize;
pub mod secret;
pub mod serverinfo;
pub mod signals;
pub mod source;
pub mod spool;
pub mod tenant;
pub mod zfs;

use std::ffi::OsString;
use std::process::ExitCode;

use clap::Parser;

use crate::cli::{Cli, Command};
use crate::config::Settings;
use crate::error::{Error, Result};
use crate::logging::Log;

/// Runs colibri-vault with `args` (argv, program name first) and returns the exit status.
///
/// Whatever happens inside, the cleanup runs before this returns: a terminating signal is
/// recorded and ends the run with 128 + its number (`signals`), a panic unwinds through the
/// logout and ends it with 70 (`bug`), a closed stdout ends it quietly with 141 (`output`).
pub fn run<I: IntoIterator<Item = OsString>>(args: I) -> ExitCode {
    // First of all: until the handlers are in place a signal has its default action.
    signals::install();
    bug::install_hook();
    let mut log = None;
    let code = match bug::contain(|| start(args, &mut log)) {
        Ok(code) => code,
        Err(bug) => {
            log.get_or_insert_with(|| Log::new(0, false)).error(&bug.to_string());
            exit::SOFTWARE
        }
    };
    // A signal ends the run with its conventional status, whatever the run made of it (a hook
    // under policy `continue`, a phase that does not poll for signals): everything was
    // cleaned up by now.
    match signals::received() {
        Some(signal) if code != exit::for_signal(signal) => {
            if let Some(log) = &log {
                log.error(&Error::Interrupted(signal).to_string());
            }
            ExitCode::from(exit::for_signal(signal))
        }
        _ => ExitCode::from(code),
    }
}

/// Parses the command line and runs the command; `log` receives the logger once there is one.
fn start<I: IntoIterator<Item = OsString>>(args: I, log: &mut Option<Log>) -> u8 {
    let args: Vec<OsString> = args.into_iter().collect();
    let cli = match Cli::try_parse_from(&args) {
        Ok(cli) => cli,
        Err(e) => {
            // Help and version go to stdout, whose reader may be gone; clap does not panic.
            return match e.print() {
                Err(io) if !e.use_stderr() && io.kind() == std::io::ErrorKind::BrokenPipe => {
                    exit::BROKEN_PIPE
                }
                // A hook line jail(8) runs with bad arguments must not block the jail: it cannot
                // even tell which tenant it is for (DESIGN.md invariant 8).
                _ if e.use_stderr() && is_hook(&args) => {
                    log.insert(Log::new(0, true)).error(
                        "hook: bad arguments (see above); nothing done, exiting 0 so that the jail is not blocked: fix the hook line in jail.conf",
                    );
                    exit::OK
                }
                _ if e.use_stderr() => exit::USAGE,
                _ => exit::OK,
            };
        }
    };
    let verbosity = if cli.quiet { -1 } else { i8::try_from(cli.verbose).unwrap_or(i8::MAX) };
    // Hooks and provisions leave a record in syslog: jail(8) shows hook output only on a console.
    let syslog = matches!(cli.command, Command::Hook(_) | Command::Provision(_) | Command::Refresh(_));
    let log = log.insert(Log::new(verbosity, syslog));
    match execute(&cli, log) {
        Ok(code) => code,
        Err(e) => {
            if !e.is_quiet() {
                log.error(&e.to_string());
            }
            e.exit_code()
        }
    }
}

/// Whether `args` ask for a `hook` command (read leniently: they did not parse).
fn is_hook(args: &[OsString]) -> bool {
    use clap::CommandFactory;
    Cli::command()
        .ignore_errors(true)
        .try_get_matches_from(args)
        .is_ok_and(|m| m.subcommand_name() == Some("hook"))
}

fn execute(cli: &Cli, log: &Log) -> Result<u8> {
    harden::harden()?;
    harden::refuse_inside_jail()?;
    let env = |key: &str| std::env::var_os(key);
    // Host-side state never inside a jail (tenants' roots: once the database is open); doctor
    // reports that itself, with everything else.
    let flags = cli.settings.to_flags();
    let needs_credentials = matches!(
        cli.command,
        Command::Provision(_) | Command::Refresh(_) | Command::Hook(_) | Command::Doctor { .. }
    );
    let resolved = if needs_credentials {
        Settings::resolve(&flags, &env)
    } else {
        Settings::resolve_settings_only(&flags, &env, &|warning| log.warn(warning))
    };
    let resolved = resolved.and_then(|s| match cli.command {
        Command::Doctor { .. } => Ok(s),
        _ => host_state::check_settings(&s).map(|()| s),
    });
    let settings = match resolved {
        Ok(settings) => settings,
        // A hook still answers through the tenant's failure policy (DESIGN.md "Entry points").
        Err(e) => match &cli.command {
            Command::Hook(command) => {
                return hook::settings_failed(&cli.settings.to_flags(), log, command, &e);
            }
            Command::Doctor { fix } => return doctor::run_unresolved(&cli.settings.to_flags(), &e, *fix),
            _ => return Err(e),
        },
    };
    match &cli.command {
        Command::Tenant(command) => operator::tenant(&settings, log, command),
        Command::Provision(args) => operator::provision(&settings, log, args),
        Command::Refresh(args) => operator::refresh(&settings, log, args),
        Command::Hook(command) => hook::run(&settings, log, command),
        Command::Jail(command) => operator::jail(&settings, log, command),
        Command::Status { tenant, json } => operator::status(&settings, log, tenant.as_deref(), *json),
        Command::Doctor { fix } => doctor::run(&settings, *fix),
    }
}
