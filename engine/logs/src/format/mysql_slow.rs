//! MySQL's and MariaDB's slow query log: header lines starting with `# `
//! (`# Time:`, `# User@Host:`, `# Query_time: … Rows_examined: …`, and
//! MariaDB's `# Thread_id: … Schema: …`, `# Rows_affected:`, …), then
//! `use db;`, `SET timestamp=N;` and the statement, which may span lines.
//! An entry starts at its first header line after a statement; MariaDB
//! writes `# Time:` only when the second changes. The server's banner
//! (`… Version: … started with:`, `Tcp port: …`, `Time  Id Command
//! Argument`), written at start and after a FLUSH, is skipped.

use super::{Parser, Pending};
use crate::entry::{is_garbage, Entry, Parsed, Problem, SlowEntry};

struct Building {
    entry: SlowEntry,
    /// Header lines seen (a `# Query_time` line makes it an entry).
    timed: bool,
    /// The statement has started: the next header line is a new entry.
    in_statement: bool,
}

pub struct MySqlSlow {
    pending: Option<Pending<Building>>,
    max_entry: usize,
    /// The last `# Time:` (MariaDB omits it within the same second).
    last_time: Option<u64>,
    /// The last `use db;` (MySQL does not repeat it per entry).
    database: Option<String>,
}

impl MySqlSlow {
    pub fn new(max_line: usize) -> MySqlSlow {
        MySqlSlow { pending: None, max_entry: max_line.saturating_mul(4), last_time: None, database: None }
    }

    fn emit(b: Building) -> Option<Entry> {
        // a header without `# Query_time` (a cut file) is no entry
        (b.timed && !b.entry.statement.trim().is_empty()).then(|| {
            let mut e = b.entry;
            // the server ends every logged statement with `;`
            let text = e.statement.trim_end();
            e.statement = text.strip_suffix(';').unwrap_or(text).trim_end().to_string();
            Entry::Slow(e)
        })
    }

    fn flush(&mut self, out: &mut Parsed) {
        if let Some(p) = self.pending.take() {
            match Self::emit(p.entry) {
                Some(e) => out.entries.push(e),
                None => out.problems.push(Problem::Mismatch),
            }
        }
    }

    fn header(&mut self, line: &str, at: u64, out: &mut Parsed) {
        let starts = self.pending.as_ref().is_none_or(|p| p.entry.in_statement);
        if starts {
            self.flush(out);
            let entry = SlowEntry { time: self.last_time, database: self.database.clone(), ..SlowEntry::default() };
            self.pending = Some(Pending::new(Building { entry, timed: false, in_statement: false }, at, 0));
        }
        let Some(p) = self.pending.as_mut() else { return };
        p.quiet = false;
        p.bytes += line.len();
        let b = &mut p.entry;
        let body = line.trim_start_matches('#').trim();
        if let Some(time) = body.strip_prefix("Time:") {
            self.last_time = crate::time::mysql(time.trim());
            b.entry.time = self.last_time;
            return;
        }
        if let Some(who) = body.strip_prefix("User@Host:") {
            // `root[root] @ localhost [127.0.0.1]  Id:     8`: the user
            // before `[`; the host is not kept
            let who = who.trim();
            b.entry.user = who.split(['[', ' ']).next().filter(|u| !u.is_empty()).map(str::to_string);
            if let Some(id) = who.split("Id:").nth(1) {
                b.entry.thread_id = id.trim().parse().ok();
            }
            return;
        }
        // `Key: value  Key: value …`
        let mut words = body.split_whitespace();
        while let Some(word) = words.next() {
            let Some(key) = word.strip_suffix(':') else { continue };
            let Some(value) = words.next() else { break };
            match key {
                "Query_time" => {
                    b.entry.query_time = value.parse().unwrap_or(0.0);
                    b.timed = true;
                }
                "Lock_time" => b.entry.lock_time = value.parse().unwrap_or(0.0),
                "Rows_sent" => b.entry.rows_sent = value.parse().unwrap_or(0),
                "Rows_examined" => b.entry.rows_examined = value.parse().unwrap_or(0),
                "Rows_affected" => b.entry.rows_affected = value.parse().ok(),
                "Thread_id" => b.entry.thread_id = value.parse().ok(),
                "Schema" => b.entry.database = Some(value.to_string()).filter(|s| !s.is_empty()),
                _ => {}
            }
        }
    }
}

fn is_banner(line: &str) -> bool {
    line.contains(", Version: ") && line.contains("started with:")
        || line.starts_with("Tcp port: ")
        || line.starts_with("Time") && line.contains("Id") && line.contains("Command") && line.contains("Argument")
}

impl Parser for MySqlSlow {
    fn line(&mut self, line: &[u8], at: u64, cut: bool, out: &mut Parsed) {
        if is_garbage(line) {
            out.problems.push(Problem::Garbage);
            return;
        }
        if cut {
            out.problems.push(Problem::TooLong);
        }
        let text = super::text(line);
        if is_banner(&text) {
            self.flush(out);
            return;
        }
        if text.starts_with("# ") {
            self.header(&text, at, out);
            return;
        }
        let Some(p) = self.pending.as_mut() else {
            if !text.trim().is_empty() {
                out.problems.push(Problem::Mismatch);
            }
            return;
        };
        if p.bytes + text.len() > self.max_entry {
            out.problems.push(Problem::TooLong);
            return;
        }
        p.quiet = false;
        p.bytes += text.len();
        let b = &mut p.entry;
        let trimmed = text.trim();
        if !b.in_statement {
            if let Some(db) = trimmed.strip_prefix("use ").and_then(|d| d.strip_suffix(';')) {
                let db = db.trim().trim_matches('`').to_string();
                self.database = Some(db.clone());
                b.entry.database = Some(db);
                return;
            }
            if let Some(ts) = trimmed.strip_prefix("SET timestamp=").and_then(|t| t.strip_suffix(';')) {
                if let Ok(seconds) = ts.parse::<u64>() {
                    b.entry.time = seconds.checked_mul(1_000_000_000);
                }
                return;
            }
        }
        b.in_statement = true;
        if !b.entry.statement.is_empty() {
            b.entry.statement.push('\n');
        }
        b.entry.statement.push_str(&text);
    }

    fn idle(&mut self, out: &mut Parsed) {
        if let Some(p) = &mut self.pending {
            if p.quiet {
                self.flush(out);
            } else {
                p.quiet = true;
            }
        }
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

    fn run(text: &str) -> Parsed {
        let mut p = MySqlSlow::new(1 << 20);
        let mut out = Parsed::default();
        let mut at = 0;
        for line in text.split_inclusive('\n') {
            p.line(line.trim_end_matches('\n').as_bytes(), at, false, &mut out);
            at += line.len() as u64;
        }
        p.finish(&mut out);
        out
    }

    fn slow(e: &Entry) -> &SlowEntry {
        match e {
            Entry::Slow(e) => e,
            _ => panic!("not a slow log entry"),
        }
    }

    // MariaDB 10.11 with long_query_time = 0 (two entries within one
    // second: the second has no `# Time:`), after its banner
    const MARIADB: &str = "/usr/sbin/mariadbd, Version: 10.11.6-MariaDB-0+deb12u1-log (Debian 12). started with:\n\
Tcp port: 3306  Unix socket: /run/mysqld/mysqld.sock\n\
Time\t\t    Id Command\tArgument\n\
# Time: 240501 12:34:56\n\
# User@Host: app[app] @ localhost []\n\
# Thread_id: 31  Schema: shop  QC_hit: No\n\
# Query_time: 0.000321  Lock_time: 0.000045  Rows_sent: 1  Rows_examined: 12\n\
# Rows_affected: 0  Bytes_sent: 90\n\
SET timestamp=1714566896;\n\
SELECT * FROM users\n\
WHERE email = 'ann@example.com';\n\
# User@Host: app[app] @ localhost []\n\
# Thread_id: 31  Schema: shop  QC_hit: No\n\
# Query_time: 1.500000  Lock_time: 0.000000  Rows_sent: 0  Rows_examined: 0\n\
# Rows_affected: 1  Bytes_sent: 11\n\
SET timestamp=1714566896;\n\
UPDATE users SET name = 'Ann' WHERE id = 7;\n";

    #[test]
    fn mariadb_entries_with_and_without_their_time_line() {
        let out = run(MARIADB);
        assert!(out.problems.is_empty(), "{:?}", out.problems);
        assert_eq!(out.entries.len(), 2);
        let a = slow(&out.entries[0]);
        assert_eq!(a.statement, "SELECT * FROM users\nWHERE email = 'ann@example.com'");
        assert_eq!((a.query_time, a.rows_examined, a.database.as_deref(), a.user.as_deref()), (0.000321, 12, Some("shop"), Some("app")));
        assert_eq!(a.time, Some(1_714_566_896_000_000_000));
        let b = slow(&out.entries[1]);
        assert_eq!((b.query_time, b.rows_affected, b.thread_id), (1.5, Some(1), Some(31)));
    }

    // MySQL 8.0
    const MYSQL8: &str = "# Time: 2024-05-01T12:34:56.123456Z\n\
# User@Host: app[app] @ localhost [127.0.0.1]  Id:     8\n\
# Query_time: 0.000200  Lock_time: 0.000001 Rows_sent: 1  Rows_examined: 0\n\
use shop;\n\
SET timestamp=1714566896;\n\
select 1;\n";

    #[test]
    fn mysql8_entries_take_their_schema_from_use() {
        let out = run(MYSQL8);
        let e = slow(&out.entries[0]);
        assert_eq!((e.database.as_deref(), e.thread_id, e.statement.as_str()), (Some("shop"), Some(8), "select 1"));
    }

    #[test]
    fn a_statement_without_its_header_is_a_mismatch() {
        let out = run("select 1;\n");
        assert_eq!(out.problems, vec![Problem::Mismatch]);
    }
}
