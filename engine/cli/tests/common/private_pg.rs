//! A PostgreSQL 15 of the test's own (initdb + pg_ctl in a scratch
//! directory, as the postgres user, on a free port), and a streaming
//! replica of it (pg_basebackup -R): for tests that must do what nobody
//! may do to the shared servers — lock a catalogue, pause replay, change
//! server settings and restart — and count sessions nobody else opens.
//! Other majors (12 to 18) run the npm binaries tests/pg-versions.sh
//! installs ([`PrivatePg::of_major`]). Stopped (immediate) on drop, and
//! its data directory removed.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

const BIN: &str = "/usr/lib/postgresql/15/bin";

pub struct PrivatePg {
    pub port: u16,
    data: PathBuf,
    dir: PathBuf,
    /// The server's programs (initdb, pg_ctl…).
    bin: PathBuf,
}

/// Runs a PostgreSQL program of `bin` as the postgres user; fails the
/// test with its output when it fails.
fn as_postgres_in(bin: &Path, program: &str, args: &[&str]) {
    let out = Command::new("runuser")
        .args(["-u", "postgres", "--"])
        .arg(bin.join(program))
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

fn as_postgres(program: &str, args: &[&str]) {
    as_postgres_in(Path::new(BIN), program, args)
}

/// The npm binaries of PostgreSQL `major` that tests/pg-versions.sh
/// installed in its cache (the test fails, naming the command, when they
/// are missing).
pub fn npm_bin(major: u32) -> PathBuf {
    let cache = std::env::var_os("DBINTEL_CACHE").map(PathBuf::from).unwrap_or_else(|| {
        if std::env::var("USER").as_deref() == Ok("root") || Path::new("/var/cache/dbintel").is_dir() {
            PathBuf::from("/var/cache/dbintel")
        } else {
            PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(".cache/dbintel")
        }
    });
    let install = cache.join("postgres/install");
    let found = std::fs::read_dir(&install).ok().and_then(|entries| {
        entries.filter_map(Result::ok).map(|e| e.path()).find(|p| {
            p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with(&format!("{major}."))) && p.join(".complete").exists()
        })
    });
    let dir = found.unwrap_or_else(|| panic!("no PostgreSQL {major} in {}: run tests/pg-versions.sh start {major}", install.display()));
    dir.join("native/bin")
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
        PrivatePg::initdb(Path::new(BIN), name)
    }

    /// A new primary of another major (12 to 18), from the npm binaries
    /// tests/pg-versions.sh installs; as [`PrivatePg::primary`].
    pub fn of_major(major: u32, name: &str) -> PrivatePg {
        PrivatePg::initdb(&npm_bin(major), name)
    }

    fn initdb(bin: &Path, name: &str) -> PrivatePg {
        let dir = super::scratch(&format!("pg-{name}"));
        let data = dir.join("data");
        chown_postgres(&dir);
        // --no-instructions came in 13; the output is not read anyway
        as_postgres_in(
            bin,
            "initdb",
            &["-D", data.to_str().unwrap(), "-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8", "--locale=C"],
        );
        let pg = PrivatePg { port: super::otlp::free_port(), data, dir, bin: bin.to_path_buf() };
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
        let pg = PrivatePg { port: super::otlp::free_port(), data, dir, bin: PathBuf::from(BIN) };
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
        as_postgres_in(
            &self.bin,
            "pg_ctl",
            &["-D", self.data.to_str().unwrap(), "-l", log.to_str().unwrap(), "-o", &options, "-w", "-t", "60", "start"],
        );
    }

    /// Stops (fast) and starts again: settings only a start reads.
    pub fn restart(&self) {
        as_postgres_in(&self.bin, "pg_ctl", &["-D", self.data.to_str().unwrap(), "-m", "fast", "-w", "-t", "60", "stop"]);
        self.start();
    }

    /// Runs a psql script (psql's `\connect` included) as the superuser,
    /// starting in `database`; its output.
    pub fn script(&self, database: &str, sql: &str) -> String {
        let file = self.dir.join(format!("script-{}.sql", std::process::id()));
        std::fs::write(&file, sql).expect("write the script");
        super::private_psql(self.port, database, &["-f".as_ref(), file.as_os_str()], sql)
    }

    /// A DSN for `role` (trust auth: any password).
    pub fn dsn(&self, role: &str) -> String {
        format!("postgres://{role}:unused-pw@127.0.0.1:{}/postgres", self.port)
    }

    /// Runs SQL as the superuser; its unaligned output.
    pub fn sql(&self, sql: &str) -> String {
        super::private_psql(self.port, "postgres", &["-c".as_ref(), sql.as_ref()], sql)
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
                self.bin.join("pg_ctl").to_str().unwrap_or_default(),
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
