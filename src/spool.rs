//! The request spool for group commit (issue 5): concurrent hooks share one vault session.
//!
//! A hook that finds the host-wide lock taken *registers* its request as a file in
//! `$COLIBRI_RUN_DIR/spool/` and then waits for either the lock or an answer. Whoever holds the
//! lock *claims* every registered request after unlocking the vault and before listing it,
//! serves them in its session, and writes each claimant's *answer* (its exit status and a
//! message, never a secret). So a waiter whose tenant was served exits without a session of its
//! own; a request registered after the claim stays registered and is served by the next
//! session (the waiter takes the lock when the holder releases it), never from a listing that
//! predates it. Every step is a rename or an `O_EXCL` create in one private directory, so no
//! request is lost or served twice. Files are read as `hostfile::OWN_FILE` (no link followed, no
//! blocking open, a private regular file of ours), so nothing planted there can hang a reader.

use std::fs;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::lock::private_dir;

/// Answers nobody collected (their waiter died) are removed after this long.
const STALE: Duration = Duration::from_secs(3600);

/// What a waiter asks for.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Ticket {
    pub jail: String,
    pub path: Option<PathBuf>,
}

/// What the holder answers: the exit status the waiter would have had, and why.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Answer {
    pub code: u8,
    pub message: String,
}

pub struct Spool {
    dir: PathBuf,
}

/// A registered request, identified by its file stem.
pub struct Registration {
    id: String,
}

/// A request the holder has taken on.
pub struct Claim {
    id: String,
    pub ticket: Ticket,
}

impl Spool {
    pub fn new(run_dir: &Path) -> Result<Spool> {
        private_dir(run_dir)?;
        let dir = run_dir.join("spool");
        private_dir(&dir)?;
        Ok(Spool { dir })
    }

    fn file(&self, id: &str, kind: &str) -> PathBuf {
        self.dir.join(format!("{id}.{kind}"))
    }

    /// Registers `ticket`; it becomes visible to holders atomically (rename).
    pub fn register(&self, ticket: &Ticket) -> Result<Registration> {
        let nanos = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
        let id = format!("{nanos:020}-{}", std::process::id());
        let tmp = self.file(&id, "tmp");
        let bytes = serde_json::to_vec(ticket).map_err(|e| Error::write(&tmp, e.to_string()))?;
        write_new(&tmp, &bytes)?;
        fs::rename(&tmp, self.file(&id, "req")).map_err(|e| Error::write(&tmp, e.to_string()))?;
        Ok(Registration { id })
    }

    /// The answer to `registration`, once a holder has written it (consumed when read).
    pub fn answer(&self, registration: &Registration) -> Option<Answer> {
        let path = self.file(&registration.id, "done");
        let bytes = crate::hostfile::read(&path, &crate::hostfile::OWN_FILE).ok()??;
        let _ = fs::remove_file(&path);
        serde_json::from_slice(&bytes).ok()
    }

    /// Takes the registration back if no holder has claimed it yet. Returns whether it was
    /// still unclaimed (if not, a holder serves it and its answer will appear).
    pub fn withdraw(&self, registration: &Registration) -> bool {
        fs::remove_file(self.file(&registration.id, "req")).is_ok()
    }

    /// Claims every registered request, oldest first.
    pub fn claim_all(&self) -> Vec<Claim> {
        let Ok(entries) = fs::read_dir(&self.dir) else { return Vec::new() };
        let mut ids: Vec<String> = entries
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter_map(|name| name.strip_suffix(".req").map(str::to_owned))
            .collect();
        ids.sort();
        let mut claims = Vec::new();
        for id in ids {
            let claimed = self.file(&id, "claimed");
            // The rename is the claim: exactly one holder (or the withdrawing waiter) wins.
            if fs::rename(self.file(&id, "req"), &claimed).is_err() {
                continue;
            }
            let bytes = crate::hostfile::read(&claimed, &crate::hostfile::OWN_FILE).ok().flatten();
            match bytes.and_then(|b| serde_json::from_slice::<Ticket>(&b).ok()) {
                Some(ticket) => claims.push(Claim { id, ticket }),
                None => {
                    let _ = fs::remove_file(&claimed);
                }
            }
        }
        claims
    }

    /// Answers a claim (atomically) and removes it.
    pub fn answer_claim(&self, claim: &Claim, answer: &Answer) -> Result<()> {
        let tmp = self.file(&claim.id, "answer-tmp");
        let bytes = serde_json::to_vec(answer).map_err(|e| Error::write(&tmp, e.to_string()))?;
        let _ = fs::remove_file(&tmp);
        write_new(&tmp, &bytes)?;
        fs::rename(&tmp, self.file(&claim.id, "done")).map_err(|e| Error::write(&tmp, e.to_string()))?;
        let _ = fs::remove_file(self.file(&claim.id, "claimed"));
        Ok(())
    }

    /// Hands a claim back unanswered: registered again, for its waiter to withdraw and serve
    /// itself (or for the next holder).
    pub fn release(&self, claim: &Claim) {
        let _ = fs::rename(self.file(&claim.id, "claimed"), self.file(&claim.id, "req"));
    }

    /// Removes answers and leftovers older than an hour (their waiters are gone).
    pub fn sweep(&self) {
        let Ok(entries) = fs::read_dir(&self.dir) else { return };
        for entry in entries.flatten() {
            let old = entry
                .metadata()
                .ok()
                .and_then(|m| m.modified().ok())
                .and_then(|t| t.elapsed().ok())
                .is_some_and(|age| age > STALE);
            let name = entry.file_name();
            let kind = Path::new(&name).extension().and_then(|e| e.to_str()).unwrap_or_default();
            if old && matches!(kind, "done" | "tmp" | "answer-tmp" | "claimed") {
                let _ = fs::remove_file(entry.path());
            }
        }
    }
}

fn write_new(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
        .map_err(|e| Error::write(path, e.to_string()))?;
    file.write_all(bytes).map_err(|e| Error::write(path, e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ticket(jail: &str) -> Ticket {
        Ticket { jail: jail.into(), path: None }
    }

    #[test]
    fn register_claim_answer() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::new(&dir.path().join("run")).unwrap();
        let a = spool.register(&ticket("a")).unwrap();
        let b = spool.register(&ticket("b")).unwrap();
        assert!(spool.answer(&a).is_none());
        let claims = spool.claim_all();
        assert_eq!(claims.iter().map(|c| c.ticket.jail.as_str()).collect::<Vec<_>>(), ["a", "b"]);
        assert!(spool.claim_all().is_empty(), "claimed once");
        assert!(!spool.withdraw(&a), "too late to withdraw a claimed request");
        let answer = Answer { code: 0, message: "written".into() };
        spool.answer_claim(&claims[0], &answer).unwrap();
        assert_eq!(spool.answer(&a), Some(answer));
        assert!(spool.answer(&a).is_none(), "answers are consumed");
        assert!(spool.answer(&b).is_none());
    }

    #[test]
    fn a_fifo_planted_in_the_spool_is_never_waited_on() {
        // On a thread with a watchdog: a regression hangs the reader, not the test suite.
        let (done, finished) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let dir = tempfile::tempdir().unwrap();
            let spool = Spool::new(&dir.path().join("run")).unwrap();
            let mode = nix::sys::stat::Mode::from_bits_truncate(0o600);
            let a = spool.register(&ticket("a")).unwrap();
            nix::unistd::mkfifo(&spool.file(&a.id, "done"), mode).unwrap();
            let answer = spool.answer(&a);
            nix::unistd::mkfifo(&spool.file("00000000000000000000-1", "req"), mode).unwrap();
            let claims: Vec<String> = spool.claim_all().into_iter().map(|c| c.ticket.jail).collect();
            let _ = done.send((answer, claims));
        });
        let (answer, claims) =
            finished.recv_timeout(Duration::from_secs(60)).expect("a FIFO in the spool hung its reader");
        assert!(answer.is_none());
        assert_eq!(claims, ["a"]);
    }

    #[test]
    fn a_withdrawn_request_is_not_claimed() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::new(&dir.path().join("run")).unwrap();
        let a = spool.register(&ticket("a")).unwrap();
        assert!(spool.withdraw(&a));
        assert!(spool.claim_all().is_empty());
    }
}
