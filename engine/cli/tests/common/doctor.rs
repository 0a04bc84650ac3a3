//! Running `dbintel doctor` from tests, and applying what it printed the
//! way a DBA would: its SQL as the administrator (in the database it
//! names), its config lines into the server's file, a restart when it
//! says so.
#![allow(dead_code)]

use std::path::Path;

use serde_json::Value;

use super::private_mariadb::PrivateMariaDb;
use super::private_pg::PrivatePg;

/// `dbintel doctor --format json` on `pipe`: (exit status, report).
pub fn json(pipe: &Path, extra: &[&str], env: &[(&str, &str)]) -> (i32, Value) {
    let mut args = vec!["doctor", "--format", "json"];
    args.extend_from_slice(extra);
    args.push(pipe.to_str().expect("a UTF-8 path"));
    let out = super::dbintel(&args, env);
    let code = super::code(&out);
    let report = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("doctor's JSON ({e}): {}", super::seen(&out)));
    (code, report)
}

/// Every check of every target: (target, id, status, observed).
pub fn checks(report: &Value) -> Vec<(String, String, String, String)> {
    let mut out = Vec::new();
    for t in report["targets"].as_array().into_iter().flatten() {
        for c in t["checks"].as_array().into_iter().flatten() {
            let s = |k: &str| c[k].as_str().unwrap_or_default().to_string();
            out.push((t["target"].as_str().unwrap_or_default().to_string(), s("id"), s("status"), s("observed")));
        }
    }
    out
}

/// The warn and fail checks, one line each, for messages.
pub fn problems(report: &Value) -> Vec<String> {
    checks(report)
        .into_iter()
        .filter(|(_, _, s, _)| s == "warn" || s == "fail")
        .map(|(t, id, s, o)| format!("{t}: {s} {id}: {o}"))
        .collect()
}

/// The status of check `id` (the worst, when it reports several times).
pub fn status_of(report: &Value, id: &str) -> Option<String> {
    let rank = |s: &str| ["ok", "skip", "warn", "fail"].iter().position(|x| *x == s).unwrap_or(0);
    checks(report).into_iter().filter(|(_, i, _, _)| i == id).map(|(_, _, s, _)| s).max_by_key(|s| rank(s))
}

/// The fixes of the warn and fail checks, in report order.
pub fn fixes(report: &Value) -> Vec<Value> {
    let mut out = Vec::new();
    for t in report["targets"].as_array().into_iter().flatten() {
        for c in t["checks"].as_array().into_iter().flatten() {
            if matches!(c["status"].as_str(), Some("warn" | "fail")) && !c["fix"].is_null() {
                out.push(c["fix"].clone());
            }
        }
    }
    out
}

/// Applies every fix the report printed to a private PostgreSQL: the SQL
/// as the superuser in the database it names, then one restart if any fix
/// asks for it. Returns how many fixes carried SQL.
pub fn apply_pg(pg: &PrivatePg, report: &Value) -> usize {
    let mut applied = 0;
    let mut restart = false;
    for fix in fixes(report) {
        if let Some(sql) = fix["sql"].as_str() {
            pg.script(fix["database"].as_str().unwrap_or("postgres"), sql);
            applied += 1;
        }
        restart |= fix["restart"].as_bool().unwrap_or(false);
    }
    if restart {
        pg.restart();
    }
    applied
}

/// Applies every fix to a private MariaDB: the SQL as root (`<a
/// password>` and `<the password in the DSN>` filled in with
/// `password`), the config lines into its my.cnf, then one restart if a
/// fix asks for it. Returns how many fixes it applied.
pub fn apply_mariadb(db: &mut PrivateMariaDb, report: &Value, password: &str) -> usize {
    let mut applied = 0;
    let mut restart = false;
    for fix in fixes(report) {
        let mut did = false;
        if let Some(sql) = fix["sql"].as_str() {
            db.sql(&sql.replace("<a password>", password).replace("<the password in the DSN>", password));
            did = true;
        }
        if let Some(lines) = fix["config"]["lines"].as_str() {
            db.configure(lines);
            did = true;
        }
        restart |= fix["restart"].as_bool().unwrap_or(false);
        applied += usize::from(did);
    }
    if restart {
        db.restart();
    }
    applied
}

/// Asserts the report holds no warning and no failure.
pub fn assert_clean(code: i32, report: &Value, after: &str) {
    let problems = problems(report);
    assert!(problems.is_empty() && code == 0, "after {after}: exit {code}, still: {problems:#?}");
}
