//! `dbintel doctor` against private MariaDB servers, each
//! misconfiguration made for real: performance_schema off (a server
//! started without it), its consumers off, a user without PROCESS or
//! SLAVE MONITOR, the root account as the DSN, and the slow log a log
//! source needs. Doctor finds each; the test applies what it printed as
//! a DBA would (the SQL as root, the my.cnf lines into the server's file,
//! a restart when it says so); doctor then finds nothing, and still
//! nothing after another restart.

mod common;

use common::doctor::{self, apply_mariadb, assert_clean, problems, status_of};
use common::private_mariadb::PrivateMariaDb;
use common::scratch;

const PASSWORD: &str = "doctor-mon-pw";

fn pipe(dir: &std::path::Path) -> std::path::PathBuf {
    let path = dir.join("m.pipe");
    std::fs::write(
        &path,
        "source my = mysql {\n  dsn = env(\"DOCTOR_MY_DSN\")\n  collect statements\n  collect activity\n  collect instance\n  collect tables\n  collect plans\n}\nsink out = stdout {}\npipeline s = my.statements -> out\npipeline a = my.activity -> out\npipeline i = my.instance -> out\npipeline t = my.tables -> out\npipeline p = my.plans -> out\n",
    )
    .unwrap();
    path
}

#[test]
fn performance_schema_off_then_its_consumers_then_privileges_are_each_fixed_by_what_doctor_printed() {
    let mut db = PrivateMariaDb::start("doctor", &["performance_schema = OFF"]);
    db.sql(&format!("ALTER USER 'proofs_mon'@'%' IDENTIFIED BY '{PASSWORD}'; GRANT SELECT ON performance_schema.* TO 'proofs_mon'@'%'"));
    let dir = scratch("doctor-mariadb");
    let pipe = pipe(&dir);
    let dsn = db.dsn("proofs_mon", PASSWORD);
    let env = [("DOCTOR_MY_DSN", dsn.as_str())];

    let (code, report) = doctor::json(&pipe, &[], &env);
    assert_eq!(code, 4, "{:#?}", problems(&report));
    assert!(report["targets"][0]["flavour"].as_str().unwrap_or_default().starts_with("MariaDB "), "{report:#}");
    assert_eq!(status_of(&report, "performance_schema.enabled").as_deref(), Some("fail"));
    assert_eq!(status_of(&report, "performance_schema.consumers").as_deref(), Some("skip"), "meaningless while it is off");
    assert_eq!(status_of(&report, "privileges.process").as_deref(), Some("fail"), "activity needs it");
    assert_eq!(status_of(&report, "privileges.replication").as_deref(), Some("warn"));
    let replica = doctor::fixes(&report).into_iter().filter_map(|f| f["sql"].as_str().map(str::to_string)).find(|s| s.contains("MONITOR"));
    assert_eq!(replica.as_deref(), Some("GRANT SLAVE MONITOR ON *.* TO 'proofs_mon'@'%';"), "MariaDB 10.5.9+'s privilege");
    assert!(!report.to_string().contains(PASSWORD));
    apply_mariadb(&mut db, &report, PASSWORD);
    assert_eq!(db.sql("SELECT @@performance_schema"), "1", "the my.cnf line doctor printed, after the restart it asked for");

    // on now, with MariaDB's default consumers: most of them off
    let (code, report) = doctor::json(&pipe, &[], &env);
    assert_eq!(code, 4, "{:#?}", problems(&report));
    assert_eq!(status_of(&report, "performance_schema.consumers").as_deref(), Some("fail"));
    let consumers = doctor::checks(&report).into_iter().find(|c| c.1 == "performance_schema.consumers").map(|c| c.3).unwrap_or_default();
    assert!(
        consumers.contains("events_statements_history (for plans)") && consumers.contains("events_waits_current (for activity)"),
        "{consumers}"
    );
    assert_eq!(status_of(&report, "performance_schema.instruments").as_deref(), Some("warn"));
    apply_mariadb(&mut db, &report, PASSWORD);
    let (code, after) = doctor::json(&pipe, &[], &env);
    assert_clean(code, &after, "the UPDATEs doctor printed");
    db.restart();
    let (code, after) = doctor::json(&pipe, &[], &env);
    assert_clean(code, &after, "a restart (the my.cnf lines doctor printed keep the consumers on)");

    // one consumer turned off again
    db.sql("UPDATE performance_schema.setup_consumers SET ENABLED = 'NO' WHERE NAME = 'events_statements_history'");
    let (code, report) = doctor::json(&pipe, &[], &env);
    assert_eq!((code, status_of(&report, "performance_schema.consumers").as_deref()), (4, Some("fail")));
    apply_mariadb(&mut db, &report, PASSWORD);
    let (code, after) = doctor::json(&pipe, &[], &env);
    assert_clean(code, &after, "re-enabling the consumer as doctor printed it");

    // root as the DSN: refused by run; the user to create instead
    let root = format!("mysql://root@127.0.0.1:{}/performance_schema", db.port);
    let (code, report) = doctor::json(&pipe, &[], &[("DOCTOR_MY_DSN", root.as_str())]);
    assert_eq!((code, status_of(&report, "role.privileged").as_deref()), (4, Some("fail")), "{:#?}", problems(&report));
    assert_eq!(status_of(&report, "performance_schema.consumers").as_deref(), Some("ok"), "still checked");
    apply_mariadb(&mut db, &report, PASSWORD);
    let dsn = db.dsn("dbintel", PASSWORD);
    let (code, after) = doctor::json(&pipe, &[], &[("DOCTOR_MY_DSN", dsn.as_str())]);
    assert_clean(code, &after, "creating the user doctor printed and pointing the DSN at it");
}

#[test]
fn the_slow_log_a_log_source_needs_is_fixed_by_what_doctor_printed() {
    let mut db = PrivateMariaDb::start("doctor-logs", &["performance_schema = ON"]);
    db.sql(&format!(
        "ALTER USER 'proofs_mon'@'%' IDENTIFIED BY '{PASSWORD}'; GRANT SELECT ON performance_schema.* TO 'proofs_mon'@'%'; GRANT PROCESS ON *.* TO 'proofs_mon'@'%'"
    ));
    let dir = scratch("doctor-mariadb-logs");
    let path = dir.join("l.pipe");
    std::fs::write(&path, "source my = mysql {\n  dsn = env(\"DOCTOR_LOGS_MY_DSN\")\n  collect statements\n}\nsink out = stdout {}\npipeline s = my.statements -> out\n").unwrap();
    std::env::set_var("DOCTOR_LOGS_MY_DSN", db.dsn("proofs_mon", PASSWORD));
    let compiled = dbintel_dsl::compile(&[path], &dbintel::fs_host::FsHost, dbintel_dsl::EnvPolicy::Require);
    let targets = dbintel_doctor::target_plans(&compiled.plan.expect("compiles"));
    let options = dbintel_doctor::Options { logged_sources: ["my".to_string()].into(), ..Default::default() };
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let check = || runtime.block_on(dbintel_doctor::check_all(&targets, &options)).json();
    let report = check();
    for (id, status) in
        [("logs.slow_query_log", "fail"), ("logs.long_query_time", "warn"), ("logs.log_output", "ok"), ("logs.log_slow_verbosity", "warn")]
    {
        assert_eq!(status_of(&report, id).as_deref(), Some(status), "{id}: {:#?}", doctor::checks(&report));
    }
    let slow = doctor::fixes(&report).into_iter().find(|f| f["sql"].as_str().is_some_and(|s| s.contains("slow_query_log"))).expect("a fix");
    assert_eq!(slow["sql"], "SET GLOBAL slow_query_log = ON;");
    assert_eq!(slow["config"]["lines"], "slow_query_log = ON");
    apply_mariadb(&mut db, &report, PASSWORD);
    let after = check();
    assert!(problems(&after).is_empty(), "{:#?}", problems(&after));
    db.restart();
    let after = check();
    assert!(problems(&after).is_empty(), "after a restart, from my.cnf: {:#?}", problems(&after));
}
