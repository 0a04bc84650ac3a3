//! What a check is, and what it finds.
//!
//! Every check is declared once, as a [`Check`] constant in its family's
//! file: its stable id, the engines it applies to, what it looks at, and
//! what a problem there means for the data. What a run finds is a
//! [`Finding`]: the check, ok / warn / fail (or skip, when an earlier
//! problem makes it meaningless), what was seen on this server, and the
//! [`Fix`] for this server's version and flavour, with the right role and
//! database names.

use dbintel_sources::target::Engine;

/// How a check came out. Ordered from best to worst, so the worst of a
/// target's findings is its `max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Status {
    Ok,
    /// Not run: it does not apply, or an earlier failure makes it
    /// meaningless (its reason says which).
    Skip,
    /// The data arrives, but less or worse than it could.
    Warn,
    /// Data is missing, or the pipeline cannot run as configured.
    Fail,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Skip => "skip",
            Status::Warn => "warn",
            Status::Fail => "fail",
        }
    }
}

/// The families of checks, one file each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Family {
    Connection,
    Version,
    Extensions,
    Settings,
    Privileges,
    PlansHelper,
    StatementFill,
    Clock,
    Tls,
    LogSettings,
}

impl Family {
    pub fn as_str(self) -> &'static str {
        match self {
            Family::Connection => "connection",
            Family::Version => "version",
            Family::Extensions => "extensions",
            Family::Settings => "settings",
            Family::Privileges => "privileges",
            Family::PlansHelper => "plans_helper",
            Family::StatementFill => "statement_fill",
            Family::Clock => "clock",
            Family::Tls => "tls",
            Family::LogSettings => "log_settings",
        }
    }
}

pub const PG: &[Engine] = &[Engine::Postgres];
pub const MY: &[Engine] = &[Engine::MySql];
pub const BOTH: &[Engine] = &[Engine::Postgres, Engine::MySql];

/// One check, declared once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Check {
    /// Stable: scripts and `/status` readers key on it. Never reused.
    pub id: &'static str,
    pub family: Family,
    pub engines: &'static [Engine],
    /// What is looked at, in a few words.
    pub what: &'static str,
    /// What a problem here means for the data.
    pub means: &'static str,
}

/// The exact change that fixes a finding, for this server.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Fix {
    /// SQL for a database administrator (PostgreSQL: a superuser; MySQL:
    /// root or an account with GRANT OPTION).
    pub sql: Option<String>,
    /// The database to run `sql` in (PostgreSQL: objects are per
    /// database; `None`: any).
    pub database: Option<String>,
    /// The same, or what must go with it, in the server's config file.
    pub config: Option<ConfigFix>,
    /// The server must restart before it takes effect.
    pub restart: bool,
    /// What else to do, in words (the pipeline's settings, the network).
    pub note: Option<String>,
}

/// Lines for the server's configuration file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigFix {
    /// `postgresql.conf`, `my.cnf, under [mysqld]`.
    pub file: &'static str,
    pub lines: String,
    /// The SQL does not survive a restart: these lines are needed as well
    /// (MySQL's `SET GLOBAL`, performance_schema's setup tables). Without
    /// it they are an alternative to the SQL.
    pub also: bool,
}

impl Fix {
    pub fn sql(sql: impl Into<String>) -> Fix {
        Fix { sql: Some(sql.into()), ..Fix::default() }
    }

    pub fn note(note: impl Into<String>) -> Fix {
        Fix { note: Some(note.into()), ..Fix::default() }
    }

    pub fn config(file: &'static str, lines: impl Into<String>) -> Fix {
        Fix { config: Some(ConfigFix { file, lines: lines.into(), also: false }), ..Fix::default() }
    }

    pub fn in_database(mut self, database: Option<&str>) -> Fix {
        self.database = database.map(str::to_string);
        self
    }

    pub fn with_config(mut self, file: &'static str, lines: impl Into<String>, also: bool) -> Fix {
        self.config = Some(ConfigFix { file, lines: lines.into(), also });
        self
    }

    pub fn restart(mut self, restart: bool) -> Fix {
        self.restart = restart;
        self
    }

    pub fn with_note(mut self, note: impl Into<String>) -> Fix {
        self.note = Some(note.into());
        self
    }
}

/// What a check found on one target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub check: &'static Check,
    pub status: Status,
    /// What was seen on this server (a setting's value, a count, an error
    /// the database gave — never a secret, never a query's text).
    pub observed: String,
    pub fix: Option<Fix>,
}

impl Finding {
    pub fn ok(check: &'static Check, observed: impl Into<String>) -> Finding {
        Finding { check, status: Status::Ok, observed: observed.into(), fix: None }
    }

    pub fn warn(check: &'static Check, observed: impl Into<String>, fix: Fix) -> Finding {
        Finding { check, status: Status::Warn, observed: observed.into(), fix: Some(fix) }
    }

    pub fn fail(check: &'static Check, observed: impl Into<String>, fix: Fix) -> Finding {
        Finding { check, status: Status::Fail, observed: observed.into(), fix: Some(fix) }
    }

    /// `why` says what made it meaningless.
    pub fn skip(check: &'static Check, why: impl Into<String>) -> Finding {
        Finding { check, status: Status::Skip, observed: why.into(), fix: None }
    }

    /// Warn or fail, as `status` says (some checks fail for one collector
    /// and only warn for another).
    pub fn problem(check: &'static Check, status: Status, observed: impl Into<String>, fix: Fix) -> Finding {
        Finding { check, status, observed: observed.into(), fix: Some(fix) }
    }
}
