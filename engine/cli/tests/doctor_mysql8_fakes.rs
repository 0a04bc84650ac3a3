//! doctor's MySQL 8 checks, where no MySQL 8 server can run: against
//! look-alike tables built in the real MariaDB with MySQL 8.0's
//! documented columns and default contents (performance_schema's
//! `setup_consumers`, `setup_instruments`, the digest table, and the
//! global variables the slow-log checks read), in a schema of this
//! test's own (one per test: they run at once). Every test here is a fake, and named so. What differs
//! from MariaDB is asserted side by side: the consumers each flavour's
//! plans need, the replica privilege, `SET PERSIST`.

use std::collections::BTreeMap;

use dbintel_doctor::check::Status;
use dbintel_doctor::facts::{Collectors, Facts, Flavour, Setting};
use dbintel_doctor::{log_settings, privileges, settings, statement_fill, version};
use dbintel_sources::mysql::{row_to_map, MyServer};
use dbintel_sources::target::Engine;
use sqlx::mysql::MySqlPoolOptions;

const ROOT: &str = "mysql://root@127.0.0.1:3306";
const MYSQL8: MyServer = MyServer { mariadb: false, version: 80036 };
const MARIADB: MyServer = MyServer { mariadb: true, version: 101106 };

async fn root() -> sqlx::MySqlPool {
    MySqlPoolOptions::new().max_connections(1).connect(ROOT).await.expect("MariaDB at 127.0.0.1:3306 (run tests/prepare-servers.sh)")
}

/// MySQL 8.0's tables with its defaults: every statement consumer on but
/// the long history, no wait consumer; statement, file, table and
/// metadata-lock instruments on and timed.
async fn build_fake(pool: &sqlx::MySqlPool, fake: &str) {
    let consumers = [
        ("events_stages_current", "NO"),
        ("events_stages_history", "NO"),
        ("events_stages_history_long", "NO"),
        ("events_statements_cpu", "NO"),
        ("events_statements_current", "YES"),
        ("events_statements_history", "YES"),
        ("events_statements_history_long", "NO"),
        ("events_transactions_current", "YES"),
        ("events_transactions_history", "YES"),
        ("events_transactions_history_long", "NO"),
        ("events_waits_current", "NO"),
        ("events_waits_history", "NO"),
        ("events_waits_history_long", "NO"),
        ("global_instrumentation", "YES"),
        ("thread_instrumentation", "YES"),
        ("statements_digest", "YES"),
    ];
    let values: Vec<String> = consumers.iter().map(|(n, e)| format!("('{n}', '{e}')")).collect();
    let statements = [
        format!("DROP DATABASE IF EXISTS {fake}"),
        format!("CREATE DATABASE {fake}"),
        format!("CREATE TABLE {fake}.setup_consumers (NAME VARCHAR(64) NOT NULL, ENABLED ENUM('YES','NO') NOT NULL, PRIMARY KEY (NAME))"),
        format!("INSERT INTO {fake}.setup_consumers VALUES {}", values.join(", ")),
        format!(
            "CREATE TABLE {fake}.setup_instruments (NAME VARCHAR(128) NOT NULL, ENABLED ENUM('YES','NO') NOT NULL, TIMED ENUM('YES','NO'),
               PROPERTIES SET('singleton','progress','user','global_statistics','mutable','controlled_by_default') NOT NULL DEFAULT '',
               FLAGS SET('controlled'), VOLATILITY INT NOT NULL DEFAULT 0, DOCUMENTATION LONGTEXT, PRIMARY KEY (NAME))"
        ),
        format!(
            "INSERT INTO {fake}.setup_instruments (NAME, ENABLED, TIMED) VALUES
               ('statement/sql/select', 'YES', 'YES'), ('statement/sql/insert', 'YES', 'YES'), ('statement/sp/stmt', 'YES', 'YES'),
               ('wait/io/file/innodb/innodb_data_file', 'YES', 'YES'), ('wait/io/file/sql/binlog', 'YES', 'YES'),
               ('wait/io/table/sql/handler', 'YES', 'YES'), ('wait/lock/table/sql/handler', 'YES', 'YES'),
               ('wait/lock/metadata/sql/mdl', 'YES', 'YES'), ('wait/synch/mutex/sql/LOCK_open', 'NO', 'NO'),
               ('wait/io/socket/sql/client_connection', 'NO', 'NO')"
        ),
        format!(
            "CREATE TABLE {fake}.events_statements_summary_by_digest (SCHEMA_NAME VARCHAR(64), DIGEST VARCHAR(64), DIGEST_TEXT LONGTEXT,
               COUNT_STAR BIGINT UNSIGNED NOT NULL, SUM_TIMER_WAIT BIGINT UNSIGNED NOT NULL, FIRST_SEEN TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
               LAST_SEEN TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6), QUANTILE_95 BIGINT UNSIGNED NOT NULL DEFAULT 0,
               QUERY_SAMPLE_TEXT LONGTEXT, QUERY_SAMPLE_SEEN TIMESTAMP(6) NULL, QUERY_SAMPLE_TIMER_WAIT BIGINT UNSIGNED NOT NULL DEFAULT 0)"
        ),
        format!(
            "INSERT INTO {fake}.events_statements_summary_by_digest (SCHEMA_NAME, DIGEST, DIGEST_TEXT, COUNT_STAR, SUM_TIMER_WAIT) VALUES
               ('shop', 'a1', 'SELECT ?', 10, 1000), ('shop', 'b2', 'UPDATE t SET v = ?', 3, 5000), (NULL, NULL, NULL, 7, 700)"
        ),
        format!("CREATE TABLE {fake}.global_variables (VARIABLE_NAME VARCHAR(64) NOT NULL, VARIABLE_VALUE VARCHAR(1024))"),
        format!(
            "INSERT INTO {fake}.global_variables VALUES ('slow_query_log', 'OFF'), ('long_query_time', '10.000000'), ('log_output', 'FILE'),
               ('log_slow_extra', 'OFF')"
        ),
    ];
    for sql in statements {
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql)).execute(pool).await.expect("build the fake");
    }
}

async fn rows(pool: &sqlx::MySqlPool, sql: String) -> Vec<dbintel_sources::rows::Row> {
    sqlx::query(sqlx::AssertSqlSafe(sql)).fetch_all(pool).await.expect("the query runs on the fake").iter().map(row_to_map).collect()
}

#[tokio::test]
async fn fake_mysql8_consumers_instruments_and_digests_read_as_mysql_8_needs_them() {
    let pool = root().await;
    let fake = "doctor_fake_mysql8_tables";
    build_fake(&pool, fake).await;
    let all = Collectors::from_names(&["statements", "activity", "instance", "tables", "plans"]);

    let consumers = rows(&pool, settings::consumers_sql(fake)).await;
    assert_eq!(consumers.len(), 16, "the fake's rows");
    let found = settings::consumer_findings(MYSQL8, &all, &consumers);
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].status, Status::Warn, "MySQL 8's defaults miss only the wait consumer: {:?}", found[0]);
    assert_eq!(found[0].observed, "off: events_waits_current (for activity)");
    let fix = found[0].fix.clone().expect("a fix");
    assert_eq!(
        fix.sql.as_deref(),
        Some("UPDATE performance_schema.setup_consumers SET ENABLED = 'YES' WHERE NAME IN ('events_waits_current');")
    );
    assert_eq!(fix.config.map(|c| (c.lines, c.also)), Some(("performance_schema_consumer_events_waits_current = ON".to_string(), true)));

    // the statement history off: MySQL 8's plans read the digests' own
    // sample text and do not care; MariaDB's read the history
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "UPDATE {fake}.setup_consumers SET ENABLED = 'NO' WHERE NAME = 'events_statements_history'"
    )))
    .execute(&pool)
    .await
    .unwrap();
    let consumers = rows(&pool, settings::consumers_sql(fake)).await;
    assert_eq!(settings::consumer_findings(MYSQL8, &all, &consumers)[0].status, Status::Warn);
    let mariadb = &settings::consumer_findings(MARIADB, &all, &consumers)[0];
    assert_eq!(mariadb.status, Status::Fail);
    assert!(mariadb.observed.contains("events_statements_history (for plans)"), "{}", mariadb.observed);

    // off by default: synch and socket instruments, which nothing reads
    let off = rows(&pool, settings::instruments_sql(fake)).await;
    assert!(off.is_empty(), "{off:?}");
    let instruments = settings::instrument_findings(&all, &off);
    assert_eq!(instruments[0].status, Status::Ok, "{:?}", instruments[0]);
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "UPDATE {fake}.setup_instruments SET TIMED = 'NO' WHERE NAME = 'wait/io/table/sql/handler'"
    )))
    .execute(&pool)
    .await
    .unwrap();
    let off = rows(&pool, settings::instruments_sql(fake)).await;
    let instruments = settings::instrument_findings(&Collectors::from_names(&["tables"]), &off);
    assert_eq!((instruments[0].status, instruments[0].observed.as_str()), (Status::Fail, "wait/io/table/sql/handler (1 off or untimed)"));

    let count = rows(&pool, statement_fill::digest_count_sql(fake)).await;
    let digests = dbintel_sources::rows::integer(&count[0], "n").unwrap_or(-1);
    assert_eq!(digests, 3);
    assert_eq!(statement_fill::digest_finding(digests, 10_000, 0).status, Status::Ok);
    let full = statement_fill::digest_finding(9_500, 10_000, 12);
    assert_eq!((full.status, full.observed.as_str()), (Status::Warn, "9500 of 10000 digests; 12 lost since the server started"));
    assert_eq!(full.fix.and_then(|f| f.config).map(|c| c.lines).as_deref(), Some("performance_schema_digests_size = 20000"));
}

#[tokio::test]
async fn fake_mysql8_slow_log_fixes_persist_with_set_persist() {
    let pool = root().await;
    let fake = "doctor_fake_mysql8_variables";
    build_fake(&pool, fake).await;
    let variables =
        rows(&pool, format!("SELECT VARIABLE_NAME AS Variable_name, VARIABLE_VALUE AS Value FROM {fake}.global_variables")).await;
    let settings: BTreeMap<String, Setting> = variables
        .iter()
        .map(|r| {
            let text = |c| dbintel_doctor::facts::text(r, c);
            (text("Variable_name"), Setting { value: text("Value"), unit: None, context: None })
        })
        .collect();
    let found = log_settings::evaluate(Flavour::MySql, 80036, log_settings::MYSQL_LOGS, &settings);
    let by_id = |id: &str| found.iter().find(|f| f.check.id == id).unwrap_or_else(|| panic!("{id} in {found:?}"));
    let slow = by_id("logs.slow_query_log");
    assert_eq!(slow.status, Status::Fail);
    let fix = slow.fix.clone().expect("a fix");
    assert_eq!(fix.sql.as_deref(), Some("SET PERSIST slow_query_log = ON;"), "MySQL 8 keeps it across restarts itself");
    assert!(fix.config.is_none(), "no my.cnf line needed with SET PERSIST");
    assert_eq!(by_id("logs.long_query_time").fix.clone().and_then(|f| f.sql).as_deref(), Some("SET PERSIST long_query_time = 1;"));
    assert_eq!(by_id("logs.log_output").status, Status::Ok);
    assert_eq!(by_id("logs.log_slow_extra").status, Status::Warn);
    // log_slow_extra came in 8.0.14
    let older = log_settings::evaluate(Flavour::MySql, 80013, log_settings::MYSQL_LOGS, &settings);
    assert!(older.iter().all(|f| f.check.id != "logs.log_slow_extra"));
    // the same rows on MariaDB: SET GLOBAL, and the my.cnf line as well
    let mariadb = log_settings::evaluate(Flavour::MariaDb, 101106, log_settings::MARIADB_LOGS, &settings);
    let slow = mariadb.iter().find(|f| f.check.id == "logs.slow_query_log").and_then(|f| f.fix.clone()).expect("a fix");
    assert_eq!((slow.sql.as_deref(), slow.config.map(|c| c.also)), (Some("SET GLOBAL slow_query_log = ON;"), Some(true)));
}

#[tokio::test]
async fn fake_mysql8_replica_privilege_version_support_and_the_user_to_create_instead_of_root() {
    let pool = root().await;
    // MySQL 8.0.22+ says SHOW REPLICA STATUS; MariaDB accepts it too: run for real
    sqlx::raw_sql("SHOW REPLICA STATUS").execute(&pool).await.expect("SHOW REPLICA STATUS");
    assert_eq!(privileges::replica_privilege(Flavour::MySql, 80036), "REPLICATION CLIENT");
    assert_eq!(privileges::replica_privilege(Flavour::MariaDb, 101106), "SLAVE MONITOR");
    assert_eq!(privileges::replica_privilege(Flavour::MariaDb, 100508), "REPLICATION CLIENT");
    let fix = dbintel_doctor::connection::least_privilege_fix(Engine::MySql, "root", Some("REPLICATION CLIENT"));
    assert_eq!(
        fix.sql.as_deref(),
        Some(
            "CREATE USER IF NOT EXISTS 'dbintel'@'%' IDENTIFIED BY '<a password>';\nGRANT SELECT ON performance_schema.* TO 'dbintel'@'%';\nGRANT PROCESS ON *.* TO 'dbintel'@'%';\nGRANT REPLICATION CLIENT ON *.* TO 'dbintel'@'%';"
        )
    );
    let facts = |flavour, version, text: &str| Facts {
        engine: Engine::MySql,
        flavour,
        version,
        version_text: text.into(),
        role: "mon@%".into(),
        database: None,
        standby: false,
        settings: BTreeMap::new(),
    };
    for (version, text, status) in
        [(80036, "8.0.36", Status::Ok), (80400, "8.4.0", Status::Ok), (50744, "5.7.44", Status::Fail), (90100, "9.1.0", Status::Warn)]
    {
        let found = version::check(&facts(Flavour::MySql, version, text));
        assert_eq!(found[0].status, status, "MySQL {text}: {:?}", found[0]);
    }
    assert_eq!(version::check(&facts(Flavour::MariaDb, 100411, "10.4.11-MariaDB"))[0].status, Status::Fail);
}
