//! MySQL 8's query forms, where no MySQL 8 server can run: against
//! look-alike tables built in the real MariaDB with MySQL 8's documented
//! columns (performance_schema `threads`, `events_waits_current`,
//! `data_lock_waits`, in a schema of this test's own). Every test here is
//! a fake, and named so. What MariaDB itself accepts of MySQL 8's syntax
//! (`SHOW REPLICA STATUS`) runs on it for real.

use std::time::Duration;

use dbintel_core::record::{Number, Record};
use dbintel_sources::collectors::activity::{my_sample_sql_from, AshWindow, MY_SAMPLE_TEXT_CHARS};
use dbintel_sources::collectors::my_instance::{records as status_records, replica_status_sql};
use dbintel_sources::collectors::session_samples::{sample_logs, ServerFlavor};
use dbintel_sources::mysql::{row_to_map, MyServer};
use dbintel_sources::target::Engine;
use dbintel_stdlib::Value;
use sqlx::mysql::MySqlPoolOptions;

const ROOT: &str = "mysql://root@127.0.0.1:3306";
const FAKE: &str = "catalogue2_fake_mysql8";
const MYSQL8: MyServer = MyServer { mariadb: false, version: 80036 };

async fn root() -> sqlx::MySqlPool {
    MySqlPoolOptions::new().max_connections(1).connect(ROOT).await.expect("MariaDB at 127.0.0.1:3306 (run tests/prepare-servers.sh)")
}

/// MySQL 8.0's performance_schema tables the activity sample reads, with
/// their documented columns, and one instant of a server: thread 101
/// (session 9001) waits on a row lock held by thread 102 (session 9002,
/// idle in its transaction), thread 103 (session 9003) is in a table I/O
/// wait, a background thread, and a 10,000-character statement text.
async fn build_fake(pool: &sqlx::MySqlPool) {
    let statements = [
        format!("DROP DATABASE IF EXISTS {FAKE}"),
        format!("CREATE DATABASE {FAKE}"),
        format!(
            "CREATE TABLE {FAKE}.threads (THREAD_ID BIGINT UNSIGNED NOT NULL, NAME VARCHAR(128) NOT NULL, TYPE VARCHAR(10) NOT NULL,
               PROCESSLIST_ID BIGINT UNSIGNED, PROCESSLIST_USER VARCHAR(32), PROCESSLIST_HOST VARCHAR(255), PROCESSLIST_DB VARCHAR(64),
               PROCESSLIST_COMMAND VARCHAR(16), PROCESSLIST_TIME BIGINT, PROCESSLIST_STATE VARCHAR(64), PROCESSLIST_INFO LONGTEXT,
               PARENT_THREAD_ID BIGINT UNSIGNED, ROLE VARCHAR(64), INSTRUMENTED ENUM('YES','NO') NOT NULL, HISTORY ENUM('YES','NO') NOT NULL,
               CONNECTION_TYPE VARCHAR(16), THREAD_OS_ID BIGINT UNSIGNED, RESOURCE_GROUP VARCHAR(64), EXECUTION_ENGINE ENUM('PRIMARY','SECONDARY'),
               CONTROLLED_MEMORY BIGINT UNSIGNED NOT NULL DEFAULT 0, MAX_CONTROLLED_MEMORY BIGINT UNSIGNED NOT NULL DEFAULT 0,
               TOTAL_MEMORY BIGINT UNSIGNED NOT NULL DEFAULT 0, MAX_TOTAL_MEMORY BIGINT UNSIGNED NOT NULL DEFAULT 0,
               TELEMETRY_ACTIVE ENUM('YES','NO') NOT NULL DEFAULT 'NO')"
        ),
        format!(
            "CREATE TABLE {FAKE}.events_waits_current (THREAD_ID BIGINT UNSIGNED NOT NULL, EVENT_ID BIGINT UNSIGNED NOT NULL,
               END_EVENT_ID BIGINT UNSIGNED, EVENT_NAME VARCHAR(128) NOT NULL, SOURCE VARCHAR(64), TIMER_START BIGINT UNSIGNED,
               TIMER_END BIGINT UNSIGNED, TIMER_WAIT BIGINT UNSIGNED, SPINS INT UNSIGNED, OBJECT_SCHEMA VARCHAR(64), OBJECT_NAME VARCHAR(512),
               INDEX_NAME VARCHAR(64), OBJECT_TYPE VARCHAR(64), OBJECT_INSTANCE_BEGIN BIGINT UNSIGNED NOT NULL, NESTING_EVENT_ID BIGINT UNSIGNED,
               NESTING_EVENT_TYPE ENUM('TRANSACTION','STATEMENT','STAGE','WAIT'), OPERATION VARCHAR(32) NOT NULL, NUMBER_OF_BYTES BIGINT,
               FLAGS INT UNSIGNED)"
        ),
        format!(
            "CREATE TABLE {FAKE}.data_lock_waits (ENGINE VARCHAR(32) NOT NULL, REQUESTING_ENGINE_LOCK_ID VARCHAR(128) NOT NULL,
               REQUESTING_ENGINE_TRANSACTION_ID BIGINT UNSIGNED, REQUESTING_THREAD_ID BIGINT UNSIGNED, REQUESTING_EVENT_ID BIGINT UNSIGNED,
               REQUESTING_OBJECT_INSTANCE_BEGIN BIGINT UNSIGNED NOT NULL, BLOCKING_ENGINE_LOCK_ID VARCHAR(128) NOT NULL,
               BLOCKING_ENGINE_TRANSACTION_ID BIGINT UNSIGNED, BLOCKING_THREAD_ID BIGINT UNSIGNED, BLOCKING_EVENT_ID BIGINT UNSIGNED,
               BLOCKING_OBJECT_INSTANCE_BEGIN BIGINT UNSIGNED NOT NULL)"
        ),
        format!(
            "CREATE TABLE {FAKE}.events_statements_current (THREAD_ID BIGINT UNSIGNED NOT NULL, EVENT_ID BIGINT UNSIGNED NOT NULL,
               END_EVENT_ID BIGINT UNSIGNED, EVENT_NAME VARCHAR(128) NOT NULL, TIMER_START BIGINT UNSIGNED, TIMER_END BIGINT UNSIGNED,
               TIMER_WAIT BIGINT UNSIGNED, SQL_TEXT LONGTEXT, DIGEST VARCHAR(64), DIGEST_TEXT LONGTEXT, CURRENT_SCHEMA VARCHAR(64))"
        ),
        format!(
            "CREATE TABLE {FAKE}.user_variables_by_thread (THREAD_ID BIGINT UNSIGNED NOT NULL, VARIABLE_NAME VARCHAR(64) NOT NULL,
               VARIABLE_VALUE LONGBLOB)"
        ),
        format!(
            "CREATE TABLE {FAKE}.session_connect_attrs (PROCESSLIST_ID INT NOT NULL, ATTR_NAME VARCHAR(32) NOT NULL,
               ATTR_VALUE VARCHAR(1024), ORDINAL_POSITION INT)"
        ),
        format!(
            "CREATE TABLE {FAKE}.processlist (ID BIGINT UNSIGNED NOT NULL, USER VARCHAR(32), HOST VARCHAR(261), DB VARCHAR(64),
               COMMAND VARCHAR(16), TIME BIGINT, STATE VARCHAR(64), INFO LONGTEXT, EXECUTION_ENGINE ENUM('PRIMARY','SECONDARY'))"
        ),
        format!(
            "INSERT INTO {FAKE}.events_statements_current (THREAD_ID, EVENT_ID, END_EVENT_ID, EVENT_NAME, TIMER_START, TIMER_WAIT, SQL_TEXT, DIGEST, DIGEST_TEXT)
             VALUES (101, 69, NULL, 'statement/sql/update', 123456789, 2000000000000,
                     CONCAT('/* nr_service_guid=\"MTE2MDAzMTl8QVBNfEFQUExJQ0FUSU9OfDI5MjMzNDQwNw\" */ UPDATE t SET v = 1 /* ', REPEAT('x', 10000), ' */'),
                     'a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f90', 'UPDATE `t` SET `v` = ?'),
                    (103, 54, NULL, 'statement/sql/select', 223456789, 5000000000000, 'SELECT * FROM big', NULL, NULL)"
        ),
        format!(
            "INSERT INTO {FAKE}.user_variables_by_thread VALUES (101, 'traceparent', '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01')"
        ),
        format!("INSERT INTO {FAKE}.session_connect_attrs VALUES (9001, '_client_name', 'libmysql', 1), (9001, '_pid', '77', 2)"),
        format!("INSERT INTO {FAKE}.processlist (ID, USER, HOST, DB, COMMAND) VALUES (9001, 'app', '10.0.0.7:53124', 'shop', 'Query')"),
        format!(
            "INSERT INTO {FAKE}.threads (THREAD_ID, NAME, TYPE, PROCESSLIST_ID, PROCESSLIST_USER, PROCESSLIST_DB, PROCESSLIST_COMMAND,
               PROCESSLIST_TIME, PROCESSLIST_STATE, PROCESSLIST_INFO, INSTRUMENTED, HISTORY) VALUES
             (101, 'thread/sql/one_connection', 'FOREGROUND', 9001, 'app', 'shop', 'Query', 2, 'updating', CONCAT('UPDATE t SET v = 1 /* ', REPEAT('x', 10000), ' */'), 'YES', 'YES'),
             (102, 'thread/sql/one_connection', 'FOREGROUND', 9002, 'app', 'shop', 'Sleep', 40, NULL, NULL, 'YES', 'YES'),
             (103, 'thread/sql/one_connection', 'FOREGROUND', 9003, 'etl', 'shop', 'Query', 500, 'executing', 'SELECT * FROM big', 'YES', 'YES'),
             (1, 'thread/innodb/io_write_thread', 'BACKGROUND', NULL, NULL, NULL, NULL, NULL, NULL, NULL, 'YES', 'YES')"
        ),
        format!(
            "INSERT INTO {FAKE}.events_waits_current (THREAD_ID, EVENT_ID, END_EVENT_ID, EVENT_NAME, TIMER_WAIT, OBJECT_INSTANCE_BEGIN, OPERATION)
             VALUES (103, 55, NULL, 'wait/io/table/sql/handler', 5000000000, 1, 'fetch'),
                    (101, 70, NULL, 'wait/lock/table/sql/handler', 1000000, 2, 'write'),
                    (102, 12, 12, 'wait/io/socket/sql/client_connection', 10, 3, 'recv')"
        ),
        format!(
            "INSERT INTO {FAKE}.data_lock_waits VALUES ('INNODB', '1:5:4:2', 4242, 101, 70, 1, '1:5:4:1', 4241, 102, 60, 2)"
        ),
    ];
    for sql in statements {
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql)).execute(pool).await.expect("build the fake");
    }
}

#[tokio::test]
async fn fake_mysql8_activity_sample_names_row_lock_blockers_from_data_lock_waits_with_every_db360_attribute() {
    let pool = root().await;
    build_fake(&pool).await;
    let sql = my_sample_sql_from(MYSQL8, true, FAKE, 1000);
    assert!(sql.contains("data_lock_waits") && !sql.contains("INNODB_LOCK_WAITS"), "the MySQL 8 form: {sql}");
    let rows: Vec<_> =
        sqlx::query(sqlx::AssertSqlSafe(sql)).fetch_all(&pool).await.expect("the MySQL 8 sample runs").iter().map(row_to_map).collect();
    let mut pids: Vec<i64> = rows.iter().filter_map(|r| dbintel_sources::rows::integer(r, "pid")).collect();
    pids.sort_unstable();
    assert_eq!(pids, [9001, 9003], "foreground threads doing something, not Sleep, not background: {rows:?}");
    // capped at one session, the lock waiter is the one kept (the ETL
    // statement has run far longer), and the count still covers both
    let capped: Vec<_> = sqlx::query(sqlx::AssertSqlSafe(my_sample_sql_from(MYSQL8, true, FAKE, 1)))
        .fetch_all(&pool)
        .await
        .expect("the capped sample runs")
        .iter()
        .map(row_to_map)
        .collect();
    assert_eq!(capped.len(), 1);
    assert_eq!(dbintel_sources::rows::integer(&capped[0], "pid"), Some(9001), "waiters first: {capped:?}");
    assert_eq!(dbintel_sources::rows::integer(&capped[0], "active_total"), Some(2), "{capped:?}");

    let mut window = AshWindow::new("mysql", Duration::from_secs(1));
    window.add_sample(&rows);
    let records = window.finish(Duration::from_secs(1), 7);
    let lock = records.iter().find_map(|r| match r {
        Record::Log(l) if l.event_name == "db.server.blocking" => Some(l),
        _ => None,
    });
    let lock = lock.expect("a blocking event for the row-lock waiter");
    assert_eq!(lock.attributes.get("db.session.id"), Some(&Value::Int(9001)));
    assert_eq!(lock.attributes.get("db.blocking.session.ids"), Some(&Value::List(vec![Value::Int(9002)])));
    let classes: Vec<(String, f64)> = records
        .iter()
        .filter_map(|r| match r {
            Record::Metric(m) => Some((
                m.attributes.get("db.wait.class").map(ToString::to_string).unwrap_or_default(),
                match m.value {
                    Number::Double(d) => d,
                    Number::Int(i) => i as f64,
                },
            )),
            Record::Log(_) => None,
        })
        .collect();
    assert!(classes.contains(&("Lock".into(), 1.0)) && classes.contains(&("io".into(), 1.0)), "{classes:?}");

    // the samples as events: New Relic's Database 360 attributes, text cut
    // in the query
    let flavor = ServerFlavor { mariadb: false, version: MYSQL8.version };
    let logs = sample_logs(Engine::MySql, Some(flavor), &rows, 7, &["nr_service_guid".to_string()]);
    let waiting = logs
        .iter()
        .find_map(|r| match r {
            Record::Log(l) if l.attributes.get("mysql.session.id") == Some(&Value::Int(9001)) => Some(l),
            _ => None,
        })
        .expect("the waiter's sample");
    let get = |k: &str| waiting.attributes.get(k).cloned().unwrap_or_else(|| panic!("{k} missing: {:?}", waiting.attributes));
    // the statement that leaves is the server's digest text
    assert_eq!(get("db.query.text"), Value::Str("UPDATE `t` SET `v` = ?".into()));
    assert_eq!(get("mysql.events_statements_current.digest").as_str().map(str::len), Some(64));
    assert_eq!(get("mysql.threads.thread_id"), Value::Int(101));
    assert_eq!(get("mysql.session.status"), Value::Str("waiting".into()));
    assert_eq!(get("mysql.wait_type"), Value::Str("wait/lock/table/sql/handler".into()));
    assert_eq!(get("mysql.wait_event_type"), Value::Str("lock".into()));
    assert_eq!(get("mysql.wait_event"), Value::Str("table/sql/handler".into()));
    assert_eq!(get("mysql.event_id"), Value::Int(70));
    assert_eq!(get("mysql.events_statements_current.timer_wait"), Value::Double(2.0));
    assert_eq!(get("mysql.events_statements_current.timer_start"), Value::Int(123456789));
    assert_eq!(get("mysql.blocking.blockers"), Value::Str(r#"[{"thread_id":102,"session_id":9002}]"#.into()));
    assert_eq!(get("mysql.blocking.blocker.count"), Value::Int(1));
    assert_eq!(get("mysql.client.name"), Value::Str("libmysql".into()));
    assert_eq!((get("client.address"), get("client.port")), (Value::Str("10.0.0.7".into()), Value::Int(53124)));
    assert_eq!(get("db.query.comment_tags.nr_service_guid"), Value::Str("MTE2MDAzMTl8QVBNfEFQUExJQ0FUSU9OfDI5MjMzNDQwNw".into()));
    assert_eq!(waiting.trace_id.iter().map(|b| format!("{b:02x}")).collect::<String>(), "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_eq!(waiting.span_id.iter().map(|b| format!("{b:02x}")).collect::<String>(), "00f067aa0ba902b7");
    let text_len = rows
        .iter()
        .find(|r| dbintel_sources::rows::integer(r, "pid") == Some(9001))
        .and_then(|r| r.get("query"))
        .and_then(Value::as_str)
        .map(|t| t.chars().count());
    assert_eq!(text_len, Some(MY_SAMPLE_TEXT_CHARS), "the 10,000-character text is cut in the query");
    let server = dbintel_sources::db360::Server { engine: Engine::MySql, mariadb: false, version: MYSQL8.version };
    for record in &logs {
        let problems = dbintel_sources::catalogue::conformance(Engine::MySql, &Default::default(), record);
        assert!(problems.is_empty(), "{problems:?}");
        let Record::Log(l) = record else { continue };
        let problems = dbintel_sources::db360::problems(server, l);
        assert!(problems.is_empty(), "every Database 360 attribute of a MySQL 8 sample: {problems:?}");
    }
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("DROP DATABASE {FAKE}"))).execute(&pool).await.expect("drop the fake");
}

#[tokio::test]
async fn fake_mysql8_without_text_reads_no_statement_text() {
    let pool = root().await;
    let schema = format!("{FAKE}_notext");
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("DROP DATABASE IF EXISTS {schema}"))).execute(&pool).await.expect("drop");
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "CREATE DATABASE {schema};
         CREATE TABLE {schema}.threads (THREAD_ID BIGINT UNSIGNED, TYPE VARCHAR(10), PROCESSLIST_ID BIGINT UNSIGNED, PROCESSLIST_USER VARCHAR(32),
           PROCESSLIST_DB VARCHAR(64), PROCESSLIST_COMMAND VARCHAR(16), PROCESSLIST_TIME BIGINT, PROCESSLIST_STATE VARCHAR(64), PROCESSLIST_INFO LONGTEXT);
         CREATE TABLE {schema}.events_waits_current (THREAD_ID BIGINT UNSIGNED, EVENT_ID BIGINT UNSIGNED, END_EVENT_ID BIGINT UNSIGNED, EVENT_NAME VARCHAR(128), TIMER_WAIT BIGINT UNSIGNED);
         CREATE TABLE {schema}.data_lock_waits (REQUESTING_THREAD_ID BIGINT UNSIGNED, BLOCKING_THREAD_ID BIGINT UNSIGNED);
         INSERT INTO {schema}.threads VALUES (5, 'FOREGROUND', 77, 'u', 'd', 'Query', 3, 'x', 'SELECT secret_literal');"
    )))
    .execute(&pool)
    .await
    .expect("build");
    let rows: Vec<_> = sqlx::query(sqlx::AssertSqlSafe(my_sample_sql_from(MYSQL8, false, &schema, 1000)))
        .fetch_all(&pool)
        .await
        .expect("runs")
        .iter()
        .map(row_to_map)
        .collect();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].get("query"), Some(&Value::Nil), "no text is read when samples are not sent");
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("DROP DATABASE {schema}"))).execute(&pool).await.expect("drop");
}

/// MariaDB accepts MySQL 8's `SHOW REPLICA STATUS` (with its own column
/// names): the statement dbintel sends a MySQL 8.0.22+ server runs, and
/// the MariaDB one too (the shipped-pipeline test runs it as the
/// least-privilege user with SLAVE MONITOR).
#[tokio::test]
async fn replica_status_statements_of_both_flavours_run_on_mariadb() {
    let pool = root().await;
    for server in [MYSQL8, MyServer { mariadb: true, version: 101106 }] {
        let sql = replica_status_sql(server);
        let rows: Vec<_> = sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
            .fetch_all(&pool)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
            .iter()
            .map(row_to_map)
            .collect();
        // not a replica: no rows, and so no points
        assert!(status_records(&rows, 1, 2).is_empty(), "{sql}: {rows:?}");
    }
}

/// MySQL 8.0's digest table (its documented columns, QUERY_SAMPLE_TEXT
/// included) as a fake in MariaDB: the top-query form MySQL 8.0.3+ gets
/// runs against it, and two snapshots make a top query with every
/// Database 360 attribute of a MySQL 8 server — the comment tags read from
/// the sample text, examined and returned rows — checked against the
/// contract.
#[tokio::test]
async fn fake_mysql8_top_queries_carry_comment_tags_from_the_sample_text_and_every_db360_attribute() {
    use dbintel_sources::collectors::my_statements::DIGESTS_WITH_SAMPLE_SQL;
    use dbintel_sources::statement_deltas::{StatementDeltas, MYSQL};
    let pool = root().await;
    let schema = format!("{FAKE}_digests");
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS {schema};
         CREATE DATABASE {schema};
         CREATE TABLE {schema}.events_statements_summary_by_digest (SCHEMA_NAME VARCHAR(64), DIGEST VARCHAR(64), DIGEST_TEXT LONGTEXT,
           COUNT_STAR BIGINT UNSIGNED NOT NULL, SUM_TIMER_WAIT BIGINT UNSIGNED NOT NULL, MIN_TIMER_WAIT BIGINT UNSIGNED NOT NULL DEFAULT 0,
           AVG_TIMER_WAIT BIGINT UNSIGNED NOT NULL DEFAULT 0, MAX_TIMER_WAIT BIGINT UNSIGNED NOT NULL DEFAULT 0,
           SUM_LOCK_TIME BIGINT UNSIGNED NOT NULL DEFAULT 0, SUM_ERRORS BIGINT UNSIGNED NOT NULL DEFAULT 0,
           SUM_WARNINGS BIGINT UNSIGNED NOT NULL DEFAULT 0, SUM_ROWS_AFFECTED BIGINT UNSIGNED NOT NULL DEFAULT 0,
           SUM_ROWS_SENT BIGINT UNSIGNED NOT NULL DEFAULT 0, SUM_ROWS_EXAMINED BIGINT UNSIGNED NOT NULL DEFAULT 0,
           SUM_CREATED_TMP_DISK_TABLES BIGINT UNSIGNED NOT NULL DEFAULT 0, SUM_CREATED_TMP_TABLES BIGINT UNSIGNED NOT NULL DEFAULT 0,
           SUM_NO_INDEX_USED BIGINT UNSIGNED NOT NULL DEFAULT 0, SUM_NO_GOOD_INDEX_USED BIGINT UNSIGNED NOT NULL DEFAULT 0,
           FIRST_SEEN TIMESTAMP(6) NULL, LAST_SEEN TIMESTAMP(6) NULL, QUANTILE_95 BIGINT UNSIGNED NOT NULL DEFAULT 0,
           QUANTILE_99 BIGINT UNSIGNED NOT NULL DEFAULT 0, QUANTILE_999 BIGINT UNSIGNED NOT NULL DEFAULT 0,
           QUERY_SAMPLE_TEXT LONGTEXT, QUERY_SAMPLE_SEEN TIMESTAMP(6) NULL, QUERY_SAMPLE_TIMER_WAIT BIGINT UNSIGNED NOT NULL DEFAULT 0);
         INSERT INTO {schema}.events_statements_summary_by_digest
           (SCHEMA_NAME, DIGEST, DIGEST_TEXT, COUNT_STAR, SUM_TIMER_WAIT, SUM_ROWS_SENT, SUM_ROWS_EXAMINED, QUERY_SAMPLE_TEXT)
         VALUES ('shop', 'a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f90', 'SELECT * FROM `orders` WHERE `id` = ?',
                 10, 5000000000000, 10, 400,
                 '/* nr_service_guid=\"MTE2MDAzMTl8QVBNfEFQUExJQ0FUSU9OfDI5MjMzNDQwNw\" */ SELECT * FROM orders WHERE id = 42');"
    )))
    .execute(&pool)
    .await
    .expect("build the fake");
    let sql = DIGESTS_WITH_SAMPLE_SQL.replace("performance_schema.", &format!("{schema}."));
    let read = || async {
        sqlx::query(sqlx::AssertSqlSafe(sql.clone()))
            .fetch_all(&pool)
            .await
            .expect("the MySQL 8 form runs")
            .iter()
            .map(row_to_map)
            .collect::<Vec<_>>()
    };
    let mut deltas = StatementDeltas::new(&MYSQL, 200, vec!["nr_service_guid".into()]);
    assert!(deltas.observe("mysql8", None, read().await, 1).0.is_empty(), "the first snapshot is a baseline");
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "UPDATE {schema}.events_statements_summary_by_digest SET COUNT_STAR = 25, SUM_TIMER_WAIT = 8000000000000, SUM_ROWS_SENT = 25, SUM_ROWS_EXAMINED = 1000"
    )))
    .execute(&pool)
    .await
    .expect("the digest runs again");
    let (records, _) = deltas.observe("mysql8", None, read().await, 2);
    let top = records
        .iter()
        .find_map(|r| match r {
            Record::Log(l) if l.event_name == "db.server.top_query" => Some(l),
            _ => None,
        })
        .expect("a top query");
    let get = |k: &str| top.attributes.get(k).cloned().unwrap_or_else(|| panic!("{k} missing: {:?}", top.attributes));
    assert_eq!(get("db.query.comment_tags.nr_service_guid"), Value::Str("MTE2MDAzMTl8QVBNfEFQUExJQ0FUSU9OfDI5MjMzNDQwNw".into()));
    assert_eq!(get("mysql.events_statements_summary_by_digest.count_star"), Value::Int(15));
    assert_eq!(get("mysql.events_statements_summary_by_digest.examined_rows"), Value::Int(600));
    assert_eq!(get("mysql.events_statements_summary_by_digest.returned_rows"), Value::Int(15));
    assert_eq!(get("mysql.events_statements_summary_by_digest.sum_timer_wait"), Value::Double(3.0), "delta seconds");
    let server = dbintel_sources::db360::Server { engine: Engine::MySql, mariadb: false, version: MYSQL8.version };
    assert_eq!(dbintel_sources::db360::problems(server, top), Vec::<String>::new());
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("DROP DATABASE {schema}"))).execute(&pool).await.expect("drop");
}
