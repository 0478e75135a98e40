//! What the user typed: the command line, parsed by clap. No behaviour here.
#![allow(clippy::doc_markdown, reason = "doc comments here are --help text shown to people")]

use std::ffi::OsString;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::config::Flags;

/// Shown after `--help`: where settings come from and what the exit statuses mean.
const AFTER_HELP: &str = "\
Settings: flag > environment (COLIBRI_*) > COLIBRI_* line in the provider env > default.

Exit status (sysexits(3)):
  0   done, or nothing to do (a hook for a jail without a tenant)
  64  usage: bad arguments, invalid tenant name, root or env path
  65  bad vault data: duplicate variable names, NUL in a value, too large
  66  unknown tenant (named explicitly) or collection
  69  vault or bw unavailable
  70  internal error (a bug; the bw session was still ended)
  73  write refused or failed (a planted link, a root outside the base, a path mismatch)
  75  temporary: the host-wide lock or the database stayed busy past the deadline
  77  permissions: provider env or secrets file too open, wrong vault credentials
  78  configuration error
  128+N  stopped by signal N (after logging bw out)
Hooks pass a failure through the tenant's failure policy (continue: 0).
See colibri-vault(8).";

/// The heading the settings and verbosity flags are listed under, apart from each command's own.
const GLOBAL: &str = "Global options";

#[derive(Parser, Debug)]
#[command(
    name = "colibri-vault",
    version,
    about = "Puts each FreeBSD jail's secrets from Vaultwarden into the jail when it starts",
    after_help = AFTER_HELP
)]
pub struct Cli {
    /// More output (-vv for debug)
    #[arg(short, long, action = clap::ArgAction::Count, global = true, help_heading = GLOBAL)]
    pub verbose: u8,
    /// Errors only
    #[arg(short, long, global = true, conflicts_with = "verbose", help_heading = GLOBAL)]
    pub quiet: bool,
    #[command(flatten)]
    pub settings: SettingFlags,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Args, Debug)]
pub struct SettingFlags {
    /// Provider env file [env: COLIBRI_PROVIDER_ENV] [default: /usr/local/etc/colibri/provider.env]
    #[arg(long, value_name = "FILE", global = true, help_heading = GLOBAL)]
    pub provider_env: Option<PathBuf>,
    /// Tenant database [env: COLIBRI_DB]
    #[arg(long, value_name = "FILE", global = true, help_heading = GLOBAL)]
    pub db: Option<PathBuf>,
    /// Jail roots must lie under this directory [env: COLIBRI_JAIL_ROOT_BASE]
    #[arg(long, value_name = "DIR", global = true, help_heading = GLOBAL)]
    pub jail_root_base: Option<PathBuf>,
    /// bw app data and state [env: COLIBRI_STATE_DIR]
    #[arg(long, value_name = "DIR", global = true, help_heading = GLOBAL)]
    pub state_dir: Option<PathBuf>,
    /// Host-wide lock and request spool [env: COLIBRI_RUN_DIR]
    #[arg(long, value_name = "DIR", global = true, help_heading = GLOBAL)]
    pub run_dir: Option<PathBuf>,
    /// Secrets source: bw or dir [env: COLIBRI_SOURCE]
    #[arg(long, value_name = "bw|dir", global = true, help_heading = GLOBAL)]
    pub source: Option<String>,
    /// Directory of <collection>.env files for the dir source [env: COLIBRI_SECRETS_DIR]
    #[arg(long, value_name = "DIR", global = true, help_heading = GLOBAL)]
    pub secrets_dir: Option<PathBuf>,
    /// The bw executable [env: COLIBRI_BW]
    #[arg(long, value_name = "PATH", global = true, help_heading = GLOBAL)]
    pub bw: Option<PathBuf>,
    /// Timeout of each bw call, seconds, 1 to 3600 [env: COLIBRI_BW_TIMEOUT]
    #[arg(long, value_name = "SECS", global = true, help_heading = GLOBAL)]
    pub bw_timeout: Option<String>,
    /// Longest wait for the host-wide lock, seconds, 0 to 86400 [env: COLIBRI_LOCK_TIMEOUT]
    #[arg(long, value_name = "SECS", global = true, help_heading = GLOBAL)]
    pub lock_timeout: Option<String>,
    /// Hooks skip the vault within this many seconds of a provision, 0 (off) to 2592000 [env: COLIBRI_FRESH_FOR]
    #[arg(long, value_name = "SECS", global = true, help_heading = GLOBAL)]
    pub fresh_for: Option<String>,
    /// Bastille's configuration file [env: BASTILLE_CONFIG]
    #[arg(long, value_name = "FILE", global = true, help_heading = GLOBAL)]
    pub bastille_config: Option<PathBuf>,
    /// jexec(8), which runs on-change commands in jails [env: COLIBRI_JEXEC] [default: /usr/sbin/jexec]
    #[arg(long, value_name = "PATH", global = true, help_heading = GLOBAL)]
    pub jexec: Option<PathBuf>,
    /// Timeout of a tenant's on-change command, seconds, 1 to 3600 [env: COLIBRI_ON_CHANGE_TIMEOUT]
    #[arg(long, value_name = "SECS", global = true, help_heading = GLOBAL)]
    pub on_change_timeout: Option<String>,
}

impl SettingFlags {
    pub fn to_flags(&self) -> Flags {
        Flags {
            provider_env: self.provider_env.clone(),
            db: self.db.clone(),
            jail_root_base: self.jail_root_base.clone(),
            state_dir: self.state_dir.clone(),
            run_dir: self.run_dir.clone(),
            source: self.source.clone(),
            secrets_dir: self.secrets_dir.clone(),
            bw: self.bw.clone(),
            bw_timeout: self.bw_timeout.clone(),
            lock_timeout: self.lock_timeout.clone(),
            fresh_for: self.fresh_for.clone(),
            bastille_config: self.bastille_config.clone(),
            jexec: self.jexec.clone(),
            on_change_timeout: self.on_change_timeout.clone(),
        }
    }
}

#[derive(Subcommand, Debug)]
#[allow(clippy::large_enum_variant, reason = "parsed once per run")]
pub enum Command {
    /// Register and manage tenants (jail = tenant = collection)
    #[command(subcommand)]
    Tenant(TenantCommand),
    /// Fetch secrets now and write each tenant's env file
    Provision(ProvisionArgs),
    /// Rewrite what changed in the vault since, and run each changed tenant's on-change command
    Refresh(RefreshArgs),
    /// Entry points for jail(8) exec.* hooks and devd(8)
    #[command(subcommand)]
    Hook(HookCommand),
    /// Add or remove colibri-vault's hook lines in a Bastille jail's jail.conf
    #[command(subcommand)]
    Jail(JailCommand),
    /// Last provision of each tenant
    Status {
        /// Only this tenant
        tenant: Option<String>,
        /// Print JSON (one object per tenant)
        #[arg(long)]
        json: bool,
    },
    /// Check the host's setup and say what to fix
    Doctor {
        /// Remove env files found in a jail they were not written for (a cloned jail's copy of
        /// another tenant's secrets)
        #[arg(long)]
        fix: bool,
    },
}

#[derive(Args, Debug, Default)]
pub struct TenantOptions {
    /// Vaultwarden collection name [default: the tenant name]
    #[arg(long, value_name = "NAME")]
    pub collection: Option<String>,
    /// Env file path relative to the jail root [default: .env]
    #[arg(long, value_name = "REL")]
    pub env_path: Option<PathBuf>,
    /// sh, dotenv or json [default: sh]
    #[arg(long, value_name = "FORMAT")]
    pub format: Option<String>,
    /// Owner of the env file, numeric as the jail sees it [default: 0:0]
    #[arg(long, value_name = "UID[:GID]")]
    pub owner: Option<String>,
    /// What a hook does on failure: continue (jail starts) or fail (jail does not) [default: continue]
    #[arg(long, value_name = "POLICY")]
    pub on_failure: Option<String>,
    /// Remove the env file when the jail stops (hook stop; rerun jail enable to add the stop hook)
    #[arg(long)]
    pub cleanup_on_stop: bool,
    /// Let the env file hold NAME although it changes how a shell sourcing it behaves (PATH, IFS,
    /// LD_PRELOAD, rc.subr's command…); repeatable
    #[arg(long, value_name = "NAME")]
    pub allow_name: Vec<String>,
    /// file (on the jail's disk) or memory (a memory file system mounted read-only into the jail,
    /// gone at stop) [default: file]
    #[arg(long, value_name = "DELIVERY")]
    pub delivery: Option<String>,
    /// env (the env file), files (one 0400 file per variable in the secrets directory) or both
    /// [default: env]
    #[arg(long, value_name = "LAYOUT")]
    pub layout: Option<String>,
    /// Secrets directory as the jail sees it: the memory mount, or where the per-variable files go
    /// [default: /var/run/secrets for memory, /var/db/secrets for file]
    #[arg(long, value_name = "DIR")]
    pub mount_point: Option<PathBuf>,
    /// After refresh changed the env file, run COMMAND inside the jail (jexec -l JAIL /bin/sh -c
    /// COMMAND), e.g. "service nginx reload"
    #[arg(long, value_name = "COMMAND")]
    pub on_change: Option<String>,
}

#[derive(Subcommand, Debug)]
pub enum TenantCommand {
    /// Register a tenant
    Add {
        /// Tenant name = jail name = collection name (letters, digits, '-', '_')
        name: String,
        /// The jail's root as the host sees it
        #[arg(long, value_name = "PATH")]
        root: PathBuf,
        #[command(flatten)]
        options: TenantOptions,
    },
    /// List tenants
    List {
        /// Print JSON (one object per tenant)
        #[arg(long)]
        json: bool,
    },
    /// Show one tenant and its last provision
    Show {
        /// Tenant name
        name: String,
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
    /// Change a tenant's settings (only those given)
    #[command(
        mut_arg("collection", |a| a.help("Vaultwarden collection name")),
        mut_arg("env_path", |a| a.help("Env file path relative to the jail root")),
        mut_arg("format", |a| a.help("sh, dotenv or json")),
        mut_arg("owner", |a| a.help("Owner of the env file, numeric as the jail sees it")),
        mut_arg("on_failure", |a| a.help("What a hook does on failure: continue (jail starts) or fail (jail does not)")),
        mut_arg("allow_name", |a| a.help("Add NAME to the names this tenant's env file may hold although a shell sourcing it changes behaviour; repeatable")),
        mut_arg("delivery", |a| a.help("file (on the jail's disk) or memory (a memory file system mounted read-only into the jail, gone at stop)")),
        mut_arg("layout", |a| a.help("env (the env file), files (one 0400 file per variable) or both")),
        mut_arg("mount_point", |a| a.help("Secrets directory as the jail sees it ('default': the delivery's default)")),
    )]
    Set {
        /// Tenant name
        name: String,
        /// The jail's root as the host sees it
        #[arg(long, value_name = "PATH")]
        root: Option<PathBuf>,
        #[command(flatten)]
        options: TenantOptions,
        /// Keep the env file when the jail stops
        #[arg(long, conflicts_with = "cleanup_on_stop")]
        no_cleanup_on_stop: bool,
        /// Remove NAME from the names allowed with --allow-name; repeatable
        #[arg(long, value_name = "NAME")]
        disallow_name: Vec<String>,
        /// Run no command when refresh changes the env file
        #[arg(long, conflicts_with = "on_change")]
        no_on_change: bool,
    },
    /// Unregister a tenant (its provision log is kept)
    Remove {
        /// Tenant name
        name: String,
    },
}

#[derive(Args, Debug)]
pub struct ProvisionArgs {
    /// Jails (tenants) to provision
    #[arg(required_unless_present = "all", conflicts_with = "all")]
    pub jails: Vec<String>,
    /// Every registered tenant, in one vault session
    #[arg(long)]
    pub all: bool,
    /// At boot: a tenant whose root is not reachable yet is reported and skipped
    #[arg(long, requires = "all")]
    pub boot: bool,
    /// Show key names and value hashes; write nothing
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Args, Debug)]
pub struct RefreshArgs {
    /// Jails (tenants) to refresh
    #[arg(required_unless_present = "all", conflicts_with = "all")]
    pub jails: Vec<String>,
    /// Every registered tenant, in one vault session
    #[arg(long)]
    pub all: bool,
}

// Hook arguments are taken as jail(8) passes them (any bytes): a name colibri-vault would not
// register is "no tenant", never a usage error that would block the jail.
#[derive(Subcommand, Debug)]
pub enum HookCommand {
    /// exec.created / exec.poststart: provision the jail (name, then ${path})
    Start {
        /// The jail's name ($name in jail.conf)
        name: OsString,
        /// The jail's path (${path} in jail.conf); must be the tenant's registered root
        path: Option<PathBuf>,
    },
    /// exec.poststop: remove the env file if the tenant asked for cleanup
    Stop {
        /// The jail's name ($name in jail.conf)
        name: OsString,
        /// The jail's path (${path} in jail.conf); must be the tenant's registered root
        path: Option<PathBuf>,
    },
    /// devd: a jail was created (kmod_devctl_jail); resolve it by JID and provision it
    Devd {
        /// The JID devd reports ($jid)
        #[arg(long)]
        jid: i32,
    },
}

#[derive(Subcommand, Debug)]
pub enum JailCommand {
    /// Add the hook lines to the jail's jail.conf (idempotent)
    Enable {
        /// The Bastille jail
        jail: String,
        /// created (before the jail's rc; recommended) or poststart
        #[arg(long, default_value = "created", value_name = "STAGE")]
        stage: String,
    },
    /// Remove colibri-vault's hook lines from the jail's jail.conf
    Disable {
        /// The Bastille jail
        jail: String,
    },
}
