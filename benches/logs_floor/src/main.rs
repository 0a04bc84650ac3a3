//! benches/logs_1g.sh's floor: the same work as the log source and the
//! shipped sanitize rules, by hand, on one thread: each line parsed with
//! serde_json; the lines a log source turns into records (errors and
//! warnings, plans, lock waits, temporary files, autovacuum runs,
//! checkpoints) become one record of their fields (plans obfuscated by the
//! stdlib), sanitized, and written as a JSON line.
//!
//!   logs-floor [--functions] FILE > out
//!
//! Sanitized by the shipped `pipelines/sanitize_pii.pipe` through
//! dbintel's transform (the same rules and engine dbintel runs), or with
//! `--functions` by the stdlib functions those rules call, called directly
//! on the same fields (no rule engine at all).

use std::borrow::Cow;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};

use dbintel_core::record::{LogRecord, Record, Resource};
use dbintel_dsl::plan::NodeKind;
use dbintel_operators::transform::Transform;
use dbintel_stdlib::sql::{normalize, scrub_error_message, Dialect};
use dbintel_stdlib::{Map, Value};
use serde::Deserialize;

#[derive(Deserialize)]
struct Line<'a> {
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
    context: Option<Cow<'a, str>>,
    #[serde(borrow)]
    statement: Option<Cow<'a, str>>,
    query_id: Option<i64>,
}

struct FsHost;

impl dbintel_dsl::Host for FsHost {
    fn read(&self, path: &Path) -> std::io::Result<Vec<u8>> {
        std::fs::read(path)
    }
    fn canonicalize(&self, path: &Path) -> PathBuf {
        std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf())
    }
    fn env_is_set(&self, _: &str) -> bool {
        true
    }
}

fn sanitizer() -> Transform {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../pipelines/sanitize_pii.pipe");
    let compilation = dbintel_dsl::compile(&[path], &FsHost, dbintel_dsl::EnvPolicy::Warn);
    let plan = compilation.plan.expect("the shipped sanitize rules compile");
    let Some(NodeKind::Transform(node)) = plan.node("sanitize_pii").map(|n| &n.kind) else { panic!("no sanitize_pii") };
    Transform::new("sanitize_pii", node).expect("the rules compile")
}

fn put(m: &mut Map, key: &str, v: Option<&str>) {
    if let Some(v) = v {
        m.insert(key, Value::Str(v.to_string()));
    }
}

fn sql(text: &str) -> String {
    let n = normalize(text, Dialect::Postgres).unwrap_or_else(|_| "?".into());
    dbintel_stdlib::pii::redact(&n).into_owned()
}

/// `--functions`: what the rules do to a log record's fields, by hand.
fn sanitize_by_hand(m: &mut Map) {
    for key in ["db.log.message", "db.log.detail", "db.log.context"] {
        if let Some(Value::Str(s)) = m.get_mut(key) {
            *s = scrub_error_message(s, Dialect::Postgres);
        }
    }
    if let Some(Value::Str(s)) = m.get_mut("db.query.text") {
        *s = sql(s);
    }
    for key in ["db.user", "db.query.plan", "postgresql.application_name"] {
        if let Some(Value::Str(s)) = m.get_mut(key) {
            *s = dbintel_stdlib::pii::redact(s).into_owned();
        }
    }
}

fn main() {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let by_hand = args.first().is_some_and(|a| a == "--functions");
    if by_hand {
        args.remove(0);
    }
    let path = args.first().expect("usage: logs-floor [--functions] FILE");
    let mut transform = sanitizer();
    let mut resource = Resource::default();
    resource.attributes.insert("db.system.name", Value::Str("postgresql".into()));
    let reader = BufReader::with_capacity(1 << 16, std::fs::File::open(path).expect("open"));
    let stdout = std::io::stdout();
    let mut w = BufWriter::with_capacity(1 << 16, stdout.lock());
    let (mut lines, mut kept) = (0u64, 0u64);
    for line in reader.split(b'\n') {
        let line = line.expect("read");
        lines += 1;
        let Ok(l) = serde_json::from_slice::<Line<'_>>(&line) else { continue };
        let severity = l.error_severity.as_deref().unwrap_or("");
        let message = l.message.as_deref().unwrap_or("");
        let mut a = Map::with_capacity(12);
        put(&mut a, "db.namespace", l.dbname.as_deref());
        put(&mut a, "db.user", l.user.as_deref());
        if let Some(pid) = l.pid {
            a.insert("db.session.id", Value::Int(pid));
        }
        if let Some(q) = l.query_id {
            a.insert("db.query.id", Value::Str(q.to_string()));
        }
        if matches!(severity, "WARNING" | "ERROR" | "FATAL" | "PANIC") {
            put(&mut a, "db.response.status_code", l.state_code.as_deref());
            put(&mut a, "db.log.message", Some(message));
            put(&mut a, "db.log.detail", l.detail.as_deref());
            put(&mut a, "db.log.context", l.context.as_deref());
            put(&mut a, "db.query.text", l.statement.as_deref());
        } else if let Some((_, plan)) = message.split_once(" ms  plan:") {
            let plan = plan.trim_start();
            let Some(obfuscated) = dbintel_stdlib::plan::obfuscate(plan, Dialect::Postgres) else { continue };
            for (k, v) in dbintel_stdlib::plan::attributes(&obfuscated).unwrap_or_default().iter() {
                a.insert(k, v.clone());
            }
            let text: serde_json::Value = serde_json::from_str(plan).unwrap_or_default();
            put(&mut a, "db.query.text", text.get("Query Text").and_then(|t| t.as_str()));
            a.insert("db.query.plan", Value::Str(obfuscated));
        } else if message.starts_with("process ") || message.starts_with("temporary file") {
            put(&mut a, "db.log.detail", l.detail.as_deref());
            put(&mut a, "db.query.text", l.statement.as_deref());
        } else if message.starts_with("automatic ") || message.starts_with("checkpoint ") {
            put(&mut a, "db.log.message", Some(message));
        } else {
            continue;
        }
        let mut record = Record::Log(LogRecord { attributes: a, ..LogRecord::default() });
        if by_hand {
            sanitize_by_hand(record.attributes_mut());
        } else {
            let _ = transform.apply(&mut resource, &mut record, &mut |_, _| {});
        }
        let json = dbintel_stdlib::functions::to_json(&Value::Map(std::mem::take(record.attributes_mut())));
        serde_json::to_writer(&mut w, &json).expect("write");
        w.write_all(b"\n").expect("write");
        kept += 1;
    }
    w.flush().expect("flush");
    eprintln!("{lines} lines, {kept} records");
}
