//! The independent oracle: lexers nobody here wrote decide what is a
//! constant or a comment, and NormalizeSQL may show none of it.
//!
//! - PostgreSQL texts: PostgreSQL's own scanner (scan.l, via libpg_query
//!   and the `pg_query` crate; standard_conforming_strings on).
//! - MySQL texts: `sqlparser`'s MySQL tokenizer.
//!
//! A generator builds statements from every literal form, comment form,
//! nesting and truncation point, with random payloads (ASCII, non-ASCII,
//! and hostile ones full of quotes, backslashes, dollars and comment
//! delimiters). Two properties:
//! 1. the oracle's constants and comments never overlap a token that
//!    NormalizeSQL shows as written ([`shown_ranges`]);
//! 2. a planted marker never appears in the output — searched for as it
//!    was planted (for a number: the number itself), also when the text is
//!    cut inside it.
//!
//! Where the oracle is not the server (sqlparser takes any Unicode space
//! after `--` as a comment, MySQL only ASCII space and control
//! characters), the generator keeps to what both agree on; the lexer's
//! own tests pin the server's behaviour, checked on MariaDB 10.11.

mod oracle_lexers;

use dbintel_stdlib::sql::{normalize, Dialect};
use oracle_lexers::{mysql_secrets, overlap, postgres_secrets, Oracle};
use proptest::prelude::*;

/// Markers: letters and symbols no template uses, ASCII and not.
fn marker() -> impl Strategy<Value = String> {
    proptest::string::string_regex("[QZXJKVWqzxjkvwéßжΩ€日本 ]{6,20}").expect("valid marker regex")
}

/// Hostile payloads: the characters that open, close and escape things.
fn hostile() -> impl Strategy<Value = String> {
    proptest::string::string_regex("[QZ'\"\\\\$*/#\\-\\n !é日\u{3000}a0;()+`]{0,16}").expect("valid payload regex")
}

fn digits() -> impl Strategy<Value = String> {
    proptest::string::string_regex("[1-9][0-9]{6,12}").expect("valid digits regex")
}

/// A dollar-quote tag: any identifier character but `$`, not starting
/// with a digit.
fn tag() -> impl Strategy<Value = String> {
    proptest::string::string_regex("([a-zA-Z_éжΩ日\u{3000}][a-zA-Z0-9_éжΩ日]{0,4})?").expect("valid tag regex")
}

/// One piece of a statement: its text, the marker planted in it (None when
/// the marker is code, e.g. after MySQL's `--` without a space), and
/// whether it is a hostile payload (which can open or close anything, so
/// that only the oracle can tell what the markers around it are).
#[derive(Debug, Clone)]
struct Piece {
    text: String,
    secret: Option<String>,
    hostile: bool,
}

fn planted(text: String, m: &str) -> Piece {
    Piece { text, secret: Some(m.to_string()), hostile: false }
}

fn code(text: String) -> Piece {
    Piece { text, secret: None, hostile: false }
}

fn hostile_piece(text: String) -> Piece {
    Piece { text, secret: None, hostile: true }
}

fn postgres_piece() -> impl Strategy<Value = Piece> {
    (0usize..24, marker(), hostile(), digits(), tag(), tag()).prop_map(|(form, m, h, d, t1, t2)| {
        let t2 = if t2 == t1 { format!("{t2}x") } else { t2 };
        match form {
            0 => planted(format!("'{m}'"), &m),
            1 => planted(format!("'{m}''{m}'"), &m),
            2 => planted(format!("E'{m}\\'{m}'"), &m),
            3 => planted(format!("e'\\\\{m}'"), &m),
            4 => planted(format!("N'{m}'"), &m),
            5 => planted(format!("B'{m}'"), &m),
            6 => planted(format!("X'{m}'"), &m),
            7 => planted(format!("U&'{m}' UESCAPE '!'"), &m),
            8 => planted(format!("${t1}${m}${t1}$"), &m),
            9 => planted(format!("${t1}$ {m} ${t2}$ {m} ${t2}$ ${t1}$"), &m),
            10 => planted(format!("'{m}'\n'{m}'"), &m),
            11 => planted(d.clone(), &d),
            12 => planted(format!("{}.{}e-3", &d[..3], &d[3..]), &d[3..]),
            13 => planted(format!("0x{}", d.replace('9', "F")), &d.replace('9', "F")),
            14 => planted(format!("{}_{}", &d[..3], &d[3..]), &d[3..]),
            15 => planted(format!("-- {m}\n"), &m),
            16 => planted(format!("/* {m} /* {m} */ {m} */"), &m),
            17 => planted(format!("/*+ {m} */"), &m),
            18 => planted(format!("'{{\"email\": \"{m}\"}}'::jsonb"), &m),
            19 => planted(format!("$$ {m} '{m}' $$"), &m),
            20 => planted(format!("/* {m} -- */ 1"), &m),
            21 => planted(format!("E'{m}\\\\'"), &m),
            // hostile payloads: the oracle alone says what is secret
            22 => hostile_piece(format!("'{h}'")),
            _ => hostile_piece(format!("{h}{m}")),
        }
    })
}

fn mysql_piece() -> impl Strategy<Value = Piece> {
    (0usize..22, marker(), hostile(), digits()).prop_map(|(form, m, h, d)| match form {
        0 => planted(format!("'{m}'"), &m),
        1 => planted(format!("'{m}\\'{m}'"), &m),
        2 => planted(format!("'{m}''{m}'"), &m),
        3 => planted(format!("\"{m}\""), &m),
        4 => planted(format!("\"{m}\\\"{m}\""), &m),
        5 => planted(format!("_utf8mb4'{m}'"), &m),
        6 => planted(format!("N'{m}'"), &m),
        7 => planted(format!("x'{}'", d.replace('9', "F")), &d.replace('9', "F")),
        8 => planted(format!("0x{}", d.replace('9', "a")), &d.replace('9', "a")),
        9 => planted(d.clone(), &d),
        10 => planted(format!("{}.{}e5", &d[..2], &d[2..]), &d[2..]),
        11 => planted(format!("# {m}\n"), &m),
        12 => planted(format!("-- {m}\n"), &m),
        13 => planted(format!("/* {m} */"), &m),
        14 => planted(format!("/*! '{m}' */"), &m),
        15 => planted(format!("/*!50000 '{m}' */"), &m),
        16 => planted(format!("/*M!100000 '{m}' */"), &m),
        17 => planted(format!("/*+ {m} */"), &m),
        18 => planted(format!("/*!99999 '*/' {m} */"), &m),
        19 => planted(format!("'{m}\\\\'"), &m),
        // `--` with no space is code on MySQL: the marker is an identifier
        20 => code(format!("1--{m}")),
        _ => hostile_piece(format!("'{h}'")),
    })
}

fn statement(pieces: &[Piece], template: usize) -> String {
    let p = |i: usize| pieces[i % pieces.len()].text.as_str();
    match template % 4 {
        0 => format!("SELECT a, {} FROM t WHERE b = {} AND c IN ({}, {}) {}", p(0), p(1), p(2), p(3), p(4)),
        1 => format!("INSERT INTO t (a, b) VALUES ({}, {}), ({}, {})", p(0), p(1), p(2), p(3)),
        2 => format!("UPDATE t SET note = {} WHERE id = {} -- {}\nAND x = {}", p(0), p(1), p(2), p(3)),
        _ => format!("{} SELECT {}{}{}", p(0), p(1), p(2), p(3)),
    }
}

/// Checks both properties on `sql` and on `sql` cut at `cut`.
/// `glued`: the pieces touch each other (`$$x$$` after `jsonb` is part of
/// an identifier), so only the oracle can tell what is secret.
fn check(sql: &str, pieces: &[Piece], glued: bool, dialect: Dialect, cut: prop::sample::Index) -> Result<(), TestCaseError> {
    let boundaries: Vec<usize> = sql.char_indices().map(|(i, _)| i).chain(std::iter::once(sql.len())).collect();
    let end = boundaries[cut.index(boundaries.len())];
    for text in [sql, &sql[..end]] {
        let out = normalize(text, dialect).expect("short text normalizes");
        // an unknown dialect answers to both oracles
        let oracles: &[Oracle] = match dialect {
            Dialect::MySql => &[mysql_secrets],
            Dialect::Postgres => &[postgres_secrets],
            Dialect::Unknown => &[mysql_secrets, postgres_secrets],
        };
        for secrets in oracles.iter().filter_map(|oracle| oracle(text)) {
            if let Some(leak) = overlap(text, dialect, &secrets) {
                prop_assert!(false, "{leak}\n  in:  {text:?}\n  out: {out:?}");
            }
        }
        if glued || pieces.iter().any(|p| p.hostile) {
            continue;
        }
        for secret in pieces.iter().filter_map(|p| p.secret.as_deref()) {
            // the part of the marker that made it into the (cut) text
            let present = (0..=secret.len()).rev().filter(|&n| secret.is_char_boundary(n)).find(|&n| text.contains(&secret[..n]));
            let Some(n) = present.filter(|&n| secret[..n].chars().count() >= 4) else { continue };
            // shrinking makes markers alike: one that is also code elsewhere proves nothing
            if pieces.iter().any(|p| p.secret.is_none() && p.text.contains(&secret[..n])) {
                continue;
            }
            prop_assert!(!out.contains(&secret[..n]), "leaked {:?}\n  in:  {text:?}\n  out: {out:?}", &secret[..n]);
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 3000, ..ProptestConfig::default() })]

    #[test]
    fn postgres_constants_never_survive(pieces in prop::collection::vec(postgres_piece(), 5), template in 0usize..4, cut in any::<prop::sample::Index>()) {
        let sql = statement(&pieces, template);
        check(&sql, &pieces, template == 3, Dialect::Postgres, cut)?;
        // an unknown dialect is stricter still
        check(&sql, &pieces, template == 3, Dialect::Unknown, cut)?;
    }

    #[test]
    fn mysql_constants_never_survive(pieces in prop::collection::vec(mysql_piece(), 5), template in 0usize..4, cut in any::<prop::sample::Index>()) {
        let sql = statement(&pieces, template);
        check(&sql, &pieces, template == 3, Dialect::MySql, cut)?;
        check(&sql, &pieces, template == 3, Dialect::Unknown, cut)?;
    }
}

/// The oracles themselves see what they are trusted to see.
#[test]
fn the_oracles_find_constants_and_comments() {
    let sql = "SELECT 'a', $é$b$é$, 1.5 /* c */ FROM t -- d\n";
    let found: Vec<&str> = postgres_secrets(sql).expect("scans").into_iter().map(|r| &sql[r]).collect();
    assert_eq!(found, ["'a'", "$é$b$é$", "1.5", "/* c */", "-- d"]);
    let sql = "SELECT \"a\", 'b\\'c', 0x1F # d\n";
    let found: Vec<&str> = mysql_secrets(sql).expect("tokenizes").into_iter().map(|r| &sql[r]).collect();
    assert_eq!(found, ["\"a\"", "'b\\'c'", "0x1F", "# d"]);
}

/// What the fuzzer found (fuzz/regressions/normalize_sql: the first byte
/// picks the dialect, as in the fuzz target) stays fixed.
#[test]
fn fuzz_findings_stay_fixed() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/regressions/normalize_sql");
    let mut checked = 0;
    let mut failures = Vec::new();
    for entry in std::fs::read_dir(&dir).expect("fuzz/regressions/normalize_sql") {
        let bytes = std::fs::read(entry.expect("entry").path()).expect("read");
        let Some((&selector, rest)) = bytes.split_first() else { continue };
        let text = String::from_utf8_lossy(rest);
        let dialect = [Dialect::Postgres, Dialect::MySql, Dialect::Unknown][usize::from(selector) % 3];
        let oracles: &[Oracle] = match dialect {
            Dialect::MySql => &[mysql_secrets],
            Dialect::Postgres => &[postgres_secrets],
            Dialect::Unknown => &[mysql_secrets, postgres_secrets],
        };
        for secrets in oracles.iter().filter_map(|oracle| oracle(&text)) {
            if let Some(leak) = overlap(&text, dialect, &secrets) {
                failures.push(format!("{leak} ({dialect:?})\n  in:  {text:?}"));
            }
        }
        checked += 1;
    }
    assert!(checked > 0, "no fuzz findings in {}", dir.display());
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
