//! The PII corpus: over a thousand planted secrets, in every literal form
//! the SQL lexer knows, in comments and in JSON literals, through the
//! shipped `pipelines/sanitize_pii.pipe`. Not one may come out.

use dbintel_core::record::{LogRecord, Record, Resource};
use dbintel_dsl::plan::NodeKind;
use dbintel_dsl::{compile, EnvPolicy};
use dbintel_operators::transform::{RecordOutcome, Transform};
use dbintel_stdlib::Value;
use dbintel_tests::{workspace_root, GoldenHost, GOLDEN_ENV};

mod secrets;
use secrets::{secret, Rng};

/// Where the secret sits in the query: every literal form, comments, JSON.
fn planted(form: usize, s: &str) -> (String, &'static str) {
    let pg = "postgresql";
    let my = "mysql";
    let n = s.chars().filter(char::is_ascii_digit).collect::<String>();
    match form % 13 {
        0 => (format!("SELECT * FROM users WHERE email = '{s}'"), pg),
        1 => (format!("SELECT * FROM users WHERE note = E'x\\'{s}'"), pg),
        2 => (format!("SELECT $${s}$$"), pg),
        3 => (format!("SELECT $q${s}$q$ AS a"), pg),
        4 => (format!("UPDATE t SET v = 1 -- {s}\nWHERE id = 2"), pg),
        5 => (format!("SELECT /* by {s} /* nested */ */ 1"), pg),
        6 => (format!("INSERT INTO t VALUES ('{{\"secret\": \"{s}\"}}'::jsonb)"), pg),
        7 => (format!("SELECT * FROM t WHERE c IN ('a', '{s}', 'b')"), pg),
        8 => (format!("SELECT * FROM t WHERE c = '{s}"), pg), // cut off
        9 => (format!("SELECT * FROM t WHERE c = \"{s}\""), my),
        10 => (format!("SELECT 1 # {s}\n"), my),
        11 => (format!("SELECT * FROM t WHERE c = 'x\\'{s}'"), my),
        _ => (format!("SELECT * FROM t WHERE n = {}", if n.is_empty() { "1".to_string() } else { n }), pg),
    }
}

#[test]
fn no_planted_secret_leaves_sanitize_pii() {
    let host = GoldenHost { set: GOLDEN_ENV };
    let compilation = compile(&[workspace_root().join("pipelines/sanitize_pii.pipe")], &host, EnvPolicy::Warn);
    let plan = compilation.plan.expect("the shipped sanitize rules compile");
    let NodeKind::Transform(node) = &plan.node("sanitize_pii").expect("sanitize_pii exists").kind else { panic!("not a transform") };
    let mut transform = Transform::new("sanitize_pii", node).expect("compiles to executable form");

    let mut rng = Rng(0x5eed_1234_abcd_9876);
    let mut planted_count = 0;
    let mut leaks = Vec::new();
    for i in 0..1300 {
        let secret_text = secret(i, i, &mut rng);
        let (query, system) = planted(i / 9 + i, &secret_text);
        // numeric-only forms only make sense for digit secrets
        let numeric_form = (i / 9 + i) % 13 == 12;
        let must_not_appear: Vec<String> = if numeric_form {
            let digits: String = secret_text.chars().filter(char::is_ascii_digit).collect();
            if digits.len() < 4 {
                continue;
            }
            vec![digits]
        } else {
            vec![secret_text.clone()]
        };
        planted_count += 1;
        let mut resource = Resource::default();
        resource.attributes.insert("db.system.name", Value::Str(system.into()));
        let mut log = LogRecord::default();
        log.attributes.insert("db.query.text", Value::Str(query.clone()));
        log.attributes.insert("client_addr", Value::Str("10.9.8.7".into()));
        let mut record = Record::Log(log);
        let outcome = transform.apply(&mut resource, &mut record, &mut |_, _| {});
        assert!(matches!(outcome, RecordOutcome::Kept { errors: 0 }), "{query}: {outcome:?}");
        let out = format!("{:?}", record.attributes());
        for needle in must_not_appear {
            // any 6-character piece of the secret counts as a leak
            let chars: Vec<char> = needle.chars().collect();
            let piece_len = 6.min(chars.len());
            if let Some(piece) = chars.windows(piece_len).map(|w| w.iter().collect::<String>()).find(|p| out.contains(p.as_str())) {
                leaks.push(format!("{piece:?} of {needle:?}\n  in:  {query}\n  out: {out}"));
            }
        }
        assert!(!out.contains("10.9.8.7"), "client_addr survived: {out}");
    }
    assert!(planted_count >= 1000, "only {planted_count} secrets planted");
    assert!(leaks.is_empty(), "{} of {planted_count} secrets leaked:\n{}", leaks.len(), leaks.join("\n"));
}

/// A PostgreSQL entry as the server writes it, in one of its formats.
struct PgLine<'a> {
    severity: &'a str,
    state: &'a str,
    message: String,
    detail: Option<String>,
    context: Option<String>,
    statement: Option<String>,
}

impl PgLine<'_> {
    fn jsonlog(&self) -> String {
        let mut v = serde_json::json!({
            "timestamp": "2024-05-01 12:34:56.789 UTC", "user": "app", "dbname": "shop", "pid": 4242,
            "error_severity": self.severity, "state_code": self.state, "message": self.message,
            "application_name": "psql", "backend_type": "client backend", "query_id": 7,
        });
        for (k, f) in [("detail", &self.detail), ("context", &self.context), ("statement", &self.statement)] {
            if let Some(f) = f {
                v[k] = serde_json::Value::String(f.clone());
            }
        }
        format!("{v}\n")
    }

    fn csvlog(&self) -> String {
        let q = |s: &str| format!("\"{}\"", s.replace('"', "\"\""));
        let o = |s: &Option<String>| s.as_deref().map(q).unwrap_or_default();
        format!(
            "2024-05-01 12:34:56.789 UTC,\"app\",\"shop\",4242,\"127.0.0.1:5000\",s.1,1,\"SELECT\",2024-05-01 12:34:50 UTC,3/1,0,{},{},{},{},,,,{},{},,,\"psql\",\"client backend\",,7\n",
            self.severity,
            self.state,
            q(&self.message),
            o(&self.detail),
            o(&self.context),
            o(&self.statement)
        )
    }

    fn stderr(&self) -> String {
        let part = |word: &str, text: &str| {
            format!("2024-05-01 12:34:56.789 UTC [4242] app@shop {} {word}:  {}\n", self.state, text.replace('\n', "\n\t"))
        };
        let mut out = part(self.severity, &self.message);
        for (word, f) in [("DETAIL", &self.detail), ("CONTEXT", &self.context), ("STATEMENT", &self.statement)] {
            if let Some(f) = f {
                out.push_str(&part(word, f));
            }
        }
        out
    }
}

/// Where a secret sits in a real log line: PostgreSQL's unique-violation
/// DETAILs, type errors quoting input, bind parameters, deadlock reports,
/// failing rows, auto_explain plans (query text and filters), PL/pgSQL
/// contexts, refused logins, application RAISEs; MySQL's slow log and
/// error log.
fn log_form(form: usize, s: &str) -> (&'static str, String) {
    let pg = |l: PgLine<'_>, format: usize| match format % 3 {
        0 => ("jsonlog", l.jsonlog()),
        1 => ("csvlog", l.csvlog()),
        _ => ("stderr", l.stderr()),
    };
    let line = |severity, state, message: String| PgLine { severity, state, message, detail: None, context: None, statement: None };
    let f = form / 12;
    match form % 12 {
        0 => pg(
            PgLine {
                detail: Some(format!("Key (email)=({s}) already exists.")),
                statement: Some(format!("INSERT INTO users(email) VALUES ('{s}')")),
                ..line("ERROR", "23505", "duplicate key value violates unique constraint \"users_email_key\"".into())
            },
            f,
        ),
        1 => pg(PgLine { statement: Some(format!("SELECT '{s}'::integer")), ..line("ERROR", "22P02", format!("invalid input syntax for type integer: \"{s}\"")) }, f),
        2 => pg(
            PgLine {
                context: Some(format!("unnamed portal with parameters: $1 = '{s}', $2 = '42'")),
                statement: Some("SELECT * FROM users WHERE email = $1 AND id = $2".into()),
                ..line("ERROR", "57014", "canceling statement due to statement timeout".into())
            },
            f,
        ),
        3 => pg(
            PgLine {
                detail: Some(format!(
                    "Process 11 waits for ShareLock on transaction 5; blocked by process 12.\nProcess 12 waits for ShareLock on transaction 6; blocked by process 11.\nProcess 11: UPDATE accounts SET note = '{s}' WHERE id = 1\nProcess 12: UPDATE accounts\nSET note = '{s}' WHERE id = 2"
                )),
                statement: Some(format!("UPDATE accounts SET note = '{s}' WHERE id = 1")),
                ..line("ERROR", "40P01", "deadlock detected".into())
            },
            f,
        ),
        4 => pg(PgLine { detail: Some(format!("Failing row contains (null, {s}, Ann).")), ..line("ERROR", "23502", "null value in column \"id\" of relation \"users\" violates not-null constraint".into()) }, f),
        5 => {
            let plan = serde_json::json!({
                "Query Text": format!("SELECT * FROM users WHERE email = '{s}'"),
                "Plan": {"Node Type": "Seq Scan", "Relation Name": "users", "Alias": "users", "Filter": format!("((email)::text = '{s}'::text)"), "Output": [format!("'{s}'::text")], "Actual Rows": 1}
            });
            pg(line("LOG", "00000", format!("duration: 1.500 ms  plan:\n{}", serde_json::to_string_pretty(&plan).unwrap_or_default())), f)
        }
        6 => pg(
            PgLine {
                context: Some(format!("SQL statement \"INSERT INTO t VALUES ('{s}')\"\nPL/pgSQL function f() line 3 at SQL statement")),
                ..line("ERROR", "23514", "new row for relation \"t\" violates check constraint \"t_c_check\"".into())
            },
            f,
        ),
        7 => pg(
            PgLine {
                detail: Some(format!("Connection matched pg_hba.conf line 95: \"host all {s} 0.0.0.0/0 scram-sha-256\"")),
                ..line("FATAL", "28P01", format!("password authentication failed for user \"{s}\""))
            },
            f,
        ),
        8 => pg(line("ERROR", "P0001", format!("customer {s} not found")), f),
        9 => ("slow", format!("# Time: 240501 12:34:56\n# User@Host: app[app] @ localhost []\n# Thread_id: 31  Schema: shop  QC_hit: No\n# Query_time: 0.000321  Lock_time: 0.000045  Rows_sent: 1  Rows_examined: 12\nSET timestamp=1714566896;\nSELECT * FROM users WHERE email = '{s}' AND note = \"{s}\";\n")),
        10 => ("error", format!("2024-05-01 12:34:56 5 [Warning] Access denied for user '{s}'@'localhost' (using password: YES)\n")),
        _ => ("error", format!("2024-05-01T12:34:56.123456Z 12 [ERROR] [MY-010584] [Repl] Replica SQL for channel '': Error 'Duplicate entry '{s}' for key 'PRIMARY'' on query. Default database: 'shop'. Query: 'INSERT INTO t VALUES ('{s}')', Error_code: MY-001062\n")),
    }
}

#[test]
fn no_planted_secret_leaves_a_database_log_record() {
    use dbintel_logs::entry::Parsed;
    use dbintel_logs::format::{csvlog::CsvLog, jsonlog::JsonLog, mysql_error::MySqlError, mysql_slow::MySqlSlow, stderr::Stderr, Parser};
    use dbintel_logs::records::{Enabled, Mapper};

    let host = GoldenHost { set: GOLDEN_ENV };
    let compilation = compile(&[workspace_root().join("pipelines/sanitize_pii.pipe")], &host, EnvPolicy::Warn);
    let plan = compilation.plan.expect("the shipped sanitize rules compile");
    let NodeKind::Transform(node) = &plan.node("sanitize_pii").expect("sanitize_pii exists").kind else { panic!("not a transform") };
    let mut transform = Transform::new("sanitize_pii", node).expect("compiles to executable form");
    let enabled = Enabled {
        plans: true,
        errors: Some(0),
        locks: true,
        temp_files: true,
        autovacuum: true,
        checkpoints: true,
        connections: true,
        slow_queries: Some(200),
        my_errors: true,
    };

    let mut rng = Rng(0x10c5_5eed_0000_2424);
    let (mut planted, mut records_seen) = (0, 0);
    let mut leaks = Vec::new();
    for i in 0..1300 {
        let s = secret(i, i, &mut rng);
        let (format, text) = log_form(i / 9 + i, &s);
        let mut parser: Box<dyn Parser> = match format {
            "jsonlog" => Box::new(JsonLog),
            "csvlog" => Box::new(CsvLog::new(1 << 20)),
            "stderr" => Box::new(Stderr::new("%m [%p] %q%u@%d %e ", 1 << 20)),
            "slow" => Box::new(MySqlSlow::new(1 << 20)),
            _ => Box::new(MySqlError::new()),
        };
        let mut parsed = Parsed::default();
        let mut at = 0;
        for line in text.split_inclusive('\n') {
            parser.line(line.trim_end_matches('\n').as_bytes(), at, false, &mut parsed);
            at += line.len() as u64;
        }
        parser.finish(&mut parsed);
        assert!(parsed.problems.is_empty() && parsed.entries.len() == 1, "{format}: {text}\n{:?} {:?}", parsed.problems, parsed.entries);
        // a new mapper each time: slow-log samples are one per statement
        let mut mapper = Mapper::new(enabled.clone(), 0, std::time::Duration::from_secs(60));
        let mut out = Vec::new();
        mapper.map(parsed.entries.remove(0), "postgresql.log", 1, &mut out);
        assert!(!out.is_empty(), "{format} form {} made no record: {text}", (i / 9 + i) % 12);
        planted += 1;
        let system = if matches!(format, "slow" | "error") { "mysql" } else { "postgresql" };
        for (_, mut record) in out {
            records_seen += 1;
            let mut resource = Resource::default();
            resource.attributes.insert("db.system.name", Value::Str(system.into()));
            let outcome = transform.apply(&mut resource, &mut record, &mut |_, _| {});
            assert!(matches!(outcome, RecordOutcome::Kept { errors: 0 }), "{text}: {outcome:?}");
            let Record::Log(l) = &record else { continue };
            let shown = format!("{:?} {:?}", l.attributes, l.body);
            let chars: Vec<char> = s.chars().collect();
            let piece_len = 6.min(chars.len());
            if let Some(piece) = chars.windows(piece_len).map(|w| w.iter().collect::<String>()).find(|p| shown.contains(p.as_str())) {
                leaks.push(format!("{piece:?} of {s:?} ({format})\n  in:  {text}\n  out: {shown}"));
            }
        }
    }
    assert!(planted >= 1300 && records_seen >= planted, "only {planted} secrets planted in {records_seen} records");
    assert!(leaks.is_empty(), "{} of {planted} secrets leaked:\n{}", leaks.len(), leaks.join("\n"));
}

/// `db.query.text.normalized.hash` is New Relic's normalizer and MD5 over
/// the sanitized text: the same query with two different secrets of the
/// same kind, in every literal and comment form above, gives the same
/// hash, so the hash tells nothing of the secret (no dictionary can find
/// it), and the normalized text shows none of it.
#[test]
fn the_query_hash_carries_nothing_of_a_planted_secret() {
    use dbintel_stdlib::sql::apm_hash::normalize_and_hash;
    let host = GoldenHost { set: GOLDEN_ENV };
    let compilation = compile(&[workspace_root().join("pipelines/sanitize_pii.pipe")], &host, EnvPolicy::Warn);
    let plan = compilation.plan.expect("the shipped sanitize rules compile");
    let NodeKind::Transform(node) = &plan.node("sanitize_pii").expect("sanitize_pii exists").kind else { panic!("not a transform") };
    let mut transform = Transform::new("sanitize_pii", node).expect("compiles to executable form");
    let mut sanitized = |query: &str, system: &str| {
        let mut resource = Resource::default();
        resource.attributes.insert("db.system.name", Value::Str(system.into()));
        let mut log = LogRecord::default();
        log.attributes.insert("db.query.text", Value::Str(query.to_string()));
        let mut record = Record::Log(log);
        let outcome = transform.apply(&mut resource, &mut record, &mut |_, _| {});
        assert!(matches!(outcome, RecordOutcome::Kept { errors: 0 }), "{query}: {outcome:?}");
        match record.attributes().get("db.query.text") {
            Some(Value::Str(text)) => text.clone(),
            other => panic!("{query}: db.query.text is {other:?}"),
        }
    };

    let (mut rng, mut other_rng) = (Rng(0x4a5b_0c1d_2e3f_4051), Rng(0x9e37_79b9_7f4a_7c15));
    let mut differ = Vec::new();
    for i in 0..1300 {
        let (secret_text, other) = (secret(i, i, &mut rng), secret(i, i + 1, &mut other_rng));
        let form = i / 9 + i;
        if form % 13 == 12 && secret_text.chars().filter(char::is_ascii_digit).count() < 4 {
            continue; // the numeric form needs digits to plant
        }
        let (query, system) = planted(form, &secret_text);
        let (other_query, _) = planted(form, &other);
        let (normalized, hash) = normalize_and_hash(&sanitized(&query, system));
        let (_, other_hash) = normalize_and_hash(&sanitized(&other_query, system));
        assert_eq!(hash.len(), 32, "{query}: {normalized:?}");
        let chars: Vec<char> = secret_text.chars().collect();
        let piece = chars
            .windows(6.min(chars.len()))
            .map(|w| w.iter().collect::<String>().to_uppercase())
            .find(|p| normalized.contains(p.as_str()));
        if hash != other_hash || piece.is_some() {
            differ.push(format!("{query}\n  {other_query}\n  normalized {normalized:?}, hashes {hash} {other_hash}, piece {piece:?}"));
        }
    }
    assert!(differ.is_empty(), "{} queries:\n{}", differ.len(), differ.join("\n"));
}
