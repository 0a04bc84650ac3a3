//! A PostgreSQL 15 of the test's own (initdb + pg_ctl in a scratch
//! directory, as the postgres user, on a free port), and a streaming
//! replica of it (pg_basebackup -R): for tests that must do what nobody
//! may do to the shared servers — lock a catalogue, pause replay — and
//! count sessions nobody else opens. Stopped (immediate) on drop, and its
//! data directory removed.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

const BIN: &str = "/usr/lib/postgresql/15/bin";

pub struct PrivatePg {
    pub port: u16,
    data: PathBuf,
    dir: PathBuf,
}

/// Runs a PostgreSQL program as the postgres user; fails the test with
/// its output when it fails.
fn as_postgres(program: &str, args: &[&str]) {
    let out = Command::new("runuser")
        .args(["-u", "postgres", "--", &format!("{BIN}/{program}")])
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("runuser {program}: {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn chown_postgres(path: &Path) {
    let out = Command::new("chown").args(["-R", "postgres:postgres"]).arg(path).output().expect("chown");
    assert!(out.status.success(), "chown {}: {}", path.display(), String::from_utf8_lossy(&out.stderr));
}

impl PrivatePg {
    /// A new primary, trust auth on 127.0.0.1, with a login role
    /// `proofs_mon` granted pg_monitor (what the README asks of dbintel's
    /// role).
    pub fn primary(name: &str) -> PrivatePg {
        let dir = super::scratch(&format!("pg-{name}"));
        let data = dir.join("data");
        chown_postgres(&dir);
        as_postgres("initdb", &["-D", data.to_str().unwrap(), "-A", "trust", "-U", "postgres", "--no-sync", "--no-instructions"]);
        let pg = PrivatePg { port: super::otlp::free_port(), data, dir };
        pg.start();
        pg.sql("CREATE ROLE proofs_mon LOGIN; GRANT pg_monitor TO proofs_mon");
        pg
    }

    /// A streaming replica of `primary` (hot standby, no slot).
    pub fn replica_of(primary: &PrivatePg, name: &str) -> PrivatePg {
        let dir = super::scratch(&format!("pg-{name}"));
        let data = dir.join("data");
        chown_postgres(&dir);
        let port = primary.port.to_string();
        as_postgres(
            "pg_basebackup",
            &["-h", "127.0.0.1", "-p", &port, "-U", "postgres", "-D", data.to_str().unwrap(), "-R", "-X", "stream"],
        );
        let pg = PrivatePg { port: super::otlp::free_port(), data, dir };
        pg.start();
        let started = std::time::Instant::now();
        while pg.sql("SELECT coalesce((SELECT status FROM pg_stat_wal_receiver), 'none')") != "streaming" {
            assert!(started.elapsed() < Duration::from_secs(30), "the replica on :{} does not stream; its log:\n{}", pg.port, pg.log());
            std::thread::sleep(Duration::from_millis(100));
        }
        pg
    }

    fn start(&self) {
        let options = format!(
            "-p {} -c listen_addresses=127.0.0.1 -c unix_socket_directories={} -c fsync=off -c max_connections=40",
            self.port,
            self.dir.display()
        );
        let log = self.dir.join("server.log");
        as_postgres("pg_ctl", &["-D", self.data.to_str().unwrap(), "-l", log.to_str().unwrap(), "-o", &options, "-w", "-t", "60", "start"]);
    }

    /// A DSN for `role` (trust auth: any password).
    pub fn dsn(&self, role: &str) -> String {
        format!("postgres://{role}:unused-pw@127.0.0.1:{}/postgres", self.port)
    }

    /// Runs SQL as the superuser; its unaligned output.
    pub fn sql(&self, sql: &str) -> String {
        let out = Command::new("psql")
            .args([
                "-X",
                "-q",
                "-At",
                "-v",
                "ON_ERROR_STOP=1",
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-U",
                "postgres",
                "-d",
                "postgres",
            ])
            .args(["-c", sql])
            .output()
            .expect("psql");
        assert!(out.status.success(), "psql on :{}: {sql}: {}", self.port, String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// A psql session of the superuser running `sql` in the background
    /// (sleepers, lock holders); it ends with its SQL.
    pub fn background(&self, sql: &str) -> std::process::Child {
        Command::new("psql")
            .args(["-X", "-q", "-h", "127.0.0.1", "-p", &self.port.to_string(), "-U", "postgres", "-d", "postgres", "-c", sql])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("psql")
    }

    /// The server's log, for failure messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default()
    }
}

impl Drop for PrivatePg {
    fn drop(&mut self) {
        let _ = Command::new("runuser")
            .args([
                "-u",
                "postgres",
                "--",
                &format!("{BIN}/pg_ctl"),
                "-D",
                self.data.to_str().unwrap_or_default(),
                "-m",
                "immediate",
                "stop",
            ])
            .output();
        // a cluster is tens of megabytes: the log stays, the data goes
        let _ = std::fs::remove_dir_all(&self.data);
    }
}
