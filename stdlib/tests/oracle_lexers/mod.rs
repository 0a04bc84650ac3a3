//! The oracles: lexers nobody here wrote, shared by the oracle test and
//! the `normalize_sql` fuzz target (which needs only some of it).
#![allow(dead_code)]

use std::ops::Range;

use dbintel_stdlib::sql::{shown_ranges, Dialect};
use sqlparser::dialect::MySqlDialect;
use sqlparser::tokenizer::{Token, Tokenizer, Whitespace};

/// A lexer that says where the constants and comments of a text are.
pub type Oracle = fn(&str) -> Option<Vec<Range<usize>>>;

/// PostgreSQL's scanner: byte ranges of every constant and comment, or
/// `None` when it rejects the text (cut inside a literal, say).
pub fn postgres_secrets(sql: &str) -> Option<Vec<Range<usize>>> {
    use pg_query::protobuf::Token as T;
    let scanned = pg_query::scan(sql).ok()?;
    let secret = [T::Sconst, T::Usconst, T::Bconst, T::Xconst, T::Iconst, T::Fconst, T::SqlComment, T::CComment].map(|t| t as i32);
    Some(scanned.tokens.iter().filter(|t| secret.contains(&t.token)).map(|t| t.start as usize..t.end as usize).collect())
}

/// sqlparser's MySQL tokenizer: byte ranges of every literal and comment.
pub fn mysql_secrets(sql: &str) -> Option<Vec<Range<usize>>> {
    let tokens = Tokenizer::new(&MySqlDialect {}, sql).tokenize_with_location().ok()?;
    let line_starts: Vec<usize> = std::iter::once(0).chain(sql.match_indices('\n').map(|(i, _)| i + 1)).collect();
    let offset = |line: u64, column: u64| -> usize {
        let start = line_starts.get(line.saturating_sub(1) as usize).copied().unwrap_or(sql.len());
        sql[start..].char_indices().nth(column.saturating_sub(1) as usize).map_or(sql.len(), |(i, _)| start + i)
    };
    Some(
        tokens
            .iter()
            .filter(|t| {
                matches!(
                    t.token,
                    Token::Number(..)
                        | Token::SingleQuotedString(_)
                        | Token::DoubleQuotedString(_)
                        | Token::NationalStringLiteral(_)
                        | Token::HexStringLiteral(_)
                        | Token::SingleQuotedByteStringLiteral(_)
                        | Token::DoubleQuotedByteStringLiteral(_)
                        | Token::EscapedStringLiteral(_)
                        | Token::Whitespace(Whitespace::SingleLineComment { .. } | Whitespace::MultiLineComment(_))
                )
            })
            .map(|t| offset(t.span.start.line, t.span.start.column)..offset(t.span.end.line, t.span.end.column))
            .collect(),
    )
}

/// The first constant or comment that overlaps a shown token.
pub fn overlap(sql: &str, dialect: Dialect, secrets: &[Range<usize>]) -> Option<String> {
    let shown = shown_ranges(sql, dialect);
    for secret in secrets {
        if let Some(s) = shown.iter().find(|s| s.start < secret.end && secret.start < s.end) {
            return Some(format!("oracle constant/comment {:?} overlaps shown token {:?}", &sql[secret.clone()], &sql[s.clone()]));
        }
    }
    None
}
