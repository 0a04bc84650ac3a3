//! PostgreSQL's `stderr` format through the logging collector: each line
//! starts with the server's `log_line_prefix`, then `SEVERITY:  text`.
//! An entry's DETAIL, HINT, CONTEXT, STATEMENT and QUERY come as lines of
//! their own with the same prefix; lines of a multi-line text (a plan, a
//! query) continue with a tab. The prefix is declared in the pipeline as
//! the server has it (`SHOW log_line_prefix`) and compiled once into
//! tokens; `%q` ends it for processes without a session.

use super::{Parser, Pending};
use crate::entry::{is_garbage, Entry, Parsed, PgEntry, Problem};

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Literal(String),
    /// `%m`, `%t`, `%s`: `2024-05-01 12:34:56[.789] ZONE`.
    Timestamp(char),
    /// `%n`: epoch seconds with milliseconds.
    Epoch,
    /// `%p`, `%P`, `%l`, `%x`: digits.
    Number(char),
    /// Anything else: up to the next literal.
    Text(char),
    /// `%q`: processes without a session stop the prefix here.
    Stop,
}

/// A compiled `log_line_prefix`.
#[derive(Debug, Clone)]
pub struct Prefix {
    tokens: Vec<Token>,
}

/// What a prefix gave for one line.
#[derive(Debug, Default, PartialEq)]
struct Fields {
    time: Option<u64>,
    pid: Option<i64>,
    user: Option<String>,
    database: Option<String>,
    application: Option<String>,
    sqlstate: Option<String>,
    query_id: Option<String>,
    backend_type: Option<String>,
}

impl Prefix {
    /// Compiles a prefix (the checker has refused unknown escapes already;
    /// one here is read as text).
    pub fn new(prefix: &str) -> Prefix {
        let mut tokens = Vec::new();
        let mut literal = String::new();
        let mut chars = prefix.chars().peekable();
        while let Some(c) = chars.next() {
            if c != '%' {
                literal.push(c);
                continue;
            }
            if chars.peek() == Some(&'-') {
                chars.next();
            }
            while chars.peek().is_some_and(char::is_ascii_digit) {
                chars.next();
            }
            let Some(e) = chars.next() else { break };
            if e == '%' {
                literal.push('%');
                continue;
            }
            if !literal.is_empty() {
                tokens.push(Token::Literal(std::mem::take(&mut literal)));
            }
            tokens.push(match e {
                'm' | 't' | 's' => Token::Timestamp(e),
                'n' => Token::Epoch,
                'p' | 'P' | 'l' | 'x' => Token::Number(e),
                'q' => Token::Stop,
                other => Token::Text(other),
            });
        }
        if !literal.is_empty() {
            tokens.push(Token::Literal(literal));
        }
        Prefix { tokens }
    }

    /// Matches the prefix at the start of `line`; the fields and the rest.
    fn read<'a>(&self, line: &'a str) -> Option<(Fields, &'a str)> {
        let full = self.read_tokens(line, self.tokens.iter().filter(|t| **t != Token::Stop));
        if full.is_some() {
            return full;
        }
        // a process without a session prints the prefix up to %q only
        let stop = self.tokens.iter().position(|t| *t == Token::Stop)?;
        self.read_tokens(line, self.tokens[..stop].iter())
    }

    fn read_tokens<'a, 't>(&self, line: &'a str, tokens: impl Iterator<Item = &'t Token>) -> Option<(Fields, &'a str)> {
        let tokens: Vec<&Token> = tokens.collect();
        let mut fields = Fields::default();
        let mut rest = line;
        for (i, token) in tokens.iter().enumerate() {
            match token {
                Token::Literal(l) => rest = rest.strip_prefix(l.as_str())?,
                Token::Stop => {}
                Token::Timestamp(kind) => {
                    let end = timestamp_end(rest)?;
                    let text = &rest[..end];
                    let time = crate::time::pg(text);
                    if time.is_none() && !text.starts_with(|c: char| c.is_ascii_digit()) {
                        return None;
                    }
                    if *kind != 's' {
                        fields.time = time;
                    }
                    rest = &rest[end..];
                }
                Token::Epoch => {
                    let end = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(rest.len());
                    fields.time = Some(crate::time::epoch(&rest[..end])?);
                    rest = &rest[end..];
                }
                Token::Number(kind) => {
                    let end = rest.find(|c: char| !c.is_ascii_digit()).unwrap_or(rest.len());
                    // %P is empty outside parallel workers, %x is 0 or a number
                    if end == 0 && *kind != 'P' {
                        return None;
                    }
                    if *kind == 'p' {
                        fields.pid = rest[..end].parse().ok();
                    }
                    rest = &rest[end..];
                }
                Token::Text(kind) => {
                    // up to the next literal (or the severity, when last)
                    let end = match tokens.get(i + 1) {
                        Some(Token::Literal(l)) => rest.find(l.as_str())?,
                        _ => rest.find(' ').unwrap_or(rest.len()),
                    };
                    let value = &rest[..end];
                    let value = (!value.is_empty() && value != "[unknown]").then(|| value.to_string());
                    match kind {
                        'u' => fields.user = value,
                        'd' => fields.database = value,
                        'a' => fields.application = value,
                        'e' => fields.sqlstate = value.filter(|s| s != "00000"),
                        'Q' => fields.query_id = value.filter(|s| s != "0"),
                        'b' => fields.backend_type = value,
                        _ => {}
                    }
                    rest = &rest[end..];
                }
            }
        }
        Some((fields, rest))
    }
}

/// Where `2024-05-01 12:34:56[.789] ZONE` ends (the zone: letters,
/// or a numeric offset such as `+02` or `+05:30`).
fn timestamp_end(s: &str) -> Option<usize> {
    let b = s.as_bytes();
    if b.len() < 19 || !b[0].is_ascii_digit() || b[10] != b' ' {
        return None;
    }
    let mut i = 19;
    if b.get(i) == Some(&b'.') {
        i += 1;
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
    }
    if b.get(i) != Some(&b' ') {
        return Some(i);
    }
    let zone = i + 1;
    let mut j = zone;
    while b.get(j).is_some_and(|c| c.is_ascii_alphanumeric() || matches!(c, b'+' | b'-' | b'/' | b'_')) {
        j += 1;
    }
    if matches!(b.get(zone), Some(b'+' | b'-'))
        && b.get(j) == Some(&b':')
        && b.get(j + 1..j + 3).is_some_and(|d| d.iter().all(u8::is_ascii_digit))
    {
        j += 3;
    }
    Some(if j > zone { j } else { i })
}

const PRIMARY: &[&str] =
    &["ERROR", "LOG", "WARNING", "FATAL", "PANIC", "NOTICE", "INFO", "DEBUG", "DEBUG1", "DEBUG2", "DEBUG3", "DEBUG4", "DEBUG5"];
const SECONDARY: &[&str] = &["DETAIL", "HINT", "CONTEXT", "STATEMENT", "QUERY", "LOCATION"];

/// `SEVERITY:  text` after the prefix.
fn severity(rest: &str) -> Option<(&str, &str)> {
    let (word, text) = rest.split_once(':')?;
    if !word.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit()) || word.is_empty() {
        return None;
    }
    Some((word, text.strip_prefix("  ").or_else(|| text.strip_prefix(' ')).unwrap_or(text)))
}

/// Which part of the entry continuation lines go to.
#[derive(Clone, Copy, PartialEq)]
enum Part {
    Message,
    Detail,
    Hint,
    Context,
    Statement,
    Other,
}

struct Building {
    entry: PgEntry,
    part: Part,
}

pub struct Stderr {
    prefix: Prefix,
    pending: Option<Pending<Building>>,
    max_entry: usize,
}

impl Stderr {
    pub fn new(prefix: &str, max_line: usize) -> Stderr {
        Stderr { prefix: Prefix::new(prefix), pending: None, max_entry: max_line.saturating_mul(4) }
    }

    fn emit(b: Building) -> Option<Entry> {
        Some(Entry::Pg(b.entry))
    }

    fn flush(&mut self, out: &mut Parsed) {
        if let Some(p) = self.pending.take() {
            out.entries.extend(Self::emit(p.entry));
        }
    }

    fn append(target: &mut Option<String>, text: &str) {
        match target {
            Some(t) => {
                t.push('\n');
                t.push_str(text);
            }
            None => *target = Some(text.to_string()),
        }
    }
}

impl Parser for Stderr {
    fn line(&mut self, line: &[u8], at: u64, cut: bool, out: &mut Parsed) {
        if is_garbage(line) {
            out.problems.push(Problem::Garbage);
            return;
        }
        if cut {
            out.problems.push(Problem::TooLong);
        }
        let text = super::text(line);
        // a continuation of the part being read
        if let Some(cont) = text.strip_prefix('\t') {
            let Some(p) = self.pending.as_mut() else {
                out.problems.push(Problem::Mismatch);
                return;
            };
            if p.bytes + cont.len() > self.max_entry {
                out.problems.push(Problem::TooLong);
                return;
            }
            p.bytes += cont.len();
            p.quiet = false;
            let e = &mut p.entry.entry;
            match p.entry.part {
                Part::Message => {
                    e.message.push('\n');
                    e.message.push_str(cont);
                }
                Part::Detail => Self::append(&mut e.detail, cont),
                Part::Hint => Self::append(&mut e.hint, cont),
                Part::Context => Self::append(&mut e.context, cont),
                Part::Statement => Self::append(&mut e.statement, cont),
                Part::Other => {}
            }
            return;
        }
        let Some((fields, rest)) = self.prefix.read(&text) else {
            out.problems.push(Problem::Mismatch);
            return;
        };
        let Some((word, message)) = severity(rest) else {
            out.problems.push(Problem::Mismatch);
            return;
        };
        if SECONDARY.contains(&word) {
            let same = self.pending.as_ref().is_some_and(|p| fields.pid.is_none() || p.entry.entry.pid == fields.pid);
            if !same {
                // a part whose entry is not here (it was before where we
                // started reading)
                out.problems.push(Problem::Mismatch);
                return;
            }
            if let Some(p) = self.pending.as_mut() {
                p.bytes += message.len();
                p.quiet = false;
                let e = &mut p.entry.entry;
                p.entry.part = match word {
                    "DETAIL" => {
                        Self::append(&mut e.detail, message);
                        Part::Detail
                    }
                    "HINT" => {
                        Self::append(&mut e.hint, message);
                        Part::Hint
                    }
                    "CONTEXT" => {
                        Self::append(&mut e.context, message);
                        Part::Context
                    }
                    "STATEMENT" => {
                        Self::append(&mut e.statement, message);
                        Part::Statement
                    }
                    // QUERY (an internal query), LOCATION: not kept
                    _ => Part::Other,
                };
            }
            return;
        }
        if !PRIMARY.contains(&word) {
            out.problems.push(Problem::Mismatch);
            return;
        }
        self.flush(out);
        let entry = PgEntry {
            time: fields.time,
            severity: word.to_string(),
            sqlstate: fields.sqlstate,
            message: message.to_string(),
            query_id: fields.query_id,
            pid: fields.pid,
            user: fields.user,
            database: fields.database,
            application: fields.application,
            backend_type: fields.backend_type,
            ..PgEntry::default()
        };
        self.pending = Some(Pending::new(Building { entry, part: Part::Message }, at, line.len()));
    }

    fn idle(&mut self, out: &mut Parsed) {
        super::idle_pending(&mut self.pending, Self::emit, out);
    }

    fn finish(&mut self, out: &mut Parsed) {
        self.flush(out);
    }

    fn pending_from(&self) -> Option<u64> {
        self.pending.as_ref().map(|p| p.from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(prefix: &str, text: &str) -> Parsed {
        let mut p = Stderr::new(prefix, 1 << 20);
        let mut out = Parsed::default();
        let mut at = 0;
        for line in text.split_inclusive('\n') {
            p.line(line.trim_end_matches('\n').as_bytes(), at, false, &mut out);
            at += line.len() as u64;
        }
        p.finish(&mut out);
        out
    }

    fn pg(e: &Entry) -> &PgEntry {
        match e {
            Entry::Pg(e) => e,
            _ => panic!("not a PostgreSQL entry"),
        }
    }

    #[test]
    fn the_default_prefix_and_an_entry_with_its_detail_and_statement() {
        let out = run(
            "%m [%p] ",
            "2024-05-01 12:34:56.789 UTC [4242] ERROR:  duplicate key value violates unique constraint \"users_email_key\"\n\
             2024-05-01 12:34:56.789 UTC [4242] DETAIL:  Key (email)=(ann@example.com) already exists.\n\
             2024-05-01 12:34:56.789 UTC [4242] STATEMENT:  INSERT INTO users(email)\n\
             \tVALUES ('ann@example.com')\n\
             2024-05-01 12:34:57.000 UTC [77] LOG:  checkpoint starting: time\n",
        );
        assert!(out.problems.is_empty(), "{:?}", out.problems);
        assert_eq!(out.entries.len(), 2);
        let e = pg(&out.entries[0]);
        assert_eq!((e.severity.as_str(), e.pid, e.time), ("ERROR", Some(4242), Some(1_714_566_896_789_000_000)));
        assert_eq!(e.detail.as_deref(), Some("Key (email)=(ann@example.com) already exists."));
        assert_eq!(e.statement.as_deref(), Some("INSERT INTO users(email)\nVALUES ('ann@example.com')"));
        assert_eq!(pg(&out.entries[1]).message, "checkpoint starting: time");
    }

    #[test]
    fn a_rich_prefix_with_q_for_processes_without_a_session() {
        let prefix = "%t [%p]: [%l-1] %quser=%u,db=%d,app=%a,err=%e,qid=%Q ";
        let out = run(
            prefix,
            "2024-05-01 12:34:56 UTC [4242]: [3-1] user=app,db=shop,app=psql,err=57014,qid=123 ERROR:  canceling statement due to statement timeout\n\
             2024-05-01 12:34:57 UTC [77]: [1-1] LOG:  checkpoint complete: wrote 3 buffers (0.0%); 0 WAL file(s) added, 0 removed, 0 recycled; write=0.101 s, sync=0.002 s, total=0.110 s; sync files=2, longest=0.001 s, average=0.001 s; distance=0 kB, estimate=0 kB\n",
        );
        assert!(out.problems.is_empty(), "{:?}", out.problems);
        let e = pg(&out.entries[0]);
        assert_eq!(e.time, Some(1_714_566_896_000_000_000));
        assert_eq!(e.user.as_deref(), Some("app"));
        assert_eq!(e.database.as_deref(), Some("shop"));
        assert_eq!(e.application.as_deref(), Some("psql"));
        assert_eq!(e.sqlstate.as_deref(), Some("57014"));
        assert_eq!(e.query_id.as_deref(), Some("123"));
        let c = pg(&out.entries[1]);
        assert_eq!((c.pid, c.user.as_deref()), (Some(77), None));
        assert!(c.message.starts_with("checkpoint complete"));
    }

    #[test]
    fn a_prefix_glued_to_the_zone_and_a_numeric_offset() {
        let out = run("%m:%p:%u@%d: ", "2024-05-01 14:34:56.789 +02:00:4242:app@shop: WARNING:  there is no transaction in progress\n");
        assert!(out.problems.is_empty(), "{:?}", out.problems);
        let e = pg(&out.entries[0]);
        assert_eq!((e.time, e.pid, e.database.as_deref()), (Some(1_714_566_896_789_000_000), Some(4242), Some("shop")));
    }

    #[test]
    fn a_multi_line_plan_is_one_message() {
        let out = run(
            "%m [%p] ",
            "2024-05-01 12:34:56.789 UTC [4242] LOG:  duration: 12.345 ms  plan:\n\t{\n\t  \"Query Text\": \"select 1\",\n\t  \"Plan\": {}\n\t}\n",
        );
        assert_eq!(pg(&out.entries[0]).message, "duration: 12.345 ms  plan:\n{\n  \"Query Text\": \"select 1\",\n  \"Plan\": {}\n}");
    }

    #[test]
    fn an_entry_waits_one_quiet_poll_and_is_checkpointed_from_its_start() {
        let mut p = Stderr::new("%m [%p] ", 1 << 20);
        let mut out = Parsed::default();
        p.line(b"2024-05-01 12:34:56.789 UTC [1] ERROR:  boom", 500, false, &mut out);
        assert_eq!(p.pending_from(), Some(500));
        p.idle(&mut out);
        assert!(out.entries.is_empty(), "its DETAIL may still come");
        p.line(b"2024-05-01 12:34:56.789 UTC [1] DETAIL:  more", 560, false, &mut out);
        p.idle(&mut out);
        assert!(out.entries.is_empty(), "it grew since the last poll");
        p.idle(&mut out);
        assert_eq!(out.entries.len(), 1);
        assert_eq!(p.pending_from(), None);
        assert_eq!(pg(&out.entries[0]).detail.as_deref(), Some("more"));
    }

    #[test]
    fn lines_of_another_format_are_mismatches() {
        let out =
            run("%m [%p] ", "{\"timestamp\": \"x\"}\n2024-05-01 12:34:56.789 UTC, csv,line\nrandom text\n\tcontinuation of nothing\n");
        assert_eq!(out.problems, vec![Problem::Mismatch; 4]);
        assert!(out.entries.is_empty());
    }
}
