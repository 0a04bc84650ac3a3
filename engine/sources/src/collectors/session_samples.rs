//! One sample of the server's sessions, and each session of it as a
//! `db.server.query_sample` event in New Relic's Database 360 shape (see
//! `db360.rs`): what it runs, what it waits on, who blocks it, the APM
//! trace it belongs to.
//!
//! The sample is bounded on the server, not after the rows arrive:
//! - at most `max_sessions` rows leave the server — lock waiters first,
//!   then active sessions, then (PostgreSQL) idle-in-transaction ones,
//!   each longest-running first — and the number of active sessions beyond
//!   them comes along (`active_total`), so Average Active Sessions stays
//!   exact (the rest counts as `other`);
//! - PostgreSQL: `pg_blocking_pids()` (which takes every lock-manager
//!   partition lock) runs only for lock waiters, at most
//!   [`MAX_BLOCKING_LOOKUPS`] of them; the waited-for lock's details come
//!   from one pass over `pg_locks` for all of them, and only when the
//!   samples leave as events;
//! - MySQL / MariaDB: statement text is cut in the query
//!   ([`MY_SAMPLE_TEXT_CHARS`]); blockers come from
//!   `performance_schema.data_lock_waits` (MySQL 8) or
//!   `information_schema.INNODB_LOCK_WAITS` (MariaDB), grouped per waiter;
//!   each thread's latest wait from one grouped pass over
//!   `events_waits_current`; a primary's binlog dump threads and a
//!   replica's `system user` threads are not application sessions.
//!
//! Idle-in-transaction sessions (PostgreSQL) are sampled too: they hold
//! locks and are often what blocks the others. They never count as active.

use dbintel_core::record::{LogRecord, Record};
use dbintel_stdlib::{Map, Value};

use crate::mysql::MyServer;
use crate::rows::{integer, number, Row};
use crate::target::Engine;

/// Lock waiters whose blockers are looked up per sample, at most.
pub const MAX_BLOCKING_LOOKUPS: usize = 100;

/// Statement text read per session in a MySQL sample, at most (a bulk
/// load's `PROCESSLIST_INFO` can be megabytes, every second).
pub const MY_SAMPLE_TEXT_CHARS: usize = 4096;

/// `YYYY-MM-DDTHH:MM:SSZ` of a `timestamptz` expression, in UTC.
fn utc(expr: &str) -> String {
    format!("to_char({expr} AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')")
}

/// The PostgreSQL sample for a server version. `with_details`: the
/// columns the events need (statement text, client, timings, the lock
/// waited for); without them only what AAS needs is read.
pub fn pg_sample_sql(version: i64, with_details: bool, max_sessions: usize) -> String {
    let query_id = if version >= 140000 { "a.query_id::text" } else { "NULL::text" };
    let details = if with_details {
        format!(
            "a.query, a.application_name, a.client_addr::text AS client_addr, a.client_port, a.client_hostname,
             a.query_start::text AS query_start, {backend_start} AS backend_start,
             extract(epoch FROM clock_timestamp() - a.backend_start)::int8 AS session_duration,
             (CASE WHEN a.state = 'active' THEN extract(epoch FROM clock_timestamp() - a.query_start)
                   ELSE extract(epoch FROM a.state_change - a.query_start) END * 1000)::float8 AS duration_ms,
             {xact_start} AS xact_start",
            backend_start = utc("a.backend_start"),
            xact_start = utc("a.xact_start"),
        )
    } else {
        "NULL::text AS query".to_string()
    };
    // the lock each waiter waits for: one pass over pg_locks (its oldest
    // ungranted lock; `waitstart` from 14)
    let (lock_columns, lock_join) = if with_details {
        let (waitstart, order) =
            if version >= 140000 { ("l.waitstart", "l.pid, l.waitstart NULLS LAST") } else { ("NULL::timestamptz", "l.pid") };
        (
            format!(
                ", w.mode AS lock_mode, w.locktype AS lock_type, w.relname AS lock_relation, {} AS lock_wait_start,
                 extract(epoch FROM clock_timestamp() - w.waitstart)::int8 AS lock_wait_seconds",
                utc("w.waitstart")
            ),
            format!(
                " LEFT JOIN (SELECT DISTINCT ON (l.pid) l.pid, l.mode, l.locktype, c.relname::text AS relname, {waitstart} AS waitstart
                               FROM pg_locks l LEFT JOIN pg_class c ON c.oid = l.relation
                              WHERE NOT l.granted ORDER BY {order}) w ON w.pid = s.pid AND s.lock_rank <= {MAX_BLOCKING_LOOKUPS}"
            ),
        )
    } else {
        (String::new(), String::new())
    };
    format!(
        "WITH s AS (
           SELECT a.pid, a.datname::text AS datname, a.usename::text AS usename, a.state, a.wait_event_type, a.wait_event,
                  {query_id} AS query_id, {details},
                  count(*) FILTER (WHERE a.state = 'active') OVER () AS active_total,
                  row_number() OVER (ORDER BY (a.wait_event_type IS NOT DISTINCT FROM 'Lock') DESC, (a.state = 'active') DESC,
                                              a.query_start) AS rank,
                  CASE WHEN a.wait_event_type = 'Lock'
                       THEN row_number() OVER (PARTITION BY a.wait_event_type = 'Lock' ORDER BY a.query_start) END AS lock_rank
             FROM pg_stat_activity a
            WHERE a.pid <> pg_backend_pid() AND a.backend_type = 'client backend'
              AND (a.state = 'active' OR a.state LIKE 'idle in transaction%')
         )
         SELECT s.*,
                CASE WHEN s.wait_event_type = 'Lock' AND s.lock_rank <= {MAX_BLOCKING_LOOKUPS}
                     THEN pg_blocking_pids(s.pid)::text END AS blocking{lock_columns}
           FROM s{lock_join}
          WHERE s.rank <= {max_sessions}"
    )
}

/// The MariaDB/MySQL sample. Columns shared with PostgreSQL's feed Average
/// Active Sessions (`pid`, `datname`, `usename`, `state`,
/// `wait_event_type`, `wait_event`, `blocking`); the others the events.
pub fn my_sample_sql(server: MyServer, with_details: bool, max_sessions: usize) -> String {
    my_sample_sql_from(server, with_details, "performance_schema", max_sessions)
}

/// [`my_sample_sql`] reading performance_schema's tables from `schema`
/// (tests run the MySQL 8 form against look-alike tables in MariaDB).
pub fn my_sample_sql_from(server: MyServer, with_details: bool, schema: &str, max_sessions: usize) -> String {
    let mysql8 = !server.mariadb && server.version >= 80000;
    // waiter processlist id -> blockers as `thread:session` pairs, and the
    // sessions alone for AAS
    let blockers = if mysql8 {
        format!(
            "SELECT wt.PROCESSLIST_ID AS waiting,
                    GROUP_CONCAT(DISTINCT CONCAT(lw.BLOCKING_THREAD_ID, ':', COALESCE(bt.PROCESSLIST_ID, ''))) AS pairs,
                    GROUP_CONCAT(DISTINCT bt.PROCESSLIST_ID) AS sessions
               FROM {schema}.data_lock_waits lw
               JOIN {schema}.threads wt ON wt.THREAD_ID = lw.REQUESTING_THREAD_ID
               LEFT JOIN {schema}.threads bt ON bt.THREAD_ID = lw.BLOCKING_THREAD_ID
              GROUP BY wt.PROCESSLIST_ID"
        )
    } else {
        format!(
            "SELECT r.trx_mysql_thread_id AS waiting,
                    GROUP_CONCAT(DISTINCT CONCAT(COALESCE(bt.THREAD_ID, ''), ':', h.trx_mysql_thread_id)) AS pairs,
                    GROUP_CONCAT(DISTINCT h.trx_mysql_thread_id) AS sessions
               FROM information_schema.INNODB_LOCK_WAITS lw
               JOIN information_schema.INNODB_TRX r ON r.trx_id = lw.requesting_trx_id
               JOIN information_schema.INNODB_TRX h ON h.trx_id = lw.blocking_trx_id
               LEFT JOIN {schema}.threads bt ON bt.PROCESSLIST_ID = h.trx_mysql_thread_id
              GROUP BY r.trx_mysql_thread_id"
        )
    };
    let details = if with_details {
        // MySQL 8.0.22+ has the client's port in its processlist table
        let host = if mysql8 && server.version >= 80022 {
            format!("(SELECT p.HOST FROM {schema}.processlist p WHERE p.ID = t.PROCESSLIST_ID)")
        } else {
            "NULL".to_string()
        };
        format!(
            "LEFT(COALESCE(st.SQL_TEXT, t.PROCESSLIST_INFO), {MY_SAMPLE_TEXT_CHARS}) AS query,
             LEFT(st.DIGEST_TEXT, {MY_SAMPLE_TEXT_CHARS}) AS digest_text, st.DIGEST AS digest,
             t.THREAD_ID AS thread_id, t.PROCESSLIST_STATE AS processlist_state, t.PROCESSLIST_HOST AS client_host,
             {host} AS client_host_port,
             w.EVENT_NAME AS wait_name, w.EVENT_ID AS wait_event_id, w.END_EVENT_ID AS wait_end_event_id,
             w.TIMER_WAIT / 1e12 AS wait_seconds,
             st.EVENT_ID AS statement_event_id, st.TIMER_WAIT / 1e12 AS statement_seconds, st.TIMER_START AS statement_timer_start,
             (SELECT CONVERT(u.VARIABLE_VALUE USING utf8mb4) FROM {schema}.user_variables_by_thread u
               WHERE u.THREAD_ID = t.THREAD_ID AND u.VARIABLE_NAME = 'traceparent' LIMIT 1) AS traceparent,
             (SELECT c.ATTR_VALUE FROM {schema}.session_connect_attrs c
               WHERE c.PROCESSLIST_ID = t.PROCESSLIST_ID AND c.ATTR_NAME = '_client_name' LIMIT 1) AS client_name,
             b.pairs AS blockers,"
        )
    } else {
        "NULL AS query, t.THREAD_ID AS thread_id,".to_string()
    };
    let statements = if with_details {
        format!(" LEFT JOIN {schema}.events_statements_current st ON st.THREAD_ID = t.THREAD_ID")
    } else {
        String::new()
    };
    // waiters first, then the longest-running; ORDER BY names select-list
    // aliases because MariaDB, with a window function in the query, sorts a
    // temporary table that holds only the selected columns
    format!(
        "SELECT t.PROCESSLIST_ID AS pid, t.PROCESSLIST_DB AS datname, t.PROCESSLIST_USER AS usename,
                t.PROCESSLIST_COMMAND AS state, t.PROCESSLIST_TIME AS processlist_time, {details}
                CASE WHEN b.sessions IS NOT NULL THEN 'Lock'
                     WHEN w.EVENT_NAME IS NULL OR w.END_EVENT_ID IS NOT NULL THEN NULL
                     ELSE SUBSTRING_INDEX(SUBSTRING_INDEX(w.EVENT_NAME, '/', 2), '/', -1) END AS wait_event_type,
                CASE WHEN b.sessions IS NOT NULL THEN 'row lock'
                     WHEN w.END_EVENT_ID IS NULL THEN w.EVENT_NAME END AS wait_event,
                NULL AS query_id, b.sessions AS blocking, COUNT(*) OVER () AS active_total
           FROM {schema}.threads t
           LEFT JOIN (SELECT x.THREAD_ID, MAX(x.EVENT_ID) AS EVENT_ID FROM {schema}.events_waits_current x GROUP BY x.THREAD_ID) lw
                  ON lw.THREAD_ID = t.THREAD_ID
           LEFT JOIN {schema}.events_waits_current w ON w.THREAD_ID = lw.THREAD_ID AND w.EVENT_ID = lw.EVENT_ID{statements}
           LEFT JOIN ({blockers}) b ON b.waiting = t.PROCESSLIST_ID
          WHERE t.TYPE = 'FOREGROUND'
            AND t.PROCESSLIST_COMMAND NOT IN ('Sleep', 'Daemon', 'Binlog Dump', 'Binlog Dump GTID', 'Killed')
            AND COALESCE(t.PROCESSLIST_USER, '') <> 'system user'
            AND t.PROCESSLIST_ID <> CONNECTION_ID()
          ORDER BY blocking IS NULL, processlist_time DESC
          LIMIT {max_sessions}"
    )
}

fn text(row: &Row, column: &str) -> Option<String> {
    match row.get(column) {
        None | Some(Value::Nil) => None,
        Some(v) => Some(v.to_string()),
    }
}

fn string(row: &Row, column: &str) -> Value {
    Value::Str(text(row, column).unwrap_or_default())
}

/// The sessions of one sample as `db.server.query_sample` events.
/// `comment_keys`: the comment tag keys the source allows.
pub fn sample_logs(engine: Engine, server: Option<ServerFlavor>, sessions: &[Row], now: u64, comment_keys: &[String]) -> Vec<Record> {
    sessions
        .iter()
        .map(|row| {
            let mut attributes = Map::with_capacity(40);
            let trace = match engine {
                Engine::Postgres => {
                    pg_sample(&mut attributes, row, server.map_or(140000, |s| s.version));
                    crate::apm::trace_context(text(row, "application_name").as_deref())
                }
                Engine::MySql => {
                    my_sample(&mut attributes, row, server.is_some_and(|s| !s.mariadb && s.version >= 80022));
                    crate::apm::trace_context(text(row, "traceparent").as_deref())
                }
            };
            // APM correlation: the hash of the statement that leaves, the
            // tags of the statement as the client sent it
            let sent = attributes.get("db.query.text").and_then(Value::as_str).map(str::to_string);
            let raw = text(row, "query");
            crate::apm::insert_hash(&mut attributes, engine, sent.as_deref().filter(|t| !t.is_empty()));
            crate::apm::insert_tags(&mut attributes, raw.map(|r| crate::apm::tags(&r, comment_keys)).unwrap_or_default());
            // dbintel's own names, shared with Average Active Sessions
            let class = text(row, "wait_event_type");
            let event = if class.is_some() { text(row, "wait_event").unwrap_or_default() } else { "CPU".into() };
            attributes.insert("db.session.id", row.get("pid").cloned().unwrap_or_default());
            attributes.insert("db.wait.class", Value::Str(class.unwrap_or_else(|| "CPU".into())));
            attributes.insert("db.wait.event", Value::Str(event));
            if let Some(id) = text(row, "query_id") {
                attributes.insert("db.query.id", Value::Str(id));
            }
            if let Some(user) = text(row, "usename") {
                attributes.insert("db.user", Value::Str(user));
            }
            let (trace_id, span_id) = trace.unwrap_or_default();
            Record::Log(LogRecord {
                time_unix_nano: now,
                observed_time_unix_nano: now,
                severity_number: 9,
                severity_text: "INFO".into(),
                event_name: "db.server.query_sample".into(),
                body: Value::Nil,
                attributes,
                trace_id,
                span_id,
            })
        })
        .collect()
}

/// What the sample's shape depends on.
#[derive(Debug, Clone, Copy)]
pub struct ServerFlavor {
    pub mariadb: bool,
    pub version: i64,
}

fn pg_sample(a: &mut Map, row: &Row, version: i64) {
    a.insert("db.system.name", Value::Str("postgresql".into()));
    a.insert("db.namespace", string(row, "datname"));
    a.insert("db.query.text", string(row, "query"));
    a.insert("user.name", string(row, "usename"));
    a.insert("postgresql.state", string(row, "state"));
    a.insert("postgresql.pid", Value::Int(integer(row, "pid").unwrap_or(0)));
    a.insert("postgresql.backend.connection.start", string(row, "backend_start"));
    a.insert("postgresql.session.duration", Value::Int(integer(row, "session_duration").unwrap_or(0)));
    a.insert("postgresql.application_name", string(row, "application_name"));
    a.insert("network.peer.address", string(row, "client_addr"));
    a.insert("network.peer.port", Value::Int(integer(row, "client_port").unwrap_or(0)));
    a.insert("postgresql.client_hostname", string(row, "client_hostname"));
    a.insert("postgresql.query_start", string(row, "query_start"));
    a.insert("postgresql.wait_event", string(row, "wait_event"));
    a.insert("postgresql.wait_event_type", string(row, "wait_event_type"));
    if version >= 140000 {
        a.insert("postgresql.query_id", string(row, "query_id"));
    }
    a.insert("postgresql.total_exec_time", Value::Double(number(row, "duration_ms").unwrap_or(0.0)));
    let blockers = text(row, "blocking").unwrap_or_else(|| "{}".into());
    a.insert("postgresql.blocking.pids", Value::Str(blockers));
    if version >= 140000 {
        a.insert("postgresql.blocking.start_time", string(row, "lock_wait_start"));
        a.insert("postgresql.blocking.wait_duration", Value::Int(integer(row, "lock_wait_seconds").unwrap_or(0)));
    }
    a.insert("postgresql.blocking.lock.mode", string(row, "lock_mode"));
    a.insert("postgresql.blocking.lock.type", string(row, "lock_type"));
    a.insert("postgresql.blocking.lock.relation", string(row, "lock_relation"));
    a.insert("postgresql.blocking.transaction.start_time", string(row, "xact_start"));
}

/// `host` or `host:port` (MySQL's processlist writes the port after the
/// host; an IPv6 host has colons of its own).
fn split_host_port(host: &str) -> (String, Option<i64>) {
    match host.rsplit_once(':') {
        Some((h, p)) if !h.is_empty() && p.chars().all(|c| c.is_ascii_digit()) && !p.is_empty() => {
            (h.trim_matches(['[', ']']).to_string(), p.parse().ok())
        }
        _ => (host.to_string(), None),
    }
}

/// `[{"thread_id":N,"session_id":N|null},…]` from `thread:session` pairs.
fn blockers_json(pairs: Option<&str>) -> (String, i64) {
    let items: Vec<String> = pairs
        .unwrap_or_default()
        .split(',')
        .filter(|p| !p.is_empty())
        .filter_map(|pair| {
            let (thread, session) = pair.split_once(':')?;
            let number = |s: &str| s.trim().parse::<i64>().ok().map_or("null".to_string(), |n| n.to_string());
            Some(format!(r#"{{"thread_id":{},"session_id":{}}}"#, number(thread), number(session)))
        })
        .collect();
    let count = items.len() as i64;
    (format!("[{}]", items.join(",")), count)
}

fn my_sample(a: &mut Map, row: &Row, has_port: bool) {
    let waiting = row.get("wait_name").is_some_and(|v| !v.is_nil()) && row.get("wait_end_event_id").is_none_or(Value::is_nil);
    let running = !waiting && text(row, "query").is_some_and(|q| !q.is_empty());
    let user_sleep = text(row, "processlist_state").as_deref() == Some("User sleep");
    let wait_name = text(row, "wait_name");
    let segment = wait_name.as_deref().and_then(|n| n.split('/').nth(1)).unwrap_or("other").to_string();
    let without_class = wait_name.as_deref().map(|n| n.splitn(3, '/').nth(2).unwrap_or(n).to_string()).unwrap_or_default();
    let (wait_event_type, wait_event) = match (waiting, running, user_sleep) {
        (true, _, true) => ("User sleep".to_string(), "User sleep".to_string()),
        (true, _, false) => (segment.clone(), without_class),
        (false, true, _) => ("CPU".into(), "CPU".into()),
        _ => ("other".into(), "other".into()),
    };
    let wait_type = match (&wait_name, row.get("wait_end_event_id").is_some_and(|v| !v.is_nil())) {
        (None, _) => "other".to_string(),
        (Some(_), _) if user_sleep => "User sleep".into(),
        (Some(_), true) => "CPU".into(),
        (Some(name), false) => name.clone(),
    };
    let status = if waiting {
        "waiting"
    } else if running {
        "running"
    } else {
        "other"
    };
    // a wait longer than it can plausibly be is a stale timer, as New
    // Relic's collector treats it: io/synch/other over a minute, a lock
    // over a day
    let mut wait_seconds = number(row, "wait_seconds").unwrap_or(0.0);
    let limit = if segment == "lock" { 86_400.0 } else { 60.0 };
    if !wait_seconds.is_finite() || wait_seconds > limit || wait_seconds < 0.0 {
        wait_seconds = 0.0;
    }
    let statement_seconds = number(row, "statement_seconds").or_else(|| number(row, "processlist_time")).unwrap_or(0.0);
    let sent = text(row, "digest_text").filter(|t| !t.is_empty()).or_else(|| text(row, "query")).unwrap_or_default();
    a.insert("db.system.name", Value::Str("mysql".into()));
    a.insert("mysql.threads.thread_id", Value::Int(integer(row, "thread_id").unwrap_or(0)));
    a.insert("user.name", string(row, "usename"));
    a.insert("db.namespace", string(row, "datname"));
    a.insert("mysql.threads.processlist_command", string(row, "state"));
    a.insert("mysql.threads.processlist_state", string(row, "processlist_state"));
    a.insert("db.query.text", Value::Str(sent));
    a.insert("mysql.events_statements_current.digest", string(row, "digest"));
    a.insert("mysql.query_plan.hash", Value::Str(String::new()));
    let event_id = integer(row, "wait_event_id").or_else(|| integer(row, "statement_event_id")).unwrap_or(0);
    a.insert("mysql.event_id", Value::Int(event_id));
    a.insert("mysql.wait_event_type", Value::Str(wait_event_type));
    a.insert("mysql.wait_event", Value::Str(wait_event));
    a.insert("mysql.wait_type", Value::Str(wait_type));
    a.insert("mysql.session.status", Value::Str(status.into()));
    a.insert("mysql.session.id", Value::Int(integer(row, "pid").unwrap_or(0)));
    a.insert("mysql.events_statements_current.timer_wait", Value::Double(statement_seconds));
    a.insert("mysql.events_waits_current.timer_wait", Value::Double(wait_seconds));
    let (address, port) = match text(row, "client_host_port") {
        Some(hp) => split_host_port(&hp),
        None => (text(row, "client_host").unwrap_or_default(), None),
    };
    a.insert("client.address", Value::Str(address.clone()));
    a.insert("network.peer.address", Value::Str(address));
    if has_port {
        a.insert("client.port", Value::Int(port.unwrap_or(0)));
        a.insert("network.peer.port", Value::Int(port.unwrap_or(0)));
    }
    a.insert("mysql.events_statements_current.timer_start", Value::Int(integer(row, "statement_timer_start").unwrap_or(0)));
    a.insert("mysql.client.name", string(row, "client_name"));
    let (blockers, count) = blockers_json(text(row, "blockers").as_deref());
    a.insert("mysql.blocking.blockers", Value::Str(blockers));
    a.insert("mysql.blocking.blocker.count", Value::Int(count));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blockers_become_new_relics_json_and_count() {
        assert_eq!(
            blockers_json(Some("102:9002,103:")),
            (r#"[{"thread_id":102,"session_id":9002},{"thread_id":103,"session_id":null}]"#.into(), 2)
        );
        assert_eq!(blockers_json(None), ("[]".into(), 0));
    }

    #[test]
    fn a_processlist_host_splits_into_address_and_port() {
        assert_eq!(split_host_port("10.0.0.7:53124"), ("10.0.0.7".into(), Some(53124)));
        assert_eq!(split_host_port("app.internal"), ("app.internal".into(), None));
        assert_eq!(split_host_port("[::1]:4000"), ("::1".into(), Some(4000)));
        assert_eq!(split_host_port("localhost"), ("localhost".into(), None));
    }
}
