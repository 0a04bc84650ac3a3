//! `dbintel doctor` against private PostgreSQL 15 servers, each
//! misconfiguration made for real: doctor finds it, the SQL it printed is
//! run by the test as the superuser (restarting when doctor says so), and
//! doctor then finds nothing. Also: the golden human and JSON output of a
//! fresh server next to an unreachable one, that doctor sends no write,
//! the log settings family, and the same checks in `run`'s `/status`.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::doctor::{self, apply_pg, assert_clean, problems, status_of};
use common::private_pg::PrivatePg;
use common::{code, dbintel, scratch, seen, text};

/// Every PostgreSQL collector, on `pg`; `extra` adds sources.
fn pipe(dir: &Path, collectors: &[&str], extra: &str) -> PathBuf {
    let mut text = String::from("source pg = postgres {\n  dsn = env(\"DOCTOR_PG_DSN\")\n");
    for c in collectors {
        text.push_str(&format!("  collect {c}\n"));
    }
    text.push_str("}\n");
    text.push_str(extra);
    text.push_str("sink out = stdout {}\n");
    for c in collectors {
        text.push_str(&format!("pipeline p_{c} = pg.{c} -> out\n"));
    }
    let path = dir.join("p.pipe");
    std::fs::write(&path, text).expect("write the pipe");
    path
}

const ALL: &[&str] = &["statements", "activity", "instance", "tables", "plans"];

/// Compares `actual` with a golden file under tests/golden/doctor;
/// `DBINTEL_BLESS=1` writes it.
fn golden(name: &str, actual: &str) {
    let path = common::root().join("engine/cli/tests/golden/doctor").join(name);
    if std::env::var_os("DBINTEL_BLESS").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e} (DBINTEL_BLESS=1 writes it)", path.display()));
    if expected != actual {
        let diff: Vec<String> = expected
            .lines()
            .zip(actual.lines())
            .enumerate()
            .filter(|(_, (a, b))| a != b)
            .take(8)
            .map(|(i, (a, b))| format!("line {}:\n  - {a}\n  + {b}", i + 1))
            .collect();
        panic!(
            "{} differs from what doctor printed ({} vs {} lines; DBINTEL_BLESS=1 rewrites it):\n{}\n--- actual ---\n{actual}",
            path.display(),
            expected.lines().count(),
            actual.lines().count(),
            diff.join("\n")
        );
    }
}

#[test]
fn a_fresh_server_fails_as_the_golden_files_say_and_the_sql_doctor_printed_makes_it_pass() {
    let pg = PrivatePg::primary("doctor-fresh");
    let dir = scratch("doctor-fresh");
    let closed = common::otlp::free_port();
    let down =
        "source down = postgres {\n  dsn = env(\"DOCTOR_DOWN_DSN\")\n  collect instance\n}\npipeline p_down = down.instance -> out\n";
    let pipe = pipe(&dir, ALL, down);
    let (pg_dsn, down_dsn) = (pg.dsn("proofs_mon"), format!("postgres://proofs_mon:hunter2-down-pw@127.0.0.1:{closed}/postgres"));
    let env = [("DOCTOR_PG_DSN", pg_dsn.as_str()), ("DOCTOR_DOWN_DSN", down_dsn.as_str())];
    let version = pg.sql("SHOW server_version");
    let short = version.split_whitespace().next().unwrap_or_default().to_string();
    let normalize = |s: &str| {
        s.replace(&version, "{version}")
            .replace(&short, "{version}")
            .replace(&format!(":{}", pg.port), ":{pg_port}")
            .replace(&format!(":{closed}"), ":{closed_port}")
    };

    let out = dbintel(&["doctor", pipe.to_str().unwrap()], &env);
    assert_eq!(code(&out), 4, "a failure exits 4: {}", seen(&out));
    golden("fresh_pg15.txt", &normalize(&text(&out.stdout)));
    let (status, report) = doctor::json(&pipe, &[], &env);
    assert_eq!(status, 4);
    golden("fresh_pg15.json", &normalize(&format!("{report:#}\n")));
    for secret in ["hunter2-down-pw", "unused-pw"] {
        assert!(!text(&out.stdout).contains(secret) && !report.to_string().contains(secret), "{secret} shown");
    }
    // what the golden files hold, said plainly
    assert_eq!(status_of(&report, "pg_stat_statements.loaded").as_deref(), Some("fail"));
    assert_eq!(status_of(&report, "pg_stat_statements.created").as_deref(), Some("fail"));
    assert_eq!(status_of(&report, "settings.track_io_timing").as_deref(), Some("warn"));
    assert_eq!(status_of(&report, "settings.track_functions").as_deref(), Some("warn"));
    assert_eq!(status_of(&report, "plans.explain_helper").as_deref(), Some("warn"));
    let down_target = &report["targets"][1];
    assert_eq!((down_target["target"].as_str(), down_target["reached"].as_bool()), (Some("down"), Some(false)));
    assert_eq!(down_target["checks"].as_array().map(Vec::len), Some(1), "one precise failure: {down_target:#}");
    assert!(down_target["checks"][0]["observed"].as_str().unwrap_or_default().contains("connection refused"), "{down_target:#}");

    let pg_only = serde_json::json!({ "targets": [report["targets"][0].clone()] });
    assert!(apply_pg(&pg, &pg_only) >= 5, "the extension, its preload, two settings and the helper");
    let (status, after) = doctor::json(&pipe, &["--target", "pg"], &env);
    assert_clean(status, &after, "running the SQL doctor printed");
    assert_eq!(after["targets"].as_array().map(Vec::len), Some(1), "--target picks one");

    // the helper it printed plans what the role itself may not read, and
    // a statement with parameters, never running it
    pg.sql("CREATE TABLE doctor_secret (id int, v text); INSERT INTO doctor_secret VALUES (1, 'x')");
    let plan = std::process::Command::new("psql")
        .args(["-X", "-At", "-h", "127.0.0.1", "-p", &pg.port.to_string(), "-U", "proofs_mon", "-d", "postgres", "-c"])
        .arg("SELECT otel.explain_statement('SELECT v FROM doctor_secret WHERE id = $1')")
        .output()
        .expect("psql");
    let plan = text(&plan.stdout);
    assert!(plan.contains("\"Relation Name\": \"doctor_secret\""), "{plan}");
    assert_eq!(pg.sql("SELECT count(*) FROM pg_prepared_statements"), "0");
    let refused = std::process::Command::new("psql")
        .args(["-X", "-At", "-h", "127.0.0.1", "-p", &pg.port.to_string(), "-U", "proofs_mon", "-d", "postgres", "-c"])
        .arg("SELECT otel.explain_statement('SELECT 1; DROP TABLE doctor_secret')")
        .output()
        .expect("psql");
    assert!(!refused.status.success() && text(&refused.stderr).contains("one statement only"), "{}", text(&refused.stderr));
    assert_eq!(pg.sql("SELECT count(*) FROM doctor_secret"), "1");

    // discover = databases: the plans collector reads every database, and
    // doctor looks into each
    pg.sql("CREATE DATABASE doctor_app2");
    let discovering = dir.join("d.pipe");
    std::fs::write(
        &discovering,
        "source pg = postgres {\n  dsn = env(\"DOCTOR_PG_DSN\")\n  discover = databases\n  collect statements\n  collect plans\n}\nsink out = stdout {}\npipeline s = pg.statements -> out\npipeline p = pg.plans -> out\n",
    )
    .unwrap();
    let (status, report) = doctor::json(&discovering, &[], &env[..1]);
    assert_eq!(status, 4, "{:#?}", problems(&report));
    let seen: Vec<String> = doctor::checks(&report).into_iter().filter(|c| c.2 != "ok").map(|c| format!("{} {}", c.1, c.3)).collect();
    assert!(seen.contains(&"pg_stat_statements.created not created in database `doctor_app2`".to_string()), "{seen:#?}");
    assert!(
        seen.contains(&"plans.explain_helper otel.explain_statement does not exist in database `doctor_app2`".to_string()),
        "{seen:#?}"
    );
    apply_pg(&pg, &report);
    let (status, after) = doctor::json(&discovering, &[], &env[..1]);
    assert_clean(status, &after, "the SQL doctor printed for the discovered database");
}

/// Runs doctor; asserts check `id` came out `status`; applies every fix
/// it printed; asserts doctor then finds nothing.
fn found_then_fixed(pg: &PrivatePg, pipe: &Path, env: &[(&str, &str)], what: &str, id: &str, status: &str) -> serde_json::Value {
    let (code, report) = doctor::json(pipe, &[], env);
    assert_eq!(status_of(&report, id).as_deref(), Some(status), "{what}: {:#?}", problems(&report));
    assert_eq!(code, if status == "fail" { 4 } else { 3 }, "{what}: {:#?}", problems(&report));
    assert!(apply_pg(pg, &report) > 0, "{what}: doctor printed SQL");
    let (code, after) = doctor::json(pipe, &[], env);
    assert_clean(code, &after, what);
    report
}

#[test]
fn each_misconfiguration_is_found_and_the_sql_doctor_printed_fixes_it() {
    let pg = PrivatePg::primary("doctor-each");
    pg.script("postgres", "ALTER SYSTEM SET shared_preload_libraries = 'pg_stat_statements';\nALTER SYSTEM SET track_io_timing = on;");
    pg.restart();
    pg.sql("CREATE EXTENSION pg_stat_statements");
    let dir = scratch("doctor-each");
    let pipe = pipe(&dir, &["statements", "activity", "instance"], "");
    let dsn = pg.dsn("proofs_mon");
    let env = [("DOCTOR_PG_DSN", dsn.as_str())];
    let (code, report) = doctor::json(&pipe, &[], &env);
    assert_clean(code, &report, "setting the server up as the README says");

    // a role without pg_monitor: other roles' statements lose their ids
    pg.sql("REVOKE pg_monitor FROM proofs_mon");
    pg.sql("SELECT count(*) FROM pg_class");
    found_then_fixed(&pg, &pipe, &env, "revoking pg_monitor", "privileges.statistics", "fail");

    // compute_query_id off: pg_stat_statements records nothing
    pg.sql("ALTER SYSTEM SET compute_query_id = off");
    pg.sql("SELECT pg_reload_conf()");
    found_then_fixed(&pg, &pipe, &env, "compute_query_id = off", "settings.compute_query_id", "fail");

    // a tiny pg_stat_statements.max under churn: statements evicted
    pg.sql("ALTER SYSTEM SET pg_stat_statements.max = 100");
    pg.restart();
    let churn: String = (1..=300).map(|n| format!("SELECT {};\n", vec!["1"; n].join(", "))).collect();
    pg.script("postgres", &churn);
    let report = found_then_fixed(&pg, &pipe, &env, "pg_stat_statements.max = 100 under churn", "pg_stat_statements.fill", "warn");
    let fill = doctor::checks(&report).into_iter().find(|c| c.1 == "pg_stat_statements.fill").map(|c| c.3).unwrap_or_default();
    assert!(fill.contains("of 100 entries") && !fill.contains(" 0 deallocations"), "evictions counted: {fill}");
    assert_eq!(pg.sql("SHOW pg_stat_statements.max"), "5000");

    // a superuser DSN: refused by run, so a failure with the role to use
    // instead; everything else is still checked
    let superuser = pg.dsn("postgres");
    let as_superuser = [("DOCTOR_PG_DSN", superuser.as_str())];
    let (code, report) = doctor::json(&pipe, &[], &as_superuser);
    assert_eq!((code, status_of(&report, "role.privileged").as_deref()), (4, Some("fail")), "{:#?}", problems(&report));
    assert_eq!(status_of(&report, "server.version").as_deref(), Some("ok"), "still checked");
    assert_eq!(status_of(&report, "privileges.statistics").as_deref(), Some("ok"), "still checked");
    apply_pg(&pg, &report);
    let dsn = pg.dsn("dbintel");
    let (code, after) = doctor::json(&pipe, &[], &[("DOCTOR_PG_DSN", dsn.as_str())]);
    assert_clean(code, &after, "creating the role doctor printed and pointing the DSN at it");
}

#[test]
fn doctor_sends_no_write_and_the_log_settings_family_fixes_a_server_for_a_log_source() {
    let pg = PrivatePg::primary("doctor-logs");
    pg.sql("ALTER SYSTEM SET shared_preload_libraries = 'pg_stat_statements'");
    pg.restart();
    pg.sql("CREATE EXTENSION pg_stat_statements");
    let dir = scratch("doctor-logs");
    let pipe = pipe(&dir, ALL, "");
    let dsn = pg.dsn("proofs_mon");
    let env = [("DOCTOR_PG_DSN", dsn.as_str())];

    // every statement of doctor's sessions, as the server logged it
    pg.sql("ALTER SYSTEM SET log_statement = 'all'");
    pg.sql("ALTER SYSTEM SET log_line_prefix = '%a|'");
    pg.sql("SELECT pg_reload_conf()");
    let (_, report) = doctor::json(&pipe, &[], &env);
    assert!(!report["targets"][0]["checks"].as_array().unwrap().is_empty());
    std::thread::sleep(Duration::from_millis(300));
    let log = pg.log();
    // `statement: …` (simple protocol) or `execute <name>: …` (extended)
    let ours: Vec<(&str, String)> = log
        .lines()
        .filter_map(|l| l.strip_prefix("dbintel|LOG:  ").map(|m| (l, m)))
        .filter_map(|(l, m)| {
            let text =
                m.strip_prefix("statement: ").or_else(|| m.strip_prefix("execute ").and_then(|r| r.split_once(": ").map(|(_, t)| t)))?;
            Some((l, text.trim_start().to_ascii_uppercase()))
        })
        .collect();
    assert!(ours.len() >= 10, "doctor's statements are in the log: {}\n{log}", ours.len());
    for (line, statement) in &ours {
        assert!(
            ["SELECT", "SHOW", "WITH", "SET ", "RESET", "DEALLOCATE"].iter().any(|k| statement.starts_with(k)),
            "doctor sent something that is not a read: {line}"
        );
    }
    pg.sql("ALTER SYSTEM RESET log_statement");
    pg.sql("ALTER SYSTEM RESET log_line_prefix");
    pg.sql("SELECT pg_reload_conf()");

    // the log settings a log source needs, through the library (the log
    // source kind names its database source)
    std::env::set_var("DOCTOR_LOGS_PG_DSN", &dsn);
    let text = std::fs::read_to_string(&pipe).unwrap().replace("DOCTOR_PG_DSN", "DOCTOR_LOGS_PG_DSN");
    std::fs::write(&pipe, text).unwrap();
    let compiled = dbintel_dsl::compile(std::slice::from_ref(&pipe), &dbintel::fs_host::FsHost, dbintel_dsl::EnvPolicy::Require);
    let plan = compiled.plan.expect("the pipe compiles");
    let targets = dbintel_doctor::target_plans(&plan);
    let options = dbintel_doctor::Options { logged_sources: ["pg".to_string()].into(), ..Default::default() };
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let logs = |report: &dbintel_doctor::Report| -> Vec<(String, String)> {
        report.targets[0]
            .findings
            .iter()
            .filter(|f| f.check.id.starts_with("logs."))
            .map(|f| (f.check.id.to_string(), f.status.as_str().to_string()))
            .collect()
    };
    let first = runtime.block_on(dbintel_doctor::check_all(&targets, &options));
    let seen = logs(&first);
    for (id, status) in [
        ("logs.logging_collector", "fail"),
        ("logs.log_destination", "warn"),
        ("logs.auto_explain", "warn"),
        ("logs.auto_explain.log_format", "skip"),
        ("logs.log_lock_waits", "warn"),
        ("logs.log_temp_files", "warn"),
        ("logs.log_checkpoints", "ok"),
        ("logs.compute_query_id", "ok"),
    ] {
        assert!(seen.contains(&(id.to_string(), status.to_string())), "{id} {status} in {seen:?}");
    }
    // what doctor prints, applied; auto_explain's own settings show (and
    // are checked) once it is loaded: a second round
    let mut report = first;
    for round in 1..=3 {
        let json = report.json();
        if doctor::fixes(&json).is_empty() {
            break;
        }
        assert!(round < 3, "still not clean after two rounds: {:?}", logs(&report));
        apply_pg(&pg, &json);
        report = runtime.block_on(dbintel_doctor::check_all(&targets, &options));
    }
    assert_eq!(report.exit_code(), 0, "{:#?}", problems(&report.json()));
    assert!(logs(&report).iter().any(|(id, s)| id == "logs.auto_explain.log_format" && s == "ok"), "{:?}", logs(&report));
    assert_eq!(pg.sql("SHOW logging_collector"), "on");
}

#[test]
fn run_checks_each_target_on_its_own_session_and_status_follows_a_change() {
    let pg = PrivatePg::primary("doctor-run");
    pg.script("postgres", "ALTER SYSTEM SET shared_preload_libraries = 'pg_stat_statements';\nALTER SYSTEM SET track_io_timing = on;");
    pg.restart();
    pg.sql("CREATE EXTENSION pg_stat_statements");
    let dir = scratch("doctor-run");
    let path = dir.join("p.pipe");
    std::fs::write(
        &path,
        "source pg = postgres {\n  dsn = env(\"DOCTOR_PG_DSN\")\n  checks_every = 1s\n  collect statements\n  collect activity\n}\nsink out = file { path = \"/dev/null\" }\npipeline s = pg.statements -> out\npipeline a = pg.activity -> out\n",
    )
    .unwrap();
    let dsn = pg.dsn("proofs_mon");
    let run = common::otlp::Run::start(&[path.to_str().unwrap(), "--no-watch"], &[("DOCTOR_PG_DSN", dsn.as_str())]);
    let checks = |want: &str| {
        run.wait_for(&format!("/status checks: {want}"), Duration::from_secs(20), || {
            let status = run.status();
            let target = status["checks"].as_array()?.iter().find(|t| t["source"] == "pg")?.clone();
            (target["status"] == want).then_some(target)
        })
    };
    let ok = checks("ok");
    assert!(ok["seconds_ago"].as_f64().is_some() && ok["at"].is_string(), "{ok:#}");
    assert!(ok["checks"].as_array().is_some_and(|c| c.iter().any(|c| c["id"] == "pg_stat_statements.loaded")), "{ok:#}");
    // only run's own sessions: none opened for the checks
    let sessions = pg.sql("SELECT count(*) FROM pg_stat_activity WHERE application_name = 'dbintel'");
    assert!(sessions.parse::<i64>().unwrap_or(99) <= 2, "the pool's two at most: {sessions}");

    pg.sql("REVOKE pg_monitor FROM proofs_mon");
    let failing = checks("fail");
    let statistics = failing["checks"].as_array().unwrap().iter().find(|c| c["id"] == "privileges.statistics").cloned().unwrap_or_default();
    assert_eq!(statistics["fix"]["sql"], "GRANT pg_monitor TO proofs_mon;", "{failing:#}");
    let failing = run.metric(r#"dbintel_target_setup_checks{node="pg",target="pg",status="fail"}"#);
    assert!(failing >= 1.0, "/metrics counts the failing checks: {failing}");
    let table = dbintel(&["status", "--listen", &format!("127.0.0.1:{}", run.port)], &[]);
    assert!(text(&table.stdout).contains("privileges.statistics"), "dbintel status lists it: {}", text(&table.stdout));
    pg.sql("GRANT pg_monitor TO proofs_mon");
    checks("ok");
    let log = run.stderr();
    assert!(log.contains("setup check") && log.contains("privileges.statistics"), "logged when it appeared: {log}");
    assert!(log.contains("setup check passes again"), "and when it was gone: {log}");
}

#[test]
fn the_setup_script_doctor_printed_sets_a_fresh_server_up_and_running_it_twice_changes_nothing() {
    let pg = PrivatePg::primary("doctor-setup");
    let dir = scratch("doctor-setup");
    let pipe = pipe(&dir, ALL, "");
    let dsn = pg.dsn("proofs_mon");
    let env = [("DOCTOR_PG_DSN", dsn.as_str())];
    let out = dbintel(&["doctor", "--print-setup-sql", pipe.to_str().unwrap()], &env);
    assert_eq!(code(&out), 0, "{}", seen(&out));
    let script = text(&out.stdout);
    // tailored: what this server lacks, for its version, with its role
    assert!(script.contains("ALTER SYSTEM SET shared_preload_libraries = 'pg_stat_statements';"), "{script}");
    assert!(script.contains("ALTER SYSTEM SET track_io_timing = on;"), "{script}");
    assert!(script.contains("GRANT pg_read_all_data TO dbintel_explain;"), "PostgreSQL 15: {script}");
    assert!(script.contains("GRANT EXECUTE ON FUNCTION otel.explain_statement(text) TO proofs_mon;"), "{script}");
    assert!(!script.contains("-- before 14"), "the version is known: {script}");
    pg.script("postgres", &script);
    pg.restart();
    let (code, report) = doctor::json(&pipe, &[], &env);
    assert_clean(code, &report, "running the setup script doctor printed");
    pg.script("postgres", &script);
    let (code, report) = doctor::json(&pipe, &[], &env);
    assert_clean(code, &report, "running the same script a second time");
}
