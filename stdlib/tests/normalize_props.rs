//! Property: no part of a literal survives NormalizeSQL, whatever the
//! quoting form, the dialect, or where the text was cut off.

use dbintel_stdlib::sql::{normalize, Dialect};
use proptest::prelude::*;

/// Markers use letters and digits that the query templates around them do
/// not, so any 4-character run of a marker in the output is a leak.
fn marker() -> impl Strategy<Value = String> {
    proptest::string::string_regex("[QZXJKVWqzxjkvw0-9]{8,24}").expect("valid marker regex")
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

fn literal(form: Form, m: &str) -> (String, Dialect) {
    match form {
        Form::Plain => (format!("'{m}''s {m}'"), Dialect::Postgres),
        Form::Escaped => (format!("E'{m}\\'{m}'"), Dialect::Postgres),
        Form::Dollar => (format!("$${m}$$"), Dialect::Postgres),
        Form::TaggedDollar => (format!("$tag${m} $ {m}$tag$"), Dialect::Postgres),
        Form::MysqlDouble => (format!("\"{m}\\\"{m}\""), Dialect::MySql),
        Form::MysqlBackslash => (format!("'{m}\\'{m}'"), Dialect::MySql),
        Form::Number => (m.chars().filter(|c| c.is_ascii_digit()).collect::<String>() + "1", Dialect::Postgres),
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

fn leaks(output: &str, marker: &str) -> Option<String> {
    let chars: Vec<char> = marker.chars().collect();
    chars.windows(4).map(|w| w.iter().collect::<String>()).find(|piece| output.contains(piece.as_str()))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn no_marker_survives(m in marker(), f in form(), template in 0usize..3, cut in any::<prop::sample::Index>()) {
        let (lit, dialect) = literal(f, &m);
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
            if let Some(piece) = leaks(&out, &m) {
                // numbers are literals only where the lexer sees a number:
                // digits glued to an identifier (`b1234`) are part of it
                prop_assert!(false, "leaked {piece:?} of {m:?}\n  in:  {text}\n  out: {out}");
            }
        }
    }
}
