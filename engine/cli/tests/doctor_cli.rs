//! `dbintel doctor` as a command: a target it cannot reach is one precise
//! failure — the cause told apart (no such host, refused, a listener that
//! never answers, a wrong password, no such database, an unset variable,
//! MySQL's access denied) with its fix — while the other targets are
//! still checked, and no password is ever shown; `--target`, usage errors
//! and invalid files exit as the other commands do; the README's setup
//! script is what `--print-setup-sql` prints. Against the shared servers,
//! reading only.

mod common;

use common::doctor::{self, checks, status_of};
use common::proxy::{Mode, Proxy};
use common::{code, dbintel, scratch, seen, text, PG_MONITOR};

const SECRETS: &[&str] = &["wrong-pw-3f9a", "monitor-secret-pw", "unused-pw-77", "mysql-wrong-pw-1c"];

#[test]
fn each_unreachable_target_is_one_precise_failure_and_the_others_are_still_checked() {
    let dir = scratch("doctor-unreachable");
    let blackhole = Proxy::start(5432);
    blackhole.set(Mode::Blackhole);
    let closed = common::otlp::free_port();
    let targets: &[(&str, &str)] = &[
        ("good", PG_MONITOR),
        ("refused", &format!("postgres://dbintel_monitor:unused-pw-77@127.0.0.1:{closed}/postgres")),
        ("nohost", "postgres://dbintel_monitor:unused-pw-77@db.invalid:5432/postgres"),
        ("silent", &format!("postgres://dbintel_monitor:unused-pw-77@127.0.0.1:{}/postgres", blackhole.port)),
        ("nodb", "postgres://dbintel_monitor:monitor-secret-pw@127.0.0.1:5432/doctor_no_such_db"),
        ("mydenied", "mysql://dbintel_monitor:mysql-wrong-pw-1c@127.0.0.1:3306/performance_schema"),
    ];
    let mut pipe = String::new();
    let mut env: Vec<(String, String)> = Vec::new();
    for (name, dsn) in targets {
        let kind = if dsn.starts_with("mysql") { "mysql" } else { "postgres" };
        let var = format!("DOCTOR_{}_DSN", name.to_uppercase());
        pipe.push_str(&format!("source {name} = {kind} {{\n  dsn = env(\"{var}\")\n  connect_timeout = 2s\n  collect instance\n}}\n"));
        env.push((var, dsn.to_string()));
    }
    pipe.push_str("source unset = postgres {\n  dsn = env(\"DOCTOR_NEVER_SET_DSN\")\n  collect instance\n}\nsink out = stdout {}\n");
    for name in targets.iter().map(|t| t.0).chain(["unset"]) {
        pipe.push_str(&format!("pipeline p_{name} = {name}.instance -> out\n"));
    }
    let path = dir.join("p.pipe");
    std::fs::write(&path, pipe).unwrap();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();

    let started = std::time::Instant::now();
    let out = dbintel(&["doctor", path.to_str().unwrap()], &env);
    assert_eq!(code(&out), 4, "{}", seen(&out));
    assert!(started.elapsed() < std::time::Duration::from_secs(30), "bounded: {:?}", started.elapsed());
    let (_, report) = doctor::json(&path, &[], &env);
    for secret in SECRETS {
        assert!(!text(&out.stdout).contains(secret) && !text(&out.stderr).contains(secret), "{secret} shown: {}", seen(&out));
        assert!(!report.to_string().contains(secret), "{secret} in the JSON");
    }
    let target = |name: &str| {
        report["targets"].as_array().unwrap().iter().find(|t| t["target"] == name).cloned().unwrap_or_else(|| panic!("{name}: {report:#}"))
    };
    // the reachable one is checked in full
    let good = target("good");
    assert_eq!(good["reached"], true);
    assert!(good["checks"].as_array().unwrap().len() >= 6, "{good:#}");
    assert_eq!(status_of(&serde_json::json!({ "targets": [good] }), "server.version").as_deref(), Some("ok"));
    // each of the others: exactly one failure, saying why and what to do
    for (name, cause, fix) in [
        ("refused", "connection refused", "listen_addresses"),
        ("nohost", "does not resolve", "DNS"),
        ("silent", "took the connection but did not answer", "proxy"),
        ("nodb", "does not exist", "CREATE DATABASE doctor_no_such_db"),
        ("mydenied", "Access denied", "CREATE USER IF NOT EXISTS 'dbintel_monitor'@'%'"),
        ("unset", "DOCTOR_NEVER_SET_DSN", "env(\\\"NAME\\\")"),
    ] {
        let t = target(name);
        let found = t["checks"].as_array().unwrap();
        assert_eq!(found.len(), 1, "{name}: one finding: {t:#}");
        assert_eq!((found[0]["id"].as_str(), found[0]["status"].as_str()), (Some("connection"), Some("fail")), "{name}");
        let observed = found[0]["observed"].as_str().unwrap_or_default();
        assert!(observed.contains(cause), "{name}: {observed}");
        assert!(found[0]["fix"].to_string().contains(fix), "{name}: {}", found[0]["fix"]);
        assert_eq!(t["reached"], false);
    }
    let human = text(&out.stdout);
    assert!(human.contains("nohost: postgres at db.invalid:5432, database postgres, not reached"), "{human}");
    assert_eq!(checks(&report).iter().filter(|c| c.2 == "fail").count(), 6, "one failure per unreachable target, none on good");
}

/// The shared server trusts local connections: a private one asks for
/// passwords, and lets in only whom pg_hba.conf names.
#[test]
fn a_wrong_password_and_a_missing_pg_hba_line_are_told_apart_and_the_printed_fix_lets_the_role_in() {
    let pg = common::private_pg::PrivatePg::primary("doctor-auth");
    let hba = pg.sql("SHOW hba_file");
    std::fs::write(&hba, "host all postgres 127.0.0.1/32 trust\nhost all proofs_mon 127.0.0.1/32 scram-sha-256\n").unwrap();
    pg.sql("ALTER ROLE proofs_mon PASSWORD 'right-pw-0c1d'");
    pg.sql("CREATE ROLE stranger LOGIN PASSWORD 'stranger-pw-5e2b'; GRANT pg_monitor TO stranger");
    pg.sql("SELECT pg_reload_conf()");
    let dir = scratch("doctor-auth");
    let path = dir.join("p.pipe");
    std::fs::write(&path, "source pg = postgres {\n  dsn = env(\"DOCTOR_AUTH_DSN\")\n  collect instance\n}\nsink out = stdout {}\npipeline a = pg.instance -> out\n").unwrap();
    let dsn = |role: &str, pw: &str| format!("postgres://{role}:{pw}@127.0.0.1:{}/postgres", pg.port);

    let wrong = dsn("proofs_mon", "wrong-pw-3f9a");
    let (code, report) = doctor::json(&path, &[], &[("DOCTOR_AUTH_DSN", wrong.as_str())]);
    let found = &report["targets"][0]["checks"][0];
    assert_eq!((code, found["status"].as_str()), (4, Some("fail")), "{report:#}");
    assert!(found["observed"].as_str().unwrap_or_default().contains("password authentication failed"), "{found:#}");
    assert_eq!(found["fix"]["sql"], "ALTER ROLE proofs_mon PASSWORD '<the password in the DSN>';");
    assert!(!report.to_string().contains("wrong-pw-3f9a"));

    let stranger = dsn("stranger", "stranger-pw-5e2b");
    let env = [("DOCTOR_AUTH_DSN", stranger.as_str())];
    let (code, report) = doctor::json(&path, &[], &env);
    let found = report["targets"][0]["checks"][0].clone();
    assert_eq!((code, found["status"].as_str()), (4, Some("fail")), "{report:#}");
    assert!(found["observed"].as_str().unwrap_or_default().contains("pg_hba.conf"), "{found:#}");
    let line = found["fix"]["config"]["lines"].as_str().unwrap_or_default().to_string();
    assert_eq!(line, "host postgres stranger 127.0.0.1/32 scram-sha-256", "the line for this role, database and address");
    // as a DBA: the line into pg_hba.conf, then the SQL (which reloads)
    let mut file = std::fs::read_to_string(&hba).unwrap();
    file.push_str(&line);
    file.push('\n');
    std::fs::write(&hba, file).unwrap();
    pg.script("postgres", found["fix"]["sql"].as_str().unwrap());
    let (code, after) = doctor::json(&path, &[], &env);
    doctor::assert_clean(code, &after, "the pg_hba.conf line and SQL doctor printed");
}

#[test]
fn target_picks_one_and_usage_errors_and_invalid_files_exit_as_the_other_commands_do() {
    let dir = scratch("doctor-usage");
    let path = dir.join("p.pipe");
    std::fs::write(
        &path,
        "source pg = postgres {\n  dsn = env(\"DOCTOR_USAGE_DSN\")\n  collect instance\n}\nsource other = postgres {\n  dsn = env(\"DOCTOR_USAGE_DSN\")\n  collect instance\n}\nsink out = stdout {}\npipeline a = pg.instance -> out\npipeline b = other.instance -> out\n",
    )
    .unwrap();
    let env = [("DOCTOR_USAGE_DSN", PG_MONITOR)];
    let (_, report) = doctor::json(&path, &["--target", "other"], &env);
    let names: Vec<&str> = report["targets"].as_array().unwrap().iter().filter_map(|t| t["source"].as_str()).collect();
    assert_eq!(names, ["other"]);
    let out = dbintel(&["doctor", "--target", "nope", path.to_str().unwrap()], &env);
    assert_eq!(code(&out), 2, "{}", seen(&out));
    assert!(text(&out.stderr).contains("the pipeline has: pg, other"), "{}", seen(&out));
    let out = dbintel(&["doctor", "--no-such-flag", path.to_str().unwrap()], &env);
    assert_eq!(code(&out), 2, "{}", seen(&out));
    let broken = dir.join("broken.pipe");
    std::fs::write(&broken, "source pg = postgres {\n  dsn = \"postgres://inline@h/db\"\n}\n").unwrap();
    let out = dbintel(&["doctor", broken.to_str().unwrap()], &env);
    assert_eq!(code(&out), 1, "invalid files, as validate: {}", seen(&out));
    assert!(out.stdout.is_empty(), "nothing checked: {}", seen(&out));
}

/// The README's setup script is what `--print-setup-sql` prints for the
/// shipped pipelines when their servers cannot be reached.
/// `DBINTEL_BLESS=1` rewrites it.
#[test]
fn the_readme_setup_script_is_what_print_setup_sql_prints() {
    let env = [
        ("PG_DSN", "postgres://dbintel@db.invalid:5432/orders"),
        ("MYSQL_DSN", "mysql://dbintel@db.invalid:3306/performance_schema"),
        ("NEW_RELIC_LICENSE_KEY", "unused"),
    ];
    let out = dbintel(&["doctor", "--print-setup-sql", "pipelines/postgres.pipe", "pipelines/mysql.pipe"], &env);
    assert_eq!(code(&out), 0, "{}", seen(&out));
    assert!(text(&out.stderr).contains("note: postgres not reached"), "{}", seen(&out));
    let script = format!("```sql\n{}```\n", text(&out.stdout));
    let path = common::root().join("README.md");
    let readme = std::fs::read_to_string(&path).unwrap();
    let begin = "<!-- setup-sql:begin (generated: dbintel doctor --print-setup-sql pipelines/postgres.pipe pipelines/mysql.pipe, servers not reached) -->\n";
    let start = readme.find(begin).expect("the begin marker") + begin.len();
    let stop = readme[start..].find("<!-- setup-sql:end -->").expect("the end marker") + start;
    if std::env::var_os("DBINTEL_BLESS").is_some() {
        std::fs::write(&path, format!("{}{script}{}", &readme[..start], &readme[stop..])).unwrap();
        return;
    }
    assert_eq!(
        &readme[start..stop],
        script,
        "README.md's setup script is stale: DBINTEL_BLESS=1 cargo test -p dbintel --test doctor_cli readme"
    );
}
