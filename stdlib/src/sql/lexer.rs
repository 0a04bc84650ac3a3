//! One reading of a SQL text: its tokens and the byte ranges it hides.
//!
//! A [`Reading`] is one way a server may read the text — PostgreSQL with or
//! without `standard_conforming_strings`, MySQL with or without
//! `NO_BACKSLASH_ESCAPES` / `ANSI_QUOTES`. The lexer follows that reading
//! exactly; `super::reading` decides which readings a text can have and
//! redacts what any of them calls a literal or a comment.
//!
//! What each family knows:
//! - PostgreSQL (scan.l): `'…'` with `''` (and `\` when
//!   standard_conforming_strings is off), `E'…'` (always `\`), `B'…'`,
//!   `X'…'`, `N'…'`, `U&'…'`, `U&"…"`; dollar quotes `$tag$…$tag$` whose tag
//!   is any identifier character but `$` (every byte ≥ 0x80 counts, so
//!   `$é$` and `$\u{3000}$` are tags); `$N` parameters; `--` comments
//!   anywhere; `/* */` comments that nest; `"…"` identifiers.
//! - MySQL / MariaDB (sql_lex.cc): `'…'` and `"…"` strings with `''`/`""`
//!   and `\` (unless NO_BACKSLASH_ESCAPES); `N'…'`, `X'…'`, `B'…'`, charset
//!   introducers `_utf8mb4'…'`; `` `…` `` identifiers; `#` comments; `--`
//!   comments only when a space, a control character or the end follows;
//!   `/* */` comments that do not nest; executable comments `/*!…*/`,
//!   `/*!NNNNN…*/`, `/*M!…*/` and optimizer hints `/*+…*/`.
//!
//! Numbers in every notation (`1`, `1.5`, `.5`, `1e-3`, `0x1F`, `0o17`,
//! `0b101`, `1_000`) are literals, and letters glued to a number are
//! swallowed with it. Whitespace is ASCII only: both servers read any
//! non-ASCII character as part of an identifier.
//!
//! Executable comments and hints are always hidden (their content is never
//! shown). Where they end depends on the server version — content that
//! runs is lexed as code, content that is skipped ends at the first `*/`
//! (MySQL allows one nested `/* */` in a skipped versioned comment) — so
//! when the possible ends differ, everything from the comment on is one
//! literal: the text is ambiguous past that point.
//!
//! A construct still open at the end of the text (texts are cut at
//! `track_activity_query_size` or `performance_schema_max_sql_text_length`)
//! makes everything from its opening delimiter a literal (or, for a
//! comment, hidden): the raw tail never comes out.

use std::ops::Range;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Family {
    Postgres,
    MySql,
}

/// One way a server may read a text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Reading {
    pub family: Family,
    /// `\` escapes the next character in `'…'` (and `N'…'`, `_cs'…'`):
    /// PostgreSQL with standard_conforming_strings off; MySQL without
    /// NO_BACKSLASH_ESCAPES.
    pub backslash_single: bool,
    /// MySQL: `\` escapes in `"…"` (neither NO_BACKSLASH_ESCAPES nor
    /// ANSI_QUOTES). Unused by PostgreSQL.
    pub backslash_double: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// A keyword or an unquoted identifier.
    Word,
    /// A quoted identifier, kept as written.
    Quoted,
    /// A string, number, boolean or anything treated as one.
    Literal,
    /// `$1` (PostgreSQL) or `?` (MySQL).
    Param,
    Punct,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Token {
    pub kind: Kind,
    pub start: usize,
    pub end: usize,
    /// Whitespace or a comment comes before it.
    pub space_before: bool,
    /// A literal shown as part of the `?` of the literal before it (set by
    /// the union of readings, when one stretch covers several tokens).
    pub joins_previous: bool,
}

impl Token {
    pub fn text<'a>(&self, sql: &'a str) -> &'a str {
        &sql[self.start..self.end]
    }
}

/// The tokens of one reading, and what it hides.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Lexed {
    pub tokens: Vec<Token>,
    /// Comments, executable comments and hints, in order.
    pub hidden: Vec<Range<usize>>,
    /// A construct was still open at the end of the text.
    pub unterminated: bool,
    /// The text had an executable comment or an optimizer hint.
    pub executable: bool,
    /// An executable comment or hint whose end depends on the server
    /// version: everything from it on is one literal.
    pub ambiguous: bool,
}

impl Lexed {
    /// Byte ranges whose content must never be shown: literals and hidden
    /// ranges, in order of their start.
    pub fn sensitive(&self) -> impl Iterator<Item = Range<usize>> + '_ {
        let mut literals = self.tokens.iter().filter(|t| t.kind == Kind::Literal).map(|t| t.start..t.end).peekable();
        let mut hidden = self.hidden.iter().cloned().peekable();
        std::iter::from_fn(move || match (literals.peek(), hidden.peek()) {
            (Some(l), Some(h)) if h.start < l.start => hidden.next(),
            (Some(_), _) => literals.next(),
            (None, _) => hidden.next(),
        })
    }
}

fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c)
}

fn is_ident_start(b: u8, family: Family) -> bool {
    b.is_ascii_alphabetic() || b == b'_' || b >= 0x80 || (b == b'$' && family == Family::MySql)
}

fn is_ident_continue(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'$' || b >= 0x80
}

/// PostgreSQL's dollar-quote tag characters: identifier characters but `$`.
fn is_tag_continue(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b >= 0x80
}

/// Lexes `sql` the way `reading` reads it.
pub(crate) fn lex(sql: &str, reading: Reading) -> Lexed {
    let mut lexer = Lexer::new(sql, reading, 0, false);
    lexer.run();
    lexer.out
}

struct Lexer<'a> {
    sql: &'a str,
    bytes: &'a [u8],
    pos: usize,
    reading: Reading,
    out: Lexed,
    space: bool,
    /// Lexing the content of a MySQL executable comment that runs: a `*/`
    /// outside any token ends it.
    in_executable: bool,
    /// Set when `in_executable` reaches its `*/`: where the comment ends.
    closed_at: Option<usize>,
}

impl<'a> Lexer<'a> {
    fn new(sql: &'a str, reading: Reading, pos: usize, in_executable: bool) -> Lexer<'a> {
        Lexer { sql, bytes: sql.as_bytes(), pos, reading, out: Lexed::default(), space: false, in_executable, closed_at: None }
    }

    fn mysql(&self) -> bool {
        self.reading.family == Family::MySql
    }

    fn run(&mut self) {
        while self.pos < self.bytes.len() && self.closed_at.is_none() {
            self.step();
        }
    }

    fn peek(&self, offset: usize) -> Option<u8> {
        self.bytes.get(self.pos + offset).copied()
    }

    fn push(&mut self, kind: Kind, start: usize, end: usize) {
        self.out.tokens.push(Token { kind, start, end, space_before: self.space, joins_previous: false });
        self.space = false;
        self.pos = end;
    }

    fn hide(&mut self, start: usize, end: usize) {
        self.out.hidden.push(start..end);
        self.space = true;
        self.pos = end;
    }

    /// The rest of the text is one literal.
    fn literal_to_end(&mut self, start: usize) {
        self.out.unterminated = true;
        self.push(Kind::Literal, start, self.bytes.len());
    }

    fn step(&mut self) {
        let start = self.pos;
        let b = self.bytes[start];
        match b {
            _ if is_space(b) => {
                self.pos += 1;
                self.space = true;
            }
            b'*' if self.in_executable && self.peek(1) == Some(b'/') => {
                self.pos += 2;
                self.closed_at = Some(self.pos);
            }
            b'-' if self.peek(1) == Some(b'-') && self.dash_is_ambiguous() => {
                // MySQL and other lexers disagree on `--` before a control
                // character or a non-ASCII space: no telling what follows
                self.out.ambiguous = true;
                self.literal_to_end(start)
            }
            b'-' if self.peek(1) == Some(b'-') && self.dash_comment() => self.line_comment(start),
            b'#' if self.mysql() => self.line_comment(start),
            b'/' if self.peek(1) == Some(b'*') => self.block_comment(start),
            b'\'' => self.string(start, start + 1, self.reading.backslash_single),
            b'"' if self.mysql() => self.string(start, start + 1, self.reading.backslash_double),
            b'"' => self.quoted_identifier(start, b'"'),
            b'`' if self.mysql() => self.quoted_identifier(start, b'`'),
            b'$' if !self.mysql() => self.dollar(start),
            b'?' if self.mysql() => self.push(Kind::Param, start, start + 1),
            b'0'..=b'9' => self.number(start),
            b'.' if self.peek(1).is_some_and(|d| d.is_ascii_digit()) => self.number(start),
            _ if is_ident_start(b, self.reading.family) => self.word(start),
            _ => {
                let len = self.sql[start..].chars().next().map_or(1, char::len_utf8);
                self.push(Kind::Punct, start, start + len);
            }
        }
    }

    /// PostgreSQL: `--` always starts a comment. MySQL: only when a space,
    /// a control character or the end of the text follows.
    fn dash_comment(&self) -> bool {
        !self.mysql() || self.peek(2).is_none_or(|c| c <= b' ' || c == 0x7f)
    }

    /// MySQL: `--` before a control character (a comment to MySQL, code
    /// to sqlparser) or a non-ASCII space (the other way round).
    fn dash_is_ambiguous(&self) -> bool {
        self.mysql()
            && match self.peek(2) {
                Some(c) if c < b' ' || c == 0x7f => !is_space(c),
                Some(_) => self.sql[self.pos + 2..].starts_with(|c: char| !c.is_ascii() && c.is_whitespace()),
                None => false,
            }
    }

    fn line_comment(&mut self, start: usize) {
        let end = memchr::memchr(b'\n', &self.bytes[start..]).map_or(self.bytes.len(), |p| start + p);
        self.hide(start, end);
    }

    /// Where a plain block comment opened at `start` ends: PostgreSQL nests
    /// without limit, MySQL allows `nesting` levels (0 for a plain comment,
    /// 1 in a skipped versioned executable comment). `None`: it never ends.
    fn comment_end(&self, start: usize, nesting: usize) -> Option<usize> {
        let nested = !self.mysql();
        let mut depth = 0usize;
        let mut i = start;
        while i + 1 < self.bytes.len() {
            match (self.bytes[i], self.bytes[i + 1]) {
                (b'/', b'*') if nested || depth <= nesting => {
                    depth += 1;
                    i += 2;
                }
                (b'*', b'/') => {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        return Some(i);
                    }
                }
                _ => i += 1,
            }
        }
        None
    }

    fn block_comment(&mut self, start: usize) {
        if self.mysql() {
            let marker = &self.bytes[start + 2..];
            if marker.first() == Some(&b'!') || marker.starts_with(b"M!") {
                if self.in_executable {
                    // nested executable comments: no telling where either
                    // ends; the caller treats the outer one as ambiguous
                    self.out.executable = true;
                    self.pos = self.bytes.len();
                    return;
                }
                return self.executable_comment(start);
            }
            if marker.first() == Some(&b'+') {
                return self.hint(start);
            }
        }
        match self.comment_end(start, 0) {
            Some(end) => self.hide(start, end),
            None => {
                self.out.unterminated = true;
                self.hide(start, self.bytes.len());
            }
        }
    }

    /// `/*!…*/`, `/*!NNNNN…*/`, `/*M!…*/`: hidden, wherever it may end.
    fn executable_comment(&mut self, start: usize) {
        self.out.executable = true;
        let mariadb = self.bytes[start + 2] == b'M';
        let body = start + if mariadb { 4 } else { 3 };
        let versioned = self.bytes.get(body).is_some_and(u8::is_ascii_digit);
        let mut ends = vec![self.executable_end(body)];
        if versioned {
            // a server older than the version skips it
            ends.push(self.comment_end(start, 1));
        }
        if mariadb {
            // MySQL reads /*M! as a plain comment
            ends.push(self.comment_end(start, 0));
        }
        self.hide_with_ends(start, &ends);
    }

    /// Where a running executable comment's content, lexed as code, meets
    /// its `*/`. A nested executable comment makes it ambiguous (`None`).
    fn executable_end(&self, body: usize) -> Option<usize> {
        let mut inner = Lexer::new(self.sql, self.reading, body, true);
        inner.run();
        if inner.out.executable || inner.out.ambiguous {
            return None;
        }
        inner.closed_at
    }

    /// `/*+ … */`: MySQL's hint scanner knows quoted names, a plain comment
    /// does not; hidden either way.
    fn hint(&mut self, start: usize) {
        self.out.executable = true;
        let plain = self.comment_end(start, 0);
        let mut i = start + 3;
        let mut quoted = None;
        while i < self.bytes.len() {
            match self.bytes[i] {
                q @ (b'\'' | b'"' | b'`') => match memchr::memchr(q, &self.bytes[i + 1..]) {
                    Some(p) => i += p + 2,
                    None => break,
                },
                b'*' if self.bytes.get(i + 1) == Some(&b'/') => {
                    quoted = Some(i + 2);
                    break;
                }
                _ => i += 1,
            }
        }
        self.hide_with_ends(start, &[plain, quoted]);
    }

    /// Hides a comment whose possible ends are `ends`: one agreed end is
    /// an ordinary hidden range; an open one hides the rest of the text;
    /// ends that disagree make the rest of the text one literal.
    fn hide_with_ends(&mut self, start: usize, ends: &[Option<usize>]) {
        let first = ends[0];
        if ends.iter().all(|e| *e == first) {
            match first {
                Some(end) => self.hide(start, end),
                None => {
                    self.out.unterminated = true;
                    self.hide(start, self.bytes.len());
                }
            }
        } else {
            self.out.ambiguous = true;
            self.literal_to_end(start);
        }
    }

    /// A quoted string whose body starts at `body`; `backslash` when `\`
    /// escapes the next character.
    fn string(&mut self, start: usize, body: usize, backslash: bool) {
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
                    return self.push(Kind::Literal, start, i + 1);
                }
            } else {
                i += 1;
            }
        }
        self.literal_to_end(start)
    }

    fn quoted_identifier(&mut self, start: usize, quote: u8) {
        let mut i = start + 1;
        while i < self.bytes.len() {
            if self.bytes[i] == quote {
                if self.bytes.get(i + 1) == Some(&quote) {
                    i += 2;
                    continue;
                }
                return self.push(Kind::Quoted, start, i + 1);
            }
            i += 1;
        }
        // cut inside the quotes: it may as well have been a string
        self.literal_to_end(start)
    }

    /// `$1`, `$$…$$` or `$tag$…$tag$` (PostgreSQL).
    fn dollar(&mut self, start: usize) {
        let rest = &self.bytes[start + 1..];
        if rest.first().is_some_and(u8::is_ascii_digit) {
            // PostgreSQL 16 reads `$1_000` as parameter 1000
            let mut len = 0;
            while len < rest.len()
                && (rest[len].is_ascii_digit() || (rest[len] == b'_' && rest.get(len + 1).is_some_and(u8::is_ascii_digit)))
            {
                len += 1;
            }
            return self.push(Kind::Param, start, start + 1 + len);
        }
        let tag_len = rest.iter().take_while(|&&b| is_tag_continue(b)).count();
        if rest.get(tag_len) == Some(&b'$') {
            let delimiter = &self.bytes[start..start + tag_len + 2];
            let body = start + tag_len + 2;
            return match memchr::memmem::find(&self.bytes[body..], delimiter) {
                Some(p) => self.push(Kind::Literal, start, body + p + delimiter.len()),
                None => self.literal_to_end(start),
            };
        }
        if start + 1 + tag_len >= self.bytes.len() {
            // text ends inside what may be an opening tag
            return self.literal_to_end(start);
        }
        self.push(Kind::Punct, start, start + 1);
    }

    fn number(&mut self, start: usize) {
        let bytes = self.bytes;
        let digits = |mut i: usize, ok: fn(u8) -> bool| {
            while i < bytes.len() && (ok(bytes[i]) || bytes[i] == b'_') {
                i += 1;
            }
            i
        };
        let mut i = start;
        let radix_prefix = bytes[i] == b'0' && matches!(bytes.get(i + 1), Some(b'x' | b'X' | b'b' | b'B' | b'o' | b'O'));
        if radix_prefix {
            i = digits(i + 2, |b| b.is_ascii_hexdigit());
        } else {
            i = digits(i, |b| b.is_ascii_digit());
            // `1.` is a number to MySQL even before another dot (`1...2`);
            // PostgreSQL stops at `1..`: hiding the dot is the union
            if bytes.get(i) == Some(&b'.') {
                i = digits(i + 1, |b| b.is_ascii_digit());
            }
            if matches!(bytes.get(i), Some(b'e' | b'E')) {
                let mut j = i + 1;
                if matches!(bytes.get(j), Some(b'+' | b'-')) {
                    j += 1;
                }
                if bytes.get(j).is_none_or(u8::is_ascii_digit) {
                    i = digits(j, |b| b.is_ascii_digit());
                }
            }
        }
        // `1.` and `.1.`: a dot after a number goes with it (sqlparser and
        // MySQL read `x.1..` with a `1.`); hiding a dot costs nothing
        if bytes.get(i) == Some(&b'.') {
            i += 1;
        }
        // `123abc` is junk to PostgreSQL and an identifier to MySQL; either
        // way no part of it comes out raw. (PostgreSQL's `1$$x$$` is `1`
        // and a dollar quote: `$` cannot start the junk.)
        if bytes.get(i).is_some_and(|&b| is_ident_start(b, self.reading.family)) {
            while i < bytes.len() && is_ident_continue(bytes[i]) {
                i += 1;
            }
        }
        self.push(Kind::Literal, start, i);
    }

    fn word(&mut self, start: usize) {
        let end = start + 1 + self.bytes[start + 1..].iter().take_while(|&&b| is_ident_continue(b)).count();
        let word = &self.bytes[start..end];
        let next = self.bytes.get(end).copied();
        let mysql = self.mysql();
        // prefixed strings: E'…', B'…', X'…', N'…', U&'…'
        // (`\` does not escape in B'…', X'…', U&'…' on either server, but
        // independent lexers disagree; following the reading's backslash
        // rule costs nothing, the union covers both)
        if next == Some(b'\'') && word.len() == 1 {
            match word[0].to_ascii_lowercase() {
                b'e' if !mysql => return self.string(start, end + 1, true),
                b'n' => return self.string(start, end + 1, self.reading.backslash_single),
                // MySQL: sqlparser reads `X'…'` with escapes and `B'…'`
                // without while `'…'` has them; tying both to the `"…"`
                // setting gives every combination across the readings
                b'b' | b'x' if mysql => return self.string(start, end + 1, self.reading.backslash_double),
                b'b' | b'x' => return self.string(start, end + 1, self.reading.backslash_single),
                _ => {}
            }
        }
        if mysql && next == Some(b'"') && word.len() == 1 && matches!(word[0].to_ascii_lowercase(), b'b' | b'x' | b'n') {
            // `b"…"`: a byte string to some lexers, a name and a string to
            // MySQL; the letter goes with the literal either way
            return self.string(start, end + 1, self.reading.backslash_double);
        }
        if !mysql && word.eq_ignore_ascii_case(b"u") && self.bytes[end..].starts_with(b"&'") {
            return self.string(start, end + 2, self.reading.backslash_single);
        }
        if !mysql && word.eq_ignore_ascii_case(b"u") && self.bytes[end..].starts_with(b"&\"") {
            return self.quoted_identifier_from(start, end + 1);
        }
        if mysql && word[0] == b'_' && matches!(next, Some(b'\'' | b'"')) {
            // charset introducer: _utf8mb4'…'
            self.push(Kind::Word, start, end);
            let backslash = if next == Some(b'"') { self.reading.backslash_double } else { self.reading.backslash_single };
            return self.string(end, end + 1, backslash);
        }
        let kind = if word.eq_ignore_ascii_case(b"true") || word.eq_ignore_ascii_case(b"false") { Kind::Literal } else { Kind::Word };
        self.push(kind, start, end);
    }

    /// `U&"…"`: a quoted identifier whose quote is at `quote`.
    fn quoted_identifier_from(&mut self, start: usize, quote: usize) {
        let mut i = quote + 1;
        while i < self.bytes.len() {
            if self.bytes[i] == b'"' {
                if self.bytes.get(i + 1) == Some(&b'"') {
                    i += 2;
                    continue;
                }
                return self.push(Kind::Quoted, start, i + 1);
            }
            i += 1;
        }
        self.literal_to_end(start)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PG: Reading = Reading { family: Family::Postgres, backslash_single: false, backslash_double: false };
    const MY: Reading = Reading { family: Family::MySql, backslash_single: true, backslash_double: true };

    fn kinds(sql: &str, reading: Reading) -> Vec<(Kind, &str)> {
        lex(sql, reading).tokens.iter().map(|t| (t.kind, t.text(sql))).collect()
    }

    #[test]
    fn dollar_tags_take_any_identifier_character() {
        for sql in ["$é$secret$é$", "$тег$secret$тег$", "$\u{3000}$secret$\u{3000}$", "$_1$secret$_1$"] {
            assert_eq!(kinds(sql, PG), [(Kind::Literal, sql)], "{sql}");
        }
        // nested different tags: the outer one wins
        let nested = "$a$ x $b$ y $b$ z $a$";
        assert_eq!(kinds(nested, PG), [(Kind::Literal, nested)]);
        // `$` inside an identifier is part of it, not a quote
        assert_eq!(kinds("a$b$c", PG), [(Kind::Word, "a$b$c")]);
    }

    #[test]
    fn mysql_double_dash_needs_a_space_or_control_after_it() {
        assert_eq!(kinds("5--1", MY), [(Kind::Literal, "5"), (Kind::Punct, "-"), (Kind::Punct, "-"), (Kind::Literal, "1")]);
        assert_eq!(kinds("5-- 1", MY), [(Kind::Literal, "5")]);
        // MariaDB 10.11: `SELECT 5--\u{1}1` → 5 (a comment); sqlparser reads code: ambiguous
        assert_eq!(kinds("5--\u{1}1", MY), [(Kind::Literal, "5"), (Kind::Literal, "--\u{1}1")]);
        assert_eq!(kinds("5--\t1", MY), [(Kind::Literal, "5")]);
        assert_eq!(kinds("5--", MY), [(Kind::Literal, "5")]);
        // MariaDB 10.11: `SELECT 5--\u{3000} 1` is not a comment (a syntax error near '1');
        // sqlparser takes it as one: ambiguous, the rest is a literal
        assert_eq!(kinds("5--\u{3000} 1", MY), [(Kind::Literal, "5"), (Kind::Literal, "--\u{3000} 1")]);
        assert_eq!(kinds("5--1", PG), [(Kind::Literal, "5")]);
    }

    #[test]
    fn mysql_comments_do_not_nest_postgres_comments_do() {
        assert_eq!(kinds("1 /* /* 2 */, 3", MY), [(Kind::Literal, "1"), (Kind::Punct, ","), (Kind::Literal, "3")]);
        assert_eq!(kinds("1 /* /* 2 */, 3 */ 4", PG), [(Kind::Literal, "1"), (Kind::Literal, "4")]);
    }

    #[test]
    fn executable_comments_are_hidden_and_ambiguous_ends_take_the_rest() {
        // runs on every server: content lexed as code, a quoted */ does not end it
        let lexed = lex("1 /*! , '*/' */, 3", MY);
        assert!(lexed.executable && !lexed.ambiguous);
        assert_eq!(lexed.hidden, vec![2..15]);
        // versioned: a skipping server ends at the first */, a running one later
        let lexed = lex("1 /*!99999 , '*/' x */, 3", MY);
        assert!(lexed.ambiguous);
        assert_eq!(kinds("1 /*!99999 , '*/' x */, 3", MY).last(), Some(&(Kind::Literal, "/*!99999 , '*/' x */, 3")));
        // a skipped versioned comment allows one nested comment (MariaDB 10.11: SELECT 1 /*!99999 /* a */ 2 */, 3 → 1, 3)
        assert_eq!(kinds("1 /*!99999 /* a */ 2 */, 3", MY), [(Kind::Literal, "1"), (Kind::Punct, ","), (Kind::Literal, "3")]);
        // a line comment inside running content hides a */ (MariaDB: → 1, 2, 3 for the unversioned form)
        assert_eq!(lex("1 /*! , 2 -- c */\n */, 3", MY).hidden, vec![2..21]);
    }

    /// Found by fuzzing: sqlparser's MySQL tokenizer (and MySQL) read `1.`
    /// as one number before another dot; the dot was shown.
    #[test]
    fn a_number_keeps_its_trailing_dot() {
        assert_eq!(kinds("1...2", MY), [(Kind::Literal, "1.."), (Kind::Literal, ".2")]);
        assert_eq!(kinds("se.1..", MY), [(Kind::Word, "se"), (Kind::Literal, ".1."), (Kind::Punct, ".")]);
    }

    /// Found by fuzzing: sqlparser reads MySQL's `b"…"` as one byte string.
    #[test]
    fn a_prefix_letter_goes_with_a_double_quoted_string() {
        assert_eq!(kinds("b\"x\", X\"y\"", MY), [(Kind::Literal, "b\"x\""), (Kind::Punct, ","), (Kind::Literal, "X\"y\"")]);
    }

    #[test]
    fn backslash_follows_the_reading() {
        let off = Reading { backslash_single: true, ..PG };
        // standard_conforming_strings on: `'a\'` ends, and `b'` opens a bit string
        assert_eq!(kinds(r"'a\'b'", PG), [(Kind::Literal, r"'a\'"), (Kind::Literal, "b'")]);
        assert_eq!(kinds(r"'a\'b'", off), [(Kind::Literal, r"'a\'b'")]);
        assert_eq!(kinds(r"E'a\'b'", PG), [(Kind::Literal, r"E'a\'b'")]);
    }
}
