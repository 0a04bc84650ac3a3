//! The resource a log source's records carry: its server's, exactly as
//! the database source it names gives its own (`service.instance.id`,
//! `server.address`, `server.port`, `db.system.name`,
//! `mysql.instance.endpoint`, the target's attributes), so the log's
//! records land on the same New Relic entity and join its statements;
//! and the server's key, under which its plans are filed (see
//! `dbintel_sources::plan_book`). Read from the target's typed connection
//! options, never connecting.

use dbintel_core::record::Resource;
use dbintel_dsl::plan::TargetSpec;
use dbintel_dsl::schema::DbSettings;
use dbintel_sources::target::Engine;
use dbintel_sources::ConnectSpec;
use dbintel_stdlib::Value;

/// The resource of `target`'s server and the server's key, or why they
/// cannot be known (a DSN that is not set or not a DSN: said without the
/// DSN itself).
pub fn server_resource(source: &str, target: &TargetSpec, engine: Engine) -> Result<(Resource, String), String> {
    let kind = match engine {
        Engine::Postgres => "postgres",
        Engine::MySql => "mysql",
    };
    let spec = ConnectSpec::resolve(source, kind, &target.dsn).map_err(|e| e.to_string())?;
    let identity = DbSettings::from_settings(&target.settings).service_instance_id;
    let mut resource = spec.resource(identity);
    for (k, v) in &target.attributes {
        resource.attributes.insert(k.clone(), Value::Str(v.clone()));
    }
    Ok((resource, spec.server()))
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
        let (r, server) = server_resource("pg_logs", &target, Engine::Postgres).expect("a resource");
        assert_eq!(server, "db.internal:6543");
        let get = |k: &str| r.attributes.get(k).cloned();
        // New Relic's UUIDv5 of the endpoint, as the database source has it
        assert_eq!(
            get("service.instance.id"),
            Some(Value::Str(dbintel_sources::entity::service_instance_id("postgresql", "db.internal", 6543)))
        );
        assert_eq!(get("server.port"), Some(Value::Int(6543)));
        assert_eq!(get("db.system.name"), Some(Value::Str("postgresql".into())));
        assert_eq!(get("db.namespace"), None, "the database is on each record");
        assert_eq!(get("team"), Some(Value::Str("checkout".into())));
        std::env::set_var("DBINTEL_LOGS_TEST_DSN", "not a dsn with s3cret");
        let e = server_resource("pg_logs", &target, Engine::Postgres).unwrap_err();
        assert!(!e.contains("s3cret"), "{e}");
    }
}
