//! colibri-vault: puts each FreeBSD jail's secrets into the jail when it starts.
//!
//! `run` is the whole program; `main.rs` only calls it, so every destructor (zeroing secrets,
//! releasing the host lock, ending a `bw` session) runs before the process exits.

pub mod bw;
pub mod cli;
pub mod compat;
pub mod config;
pub mod doctor;
pub mod envfile;
pub mod error;
pub mod exit;
pub mod harden;
pub mod hook;
pub mod jail;
pub mod jailconf;
pub mod kvfile;
pub mod lock;
pub mod logging;
pub mod operator;
pub mod provision;
pub mod safe_write;
pub mod sanitize;
pub mod secret;
pub mod serverinfo;
pub mod signals;
pub mod source;
pub mod spool;
pub mod tenant;

use std::ffi::OsString;
use std::process::ExitCode;

use clap::Parser;

use crate::cli::{Cli, Command};
use crate::config::Settings;
use crate::error::{Error, Result};
use crate::logging::Log;

/// Runs colibri-vault with `args` (argv, program name first) and returns the exit status.
pub fn run<I: IntoIterator<Item = OsString>>(args: I) -> ExitCode {
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { exit::USAGE } else { exit::OK });
        }
    };
    let verbosity = if cli.quiet { -1 } else { i8::try_from(cli.verbose).unwrap_or(i8::MAX) };
    // Hooks and provisions leave a record in syslog: jail(8) shows hook output only on a console.
    let syslog = matches!(cli.command, Command::Hook(_) | Command::Provision(_));
    let log = Log::new(verbosity, syslog);
    match execute(&cli, &log) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            log.error(&e.to_string());
            ExitCode::from(e.exit_code())
        }
    }
}

fn execute(cli: &Cli, log: &Log) -> Result<u8> {
    harden::harden()?;
    harden::refuse_inside_jail()?;
    signals::install();
    let env = |key: &str| std::env::var_os(key);
    let settings = match Settings::resolve(&cli.settings.to_flags(), &env) {
        Ok(settings) => settings,
        // A hook still answers through the tenant's failure policy (DESIGN.md "Entry points").
        Err(e) => match &cli.command {
            Command::Hook(command) => {
                return hook::settings_failed(&cli.settings.to_flags(), log, command, &e);
            }
            _ => return Err(e),
        },
    };
    let code = match &cli.command {
        Command::Tenant(command) => operator::tenant(&settings, command),
        Command::Provision(args) => operator::provision(&settings, log, args),
        Command::Hook(command) => hook::run(&settings, log, command),
        Command::Jail(command) => operator::jail(&settings, log, command),
        Command::Status { tenant, json } => operator::status(&settings, tenant.as_deref(), *json),
        Command::Doctor => doctor::run(&settings),
    }?;
    // A signal that arrived during a phase that does not poll for it still ends the run
    // with the conventional status, after everything was cleaned up.
    if code == exit::OK
        && let Some(signal) = signals::received()
    {
        return Err(Error::Interrupted(signal));
    }
    Ok(code)
}
