//! The resource a log source's records carry: its server's, exactly as
//! the database source it names gives its own (`service.instance.id`,
//! `server.address`, `server.port`, `db.system.name`, `db.namespace`,
//! `mysql.instance.endpoint`, the target's attributes), so the log's
//! records land on the same New Relic entity and join its statements.
//!
//! ONE function, [`server_resource`]: today it reads the target's DSN
//! (resolved from its secret now, never connecting) and calls
//! `dbintel_sources::target_resource` with the host, port and database
//! sqlx's own DSN parser finds — what `Target::connect` does. When the
//! typed connection options (`ConnectSpec`) land in `dbintel-sources`,
//! this becomes one call that asks them for the resource.

use std::str::FromStr;

use dbintel_core::record::Resource;
use dbintel_dsl::plan::TargetSpec;
use dbintel_sources::target::Engine;
use dbintel_stdlib::Value;

/// The resource of `target`'s server, or why it cannot be known (a DSN
/// that is not set or not a DSN: said without the DSN itself).
pub fn server_resource(source: &str, target: &TargetSpec, engine: Engine) -> Result<Resource, String> {
    let secret = dbintel_sources::resolve_target_dsn(source, &target.dsn, engine).map_err(|e| e.to_string())?;
    let (host, port, database) = match engine {
        Engine::Postgres => {
            let o = sqlx::postgres::PgConnectOptions::from_str(secret.expose())
                .map_err(|e| format!("the server's DSN from {secret} is not valid: {}", secret.scrub(&e.to_string())))?;
            (o.get_host().to_string(), o.get_port(), o.get_database().map(str::to_string))
        }
        Engine::MySql => {
            let o = sqlx::mysql::MySqlConnectOptions::from_str(secret.expose())
                .map_err(|e| format!("the server's DSN from {secret} is not valid: {}", secret.scrub(&e.to_string())))?;
            (o.get_host().to_string(), o.get_port(), o.get_database().map(str::to_string))
        }
    };
    let mut resource = dbintel_sources::target_resource(engine.system(), &host, port, database);
    for (k, v) in &target.attributes {
        resource.attributes.insert(k.clone(), Value::Str(v.clone()));
    }
    Ok(resource)
}

#[cfg(test)]
mod tests {
    use super::*;
    use dbintel_dsl::plan::{SecretRef, TargetDsn};

    #[test]
    fn the_resource_is_the_servers_as_its_database_source_gives_it() {
        std::env::set_var("DBINTEL_LOGS_TEST_DSN", "postgres://mon:s3cret@db.internal:6543/shop");
        let mut target = TargetSpec {
            name: "pg_logs".into(),
            dsn: TargetDsn::Secret(SecretRef::Env("DBINTEL_LOGS_TEST_DSN".into())),
            attributes: Default::default(),
            settings: Default::default(),
        };
        target.attributes.insert("team".into(), "checkout".into());
        let r = server_resource("pg_logs", &target, Engine::Postgres).expect("a resource");
        let get = |k: &str| r.attributes.get(k).cloned();
        assert_eq!(get("service.instance.id"), Some(Value::Str("db.internal:6543".into())));
        assert_eq!(get("server.port"), Some(Value::Int(6543)));
        assert_eq!(get("db.system.name"), Some(Value::Str("postgresql".into())));
        assert_eq!(get("db.namespace"), Some(Value::Str("shop".into())));
        assert_eq!(get("team"), Some(Value::Str("checkout".into())));
        std::env::set_var("DBINTEL_LOGS_TEST_DSN", "not a dsn with s3cret");
        let e = server_resource("pg_logs", &target, Engine::Postgres).unwrap_err();
        assert!(!e.contains("s3cret"), "{e}");
    }
}
