//! Process hardening at start-up (DESIGN.md invariants 5 and 6).
//!
//! The process holds vault credentials and secret values in memory, so it disables core dumps
//! (`RLIMIT_CORE` = 0) and tracing (`PR_SET_DUMPABLE` on Linux, procctl `PROC_TRACE_CTL` on
//! FreeBSD). On FreeBSD it refuses to run inside a jail: it is a host tool, and a jail's root
//! could otherwise aim it at another tenant's data.

use crate::error::{Error, Result};

pub fn harden() -> Result<()> {
    let fail = |what: &str, e: nix::Error| Error::Permission(format!("could not {what}: {e}"));
    nix::sys::resource::setrlimit(nix::sys::resource::Resource::RLIMIT_CORE, 0, 0)
        .map_err(|e| fail("disable core dumps", e))?;
    disable_tracing().map_err(|e| fail("disable tracing", e))
}

#[cfg(target_os = "linux")]
fn disable_tracing() -> nix::Result<()> {
    nix::sys::prctl::set_dumpable(false)
}

#[cfg(target_os = "freebsd")]
fn disable_tracing() -> nix::Result<()> {
    let mut arg: libc::c_int = libc::PROC_TRACE_CTL_DISABLE;
    // SAFETY: procctl(2) on our own pid (0) with PROC_TRACE_CTL reads one c_int from `arg`,
    // which lives for the duration of the call.
    let rc =
        unsafe { libc::procctl(libc::P_PID, 0, libc::PROC_TRACE_CTL, (&raw mut arg).cast::<libc::c_void>()) };
    nix::errno::Errno::result(rc).map(drop)
}

#[cfg(not(any(target_os = "linux", target_os = "freebsd")))]
fn disable_tracing() -> nix::Result<()> {
    Ok(())
}

/// Refuses to run inside a jail (`security.jail.jailed` is 1 there).
#[cfg(target_os = "freebsd")]
pub fn refuse_inside_jail() -> Result<()> {
    use sysctl::Sysctl;
    let jailed = sysctl::Ctl::new("security.jail.jailed")
        .and_then(|ctl| ctl.value_string())
        .map_err(|e| Error::Permission(format!("could not read security.jail.jailed: {e}")))?;
    if jailed.trim() == "0" {
        Ok(())
    } else {
        Err(Error::Permission(
            "colibri-vault runs on the host, not inside a jail (security.jail.jailed=1)".into(),
        ))
    }
}

#[cfg(not(target_os = "freebsd"))]
pub fn refuse_inside_jail() -> Result<()> {
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn core_dumps_are_disabled() {
        super::harden().unwrap();
        let (soft, hard) = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_CORE).unwrap();
        assert_eq!((soft, hard), (0, 0));
        #[cfg(target_os = "linux")]
        assert!(!nix::sys::prctl::get_dumpable().unwrap());
    }
}
