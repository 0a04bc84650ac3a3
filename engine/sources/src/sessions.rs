//! The sessions this process holds on each database server, whichever
//! sources, targets and collectors reach it: at most `server_sessions`
//! (see [`DbSettings`]) open at a time, so a fleet of discovered databases
//! (each a target of its own) or a config of a hundred source blocks can
//! never approach the server's `max_connections` and lock applications out.
//!
//! Every pool a target opens is a [`SessionPool`] that holds permits of
//! its server's semaphore while it may have connections open:
//! - a *pinned* pool (the target that reads the server-wide views, scraped
//!   every second) takes its permits on first use and keeps them until the
//!   target closes — as long as pinned pools hold at most half the cap
//!   together; past that a pool asked for pinned is shared (a hundred
//!   source blocks each reading "their" server cannot pin every session);
//! - a *shared* pool (a discovered database, a `sql` query, another
//!   database's tables) has one connection, takes one permit when used and
//!   keeps it idle for reuse — until someone else needs a permit and none
//!   is free: then the idle pool that was used longest ago is closed
//!   (its session ends on the server) and its permit changes hands. Its
//!   owner reopens it on next use, under the same rule.
//!
//! A query that finds no permit within its connect timeout fails as
//! distress of this process, not of the server ([`SourceError::NoSession`]).
//! Servers are told apart by their configured `host:port`; the registry
//! forgets a server when its last pool is gone.
//!
//! [`DbSettings`]: dbintel_dsl::schema::DbSettings

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use dbintel_core::BoxFuture;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::SourceError;

/// How long closing a pool waits for its connections to end. sqlx's
/// `Pool::close` waits for every checked-out connection, and one a
/// cancelled query left behind is tested with a ping that never returns
/// from a server that hangs: past this the pool is let go (its sockets
/// close as it drops), so a hung server cannot wedge a reconnect.
pub const CLOSE_WAIT: Duration = Duration::from_secs(2);

/// Closes `pool`, waiting at most [`CLOSE_WAIT`].
pub async fn close_pool<DB: sqlx::Database>(pool: &sqlx::Pool<DB>) {
    if tokio::time::timeout(CLOSE_WAIT, pool.close()).await.is_err() {
        tracing::debug!(wait = ?CLOSE_WAIT, "a pool's connections did not end in time; letting them go");
    }
}

/// A pooled connection for one piece of work under a deadline. Cancelled
/// before [`Checkout::done`] (the deadline passed mid-query), it is closed
/// instead of going back to its pool: sqlx tests a connection given back
/// with a ping, and on a server that hangs that ping waits for ever and
/// holds the pool's slot with it — every later query would time out
/// waiting for a connection, and closing the pool would never end.
pub struct Checkout<DB: sqlx::Database> {
    conn: sqlx::pool::PoolConnection<DB>,
    done: bool,
}

impl<DB: sqlx::Database> Checkout<DB> {
    pub async fn acquire(pool: &sqlx::Pool<DB>) -> Result<Checkout<DB>, sqlx::Error> {
        Ok(Checkout { conn: pool.acquire().await?, done: false })
    }

    /// The work finished (well or not): the connection may go back.
    pub fn done(&mut self) {
        self.done = true;
    }
}

impl<DB: sqlx::Database> std::ops::Deref for Checkout<DB> {
    type Target = DB::Connection;
    fn deref(&self) -> &DB::Connection {
        &self.conn
    }
}

impl<DB: sqlx::Database> std::ops::DerefMut for Checkout<DB> {
    fn deref_mut(&mut self) -> &mut DB::Connection {
        &mut self.conn
    }
}

impl<DB: sqlx::Database> Drop for Checkout<DB> {
    fn drop(&mut self) {
        if !self.done {
            self.conn.close_on_drop();
        }
    }
}

/// Servers by configured `host:port`, while any of their pools lives.
static SERVERS: Mutex<Vec<(String, Weak<ServerSessions>)>> = Mutex::new(Vec::new());

/// The session budget of one server.
pub struct ServerSessions {
    key: String,
    cap: u32,
    /// Permits promised to pinned pools (at most half the cap).
    pinned: std::sync::atomic::AtomicU32,
    semaphore: Arc<Semaphore>,
    holders: Mutex<HashMap<u64, Holder>>,
    /// Idle shared pools closed to make room, since the start.
    evictions: AtomicU64,
    /// Asks that found no session within their wait, since the start.
    exhausted: AtomicU64,
}

/// One server's budget as `/metrics` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionsSnapshot {
    pub server: String,
    pub cap: u32,
    pub in_use: u32,
    pub evictions: u64,
    pub exhausted: u64,
}

/// A pool holding permits.
struct Holder {
    _permits: OwnedSemaphorePermit,
    users: usize,
    last_used: Instant,
    evictable: bool,
    close: Arc<dyn Fn() -> BoxFuture<'static, ()> + Send + Sync>,
}

impl ServerSessions {
    /// The budget of server `key` (`host:port`), made with `cap` sessions
    /// when this process has none open there yet. A later, different cap
    /// for the same server is ignored (and logged): the first one holds
    /// until every pool of the server is gone.
    pub fn of(key: &str, cap: u32) -> Arc<ServerSessions> {
        let mut servers = SERVERS.lock().unwrap_or_else(|p| p.into_inner());
        servers.retain(|(_, w)| w.strong_count() > 0);
        if let Some(server) = servers.iter().find(|(k, _)| k == key).and_then(|(_, w)| w.upgrade()) {
            if server.cap != cap.max(1) {
                tracing::debug!(server = key, cap = server.cap, asked = cap, "another source set this server's session cap first");
            }
            return server;
        }
        let server = Arc::new(ServerSessions {
            key: key.to_string(),
            cap: cap.max(1),
            semaphore: Arc::new(Semaphore::new(cap.max(1) as usize)),
            pinned: std::sync::atomic::AtomicU32::new(0),
            holders: Mutex::new(HashMap::new()),
            evictions: AtomicU64::new(0),
            exhausted: AtomicU64::new(0),
        });
        servers.push((key.to_string(), Arc::downgrade(&server)));
        server
    }

    /// Servers this process holds sessions budgets for (tests, /status).
    pub fn known() -> usize {
        let servers = SERVERS.lock().unwrap_or_else(|p| p.into_inner());
        servers.iter().filter(|(_, w)| w.strong_count() > 0).count()
    }

    /// Every live server budget (`/metrics`).
    pub fn snapshot() -> Vec<SessionsSnapshot> {
        let servers = SERVERS.lock().unwrap_or_else(|p| p.into_inner());
        servers
            .iter()
            .filter_map(|(_, w)| w.upgrade())
            .map(|s| SessionsSnapshot {
                server: s.key.clone(),
                cap: s.cap,
                in_use: s.in_use(),
                evictions: s.evictions.load(Relaxed),
                exhausted: s.exhausted.load(Relaxed),
            })
            .collect()
    }

    /// The server's configured `host:port`.
    pub fn key(&self) -> &str {
        &self.key
    }

    pub fn cap(&self) -> u32 {
        self.cap
    }

    /// Permits in use now.
    pub fn in_use(&self) -> u32 {
        self.cap - self.semaphore.available_permits() as u32
    }

    /// One session for a moment (a connection opened outside a pool, to
    /// learn why it fails): held until the permit is dropped.
    pub async fn transient(&self, source_name: &str, wait: Duration) -> Result<OwnedSemaphorePermit, SourceError> {
        self.acquire(1, wait).await.ok_or_else(|| self.exhausted(source_name, wait))
    }

    fn exhausted(&self, source_name: &str, waited: Duration) -> SourceError {
        self.exhausted.fetch_add(1, Relaxed);
        SourceError::NoSession { source_name: source_name.to_string(), server: self.key.clone(), cap: self.cap, waited }
    }

    fn holders(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Holder>> {
        self.holders.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// `n` permits: free ones, else those of the idle shared pool used
    /// longest ago (closed first), else the first to be freed within
    /// `timeout`.
    async fn acquire(&self, n: u32, timeout: Duration) -> Option<OwnedSemaphorePermit> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(permits) = self.semaphore.clone().try_acquire_many_owned(n) {
                return Some(permits);
            }
            let victim = {
                let mut holders = self.holders();
                let oldest =
                    holders.iter().filter(|(_, h)| h.evictable && h.users == 0).min_by_key(|(_, h)| h.last_used).map(|(id, _)| *id);
                oldest.and_then(|id| holders.remove(&id))
            };
            match victim {
                // its pool closes (the session ends), then its permit is free
                Some(holder) => {
                    self.evictions.fetch_add(1, Relaxed);
                    (holder.close)().await
                }
                None => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    return tokio::time::timeout(left, self.semaphore.clone().acquire_many_owned(n)).await.ok()?.ok();
                }
            }
        }
    }
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// Whether a pool keeps its permits (the server's reader) or lends them
/// out when idle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sessions {
    Pinned,
    Shared,
}

/// A driver pool whose sessions count against its server's budget.
pub struct SessionPool<DB: sqlx::Database> {
    id: u64,
    source_name: String,
    server: Arc<ServerSessions>,
    kind: Sessions,
    /// Permits it takes: its size when pinned, one when shared.
    size: u32,
    /// Of the server's pinned budget, what it holds (0 when shared).
    pinned: u32,
    pool: Mutex<sqlx::Pool<DB>>,
    options: sqlx::pool::PoolOptions<DB>,
    connect: <DB::Connection as sqlx::Connection>::Options,
    wait: Duration,
}

/// A pool in use: its permits stay with it until dropped.
pub struct InUse<'a, DB: sqlx::Database> {
    pub pool: sqlx::Pool<DB>,
    owner: &'a SessionPool<DB>,
}

impl<DB: sqlx::Database> Drop for InUse<'_, DB> {
    fn drop(&mut self) {
        if let Some(h) = self.owner.server.holders().get_mut(&self.owner.id) {
            h.users = h.users.saturating_sub(1);
            h.last_used = Instant::now();
        }
    }
}

impl<DB: sqlx::Database> SessionPool<DB> {
    /// A lazy pool (nothing opens before the first query). `size` is the
    /// pinned pool's connection count; a shared pool has one connection.
    pub fn new(
        source_name: &str,
        server: Arc<ServerSessions>,
        kind: Sessions,
        size: u32,
        options: sqlx::pool::PoolOptions<DB>,
        connect: <DB::Connection as sqlx::Connection>::Options,
        wait: Duration,
    ) -> SessionPool<DB> {
        // pinned pools together hold at most half the cap
        let want = size.clamp(1, server.cap);
        let budget = (server.cap / 2).max(1);
        let pinned = kind == Sessions::Pinned
            && server.pinned.fetch_update(Relaxed, Relaxed, |held| (held + want <= budget).then_some(held + want)).is_ok();
        let (kind, size) = if pinned { (Sessions::Pinned, want) } else { (Sessions::Shared, 1) };
        let options = options.max_connections(size);
        let pool = options.clone().connect_lazy_with(connect.clone());
        SessionPool {
            id: NEXT_ID.fetch_add(1, Relaxed),
            source_name: source_name.to_string(),
            server,
            kind,
            size,
            pinned: if pinned { size } else { 0 },
            pool: Mutex::new(pool),
            options,
            connect,
            wait,
        }
    }

    /// The pool, holding its permits (taken now if it had none: from a
    /// free permit, or an idle shared pool, within the wait).
    pub async fn enter(&self) -> Result<InUse<'_, DB>, SourceError> {
        if let Some(h) = self.server.holders().get_mut(&self.id) {
            h.users += 1;
            return Ok(InUse { pool: self.current(), owner: self });
        }
        let permits = self.server.acquire(self.size, self.wait).await.ok_or_else(|| self.server.exhausted(&self.source_name, self.wait))?;
        let mut holders = self.server.holders();
        // a concurrent enter of this pool may have won meanwhile: the
        // extra permits go back
        if let Some(h) = holders.get_mut(&self.id) {
            h.users += 1;
            drop(permits);
            return Ok(InUse { pool: self.current(), owner: self });
        }
        let pool = self.current();
        let closing = pool.clone();
        holders.insert(
            self.id,
            Holder {
                _permits: permits,
                users: 1,
                last_used: Instant::now(),
                evictable: self.kind == Sessions::Shared,
                close: Arc::new(move || {
                    let pool = closing.clone();
                    Box::pin(async move { close_pool(&pool).await })
                }),
            },
        );
        Ok(InUse { pool, owner: self })
    }

    /// The pool, reopened (lazily) if it was closed to free its permit.
    fn current(&self) -> sqlx::Pool<DB> {
        let mut pool = self.pool.lock().unwrap_or_else(|p| p.into_inner());
        if pool.is_closed() {
            *pool = self.options.clone().connect_lazy_with(self.connect.clone());
        }
        pool.clone()
    }

    /// Closes the pool and gives its permits back (the target stops).
    pub async fn close(&self) {
        let pool = self.pool.lock().unwrap_or_else(|p| p.into_inner()).clone();
        close_pool(&pool).await;
        self.server.holders().remove(&self.id);
    }

    pub fn server(&self) -> &ServerSessions {
        &self.server
    }
}

impl<DB: sqlx::Database> Drop for SessionPool<DB> {
    fn drop(&mut self) {
        // permits go back; a pool dropped without close() ends its
        // connections as the driver drops them
        self.server.holders().remove(&self.id);
        self.server.pinned.fetch_sub(self.pinned, Relaxed);
    }
}
