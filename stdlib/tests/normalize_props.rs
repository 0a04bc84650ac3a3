//! Property: no part of a literal survives NormalizeSQL, whatever the
//! quoting form, the dialect, or where the text was cut off.

use dbintel_stdlib::sql::{normalize, Dialect};
use proptest::prelude::*;

/// Markers use letters and digits that the query templates around them do
/// not, so the planted text (or, in a cut text, the part of it that is
/// left, from 4 characters on) in the output is a leak.
fn marker() -> impl Strategy<Value = String> {
    proptest::string::string_regex("[QZXJKVWqzxjkvw0-9]{8,24}").expect("valid marker regex")
}

/// Numbers to plant: long enough that no template digit run matches.
fn number() -> impl Strategy<Value = String> {
    proptest::string::string_regex("[2-9][0-9]{5,14}").expect("valid number regex")
}

#[derive(Debug, Clone, Copy)]
enum Form {
    Plain,
    Escaped,
    Dollar,
    TaggedDollar,
    MysqlDouble,
    MysqlBackslash,
    Number,
    LineComment,
    BlockComment,
    HashComment,
    Json,
}

/// The literal text for `form`, with what it plants and its dialect.
fn literal(form: Form, m: &str, n: &str) -> (String, String, Dialect) {
    let (text, dialect) = literal_text(form, m, n);
    let planted = if matches!(form, Form::Number) { n.to_string() } else { m.to_string() };
    (text, planted, dialect)
}

fn literal_text(form: Form, m: &str, n: &str) -> (String, Dialect) {
    match form {
        Form::Plain => (format!("'{m}''s {m}'"), Dialect::Postgres),
        Form::Escaped => (format!("E'{m}\\'{m}'"), Dialect::Postgres),
        Form::Dollar => (format!("$${m}$$"), Dialect::Postgres),
        Form::TaggedDollar => (format!("$tag${m} $ {m}$tag$"), Dialect::Postgres),
        Form::MysqlDouble => (format!("\"{m}\\\"{m}\""), Dialect::MySql),
        Form::MysqlBackslash => (format!("'{m}\\'{m}'"), Dialect::MySql),
        Form::Number => (n.to_string(), Dialect::Postgres),
        Form::LineComment => (format!("1 -- {m}\n"), Dialect::Postgres),
        Form::BlockComment => (format!("1 /* {m} /* nested {m} */ */"), Dialect::Postgres),
        Form::HashComment => (format!("1 # {m}\n"), Dialect::MySql),
        Form::Json => (format!("'{{\"email\": \"{m}\"}}'::jsonb"), Dialect::Postgres),
    }
}

fn form() -> impl Strategy<Value = Form> {
    prop_oneof![
        Just(Form::Plain),
        Just(Form::Escaped),
        Just(Form::Dollar),
        Just(Form::TaggedDollar),
        Just(Form::MysqlDouble),
        Just(Form::MysqlBackslash),
        Just(Form::Number),
        Just(Form::LineComment),
        Just(Form::BlockComment),
        Just(Form::HashComment),
        Just(Form::Json),
    ]
}

/// The part of `planted` that made it into `input` (all of it, unless the
/// text was cut inside it), when it is found in `output`.
fn leaks(input: &str, output: &str, planted: &str) -> Option<String> {
    let present = (4..=planted.len()).rev().find(|&n| input.contains(&planted[..n]))?;
    output.contains(&planted[..present]).then(|| planted[..present].to_string())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn no_marker_survives(m in marker(), n in number(), f in form(), template in 0usize..3, cut in any::<prop::sample::Index>()) {
        let (lit, planted, dialect) = literal(f, &m, &n);
        let sql = match template {
            0 => format!("select a, b from users where email = {lit} and id = $1"),
            1 => format!("insert into t (a, b) values ({lit}, 2), ({lit}, 3)"),
            _ => format!("update t set note = {lit} where id in (1, {lit})"),
        };
        // cut at a random character boundary (texts arrive truncated)
        let boundaries: Vec<usize> = sql.char_indices().map(|(i, _)| i).chain(std::iter::once(sql.len())).collect();
        let end = boundaries[cut.index(boundaries.len())];
        for text in [&sql[..], &sql[..end]] {
            let out = normalize(text, dialect).expect("short text normalizes");
            if let Some(piece) = leaks(text, &out, &planted) {
                prop_assert!(false, "leaked {piece:?} of {planted:?}\n  in:  {text}\n  out: {out}");
            }
        }
    }
}
