//! What the log sources (`postgres_logs`, `mysql_logs`, in the
//! `dbintel-logs` crate) emit, declared here with every collector's
//! declaration so the catalogue (the README's tables, the conformance
//! checks) lists them; the log mapping builds every point from these, so
//! names, units and instruments cannot drift. Data only: the file tailer
//! lives in `dbintel-logs`.
//!
//! Attribute names follow OpenTelemetry's where one exists
//! (`db.response.status_code` for SQLSTATE and MySQL error codes,
//! `db.query.text`, `db.namespace`, `log.file.name`) and dbintel's own
//! otherwise (`db.log.detail`, `db.lock.*`, `postgresql.vacuum.*`).

use crate::catalogue::{attr, Attr, Declaration, Event, Instrument, Level, Metric, Origin};
use crate::target::Engine;

const fn delta(name: &'static str, unit: &'static str, description: &'static str, attributes: &'static [Attr]) -> Metric {
    Metric {
        name,
        unit,
        instrument: Instrument::DeltaCounter,
        double: false,
        level: Level::Instance,
        attributes,
        origin: Origin::Dbintel,
        description,
    }
}

const fn delta_double(name: &'static str, unit: &'static str, description: &'static str, attributes: &'static [Attr]) -> Metric {
    Metric { double: true, ..delta(name, unit, description, attributes) }
}

const fn on_table(m: Metric) -> Metric {
    Metric { level: Level::Table, ..m }
}

pub const SEVERITIES: &[&str] = &["WARNING", "ERROR", "FATAL", "PANIC"];
pub const CANCEL_REASONS: &[&str] = &[
    "statement_timeout",
    "lock_timeout",
    "user_request",
    "recovery_conflict",
    "autovacuum",
    "idle_in_transaction_timeout",
    "idle_session_timeout",
    "transaction_timeout",
    "other",
];
pub const CONNECTION_REASONS: &[&str] = &[
    "authentication_failed",
    "no_hba_entry",
    "hba_reject",
    "role_does_not_exist",
    "role_cannot_login",
    "database_does_not_exist",
    "too_many_connections",
    "server_not_ready",
];

// ---- PostgreSQL ----

pub const PG_ERRORS: Metric = delta(
    "postgresql.log.errors",
    "{entry}",
    "log entries at WARNING or above (min_severity), by SQLSTATE, severity and database",
    &[attr("db.response.status_code", &[]), attr("severity", SEVERITIES), attr("db.namespace", &[])],
);
pub const PG_CANCELLATIONS: Metric = delta(
    "postgresql.log.cancellations",
    "{statement}",
    "statements cancelled and sessions ended by a timeout, by reason",
    &[attr("reason", CANCEL_REASONS), attr("db.namespace", &[])],
);
pub const PG_DEADLOCKS: Metric =
    delta("postgresql.log.deadlocks", "{deadlock}", "deadlocks the server broke (40P01)", &[attr("db.namespace", &[])]);
pub const PG_LOCK_WAITS: Metric = delta(
    "postgresql.log.lock_waits",
    "{wait}",
    "lock waits longer than deadlock_timeout (log_lock_waits), by lock mode and object",
    &[attr("db.lock.mode", &[]), attr("db.lock.object", &[])],
);
pub const PG_LOCK_WAIT_TIME: Metric = delta_double(
    "postgresql.log.lock_wait.duration",
    "ms",
    "time waited for locks that were then acquired, by lock mode and object",
    &[attr("db.lock.mode", &[]), attr("db.lock.object", &[])],
);
pub const PG_TEMP_FILES: Metric =
    delta("postgresql.log.temp_files", "{file}", "temporary files written (log_temp_files)", &[attr("db.namespace", &[])]);
pub const PG_TEMP_BYTES: Metric =
    delta("postgresql.log.temp_files.size", "By", "bytes of the temporary files written", &[attr("db.namespace", &[])]);
pub const PG_VACUUM_RUNS: Metric = on_table(delta(
    "postgresql.log.autovacuum.runs",
    "{run}",
    "autovacuum and autoanalyze runs per table (log_autovacuum_min_duration)",
    &[attr("kind", &["vacuum", "analyze"])],
));
pub const PG_VACUUM_TIME: Metric = on_table(delta_double(
    "postgresql.log.autovacuum.duration",
    "s",
    "time autovacuum and autoanalyze took per table",
    &[attr("kind", &["vacuum", "analyze"])],
));
pub const PG_VACUUM_PAGES: Metric =
    on_table(delta("postgresql.log.autovacuum.pages_removed", "{page}", "pages autovacuum removed per table", &[]));
pub const PG_VACUUM_TUPLES: Metric =
    on_table(delta("postgresql.log.autovacuum.tuples_removed", "{tuple}", "dead tuples autovacuum removed per table", &[]));
pub const PG_VACUUM_DEAD: Metric = on_table(Metric {
    instrument: Instrument::Gauge,
    ..delta(
        "postgresql.log.autovacuum.dead_tuples",
        "{tuple}",
        "dead tuples autovacuum could not remove yet, at its last run per table",
        &[],
    )
});
pub const PG_CHECKPOINTS: Metric = delta(
    "postgresql.log.checkpoints",
    "{checkpoint}",
    "checkpoints and restartpoints completed (log_checkpoints)",
    &[attr("kind", &["checkpoint", "restartpoint"])],
);
pub const PG_CHECKPOINT_TIME: Metric = delta_double(
    "postgresql.log.checkpoint.duration",
    "s",
    "time checkpoints spent writing, syncing, and in all",
    &[attr("phase", &["write", "sync", "total"])],
);
pub const PG_CHECKPOINT_BUFFERS: Metric = delta("postgresql.log.checkpoint.buffers", "{buffer}", "buffers checkpoints wrote", &[]);
pub const PG_CHECKPOINT_DISTANCE: Metric =
    delta("postgresql.log.checkpoint.distance", "By", "WAL between consecutive checkpoints' redo points", &[]);
pub const PG_CONNECTION_FAILURES: Metric = delta(
    "postgresql.log.connection_failures",
    "{connection}",
    "connections refused: authentication, pg_hba.conf, unknown role or database, too many clients, not ready",
    &[attr("reason", CONNECTION_REASONS)],
);

const ERROR_ATTRIBUTES: &[&str] = &[
    "db.log.message",
    "db.response.status_code",
    "db.log.detail",
    "db.log.hint",
    "db.log.context",
    "db.query.text",
    "db.cancellation.reason",
    "db.query.id",
    "db.namespace",
    "db.user",
    "db.session.id",
    "postgresql.application_name",
    "postgresql.backend_type",
    "log.file.name",
];

pub const PG_ERROR_EVENT: Event = Event {
    name: "db.server.error",
    attributes: ERROR_ATTRIBUTES,
    db360: None,
    description: "an error or warning the server logged, with its parts; cancellations carry their reason",
};

const DEADLOCK_ATTRIBUTES: &[&str] = &[
    "db.log.message",
    "db.response.status_code",
    "db.log.detail",
    "db.query.text",
    "db.deadlock.other_query.text",
    "db.deadlock.session.ids",
    "db.query.id",
    "db.namespace",
    "db.user",
    "db.session.id",
    "postgresql.application_name",
    "postgresql.backend_type",
    "log.file.name",
];
const LOCK_WAIT_ATTRIBUTES: &[&str] = &[
    "db.lock.state",
    "db.lock.mode",
    "db.lock.object",
    "db.lock.wait_ms",
    "db.blocking.session.ids",
    "db.query.text",
    "db.query.id",
    "db.namespace",
    "db.user",
    "db.session.id",
    "postgresql.application_name",
    "postgresql.backend_type",
    "log.file.name",
];
const TEMP_FILE_ATTRIBUTES: &[&str] = &[
    "db.temp_file.size",
    "db.query.text",
    "db.query.id",
    "db.namespace",
    "db.user",
    "db.session.id",
    "postgresql.application_name",
    "postgresql.backend_type",
    "log.file.name",
];
const VACUUM_ATTRIBUTES: &[&str] = &[
    "postgresql.database.name",
    "postgresql.schema.name",
    "postgresql.table.name",
    "db.namespace",
    "postgresql.vacuum.kind",
    "postgresql.vacuum.aggressive",
    "postgresql.vacuum.wraparound",
    "postgresql.vacuum.index_scans",
    "postgresql.vacuum.pages_removed",
    "postgresql.vacuum.pages_remaining",
    "postgresql.vacuum.tuples_removed",
    "postgresql.vacuum.tuples_remaining",
    "postgresql.vacuum.dead_tuples",
    "postgresql.vacuum.wal_bytes",
    "postgresql.vacuum.elapsed",
    "log.file.name",
];
const CHECKPOINT_ATTRIBUTES: &[&str] = &[
    "postgresql.checkpoint.kind",
    "postgresql.checkpoint.reason",
    "postgresql.checkpoint.buffers",
    "postgresql.checkpoint.wal_added",
    "postgresql.checkpoint.wal_removed",
    "postgresql.checkpoint.wal_recycled",
    "postgresql.checkpoint.write_time",
    "postgresql.checkpoint.sync_time",
    "postgresql.checkpoint.total_time",
    "postgresql.checkpoint.sync_files",
    "postgresql.checkpoint.distance",
    "postgresql.checkpoint.estimate",
    "log.file.name",
];
const CONNECTION_ATTRIBUTES: &[&str] = &[
    "db.log.message",
    "db.response.status_code",
    "db.connection.failure_reason",
    "db.namespace",
    "db.user",
    "db.session.id",
    "postgresql.application_name",
    "log.file.name",
];
/// Beyond the attributes every `db.server.query_plan` carries (see the
/// `plans` collector): where the plan came from, how long the statement
/// ran, and its text.
const LOG_PLAN_ATTRIBUTES: &[&str] = &[
    "dbintel.plan.source",
    "db.query.duration_ms",
    "db.query.text",
    "db.query.id",
    "db.namespace",
    "db.query.plan",
    "db.plan.hash",
    "db.plan.previous_hash",
    "db.user",
    "db.session.id",
    "postgresql.application_name",
    "postgresql.backend_type",
    "log.file.name",
];

pub const PG_PLANS: Declaration = Declaration {
    collector: "postgres_logs.plans",
    engine: Engine::Postgres,
    metrics: &[],
    events: &[
        Event {
            name: "db.server.query_plan",
            attributes: LOG_PLAN_ATTRIBUTES,
            db360: Some(&crate::db360::PG_QUERY_PLAN),
            description: "the actual plan auto_explain logged, obfuscated, in the one plan shape (emit = event, the default here; emit = top_query puts it on the statement's top queries), dbintel.plan.source = log",
        },
        Event { name: "db.server.plan_change", attributes: LOG_PLAN_ATTRIBUTES, db360: None, description: "a statement's logged plan shape changed (compared with its last logged plan only)" },
    ],
};
pub const PG_ERRORS_DECLARATION: Declaration = Declaration {
    collector: "postgres_logs.errors",
    engine: Engine::Postgres,
    metrics: &[PG_ERRORS, PG_CANCELLATIONS],
    events: &[PG_ERROR_EVENT],
};
pub const PG_LOCKS: Declaration = Declaration {
    collector: "postgres_logs.locks",
    engine: Engine::Postgres,
    metrics: &[PG_DEADLOCKS, PG_LOCK_WAITS, PG_LOCK_WAIT_TIME],
    events: &[
        Event {
            name: "db.server.deadlock",
            attributes: DEADLOCK_ATTRIBUTES,
            db360: None,
            description: "a deadlock: the wait graph, this session's statement and the others'",
        },
        Event {
            name: "db.server.lock_wait",
            attributes: LOCK_WAIT_ATTRIBUTES,
            db360: None,
            description: "a lock wait past deadlock_timeout, and who held the lock",
        },
    ],
};
pub const PG_TEMP: Declaration = Declaration {
    collector: "postgres_logs.temp_files",
    engine: Engine::Postgres,
    metrics: &[PG_TEMP_FILES, PG_TEMP_BYTES],
    events: &[Event {
        name: "db.server.temp_file",
        attributes: TEMP_FILE_ATTRIBUTES,
        db360: None,
        description: "a temporary file and the statement that wrote it",
    }],
};
pub const PG_AUTOVACUUM: Declaration = Declaration {
    collector: "postgres_logs.autovacuum",
    engine: Engine::Postgres,
    metrics: &[PG_VACUUM_RUNS, PG_VACUUM_TIME, PG_VACUUM_PAGES, PG_VACUUM_TUPLES, PG_VACUUM_DEAD],
    events: &[Event {
        name: "db.server.autovacuum",
        attributes: VACUUM_ATTRIBUTES,
        db360: None,
        description: "one autovacuum or autoanalyze run of a table (naming it as the receiver does, and its database as db.namespace)",
    }],
};
pub const PG_CHECKPOINTS_DECLARATION: Declaration = Declaration {
    collector: "postgres_logs.checkpoints",
    engine: Engine::Postgres,
    metrics: &[PG_CHECKPOINTS, PG_CHECKPOINT_TIME, PG_CHECKPOINT_BUFFERS, PG_CHECKPOINT_DISTANCE],
    events: &[Event {
        name: "db.server.checkpoint",
        attributes: CHECKPOINT_ATTRIBUTES,
        db360: None,
        description: "one completed checkpoint or restartpoint (times in s, distance in bytes)",
    }],
};
pub const PG_CONNECTIONS: Declaration = Declaration {
    collector: "postgres_logs.connections",
    engine: Engine::Postgres,
    metrics: &[PG_CONNECTION_FAILURES],
    events: &[Event {
        name: "db.server.connection_failure",
        attributes: CONNECTION_ATTRIBUTES,
        db360: None,
        description: "a connection the server refused (never a password)",
    }],
};

// ---- MySQL / MariaDB ----

pub const MY_SLOW_CALLS: Metric = delta(
    "mysql.slow_query.calls",
    "{call}",
    "slow-log entries per statement fingerprint (the top by time; the rest as db.query.id = other)",
    &[attr("db.query.id", &[]), attr("db.namespace", &[])],
);
pub const MY_SLOW_TIME: Metric = delta_double(
    "mysql.slow_query.duration",
    "ms",
    "time of the slow-log entries per statement",
    &[attr("db.query.id", &[]), attr("db.namespace", &[])],
);
pub const MY_SLOW_LOCK: Metric = delta_double(
    "mysql.slow_query.lock_time",
    "ms",
    "lock time of the slow-log entries per statement",
    &[attr("db.query.id", &[]), attr("db.namespace", &[])],
);
pub const MY_SLOW_SENT: Metric = delta(
    "mysql.slow_query.rows_sent",
    "{row}",
    "rows sent by the slow-log entries per statement",
    &[attr("db.query.id", &[]), attr("db.namespace", &[])],
);
pub const MY_SLOW_EXAMINED: Metric = delta(
    "mysql.slow_query.rows_examined",
    "{row}",
    "rows examined by the slow-log entries per statement",
    &[attr("db.query.id", &[]), attr("db.namespace", &[])],
);
pub const MY_ERRORS: Metric = delta(
    "mysql.log.errors",
    "{entry}",
    "error-log entries at Warning or above, by severity and code (MySQL 8's MY-…)",
    &[attr("severity", &["error", "warning"]), attr("db.response.status_code", &[])],
);
pub const MY_CONNECTION_FAILURES: Metric = delta(
    "mysql.log.connection_failures",
    "{connection}",
    "refused logins and aborted connections the error log reports (log_warnings >= 2)",
    &[attr("reason", &["authentication_failed", "aborted_connection", "aborted_login"])],
);
pub const MY_DEADLOCKS: Metric = delta("mysql.log.deadlocks", "{deadlock}", "InnoDB deadlocks (innodb_print_all_deadlocks)", &[]);

pub const MY_SLOW: Declaration = Declaration {
    collector: "mysql_logs.slow_queries",
    engine: Engine::MySql,
    metrics: &[MY_SLOW_CALLS, MY_SLOW_TIME, MY_SLOW_LOCK, MY_SLOW_SENT, MY_SLOW_EXAMINED],
    events: &[Event {
        name: "db.server.slow_query",
        db360: None,
        attributes: &[
            "db.query.id",
            "db.namespace",
            "db.query.text",
            "db.user",
            "db.session.id",
            "db.query.duration_ms",
            "db.query.lock_time_ms",
            "db.query.rows_sent",
            "db.query.rows_examined",
            "db.query.rows_affected",
            "log.file.name",
        ],
        description: "the first slow-log entry of each statement fingerprint per interval, with its text",
    }],
};
pub const MY_ERRORS_DECLARATION: Declaration = Declaration {
    collector: "mysql_logs.errors",
    engine: Engine::MySql,
    metrics: &[MY_ERRORS, MY_CONNECTION_FAILURES, MY_DEADLOCKS],
    events: &[Event {
        name: "db.server.error",
        attributes: &["db.log.message", "db.response.status_code", "mysql.log.subsystem", "db.session.id", "log.file.name"],
        db360: None,
        description: "an error or warning the server logged (its first line; dumps that follow are dropped)",
    }],
};

/// Every log declaration, in the README's order.
pub const ALL: &[&Declaration] = &[
    &PG_PLANS,
    &PG_ERRORS_DECLARATION,
    &PG_LOCKS,
    &PG_TEMP,
    &PG_AUTOVACUUM,
    &PG_CHECKPOINTS_DECLARATION,
    &PG_CONNECTIONS,
    &MY_SLOW,
    &MY_ERRORS_DECLARATION,
];

/// A metric of the log declarations by name (the checkpoint stores names).
pub fn metric(name: &str) -> Option<&'static Metric> {
    ALL.iter().find_map(|d| d.metric(name))
}
