//! `colibri-bwserver --spec SPEC.json --dir DIR`: a test-only Bitwarden-protocol server that the
//! real `bw` CLI can log in to, unlock against, list and sync. See README.md for the interface.
//!
//! Start-up: generate the account and a throw-away CA, listen on 127.0.0.1 with an OS-chosen
//! port, write `DIR/ca.pem`, `DIR/account.json` and, last and atomically, `DIR/url`. Then serve
//! until stdin reaches EOF or a SIGTERM/SIGINT/SIGHUP arrives, so a test that dies takes its
//! server with it.

mod account;
mod crypto;
mod http;
mod knobs;
mod server;
mod spec;
mod tls;
mod wire;

use std::ffi::OsString;
use std::io;
use std::net::{Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::SystemTime;

use serde_json::json;

use crate::account::{Account, Vault};
use crate::server::Server;
use crate::spec::Spec;

const USAGE: &str = "usage: colibri-bwserver --spec SPEC.json --dir DIR

Serves a generated Bitwarden account over HTTPS on 127.0.0.1 for the real bw CLI.
Writes DIR/ca.pem, DIR/account.json, then DIR/url (last, atomically); appends one JSON
line per request to DIR/requests.jsonl; re-reads DIR/knobs.json on every request.
Exits when stdin reaches EOF (keep a pipe to it open) or on SIGTERM. See README.md.";

fn main() -> ExitCode {
    match run(std::env::args_os().skip(1).collect()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("colibri-bwserver: {e}");
            ExitCode::from(2)
        }
    }
}

fn run(args: Vec<OsString>) -> Result<(), String> {
    let (spec_path, dir) = parse_args(args)?;
    let text = std::fs::read_to_string(&spec_path)
        .map_err(|e| format!("cannot read {}: {e}", spec_path.display()))?;
    let spec = Spec::parse(&text)?;
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;

    let account = Account::generate(&spec);
    let vault = Vault::new(account.org_id, &spec.collections, &spec.items, SystemTime::now())?;
    let tls = tls::generate()?;
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .map_err(|e| format!("cannot listen on 127.0.0.1: {e}"))?;
    let port = listener.local_addr().map_err(|e| e.to_string())?.port();
    let url = format!("https://127.0.0.1:{port}");

    write_atomic(&dir.join("ca.pem"), tls.ca_pem.as_bytes())?;
    write_atomic(&dir.join("account.json"), account_summary(&url, &account, &vault).as_bytes())?;
    let server = Arc::new(Server::new(dir.clone(), url.clone(), spec, account, vault));
    exit_with_parent();
    // Last: a test polling for `url` finds everything else in place.
    write_atomic(&dir.join("url"), url.as_bytes())?;

    for tcp in listener.incoming() {
        let Ok(tcp) = tcp else { continue };
        let server = Arc::clone(&server);
        let config = Arc::clone(&tls.config);
        std::thread::spawn(move || server.serve(tcp, config));
    }
    Ok(())
}

fn parse_args(args: Vec<OsString>) -> Result<(PathBuf, PathBuf), String> {
    let mut spec = None;
    let mut dir = None;
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        match arg.to_str() {
            Some("--spec") => spec = args.next().map(PathBuf::from),
            Some("--dir") => dir = args.next().map(PathBuf::from),
            Some("-h" | "--help") => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            _ => return Err(format!("unexpected argument {}\n{USAGE}", arg.display())),
        }
    }
    match (spec, dir) {
        (Some(spec), Some(dir)) => Ok((spec, dir)),
        _ => Err(format!("--spec and --dir are required\n{USAGE}")),
    }
}

/// Exit when stdin reaches EOF (the parent closed its end or died) or on a terminating signal.
fn exit_with_parent() {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    std::thread::spawn(|| {
        let _ = io::copy(&mut io::stdin().lock(), &mut io::sink());
        std::process::exit(0);
    });
    let mut signals = signal_hook::iterator::Signals::new([SIGTERM, SIGINT, SIGHUP])
        .expect("signal handlers can be installed at start-up");
    std::thread::spawn(move || {
        if signals.forever().next().is_some() {
            std::process::exit(0);
        }
    });
}

/// Ids a test may want without parsing bw's output. No secrets: the test wrote those itself.
fn account_summary(url: &str, account: &Account, vault: &Vault) -> String {
    let name_of = |id: &uuid::Uuid| vault.collections.iter().find(|c| c.id == *id).map(|c| c.name.clone());
    let summary = json!({
        "url": url,
        "user_id": account.user_id,
        "client_id": account.client_id,
        "email": account.email,
        "kdf_iterations": account.kdf_iterations,
        "organization": {"id": account.org_id, "name": account.org_name},
        "collections": vault.collections.iter()
            .map(|c| json!({"id": c.id, "name": c.name})).collect::<Vec<_>>(),
        "items": vault.items.iter().map(|i| json!({
            "id": i.id,
            "name": i.spec.name,
            "type": i.spec.kind,
            "collection_ids": i.collection_ids,
            "collections": i.collection_ids.iter().filter_map(name_of).collect::<Vec<_>>(),
            "deleted": i.spec.deleted,
        })).collect::<Vec<_>>(),
    });
    serde_json::to_string_pretty(&summary).expect("JSON values serialize")
}

fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), String> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    std::fs::write(&tmp, bytes)
        .and_then(|()| std::fs::rename(&tmp, path))
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
}
