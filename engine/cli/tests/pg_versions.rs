//! The real PostgreSQL 12 to 18 servers and the streaming replica that
//! tests/pg-versions.sh starts: each answers as its version, its
//! pg_stat_statements returns rows the monitoring role can read, and its
//! catalogue has the columns docs/catalogue/versions.md says it has. These
//! tests fail, never skip, when a server is missing: run
//! `tests/pg-versions.sh start 12 13 14 16 17 18 replica` first.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use sqlx::postgres::PgConnection;
use sqlx::Connection;

mod common;

use common::pg_servers::{port_of, servers, MAJORS, REPLICA};

async fn connect(user: &str, port: u16) -> PgConnection {
    let password = if user == "dbintel_monitor" { "monitor-secret-pw" } else { "super-secret-pw" };
    let url = format!("postgres://{user}:{password}@127.0.0.1:{port}/dbintel_test");
    PgConnection::connect(&url).await.unwrap_or_else(|e| panic!("connect as {user} to 127.0.0.1:{port}: {e}"))
}

async fn text(conn: &mut PgConnection, sql: &str) -> String {
    let (value,): (String,) =
        sqlx::query_as(sqlx::AssertSqlSafe(sql.to_string())).fetch_one(conn).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
    value
}

#[tokio::test]
async fn every_major_answers_as_itself_with_readable_statement_statistics() {
    let servers = servers();
    for major in MAJORS {
        let port = port_of(&servers, &major.to_string());
        let mut admin = connect("postgres", port).await;
        let version: u32 = text(&mut admin, "SELECT current_setting('server_version_num')").await.parse().expect("server_version_num");
        assert_eq!(version / 10000, major, "port {port} runs {version}");

        // A statement of its own, run by the superuser, that the monitoring
        // role must then see with its text (pg_monitor includes
        // pg_read_all_stats; without it the text reads <insufficient privilege>).
        let marker = format!("pg_versions_marker_{major}");
        let sql = format!("SELECT 1 AS {marker}");
        sqlx::query(sqlx::AssertSqlSafe(sql)).execute(&mut admin).await.expect("marker runs");

        let mut monitor = connect("dbintel_monitor", port).await;
        assert_eq!(text(&mut monitor, "SELECT current_user::text").await, "dbintel_monitor", "PostgreSQL {major} on :{port}");
        let (rows,): (i64,) = sqlx::query_as("SELECT count(*) FROM pg_stat_statements")
            .fetch_one(&mut monitor)
            .await
            .expect("pg_stat_statements as the monitor");
        assert!(rows > 0, "PostgreSQL {major}: pg_stat_statements is empty");
        let seen: Vec<(String, i64)> = sqlx::query_as(
            "SELECT s.query, s.calls FROM pg_stat_statements s JOIN pg_roles r ON r.oid = s.userid \
             WHERE r.rolname = 'postgres' AND s.query LIKE '%' || $1 || '%' AND s.query NOT LIKE '%pg_stat_statements%'",
        )
        .bind(&marker)
        .fetch_all(&mut monitor)
        .await
        .expect("the marker's statistics");
        assert!(
            seen.iter().any(|(query, calls)| query.contains(&marker) && *calls >= 1),
            "PostgreSQL {major}: the monitor does not see the superuser's statement with its text: {seen:?}"
        );
    }
}

/// The columns each version's views have, as versions.md records them:
/// collectors choose their queries by these.
#[tokio::test]
async fn catalogue_columns_change_where_versions_md_says() {
    let servers = servers();
    for major in MAJORS {
        let port = port_of(&servers, &major.to_string());
        let mut monitor = connect("dbintel_monitor", port).await;
        let columns: Vec<(String,)> = sqlx::query_as(
            "SELECT c.relname || '.' || a.attname FROM pg_class c JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 \
             WHERE c.relname IN ('pg_stat_statements', 'pg_stat_bgwriter', 'pg_stat_checkpointer', 'pg_stat_io', 'pg_stat_wal', \
             'pg_stat_statements_info', 'pg_stat_database', 'pg_stat_activity')",
        )
        .fetch_all(&mut monitor)
        .await
        .expect("catalogue columns");
        let have: BTreeSet<String> = columns.into_iter().map(|(c,)| c).collect();
        let expect = |column: &str, from: u32, until: Option<u32>| {
            let should = major >= from && until.is_none_or(|last| major <= last);
            assert_eq!(have.contains(column), should, "PostgreSQL {major}: {column} present = {}", have.contains(column));
        };
        expect("pg_stat_statements.total_time", 0, Some(12));
        expect("pg_stat_statements.total_exec_time", 13, None);
        expect("pg_stat_statements.wal_bytes", 13, None);
        expect("pg_stat_statements.toplevel", 14, None);
        expect("pg_stat_statements_info.stats_reset", 14, None);
        expect("pg_stat_activity.query_id", 14, None);
        expect("pg_stat_database.session_time", 14, None);
        expect("pg_stat_wal.wal_bytes", 14, None);
        expect("pg_stat_wal.wal_write", 14, Some(17));
        expect("pg_stat_statements.temp_blk_read_time", 15, None);
        expect("pg_stat_io.reads", 16, None);
        expect("pg_stat_io.op_bytes", 16, Some(17));
        expect("pg_stat_statements.blk_read_time", 0, Some(16));
        expect("pg_stat_statements.shared_blk_read_time", 17, None);
        expect("pg_stat_statements.stats_since", 17, None);
        expect("pg_stat_bgwriter.checkpoints_timed", 0, Some(16));
        expect("pg_stat_bgwriter.buffers_backend", 0, Some(16));
        expect("pg_stat_bgwriter.buffers_clean", 0, None);
        expect("pg_stat_checkpointer.num_timed", 17, None);
        expect("pg_stat_checkpointer.num_done", 18, None);
        expect("pg_stat_statements.parallel_workers_launched", 18, None);
    }
}

#[tokio::test]
async fn the_replica_streams_from_the_shared_server() {
    let servers = servers();
    let port = port_of(&servers, REPLICA);
    let mut replica = connect("dbintel_monitor", port).await;
    let version: u32 = text(&mut replica, "SELECT current_setting('server_version_num')").await.parse().expect("server_version_num");
    assert_eq!(version / 10000, 15, "the replica runs {version}");
    assert_eq!(text(&mut replica, "SELECT pg_is_in_recovery()::text").await, "true", "the replica is not in recovery");
    assert_eq!(
        text(&mut replica, "SELECT coalesce((SELECT status FROM pg_stat_wal_receiver), 'none')").await,
        "streaming",
        "the replica's WAL receiver on :{port}"
    );

    // The primary lists it, with the lag columns the replication metrics
    // read, to the monitoring role.
    let mut primary = connect("dbintel_monitor", 5432).await;
    let standbys: Vec<(String, String, Option<String>)> =
        sqlx::query_as("SELECT usename::text, state, replay_lsn::text FROM pg_stat_replication WHERE usename = 'dbintel_replica'")
            .fetch_all(&mut primary)
            .await
            .expect("pg_stat_replication on :5432");
    assert!(
        standbys.iter().any(|(_, state, replay)| state == "streaming" && replay.is_some()),
        "the primary does not show the replica streaming: {standbys:?}"
    );

    // And it replays: WAL the primary has written reaches the replica.
    let target = text(&mut primary, "SELECT pg_current_wal_lsn()::text").await;
    let started = Instant::now();
    loop {
        let caught_up: (bool,) = sqlx::query_as("SELECT pg_last_wal_replay_lsn() >= $1::pg_lsn")
            .bind(&target)
            .fetch_one(&mut replica)
            .await
            .expect("replay position");
        if caught_up.0 {
            break;
        }
        if started.elapsed() > Duration::from_secs(30) {
            let at = text(
                &mut replica,
                "SELECT coalesce(pg_last_wal_replay_lsn()::text, 'none') || ' (paused: ' || pg_is_wal_replay_paused() || ')'",
            )
            .await;
            panic!("the replica did not replay up to {target} in 30 s; it is at {at}");
        }

        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
