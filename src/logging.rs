//! Messages for people (stderr) and for the record (syslog, ident `colibri-vault`).
//!
//! Every line passes through `sanitize` at the sink, so whatever untrusted text a message
//! carries (jail names, item names, `bw`'s stderr) cannot inject terminal escapes or forge
//! log lines. Hooks and provisions also go to syslog, because jail(8) shows hook output only on
//! the console. Secrets never reach here: `Secret` cannot be formatted. Logging never panics and
//! never fails the run, whatever stderr is (closed, a pipe nobody reads): see `output::stderr`.

use std::ffi::CString;
use std::sync::OnceLock;

/// Longest line written, in characters.
const MAX_LINE: usize = 2048;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Error,
    Warning,
    Notice,
    Info,
    Debug,
}

pub struct Log {
    max: Level,
    syslog: bool,
}

static SYSLOG_IDENT: OnceLock<CString> = OnceLock::new();

impl Log {
    /// `verbosity`: -1 for `-q`, 0 by default, 1 for `-v`, 2 for `-vv`.
    pub fn new(verbosity: i8, syslog: bool) -> Log {
        let max = match verbosity {
            i8::MIN..=-1 => Level::Error,
            0 => Level::Notice,
            1 => Level::Info,
            _ => Level::Debug,
        };
        if syslog {
            let ident = SYSLOG_IDENT.get_or_init(|| CString::new("colibri-vault").unwrap_or_default());
            // SAFETY: `ident` lives in a static for the rest of the process, as openlog(3) requires.
            unsafe { libc::openlog(ident.as_ptr(), libc::LOG_PID, libc::LOG_DAEMON) };
        }
        Log { max, syslog }
    }

    /// A logger that prints nothing (for internal uses that must stay quiet).
    pub fn quiet() -> Log {
        Log { max: Level::Error, syslog: false }
    }

    pub fn error(&self, message: &str) {
        self.emit(Level::Error, message);
    }
    pub fn warn(&self, message: &str) {
        self.emit(Level::Warning, message);
    }
    /// An outcome worth a line by default (a file written, a hook skipped).
    pub fn notice(&self, message: &str) {
        self.emit(Level::Notice, message);
    }
    pub fn info(&self, message: &str) {
        self.emit(Level::Info, message);
    }
    pub fn debug(&self, message: &str) {
        self.emit(Level::Debug, message);
    }

    fn emit(&self, level: Level, message: &str) {
        let line = crate::sanitize::sanitize(message, MAX_LINE);
        if level <= self.max {
            let prefix = match level {
                Level::Error => "error: ",
                Level::Warning => "warning: ",
                _ => "",
            };
            crate::output::stderr(&format!("colibri-vault: {prefix}{line}\n"));
        }
        // syslog gets outcomes whatever the terminal verbosity; not info/debug chatter.
        if self.syslog && level <= Level::Notice {
            let priority = match level {
                Level::Error => libc::LOG_ERR,
                Level::Warning => libc::LOG_WARNING,
                _ => libc::LOG_NOTICE,
            };
            if let Ok(text) = CString::new(line) {
                // SAFETY: a constant "%s" format with one valid NUL-terminated argument.
                unsafe { libc::syslog(priority, c"%s".as_ptr(), text.as_ptr()) };
            }
        }
    }
}
