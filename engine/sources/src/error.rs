//! Why a source could not connect or scrape, classified by the database's
//! own codes — SQLSTATE for PostgreSQL, error numbers for MySQL/MariaDB —
//! never by matching message text.
//!
//! The class decides what happens next:
//! - [`ErrorClass::Distress`]: the database is struggling (timeouts, lock
//!   waits, too many connections, shutting down). Feeds the circuit
//!   breaker; the collector retries at its cadence.
//! - [`ErrorClass::Connection`]: no usable connection. Feeds the breaker,
//!   and the target reconnects with backoff.
//! - [`ErrorClass::Configuration`]: something only a person can fix (a
//!   privilege, a missing view or extension, a user's query's syntax).
//!   Never opens the breaker: that collector is marked failing, retried
//!   slowly and logged once per cause; the others carry on.
//! - [`ErrorClass::Other`]: anything else (a value a query could not
//!   convert…): counted, retried at the collector's cadence.
//!
//! Messages never carry a secret (passed through [`Secret::scrub`]) nor
//! raw SQL: a database message that quotes a statement or a value goes
//! through [`safe_message`] first.
//!
//! [`Secret::scrub`]: dbintel_core::secret::Secret::scrub

use std::time::Duration;

use dbintel_core::secret::Secret;
use dbintel_stdlib::sql::Dialect;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ErrorClass {
    Distress,
    Connection,
    Configuration,
    Other,
}

impl ErrorClass {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorClass::Distress => "distress",
            ErrorClass::Connection => "connection",
            ErrorClass::Configuration => "configuration",
            ErrorClass::Other => "other",
        }
    }

    /// Whether the circuit breaker counts it as a failure.
    pub fn feeds_breaker(self) -> bool {
        matches!(self, ErrorClass::Distress | ErrorClass::Connection)
    }
}

/// A PostgreSQL SQLSTATE's class.
pub fn classify_sqlstate(code: &str) -> ErrorClass {
    match code {
        // lock_not_available, deadlock, serialization failure
        "55P03" | "40P01" | "40001" => ErrorClass::Distress,
        // admin/crash shutdown, cannot connect now, database dropped
        "57P01" | "57P02" | "57P03" | "57P04" => ErrorClass::Connection,
        // query_canceled (statement_timeout), idle-in-transaction timeout
        "57014" | "25P03" => ErrorClass::Distress,
        // object not in prerequisite state (pg_stat_statements not in
        // shared_preload_libraries), undefined file (extension not installed)
        "55000" | "58P01" => ErrorClass::Configuration,
        // a statement that would write in our read-only session
        "25006" => ErrorClass::Configuration,
        _ => match code.get(..2) {
            Some("08") => ErrorClass::Connection,
            Some("53") | Some("57") | Some("58") | Some("XX") => ErrorClass::Distress,
            // syntax/access rule, feature not supported, invalid
            // authorization, invalid catalog/schema names
            Some("42") | Some("0A") | Some("28") | Some("3D") | Some("3F") => ErrorClass::Configuration,
            _ => ErrorClass::Other,
        },
    }
}

/// A MySQL/MariaDB error number's class.
pub fn classify_mysql(number: u16) -> ErrorClass {
    match number {
        // statement time limit (MySQL 3024, MariaDB 1969), lock wait
        // timeout, deadlock, query interrupted
        3024 | 1969 | 1205 | 1213 | 1317 => ErrorClass::Distress,
        // too many connections (server, per user), resource limits
        1040 | 1203 | 1226 => ErrorClass::Distress,
        // server shutting down, gone away, lost connection, connection
        // killed, cannot connect
        1053 | 1927 | 2002 | 2003 | 2005 | 2006 | 2013 | 2055 => ErrorClass::Connection,
        // access denied (database, user, table, column, privilege),
        // unknown database/table/column/function, syntax, read-only
        1044 | 1045 | 1142 | 1143 | 1227 | 1370 | 1049 | 1146 | 1109 | 1054 | 1305 | 1064 | 1149 | 1792 | 1290 => ErrorClass::Configuration,
        _ => ErrorClass::Other,
    }
}

/// Why a live source could not connect or scrape.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The source's settings cannot work (no DSN, a DSN that does not
    /// parse, a secret that cannot be read).
    #[error("source `{source_name}`: {message}")]
    Setup { source_name: String, message: String },
    /// The role may write or is a superuser, and the source did not allow it.
    #[error("source `{source_name}`: refused: {message}")]
    Privileged { source_name: String, message: String },
    /// Our own deadline passed: the query was cancelled.
    #[error("source `{source_name}`: {what} did not finish within {after:?}; cancelled")]
    Timeout { source_name: String, what: String, after: Duration },
    /// The database (or the driver) refused or failed.
    #[error("source `{source_name}`: {what} failed: {message}")]
    Database { source_name: String, what: String, class: ErrorClass, code: String, message: String },
    #[error("source `{source_name}`: {what} not sent: the circuit breaker is open ({why})")]
    BreakerOpen { source_name: String, what: String, why: String },
    /// A statement's plan was not obtained, and why (a refusal by the
    /// checks, a privilege, a consumer that is off): counted and shown,
    /// the scrape goes on.
    #[error("source `{source_name}`: plans: {reason}")]
    PlanSkipped { source_name: String, label: &'static str, class: ErrorClass, reason: String },
    /// Every session this process may open on the server is in use
    /// (`server_sessions`), and none was freed in time.
    #[error("source `{source_name}`: all {cap} sessions this process may hold on {server} are in use (server_sessions); none was free within {waited:?}")]
    NoSession { source_name: String, server: String, cap: u32, waited: Duration },
}

impl SourceError {
    pub fn class(&self) -> ErrorClass {
        match self {
            SourceError::Setup { .. } | SourceError::Privileged { .. } => ErrorClass::Configuration,
            SourceError::Timeout { .. } => ErrorClass::Distress,
            SourceError::Database { class, .. } => *class,
            SourceError::BreakerOpen { .. } => ErrorClass::Distress,
            // our own limit, not the server's distress: never the breaker
            SourceError::NoSession { .. } => ErrorClass::Other,
            SourceError::PlanSkipped { class, .. } => *class,
        }
    }

    /// The code status shows: SQLSTATE, MySQL error number or our word.
    pub fn code(&self) -> String {
        match self {
            SourceError::Setup { .. } => "setup".into(),
            SourceError::Privileged { .. } => "privileged".into(),
            SourceError::Timeout { .. } => "timeout".into(),
            SourceError::Database { code, .. } => code.clone(),
            SourceError::BreakerOpen { .. } => "breaker_open".into(),
            SourceError::NoSession { .. } => "server_sessions".into(),
            SourceError::PlanSkipped { label, .. } => format!("plan_{label}"),
        }
    }

    /// A cause, for logging once per cause: the class and code, plus what
    /// failed.
    pub fn cause(&self) -> String {
        format!("{}:{}", self.class().as_str(), self.code())
    }

    /// As status shows it.
    pub fn failure(&self) -> dbintel_core::status::Failure {
        dbintel_core::status::Failure {
            class: self.class().as_str(),
            code: self.code(),
            message: self.to_string(),
            at: std::time::SystemTime::now(),
        }
    }
}

/// A driver error as ours: classified by code, scrubbed of the secret,
/// and with any SQL or value the database quoted reduced to `?`.
pub fn from_sqlx(source_name: &str, what: &str, secret: &Secret, error: &sqlx::Error) -> SourceError {
    let (class, code, message) = match error {
        sqlx::Error::Database(db) => {
            if let Some(my) = db.try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>() {
                let number = my.number();
                (classify_mysql(number), number.to_string(), safe_message(db.message(), Dialect::MySql))
            } else {
                let code = db.code().map(|c| c.into_owned()).unwrap_or_default();
                (classify_sqlstate(&code), code, safe_message(db.message(), Dialect::Postgres))
            }
        }
        sqlx::Error::Io(e) => (ErrorClass::Connection, "io".into(), e.to_string()),
        sqlx::Error::Tls(e) => (ErrorClass::Connection, "tls".into(), e.to_string()),
        sqlx::Error::PoolTimedOut => (ErrorClass::Connection, "pool_timeout".into(), "no connection became available in time".into()),
        sqlx::Error::PoolClosed => (ErrorClass::Connection, "pool_closed".into(), "the connection pool is closed".into()),
        sqlx::Error::Protocol(m) => (ErrorClass::Connection, "protocol".into(), safe_message(m, Dialect::Unknown)),
        sqlx::Error::Configuration(e) => (ErrorClass::Configuration, "configuration".into(), e.to_string()),
        other => (ErrorClass::Other, "driver".into(), safe_message(&other.to_string(), Dialect::Unknown)),
    };
    SourceError::Database { source_name: source_name.to_string(), what: what.to_string(), class, code, message: secret.scrub(&message) }
}

/// A database message made safe to log: every quoted fragment (a
/// statement near a syntax error, a value that did not convert) is
/// normalized, every quoted value redacted
/// ([`dbintel_stdlib::sql::scrub_error_message`]).
pub fn safe_message(message: &str, dialect: Dialect) -> String {
    dbintel_stdlib::sql::scrub_error_message(message, dialect)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlstates_sort_into_classes() {
        for (code, class) in [
            ("57014", ErrorClass::Distress),
            ("55P03", ErrorClass::Distress),
            ("53300", ErrorClass::Distress),
            ("57P01", ErrorClass::Connection),
            ("57P03", ErrorClass::Connection),
            ("08006", ErrorClass::Connection),
            ("08001", ErrorClass::Connection),
            ("42501", ErrorClass::Configuration),
            ("42P01", ErrorClass::Configuration),
            ("42883", ErrorClass::Configuration),
            ("42703", ErrorClass::Configuration),
            ("42601", ErrorClass::Configuration),
            ("55000", ErrorClass::Configuration),
            ("22012", ErrorClass::Other),
        ] {
            assert_eq!(classify_sqlstate(code), class, "{code}");
        }
    }

    #[test]
    fn mysql_numbers_sort_into_classes() {
        for (number, class) in [
            (3024, ErrorClass::Distress),
            (1969, ErrorClass::Distress),
            (1205, ErrorClass::Distress),
            (1040, ErrorClass::Distress),
            (2006, ErrorClass::Connection),
            (2013, ErrorClass::Connection),
            (1044, ErrorClass::Configuration),
            (1045, ErrorClass::Configuration),
            (1142, ErrorClass::Configuration),
            (1146, ErrorClass::Configuration),
            (1064, ErrorClass::Configuration),
            (1366, ErrorClass::Other),
        ] {
            assert_eq!(classify_mysql(number), class, "{number}");
        }
    }

    #[test]
    fn quoted_fragments_never_reach_a_message() {
        let m = safe_message(
            "You have an error in your SQL syntax; check the manual that corresponds to your MariaDB server version for the right syntax to use near 'FROM users WHERE ssn = \"123-45-6789\"' at line 1",
            Dialect::MySql,
        );
        assert!(!m.contains("6789") && !m.contains("users"), "{m}");
        let m = safe_message("invalid input syntax for type integer: \"4111111111111111\"", Dialect::Postgres);
        assert!(!m.contains("4111"), "{m}");
    }
}
