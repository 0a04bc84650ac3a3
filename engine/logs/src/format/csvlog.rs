//! PostgreSQL's `csvlog`: one CSV record per entry, quoted fields that
//! may span lines. Columns by version: 23 up to 12, `backend_type` from
//! 13 (24), `leader_pid` and `query_id` from 14 (26).

use super::{Parser, Pending};
use crate::entry::{is_garbage, Entry, Parsed, PgEntry, Problem};

/// A record being read: its fields so far, the field being read, and
/// whether that field's quotes are open.
#[derive(Default)]
struct Record {
    fields: Vec<String>,
    field: String,
    quoted: bool,
    /// The field started with a quote (so a quote inside is `""`).
    in_field_quoted: bool,
}

impl Record {
    /// Reads one line into the record; true when the record is complete.
    fn feed(&mut self, line: &str) -> bool {
        let mut chars = line.chars().peekable();
        if self.quoted {
            // the previous line ended inside quotes: its newline is content
            self.field.push('\n');
        }
        while let Some(c) = chars.next() {
            if self.quoted {
                if c == '"' {
                    if chars.peek() == Some(&'"') {
                        chars.next();
                        self.field.push('"');
                    } else {
                        self.quoted = false;
                    }
                } else {
                    self.field.push(c);
                }
                continue;
            }
            match c {
                '"' if self.field.is_empty() && !self.in_field_quoted => {
                    self.quoted = true;
                    self.in_field_quoted = true;
                }
                ',' => {
                    self.fields.push(std::mem::take(&mut self.field));
                    self.in_field_quoted = false;
                }
                '\r' if chars.peek().is_none() => {}
                c => self.field.push(c),
            }
        }
        if self.quoted {
            return false;
        }
        self.fields.push(std::mem::take(&mut self.field));
        self.in_field_quoted = false;
        true
    }
}

fn some(s: &str) -> Option<String> {
    (!s.is_empty()).then(|| s.to_string())
}

/// A complete record as an entry, or why not.
fn entry(fields: Vec<String>) -> Result<PgEntry, Problem> {
    if !(23..=26).contains(&fields.len()) {
        return Err(Problem::Mismatch);
    }
    let f = |i: usize| fields.get(i).map(String::as_str).unwrap_or("");
    let time = crate::time::pg(f(0));
    if time.is_none() && !f(0).starts_with(|c: char| c.is_ascii_digit()) {
        return Err(Problem::Mismatch);
    }
    Ok(PgEntry {
        time,
        severity: f(11).to_string(),
        sqlstate: some(f(12)).filter(|s| s != "00000"),
        message: f(13).to_string(),
        detail: some(f(14)),
        hint: some(f(15)),
        context: some(f(18)),
        statement: some(f(19)),
        query_id: some(f(25)).filter(|q| q != "0"),
        pid: f(3).parse().ok(),
        user: some(f(1)),
        database: some(f(2)),
        application: some(f(22)),
        backend_type: some(f(23)),
    })
}

pub struct CsvLog {
    pending: Option<Pending<Record>>,
    max_entry: usize,
}

impl CsvLog {
    pub fn new(max_line: usize) -> CsvLog {
        CsvLog { pending: None, max_entry: max_line.saturating_mul(4) }
    }

    fn done(record: Record, out: &mut Parsed) {
        match entry(record.fields) {
            Ok(e) => out.entries.push(Entry::Pg(e)),
            Err(p) => out.problems.push(p),
        }
    }
}

impl Parser for CsvLog {
    fn line(&mut self, line: &[u8], at: u64, cut: bool, out: &mut Parsed) {
        if is_garbage(line) {
            // whatever was being read cannot end well
            self.pending = None;
            out.problems.push(Problem::Garbage);
            return;
        }
        if cut {
            out.problems.push(Problem::TooLong);
        }
        let text = super::text(line);
        let mut pending = self.pending.take().unwrap_or_else(|| Pending::new(Record::default(), at, 0));
        pending.bytes += line.len();
        pending.quiet = false;
        if pending.entry.feed(&text) {
            Self::done(pending.entry, out);
        } else if pending.bytes > self.max_entry || cut {
            // an unterminated quote: give up on this record
            out.problems.push(Problem::Mismatch);
        } else {
            self.pending = Some(pending);
        }
    }

    fn idle(&mut self, out: &mut Parsed) {
        // an open quote at a quiet end of file is a record still being
        // written, or a broken one: it waits, and `finish` drops it
        if let Some(p) = &mut self.pending {
            if !p.quiet {
                p.quiet = true;
            }
        }
        let _ = out;
    }

    fn finish(&mut self, out: &mut Parsed) {
        if self.pending.take().is_some() {
            out.problems.push(Problem::Mismatch);
        }
    }

    fn pending_from(&self) -> Option<u64> {
        self.pending.as_ref().map(|p| p.from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(text: &str) -> Parsed {
        let mut p = CsvLog::new(1 << 20);
        let mut out = Parsed::default();
        let mut at = 0;
        for line in text.split_inclusive('\n') {
            p.line(line.trim_end_matches('\n').as_bytes(), at, false, &mut out);
            at += line.len() as u64;
        }
        p.idle(&mut out);
        p.idle(&mut out);
        out
    }

    // PostgreSQL 15's csvlog, 26 columns, a DETAIL with a newline in a
    // quoted field and a doubled quote
    const TWO: &str = "2024-05-01 12:34:56.789 UTC,\"app\",\"shop\",4242,\"127.0.0.1:50000\",66323c1a.1092,3,\"INSERT\",2024-05-01 12:34:50 UTC,3/17,741,ERROR,23505,\"duplicate key value violates unique constraint \"\"users_email_key\"\"\",\"Key (email)=(ann@example.com)\nalready exists.\",,,,,\"INSERT INTO users(email) VALUES ('ann@example.com')\",,,\"psql\",\"client backend\",,-617293821186\n2024-05-01 12:34:57.000 UTC,,,4243,,66323c1a.1093,1,,2024-05-01 12:34:50 UTC,,0,LOG,00000,\"checkpoint starting: time\",,,,,,,,,\"\",\"checkpointer\",,0\n";

    #[test]
    fn records_span_lines_and_quotes_are_doubled() {
        let out = run(TWO);
        assert!(out.problems.is_empty(), "{:?}", out.problems);
        let Entry::Pg(e) = &out.entries[0] else { panic!() };
        assert_eq!(e.message, "duplicate key value violates unique constraint \"users_email_key\"");
        assert_eq!(e.detail.as_deref(), Some("Key (email)=(ann@example.com)\nalready exists."));
        assert_eq!(e.query_id.as_deref(), Some("-617293821186"));
        assert_eq!(e.backend_type.as_deref(), Some("client backend"));
        let Entry::Pg(c) = &out.entries[1] else { panic!() };
        assert_eq!((c.sqlstate.as_ref(), c.query_id.as_ref(), c.message.as_str()), (None, None, "checkpoint starting: time"));
    }

    #[test]
    fn an_open_quote_keeps_its_record_pending_from_its_first_line() {
        let mut p = CsvLog::new(1 << 20);
        let mut out = Parsed::default();
        p.line(
            b"2024-05-01 12:34:56.789 UTC,\"app\",\"shop\",1,,s,1,,2024-05-01 12:34:50 UTC,,0,ERROR,XX000,\"first line",
            100,
            false,
            &mut out,
        );
        assert_eq!(p.pending_from(), Some(100));
        p.idle(&mut out);
        p.idle(&mut out);
        assert!(out.entries.is_empty(), "still waits for its closing quote");
        p.line(b"second\",,,,,,,,,\"\",\"client backend\",,0", 180, false, &mut out);
        assert_eq!(p.pending_from(), None);
        let Entry::Pg(e) = &out.entries[0] else { panic!() };
        assert_eq!(e.message, "first line\nsecond");
    }

    #[test]
    fn postgresql_12_and_13_rows_have_fewer_columns() {
        // 12: 23 columns (application_name last); 13: backend_type too
        let v12 = "2024-05-01 12:34:56.789 UTC,\"app\",\"shop\",42,\"127.0.0.1:5000\",s.1,1,\"SELECT\",2024-05-01 12:34:50 UTC,3/1,0,ERROR,22012,\"division by zero\",,,,,,\"SELECT 1/0\",,,\"psql\"\n";
        let v13 = v12.replace(",\"psql\"\n", ",\"psql\",\"client backend\"\n");
        for (text, backend) in [(v12.to_string(), None), (v13, Some("client backend"))] {
            let out = run(&text);
            assert!(out.problems.is_empty(), "{:?}", out.problems);
            let Entry::Pg(e) = &out.entries[0] else { panic!() };
            assert_eq!(
                (e.sqlstate.as_deref(), e.statement.as_deref(), e.application.as_deref()),
                (Some("22012"), Some("SELECT 1/0"), Some("psql"))
            );
            assert_eq!((e.backend_type.as_deref(), e.query_id.as_deref()), (backend, None));
        }
    }

    #[test]
    fn other_text_is_a_mismatch() {
        let out = run("2024-05-01 12:34:56.789 UTC [42] LOG:  hello\n{\"json\": 1}\n");
        assert_eq!(out.problems, vec![Problem::Mismatch, Problem::Mismatch]);
    }
}
