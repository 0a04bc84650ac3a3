//! NormalizeSQL, RedactPII, the EXPLAIN decision and the error scrubber
//! over arbitrary text: no panic, and the oracle property — no constant
//! or comment that PostgreSQL's own scanner (PostgreSQL and unknown
//! dialects) or sqlparser's MySQL tokenizer (MySQL and unknown) finds may
//! overlap a token NormalizeSQL shows as written.
#![no_main]

#[path = "../../stdlib/tests/oracle_lexers/mod.rs"]
mod oracle_lexers;

use dbintel_stdlib::sql::{explainable, normalize, scrub_error_message, Dialect};
use libfuzzer_sys::fuzz_target;
use oracle_lexers::{mysql_secrets, overlap, postgres_secrets};

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else { return };
    let Ok(text) = std::str::from_utf8(rest) else { return };
    let dialect = match selector % 3 {
        0 => Dialect::Postgres,
        1 => Dialect::MySql,
        _ => Dialect::Unknown,
    };
    let out = normalize(text, dialect).expect("fuzz inputs are under the size limit");
    let _ = dbintel_stdlib::pii::redact(text);
    let _ = dbintel_stdlib::pii::redact(&out);
    let _ = explainable(text, dialect);
    let _ = scrub_error_message(text, dialect);
    // normalizing twice changes nothing more than once could leak
    let _ = normalize(&out, dialect);
    if matches!(dialect, Dialect::Postgres | Dialect::Unknown) && !text.contains('\0') {
        if let Some(secrets) = postgres_secrets(text) {
            if let Some(leak) = overlap(text, dialect, &secrets) {
                panic!("{leak}\n  in:  {text:?}\n  out: {out:?}");
            }
        }
    }
    if matches!(dialect, Dialect::MySql | Dialect::Unknown) {
        if let Some(secrets) = mysql_secrets(text) {
            if let Some(leak) = overlap(text, dialect, &secrets) {
                panic!("{leak}\n  in:  {text:?}\n  out: {out:?}");
            }
        }
    }
});
