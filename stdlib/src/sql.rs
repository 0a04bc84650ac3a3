//! SQL text normalization: every literal becomes `?`.
//!
//! A real lexer, not a pile of regexes: it knows PostgreSQL's `'…'` with
//! `''`, `E'…'` with backslash escapes, `B'…'`/`X'…'`/`U&'…'`, dollar quotes
//! `$$…$$` and `$tag$…$tag$`, nested `/* */` comments; MySQL's `"…"` strings,
//! backslash escapes, `#` comments and backtick identifiers. Comments are
//! removed, whitespace collapsed, `IN (…)` lists and extra `VALUES` rows
//! collapsed.
//!
//! Safety rule: when text ends inside a literal or a comment (texts are cut
//! at `track_activity_query_size`), everything from its start is treated as
//! that literal and replaced. The raw tail never comes out.

/// Texts longer than this are refused rather than normalized.
pub const MAX_SQL_BYTES: usize = 1024 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Dialect {
    #[default]
    Postgres,
    MySql,
}

impl Dialect {
    pub fn parse(name: &str) -> Option<Dialect> {
        match name {
            "postgres" | "postgresql" => Some(Dialect::Postgres),
            "mysql" | "mariadb" => Some(Dialect::MySql),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NormalizeError {
    TooLong(usize),
}

impl std::fmt::Display for NormalizeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NormalizeError::TooLong(n) => write!(f, "SQL text is {n} bytes, over the {MAX_SQL_BYTES}-byte limit"),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Word,
    /// A quoted identifier, kept as written.
    Quoted,
    Literal,
    /// `$1` or MySQL's `?`.
    Param,
    Punct,
}

#[derive(Debug, Clone, Copy)]
struct Token<'a> {
    kind: Kind,
    text: &'a str,
    space_before: bool,
}

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
/// ```
pub fn normalize(sql: &str, dialect: Dialect) -> Result<String, NormalizeError> {
    if sql.len() > MAX_SQL_BYTES {
        return Err(NormalizeError::TooLong(sql.len()));
    }
    let tokens = collapse_lists(lex(sql, dialect));
    let mut out = String::with_capacity(sql.len().min(4096));
    for token in tokens {
        if token.space_before && !out.is_empty() {
            out.push(' ');
        }
        match token.kind {
            Kind::Literal => out.push('?'),
            _ => out.push_str(token.text),
        }
    }
    Ok(out)
}

fn is_ident_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_' || !c.is_ascii()
}

/// Both dialects allow `$` inside identifiers (`a$b`), never first.
fn is_ident_continue(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '$' || (!c.is_ascii() && !c.is_whitespace())
}

struct Lexer<'a> {
    sql: &'a str,
    bytes: &'a [u8],
    pos: usize,
    dialect: Dialect,
    tokens: Vec<Token<'a>>,
    space: bool,
}

fn lex(sql: &str, dialect: Dialect) -> Vec<Token<'_>> {
    let mut lx = Lexer { sql, bytes: sql.as_bytes(), pos: 0, dialect, tokens: Vec::new(), space: false };
    while lx.pos < lx.bytes.len() {
        if !lx.step() {
            break;
        }
    }
    lx.tokens
}

impl<'a> Lexer<'a> {
    fn peek(&self, offset: usize) -> Option<u8> {
        self.bytes.get(self.pos + offset).copied()
    }

    fn push(&mut self, kind: Kind, start: usize, end: usize) {
        self.tokens.push(Token { kind, text: &self.sql[start..end], space_before: self.space });
        self.space = false;
    }

    /// The rest of the text is one literal: replace it and stop.
    fn literal_to_end(&mut self, start: usize) -> bool {
        self.push(Kind::Literal, start, self.bytes.len());
        self.pos = self.bytes.len();
        false
    }

    /// Lexes one token (or skips trivia). Returns false when done.
    fn step(&mut self) -> bool {
        let start = self.pos;
        let b = self.bytes[self.pos];
        let c = self.sql[self.pos..].chars().next().unwrap_or(' ');
        match b {
            _ if c.is_whitespace() => {
                self.pos += c.len_utf8();
                self.space = true;
            }
            b'-' if self.peek(1) == Some(b'-') => self.line_comment(),
            b'#' if self.dialect == Dialect::MySql => self.line_comment(),
            b'/' if self.peek(1) == Some(b'*') => return self.block_comment(),
            b'\'' => return self.string(start, start + 1, self.dialect == Dialect::MySql),
            b'"' if self.dialect == Dialect::MySql => return self.string(start, start + 1, true),
            b'"' => return self.quoted_identifier(start, b'"'),
            b'`' if self.dialect == Dialect::MySql => return self.quoted_identifier(start, b'`'),
            b'$' if self.dialect == Dialect::Postgres => return self.dollar(start),
            b'?' if self.dialect == Dialect::MySql => {
                self.pos += 1;
                self.push(Kind::Param, start, self.pos);
            }
            b'0'..=b'9' => self.number(start),
            b'.' if self.peek(1).is_some_and(|d| d.is_ascii_digit()) => self.number(start),
            _ if is_ident_start(c) => return self.word(start),
            _ => {
                self.pos += c.len_utf8();
                self.push(Kind::Punct, start, self.pos);
            }
        }
        true
    }

    fn line_comment(&mut self) {
        self.pos = self.bytes[self.pos..].iter().position(|&b| b == b'\n').map_or(self.bytes.len(), |p| self.pos + p);
        self.space = true;
    }

    fn block_comment(&mut self) -> bool {
        let nested = self.dialect == Dialect::Postgres;
        let mut depth = 0usize;
        while self.pos < self.bytes.len() {
            if self.bytes[self.pos..].starts_with(b"/*") && (nested || depth == 0) {
                depth += 1;
                self.pos += 2;
            } else if self.bytes[self.pos..].starts_with(b"*/") {
                depth -= 1;
                self.pos += 2;
                if depth == 0 {
                    self.space = true;
                    return true;
                }
            } else {
                self.pos += 1;
            }
        }
        // unterminated: the comment runs to the end and is dropped
        self.space = true;
        false
    }

    /// A quoted string whose body starts at `body`; `backslash` when `\`
    /// escapes the next character.
    fn string(&mut self, start: usize, body: usize, backslash: bool) -> bool {
        let quote = self.bytes[body - 1];
        let mut i = body;
        while i < self.bytes.len() {
            let b = self.bytes[i];
            if backslash && b == b'\\' {
                i += 2;
            } else if b == quote {
                if self.bytes.get(i + 1) == Some(&quote) {
                    i += 2;
                } else {
                    self.pos = i + 1;
                    self.push(Kind::Literal, start, self.pos);
                    return true;
                }
            } else {
                i += 1;
            }
        }
        self.literal_to_end(start)
    }

    fn quoted_identifier(&mut self, start: usize, quote: u8) -> bool {
        let mut i = start + 1;
        while i < self.bytes.len() {
            if self.bytes[i] == quote {
                if self.bytes.get(i + 1) == Some(&quote) {
                    i += 2;
                    continue;
                }
                self.pos = i + 1;
                self.push(Kind::Quoted, start, self.pos);
                return true;
            }
            i += 1;
        }
        // cut inside the quotes: it may as well have been a string
        self.literal_to_end(start)
    }

    /// `$1`, `$$…$$` or `$tag$…$tag$` (PostgreSQL).
    fn dollar(&mut self, start: usize) -> bool {
        let rest = &self.bytes[start + 1..];
        if rest.first().is_some_and(u8::is_ascii_digit) {
            let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
            self.pos = start + 1 + digits;
            self.push(Kind::Param, start, self.pos);
            return true;
        }
        let tag_len = rest.iter().take_while(|&&b| b.is_ascii_alphanumeric() || b == b'_').count();
        let tag_ok = tag_len == 0 || !rest[0].is_ascii_digit();
        if tag_ok && rest.get(tag_len) == Some(&b'$') {
            let delimiter = &self.bytes[start..start + tag_len + 2];
            let body = start + tag_len + 2;
            return match find(&self.bytes[body..], delimiter) {
                Some(p) => {
                    self.pos = body + p + delimiter.len();
                    self.push(Kind::Literal, start, self.pos);
                    true
                }
                None => self.literal_to_end(start),
            };
        }
        if start + 1 + tag_len >= self.bytes.len() {
            // text ends inside what may be an opening tag
            return self.literal_to_end(start);
        }
        self.pos += 1;
        self.push(Kind::Punct, start, self.pos);
        true
    }

    fn number(&mut self, start: usize) {
        let bytes = self.bytes;
        let mut i = start;
        let radix_prefix = bytes[i] == b'0' && matches!(bytes.get(i + 1), Some(b'x' | b'X' | b'b' | b'B' | b'o' | b'O'));
        if radix_prefix {
            i += 2;
            while i < bytes.len() && (bytes[i].is_ascii_hexdigit() || bytes[i] == b'_') {
                i += 1;
            }
        } else {
            while i < bytes.len() && (bytes[i].is_ascii_digit() || bytes[i] == b'_') {
                i += 1;
            }
            if bytes.get(i) == Some(&b'.') && bytes.get(i + 1) != Some(&b'.') {
                i += 1;
                while i < bytes.len() && (bytes[i].is_ascii_digit() || bytes[i] == b'_') {
                    i += 1;
                }
            }
            if matches!(bytes.get(i), Some(b'e' | b'E')) {
                let mut j = i + 1;
                if matches!(bytes.get(j), Some(b'+' | b'-')) {
                    j += 1;
                }
                if bytes.get(j).is_some_and(u8::is_ascii_digit) || j >= bytes.len() {
                    i = j;
                    while i < bytes.len() && bytes[i].is_ascii_digit() {
                        i += 1;
                    }
                }
            }
        }
        // `123abc` is not valid SQL; swallow the tail into the literal so no
        // part of it comes out raw.
        while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_') {
            i += 1;
        }
        self.pos = i;
        self.push(Kind::Literal, start, i);
    }

    fn word(&mut self, start: usize) -> bool {
        let mut end = start;
        for (offset, c) in self.sql[start..].char_indices() {
            if offset > 0 && !is_ident_continue(c) {
                break;
            }
            end = start + offset + c.len_utf8();
        }
        let word = &self.sql[start..end];
        // prefixed strings: E'…' (backslashes), B'…', X'…', N'…', U&'…'
        if self.bytes.get(end) == Some(&b'\'') && word.len() == 1 {
            let backslash = matches!(word, "e" | "E") || self.dialect == Dialect::MySql;
            if matches!(word, "e" | "E" | "b" | "B" | "x" | "X" | "n" | "N") {
                return self.string(start, end + 1, backslash);
            }
        }
        if matches!(word, "u" | "U") && self.bytes[end..].starts_with(b"&'") {
            return self.string(start, end + 2, false);
        }
        if self.bytes.get(end) == Some(&b'\'') && word.starts_with('_') && self.dialect == Dialect::MySql {
            // charset introducer: _utf8mb4'…'
            self.pos = end;
            self.push(Kind::Word, start, end);
            return self.string(end, end + 1, true);
        }
        self.pos = end;
        let kind = if word.eq_ignore_ascii_case("true") || word.eq_ignore_ascii_case("false") { Kind::Literal } else { Kind::Word };
        self.push(kind, start, end);
        true
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() || haystack.len() < needle.len() {
        return None;
    }
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// `IN (?, ?, ?)` → `IN (?)`; `VALUES (…), (…)` → `VALUES (…)`.
fn collapse_lists(tokens: Vec<Token<'_>>) -> Vec<Token<'_>> {
    let mut out: Vec<Token<'_>> = Vec::with_capacity(tokens.len());
    let mut i = 0;
    while i < tokens.len() {
        let token = tokens[i];
        out.push(token);
        i += 1;
        if token.kind != Kind::Word {
            continue;
        }
        let is_in = token.text.eq_ignore_ascii_case("in");
        let is_values = token.text.eq_ignore_ascii_case("values");
        if !(is_in || is_values) || tokens.get(i).is_none_or(|t| t.text != "(") {
            continue;
        }
        let Some(close) = matching_paren(&tokens, i) else { continue };
        if is_in {
            let inner = &tokens[i + 1..close];
            let only_values =
                !inner.is_empty() && inner.iter().all(|t| matches!(t.kind, Kind::Literal | Kind::Param) || t.text == "," || t.text == "-");
            if only_values {
                out.push(tokens[i]);
                out.push(Token { kind: Kind::Literal, text: "?", space_before: false });
                out.push(Token { kind: Kind::Punct, text: ")", space_before: false });
                i = close + 1;
            }
            continue;
        }
        // VALUES: keep the first row, skip `, (…)` rows after it
        out.extend_from_slice(&tokens[i..=close]);
        i = close + 1;
        while tokens.get(i).is_some_and(|t| t.text == ",") && tokens.get(i + 1).is_some_and(|t| t.text == "(") {
            match matching_paren(&tokens, i + 1) {
                Some(end) => i = end + 1,
                None => {
                    // a cut-off row: drop what is left of it
                    i = tokens.len();
                }
            }
        }
    }
    out
}

fn matching_paren(tokens: &[Token<'_>], open: usize) -> Option<usize> {
    let mut depth = 0usize;
    for (offset, t) in tokens[open..].iter().enumerate() {
        if t.kind != Kind::Punct {
            continue;
        }
        match t.text {
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

    #[test]
    fn postgres_literal_forms() {
        assert_eq!(pg("select 'it''s', E'a\\'b', B'101', X'ff', U&'d\\0061t', $$x$$, $t$ y $t$"), "select ?, ?, ?, ?, ?, ?, ?");
        assert_eq!(pg("select 1, 1.5, .5, 1e10, 1.5E-3, 0x1F, 1_000, true, FALSE, null"), "select ?, ?, ?, ?, ?, ?, ?, ?, ?, null");
        assert_eq!(pg("select \"Email\" from t1 where c2 = $1"), "select \"Email\" from t1 where c2 = $1");
        assert_eq!(pg("select /* a /* nested */ comment */ 1 -- tail\n from t"), "select ? from t");
        assert_eq!(pg("select a::int, b->>'k' from t"), "select a::int, b->>? from t");
    }

    #[test]
    fn mysql_literal_forms() {
        assert_eq!(my("select \"a\\\"b\", 'c\\'d', `col` from t # comment\nwhere x = ?"), "select ?, ?, `col` from t where x = ?");
        assert_eq!(my("select _utf8mb4'secret', 0x1F, X'0f'"), "select _utf8mb4?, ?, ?");
        assert_eq!(my("select /* c */ 1"), "select ?");
    }

    #[test]
    fn truncation_never_shows_the_tail() {
        for cut in [
            "select 'abc",
            "select E'ab\\'c",
            "select $$abc",
            "select $tag$abc",
            "select $ta",
            "select \"Ali",
            "select 1 /* secret",
            "select 12",
        ] {
            let out = pg(cut);
            assert!(!out.contains("abc") && !out.contains("Ali") && !out.contains("secret"), "{cut} -> {out}");
        }
        assert_eq!(my("insert into t values (1, 'a'), (2, 'sec"), "insert into t values (?, ?)");
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
}
