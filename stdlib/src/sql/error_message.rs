//! Database error messages made safe to log.
//!
//! Servers quote the statement in their errors: MySQL's `… near 'FROM t
//! WHERE a = 'secret'' at line 1` quotes the rest of the statement from
//! where it got lost, PostgreSQL quotes the token (`syntax error at or
//! near "secret"`) or the value (`invalid input syntax for type integer:
//! "secret"`), and both quote duplicate keys and column values. The
//! quotes are not escaped, so a fragment's end is the *last* quote of its
//! kind; the fragment may start inside what the application meant as a
//! literal, so it is normalized with only its keywords shown. Parenthesised values in a DETAIL (`Key
//! (email)=(…)`, `Failing row contains (…)`) are redacted whole. The
//! server's own wording around them stays, and RedactPII has the last word.

use super::normalize::normalize_fragment;
use super::Dialect;

/// `message` with every quoted fragment normalized and every quoted
/// value redacted.
///
/// ```
/// use dbintel_stdlib::sql::{scrub_error_message, Dialect};
/// assert_eq!(
///     scrub_error_message("1064 (42000): You have an error in your SQL syntax; check the manual that corresponds to your MariaDB server version for the right syntax to use near 'FROM t WHERE a = 'alice@example.com'' at line 1", Dialect::MySql),
///     "1064 (42000): You have an error in your SQL syntax; check the manual that corresponds to your MariaDB server version for the right syntax to use near 'FROM ? WHERE ?' at line 1"
/// );
/// assert_eq!(scrub_error_message("invalid input syntax for type integer: \"4111 1111\"", Dialect::Postgres), "invalid input syntax for type integer: \"?\"");
/// ```
pub fn scrub_error_message(message: &str, dialect: Dialect) -> String {
    let mut out = String::with_capacity(message.len());
    let mut rest = message;
    while let Some((open, quote)) = next_opening(rest) {
        out.push_str(&rest[..open]);
        let after = &rest[open + quote.len_utf8()..];
        match quote {
            '(' => {
                // a parenthesised value list runs to the last `)`
                let close = after.rfind(')').unwrap_or(after.len());
                out.push_str("(?");
                rest = &after[close..];
                if let Some(r) = rest.strip_prefix(')') {
                    out.push(')');
                    rest = r;
                }
            }
            _ => {
                let close = after.rfind(quote).unwrap_or(after.len());
                out.push(quote);
                out.push_str(&normalize_fragment(&after[..close], dialect));
                out.push(quote);
                rest = after.get(close + quote.len_utf8()..).unwrap_or_default();
            }
        }
    }
    out.push_str(rest);
    crate::pii::redact(&out).into_owned()
}

/// The first quote (`'`, `"`, `` ` ``) or value-list parenthesis in `text`.
fn next_opening(text: &str) -> Option<(usize, char)> {
    let quote = text.find(['\'', '"', '`']).map(|i| (i, text[i..].chars().next().unwrap_or('\'')));
    let values = [")=(", "contains ("].iter().filter_map(|p| text.find(p).map(|i| (i + p.len() - 1, '('))).min();
    match (quote, values) {
        (Some(q), Some(v)) => Some(if v.0 < q.0 { v } else { q }),
        (q, v) => q.or(v),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Recorded from the servers this project tests against (MariaDB 10.11,
    // PostgreSQL 15) in a session of our own, with planted markers, behind
    // sqlx's "error returned from database: " (PostgreSQL's DETAIL line as
    // psql shows it); engine/cli/tests/hostile.rs produces them live.
    const MARIADB: &[&str] = &[
        "error returned from database: 1064 (42000): You have an error in your SQL syntax; check the manual that corresponds to your MariaDB server version for the right syntax to use near 'FFROM hostile_t WHERE note = 'zq-secret-1'' at line 1",
        "error returned from database: 1064 (42000): You have an error in your SQL syntax; check the manual that corresponds to your MariaDB server version for the right syntax to use near 'zq-secret-2' AND b = 'zq-secret-3'' at line 1",
        "error returned from database: 1062 (23000): Duplicate entry 'zq-secret-4@corp.example' for key 'PRIMARY'",
        "error returned from database: 1366 (22007): Incorrect integer value: 'zq-secret-5' for column `hostile_my`.`hostile_t`.`id` at row 1",
        "error returned from database: 1054 (42S22): Unknown column 'zq_secret_6' in 'WHERE'",
        "error returned from database: 1406 (22001): Data too long for column 'note' at row 1",
    ];
    const POSTGRES: &[&str] = &[
        "error returned from database: syntax error at or near \"zq_secret_1\"",
        "error returned from database: unterminated quoted string at or near \"'zq-secret-2\"",
        "error returned from database: invalid input syntax for type integer: \"zq-secret-3\"",
        "error returned from database: duplicate key value violates unique constraint \"hostile_t_pkey\"\nDETAIL:  Key (id)=(zq-secret-4) already exists.",
        "error returned from database: column \"zq_secret_5\" does not exist",
        "error returned from database: new row for relation \"hostile_t\" violates check constraint \"hostile_t_note_check\"\nDETAIL:  Failing row contains (7, zq-secret-6).",
        "error returned from database: value too long for type character varying(3)",
        "error returned from database: unterminated dollar-quoted string at or near \"$zq$ zq-secret-7\"",
    ];

    #[test]
    fn no_quoted_fragment_survives() {
        for (messages, dialect) in [(MARIADB, Dialect::MySql), (POSTGRES, Dialect::Postgres), (MARIADB, Dialect::Unknown)] {
            for message in messages {
                let out = scrub_error_message(message, dialect);
                assert!(!out.contains("secret"), "{message}\n -> {out}");
                // the server's own wording stays
                assert!(out.starts_with("error returned from database: "), "{out}");
            }
        }
    }

    #[test]
    fn the_shape_of_the_message_stays() {
        assert_eq!(
            scrub_error_message(MARIADB[0], Dialect::MySql),
            "error returned from database: 1064 (42000): You have an error in your SQL syntax; check the manual that corresponds to your MariaDB server version for the right syntax to use near '? WHERE ?' at line 1"
        );
        assert_eq!(
            scrub_error_message(MARIADB[2], Dialect::MySql),
            "error returned from database: 1062 (23000): Duplicate entry '?PRIMARY'"
        );
        assert_eq!(scrub_error_message(POSTGRES[0], Dialect::Postgres), "error returned from database: syntax error at or near \"?\"");
        assert_eq!(
            scrub_error_message(POSTGRES[3], Dialect::Postgres),
            "error returned from database: duplicate key value violates unique constraint \"?\"\nDETAIL:  Key (id)=(?) already exists."
        );
        assert_eq!(scrub_error_message(POSTGRES[6], Dialect::Postgres), POSTGRES[6]);
        assert_eq!(
            scrub_error_message(MARIADB[5], Dialect::MySql),
            "error returned from database: 1406 (22001): Data too long for column '?' at row 1"
        );
    }

    #[test]
    fn an_unbalanced_quote_takes_the_rest() {
        assert_eq!(scrub_error_message("near 'abc secret", Dialect::MySql), "near '?'");
        assert_eq!(scrub_error_message("Can't find 'x'", Dialect::MySql), "Can'?'");
    }
}
