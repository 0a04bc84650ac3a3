//! Reaching the target exactly as `run` does, and the role it connects as.
//!
//! The DSN is resolved by [`TargetPlan::connect_spec`] and the session
//! opened by [`Target::connect`] with the target's own settings, so the
//! session is as bounded as any of `run`'s (statement timeout, lock
//! timeout, read-only transactions, a client deadline). A target that
//! cannot be reached is one precise failure: the cause, told apart by the
//! database's error code or, for the network, by resolving the name and
//! opening a TCP connection ourselves — never by reading the driver's
//! message — and the fix for it. The password never appears: the
//! driver's messages are scrubbed by the sources crate before they get
//! here.
//!
//! `run` refuses a superuser or a role that can write. Doctor connects
//! with that refusal first; when it comes, that is a failure with the
//! fix (a role with `pg_monitor`), and doctor connects again allowing
//! the role, to check everything else it can.

use std::net::SocketAddr;
use std::time::Duration;

use dbintel_dsl::schema::{DbSettings, SslMode};
use dbintel_sources::sessions::Sessions;
use dbintel_sources::supervisor::TargetPlan;
use dbintel_sources::target::{Engine, Target};
use dbintel_sources::{ConnectSpec, SourceError};

use crate::check::{Check, Family, Finding, Fix, Status, BOTH};
use crate::quote::{my_literal, pg_ident, pg_literal};

pub const CONNECTION: Check = Check {
    id: "connection",
    family: Family::Connection,
    engines: BOTH,
    what: "reaching the server with the pipeline's DSN and settings",
    means: "nothing is collected from this target",
};

pub const ROLE: Check = Check {
    id: "role.privileged",
    family: Family::Connection,
    engines: BOTH,
    what: "the role is no superuser and cannot write",
    means: "`run` refuses to scrape this target (unless the source says allow_privileged = true): a monitoring role must not be able to change data",
};

/// A target's session, and what connecting found.
pub struct Connected {
    pub target: Target,
    pub findings: Vec<Finding>,
}

/// Connects as `run` would. `Err`: the connection failed (one finding,
/// with its cause and fix).
pub async fn connect(plan: &TargetPlan, settings: &DbSettings) -> Result<Connected, Vec<Finding>> {
    let name = TargetPlan::key_of(&plan.source, &plan.target.name);
    let spec = match plan.connect_spec() {
        Ok(spec) => spec,
        Err(e) => return Err(vec![Finding::fail(&CONNECTION, message(&e), Fix::note(setup_note(&plan.node.kind)))]),
    };
    let strict = DbSettings { allow_privileged: false, ..settings.clone() };
    let mut findings = Vec::new();
    let target = match Target::connect(&name, &strict, &spec, Sessions::Pinned).await {
        Ok(target) => {
            findings.push(Finding::ok(&CONNECTION, format!("connected to {}", spec.server())));
            findings.push(Finding::ok(&ROLE, format!("`{}` is no superuser and cannot write", spec.username())));
            target
        }
        Err(SourceError::Privileged { message, .. }) => {
            let status = if settings.allow_privileged { Status::Warn } else { Status::Fail };
            let mut fix = least_privilege_fix(spec.engine(), spec.username(), None);
            if settings.allow_privileged {
                let note =
                    format!("{} The source says allow_privileged = true, so `run` uses it anyway.", fix.note.clone().unwrap_or_default());
                fix = fix.with_note(note);
            }
            let lenient = DbSettings { allow_privileged: true, ..settings.clone() };
            match Target::connect(&name, &lenient, &spec, Sessions::Pinned).await {
                Ok(target) => {
                    findings.push(Finding::ok(&CONNECTION, format!("connected to {}", spec.server())));
                    findings.push(Finding::problem(&ROLE, status, message, fix));
                    target
                }
                Err(e) => return Err(vec![diagnose(&e, &spec, settings).await]),
            }
        }
        Err(e) => return Err(vec![diagnose(&e, &spec, settings).await]),
    };
    Ok(Connected { target, findings })
}

/// The error's own words, without the `source …:` prefix.
fn message(e: &SourceError) -> String {
    match e {
        SourceError::Setup { message, .. } | SourceError::Privileged { message, .. } => message.clone(),
        SourceError::Database { what, message, .. } => format!("{what}: {message}"),
        SourceError::Timeout { what, after, .. } => format!("{what} did not finish within {after:?}"),
        SourceError::BreakerOpen { what, why, .. } => format!("{what} not sent: the circuit breaker is open ({why})"),
        SourceError::PlanSkipped { reason, .. } => reason.clone(),
        SourceError::NoSession { server, cap, .. } => {
            format!("all {cap} sessions this process may hold on {server} are in use (server_sessions)")
        }
    }
}

fn setup_note(kind: &str) -> String {
    let scheme = if kind == "mysql" { "mysql://user@host:3306/database" } else { "postgres://user@host:5432/database" };
    format!(
        "Check the source's `dsn` (or its targets list): env(\"NAME\") must be set in dbintel's environment and file(\"/path\") readable, holding a DSN like {scheme}."
    )
}

/// What the network says about `host:port`, tried by hand once the
/// driver has failed, to tell the causes apart without reading its
/// message.
#[derive(Debug)]
enum Network {
    /// The name does not resolve.
    NoSuchHost(String),
    Refused,
    NoAnswer,
    /// TCP works: the failure came later (TLS, authentication…). The
    /// address dbintel connects from, for a pg_hba.conf line.
    Reached(SocketAddr),
    /// A Unix socket, or an error we cannot classify.
    Unknown,
}

async fn probe_network(host: &str, port: u16, within: Duration) -> Network {
    if host.starts_with('/') {
        return Network::Unknown;
    }
    let addresses = match tokio::time::timeout(within, tokio::net::lookup_host((host, port))).await {
        Ok(Ok(addresses)) => addresses.collect::<Vec<_>>(),
        Ok(Err(e)) => return Network::NoSuchHost(e.to_string()),
        Err(_) => return Network::NoSuchHost(format!("no answer from DNS within {within:?}")),
    };
    let mut outcome = Network::Unknown;
    for address in addresses {
        match tokio::time::timeout(within, tokio::net::TcpStream::connect(address)).await {
            Ok(Ok(stream)) => return stream.local_addr().map(Network::Reached).unwrap_or(Network::Unknown),
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => outcome = Network::Refused,
            Ok(Err(_)) => {}
            Err(_) => {
                if !matches!(outcome, Network::Refused) {
                    outcome = Network::NoAnswer;
                }
            }
        }
    }
    outcome
}

/// One precise failure for a connection that did not work.
async fn diagnose(e: &SourceError, spec: &ConnectSpec, settings: &DbSettings) -> Finding {
    let (host, port, engine) = (spec.host(), spec.port(), spec.engine());
    let user = spec.username().to_string();
    let database = spec.database().map(str::to_string);
    let code = e.code();
    let observed = message(e);
    let fail = |observed: String, fix: Fix| Finding::fail(&CONNECTION, observed, fix);
    let network_code = matches!(code.as_str(), "io" | "connect_timeout" | "pool_timeout" | "protocol");
    if network_code {
        match probe_network(&host, port, settings.connect_timeout).await {
            Network::NoSuchHost(why) => {
                return fail(
                    format!("the host name `{host}` does not resolve ({why})"),
                    Fix::note(
                        "Check the host in the DSN, and the DNS this machine uses (in Kubernetes: the Service's name and namespace).",
                    ),
                );
            }
            Network::Refused => {
                let config = match engine {
                    Engine::Postgres => "`port` and `listen_addresses` in postgresql.conf (listen_addresses = '*' or this address)",
                    Engine::MySql => "`port` and `bind-address` in my.cnf",
                };
                return fail(
                    format!("connection refused at {host}:{port}: nothing listens there"),
                    Fix::note(format!("Is the server running, and listening on this address? Check {config}, and the DSN's port.")),
                );
            }
            Network::NoAnswer => {
                return fail(
                    format!("no answer from {host}:{port} within {:?}", settings.connect_timeout),
                    Fix::note(
                        "A firewall, security group or NetworkPolicy drops the packets, or the host is down. Raise `connect_timeout` only if the network is known to be slow.",
                    ),
                );
            }
            Network::Reached(_) | Network::Unknown => {}
        }
    }
    if code == "tls" {
        let how = match spec.sslmode(settings) {
            SslMode::VerifyCa | SslMode::VerifyFull => {
                "Set the source's `sslrootcert` to the CA certificate that signed the server's certificate (verify-full also needs the DSN's host to be a name in that certificate)."
            }
            _ => "The server does not offer TLS: turn it on (PostgreSQL: ssl = on with ssl_cert_file and ssl_key_file; MySQL/MariaDB: ssl_cert and ssl_key), or lower the source's `sslmode`.",
        };
        return fail(format!("TLS to {host}:{port} failed ({observed})"), Fix::note(how));
    }
    let from = match probe_network(&host, port, settings.connect_timeout).await {
        Network::Reached(local) => local.ip().to_string(),
        _ => "<dbintel's address>".to_string(),
    };
    match (engine, code.as_str()) {
        (Engine::Postgres, "28P01") => fail(
            observed,
            Fix::sql(format!("ALTER ROLE {} PASSWORD '<the password in the DSN>';", pg_ident(&user)))
                .with_note("Or correct the password the DSN's secret holds."),
        ),
        (Engine::Postgres, "28000") => {
            let db = database.clone().unwrap_or_else(|| user.clone());
            let mask = if from.contains(':') { "128" } else { "32" };
            fail(
                observed,
                Fix::sql(format!(
                    "DO $$ BEGIN\n  IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = {lit}) THEN\n    CREATE ROLE {role} LOGIN;\n  END IF;\nEND $$;\nALTER ROLE {role} LOGIN;\nSELECT pg_reload_conf();  -- after the pg_hba.conf line below",
                    lit = pg_literal(&user),
                    role = pg_ident(&user)
                ))
                .with_config("pg_hba.conf, before any line that matches first", format!("host {} {} {from}/{mask} scram-sha-256", pg_ident(&db), pg_ident(&user)), true)
                .with_note("The role must exist, may log in, and pg_hba.conf must let it in from this address; set its password with \\password."),
            )
        }
        (Engine::Postgres, "3D000") => fail(
            observed,
            Fix::note(format!(
                "Point the DSN at a database that exists, or create it: CREATE DATABASE {};",
                pg_ident(database.as_deref().unwrap_or(&user))
            )),
        ),
        (Engine::Postgres, "42501") => fail(
            observed,
            Fix::sql(format!("GRANT CONNECT ON DATABASE {} TO {};", pg_ident(database.as_deref().unwrap_or(&user)), pg_ident(&user))),
        ),
        (Engine::Postgres, "53300") | (Engine::MySql, "1040") | (Engine::MySql, "1203") => fail(
            observed,
            Fix::note("The server has no free connection slot (max_connections, or a connection limit on the role): free some, or raise the limit. dbintel needs `pool` connections (2)."),
        ),
        (Engine::Postgres, "57P03") => fail(
            observed,
            Fix::note("The server is starting, shutting down, or a standby that does not accept reads (hot_standby = off)."),
        ),
        (_, "connect_timeout") => fail(
            format!("{host}:{port} took the connection but did not answer within {:?}", settings.connect_timeout),
            Fix::note(
                "Something in between (a proxy, a load balancer, a port forward) holds connections it cannot pass on, or the server is too busy to start a session. Check that the DSN's port is the database's own.",
            ),
        ),
        (Engine::MySql, "1045") => fail(
            observed,
            Fix::sql(format!(
                "CREATE USER IF NOT EXISTS {account} IDENTIFIED BY '<the password in the DSN>';\nALTER USER {account} IDENTIFIED BY '<the password in the DSN>';",
                account = format!("{}@'%'", my_literal(&user))
            ))
            .with_note("Or correct the password the DSN's secret holds."),
        ),
        (Engine::MySql, "1130") => fail(
            observed,
            Fix::sql(format!("CREATE USER IF NOT EXISTS {}@{} IDENTIFIED BY '<the password in the DSN>';", my_literal(&user), my_literal(&from)))
                .with_note("Then give it the grants of the setup script (dbintel doctor --print-setup-sql)."),
        ),
        (Engine::MySql, "1044") | (Engine::MySql, "1049") => fail(
            observed,
            Fix::note("Point the DSN at a schema the user may use (performance_schema will do), or leave the database out."),
        ),
        _ => fail(format!("{observed} (code {code})"), Fix::note("The database's message above says why; the DSN's host, port, user and database are what to check first.")),
    }
}

/// Once the server is known, the privileged role's fix names what the
/// collectors that run need on this flavour (MySQL's replica privilege).
pub fn refine_role_fix(findings: &mut [Finding], facts: &crate::facts::Facts, collectors: &crate::facts::Collectors) {
    if facts.engine != Engine::MySql || !collectors.runs("instance") {
        return;
    }
    for f in findings.iter_mut().filter(|f| f.check.id == ROLE.id && f.status != Status::Ok) {
        let user = facts.role.rsplit_once('@').map(|(u, _)| u).unwrap_or(&facts.role);
        let privilege = crate::privileges::replica_privilege(facts.flavour, facts.version);
        let note = f.fix.as_ref().and_then(|fix| fix.note.clone());
        let mut fix = least_privilege_fix(Engine::MySql, user, Some(privilege));
        fix.note = note;
        f.fix = Some(fix);
    }
}

/// A role with only what dbintel needs, to use instead.
/// `replica`: MySQL's privilege for replica status, when it is read.
pub fn least_privilege_fix(engine: Engine, current: &str, replica: Option<&str>) -> Fix {
    let name = if current == "dbintel" { "dbintel_monitor" } else { "dbintel" };
    match engine {
        Engine::Postgres => Fix::sql(format!(
            "DO $$ BEGIN\n  IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = {lit}) THEN\n    CREATE ROLE {role} LOGIN;\n  END IF;\nEND $$;\nGRANT pg_monitor TO {role};",
            lit = pg_literal(name),
            role = pg_ident(name)
        ))
        .with_note(format!(
            "Then set its password (\\password {name}) and point the DSN at it: postgres://{name}@host:port/database. pg_monitor lets it read every statistics view, nothing more."
        )),
        Engine::MySql => {
            let account = format!("{}@'%'", my_literal(name));
            let replica = replica.map(|p| format!("\nGRANT {p} ON *.* TO {account};")).unwrap_or_default();
            Fix::sql(format!(
                "CREATE USER IF NOT EXISTS {account} IDENTIFIED BY '<a password>';\nGRANT SELECT ON performance_schema.* TO {account};\nGRANT PROCESS ON *.* TO {account};{replica}"
            ))
            .with_note(format!("Then point the DSN at it: mysql://{name}@host:3306/performance_schema."))
        }
    }
}
