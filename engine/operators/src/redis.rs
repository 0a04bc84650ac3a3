//! The sampler's shared state in Redis: rate-limit counters and dedup
//! keys that every replica sees, on the `redis` crate.
//!
//! One async connection manager per sampler (it reconnects by itself;
//! made on first use, so a Redis that is down at start is only a
//! fallback, not an error), TLS with `rediss://`, credentials from
//! `env()`/`file()`. A batch's decisions go out in one round trip: each
//! record's Redis steps (in rule order) are one entry of a Lua script
//! called by its SHA, chunks of records pipelined together. The script
//! runs a record's steps in order and stops at the first that drops it,
//! so a rate-limit counter only counts records that got past the rules
//! before it — the same answer as asking one step at a time.
//!
//! Replies are checked for their shape: anything else is an error (the
//! sampler then decides locally), never a panic.

use std::time::Duration;

use dbintel_core::secret::Secret;
use dbintel_dsl::plan::RedisState;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{IntoConnectionInfo, Value};

/// Records per script call (a pipeline carries as many calls as needed).
const CHUNK: usize = 512;

/// For each record, 0 when every one of its steps let it through, else the
/// 1-based number of the step that dropped it. `ARGV`: the number of step
/// kinds, then per kind its type (`d` dedup, `r` rate), ttl in ms and
/// limit; then runs of records whose steps have the same kinds (most of a
/// batch is one run): the run's length, its step count and each step's
/// kind number. `KEYS`: every step's key, record by record.
///
/// Rate counters are read once per key and written once per key per call
/// (`INCRBY` with what the call counted) instead of an `INCR` per record:
/// inside one script nothing else runs, so the answers are the same as
/// counting one record at a time.
const DECIDE: &str = r#"
local kinds, a = {}, 2
for i = 1, tonumber(ARGV[1]) do
  kinds[i] = { ARGV[a], ARGV[a + 1], tonumber(ARGV[a + 2]) }
  a = a + 3
end
local out, k, nargs = {}, 1, #ARGV
local base, count, ttl = {}, {}, {}
while a <= nargs do
  local m, n = tonumber(ARGV[a]), tonumber(ARGV[a + 1]); a = a + 2
  local shape = {}
  for i = 1, n do shape[i] = kinds[tonumber(ARGV[a])]; a = a + 1 end
  for _ = 1, m do
    local failed = 0
    for i = 1, n do
      if failed == 0 then
        local kind, key = shape[i], KEYS[k]
        if kind[1] == 'd' then
          if not redis.call('SET', key, '1', 'NX', 'PX', kind[2]) then failed = i end
        else
          local c = count[key]
          if c == nil then
            c = tonumber(redis.call('GET', key) or '0')
            base[key] = c
            ttl[key] = kind[2]
          end
          c = c + 1
          count[key] = c
          if c > kind[3] then failed = i end
        end
      end
      k = k + 1
    end
    out[#out + 1] = failed
  end
end
for key, c in pairs(count) do
  redis.call('INCRBY', key, c - base[key])
  if base[key] == 0 then redis.call('PEXPIRE', key, ttl[key]) end
end
return out
"#;

/// One question for Redis about one record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// The first with `key` within `window`?
    Dedup { key: String, window: Duration },
    /// Within `limit` for `key` in the window the key names (the key
    /// carries the window's number; it expires after two windows)?
    Rate { key: String, limit: u64, window: Duration },
}

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("redis state: {0}")]
    Url(String),
    #[error("redis state credentials: {0}")]
    Secret(#[from] dbintel_core::secret::SecretError),
    #[error("redis: {0}")]
    Redis(String),
    #[error("redis: no answer within {0:?}")]
    Timeout(Duration),
    #[error("redis: malformed reply: {0}")]
    Malformed(String),
}

/// A Redis error without anything that could carry a password.
fn redis_error(e: &redis::RedisError) -> StateError {
    StateError::Redis(format!("{:?}: {}", e.kind(), e.detail().unwrap_or(e.category())))
}

pub struct SharedState {
    client: redis::Client,
    manager: Option<ConnectionManager>,
    /// The script is known to be in the server's cache.
    loaded: bool,
    script: redis::Script,
    timeout: Duration,
}

impl SharedState {
    /// Checks the URL and resolves the credentials; connects on first use.
    pub fn new(state: &RedisState, timeout: Duration) -> Result<SharedState, StateError> {
        if state.url.starts_with("rediss://") && rustls::crypto::CryptoProvider::get_default().is_none() {
            // the binary installs ring first; a library caller may not have,
            // and rustls would panic at the first TLS connection
            let _ = rustls::crypto::ring::default_provider().install_default();
        }
        let mut info = state
            .url
            .as_str()
            .into_connection_info()
            .map_err(|e| StateError::Url(format!("not a redis:// or rediss:// URL ({:?})", e.kind())))?;
        let mut settings = info.redis_settings().clone();
        if let Some(user) = &state.username {
            settings = settings.set_username(Secret::resolve(user)?.expose());
        }
        if let Some(password) = &state.password {
            settings = settings.set_password(Secret::resolve(password)?.expose());
        }
        info = info.set_redis_settings(settings);
        let client = redis::Client::open(info).map_err(|e| redis_error(&e))?;
        Ok(SharedState { client, manager: None, loaded: false, script: redis::Script::new(DECIDE), timeout })
    }

    fn manager(&mut self) -> Result<ConnectionManager, StateError> {
        if let Some(m) = &self.manager {
            return Ok(m.clone());
        }
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(self.timeout))
            .set_response_timeout(Some(self.timeout))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_secs(1));
        let manager = ConnectionManager::new_lazy_with_config(self.client.clone(), config).map_err(|e| redis_error(&e))?;
        self.manager = Some(manager.clone());
        Ok(manager)
    }

    /// Runs every record's steps (`chains[i]` for record i) in one round
    /// trip; for each record, 0 or the number of the step that dropped it.
    pub async fn decide(&mut self, chains: &[Vec<Step>]) -> Result<Vec<u32>, StateError> {
        if chains.is_empty() {
            return Ok(Vec::new());
        }
        let mut conn = self.manager()?;
        for attempt in 0..2 {
            let mut pipe = redis::pipe();
            if !self.loaded {
                pipe.cmd("SCRIPT").arg("LOAD").arg(DECIDE);
            }
            for chunk in chains.chunks(CHUNK) {
                // the step kinds this call uses, numbered from 1
                let mut kinds: Vec<(&str, u64, u64)> = Vec::new();
                let mut kind_of = |step: &Step| -> usize {
                    let kind = match step {
                        Step::Dedup { window, .. } => ("d", millis(*window), 0),
                        Step::Rate { limit, window, .. } => ("r", millis(*window) * 2, *limit),
                    };
                    match kinds.iter().position(|k| *k == kind) {
                        Some(i) => i + 1,
                        None => {
                            kinds.push(kind);
                            kinds.len()
                        }
                    }
                };
                let numbers: Vec<Vec<usize>> = chunk.iter().map(|steps| steps.iter().map(&mut kind_of).collect()).collect();
                let cmd = pipe.cmd("EVALSHA").arg(self.script.get_hash());
                cmd.arg(chunk.iter().map(Vec::len).sum::<usize>());
                for step in chunk.iter().flatten() {
                    match step {
                        Step::Dedup { key, .. } | Step::Rate { key, .. } => cmd.arg(key.as_str()),
                    };
                }
                cmd.arg(kinds.len());
                for (kind, ttl, limit) in &kinds {
                    cmd.arg(*kind).arg(*ttl).arg(*limit);
                }
                // runs of records with the same kinds of steps
                let mut at = 0;
                while at < numbers.len() {
                    let run = numbers[at..].iter().take_while(|n| **n == numbers[at]).count();
                    cmd.arg(run).arg(numbers[at].len());
                    for n in &numbers[at] {
                        cmd.arg(*n);
                    }
                    at += run;
                }
            }
            let replies = match tokio::time::timeout(self.timeout, pipe.query_async::<Vec<Value>>(&mut conn)).await {
                Err(_) => return Err(StateError::Timeout(self.timeout)),
                Ok(Err(e)) if attempt == 0 && e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::NoScript) => {
                    // the server lost its script cache (a restart)
                    self.loaded = false;
                    continue;
                }
                Ok(Err(e)) => return Err(redis_error(&e)),
                Ok(Ok(replies)) => replies,
            };
            let replies = if self.loaded { &replies[..] } else { replies.get(1..).unwrap_or_default() };
            self.loaded = true;
            return answers(replies, chains);
        }
        Err(StateError::Redis("the decision script could not be loaded".into()))
    }
}

fn millis(d: Duration) -> u64 {
    d.as_millis().clamp(1, u128::from(u64::MAX)) as u64
}

/// The script's replies, one array per chunk, checked against what was
/// asked.
fn answers(replies: &[Value], chains: &[Vec<Step>]) -> Result<Vec<u32>, StateError> {
    let chunks: Vec<&[Vec<Step>]> = chains.chunks(CHUNK).collect();
    if replies.len() != chunks.len() {
        return Err(StateError::Malformed(format!("{} replies for {} calls", replies.len(), chunks.len())));
    }
    let mut out = Vec::with_capacity(chains.len());
    for (reply, chunk) in replies.iter().zip(chunks) {
        let Value::Array(items) = reply else {
            return Err(StateError::Malformed(format!("expected an array, got {}", kind(reply))));
        };
        if items.len() != chunk.len() {
            return Err(StateError::Malformed(format!("{} answers for {} records", items.len(), chunk.len())));
        }
        for (item, steps) in items.iter().zip(chunk) {
            match item {
                Value::Int(n) if (0..=steps.len() as i64).contains(n) => out.push(*n as u32),
                other => return Err(StateError::Malformed(format!("answer {} for a record with {} steps", kind(other), steps.len()))),
            }
        }
    }
    Ok(out)
}

/// A reply's type, for messages (never its contents).
fn kind(v: &Value) -> String {
    match v {
        Value::Int(n) => format!("integer {n}"),
        Value::Array(a) => format!("array of {}", a.len()),
        Value::Nil => "nil".into(),
        Value::BulkString(_) => "bulk string".into(),
        Value::SimpleString(_) => "simple string".into(),
        Value::Okay => "OK".into(),
        Value::ServerError(e) => format!("error {:?}", e.code()),
        _ => "another type".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dedup(k: &str) -> Step {
        Step::Dedup { key: k.into(), window: Duration::from_secs(1) }
    }

    #[test]
    fn replies_of_the_wrong_shape_are_errors() {
        let chains = vec![vec![dedup("a")], vec![dedup("b"), dedup("c")]];
        assert_eq!(answers(&[Value::Array(vec![Value::Int(0), Value::Int(2)])], &chains).unwrap(), [0, 2]);
        for bad in [
            vec![],
            vec![Value::Int(0)],
            vec![Value::Array(vec![Value::Int(0)])],
            vec![Value::Array(vec![Value::Int(0), Value::Int(3)])],
            vec![Value::Array(vec![Value::Int(-1), Value::Int(0)])],
            vec![Value::Array(vec![Value::Nil, Value::Int(0)])],
            vec![Value::Array(vec![Value::Int(0), Value::Int(0)]), Value::Nil],
        ] {
            let err = answers(&bad, &chains).expect_err("malformed");
            assert!(matches!(err, StateError::Malformed(_)), "{err}");
        }
    }

    #[test]
    fn urls_are_checked_and_credentials_resolved() {
        std::env::set_var("DBINTEL_TEST_REDIS_PW", "s3cret-pw");
        let state = RedisState {
            url: "rediss://cache.internal:6380/2".into(),
            username: None,
            password: Some(dbintel_dsl::plan::SecretRef::Env("DBINTEL_TEST_REDIS_PW".into())),
        };
        let s = SharedState::new(&state, Duration::from_millis(100)).expect("a TLS URL");
        let info = s.client.get_connection_info();
        assert_eq!(info.redis_settings().password(), Some("s3cret-pw"));
        let bad = RedisState { url: "memcached://x".into(), username: None, password: None };
        let err = SharedState::new(&bad, Duration::from_millis(100)).err().expect("refused").to_string();
        assert!(err.contains("redis://"), "{err}");
    }
}
