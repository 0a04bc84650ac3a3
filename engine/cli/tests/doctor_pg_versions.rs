//! `dbintel doctor` against private PostgreSQL 12 and 18 servers (the npm
//! binaries tests/pg-versions.sh installs): a fresh server fails, the SQL
//! doctor printed for that version makes it pass, and the EXPLAIN helper
//! it printed plans a statement with parameters by that version's path
//! (PREPARE and a forced generic plan on 12, EXPLAIN (GENERIC_PLAN) on 18)
//! without running it.

mod common;

use common::doctor::{self, apply_pg, assert_clean, problems, status_of};
use common::private_pg::PrivatePg;
use common::{scratch, text};

fn pipe(dir: &std::path::Path) -> std::path::PathBuf {
    let path = dir.join("p.pipe");
    std::fs::write(
        &path,
        "source pg = postgres {\n  dsn = env(\"DOCTOR_PG_DSN\")\n  collect statements\n  collect activity\n  collect instance\n  collect tables\n  collect plans\n}\nsink out = stdout {}\npipeline s = pg.statements -> out\npipeline a = pg.activity -> out\npipeline i = pg.instance -> out\npipeline t = pg.tables -> out\npipeline p = pg.plans -> out\n",
    )
    .unwrap();
    path
}

/// As `proofs_mon`: the helper's plan of `statement`, or psql's error.
fn explain(pg: &PrivatePg, statement: &str) -> Result<String, String> {
    let out = std::process::Command::new("psql")
        .args(["-X", "-At", "-h", "127.0.0.1", "-p", &pg.port.to_string(), "-U", "proofs_mon", "-d", "postgres", "-c"])
        .arg(format!("SELECT otel.explain_statement('{}')", statement.replace('\'', "''")))
        .output()
        .expect("psql");
    if out.status.success() {
        Ok(text(&out.stdout))
    } else {
        Err(text(&out.stderr))
    }
}

fn fresh_server_is_fixed_by_what_doctor_printed_for_its_version(major: u32) {
    let pg = PrivatePg::of_major(major, &format!("doctor-{major}"));
    let dir = scratch(&format!("doctor-{major}"));
    let pipe = pipe(&dir);
    let dsn = pg.dsn("proofs_mon");
    let env = [("DOCTOR_PG_DSN", dsn.as_str())];
    let (code, report) = doctor::json(&pipe, &[], &env);
    assert_eq!(code, 4, "{:#?}", problems(&report));
    let version = report["targets"][0]["flavour"].as_str().unwrap_or_default().to_string();
    assert!(version.starts_with(&format!("PostgreSQL {major}.")), "{version}");
    assert_eq!(status_of(&report, "server.version").as_deref(), Some("ok"));
    assert_eq!(status_of(&report, "pg_stat_statements.loaded").as_deref(), Some("fail"));
    assert_eq!(status_of(&report, "pg_stat_statements.created").as_deref(), Some("fail"));
    assert_eq!(status_of(&report, "plans.explain_helper").as_deref(), Some("warn"));
    // compute_query_id exists from 14 only
    assert_eq!(status_of(&report, "settings.compute_query_id").is_some(), major >= 14, "{:#?}", doctor::checks(&report));
    // the helper's owner reads the tables the way the version allows
    let helper =
        doctor::fixes(&report).into_iter().filter_map(|f| f["sql"].as_str().map(str::to_string)).find(|s| s.contains("explain_statement"));
    let helper = helper.expect("the helper's SQL");
    assert_eq!(helper.contains("GRANT pg_read_all_data"), major >= 14, "{helper}");
    apply_pg(&pg, &report);
    let (code, after) = doctor::json(&pipe, &[], &env);
    assert_clean(code, &after, &format!("the SQL doctor printed for PostgreSQL {major}"));

    if major >= 14 {
        pg.script("postgres", "ALTER SYSTEM SET compute_query_id = off;\nSELECT pg_reload_conf();");
        let (code, report) = doctor::json(&pipe, &[], &env);
        assert_eq!((code, status_of(&report, "settings.compute_query_id").as_deref()), (4, Some("fail")));
        apply_pg(&pg, &report);
        let (code, after) = doctor::json(&pipe, &[], &env);
        assert_clean(code, &after, "compute_query_id as doctor printed it");
    }

    // PostgreSQL 12/13: the owner reads what it is granted in public
    pg.sql("CREATE TABLE doctor_probe (id int, v text); INSERT INTO doctor_probe VALUES (1, 'x')");
    if major < 14 {
        pg.sql("GRANT SELECT ON doctor_probe TO dbintel_explain");
    }
    let plan = explain(&pg, "SELECT v FROM doctor_probe WHERE id = $1").unwrap_or_else(|e| panic!("PostgreSQL {major}: {e}"));
    assert!(plan.contains("\"Relation Name\": \"doctor_probe\""), "{plan}");
    assert_eq!(pg.sql("SELECT count(*) FROM pg_prepared_statements"), "0", "deallocated");
    let refused = explain(&pg, "SELECT 1; DELETE FROM doctor_probe").expect_err("two statements");
    assert!(refused.contains("one statement only"), "{refused}");
    let refused = explain(&pg, "/* hi */ TRUNCATE doctor_probe").expect_err("not a plannable statement");
    assert!(refused.contains("only SELECT"), "{refused}");
    assert_eq!(pg.sql("SELECT count(*) FROM doctor_probe"), "1");
}

#[test]
fn postgres_12_fresh_server_is_fixed_by_what_doctor_printed() {
    fresh_server_is_fixed_by_what_doctor_printed_for_its_version(12);
}

#[test]
fn postgres_18_fresh_server_is_fixed_by_what_doctor_printed() {
    fresh_server_is_fixed_by_what_doctor_printed_for_its_version(18);
}
