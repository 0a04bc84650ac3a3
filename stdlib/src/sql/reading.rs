//! The readings a text may have, and the union of what they redact.
//!
//! The collector does not know the server settings that decide where a
//! string ends (`standard_conforming_strings`, `NO_BACKSLASH_ESCAPES`,
//! `ANSI_QUOTES`) and, for an unknown dialect, not even the server. So a
//! text is lexed under every reading it may have, and every byte that any
//! reading calls a literal or a comment is redacted: no setting can make a
//! literal survive.
//!
//! Those settings only change anything when the text has a backslash, so
//! a text without one has a single reading per family.

use std::ops::Range;

use super::lexer::{lex, Family, Kind, Lexed, Reading};
use super::Dialect;

/// The readings of `sql` under `dialect`; the first is the one whose
/// tokens are shown.
pub(crate) fn readings(sql: &str, dialect: Dialect) -> Vec<Reading> {
    let backslash = memchr::memchr(b'\\', sql.as_bytes()).is_some();
    let postgres = || {
        let scs_on = Reading { family: Family::Postgres, backslash_single: false, backslash_double: false };
        let scs_off = Reading { backslash_single: true, ..scs_on };
        if backslash {
            vec![scs_on, scs_off]
        } else {
            vec![scs_on]
        }
    };
    let mysql = || {
        let default = Reading { family: Family::MySql, backslash_single: true, backslash_double: true };
        if backslash {
            // backslash in '…' / "…": on/on (default), on/off (ANSI_QUOTES),
            // off/off (NO_BACKSLASH_ESCAPES), and off/on for good measure
            [(true, true), (true, false), (false, false), (false, true)]
                .into_iter()
                .map(|(single, double)| Reading { backslash_single: single, backslash_double: double, ..default })
                .collect()
        } else {
            vec![default]
        }
    };
    match dialect {
        Dialect::Postgres => postgres(),
        Dialect::MySql => mysql(),
        // without any of the characters the families read differently,
        // both read the text the same way
        Dialect::Unknown if !families_differ(sql.as_bytes()) => mysql(),
        // MySQL first: it reads `"…"` as a string and `#` as a comment
        Dialect::Unknown => mysql().into_iter().chain(postgres()).collect(),
    }
}

/// The primary reading, where any token that another reading sees
/// (partly) inside a literal or a comment became a literal; tokens covered
/// by one stretch of the union are marked `joins_previous`.
pub(crate) struct Redacted {
    pub lexed: Lexed,
    /// Whether every reading agreed with the primary one (then `lexed` is
    /// exactly the primary reading).
    pub agreed: bool,
}

pub(crate) fn redact(sql: &str, dialect: Dialect) -> Redacted {
    let readings = readings(sql, dialect);
    let mut lexed = lex(sql, readings[0]);
    if readings.len() == 1 {
        return Redacted { lexed, agreed: true };
    }
    let others: Vec<Lexed> = readings[1..].iter().map(|r| lex(sql, *r)).collect();
    let agreed = others.iter().all(|o| o.tokens == lexed.tokens && o.hidden == lexed.hidden && o.ambiguous == lexed.ambiguous);
    if agreed {
        return Redacted { lexed, agreed };
    }
    let union = merge(std::iter::once(&lexed).chain(&others).flat_map(|l| l.sensitive()).collect());
    let mut stretch = 0;
    let mut last_stretch = None;
    for token in lexed.tokens.iter_mut() {
        while stretch < union.len() && union[stretch].end <= token.start {
            stretch += 1;
        }
        if union.get(stretch).is_some_and(|r| r.start < token.end) {
            token.kind = Kind::Literal;
            token.joins_previous = last_stretch == Some(stretch);
            last_stretch = Some(stretch);
        } else {
            last_stretch = None;
        }
    }
    Redacted { lexed, agreed }
}

/// Whether the text has anything PostgreSQL and MySQL read differently:
/// `"`, `#`, `` ` ``, `$`, `\\`, `/*` (nesting, executable comments), `--`
/// but before a space (MySQL wants one after it), `&'` (PostgreSQL's
/// `U&'…'`). One pass: this runs on every text of an unknown dialect.
fn families_differ(bytes: &[u8]) -> bool {
    bytes.iter().enumerate().any(|(i, &b)| match b {
        b'"' | b'#' | b'`' | b'$' | b'\\' => true,
        b'/' => bytes.get(i + 1) == Some(&b'*'),
        b'-' => bytes.get(i + 1) == Some(&b'-') && !matches!(bytes.get(i + 2), Some(b' ' | b'\t' | b'\n' | b'\r')),
        b'&' => matches!(bytes.get(i + 1), Some(b'\'' | b'"')),
        _ => false,
    })
}

/// Sorted, overlapping or touching ranges merged.
fn merge(mut ranges: Vec<Range<usize>>) -> Vec<Range<usize>> {
    ranges.sort_by_key(|r| r.start);
    let mut out: Vec<Range<usize>> = Vec::with_capacity(ranges.len());
    for r in ranges {
        match out.last_mut() {
            Some(last) if r.start <= last.end => last.end = last.end.max(r.end),
            _ => out.push(r),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_text_without_backslash_has_one_reading_per_family() {
        assert_eq!(readings("select 'a'", Dialect::Postgres).len(), 1);
        assert_eq!(readings("select 'a'", Dialect::MySql).len(), 1);
        assert_eq!(readings("select 'a'", Dialect::Unknown).len(), 1);
        assert_eq!(readings("select \"a\"", Dialect::Unknown).len(), 2);
        assert_eq!(readings("select 1 -- a\n", Dialect::Unknown).len(), 1);
        assert_eq!(readings("select 1 --a\n", Dialect::Unknown).len(), 2);
        assert_eq!(readings(r"select 'a\'", Dialect::Postgres).len(), 2);
        assert_eq!(readings(r"select 'a\'", Dialect::MySql).len(), 4);
    }

    #[test]
    fn ranges_merge_when_they_overlap_or_touch() {
        assert_eq!(merge(vec![5..8, 0..3, 3..4, 7..10, 12..13]), [0..4, 5..10, 12..13]);
    }
}
