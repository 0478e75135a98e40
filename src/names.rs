//! Variable names refused by default because they change how a shell that sources the env file
//! behaves, rather than configure the application.
//!
//! FreeBSD's rc.subr sources `${name}_env_file` with `set -a` as root, inside `run_rc_command`,
//! and then goes on using its own variables (`command`, `command_args`, `pidfile`, `start_cmd`,
//! `${name}_user`, `_pidcmd` — which it `eval`s — …) and the shell's (`PATH`, `IFS`, …). A
//! collection that can set those can run commands as the jail's root or change what rc starts.
//! So these names are skipped with a warning unless the tenant opts in, name by name
//! (`tenant set NAME --allow-name VAR`). See libexec/rc/rc.subr, `run_rc_command`.
//!
//! Not a sandbox: an application that reads its own variables unsafely is its own business.

/// Names the shells and the run-time linker read themselves.
const SHELL: [&str; 26] = [
    "PATH",
    "IFS",
    "ENV",
    "BASH_ENV",
    "CDPATH",
    "HOME",
    "SHELL",
    "PS1",
    "PS2",
    "PS4",
    "PPID",
    "PWD",
    "OLDPWD",
    "OPTIND",
    "OPTARG",
    "MAIL",
    "MAILCHECK",
    "MAILPATH",
    "HISTFILE",
    "FCEDIT",
    "PROMPT_COMMAND",
    "SHELLOPTS",
    "BASHOPTS",
    "GLOBIGNORE",
    "TMPDIR",
    "LOGNAME",
];

/// Prefixes of such names: the run-time linker's `LD_*` (and `LD_32_*`), bash's exported
/// functions, rc's own `rc_*`.
const SHELL_PREFIXES: [&str; 3] = ["LD_", "BASH_FUNC_", "rc_"];

/// rc.subr's variables that `run_rc_command` reads after sourcing the file.
const RC: [&str; 22] = [
    "name",
    "command",
    "command_args",
    "command_interpreter",
    "pidfile",
    "procname",
    "rcvar",
    "rcvars",
    "desc",
    "extra_commands",
    "required_dirs",
    "required_files",
    "required_vars",
    "required_modules",
    "sig_stop",
    "sig_reload",
    "flags",
    "autoboot",
    "local_startup",
    "svcj_all_enable",
    "start_precmd",
    "start_postcmd",
];

/// Suffixes of rc.subr's per-service (`${name}_…`) and per-command (`${rc_arg}_…`) variables.
const RC_SUFFIXES: [&str; 27] = [
    "_cmd",
    "_precmd",
    "_postcmd",
    "_program",
    "_flags",
    "_user",
    "_group",
    "_groups",
    "_env",
    "_env_file",
    "_chroot",
    "_chdir",
    "_nice",
    "_fib",
    "_limits",
    "_login_class",
    "_prepend",
    "_setup",
    "_umask",
    "_oomprotect",
    "_cpuset",
    "_enable",
    "_offcmd",
    "_svcj",
    "_svcj_options",
    "_svcj_ipaddrs",
    "_svcj_enable",
];

/// Why `name` is refused by default, or `None` if an env file may hold it.
pub fn sensitive(name: &str) -> Option<&'static str> {
    if SHELL.contains(&name) || SHELL_PREFIXES.iter().any(|p| name.starts_with(p)) {
        Some("the shell or the run-time linker reads it")
    } else if name.starts_with('_') || RC.contains(&name) || RC_SUFFIXES.iter().any(|s| name.ends_with(s)) {
        Some("rc.subr reads it after sourcing the env file, as root")
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shell_linker_and_rc_names_are_sensitive() {
        for name in [
            "PATH",
            "IFS",
            "ENV",
            "LD_PRELOAD",
            "LD_LIBRARY_PATH",
            "LD_32_PRELOAD",
            "BASH_ENV",
            "PS4",
            "command",
            "command_args",
            "pidfile",
            "start_cmd",
            "nginx_user",
            "web_env_file",
            "_pidcmd",
            "rc_force",
            "BASH_FUNC_ls%%",
        ] {
            assert!(sensitive(name).is_some(), "{name}");
        }
    }

    #[test]
    fn application_names_are_not() {
        for name in
            ["DATABASE_URL", "API_KEY", "DB_USER", "SECRET_KEY_BASE", "PATHS", "MY_PATH", "Command", "users"]
        {
            assert_eq!(sensitive(name), None, "{name}");
        }
    }
}
