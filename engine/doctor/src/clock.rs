//! The server's clock against this host's. dbintel stamps metrics, active
//! session samples and plans with its own clock, while the server's log
//! lines, query start times and backend start times carry the server's:
//! when the two disagree, what happened together does not line up.
//!
//! The server's time is read once and compared with the midpoint of the
//! round trip, so the answer is good to half the round trip.

use std::time::{SystemTime, UNIX_EPOCH};

use dbintel_sources::target::Target;

use crate::check::{Check, Family, Finding, Fix, BOTH};
use crate::examine::Ctx;

pub const SKEW: Check = Check {
    id: "clock.skew",
    family: Family::Clock,
    engines: BOTH,
    what: "the server's clock agrees with this host's within 2 seconds",
    means: "dbintel's samples and plans are stamped with this host's time, the server's logs and query start times with its own: they do not line up",
};

/// Past this (beyond the measurement's own uncertainty), warn.
const TOLERANCE: f64 = 2.0;

fn now() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0)
}

pub async fn check(ctx: &Ctx<'_>) -> Vec<Finding> {
    let sql = match ctx.target {
        Target::Pg(_) => "SELECT extract(epoch FROM clock_timestamp())::float8 AS now",
        Target::My(_) => "SELECT UNIX_TIMESTAMP(NOW(6)) AS now",
    };
    let before = now();
    let rows = match ctx.target.query(crate::WHAT, sql).await {
        Ok(rows) => rows,
        Err(e) => return vec![Finding::skip(&SKEW, format!("cannot read the server's time ({})", e.code()))],
    };
    let after = now();
    let server = rows.first().and_then(|r| r.get("now")).and_then(|v| match v {
        dbintel_stdlib::Value::Double(d) => Some(*d),
        dbintel_stdlib::Value::Int(i) => Some(*i as f64),
        other => other.to_string().parse().ok(),
    });
    let Some(server) = server else {
        return vec![Finding::skip(&SKEW, "the server's time did not read as a number")];
    };
    vec![finding(server - (before + after) / 2.0, (after - before) / 2.0)]
}

/// The finding for a measured `skew` (server minus this host, seconds)
/// known to within `uncertainty`.
pub fn finding(skew: f64, uncertainty: f64) -> Finding {
    let beyond = skew.abs() - uncertainty;
    if beyond <= 1.0 {
        return Finding::ok(&SKEW, "within 1 s of this host's clock");
    }
    let direction = if skew > 0.0 { "ahead of" } else { "behind" };
    let observed = format!("the server's clock is {:.1} s {direction} this host's", skew.abs());
    if beyond <= TOLERANCE {
        return Finding::ok(&SKEW, observed);
    }
    Finding::warn(
        &SKEW,
        observed,
        Fix::note("Synchronise both clocks with NTP (chrony or systemd-timesyncd on each host; a managed database already is: then fix this host's)."),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::Status;

    #[test]
    fn skew_beyond_the_measurement_warns_either_way() {
        assert_eq!(finding(0.004, 0.001).status, Status::Ok);
        assert_eq!(finding(2.5, 1.0).status, Status::Ok, "within tolerance once the round trip is allowed for");
        let ahead = finding(90.0, 0.01);
        assert_eq!(ahead.status, Status::Warn);
        assert!(ahead.observed.contains("90.0 s ahead"), "{}", ahead.observed);
        assert!(finding(-7.0, 0.01).observed.contains("behind"));
    }
}
