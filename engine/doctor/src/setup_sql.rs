//! `dbintel doctor --print-setup-sql`: the whole setup of the pipeline's
//! servers, to hand to a DBA — per server the settings doctor found
//! missing (or, for a server it could not reach, the ones the collectors
//! need), the monitoring role and its grants, and per database the
//! extension and the EXPLAIN helper. Idempotent: running it twice changes
//! nothing the second time. doctor itself only prints it.

use std::collections::BTreeMap;

use dbintel_sources::supervisor::TargetPlan;
use dbintel_sources::target::Engine;

use crate::check::{Family, Finding, Status};
use crate::examine::Options;
use crate::facts::Collectors;
use crate::plans_helper::{explain_function_sql, function_name_of};
use crate::quote::{my_account, my_literal, pg_ident, pg_literal};
use crate::report::TargetReport;
use crate::settings::{consumers_for, instruments_for};

/// One server and the targets of the plan on it.
struct Server<'a> {
    engine: Engine,
    server: String,
    targets: Vec<(&'a TargetPlan, &'a TargetReport)>,
}

/// The script for every server of `plans` (`reports` from a doctor run of
/// the same plans, in the same order).
pub fn script(plans: &[TargetPlan], reports: &[TargetReport], options: &Options) -> String {
    let mut servers: BTreeMap<String, Server<'_>> = BTreeMap::new();
    let mut order = Vec::new();
    for (plan, report) in plans.iter().zip(reports) {
        let Ok(spec) = plan.connect_spec() else { continue };
        let key = format!("{:?} {}", spec.engine(), spec.server());
        if !servers.contains_key(&key) {
            order.push(key.clone());
        }
        servers
            .entry(key)
            .or_insert_with(|| Server { engine: spec.engine(), server: spec.server(), targets: Vec::new() })
            .targets
            .push((plan, report));
    }
    let mut out = String::from(
        "-- dbintel setup, printed by `dbintel doctor --print-setup-sql`.\n-- Idempotent: running it again changes nothing.\n",
    );
    for key in order {
        let server = &servers[&key];
        out.push('\n');
        out.push_str(&match server.engine {
            Engine::Postgres => postgres(server, options),
            Engine::MySql => mysql(server),
        });
    }
    out
}

/// The fixes of the server-wide settings doctor found wrong, as script
/// lines (config lines and notes as comments).
fn settings_fixes(findings: &[&Finding]) -> String {
    let mut out = String::new();
    let mut seen = Vec::new();
    for f in findings {
        let server_setting = matches!(f.check.family, Family::Settings | Family::StatementFill | Family::LogSettings)
            || f.check.id == crate::extensions::PGSS_LOADED.id
            || f.check.id == crate::extensions::PERFORMANCE_SCHEMA.id;
        if !server_setting || !matches!(f.status, Status::Warn | Status::Fail) || seen.contains(&f.check.id) {
            continue;
        }
        seen.push(f.check.id);
        let Some(fix) = &f.fix else { continue };
        out.push_str(&format!("-- {}: {}\n", f.check.id, f.observed));
        if let Some(sql) = &fix.sql {
            out.push_str(sql);
            out.push('\n');
        }
        if let Some(config) = &fix.config {
            let lead = match (fix.sql.is_some(), config.also) {
                (false, _) => "in",
                (true, true) => "and, to last past a restart, in",
                (true, false) => "(or in",
            };
            let close = if fix.sql.is_some() && !config.also { ")" } else { "" };
            out.push_str(&format!("-- {lead} {}{close}:\n", config.file));
            for line in config.lines.lines() {
                out.push_str(&format!("--   {line}\n"));
            }
        }
        if fix.restart {
            out.push_str("-- then restart the server\n");
        }
        if let Some(note) = &fix.note {
            out.push_str(&format!("-- {note}\n"));
        }
    }
    out
}

fn postgres(server: &Server<'_>, options: &Options) -> String {
    let reached = server.targets.iter().find_map(|(_, r)| r.summary.clone());
    let version_num = reached.as_ref().and_then(|s| pg_version_num(&s.version_text));
    let names: Vec<String> = server.targets.iter().map(|(_, r)| r.name()).collect();
    let what = reached.as_ref().map(|s| s.description.clone()).unwrap_or_else(|| "PostgreSQL".into());
    let (host, port) = server.server.rsplit_once(':').unwrap_or((&server.server, "5432"));
    let mut out = format!(
        "-- ==== {what} at {} (targets: {}) ====\n-- Run as a superuser with psql: psql -h {host} -p {port} -U postgres -d postgres -f dbintel-setup.sql\n",
        server.server,
        names.join(", ")
    );
    let collectors: Vec<Collectors> = server.targets.iter().map(|(p, _)| Collectors::of(p)).collect();
    let any = |name: &str| collectors.iter().any(|c| c.runs(name));
    out.push_str("\n-- 1. Server settings\n");
    if reached.is_some() {
        let findings: Vec<&Finding> = server.targets.iter().flat_map(|(_, r)| &r.findings).collect();
        let fixes = settings_fixes(&findings);
        if fixes.is_empty() {
            out.push_str("-- (doctor found every setting the collectors need in place)\n");
        } else {
            out.push_str(&fixes);
        }
    } else {
        out.push_str("-- (doctor could not reach this server: these are what the collectors need; keep what is already set)\n");
        if any("statements") || any("plans") {
            // ALTER SYSTEM replaces the list, and cannot run in a DO block
            // that would read it first: the DBA writes it
            out.push_str(
                "-- shared_preload_libraries must hold pg_stat_statements (then restart), next to the libraries listed now:\n\
                 --   ALTER SYSTEM SET shared_preload_libraries = '<the libraries listed now>, pg_stat_statements';\n",
            );
        }
        if any("statements") {
            out.push_str("ALTER SYSTEM SET track_io_timing = on;\n");
        }
        if any("tables") {
            out.push_str("ALTER SYSTEM SET track_functions = pl;\n");
        }
        out.push_str("SELECT pg_reload_conf();\n");
    }
    let role = role_of(server);
    out.push_str(&format!(
        "\n-- 2. The role dbintel connects as\nDO $$ BEGIN\n  IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = {lit}) THEN\n    CREATE ROLE {ident} LOGIN;\n  END IF;\nEND $$;\n-- its password, if it has none yet: \\password {ident}\nGRANT pg_monitor TO {ident};\n",
        lit = pg_literal(&role),
        ident = pg_ident(&role)
    ));
    let mut databases: Vec<String> = Vec::new();
    for (plan, report) in &server.targets {
        if let Some(db) = report.database.clone().or_else(|| plan.connect_spec().ok().map(|s| s.username().to_string())) {
            if !databases.contains(&db) {
                databases.push(db);
            }
        }
    }
    let helper = server.targets.iter().filter(|(p, _)| Collectors::of(p).runs("plans")).find_map(|(p, _)| function_name_of(p));
    out.push_str("\n-- 3. In each database dbintel reads\n");
    for db in &databases {
        out.push_str(&format!("\\connect {}\n", pg_ident(db)));
        out.push_str(&format!("GRANT CONNECT ON DATABASE {} TO {};\n", pg_ident(db), pg_ident(&role)));
        if any("statements") || any("plans") {
            out.push_str("CREATE EXTENSION IF NOT EXISTS pg_stat_statements;\n");
        }
        if let Some(function) = &helper {
            out.push_str("-- the EXPLAIN helper the plans collector calls\n");
            out.push_str(&explain_function_sql(function, &options.explain_owner, &role, version_num));
        }
    }
    let discovers = server.targets.iter().any(|(p, _)| {
        dbintel_dsl::schema::DbSettings::from_settings(&p.target.settings).discover == dbintel_dsl::schema::Discover::Databases
    });
    if discovers {
        out.push_str("-- discover = databases: repeat this section in every other database dbintel is to read\n");
    }
    out
}

fn mysql(server: &Server<'_>) -> String {
    let reached = server.targets.iter().find_map(|(_, r)| r.summary.clone());
    let mariadb = reached.as_ref().map(|s| s.description.starts_with("MariaDB"));
    let names: Vec<String> = server.targets.iter().map(|(_, r)| r.name()).collect();
    let what = reached.as_ref().map(|s| s.description.clone()).unwrap_or_else(|| "MySQL/MariaDB".into());
    let (host, port) = server.server.rsplit_once(':').unwrap_or((&server.server, "3306"));
    let client = if mariadb == Some(true) { "mariadb" } else { "mysql" };
    let mut out = format!(
        "-- ==== {what} at {} (targets: {}) ====\n-- Run as root: {client} -h {host} -P {port} -u root -p < dbintel-setup.sql\n",
        server.server,
        names.join(", ")
    );
    let collectors: Vec<Collectors> = server.targets.iter().map(|(p, _)| Collectors::of(p)).collect();
    let any = |name: &str| collectors.iter().any(|c| c.runs(name));
    let account = match reached.as_ref() {
        Some(s) => my_account(&s.role),
        None => format!("{}@'%'", my_literal(&role_of(server))),
    };
    out.push_str(&format!(
        "\n-- 1. The user dbintel connects as\nCREATE USER IF NOT EXISTS {account} IDENTIFIED BY '<a password>';\nGRANT SELECT ON performance_schema.* TO {account};\nGRANT PROCESS ON *.* TO {account};\n"
    ));
    if any("instance") {
        match mariadb {
            Some(true) => out.push_str(&format!("GRANT {} ON *.* TO {account};  -- replica lag\n", replica_privilege_for(server))),
            Some(false) => out.push_str(&format!("GRANT REPLICATION CLIENT ON *.* TO {account};  -- replica lag\n")),
            None => out.push_str(&format!(
                "GRANT REPLICATION CLIENT ON *.* TO {account};  -- replica lag; MariaDB 10.5.9+: GRANT SLAVE MONITOR ON *.* TO {account};\n"
            )),
        }
    }
    out.push_str("\n-- 2. performance_schema\n");
    if reached.is_some() {
        let findings: Vec<&Finding> = server.targets.iter().flat_map(|(_, r)| &r.findings).collect();
        let fixes = settings_fixes(&findings);
        if fixes.is_empty() {
            out.push_str("-- (doctor found every setting the collectors need in place)\n");
        } else {
            out.push_str(&fixes);
        }
    } else {
        out.push_str("-- (doctor could not reach this server: these are what the collectors need)\n-- in my.cnf, under [mysqld]; then restart:\n--   performance_schema = ON\n");
        let mut consumers: Vec<&str> = Vec::new();
        let mut instruments: Vec<&str> = Vec::new();
        for c in &collectors {
            for n in consumers_for(c, mariadb.unwrap_or(true)) {
                if !consumers.contains(&n) {
                    consumers.push(n);
                }
            }
            for i in instruments_for(c) {
                if !instruments.contains(&i) {
                    instruments.push(i);
                }
            }
        }
        for n in &consumers {
            out.push_str(&format!("--   performance_schema_consumer_{n} = ON\n"));
        }
        for i in &instruments {
            out.push_str(&format!("--   performance_schema_instrument = '{i}=ON'\n"));
        }
        if !consumers.is_empty() {
            let listed: Vec<String> = consumers.iter().map(|n| my_literal(n)).collect();
            out.push_str(&format!(
                "UPDATE performance_schema.setup_consumers SET ENABLED = 'YES' WHERE NAME IN ({});\n",
                listed.join(", ")
            ));
        }
        if !instruments.is_empty() {
            let likes: Vec<String> = instruments.iter().map(|i| format!("NAME LIKE {}", my_literal(i))).collect();
            out.push_str(&format!(
                "UPDATE performance_schema.setup_instruments SET ENABLED = 'YES', TIMED = 'YES' WHERE {};\n",
                likes.join(" OR ")
            ));
        }
    }
    out
}

/// MariaDB's privilege for SHOW SLAVE STATUS on this server's version.
fn replica_privilege_for(server: &Server<'_>) -> &'static str {
    let version = server
        .targets
        .iter()
        .find_map(|(_, r)| r.summary.as_ref().map(|s| dbintel_sources::mysql::MyServer::from_version(&s.version_text).version))
        .unwrap_or(0);
    crate::privileges::replica_privilege(crate::facts::Flavour::MariaDb, version)
}

/// The role the targets connect as: the session's when reached, else
/// the DSN's user.
fn role_of(server: &Server<'_>) -> String {
    server
        .targets
        .iter()
        .find_map(|(_, r)| {
            r.summary.as_ref().map(|s| match s.role.rsplit_once('@') {
                Some((user, _)) => user.to_string(),
                None => s.role.clone(),
            })
        })
        .or_else(|| server.targets.iter().find_map(|(p, _)| p.connect_spec().ok().map(|s| s.username().to_string())))
        .unwrap_or_else(|| "dbintel".into())
}

/// `15.4` → 150004; `9.6.1` → 90601.
fn pg_version_num(text: &str) -> Option<i64> {
    let mut parts = text.split(|c: char| !c.is_ascii_digit()).filter(|p| !p.is_empty()).map(|p| p.parse::<i64>().ok());
    let major = parts.next()??;
    let minor = parts.next().flatten().unwrap_or(0);
    Some(if major >= 10 { major * 10000 + minor } else { major * 10000 + minor * 100 })
}
