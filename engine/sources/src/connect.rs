//! How to reach a target: typed connection options, never a URL pasted
//! together.
//!
//! A DSN is parsed once, by the driver's own parser, into its options
//! (`PgConnectOptions`, `MySqlConnectOptions`). Everything derived from it
//! afterwards — a password from a targets file, the parts of a target
//! (host, port, database, user), another database of the same server found
//! by discovery — is set on those options field by field. A name is only
//! ever a name: a database called `x?host=elsewhere&sslmode=disable` is
//! that database on the configured server, never a redirection of the
//! connection (and of its password) to another host, which is what pasting
//! names into URL strings allowed.

use std::str::FromStr;

use dbintel_core::record::Resource;
use dbintel_core::secret::Secret;
use dbintel_dsl::plan::{SecretRef, TargetDsn};
use dbintel_dsl::schema::{DbSettings, SslMode};
use sqlx::mysql::{MySqlConnectOptions, MySqlSslMode};
use sqlx::postgres::{PgConnectOptions, PgSslMode};

use crate::target::Engine;
use crate::{setup_error, SourceError};

/// The driver options of one engine.
#[derive(Clone)]
enum Options {
    Pg(Box<PgConnectOptions>),
    My(Box<MySqlConnectOptions>),
}

/// Everything needed to open sessions to one target. Holds the password
/// inside the driver's options; `Debug` shows only where it came from.
#[derive(Clone)]
pub struct ConnectSpec {
    engine: Engine,
    options: Options,
    /// What driver messages are scrubbed of (the DSN as read, the
    /// password), and where the credentials came from, for messages.
    secret: Secret,
    /// The DSN's own `sslmode` (`ssl-mode`), when it writes one.
    dsn_sslmode: Option<SslMode>,
}

impl std::fmt::Debug for ConnectSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ConnectSpec({:?} {}:{} from {})", self.engine, self.host(), self.port(), self.secret)
    }
}

impl ConnectSpec {
    /// A plain `dsn = env(…)` / `file(…)` source, read now (a mounted
    /// secret may have been rotated since the last attempt).
    pub fn for_source(name: &str, kind: &str, settings: &DbSettings) -> Result<ConnectSpec, SourceError> {
        let reference = settings.dsn.as_ref().ok_or_else(|| setup_error(name, "no dsn".into()))?;
        ConnectSpec::resolve(name, kind, &TargetDsn::Secret(reference.clone()))
    }

    /// A target's DSN, read now: the whole DSN from its secret, or a URL
    /// written without its password with the password read from its file
    /// or variable, or the DSN's parts. `kind` is the source's kind; a
    /// `sql` source's engine is its DSN's scheme.
    pub fn resolve(name: &str, kind: &str, dsn: &TargetDsn) -> Result<ConnectSpec, SourceError> {
        let read = |reference: &SecretRef| Secret::resolve(reference).map_err(|e| setup_error(name, e.to_string()));
        match dsn {
            TargetDsn::Secret(reference) => {
                let secret = read(reference)?;
                ConnectSpec::parse(name, kind, secret)
            }
            TargetDsn::Url { url, password } => {
                let mut spec = ConnectSpec::parse(name, kind, Secret::plain(url, "the targets list"))?;
                if let Some(reference) = password {
                    let password = read(reference)?;
                    spec.options = match spec.options {
                        Options::Pg(o) => Options::Pg(Box::new(o.password(password.expose()))),
                        Options::My(o) => Options::My(Box::new(o.password(password.expose()))),
                    };
                    spec.secret = Secret::plain(password.expose(), "the targets list and its password");
                }
                Ok(spec)
            }
            TargetDsn::Parts { host, port, database, user, password } => {
                let engine = Engine::of(kind, None);
                let password = password.as_ref().map(read).transpose()?;
                let port = port.unwrap_or_else(|| engine.default_port());
                let options = match engine {
                    Engine::Postgres => {
                        let mut o = PgConnectOptions::new_without_pgpass().host(host).port(port);
                        if let Some(user) = user {
                            o = o.username(user);
                        }
                        if let Some(p) = &password {
                            o = o.password(p.expose());
                        }
                        if let Some(db) = database {
                            o = o.database(db);
                        }
                        Options::Pg(Box::new(o))
                    }
                    Engine::MySql => {
                        let mut o = MySqlConnectOptions::new().host(host).port(port);
                        if let Some(user) = user {
                            o = o.username(user);
                        }
                        if let Some(p) = &password {
                            o = o.password(p.expose());
                        }
                        if let Some(db) = database {
                            o = o.database(db);
                        }
                        Options::My(Box::new(o))
                    }
                };
                let secret = match password {
                    Some(p) => Secret::plain(p.expose(), "the targets list and its password"),
                    None => Secret::plain("", "the targets list"),
                };
                Ok(ConnectSpec { engine, options, secret, dsn_sslmode: None })
            }
        }
    }

    /// A whole DSN, by the driver's parser.
    fn parse(name: &str, kind: &str, secret: Secret) -> Result<ConnectSpec, SourceError> {
        let engine = Engine::of(kind, Some(secret.expose()));
        let invalid = |e: sqlx::Error| setup_error(name, format!("the DSN from {secret} is not valid: {}", secret.scrub(&e.to_string())));
        let options = match engine {
            Engine::Postgres => Options::Pg(Box::new(PgConnectOptions::from_str(secret.expose()).map_err(invalid)?)),
            // the driver's parser reads `mariadb://` as it reads `mysql://`
            Engine::MySql => Options::My(Box::new(MySqlConnectOptions::from_str(secret.expose()).map_err(invalid)?)),
        };
        let mut spec = ConnectSpec { engine, options, secret, dsn_sslmode: None };
        if writes_sslmode(spec.secret.expose()) {
            spec.dsn_sslmode = Some(spec.driver_sslmode());
        }
        Ok(spec)
    }

    /// The TLS the session uses: the DSN's own `sslmode` where the source
    /// sets none, the source's `sslmode` where the DSN writes none, and the
    /// stricter of the two where both do (a setting never weakens what the
    /// DSN asks for); neither: `prefer`, as libpq.
    pub fn sslmode(&self, settings: &DbSettings) -> SslMode {
        match (settings.sslmode, self.dsn_sslmode) {
            (Some(setting), Some(dsn)) => setting.max(dsn),
            (Some(setting), None) => setting,
            (None, _) => self.driver_sslmode(),
        }
    }

    /// These options with the TLS of [`ConnectSpec::sslmode`] and the
    /// source's `sslrootcert`.
    pub fn with_tls(mut self, settings: &DbSettings) -> ConnectSpec {
        let mode = self.sslmode(settings);
        let ca = settings.sslrootcert.as_deref();
        self.options = match self.options {
            Options::Pg(o) => {
                let mut o = o.ssl_mode(match mode {
                    SslMode::Disable => PgSslMode::Disable,
                    SslMode::Prefer => PgSslMode::Prefer,
                    SslMode::Require => PgSslMode::Require,
                    SslMode::VerifyCa => PgSslMode::VerifyCa,
                    SslMode::VerifyFull => PgSslMode::VerifyFull,
                });
                if let Some(ca) = ca {
                    o = o.ssl_root_cert(ca);
                }
                Options::Pg(Box::new(o))
            }
            Options::My(o) => {
                let mut o = o.ssl_mode(match mode {
                    SslMode::Disable => MySqlSslMode::Disabled,
                    SslMode::Prefer => MySqlSslMode::Preferred,
                    SslMode::Require => MySqlSslMode::Required,
                    SslMode::VerifyCa => MySqlSslMode::VerifyCa,
                    SslMode::VerifyFull => MySqlSslMode::VerifyIdentity,
                });
                if let Some(ca) = ca {
                    o = o.ssl_ca(ca);
                }
                Options::My(Box::new(o))
            }
        };
        self
    }

    /// The mode the driver's options hold now.
    fn driver_sslmode(&self) -> SslMode {
        match &self.options {
            Options::Pg(o) => match o.get_ssl_mode() {
                PgSslMode::Disable => SslMode::Disable,
                PgSslMode::Allow | PgSslMode::Prefer => SslMode::Prefer,
                PgSslMode::Require => SslMode::Require,
                PgSslMode::VerifyCa => SslMode::VerifyCa,
                PgSslMode::VerifyFull => SslMode::VerifyFull,
            },
            Options::My(o) => match o.get_ssl_mode() {
                MySqlSslMode::Disabled => SslMode::Disable,
                MySqlSslMode::Preferred => SslMode::Prefer,
                MySqlSslMode::Required => SslMode::Require,
                MySqlSslMode::VerifyCa => SslMode::VerifyCa,
                MySqlSslMode::VerifyIdentity => SslMode::VerifyFull,
            },
        }
    }

    /// The same server, role and settings, another database: set as the
    /// database, whatever characters its name holds.
    pub fn with_database(&self, database: &str) -> ConnectSpec {
        let options = match &self.options {
            Options::Pg(o) => Options::Pg(Box::new((**o).clone().database(database))),
            Options::My(o) => Options::My(Box::new((**o).clone().database(database))),
        };
        ConnectSpec { engine: self.engine, options, secret: self.secret.clone(), dsn_sslmode: self.dsn_sslmode }
    }

    pub fn engine(&self) -> Engine {
        self.engine
    }

    /// The host as written (a Unix socket's path when there is one).
    pub fn host(&self) -> String {
        let (host, socket) = match &self.options {
            Options::Pg(o) => (o.get_host(), o.get_socket()),
            Options::My(o) => (o.get_host(), o.get_socket()),
        };
        socket.map(|s| s.display().to_string()).unwrap_or_else(|| host.to_string())
    }

    pub fn port(&self) -> u16 {
        match &self.options {
            Options::Pg(o) => o.get_port(),
            Options::My(o) => o.get_port(),
        }
    }

    /// The user the DSN names (the driver's default when it names none).
    pub fn username(&self) -> &str {
        match &self.options {
            Options::Pg(o) => o.get_username(),
            Options::My(o) => o.get_username(),
        }
    }

    /// The database the DSN names (`None`: the server picks, e.g. the
    /// user's name).
    pub fn database(&self) -> Option<&str> {
        match &self.options {
            Options::Pg(o) => o.get_database(),
            Options::My(o) => o.get_database(),
        }
    }

    /// The server as configured: `host:port`.
    pub fn server(&self) -> String {
        format!("{}:{}", self.host(), self.port())
    }

    /// The resource every record of this target carries, without
    /// connecting (see [`crate::entity`]).
    pub fn resource(&self, identity: dbintel_dsl::schema::ServiceInstanceId) -> Resource {
        crate::target_resource(self.engine.system(), &self.host(), self.port(), identity)
    }

    /// What driver messages are scrubbed of.
    pub fn secret(&self) -> &Secret {
        &self.secret
    }

    pub(crate) fn pg_options(&self) -> Option<&PgConnectOptions> {
        match &self.options {
            Options::Pg(o) => Some(o),
            Options::My(_) => None,
        }
    }

    pub(crate) fn my_options(&self) -> Option<&MySqlConnectOptions> {
        match &self.options {
            Options::My(o) => Some(o),
            Options::Pg(_) => None,
        }
    }
}

/// Whether a DSN's query string names its TLS mode (`sslmode`, MySQL's
/// `ssl-mode`).
fn writes_sslmode(dsn: &str) -> bool {
    let Some((_, query)) = dsn.split_once('?') else { return false };
    query.split('&').any(|pair| {
        let key = pair.split_once('=').map_or(pair, |(k, _)| k);
        matches!(key.to_ascii_lowercase().as_str(), "sslmode" | "ssl-mode" | "ssl_mode")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(text: &str) -> TargetDsn {
        TargetDsn::Url { url: text.into(), password: None }
    }

    #[test]
    fn a_database_name_never_redirects_the_connection() {
        let parent = ConnectSpec::resolve("t", "postgres", &url("postgres://mon@db.internal:5432/postgres?sslmode=require")).unwrap();
        for name in [
            "x?host=127.0.0.2&port=6543&sslmode=disable",
            "y/../?hostaddr=10.0.0.1",
            "a#b",
            "100%",
            "%2F%3F",
            "it's \"quoted\"",
            "été ünï",
            "@evil.example:5432/x",
        ] {
            let child = parent.with_database(name);
            assert_eq!(child.host(), "db.internal", "{name}");
            assert_eq!(child.port(), 5432, "{name}");
            assert_eq!(child.database(), Some(name), "the name is the database, verbatim");
            let o = child.pg_options().unwrap();
            assert!(matches!(o.get_ssl_mode(), sqlx::postgres::PgSslMode::Require), "{name}");
        }
        let my = ConnectSpec::resolve("t", "mysql", &url("mysql://mon@db.internal:3306/app")).unwrap();
        let child = my.with_database("x?socket=/tmp/evil.sock");
        assert_eq!((child.host().as_str(), child.port(), child.database()), ("db.internal", 3306, Some("x?socket=/tmp/evil.sock")));
    }

    #[test]
    fn a_dsns_own_sslmode_stands_and_a_setting_never_weakens_it() {
        let with = |mode: Option<SslMode>| DbSettings { sslmode: mode, ..DbSettings::from_settings(&Default::default()) };
        let spec = |dsn: &str| ConnectSpec::resolve("t", if dsn.starts_with("mysql") { "mysql" } else { "postgres" }, &url(dsn)).unwrap();
        let cases = [
            ("postgres://m@db:5432/x?sslmode=verify-full", None, SslMode::VerifyFull),
            ("postgres://m@db:5432/x?sslmode=require", Some(SslMode::Prefer), SslMode::Require),
            ("postgres://m@db:5432/x?sslmode=disable", Some(SslMode::VerifyCa), SslMode::VerifyCa),
            ("postgres://m@db:5432/x", Some(SslMode::Disable), SslMode::Disable),
            ("postgres://m@db:5432/x", None, SslMode::Prefer),
            ("mysql://m@db:3306/x?ssl-mode=REQUIRED", None, SslMode::Require),
            ("mysql://m@db:3306/x?ssl-mode=VERIFY_IDENTITY", Some(SslMode::Require), SslMode::VerifyFull),
            ("mysql://m@db:3306/x", Some(SslMode::VerifyCa), SslMode::VerifyCa),
        ];
        for (dsn, setting, expected) in cases {
            let settings = with(setting);
            let s = spec(dsn);
            assert_eq!(s.sslmode(&settings), expected, "{dsn} with {setting:?}");
            // what the driver is given is the same
            let tls = s.clone().with_tls(&settings);
            assert_eq!(tls.driver_sslmode(), expected, "{dsn} with {setting:?}");
            // and another database of the server keeps it
            assert_eq!(tls.with_database("other").driver_sslmode(), expected);
        }
    }

    #[test]
    fn parts_and_passwords_are_set_as_fields() {
        std::env::set_var("DBINTEL_TEST_CONNECT_PW", "p@ss:/w rd?host=evil");
        let password = Some(SecretRef::Env("DBINTEL_TEST_CONNECT_PW".into()));
        let parts = TargetDsn::Parts {
            host: "db.internal".into(),
            port: None,
            database: Some("we?ird#db".into()),
            user: Some("mon@corp".into()),
            password: password.clone(),
        };
        let spec = ConnectSpec::resolve("t", "postgres", &parts).unwrap();
        assert_eq!((spec.host().as_str(), spec.port(), spec.database()), ("db.internal", 5432, Some("we?ird#db")));
        assert_eq!(spec.pg_options().unwrap().get_username(), "mon@corp");
        assert!(!format!("{spec:?}").contains("p@ss"), "never printed");
        let url = TargetDsn::Url { url: "mysql://mon@h:3307/db?ssl-mode=REQUIRED".into(), password };
        let spec = ConnectSpec::resolve("t", "mysql", &url).unwrap();
        assert_eq!((spec.host().as_str(), spec.port(), spec.database()), ("h", 3307, Some("db")));
        assert_eq!(spec.secret().scrub("bad password p@ss:/w rd?host=evil"), "bad password ***");
        let missing = TargetDsn::Parts {
            host: "h".into(),
            port: None,
            database: None,
            user: None,
            password: Some(SecretRef::Env("DBINTEL_TEST_NOT_SET".into())),
        };
        assert!(ConnectSpec::resolve("t", "postgres", &missing).is_err());
    }

    #[test]
    fn a_sql_source_speaks_its_dsn_scheme() {
        let my = ConnectSpec::resolve("t", "sql", &url("mariadb://u@h/db")).unwrap();
        assert_eq!(my.engine(), Engine::MySql);
        let pg = ConnectSpec::resolve("t", "sql", &url("postgresql://u@h/db")).unwrap();
        assert_eq!(pg.engine(), Engine::Postgres);
        assert_eq!(pg.server(), "h:5432");
    }
}
