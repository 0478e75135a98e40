//! colibri-vault driving the REAL `bw` CLI (npm @bitwarden/cli), for everything that needs no
//! server (issue 3, item 6): a fresh app-data dir, an unreachable https server, an http URL,
//! missing credentials. Each bw call costs about a second, so the scenarios are few; the full
//! cycle against a protocol-faithful server is the server tier's job.

use std::os::unix::fs::MetadataExt;
use std::path::Path;

use crate::support::host::Host;
use crate::support::real_bw;

/// A host using the bw source with the real bw and a server nothing listens on.
fn host(bw: &Path) -> Host {
    let host = Host::new();
    host.write_provider_env(&format!(
        "BW_CLIENTID=user.26fb04eb-a416-4088-a7b1-8d954bc53d3f\nBW_CLIENTSECRET=RealBwTierClientSecret42\n\
         BW_PASSWORD='real bw tier password'\nBW_SERVER=https://127.0.0.1:9\nCOLIBRI_BW={}\n",
        bw.display()
    ));
    host.tenant("web", &[]);
    host
}

/// bw's data in `state/bw` holds no client secret and no token.
#[track_caller]
fn assert_logged_out(host: &Host) {
    let data = std::fs::read_to_string(host.state_dir.join("bw/data.json")).unwrap_or_else(|_| "{}".into());
    assert!(!data.contains("RealBwTierClientSecret42"), "client secret left in data.json");
    let left = real_bw::credentials_in(&data);
    assert!(left.is_empty(), "credentials left in data.json: {left:?}");
    assert!(!host.state_dir.join("bw/colibri-session").exists());
}

#[test]
fn unreachable_server_is_69_with_bws_message_and_nothing_stays_logged_in() {
    let Some(bw) = real_bw::require("real bw against an unreachable server") else { return };
    let host = host(&bw);
    let out = host.run(&["provision", "web"]);
    out.expect(69).stderr_has("bw login failed: FetchError: request to https://127.0.0.1:9/identity/connect/token failed, reason: connect ECONNREFUSED 127.0.0.1:9");
    assert!(!out.all_output().contains("RealBwTierClientSecret42"));
    assert!(!out.all_output().contains("Could not find data file"), "bw's fresh-dir notice is noise");
    assert_logged_out(&host);
    // The app-data dir was created fresh, private, by colibri-vault.
    assert_eq!(std::fs::metadata(host.state_dir.join("bw")).unwrap().mode() & 0o777, 0o700);
    // A hook with the default policy lets the jail start and says why.
    host.run(&["hook", "start", "web"]).expect(0).stderr_has("ECONNREFUSED").stderr_has("policy continue");
    assert_logged_out(&host);
}

#[test]
fn an_http_server_url_is_refused_before_bw_runs() {
    let Some(bw) = real_bw::require("real bw with an http URL") else { return };
    let host = host(&bw);
    host.append_provider_env("BW_SERVER=http://127.0.0.1:8222\n");
    host.run(&["provision", "web"]).expect(78).stderr_has("BW_SERVER must be an https:// URL");
    assert!(!host.state_dir.join("bw/data.json").exists(), "bw never ran");
}

#[test]
fn missing_credentials_are_78_and_bw_never_prompts() {
    let Some(bw) = real_bw::require("real bw with missing credentials") else { return };
    let host = Host::new();
    host.write_provider_env(&format!("BW_SERVER=https://127.0.0.1:9\nCOLIBRI_BW={}\n", bw.display()));
    host.tenant("web", &[]);
    host.run(&["provision", "web"]).expect(78).stderr_has("lacks BW_CLIENTID, BW_CLIENTSECRET, BW_PASSWORD");
}

#[test]
fn an_empty_client_secret_counts_as_missing() {
    // bw, given an empty BW_CLIENTSECRET without --nointeraction, would prompt and exit 0 with
    // an empty stdout; colibri-vault never gets that far: empty means missing, exit 78.
    let Some(bw) = real_bw::require("real bw with an empty secret") else { return };
    let host = host(&bw);
    host.append_provider_env("BW_CLIENTSECRET=''\n");
    host.run(&["provision", "web"]).expect(78).stderr_has("lacks BW_CLIENTSECRET");
    assert_logged_out(&host);
}
