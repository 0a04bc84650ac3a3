//! The EXPLAIN helper: a `SECURITY DEFINER` function that returns the
//! generic plan of a statement text as JSON, for statements the
//! monitoring role may not plan itself (writes, `FOR UPDATE`, tables it
//! cannot read). The plans collector calls it by the name its
//! `explain_function_name` setting gives (default `otel.explain_statement`,
//! New Relic's name and signature, so a DBA who followed New Relic's
//! instructions already has one): `SELECT <fn>($1::text)`.
//!
//! Its SQL text lives here, once ([`explain_function_sql`],
//! [`call_sql`]); `dbintel doctor --print-setup-sql` prints it and the
//! plans collector calls it. Compared with New Relic's published body it
//! is hardened:
//! - `SECURITY DEFINER` with a pinned `search_path` (pg_catalog first,
//!   pg_temp last) and every catalog name qualified;
//! - `SET TRANSACTION READ ONLY` first, and never ANALYZE: the statement
//!   is planned, never executed;
//! - one statement only (PL/pgSQL's EXECUTE runs every statement of a
//!   string: a `;` anywhere but at the end is refused) and only the kinds
//!   a plan is for (SELECT, WITH, TABLE, VALUES, INSERT, UPDATE, DELETE,
//!   MERGE — the first word after comments);
//! - a generic plan: `EXPLAIN (GENERIC_PLAN)` on 16+, else PREPARE with
//!   `plan_cache_mode = force_generic_plan` and `EXPLAIN EXECUTE` with
//!   NULL parameters; the prepared statement is deallocated on every path
//!   (a cancelled call's leftover is cleared at the next one);
//! - owned by a NOLOGIN role the DBA chooses (planning folds immutable
//!   functions with the owner's rights, so never a superuser), `REVOKE
//!   ALL … FROM PUBLIC`, `GRANT EXECUTE` to the monitoring role only.

use crate::check::{Check, Family, Finding, Fix, Status, PG};
use crate::examine::Ctx;
use crate::extensions::list;
use crate::facts::{opt_text, text};
use crate::quote::{pg_ident, pg_literal, pg_qualified};

pub const HELPER: Check = Check {
    id: "plans.explain_helper",
    family: Family::PlansHelper,
    engines: PG,
    what: "the EXPLAIN helper function exists where plans are read, is SECURITY DEFINER with a pinned search_path, not owned by a superuser, executable by the role alone, and answers with a plan",
    means: "statements the role may not plan itself (writes, FOR UPDATE, tables it cannot read) get no plan",
};

/// The role that owns the helper unless the DBA picks another.
pub const DEFAULT_OWNER: &str = "dbintel_explain";

/// What the plans collector sends: the helper's generic plan of `$1` as
/// JSON (`json`).
pub fn call_sql(function: &str) -> String {
    format!("SELECT {}($1::text)", pg_qualified(function))
}

/// The statement the probe plans: harmless, and plannable anywhere.
pub const PROBE_STATEMENT: &str = "SELECT 1";

/// The helper, idempotently: its schema, its owner (a NOLOGIN role that
/// may read the tables), the function, and who may call it. `function`
/// is `[schema.]name`; `version` (server_version_num), when known, picks
/// how the owner is given read access (`pg_read_all_data` from 14).
pub fn explain_function_sql(function: &str, owner: &str, grantee: &str, version: Option<i64>) -> String {
    let qualified = pg_qualified(function);
    let schema = function.split_once('.').map(|(s, _)| s);
    let signature = format!("{qualified}(text)");
    let (owner_lit, owner) = (pg_literal(owner), pg_ident(owner));
    let grantee = pg_ident(grantee);
    let mut out = String::new();
    if let Some(schema) = schema {
        out.push_str(&format!("CREATE SCHEMA IF NOT EXISTS {};\n", pg_ident(schema)));
    }
    out.push_str(&format!(
        "-- its owner: may read what the statements read, may not log in\n\
         DO $$ BEGIN\n  IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = {owner_lit}) THEN\n    CREATE ROLE {owner} NOLOGIN;\n  END IF;\nEND $$;\n"
    ));
    let read_all = "GRANT pg_read_all_data TO {owner};  -- PostgreSQL 14+".replace("{owner}", &owner);
    let per_schema = format!(
        "GRANT USAGE ON SCHEMA public TO {owner};  -- before 14: each schema the statements read\nGRANT SELECT ON ALL TABLES IN SCHEMA public TO {owner};"
    );
    match version {
        Some(v) if v >= 140000 => out.push_str(&format!("{read_all}\n")),
        Some(_) => out.push_str(&format!("{per_schema}\n")),
        None => out.push_str(&format!("{read_all}\n-- before 14 instead:\n-- {}\n", per_schema.replace('\n', "\n-- "))),
    }
    out.push_str(&format!(
        "-- to plan INSERT/UPDATE/DELETE as well (never executed: read-only, no ANALYZE):\n-- GRANT pg_write_all_data TO {owner};\n"
    ));
    out.push_str(&format!(
        r#"CREATE OR REPLACE FUNCTION {qualified}(l_query text)
RETURNS json
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, public, pg_temp
SET plan_cache_mode = force_generic_plan
AS $dbintel$
DECLARE
  v_query text;
  v_head text;
  v_word text;
  v_params int;
  v_args text := '';
  v_plan json;
BEGIN
  SET TRANSACTION READ ONLY;
  -- one statement: a trailing semicolon goes, any other one refuses
  v_query := pg_catalog.regexp_replace(l_query, '[;[:space:]]+$', '');
  IF pg_catalog.strpos(v_query, ';') > 0 THEN
    RAISE EXCEPTION 'explain_statement: one statement only' USING ERRCODE = '42601';
  END IF;
  -- its first word after comments: a statement a plan is for
  v_head := v_query;
  LOOP
    v_head := pg_catalog.ltrim(v_head, E' \t\r\n\f');
    IF pg_catalog.left(v_head, 2) = '--' THEN
      v_head := pg_catalog.substr(v_head, pg_catalog.strpos(v_head || E'\n', E'\n') + 1);
    ELSIF pg_catalog.left(v_head, 2) = '/*' THEN
      v_head := CASE WHEN pg_catalog.strpos(v_head, '*/') = 0 THEN ''
                     ELSE pg_catalog.substr(v_head, pg_catalog.strpos(v_head, '*/') + 2) END;
    ELSE
      EXIT;
    END IF;
  END LOOP;
  v_word := pg_catalog.lower(pg_catalog.substring(v_head, '^[A-Za-z]+'));
  IF v_word IS NULL OR v_word NOT IN ('select', 'with', 'table', 'values', 'insert', 'update', 'delete', 'merge') THEN
    RAISE EXCEPTION 'explain_statement: only SELECT, WITH, TABLE, VALUES, INSERT, UPDATE, DELETE and MERGE are planned'
      USING ERRCODE = '42601';
  END IF;
  IF pg_catalog.current_setting('server_version_num')::int >= 160000 THEN
    EXECUTE 'EXPLAIN (GENERIC_PLAN, FORMAT JSON) ' || v_query INTO v_plan;
    RETURN v_plan;
  END IF;
  -- before 16: the prepared statement's generic plan, parameters NULL
  IF EXISTS (SELECT FROM pg_catalog.pg_prepared_statements WHERE name = 'dbintel_explain_statement') THEN
    DEALLOCATE dbintel_explain_statement;
  END IF;
  EXECUTE 'PREPARE dbintel_explain_statement AS ' || v_query;
  BEGIN
    SELECT COALESCE(pg_catalog.array_length(parameter_types, 1), 0) INTO v_params
      FROM pg_catalog.pg_prepared_statements WHERE name = 'dbintel_explain_statement';
    IF v_params > 0 THEN
      v_args := '(' || pg_catalog.array_to_string(pg_catalog.array_fill('NULL'::text, ARRAY[v_params]), ', ') || ')';
    END IF;
    EXECUTE 'EXPLAIN (FORMAT JSON) EXECUTE dbintel_explain_statement' || v_args INTO v_plan;
  EXCEPTION WHEN OTHERS OR query_canceled THEN
    DEALLOCATE dbintel_explain_statement;
    RAISE;
  END;
  DEALLOCATE dbintel_explain_statement;
  RETURN v_plan;
END
$dbintel$;
ALTER FUNCTION {signature} OWNER TO {owner};
REVOKE ALL ON FUNCTION {signature} FROM PUBLIC;
"#
    ));
    if let Some(schema) = schema {
        out.push_str(&format!("GRANT USAGE ON SCHEMA {} TO {grantee};\n", pg_ident(schema)));
    }
    out.push_str(&format!("GRANT EXECUTE ON FUNCTION {signature} TO {grantee};\n"));
    out
}

/// The `explain_function_name` of the target's `collect plans`; `None`
/// without plans or with "" (never called).
pub fn function_name(ctx: &Ctx<'_>) -> Option<String> {
    function_name_of(ctx.plan)
}

/// [`function_name`] of a target's plan.
pub fn function_name_of(plan: &dbintel_sources::supervisor::TargetPlan) -> Option<String> {
    let plans = plan.node.collectors.get("plans")?;
    let name = dbintel_dsl::schema::PlansSettings::from_settings(&plans.settings).explain_function_name;
    (!name.is_empty()).then_some(name)
}

/// The catalog row of the helper in one database.
fn lookup_sql(function: &str) -> String {
    let (schema, name) = match function.split_once('.') {
        Some((s, n)) => (format!("n.nspname = {}", pg_literal(s)), n),
        None => ("n.nspname = ANY (current_schemas(false))".to_string(), function),
    };
    format!(
        "SELECT p.prosecdef AS definer, pg_get_userbyid(p.proowner)::text AS owner,
                (SELECT rolsuper FROM pg_roles WHERE oid = p.proowner) AS owner_super,
                has_function_privilege(p.oid, 'EXECUTE') AND has_schema_privilege(n.oid, 'USAGE') AS may_execute,
                (p.proacl IS NULL OR EXISTS (SELECT FROM aclexplode(p.proacl) a WHERE a.grantee = 0 AND a.privilege_type = 'EXECUTE')) AS public_execute,
                EXISTS (SELECT FROM unnest(p.proconfig) c WHERE c LIKE 'search\\_path=%') AS pinned,
                p.prorettype = 'json'::regtype AS returns_json
           FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
          WHERE {schema} AND p.proname = {} AND p.pronargs = 1 AND p.proargtypes[0] = 'text'::regtype",
        pg_literal(name)
    )
}

/// What is wrong with the helper in one database, worst first.
enum Trouble {
    Absent,
    /// Needs the whole definition again (not definer, not pinned, wrong
    /// result, executable by anyone, a superuser's).
    Unsafe(String),
    NotExecutable,
    ProbeFailed(String),
}

pub async fn check(ctx: &Ctx<'_>) -> Vec<Finding> {
    if !ctx.collectors.runs("plans") {
        return Vec::new();
    }
    let Some(function) = function_name(ctx) else {
        return vec![Finding::skip(&HELPER, "explain_function_name = \"\": the plans collector calls no helper")];
    };
    let mut troubles: Vec<(String, Trouble)> = Vec::new();
    let mut fine = Vec::new();
    for db in ctx.databases {
        let rows = match ctx.query_in(db, crate::WHAT, &lookup_sql(&function)).await {
            Ok(rows) => rows,
            Err(e) => {
                troubles.push((db.clone(), Trouble::ProbeFailed(format!("cannot look ({})", e.code()))));
                continue;
            }
        };
        let Some(row) = rows.first() else {
            troubles.push((db.clone(), Trouble::Absent));
            continue;
        };
        let yes = |c: &str| text(row, c) == "true";
        let mut unsafe_ = Vec::new();
        if !yes("definer") {
            unsafe_.push("not SECURITY DEFINER".to_string());
        }
        if !yes("pinned") {
            unsafe_.push("no pinned search_path".to_string());
        }
        if !yes("returns_json") {
            unsafe_.push("does not return json".to_string());
        }
        if yes("public_execute") {
            unsafe_.push("anyone may execute it".to_string());
        }
        if yes("owner_super") {
            unsafe_.push(format!("owned by the superuser {}", opt_text(row, "owner").unwrap_or_default()));
        }
        if !unsafe_.is_empty() {
            troubles.push((db.clone(), Trouble::Unsafe(unsafe_.join(", "))));
            continue;
        }
        if !yes("may_execute") {
            troubles.push((db.clone(), Trouble::NotExecutable));
            continue;
        }
        let probe = format!("SELECT {}({}::text)::text AS plan", pg_qualified(&function), pg_literal(PROBE_STATEMENT));
        match ctx.query_in(db, crate::WHAT, &probe).await {
            Ok(rows) => {
                let plan = rows.first().and_then(|r| opt_text(r, "plan")).unwrap_or_default();
                let parsed: Option<serde_json::Value> = serde_json::from_str(&plan).ok();
                if parsed.as_ref().and_then(|v| v.get(0)).and_then(|p| p.get("Plan")).is_some() {
                    fine.push(db.clone());
                } else {
                    troubles.push((db.clone(), Trouble::ProbeFailed("answered without a plan".into())));
                }
            }
            Err(e) => troubles.push((db.clone(), Trouble::ProbeFailed(format!("the probe failed ({})", e.code())))),
        }
    }
    if troubles.is_empty() {
        return vec![Finding::ok(&HELPER, format!("{function} plans in {}", list(&fine)))];
    }
    let role = ctx.facts.role.clone();
    let version = Some(ctx.facts.version);
    let mut out = Vec::new();
    let group = |pick: fn(&Trouble) -> bool| -> Vec<String> { troubles.iter().filter(|(_, t)| pick(t)).map(|(d, _)| d.clone()).collect() };
    let absent = group(|t| matches!(t, Trouble::Absent));
    if !absent.is_empty() {
        out.push(Finding::warn(
            &HELPER,
            format!("{function} does not exist in {}", list(&absent)),
            crate::extensions::per_database(&absent, &explain_function_sql(&function, &ctx.options.explain_owner, &role, version)),
        ));
    }
    for (db, trouble) in &troubles {
        match trouble {
            Trouble::Unsafe(why) => out.push(Finding::warn(
                &HELPER,
                format!("{function} in `{db}`: {why}"),
                Fix::sql(explain_function_sql(&function, &ctx.options.explain_owner, &role, version)).in_database(Some(db)),
            )),
            Trouble::ProbeFailed(why) => out.push(Finding::problem(
                &HELPER,
                Status::Warn,
                format!("{function} in `{db}`: {why}"),
                Fix::sql(explain_function_sql(&function, &ctx.options.explain_owner, &role, version))
                    .in_database(Some(db))
                    .with_note("Recreating it with this definition replaces a body that does not plan."),
            )),
            Trouble::Absent | Trouble::NotExecutable => {}
        }
    }
    let denied = group(|t| matches!(t, Trouble::NotExecutable));
    if !denied.is_empty() {
        let schema = function.split_once('.').map(|(s, _)| format!("GRANT USAGE ON SCHEMA {} TO {};\n", pg_ident(s), pg_ident(&role)));
        out.push(Finding::warn(
            &HELPER,
            format!("{} may not execute {function} in {}", role, list(&denied)),
            crate::extensions::per_database(
                &denied,
                &format!(
                    "{}GRANT EXECUTE ON FUNCTION {}(text) TO {};",
                    schema.unwrap_or_default(),
                    pg_qualified(&function),
                    pg_ident(&role)
                ),
            ),
        ));
    }
    out
}
