//! Exit statuses, from sysexits(3), as DESIGN.md "Exit codes" fixes them.
//!
//! Every error maps to exactly one of these through `Error::exit_code`; hooks then pass the
//! status through the tenant's failure policy. Nothing else in the crate picks a number.

/// Success, or nothing to do.
pub const OK: u8 = 0;
/// The command line was wrong (`EX_USAGE`).
pub const USAGE: u8 = 64;
/// The vault returned data we refuse to write: duplicate names, NUL in a value, an env file
/// over the writer's 16 MiB limit (`EX_DATAERR`).
pub const DATAERR: u8 = 65;
/// An explicitly named tenant or collection does not exist (`EX_NOINPUT`).
pub const NOINPUT: u8 = 66;
/// The vault or the `bw` CLI is unavailable (`EX_UNAVAILABLE`).
pub const UNAVAILABLE: u8 = 69;
/// An internal error (a bug: a panic), reported after the cleanup ran (`EX_SOFTWARE`).
pub const SOFTWARE: u8 = 70;
/// A write into a jail root was refused or failed (`EX_CANTCREAT`).
pub const CANTCREAT: u8 = 73;
/// Standard output could not be written, other than by a closed pipe (`EX_IOERR`).
pub const IOERR: u8 = 74;
/// The host-wide lock could not be taken before the deadline (`EX_TEMPFAIL`).
pub const TEMPFAIL: u8 = 75;
/// Permissions: a credentials file too open, wrong vault credentials, running in a jail (`EX_NOPERM`).
pub const NOPERM: u8 = 77;
/// Configuration error (`EX_CONFIG`).
pub const CONFIG: u8 = 78;

/// The reader of standard output went away (EPIPE): 128 + SIGPIPE, as if SIGPIPE had ended
/// the process, which is what a shell reports for such a pipeline member; nothing is printed.
pub const BROKEN_PIPE: u8 = 141;

/// The conventional status of a process that stopped because of `signal`: 128 + its number
/// (255 for the few numbers past 127).
pub fn for_signal(signal: i32) -> u8 {
    u8::try_from(128_i32.saturating_add(signal)).unwrap_or(u8::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_those_of_sysexits_h() {
        // /usr/include/sysexits.h on FreeBSD and glibc.
        assert_eq!(
            [USAGE, DATAERR, NOINPUT, UNAVAILABLE, SOFTWARE, CANTCREAT, IOERR, TEMPFAIL, NOPERM, CONFIG],
            [64, 65, 66, 69, 70, 73, 74, 75, 77, 78]
        );
        assert_eq!(OK, 0);
    }

    #[test]
    fn signal_status_is_128_plus_number() {
        assert_eq!(for_signal(libc::SIGTERM), 143);
        assert_eq!(for_signal(libc::SIGINT), 130);
        assert_eq!(for_signal(libc::SIGHUP), 129);
        assert_eq!(for_signal(libc::SIGPIPE), BROKEN_PIPE);
        assert_eq!(for_signal(127), 255);
        assert_eq!(for_signal(128), 255);
    }
}
