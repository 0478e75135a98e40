//! FreeBSD: `jail_get(2)` through the `jail` crate. Unverified on a real FreeBSD kernel in CI
//! (nothing here can run FreeBSD binaries); it compiles and passes clippy for the target.

use super::Running;
use crate::error::{Error, Result};

pub fn by_name(name: &str) -> Result<Option<Running>> {
    match jail::RunningJail::from_name(name) {
        Ok(running) => {
            let path = running
                .path()
                .map_err(|e| Error::Jail(format!("could not read the path of jail {name}: {e}")))?;
            Ok(Some(Running { name: name.to_owned(), jid: running.jid, path }))
        }
        // The crate reports a missing jail as JailGetError("jail \"foo\" not found").
        Err(jail::JailError::JailGetError(message)) if message.contains("not found") => Ok(None),
        Err(e) => Err(Error::Jail(format!("could not look up jail {name}: {e}"))),
    }
}

pub fn by_jid(jid: i32) -> Result<Running> {
    let running = jail::RunningJail::from_jid(jid)
        .ok_or_else(|| Error::Jail(format!("no running jail has JID {jid}")))?;
    let name =
        running.name().map_err(|e| Error::Jail(format!("could not read the name of JID {jid}: {e}")))?;
    let path =
        running.path().map_err(|e| Error::Jail(format!("could not read the path of JID {jid}: {e}")))?;
    Ok(Running { name, jid, path })
}
