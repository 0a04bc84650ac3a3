//! MySQL's and MariaDB's error log. MySQL 8: `2024-05-01T12:34:56.123456Z
//! 0 [Warning] [MY-010068] [Server] text`; MariaDB: `2024-05-01 12:34:56 0
//! [Note] text` (older: `240501 12:34:56 [ERROR] text`). Lines without a
//! timestamp continue the entry before (InnoDB dumps, stack traces): they
//! are counted and dropped, never sent.

use super::{Parser, Pending};
use crate::entry::{is_garbage, Entry, MyErrorEntry, Parsed, Problem};

/// One line that starts an entry, or `None`.
fn head(line: &str) -> Option<MyErrorEntry> {
    // the timestamp: one word (ISO 8601 with T) or two (date and time)
    let (time, rest) = match line.split_once(' ') {
        Some((first, rest)) if first.contains('T') => (crate::time::mysql(first)?, rest),
        Some((first, rest)) => {
            let rest = rest.trim_start();
            let (second, rest) = rest.split_once(' ')?;
            (crate::time::mysql(&format!("{first} {second}"))?, rest)
        }
        None => return None,
    };
    let rest = rest.trim_start();
    // the thread id (absent in old MariaDB logs)
    let (thread, rest) = match rest.split_once(' ') {
        Some((n, r)) if n.bytes().all(|b| b.is_ascii_digit()) && !n.is_empty() => (n.parse().ok(), r.trim_start()),
        _ => (None, rest),
    };
    let (severity, mut rest) = bracketed(rest)?;
    if !matches!(severity, "ERROR" | "Error" | "Warning" | "Note" | "System" | "Info") {
        return None;
    }
    let mut code = None;
    let mut subsystem = None;
    if let Some((c, r)) = bracketed(rest).filter(|(c, _)| c.starts_with("MY-")) {
        code = Some(c.to_string());
        rest = r;
        if let Some((s, r)) = bracketed(rest) {
            subsystem = Some(s.to_string());
            rest = r;
        }
    }
    Some(MyErrorEntry {
        time: Some(time),
        thread,
        severity: severity.to_string(),
        code,
        subsystem,
        message: rest.to_string(),
        continuation_lines: 0,
    })
}

/// `[word] rest`.
fn bracketed(s: &str) -> Option<(&str, &str)> {
    let inner = s.strip_prefix('[')?;
    let (word, rest) = inner.split_once(']')?;
    Some((word, rest.trim_start()))
}

pub struct MySqlError {
    pending: Option<Pending<MyErrorEntry>>,
}

impl MySqlError {
    pub fn new() -> MySqlError {
        MySqlError { pending: None }
    }
}

impl Default for MySqlError {
    fn default() -> MySqlError {
        MySqlError::new()
    }
}

impl Parser for MySqlError {
    fn line(&mut self, line: &[u8], at: u64, cut: bool, out: &mut Parsed) {
        if is_garbage(line) {
            out.problems.push(Problem::Garbage);
            return;
        }
        if cut {
            out.problems.push(Problem::TooLong);
        }
        let text = super::text(line);
        match head(&text) {
            Some(entry) => {
                if let Some(p) = self.pending.take() {
                    out.entries.push(Entry::MyError(p.entry));
                }
                self.pending = Some(Pending::new(entry, at, line.len()));
            }
            None => match self.pending.as_mut() {
                Some(p) => {
                    p.entry.continuation_lines += 1;
                    p.quiet = false;
                }
                // mariadbd's own stderr before its first entry (a
                // version banner, a stack trace of a crash): not an entry
                None if text.trim().is_empty() => {}
                None => out.problems.push(Problem::Mismatch),
            },
        }
    }

    fn idle(&mut self, out: &mut Parsed) {
        super::idle_pending(&mut self.pending, |e| Some(Entry::MyError(e)), out);
    }

    fn finish(&mut self, out: &mut Parsed) {
        if let Some(p) = self.pending.take() {
            out.entries.push(Entry::MyError(p.entry));
        }
    }

    fn pending_from(&self) -> Option<u64> {
        self.pending.as_ref().map(|p| p.from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mariadb_mysql8_and_old_lines() {
        let m = head("2024-05-01 12:34:56 5 [Warning] Access denied for user 'bob'@'localhost' (using password: YES)").unwrap();
        assert_eq!((m.thread, m.severity.as_str(), m.code), (Some(5), "Warning", None));
        assert_eq!(m.message, "Access denied for user 'bob'@'localhost' (using password: YES)");
        let e = head("2024-05-01T12:34:56.123456Z 0 [Warning] [MY-010068] [Server] CA certificate ca.pem is self signed.").unwrap();
        assert_eq!((e.code.as_deref(), e.subsystem.as_deref()), (Some("MY-010068"), Some("Server")));
        assert_eq!(e.time, Some(1_714_566_896_123_456_000));
        let o = head("240501 12:34:56 [ERROR] mysqld: Table 't' is marked as crashed").unwrap();
        assert_eq!((o.thread, o.severity.as_str()), (None, "ERROR"));
        assert!(head("InnoDB: some dump line").is_none());
        assert!(head("2024-05-01 12:34:56 0 [Bogus] x").is_none());
    }

    #[test]
    fn continuation_lines_are_counted_and_dropped() {
        let mut p = MySqlError::new();
        let mut out = Parsed::default();
        p.line(b"2024-05-01 12:34:56 0 [Note] InnoDB: Transactions deadlock detected, dumping detailed information.", 0, false, &mut out);
        p.line(b"*** (1) TRANSACTION:", 99, false, &mut out);
        p.line(b"UPDATE t SET secret = 'x' WHERE id = 1", 120, false, &mut out);
        p.line(b"2024-05-01 12:34:57 0 [Note] next", 160, false, &mut out);
        p.finish(&mut out);
        let Entry::MyError(e) = &out.entries[0] else { panic!() };
        assert_eq!(e.continuation_lines, 2);
        assert!(!e.message.contains("secret"));
        assert_eq!(out.entries.len(), 2);
    }
}
