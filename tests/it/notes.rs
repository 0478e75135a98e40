//! Secure Note lines through the built binary (issue 9): read with the `dir` source's
//! `KEY=value` grammar (`MODE='prod'` gives `prod`, quoted parts join, quoted values span lines),
//! plus the one allowance that keeps recorded vault data working: a value with no quote,
//! backslash, `$` or backtick is taken literally to the end of the line (`B=two words`, the
//! note of reference/bw-cli.md). A refused line is skipped and the others are kept.

use crate::support::fake_bw::Item;
use crate::vault::vault;

const COLLECTION: &str = "00000000-0000-4000-8000-000000000000";

#[test]
fn note_lines_are_read_with_the_dir_source_grammar_and_the_literal_allowance() {
    let mut v = vault(&["web"]);
    // The recorded vault's note, verbatim.
    v.fake.item(
        Item::note("80000000-0000-4000-8000-000000000001", "bundle", "A=1\nB=two words")
            .in_collection(COLLECTION),
    );
    let notes = concat!(
        "# quoted as sh would read them\r\n",
        "GREETING=\"it's \\\"x\\\" \\$5\"\r\n",
        "JOINED='it'\\''s'\n",
        "CERT='-----BEGIN\nabc\n-----END'\n",
        "export PLAIN=/a:/b #not a comment in a literal value\n",
        "EMPTY=''\n",
        "SKIPPED=$(id) # refused: an expansion\n",
        "KEPT=after the refused line\n",
    );
    v.fake
        .item(Item::note("80000000-0000-4000-8000-000000000002", "quoted", notes).in_collection(COLLECTION));
    v.fake.install();
    let out = v.host.run(&["provision", "web"]);
    out.expect(0).stderr_has("item \"quoted\" (id 80000000-0000-4000-8000-000000000002) line 9: skipped: ");
    let env = std::fs::read_to_string(v.host.root_of("web").join(".env")).unwrap();
    assert_eq!(
        env,
        concat!(
            "A='1'\n",
            "API_URL='https://api.example/$x'\n",
            "B='two words'\n",
            "CERT='-----BEGIN\nabc\n-----END'\n",
            "DB_PASSWORD='pw-of-web'\n",
            "EMPTY=''\n",
            "GREETING='it'\\''s \"x\" $5'\n",
            "JOINED='it'\\''s'\n",
            "KEPT='after the refused line'\n",
            "MODE='prod'\n",
            "PLAIN='/a:/b #not a comment in a literal value'\n",
        )
    );
    v.assert_clean();
}
