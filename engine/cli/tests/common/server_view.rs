//! What the real PostgreSQL sees of dbintel's sessions, from its own
//! views: a watcher that reads `pg_stat_activity` every 10 ms on a
//! connection of its own and keeps every row it saw, with the server's
//! clock. Tests compare what a replica did on the server (connected,
//! queried, stopped) with when its lease changed hands.
#![allow(dead_code)]

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// One row of `pg_stat_activity` as seen at `at` (server time, Unix
/// seconds).
#[derive(Debug, Clone)]
pub struct Seen {
    pub role: String,
    pub pid: i32,
    pub client_port: i32,
    pub backend_start: f64,
    pub state: String,
    pub query_start: Option<f64>,
    pub state_change: Option<f64>,
    pub at: f64,
    pub query: String,
}

impl Seen {
    /// The latest moment this row shows the session acting: now while a
    /// query runs, else when its last query ended (or it connected).
    pub fn acting_until(&self) -> f64 {
        if self.state == "active" {
            self.at
        } else {
            self.state_change.or(self.query_start).unwrap_or(self.backend_start)
        }
    }
}

/// role, pid, client_port, backend_start, state, query_start,
/// state_change, clock_timestamp, query.
type ActivityRow = (String, i32, i32, f64, String, Option<f64>, Option<f64>, f64, String);

pub struct ServerView {
    stop: Arc<AtomicBool>,
    rows: Arc<Mutex<Vec<Seen>>>,
    error: Arc<Mutex<Option<String>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// The server's clock now (Unix seconds).
pub fn server_now() -> f64 {
    super::psql("SELECT extract(epoch FROM clock_timestamp())::float8").parse().expect("the server's clock")
}

impl ServerView {
    /// Watches the sessions of roles whose names start with `role_prefix`
    /// (the watcher's own session excluded).
    pub fn watch(role_prefix: &str) -> ServerView {
        let (stop, rows, error) = (Arc::new(AtomicBool::new(false)), Arc::new(Mutex::new(Vec::new())), Arc::new(Mutex::new(None)));
        let (s, r, e, prefix) = (stop.clone(), rows.clone(), error.clone(), format!("{role_prefix}%"));
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime");
            runtime.block_on(async move {
                use sqlx::Connection;
                let mut conn = match sqlx::PgConnection::connect(super::PG_SUPERUSER).await {
                    Ok(c) => c,
                    Err(err) => {
                        *e.lock().unwrap() = Some(format!("cannot connect to watch pg_stat_activity: {err}"));
                        let _ = ready_tx.send(());
                        return;
                    }
                };
                let _ = ready_tx.send(());
                while !s.load(SeqCst) {
                    let polled: Result<Vec<ActivityRow>, _> = sqlx::query_as(
                        "SELECT usename::text, pid, coalesce(client_port, -1), extract(epoch FROM backend_start)::float8,
                                coalesce(state, ''), extract(epoch FROM query_start)::float8, extract(epoch FROM state_change)::float8,
                                extract(epoch FROM clock_timestamp())::float8, coalesce(query, '')
                           FROM pg_stat_activity WHERE usename LIKE $1 AND pid <> pg_backend_pid()",
                    )
                    .bind(&prefix)
                    .fetch_all(&mut conn)
                    .await;
                    match polled {
                        Ok(found) => r.lock().unwrap().extend(found.into_iter().map(
                            |(role, pid, client_port, backend_start, state, query_start, state_change, at, query)| Seen {
                                role,
                                pid,
                                client_port,
                                backend_start,
                                state,
                                query_start,
                                state_change,
                                at,
                                query,
                            },
                        )),
                        Err(err) => {
                            *e.lock().unwrap() = Some(format!("watching pg_stat_activity failed: {err}"));
                            return;
                        }
                    }
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            });
        });
        let _ = ready_rx.recv_timeout(Duration::from_secs(10));
        ServerView { stop, rows, error, thread: Some(thread) }
    }

    /// Everything seen so far; fails the test if the watcher broke.
    pub fn rows(&self) -> Vec<Seen> {
        if let Some(e) = self.error.lock().unwrap().clone() {
            panic!("{e}");
        }
        self.rows.lock().unwrap().clone()
    }

    pub fn of(&self, role: &str) -> Vec<Seen> {
        self.rows().into_iter().filter(|r| r.role == role).collect()
    }

    /// The backends (pids) of `role` ever seen.
    pub fn sessions(&self, role: &str) -> BTreeSet<i32> {
        self.of(role).iter().map(|r| r.pid).collect()
    }

    /// The last moment `role` was seen acting on the server.
    pub fn last_acting(&self, role: &str) -> Option<f64> {
        self.of(role).iter().map(Seen::acting_until).reduce(f64::max)
    }

    /// When `role`'s first session began (the server's backend_start).
    pub fn first_session(&self, role: &str) -> Option<f64> {
        self.of(role).iter().map(|r| r.backend_start).reduce(f64::min)
    }

    /// A few lines per session of `role`, for failure messages.
    pub fn describe(&self, role: &str) -> String {
        let rows = self.of(role);
        let mut out = Vec::new();
        for pid in rows.iter().map(|r| r.pid).collect::<BTreeSet<_>>() {
            let mine: Vec<&Seen> = rows.iter().filter(|r| r.pid == pid).collect();
            let (first, last) = (mine[0], mine[mine.len() - 1]);
            out.push(format!(
                "  {role} pid {pid} (port {}): started {:.3}, seen {:.3}..{:.3}, last state {:?} since {:?}, last query {:?} at {:?}, acting until {:.3}",
                first.client_port,
                first.backend_start,
                first.at,
                last.at,
                last.state,
                last.state_change,
                last.query,
                last.query_start,
                mine.iter().map(|r| r.acting_until()).fold(f64::MIN, f64::max)
            ));
        }
        if out.is_empty() {
            format!("  {role}: no session seen")
        } else {
            out.join("\n")
        }
    }

    pub fn stop(&mut self) {
        self.stop.store(true, SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for ServerView {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Statements `role` ran, by the server's pg_stat_statements (every
/// statement, session settings included).
pub fn calls_by_role(role: &str) -> i64 {
    super::psql(&format!(
        "SELECT coalesce(sum(s.calls), 0) FROM pg_stat_statements s JOIN pg_roles r ON r.oid = s.userid WHERE r.rolname = '{role}'"
    ))
    .parse()
    .expect("a count")
}

/// Login roles of the test's own (`proofs_…`), each granted pg_monitor
/// like the README's dbintel role, so each replica is told apart on the
/// server by its user. Idempotent; tests in one binary may call it at
/// once.
pub fn monitoring_roles(names: &[&str]) {
    static LOCK: Mutex<()> = Mutex::new(());
    let _one_at_a_time = LOCK.lock().unwrap_or_else(|p| p.into_inner());
    for name in names {
        super::psql(&format!(
            "DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{name}') THEN CREATE ROLE {name} LOGIN PASSWORD 'proofs-role-pw'; END IF; END $$; GRANT pg_monitor TO {name}"
        ));
    }
}

/// A DSN for the test database as `role`.
pub fn dsn_as(role: &str) -> String {
    format!("postgres://{role}:proofs-role-pw@127.0.0.1:5432/dbintel_test")
}
