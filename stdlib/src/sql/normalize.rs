//! NormalizeSQL: every literal becomes `?`, comments go, whitespace
//! collapses, `IN (…)` lists and extra `VALUES` rows collapse.
//!
//! Only tokens that no reading of the text calls a literal or a comment
//! are shown (see `super::reading`); everything else is `?` or nothing.

use super::lexer::{Kind, Token};
use super::reading::redact;
use super::{Dialect, NormalizeError, MAX_SQL_BYTES};

/// Replaces literals in `sql` with `?`.
///
/// ```
/// use dbintel_stdlib::sql::{normalize, Dialect};
/// assert_eq!(
///     normalize("SELECT * FROM users WHERE email = 'a@b.co' AND id IN (1, 2, 3)", Dialect::Postgres).unwrap(),
///     "SELECT * FROM users WHERE email = ? AND id IN (?)"
/// );
/// assert_eq!(normalize("select $$secret$$, E'it\\'s' -- note", Dialect::Postgres).unwrap(), "select ?, ?");
/// assert_eq!(normalize("insert into t values (1, 'a'), (2, 'b')", Dialect::MySql).unwrap(), "insert into t values (?, ?)");
/// // cut off inside a string: the tail is never shown
/// assert_eq!(normalize("select * from t where name = 'Ali", Dialect::Postgres).unwrap(), "select * from t where name = ?");
/// // `\'` ends the string on one server and not on another: both readings are redacted
/// assert_eq!(normalize("select * from t where a = 'x\\' or b = 'secret' and c = 1", Dialect::MySql).unwrap(), "select * from t where a = ?");
/// ```
pub fn normalize(sql: &str, dialect: Dialect) -> Result<String, NormalizeError> {
    if sql.len() > MAX_SQL_BYTES {
        return Err(NormalizeError::TooLong(sql.len()));
    }
    let tokens = redact(sql, dialect).lexed.tokens;
    Ok(render(sql, &collapse_lists(sql, tokens), |_| false, false))
}

/// Like [`normalize`], for a fragment of SQL quoted in an error message:
/// it may start anywhere (inside what the application meant as a literal),
/// so only keywords are shown, and whatever lies between two of them is
/// one `?`.
pub(crate) fn normalize_fragment(sql: &str, dialect: Dialect) -> String {
    let tokens = redact(sql, dialect).lexed.tokens;
    render(sql, &tokens, |token| !(token.kind == Kind::Word && super::keywords::is_keyword(token.text(sql))), true)
}

/// Joins tokens with single spaces where the text had space or a comment;
/// literals (and what `hide` says) become `?`, one per redacted stretch
/// (one per run of them when `merge_runs`).
fn render(sql: &str, tokens: &[Token], hide: impl Fn(&Token) -> bool, merge_runs: bool) -> String {
    let mut out = String::with_capacity(sql.len().min(4096));
    let mut last_was_mark = false;
    for token in tokens {
        let redacted = token.kind == Kind::Literal || hide(token);
        if redacted && last_was_mark && (token.joins_previous || merge_runs) {
            continue;
        }
        if token.space_before && !out.is_empty() {
            out.push(' ');
        }
        if redacted {
            out.push('?');
        } else {
            out.push_str(token.text(sql));
        }
        last_was_mark = redacted;
    }
    out
}

/// `IN (?, ?, ?)` → `IN (?)`; `VALUES (…), (…)` → `VALUES (…)`.
fn collapse_lists(sql: &str, tokens: Vec<Token>) -> Vec<Token> {
    let word = |t: &Token, w: &str| t.kind == Kind::Word && t.text(sql).eq_ignore_ascii_case(w);
    let punct = |t: &Token, p: &str| t.kind == Kind::Punct && t.text(sql) == p;
    let mut out: Vec<Token> = Vec::with_capacity(tokens.len());
    let mut i = 0;
    while i < tokens.len() {
        let token = tokens[i];
        out.push(token);
        i += 1;
        let is_in = word(&token, "in");
        let is_values = word(&token, "values");
        if !(is_in || is_values) || tokens.get(i).is_none_or(|t| !punct(t, "(")) {
            continue;
        }
        let Some(close) = matching_paren(sql, &tokens, i) else { continue };
        if is_in {
            let inner = &tokens[i + 1..close];
            let only_values =
                !inner.is_empty() && inner.iter().all(|t| matches!(t.kind, Kind::Literal | Kind::Param) || punct(t, ",") || punct(t, "-"));
            if only_values {
                let mark = Token { kind: Kind::Literal, space_before: false, joins_previous: false, ..tokens[i + 1] };
                let close_paren = Token { space_before: false, ..tokens[close] };
                out.extend([tokens[i], mark, close_paren]);
                i = close + 1;
            }
            continue;
        }
        // VALUES: keep the first row, skip `, (…)` rows after it
        out.extend_from_slice(&tokens[i..=close]);
        i = close + 1;
        while tokens.get(i).is_some_and(|t| punct(t, ",")) && tokens.get(i + 1).is_some_and(|t| punct(t, "(")) {
            match matching_paren(sql, &tokens, i + 1) {
                Some(end) => i = end + 1,
                // a cut-off row: drop what is left of it
                None => i = tokens.len(),
            }
        }
    }
    out
}

fn matching_paren(sql: &str, tokens: &[Token], open: usize) -> Option<usize> {
    let mut depth = 0usize;
    for (offset, t) in tokens[open..].iter().enumerate() {
        if t.kind != Kind::Punct {
            continue;
        }
        match t.text(sql) {
            "(" => depth += 1,
            ")" => {
                depth -= 1;
                if depth == 0 {
                    return Some(open + offset);
                }
            }
            _ => {}
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pg(s: &str) -> String {
        normalize(s, Dialect::Postgres).unwrap()
    }
    fn my(s: &str) -> String {
        normalize(s, Dialect::MySql).unwrap()
    }
    fn any(s: &str) -> String {
        normalize(s, Dialect::Unknown).unwrap()
    }

    #[test]
    fn postgres_literal_forms() {
        assert_eq!(
            pg("select 'it''s', E'a\\'b', B'101', X'ff', U&'d\\0061t' UESCAPE '!', $$x$$, $t$ y $t$"),
            "select ?, ?, ?, ?, ? UESCAPE ?, ?, ?"
        );
        assert_eq!(
            pg("select 1, 1.5, .5, 1e10, 1.5E-3, 0x1F, 0o17, 0b101, 1_000, true, FALSE, null"),
            "select ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, null"
        );
        assert_eq!(pg("select \"Email\", U&\"d\\0061t\" from t1 where c2 = $1"), "select \"Email\", U&\"d\\0061t\" from t1 where c2 = $1");
        assert_eq!(pg("select /* a /* nested */ comment */ 1 -- tail\n from t"), "select ? from t");
        assert_eq!(pg("select a::int, b->>'k' from t"), "select a::int, b->>? from t");
        assert_eq!(pg("select $é$ secret $é$, $тег$x$тег$"), "select ?, ?");
    }

    #[test]
    fn mysql_literal_forms() {
        assert_eq!(my("select \"a\"\"b\", 'c''d', `col` from t # comment\nwhere x = ?"), "select ?, ?, `col` from t where x = ?");
        // with a backslash, NO_BACKSLASH_ESCAPES may end the first string early: all of it goes
        assert_eq!(my("select \"a\\\"b\", 'c\\'d', `col` from t # comment\nwhere x = ?"), "select ?");
        assert_eq!(
            my("select _utf8mb4'secret', _latin1\"x\", N'n', 0x1F, X'0f', b'01', 0b11"),
            "select _utf8mb4?, _latin1?, ?, ?, ?, ?, ?"
        );
        assert_eq!(my("select /* c */ 1"), "select ?");
        assert_eq!(my("select 5--1"), "select ?--?");
        assert_eq!(my("select 5-- 'x\n, 6"), "select ? , ?");
    }

    #[test]
    fn mysql_executable_comments_and_hints_never_show_their_content() {
        assert_eq!(my("select /*! STRAIGHT_JOIN */ a from t"), "select a from t");
        assert_eq!(my("select /*!50000 'secret' */ a"), "select a");
        assert_eq!(my("select /*M!100000 'secret' */ a"), "select a");
        assert_eq!(my("select /*+ SET_VAR(x = 1) secret */ a"), "select a");
        // its end depends on the server version: nothing after it is shown
        assert_eq!(my("select /*!99999 '*/' secret */ a"), "select ?");
    }

    #[test]
    fn backslash_ambiguity_redacts_the_union() {
        // standard_conforming_strings on: 'a\' is a string, `or` is code;
        // off: one string; either way nothing of it or its tail shows
        assert_eq!(pg("select 'a\\' or x = 'secret'"), "select ?");
        assert_eq!(pg("select E'a\\'b', c from t"), "select ?, c from t");
        // a doubled backslash ends the same way in every reading
        assert_eq!(my("select 'C:\\\\dir' from t"), "select ? from t");
        assert_eq!(my("select 'O\\'Brien', name from t"), "select ?");
    }

    #[test]
    fn unknown_dialect_takes_the_strictest_reading() {
        assert_eq!(any("select \"secret\" from t"), "select ? from t");
        assert_eq!(any("select 1 # x\n from t"), "select ? from t");
        // PostgreSQL reads `#` as an operator and opens a string after it
        assert_eq!(any("select 1 # 'x\n from t"), "select ? ?");
        assert_eq!(any("select $$secret$$ from t"), "select ? from t");
        // MySQL's comment ends at the first */, PostgreSQL's nests: what only one calls code is `?`
        assert_eq!(any("select 1 /* a /* b */ secret */ from t"), "select ? ? from t");
        assert_eq!(any("select a from t where b = 'x'"), "select a from t where b = ?");
    }

    #[test]
    fn truncation_never_shows_the_tail() {
        for (cut, tail) in [
            ("select 'abc", "abc"),
            ("select E'ab\\'c", "ab"),
            ("select $$abc", "abc"),
            ("select $tag$abc", "abc"),
            ("select $ta", "ta"),
            ("select \"Ali", "Ali"),
            ("select 1 /* secret", "secret"),
            ("select U&'abc", "abc"),
        ] {
            let out = pg(cut);
            assert!(cut.contains(tail) && !out.contains(tail), "{cut} -> {out}");
        }
        assert_eq!(pg("select 12"), "select ?");
        assert_eq!(my("insert into t values (1, 'a'), (2, 'sec"), "insert into t values (?, ?)");
        assert_eq!(my("select /*!50000 'sec"), "select");
    }

    #[test]
    fn lists_collapse() {
        assert_eq!(pg("select * from t where id in (1, 2, -3) and x IN ($1, $2)"), "select * from t where id in (?) and x IN (?)");
        assert_eq!(pg("select * from t where id in (select id from u)"), "select * from t where id in (select id from u)");
        assert_eq!(pg("insert into t (a, b) values (1, now()), (2, now())"), "insert into t (a, b) values (?, now())");
    }

    #[test]
    fn identifiers_with_digits_survive() {
        assert_eq!(pg("select t2.col1 from schema_3.table4"), "select t2.col1 from schema_3.table4");
    }

    #[test]
    fn oversized_text_is_refused() {
        let big = "x".repeat(MAX_SQL_BYTES + 1);
        assert_eq!(normalize(&big, Dialect::Postgres), Err(NormalizeError::TooLong(MAX_SQL_BYTES + 1)));
    }

    #[test]
    fn a_fragment_shows_keywords_only() {
        // cut inside what the application meant as a literal: no piece of it shows
        assert_eq!(normalize_fragment("Brien' AND x = 1", Dialect::MySql), "?");
        assert_eq!(normalize_fragment("FROM t WHERE a = 'x", Dialect::MySql), "FROM ? WHERE ?");
        assert_eq!(normalize_fragment("alice@example.com", Dialect::Postgres), "?");
    }
}
