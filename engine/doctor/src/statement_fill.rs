//! How full the statement tables are. pg_stat_statements keeps at most
//! `pg_stat_statements.max` statements and evicts the least used when
//! full (`pg_stat_statements_info.dealloc` counts it, PostgreSQL 14+);
//! performance_schema keeps `performance_schema_digests_size` digests and
//! counts the statements it could not file (`Performance_schema_digest_lost`).
//! A statement evicted between two scrapes loses its interval: its
//! delta starts again from the next baseline.

use crate::check::{Check, Family, Finding, Fix, MY, PG};
use crate::examine::Ctx;
use crate::facts::{opt_text, text};
use crate::settings::alter_system;

pub const PGSS_FILL: Check = Check {
    id: "pg_stat_statements.fill",
    family: Family::StatementFill,
    engines: PG,
    what: "pg_stat_statements has room: entries well under pg_stat_statements.max, no recent deallocations",
    means: "statements are evicted between scrapes: their intervals are lost and the top statements list misses queries",
};

pub const DIGEST_FILL: Check = Check {
    id: "performance_schema.digests",
    family: Family::StatementFill,
    engines: MY,
    what: "the digest table has room: rows well under performance_schema_digests_size, no lost digests",
    means: "new statements are lumped into one NULL digest and counted nowhere: they never reach the top statements",
};

/// Full enough to evict soon.
const FULL: f64 = 0.9;
/// Full enough that recent deallocations mean it is still churning.
const CHURNING: f64 = 0.8;

/// A larger table size to suggest: double, at least 5000 (the default),
/// rounded up to a thousand.
fn bigger(now: i64) -> i64 {
    let want = (now * 2).max(5000);
    (want + 999) / 1000 * 1000
}

pub async fn postgres(ctx: &Ctx<'_>) -> Vec<Finding> {
    if !ctx.collectors.runs("statements") {
        return Vec::new();
    }
    let Some(max) = ctx.facts.setting("pg_stat_statements.max").and_then(|m| m.parse::<i64>().ok()) else {
        return vec![Finding::skip(&PGSS_FILL, "pg_stat_statements is not loaded")];
    };
    let info = if ctx.facts.version >= 140000 {
        ", (SELECT dealloc FROM pg_stat_statements_info)::int8 AS dealloc, (SELECT stats_reset::text FROM pg_stat_statements_info) AS reset"
    } else {
        ""
    };
    let sql = format!("SELECT (SELECT count(*) FROM pg_stat_statements(false))::int8 AS entries{info}");
    let row = match ctx.target.query(crate::WHAT, &sql).await {
        Ok(rows) => rows.first().cloned().unwrap_or_default(),
        Err(e) => {
            return vec![Finding::skip(&PGSS_FILL, format!("cannot count the entries ({}): see pg_stat_statements.created", e.code()))]
        }
    };
    let entries = dbintel_sources::rows::integer(&row, "entries").unwrap_or(0);
    let dealloc = dbintel_sources::rows::integer(&row, "dealloc");
    let fill = entries as f64 / max.max(1) as f64;
    let since = opt_text(&row, "reset").map(|r| format!(" since {}", r.split('.').next().unwrap_or(&r))).unwrap_or_default();
    let evictions = match dealloc {
        Some(d) => format!("; {d} deallocations{since}"),
        None => String::new(),
    };
    let observed = format!("{entries} of {max} entries ({:.0}%){evictions}", fill * 100.0);
    let churning = fill >= FULL || (dealloc.unwrap_or(0) > 0 && fill >= CHURNING);
    if !churning {
        return vec![Finding::ok(&PGSS_FILL, observed)];
    }
    let mut fix = alter_system(ctx.facts, "pg_stat_statements.max", &bigger(max).to_string());
    if ctx.facts.setting("pg_stat_statements.track_utility") == Some("on") {
        // utility statements (SET, BEGIN, SHOW…) take entries as well
        let utility = alter_system(ctx.facts, "pg_stat_statements.track_utility", "off");
        fix.sql = Some(format!("{}\n{}", fix.sql.unwrap_or_default(), utility.sql.unwrap_or_default()));
        if let (Some(config), Some(more)) = (fix.config.as_mut(), utility.config) {
            config.lines = format!("{}\n{}", config.lines, more.lines);
        }
        fix = fix.with_note("track_utility = off keeps SET, BEGIN, SHOW and the like out of the table too.");
    }
    vec![Finding::warn(&PGSS_FILL, observed, fix)]
}

pub async fn mysql(ctx: &Ctx<'_>) -> Vec<Finding> {
    if !ctx.collectors.runs("statements") {
        return Vec::new();
    }
    if !ctx.facts.setting("performance_schema").is_some_and(|v| v.eq_ignore_ascii_case("ON") || v == "1") {
        return vec![Finding::skip(&DIGEST_FILL, "performance_schema is off")];
    }
    let rows = ctx.target.query(crate::WHAT, &digest_count_sql("performance_schema")).await;
    let lost = ctx.target.query(crate::WHAT, "SHOW GLOBAL STATUS WHERE Variable_name = 'Performance_schema_digest_lost'").await;
    let (Ok(rows), Ok(lost)) = (rows, lost) else {
        return vec![Finding::skip(&DIGEST_FILL, "cannot read the digest table: see privileges.performance_schema")];
    };
    let entries = rows.first().and_then(|r| dbintel_sources::rows::integer(r, "n")).unwrap_or(0);
    let lost: i64 = lost.first().map(|r| text(r, "Value")).and_then(|v| v.parse().ok()).unwrap_or(0);
    let size: i64 = ctx.facts.setting("performance_schema_digests_size").and_then(|v| v.parse().ok()).unwrap_or(-1);
    vec![digest_finding(entries, size, lost)]
}

/// Rows of the digest table in `schema` (the fakes use their own).
pub fn digest_count_sql(schema: &str) -> String {
    format!("SELECT COUNT(*) AS n FROM {schema}.events_statements_summary_by_digest")
}

/// The finding for a digest table of `size` rows holding `entries`,
/// with `lost` statements not filed since the start.
pub fn digest_finding(entries: i64, size: i64, lost: i64) -> Finding {
    let observed = format!("{entries} of {size} digests; {lost} lost since the server started");
    let full = size > 0 && entries as f64 >= size as f64 * FULL;
    if lost == 0 && !full {
        return Finding::ok(&DIGEST_FILL, observed);
    }
    let want = bigger(size.max(entries));
    Finding::warn(
        &DIGEST_FILL,
        observed,
        Fix::config("my.cnf, under [mysqld]", format!("performance_schema_digests_size = {want}"))
            .restart(true)
            .with_note("The size is fixed at start. TRUNCATE performance_schema.events_statements_summary_by_digest empties it now (dbintel re-baselines), but a full table fills again."),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::Status;

    #[test]
    fn a_bigger_table_is_at_least_the_default_and_double_the_current() {
        assert_eq!(bigger(100), 5000);
        assert_eq!(bigger(5000), 10000);
        assert_eq!(bigger(7777), 16000);
    }

    #[test]
    fn lost_digests_or_a_nearly_full_table_warn() {
        assert_eq!(digest_finding(10, 5000, 0).status, Status::Ok);
        assert_eq!(digest_finding(4600, 5000, 0).status, Status::Warn);
        assert_eq!(digest_finding(10, 5000, 3).status, Status::Warn);
        // autosized (-1) and empty: nothing to say
        assert_eq!(digest_finding(0, -1, 0).status, Status::Ok);
    }
}
