//! Round-trip properties of the three env file formats (issue 2, item 5), for arbitrary UTF-8
//! values without NUL, weighted towards what breaks quoting: quotes, `$`, backticks,
//! backslashes, newlines and carriage returns, leading dashes, `=`, `#`, unicode (including a
//! BOM and bidi controls).
//!
//! - `sh`: the file sourced by the real /bin/sh (`set -a; . FILE`) gives back byte-identical
//!   values (each printed with `printf '%s'` into a file of its own, so trailing newlines
//!   count), and so does bash in POSIX mode where it is installed;
//! - `dotenv`: the `dotenvy` crate reads back the same pairs, in order;
//! - `json`: `serde_json` reads back the same map;
//! - each format also passes the library's own parse-back check used before every rename.
//!
//! Cases are few by default (each spawns shells; `PROPTEST_CASES=N` runs more); the values are
//! short but dense in special characters.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;
use std::path::Path;
use std::process::Command;

use colibri_vault::envfile::{self, Entries, Entry, Format};
use colibri_vault::secret::Secret;
use proptest::prelude::*;

fn value() -> impl Strategy<Value = String> {
    let special = prop::sample::select(vec![
        '\'', '"', '$', '`', '\\', '\n', '\r', '\t', ' ', '-', '=', '#', '{', '}', '(', ')', ';', '&', '|',
        '*', '?', '~', '!', '%', 'a', 'Z', '0', 'é', '中', '😀', '\u{feff}', '\u{202e}', '\u{85}',
    ]);
    let any_char = any::<char>().prop_filter("no NUL", |c| *c != '\0');
    let chars = prop::collection::vec(prop_oneof![4 => special, 1 => any_char], 0..24)
        .prop_map(|v| v.into_iter().collect::<String>());
    prop_oneof![
        3 => chars.clone(),
        1 => chars.clone().prop_map(|v| format!("-{v}")),
        1 => chars.prop_map(|v| format!("--n={v}\n")),
    ]
}

/// 64 cases by default; `PROPTEST_CASES=N` for a deeper run.
fn cases() -> u32 {
    std::env::var("PROPTEST_CASES").ok().and_then(|n| n.parse().ok()).unwrap_or(64)
}

fn entries(values: &[String]) -> Entries {
    values
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let name = format!("V{i}");
            (name.clone(), Entry { name, value: Secret::from(v.as_str()), origin: format!("case {i}") })
        })
        .collect()
}

/// Sources `file` with `shell` and returns each variable's value as the shell sees it.
fn sourced(shell: &[&str], file: &Path, out: &Path, count: usize) -> Vec<Vec<u8>> {
    let mut script = String::from("set -a; . \"$1\" || exit 9; set +a\n");
    for i in 0..count {
        let _ = writeln!(script, "printf '%s' \"$V{i}\" > \"$2/V{i}\"");
    }
    let status = Command::new(shell[0])
        .args(&shell[1..])
        .args(["-c", &script, "sh"])
        .arg(file)
        .arg(out)
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .status()
        .unwrap();
    assert!(status.success(), "{shell:?} failed on {}", file.display());
    (0..count).map(|i| fs::read(out.join(format!("V{i}"))).unwrap()).collect()
}

fn shells() -> Vec<Vec<&'static str>> {
    let mut shells = vec![vec!["/bin/sh"]];
    if Path::new("/bin/bash").exists() {
        shells.push(vec!["/bin/bash", "--posix"]);
    }
    shells
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases()))]

    #[test]
    fn sh_files_sourced_by_bin_sh_give_back_the_exact_values(values in prop::collection::vec(value(), 1..5)) {
        let e = entries(&values);
        let bytes = envfile::render(Format::Sh, &e).unwrap();
        prop_assert!(envfile::round_trips(Format::Sh, &bytes, &e));
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join(".env");
        fs::write(&file, bytes.as_slice()).unwrap();
        for shell in shells() {
            let out = dir.path().join(shell[0].replace('/', "_"));
            fs::create_dir(&out).unwrap();
            let got = sourced(&shell, &file, &out, values.len());
            for (value, got) in values.iter().zip(&got) {
                prop_assert_eq!(value.as_bytes(), got.as_slice(), "{:?}", shell);
            }
        }
    }

    #[test]
    fn dotenv_files_read_by_dotenvy_give_back_the_exact_values(values in prop::collection::vec(value(), 1..5)) {
        let e = entries(&values);
        let bytes = envfile::render(Format::Dotenv, &e).unwrap();
        prop_assert!(envfile::round_trips(Format::Dotenv, &bytes, &e));
        let got: Vec<(String, String)> = dotenvy::from_read_iter(bytes.as_slice())
            .collect::<Result<_, _>>()
            .map_err(|err| TestCaseError::fail(format!("dotenvy: {err}")))?;
        let expected: Vec<(String, String)> =
            values.iter().enumerate().map(|(i, v)| (format!("V{i}"), v.clone())).collect();
        prop_assert_eq!(got, expected);
    }

    #[test]
    fn json_files_round_trip_with_serde_json(values in prop::collection::vec(value(), 1..5)) {
        let e = entries(&values);
        let bytes = envfile::render(Format::Json, &e).unwrap();
        prop_assert!(envfile::round_trips(Format::Json, &bytes, &e));
        prop_assert!(bytes.ends_with(b"}\n"), "no trailing newline");
        let got: BTreeMap<String, String> = serde_json::from_slice(&bytes).unwrap();
        let expected: BTreeMap<String, String> =
            values.iter().enumerate().map(|(i, v)| (format!("V{i}"), v.clone())).collect();
        prop_assert_eq!(got, expected);
    }
}
