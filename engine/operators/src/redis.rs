//! A small Redis client (RESP2 over TCP, blocking, short timeouts) for the
//! sampler's shared state: rate-limit counters and dedup keys that every
//! replica sees. Two commands are all it needs (`EVAL`, `SET … NX PX`), so
//! a client crate would be more code than this.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    Simple(String),
    Int(i64),
    Bulk(Option<Vec<u8>>),
    Array(Vec<Reply>),
}

pub struct Redis {
    addr: String,
    password: Option<String>,
    db: Option<u32>,
    conn: Option<BufReader<TcpStream>>,
    timeout: Duration,
}

/// `redis://[[user]:password@]host[:port][/db]`.
pub fn parse_url(url: &str) -> Result<(String, Option<String>, Option<u32>), String> {
    let rest = url.strip_prefix("redis://").ok_or_else(|| "only redis:// URLs are supported (no TLS)".to_string())?;
    let (auth, hostpart) = match rest.rsplit_once('@') {
        Some((a, h)) => (Some(a), h),
        None => (None, rest),
    };
    let password = auth.and_then(|a| a.split_once(':').map(|(_, p)| p.to_string()).or(Some(a.to_string()))).filter(|p| !p.is_empty());
    let (host, db) = match hostpart.split_once('/') {
        Some((h, d)) => (h, d.parse().ok()),
        None => (hostpart, None),
    };
    let addr = if host.contains(':') { host.to_string() } else { format!("{host}:6379") };
    Ok((addr, password, db))
}

impl Redis {
    pub fn new(url: &str, timeout: Duration) -> Result<Redis, String> {
        let (addr, password, db) = parse_url(url)?;
        Ok(Redis { addr, password, db, conn: None, timeout })
    }

    fn connect(&mut self) -> Result<(), String> {
        use std::net::ToSocketAddrs;
        let addr = self.addr.to_socket_addrs().map_err(|e| format!("redis {}: {e}", self.addr))?.next().ok_or("no address")?;
        let stream = TcpStream::connect_timeout(&addr, self.timeout).map_err(|e| format!("redis {}: {e}", self.addr))?;
        stream.set_read_timeout(Some(self.timeout)).map_err(|e| e.to_string())?;
        stream.set_write_timeout(Some(self.timeout)).map_err(|e| e.to_string())?;
        let _ = stream.set_nodelay(true);
        self.conn = Some(BufReader::new(stream));
        if let Some(pw) = self.password.clone() {
            self.raw(&[b"AUTH", pw.as_bytes()])?;
        }
        if let Some(db) = self.db {
            self.raw(&[b"SELECT", db.to_string().as_bytes()])?;
        }
        Ok(())
    }

    fn raw(&mut self, args: &[&[u8]]) -> Result<Reply, String> {
        let conn = self.conn.as_mut().ok_or("not connected")?;
        let mut buf = format!("*{}\r\n", args.len()).into_bytes();
        for a in args {
            buf.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
            buf.extend_from_slice(a);
            buf.extend_from_slice(b"\r\n");
        }
        conn.get_mut().write_all(&buf).map_err(|e| format!("redis write: {e}"))?;
        read_reply(conn)
    }

    /// Sends a command, connecting first if needed; a failed connection is
    /// dropped so the next call reconnects.
    pub fn command(&mut self, args: &[&[u8]]) -> Result<Reply, String> {
        if self.conn.is_none() {
            self.connect()?;
        }
        let result = self.raw(args);
        if result.is_err() {
            self.conn = None;
        }
        result
    }
}

fn read_line(r: &mut BufReader<TcpStream>) -> Result<String, String> {
    let mut line = String::new();
    let n = r.read_line(&mut line).map_err(|e| format!("redis read: {e}"))?;
    if n == 0 {
        return Err("redis closed the connection".into());
    }
    Ok(line.trim_end_matches(['\r', '\n']).to_string())
}

fn read_reply(r: &mut BufReader<TcpStream>) -> Result<Reply, String> {
    let line = read_line(r)?;
    let (kind, rest) = line.split_at(1.min(line.len()));
    match kind {
        "+" => Ok(Reply::Simple(rest.to_string())),
        "-" => Err(format!("redis: {rest}")),
        ":" => rest.parse().map(Reply::Int).map_err(|_| format!("redis: bad integer {rest:?}")),
        "$" => {
            let len: i64 = rest.parse().map_err(|_| format!("redis: bad length {rest:?}"))?;
            if len < 0 {
                return Ok(Reply::Bulk(None));
            }
            let mut data = vec![0; len as usize + 2];
            r.read_exact(&mut data).map_err(|e| format!("redis read: {e}"))?;
            data.truncate(len as usize);
            Ok(Reply::Bulk(Some(data)))
        }
        "*" => {
            let n: i64 = rest.parse().map_err(|_| format!("redis: bad array {rest:?}"))?;
            (0..n.max(0)).map(|_| read_reply(r)).collect::<Result<_, _>>().map(Reply::Array)
        }
        _ => Err(format!("redis: unexpected reply {line:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert_eq!(parse_url("redis://127.0.0.1:6380/2").unwrap(), ("127.0.0.1:6380".into(), None, Some(2)));
        assert_eq!(parse_url("redis://:s3cret@cache").unwrap(), ("cache:6379".into(), Some("s3cret".into()), None));
        assert!(parse_url("rediss://x").is_err());
    }
}
