//! Vault data never leaks (issue 9, item 1): no message, provision-log row or status field holds
//! any part of an item's notes or values, whatever shape the data has. A refused Secure Note
//! line or `dir` source line is named by its item (or file) and line number only.
//!
//! Each hostile value carries a distinctive marker in each of its parts (before and after `=`,
//! inside and outside quotes), and every marker is looked for in stderr and stdout at `-vv`, in
//! every file of the database's directory (the database, its WAL and journal: the raw bytes, so
//! every column of every table), and in `status`, `status --json` and `tenant show --json`.

use std::path::Path;

use crate::core::web;
use crate::support::fake_bw::Item;
use crate::support::host::{Host, Outcome};
use crate::vault::vault;

/// Note lines that are not (acceptable) assignments, each with its markers.
const HOSTILE_NOTE_LINES: [(&str, &[&str]); 10] = [
    // A connection URL: not KEY=value, but it has '=' (and would pass as a literal value).
    (
        "postgres://u-Mk31:PgPass-Zq81@db-Hb22/app?sslmode=require-Rt64",
        &["Mk31", "Zq81", "Hb22", "Rt64", "PgPass"],
    ),
    // Base64 keys whose padding makes them look like NAME=, with and without a valid name.
    ("c2VjcmV0+/Kx7Ww9dEf==", &["c2VjcmV0", "Kx7Ww9dEf"]),
    ("dGhpcyBpcyBhIHNlY3JldC1LazU1==", &["dGhpcyBpcyBh", "LazU1"]),
    // Words before '=' (a name once spaces become '_').
    ("Authorization Bearer-Gq28 tok=abc-Wv73", &["Authorization", "Gq28", "Wv73"]),
    ("just-a-secret-Nn12 with spaces", &["Nn12"]),
    ("OPEN='unterminated-Xy77", &["Xy77"]),
    ("RUN=$(cat /x-Vv31)-Ab90", &["Vv31", "Ab90"]),
    ("TICK=`id-Cc58`", &["Cc58"]),
    ("TAIL=\"quoted-Dd47\" trailing-Tr55", &["Dd47", "Tr55"]),
    ("9LIVES-Ll40=value-Ee36", &["Ll40", "Ee36"]),
];

/// Refused in a note but not in a file, where `NAME=` is sh's empty value: a base64 key with one
/// `=` of padding, whose body would otherwise be a variable name (and logged as one).
const HOSTILE_NOTE_ONLY_LINES: [(&str, &[&str]); 1] = [("c2VjcmV0a2V5SHk5NA=", &["c2VjcmV0a2V5", "SHk5NA"])];

/// Every marker of `lines`.
fn markers(lines: &[(&str, &[&'static str])]) -> Vec<&'static str> {
    lines.iter().flat_map(|(_, m)| m.iter().copied()).collect()
}

/// The raw bytes of every file next to the database (the database, `-wal`, `-shm`, `-journal`).
fn database_bytes(db: &Path) -> Vec<(String, Vec<u8>)> {
    std::fs::read_dir(db.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .map(|p| (p.display().to_string(), std::fs::read(&p).unwrap()))
        .collect()
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle.as_bytes())
}

/// None of `markers` is in `outcomes`, in the database files, or in what `status`,
/// `status --json` and `tenant show --json` print.
#[track_caller]
fn assert_nowhere(host: &Host, outcomes: &[&Outcome], markers: &[&str]) {
    let reports = [
        host.run(&["status"]),
        host.run(&["status", "--json"]),
        host.run(&["status", "web", "--json"]),
        host.run(&["tenant", "show", "web", "--json"]),
    ];
    for report in &reports {
        assert_eq!(report.code, Some(0), "{report:?}");
    }
    for marker in markers {
        for out in outcomes.iter().copied().chain(&reports) {
            assert!(!out.all_output().contains(marker), "{marker} printed:\n{}", out.all_output());
        }
        for (file, bytes) in database_bytes(&host.db) {
            assert!(!contains(&bytes, marker), "{marker} stored in {file}");
        }
    }
}

#[test]
fn refused_note_lines_are_named_by_item_and_line_and_no_part_of_them_is_shown_or_stored() {
    let mut v = vault(&["web"]);
    let collection = "00000000-0000-4000-8000-000000000000";
    let note_id = "60000000-0000-4000-8000-000000000000";
    let lines: Vec<(&str, &[&str])> =
        HOSTILE_NOTE_LINES.iter().chain(&HOSTILE_NOTE_ONLY_LINES).copied().collect();
    let mut notes = String::from("GOOD='kept-Gg19'\n");
    for (line, _) in &lines {
        notes.push_str(line);
        notes.push('\n');
    }
    v.fake.item(Item::note(note_id, "hostile notes", &notes).in_collection(collection));
    // A Login item whose name is not a variable name: its password is not shown either.
    v.fake.item(
        Item::login("70000000-0000-4000-8000-000000000000", "bad name!", "login-pw-Jj63")
            .in_collection(collection),
    );
    v.fake.install();

    let provision = v.host.run(&["-vv", "provision", "web"]);
    provision.expect(0);
    for index in 0..lines.len() {
        provision.stderr_has(&format!("item \"hostile notes\" (id {note_id}) line {}: skipped: ", index + 2));
    }
    provision.stderr_has("item \"bad name!\" (id 70000000-0000-4000-8000-000000000000): skipped: ");
    let env = std::fs::read_to_string(v.host.root_of("web").join(".env")).unwrap();
    assert!(env.contains("GOOD='kept-Gg19'\n"), "{env}");
    let dry_run = v.host.run(&["-vv", "provision", "--dry-run", "web"]);
    dry_run.expect(0);
    let hook = v.host.run(&["-vv", "hook", "start", "web"]);
    hook.expect(0);

    let mut all = markers(&lines);
    all.extend(["kept-Gg19", "login-pw-Jj63"]);
    assert_nowhere(&v.host, &[&provision, &dry_run, &hook], &all);
    v.assert_clean();
}

#[test]
fn errors_caused_by_note_lines_name_variables_and_lines_never_values() {
    let mut v = vault(&["web"]);
    let collection = "00000000-0000-4000-8000-000000000000";
    // DB_PASSWORD is also the fixture's Login item: a duplicate, exit 65, recorded as failed.
    let notes = "DB_PASSWORD='dup-value-Hh83 and more-Qm02'\n";
    v.fake.item(Item::note("60000000-0000-4000-8000-000000000001", "dup", notes).in_collection(collection));
    v.fake.install();
    let dup = v.host.run(&["-vv", "provision", "web"]);
    dup.expect(65).stderr_has("duplicate variable DB_PASSWORD").stderr_has("item \"dup\"");
    dup.stderr_has("line 1");

    // A NUL in a note's value: 65 too, naming the variable.
    let mut v2 = vault(&["web"]);
    let notes = "NUL_VALUE='before-Pp71\0after-Ss82'\n";
    v2.fake.item(Item::note("60000000-0000-4000-8000-000000000002", "nul", notes).in_collection(collection));
    v2.fake.install();
    let nul = v2.host.run(&["-vv", "provision", "web"]);
    nul.expect(65).stderr_has("the value of NUL_VALUE contains a NUL byte");

    assert_nowhere(&v.host, &[&dup], &["Hh83", "Qm02", "dup-value", "pw-of-web"]);
    assert_nowhere(&v2.host, &[&nul], &["Pp71", "Ss82", "pw-of-web"]);
    v.assert_clean();
    v2.assert_clean();
}

#[test]
fn a_refused_dir_source_line_is_named_by_file_and_line_and_no_part_of_it_is_shown_or_stored() {
    let (host, root) = web(&[]);
    let secrets = host.secrets_path("web");
    let mut outcomes = Vec::new();
    let mut all = Vec::new();
    for (line, markers) in HOSTILE_NOTE_LINES.iter().chain(&[
        ("B=two words-Wq11", &["Wq11"][..]),
        ("HOME_DIR=~/x-Ff25", &["Ff25"][..]),
        ("C='ok-Uu42'junk-Yy93;rm", &["Uu42", "Yy93"][..]),
        ("D=\"multi\nline-Oo64", &["Oo64"][..]),
    ]) {
        // Line 1 is fine, line 2 refused; a multi-line value must not shift the number.
        host.secrets("web", &format!("A=1\n{line}\nZ='z-Ii05'\n"));
        let out = host.run(&["-vv", "provision", "web"]);
        out.expect(78).stderr_has(&format!("{}:2: ", secrets.display()));
        outcomes.push(out);
        all.extend_from_slice(markers);
    }
    all.push("z-Ii05");
    assert!(!root.join(".env").exists());
    let refs: Vec<&Outcome> = outcomes.iter().collect();
    assert_nowhere(&host, &refs, &all);
}
