//! PostgreSQL's message catalogue, as far as dbintel reads it: which
//! entry is an auto_explain plan, a deadlock, a lock wait, a temporary
//! file, an autovacuum or autoanalyze run, a checkpoint, a connection
//! failure or a cancelled statement — and the numbers in them.
//!
//! SQLSTATE decides where the server gives one (jsonlog, csvlog, `%e`);
//! the message text decides otherwise, and for the LOG-level reports that
//! have no SQLSTATE of their own. Messages must be in English
//! (`lc_messages = 'C'`), as for every log analyser.

use crate::entry::PgEntry;

#[derive(Debug, Clone, PartialEq)]
pub enum Kind {
    /// auto_explain: `duration: 12.3 ms  plan:` and the plan (JSON with
    /// `auto_explain.log_format = json`), from byte `plan_at` of the
    /// message on.
    Plan {
        duration_ms: f64,
        plan_at: usize,
    },
    Deadlock,
    LockWait(LockWait),
    TempFile {
        size: u64,
    },
    Autovacuum(Vacuum),
    Autoanalyze(Analyze),
    CheckpointStart {
        restartpoint: bool,
        reason: String,
    },
    CheckpointComplete(Checkpoint),
    ConnectionFailure {
        reason: &'static str,
    },
    Cancel {
        reason: &'static str,
    },
    /// Any other entry at WARNING or above.
    Error,
    Other,
}

#[derive(Debug, Clone, PartialEq)]
pub struct LockWait {
    /// `waiting`, `acquired`, `avoided_deadlock`, `deadlock_detected`.
    pub state: &'static str,
    pub mode: String,
    /// `transaction`, `relation`, `tuple`, `tuple`, `advisory lock`, …
    pub object: String,
    pub after_ms: f64,
    /// From the DETAIL: who holds the lock.
    pub holders: Vec<i64>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Table {
    pub database: String,
    pub schema: String,
    pub table: String,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Vacuum {
    pub table: Table,
    pub aggressive: bool,
    pub wraparound: bool,
    pub index_scans: Option<i64>,
    pub pages_removed: Option<i64>,
    pub pages_remaining: Option<i64>,
    pub tuples_removed: Option<i64>,
    pub tuples_remaining: Option<i64>,
    pub dead_tuples_not_removable: Option<i64>,
    pub wal_bytes: Option<i64>,
    pub elapsed_s: Option<f64>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Analyze {
    pub table: Table,
    pub elapsed_s: Option<f64>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Checkpoint {
    pub restartpoint: bool,
    pub buffers: Option<i64>,
    pub wal_added: Option<i64>,
    pub wal_removed: Option<i64>,
    pub wal_recycled: Option<i64>,
    pub write_s: Option<f64>,
    pub sync_s: Option<f64>,
    pub total_s: Option<f64>,
    pub sync_files: Option<i64>,
    pub distance_bytes: Option<i64>,
    pub estimate_bytes: Option<i64>,
}

/// The severities that count as errors or warnings, least severe first.
pub const ERROR_SEVERITIES: &[&str] = &["WARNING", "ERROR", "FATAL", "PANIC"];

/// OpenTelemetry's severity number for a PostgreSQL severity.
pub fn severity_number(severity: &str) -> i32 {
    match severity {
        "PANIC" => 24,
        "FATAL" => 21,
        "ERROR" => 17,
        "WARNING" => 13,
        "NOTICE" => 10,
        "LOG" | "INFO" => 9,
        s if s.starts_with("DEBUG") => 5,
        _ => 0,
    }
}

/// The number that follows `key` in `text` (`index scans: 3`).
pub fn number_after<T: std::str::FromStr>(text: &str, key: &str) -> Option<T> {
    let at = text.find(key)? + key.len();
    let rest = text[at..].trim_start();
    let end = rest.find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '-')).unwrap_or(rest.len());
    rest[..end].trim_end_matches('.').parse().ok()
}

/// `db.schema.table` as PostgreSQL writes it in autovacuum reports.
fn table(name: &str) -> Table {
    let (database, rest) = name.split_once('.').unwrap_or(("", name));
    let (schema, table) = rest.rsplit_once('.').unwrap_or(("", rest));
    Table { database: database.into(), schema: schema.into(), table: table.into() }
}

/// The text between the first pair of double quotes after `after`.
fn quoted_after<'a>(text: &'a str, after: &str) -> Option<&'a str> {
    let start = text.find(after)? + after.len();
    let rest = text[start..].strip_prefix('"').or_else(|| text[start..].trim_start().strip_prefix('"'))?;
    let end = rest.find("\":").or_else(|| rest.find('"'))?;
    Some(&rest[..end])
}

/// What an entry is.
pub fn classify(e: &PgEntry) -> Kind {
    let m = e.message.as_str();
    let state = e.sqlstate.as_deref();
    if e.severity == "LOG" {
        if let Some(rest) = m.strip_prefix("duration: ") {
            if let Some((ms, plan)) = rest.split_once(" ms  plan:") {
                if let Ok(duration_ms) = ms.trim().parse() {
                    let plan_at = m.len() - plan.trim_start().len();
                    return Kind::Plan { duration_ms, plan_at };
                }
            }
        }
        if let Some(rest) = m.strip_prefix("temporary file: ") {
            if let Some(size) = number_after(rest, ", size ") {
                return Kind::TempFile { size };
            }
        }
        if m.starts_with("automatic ") {
            if let Some(name) = quoted_after(m, "vacuum of table ") {
                return Kind::Autovacuum(vacuum(m, name));
            }
            if let Some(name) = quoted_after(m, "analyze of table ") {
                return Kind::Autoanalyze(Analyze { table: table(name), elapsed_s: elapsed(m) });
            }
        }
        for (word, restartpoint) in [("checkpoint", false), ("restartpoint", true)] {
            if let Some(rest) = m.strip_prefix(word) {
                if let Some(reason) = rest.strip_prefix(" starting: ") {
                    return Kind::CheckpointStart { restartpoint, reason: reason.trim().to_string() };
                }
                if rest.starts_with(" complete: ") {
                    return Kind::CheckpointComplete(checkpoint(m, restartpoint));
                }
            }
        }
        if let Some(lock) = lock_wait(e) {
            return Kind::LockWait(lock);
        }
    }
    if state == Some("40P01") || m.starts_with("deadlock detected") {
        return Kind::Deadlock;
    }
    if let Some(reason) = cancel_reason(state, m) {
        return Kind::Cancel { reason };
    }
    if e.severity == "FATAL" {
        if let Some(reason) = connection_failure(state, m) {
            return Kind::ConnectionFailure { reason };
        }
    }
    if ERROR_SEVERITIES.contains(&e.severity.as_str()) {
        return Kind::Error;
    }
    Kind::Other
}

/// The SQLSTATE of what we classified, when the log gives none (stderr
/// without `%e`).
pub fn implied_sqlstate(kind: &Kind) -> Option<&'static str> {
    Some(match kind {
        Kind::Deadlock => "40P01",
        Kind::Cancel { reason: "lock_timeout" } => "55P03",
        Kind::Cancel { reason: "idle_in_transaction_timeout" } => "25P03",
        Kind::Cancel { reason: "idle_session_timeout" } => "57P05",
        Kind::Cancel { reason: "transaction_timeout" } => "25P04",
        Kind::Cancel { .. } => "57014",
        Kind::ConnectionFailure { reason: "authentication_failed" } => "28P01",
        Kind::ConnectionFailure { reason: "no_hba_entry" | "hba_reject" | "role_does_not_exist" | "role_cannot_login" } => "28000",
        Kind::ConnectionFailure { reason: "database_does_not_exist" } => "3D000",
        Kind::ConnectionFailure { reason: "too_many_connections" } => "53300",
        Kind::ConnectionFailure { reason: "server_not_ready" } => "57P03",
        _ => return None,
    })
}

fn cancel_reason(state: Option<&str>, m: &str) -> Option<&'static str> {
    let reason = if m.starts_with("canceling statement due to statement timeout") {
        "statement_timeout"
    } else if m.starts_with("canceling statement due to lock timeout") {
        "lock_timeout"
    } else if m.starts_with("canceling statement due to user request") {
        "user_request"
    } else if m.starts_with("canceling statement due to conflict with recovery") {
        "recovery_conflict"
    } else if m.starts_with("canceling autovacuum task") {
        "autovacuum"
    } else if m.starts_with("terminating connection due to idle-in-transaction timeout") {
        "idle_in_transaction_timeout"
    } else if m.starts_with("terminating connection due to idle-session timeout") {
        "idle_session_timeout"
    } else if m.starts_with("terminating connection due to transaction timeout") {
        "transaction_timeout"
    } else if m.starts_with("canceling statement due to") {
        "other"
    } else {
        return match state {
            Some("57014") => Some("other"),
            Some("55P03") if m.contains("lock timeout") => Some("lock_timeout"),
            _ => None,
        };
    };
    Some(reason)
}

fn connection_failure(state: Option<&str>, m: &str) -> Option<&'static str> {
    Some(if m.starts_with("password authentication failed") || m.contains(" authentication failed for user") {
        "authentication_failed"
    } else if m.starts_with("no pg_hba.conf entry") {
        "no_hba_entry"
    } else if m.starts_with("pg_hba.conf rejects connection") {
        "hba_reject"
    } else if m.starts_with("role \"") && m.ends_with("does not exist") {
        "role_does_not_exist"
    } else if m.starts_with("role \"") && m.contains("is not permitted to log in") {
        "role_cannot_login"
    } else if m.starts_with("database \"") && m.ends_with("does not exist") {
        "database_does_not_exist"
    } else if m.starts_with("sorry, too many clients")
        || m.starts_with("remaining connection slots are reserved")
        || m.starts_with("too many connections for")
    {
        "too_many_connections"
    } else if m.starts_with("the database system is starting up")
        || m.starts_with("the database system is shutting down")
        || m.starts_with("the database system is in recovery mode")
    {
        "server_not_ready"
    } else {
        match state {
            Some("28P01") => "authentication_failed",
            Some("28000") => "no_hba_entry",
            Some("3D000") => "database_does_not_exist",
            Some("53300") => "too_many_connections",
            Some("57P03") => "server_not_ready",
            _ => return None,
        }
    })
}

fn lock_wait(e: &PgEntry) -> Option<LockWait> {
    let rest = e.message.strip_prefix("process ")?;
    let (_, rest) = rest.split_once(' ')?;
    let (state, rest) = [
        ("still waiting for ", "waiting"),
        ("acquired ", "acquired"),
        ("avoided deadlock for ", "avoided_deadlock"),
        ("detected deadlock while waiting for ", "deadlock_detected"),
    ]
    .iter()
    .find_map(|(prefix, state)| rest.strip_prefix(prefix).map(|r| (*state, r)))?;
    let (mode, rest) = rest.split_once(" on ")?;
    let (object, after) = rest.rsplit_once(" after ")?;
    let after_ms = after.trim_end_matches('.').strip_suffix(" ms")?.parse().ok()?;
    // `transaction 456`, `relation 16384 of database 5`, `tuple (0,1) of
    // relation …`, `advisory lock [5,1,0,1]`: the kind of object
    let object = object
        .split([' '])
        .take_while(|w| !w.starts_with(|c: char| c.is_ascii_digit() || c == '(' || c == '['))
        .collect::<Vec<_>>()
        .join(" ");
    let holders = e
        .detail
        .as_deref()
        .and_then(|d| d.strip_prefix("Process holding the lock: ").or_else(|| d.strip_prefix("Processes holding the lock: ")))
        .map(|d| d.split(". ").next().unwrap_or("").split(", ").filter_map(|p| p.trim().trim_end_matches('.').parse().ok()).collect())
        .unwrap_or_default();
    Some(LockWait { state, mode: mode.to_string(), object, after_ms, holders })
}

fn elapsed(m: &str) -> Option<f64> {
    // 15+: `elapsed: 0.01 s`; older: `CPU 0.00s/0.00u sec elapsed 0.01 sec`
    number_after(m, "elapsed: ").or_else(|| number_after(m, "sec elapsed "))
}

fn vacuum(m: &str, name: &str) -> Vacuum {
    let pages = m.find("pages: ").map(|i| &m[i..]);
    let tuples = m.find("tuples: ").map(|i| &m[i..]);
    Vacuum {
        table: table(name),
        aggressive: m.starts_with("automatic aggressive vacuum"),
        wraparound: m.contains("to prevent wraparound"),
        index_scans: number_after(m, "index scans: "),
        pages_removed: pages.and_then(|p| number_after(p, "pages: ")),
        pages_remaining: pages.and_then(|p| number_after(p, " removed, ")),
        tuples_removed: tuples.and_then(|t| number_after(t, "tuples: ")),
        tuples_remaining: tuples.and_then(|t| number_after(t, " removed, ")),
        dead_tuples_not_removable: tuples.and_then(|t| number_after(t, " remain, ")),
        wal_bytes: m.find("WAL usage: ").and_then(|i| number_after(&m[i..], " full page images, ")),
        elapsed_s: elapsed(m),
    }
}

fn checkpoint(m: &str, restartpoint: bool) -> Checkpoint {
    let kb = |key: &str| number_after::<i64>(m, key).map(|k| k * 1024);
    Checkpoint {
        restartpoint,
        buffers: number_after(m, "wrote "),
        wal_added: number_after(m, "; ").filter(|_| m.contains(" added")),
        wal_removed: number_after(m, " added, "),
        wal_recycled: number_after(m, " removed, "),
        write_s: number_after(m, "write="),
        sync_s: number_after(m, "sync="),
        total_s: number_after(m, "total="),
        sync_files: number_after(m, "sync files="),
        distance_bytes: kb("distance="),
        estimate_bytes: kb("estimate="),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(severity: &str, state: Option<&str>, message: &str) -> PgEntry {
        PgEntry { severity: severity.into(), sqlstate: state.map(Into::into), message: message.into(), ..PgEntry::default() }
    }

    #[test]
    fn autovacuum_reports_of_postgresql_15() {
        let m = "automatic vacuum of table \"shop.public.orders\": index scans: 1\npages: 0 removed, 55 remain, 55 scanned (100.00% of total)\ntuples: 1000 removed, 4000 remain, 7 are dead but not yet removable\nremovable cutoff: 760, which was 0 XIDs old when operation ended\nnew relfrozenxid: 759, which is 3 XIDs ahead of previous value\nindex scan needed: 9 pages from table (16.36% of total) had 1000 dead item identifiers removed\nindex \"orders_pkey\": pages: 14 in total, 0 newly deleted, 0 currently deleted, 0 reusable\navg read rate: 0.000 MB/s, avg write rate: 0.000 MB/s\nbuffer usage: 180 hits, 0 misses, 12 dirtied\nWAL usage: 130 records, 10 full page images, 85310 bytes\nsystem usage: CPU: user: 0.00 s, system: 0.00 s, elapsed: 0.02 s";
        let Kind::Autovacuum(v) = classify(&entry("LOG", None, m)) else { panic!("not autovacuum") };
        assert_eq!(v.table, Table { database: "shop".into(), schema: "public".into(), table: "orders".into() });
        assert_eq!((v.index_scans, v.pages_removed, v.pages_remaining), (Some(1), Some(0), Some(55)));
        assert_eq!((v.tuples_removed, v.tuples_remaining, v.dead_tuples_not_removable), (Some(1000), Some(4000), Some(7)));
        assert_eq!((v.wal_bytes, v.elapsed_s), (Some(85310), Some(0.02)));
        let analyze = entry("LOG", None, "automatic analyze of table \"shop.public.orders\"\navg read rate: 0.000 MB/s, avg write rate: 0.000 MB/s\nbuffer usage: 1 hits, 0 misses, 0 dirtied\nsystem usage: CPU: user: 0.00 s, system: 0.00 s, elapsed: 0.05 s");
        let a = classify(&analyze);
        assert_eq!(
            a,
            Kind::Autoanalyze(Analyze {
                table: Table { database: "shop".into(), schema: "public".into(), table: "orders".into() },
                elapsed_s: Some(0.05)
            })
        );
    }

    #[test]
    fn checkpoints_of_15_and_18() {
        let m15 = "checkpoint complete: wrote 3 buffers (0.0%); 0 WAL file(s) added, 1 removed, 2 recycled; write=0.101 s, sync=0.002 s, total=0.110 s; sync files=2, longest=0.001 s, average=0.001 s; distance=16384 kB, estimate=16384 kB";
        let Kind::CheckpointComplete(c) = classify(&entry("LOG", None, m15)) else { panic!() };
        assert_eq!((c.buffers, c.wal_added, c.wal_removed, c.wal_recycled), (Some(3), Some(0), Some(1), Some(2)));
        assert_eq!((c.write_s, c.sync_s, c.total_s, c.sync_files), (Some(0.101), Some(0.002), Some(0.110), Some(2)));
        assert_eq!(c.distance_bytes, Some(16384 * 1024));
        let m18 = "checkpoint complete: wrote 5 buffers (0.0%), wrote 1 SLRU buffers; 0 WAL file(s) added, 0 removed, 0 recycled; write=0.001 s, sync=0.001 s, total=0.004 s; sync files=0, longest=0.000 s, average=0.000 s; distance=0 kB, estimate=0 kB; lsn=0/1A2B3C4, redo lsn=0/1A2B3C0";
        let Kind::CheckpointComplete(c) = classify(&entry("LOG", None, m18)) else { panic!() };
        assert_eq!((c.buffers, c.total_s), (Some(5), Some(0.004)));
        assert_eq!(
            classify(&entry("LOG", None, "checkpoint starting: immediate force wait")),
            Kind::CheckpointStart { restartpoint: false, reason: "immediate force wait".into() }
        );
    }

    #[test]
    fn lock_waits_and_who_holds_the_lock() {
        let mut e = entry("LOG", None, "process 4242 still waiting for ShareLock on transaction 741 after 1000.123 ms");
        e.detail = Some("Process holding the lock: 4243. Wait queue: 4242.".into());
        let Kind::LockWait(w) = classify(&e) else { panic!() };
        assert_eq!(
            (w.state, w.mode.as_str(), w.object.as_str(), w.after_ms, w.holders.clone()),
            ("waiting", "ShareLock", "transaction", 1000.123, vec![4243])
        );
        let e = entry("LOG", None, "process 4242 acquired AccessExclusiveLock on relation 16384 of database 5 after 2001.5 ms");
        let Kind::LockWait(w) = classify(&e) else { panic!() };
        assert_eq!((w.state, w.object.as_str(), w.after_ms), ("acquired", "relation", 2001.5));
    }

    #[test]
    fn failures_by_sqlstate_or_by_message() {
        assert_eq!(classify(&entry("ERROR", Some("40P01"), "deadlock detected")), Kind::Deadlock);
        assert_eq!(classify(&entry("ERROR", None, "deadlock detected")), Kind::Deadlock);
        assert_eq!(
            classify(&entry("ERROR", None, "canceling statement due to statement timeout")),
            Kind::Cancel { reason: "statement_timeout" }
        );
        assert_eq!(
            classify(&entry("ERROR", Some("55P03"), "canceling statement due to lock timeout")),
            Kind::Cancel { reason: "lock_timeout" }
        );
        assert_eq!(
            classify(&entry("FATAL", Some("28P01"), "password authentication failed for user \"bob\"")),
            Kind::ConnectionFailure { reason: "authentication_failed" }
        );
        assert_eq!(
            classify(&entry("FATAL", None, "database \"nope\" does not exist")),
            Kind::ConnectionFailure { reason: "database_does_not_exist" }
        );
        assert_eq!(classify(&entry("ERROR", Some("23505"), "duplicate key value violates unique constraint \"u\"")), Kind::Error);
        assert_eq!(classify(&entry("LOG", None, "connection authorized: user=app database=shop")), Kind::Other);
        assert_eq!(
            classify(&entry("LOG", None, "temporary file: path \"base/pgsql_tmp/pgsql_tmp4242.0\", size 1458176")),
            Kind::TempFile { size: 1_458_176 }
        );
        let plan = entry("LOG", None, "duration: 12.345 ms  plan:\n{\"Plan\": {}}");
        let Kind::Plan { duration_ms, plan_at } = classify(&plan) else { panic!("not a plan") };
        assert_eq!((duration_ms, &plan.message[plan_at..]), (12.345, "{\"Plan\": {}}"));
    }
}
