//! A MariaDB of the test's own (mariadb-install-db + mariadbd in a
//! scratch directory, on a free port), started from a my.cnf the test
//! may add lines to and restart with: for tests that must change what
//! nobody may change on the shared server (performance_schema off, its
//! consumers, the slow log). Killed on drop.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct PrivateMariaDb {
    pub port: u16,
    dir: PathBuf,
    cnf: PathBuf,
    child: Option<Child>,
}

fn run(command: &mut Command) {
    let out = command.output().unwrap_or_else(|e| panic!("{command:?}: {e}"));
    assert!(out.status.success(), "{command:?}:\n{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
}

impl PrivateMariaDb {
    /// A new server whose my.cnf `[mysqld]` holds `lines` besides where it
    /// lives; a monitoring user `proofs_mon` with no privilege yet.
    pub fn start(name: &str, lines: &[&str]) -> PrivateMariaDb {
        let dir = super::scratch(&format!("mariadb-{name}"));
        let data = dir.join("data");
        run(Command::new("mariadb-install-db")
            .args(["--no-defaults", "--user=root", "--auth-root-authentication-method=normal", "--skip-test-db"])
            .arg(format!("--datadir={}", data.display())));
        let port = super::otlp::free_port();
        let cnf = dir.join("my.cnf");
        let mut config = format!(
            "[mysqld]\nuser = root\ndatadir = {}\nsocket = {}\nport = {port}\nbind-address = 127.0.0.1\nskip-log-bin\nlog-error = {}\n",
            data.display(),
            dir.join("sock").display(),
            dir.join("server.log").display()
        );
        for line in lines {
            config.push_str(line);
            config.push('\n');
        }
        std::fs::write(&cnf, config).expect("my.cnf");
        let mut server = PrivateMariaDb { port, dir, cnf, child: None };
        server.launch();
        server.sql("CREATE USER IF NOT EXISTS 'proofs_mon'@'%' IDENTIFIED BY 'mon-secret-pw'");
        server
    }

    fn launch(&mut self) {
        let child = Command::new("/usr/sbin/mariadbd")
            .arg(format!("--defaults-file={}", self.cnf.display()))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("mariadbd");
        self.child = Some(child);
        let started = Instant::now();
        while !self.client().args(["-e", "SELECT 1"]).stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok_and(|s| s.success()) {
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "the private MariaDB did not answer within 30 s; its log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn client(&self) -> Command {
        let mut c = Command::new("mariadb");
        c.arg(format!("--socket={}", self.dir.join("sock").display())).args(["-uroot", "-N", "-B"]);
        c
    }

    /// Runs SQL as root; its tab-separated output.
    pub fn sql(&self, sql: &str) -> String {
        let out = self.client().args(["-e", sql]).output().expect("mariadb");
        assert!(out.status.success(), "mariadb on :{}: {sql}: {}", self.port, String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// Adds lines to my.cnf's `[mysqld]` (the file's only section).
    pub fn configure(&self, lines: &str) {
        let mut config = std::fs::read_to_string(&self.cnf).expect("my.cnf");
        config.push_str(lines.trim_end());
        config.push('\n');
        std::fs::write(&self.cnf, config).expect("my.cnf");
    }

    /// Shuts down cleanly and starts again from my.cnf.
    pub fn restart(&mut self) {
        run(Command::new("mariadb-admin").arg(format!("--socket={}", self.dir.join("sock").display())).args(["-uroot", "shutdown"]));
        if let Some(mut child) = self.child.take() {
            let _ = child.wait();
        }
        self.launch();
    }

    pub fn dsn(&self, user: &str, password: &str) -> String {
        format!("mysql://{user}:{password}@127.0.0.1:{}/performance_schema", self.port)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default()
    }
}

impl Drop for PrivateMariaDb {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(self.dir.join("data"));
    }
}
