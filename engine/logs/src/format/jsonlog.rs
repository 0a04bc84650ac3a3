//! PostgreSQL's `jsonlog` (15+): one JSON object per line, every part of
//! an entry in its own key, `query_id` when `compute_query_id` is on.

use std::borrow::Cow;

use serde::Deserialize;

use super::Parser;
use crate::entry::{is_garbage, Entry, Parsed, PgEntry, Problem};

#[derive(Deserialize)]
struct Line<'a> {
    #[serde(borrow)]
    timestamp: Option<Cow<'a, str>>,
    #[serde(borrow)]
    user: Option<Cow<'a, str>>,
    #[serde(borrow)]
    dbname: Option<Cow<'a, str>>,
    pid: Option<i64>,
    #[serde(borrow)]
    error_severity: Option<Cow<'a, str>>,
    #[serde(borrow)]
    state_code: Option<Cow<'a, str>>,
    #[serde(borrow)]
    message: Option<Cow<'a, str>>,
    #[serde(borrow)]
    detail: Option<Cow<'a, str>>,
    #[serde(borrow)]
    hint: Option<Cow<'a, str>>,
    #[serde(borrow)]
    context: Option<Cow<'a, str>>,
    #[serde(borrow)]
    statement: Option<Cow<'a, str>>,
    #[serde(borrow)]
    application_name: Option<Cow<'a, str>>,
    #[serde(borrow)]
    backend_type: Option<Cow<'a, str>>,
    query_id: Option<i64>,
}

fn owned(v: Option<Cow<'_, str>>) -> Option<String> {
    v.map(Cow::into_owned)
}

/// One jsonlog line as an entry, or why not.
pub fn parse(line: &[u8]) -> Result<PgEntry, Problem> {
    let parsed: Line<'_> = match serde_json::from_slice(line) {
        Ok(l) => l,
        // a LATIN1 database's message is not UTF-8: read it lossily
        Err(_) if std::str::from_utf8(line).is_err() && !is_garbage(line) => {
            let lossy = String::from_utf8_lossy(line).into_owned();
            return serde_json::from_str::<Line<'_>>(&lossy).map_err(|_| Problem::Mismatch).map(|l| entry(l, true));
        }
        Err(_) => return Err(if is_garbage(line) { Problem::Garbage } else { Problem::Mismatch }),
    };
    Ok(entry(parsed, false))
}

fn entry(l: Line<'_>, _lossy: bool) -> PgEntry {
    PgEntry {
        time: l.timestamp.as_deref().and_then(crate::time::pg),
        severity: l.error_severity.map(Cow::into_owned).unwrap_or_default(),
        sqlstate: owned(l.state_code),
        message: l.message.map(Cow::into_owned).unwrap_or_default(),
        detail: owned(l.detail),
        hint: owned(l.hint),
        context: owned(l.context),
        statement: owned(l.statement),
        query_id: l.query_id.filter(|q| *q != 0).map(|q| q.to_string()),
        pid: l.pid,
        user: owned(l.user),
        database: owned(l.dbname),
        application: owned(l.application_name).filter(|a| !a.is_empty()),
        backend_type: owned(l.backend_type),
    }
}

/// Lines are entries: nothing is ever pending.
#[derive(Default)]
pub struct JsonLog;

impl Parser for JsonLog {
    fn line(&mut self, line: &[u8], _at: u64, cut: bool, out: &mut Parsed) {
        if cut {
            out.problems.push(Problem::TooLong);
            return;
        }
        if line.iter().all(u8::is_ascii_whitespace) {
            return;
        }
        match parse(line) {
            Ok(e) => out.entries.push(Entry::Pg(e)),
            Err(p) => out.problems.push(p),
        }
    }
    fn idle(&mut self, _out: &mut Parsed) {}
    fn finish(&mut self, _out: &mut Parsed) {}
    fn pending_from(&self) -> Option<u64> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // written by PostgreSQL 15 (a private server of the suite's)
    const UNIQUE: &str = r#"{"timestamp":"2024-05-01 12:34:56.789 UTC","user":"app","dbname":"shop","pid":4242,"remote_host":"127.0.0.1","remote_port":50000,"session_id":"66323c1a.1092","line_num":3,"ps":"INSERT","session_start":"2024-05-01 12:34:50 UTC","vxid":"3/17","txid":741,"error_severity":"ERROR","state_code":"23505","message":"duplicate key value violates unique constraint \"users_email_key\"","detail":"Key (email)=(ann@example.com) already exists.","statement":"INSERT INTO users(email) VALUES ('ann@example.com')","application_name":"psql","backend_type":"client backend","query_id":-6172938211862749211}"#;

    #[test]
    fn a_jsonlog_line_is_an_entry_with_its_parts_and_query_id() {
        let e = parse(UNIQUE.as_bytes()).expect("parses");
        assert_eq!(e.severity, "ERROR");
        assert_eq!(e.sqlstate.as_deref(), Some("23505"));
        assert_eq!(e.detail.as_deref(), Some("Key (email)=(ann@example.com) already exists."));
        assert_eq!(e.query_id.as_deref(), Some("-6172938211862749211"));
        assert_eq!(e.time, Some(1_714_566_896_789_000_000));
        assert_eq!(e.database.as_deref(), Some("shop"));
        assert_eq!(e.pid, Some(4242));
    }

    #[test]
    fn other_text_is_a_mismatch_and_binary_is_garbage() {
        assert_eq!(parse(b"2024-05-01 12:34:56.789 UTC [42] LOG:  hello"), Err(Problem::Mismatch));
        assert_eq!(parse(b"\x00\x01\x02\xff\xfe binary"), Err(Problem::Garbage));
        assert_eq!(parse(b"{\"message\": \"half"), Err(Problem::Mismatch));
        let zero = UNIQUE.replace("-6172938211862749211", "0");
        assert_eq!(parse(zero.as_bytes()).unwrap().query_id, None, "query id 0 is none");
    }

    #[test]
    fn a_latin1_message_is_read_with_replacement_characters() {
        let line = b"{\"error_severity\":\"ERROR\",\"message\":\"caf\xe9\"}";
        assert_eq!(parse(line).unwrap().message, "caf\u{fffd}");
    }
}
