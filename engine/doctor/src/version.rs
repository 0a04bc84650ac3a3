//! The server's flavour and version: what dbintel's queries are written
//! for (PostgreSQL 12 to 18, MariaDB 10.5 and later, MySQL 8.0 and 8.4).

use crate::check::{Check, Family, Finding, Fix, BOTH};
use crate::facts::{Facts, Flavour};

pub const VERSION: Check = Check {
    id: "server.version",
    family: Family::Version,
    engines: BOTH,
    what: "the server's flavour and version are ones dbintel's queries are written for",
    means: "on an unsupported version, views and columns differ: collectors fail or miss data",
};

/// Newest majors the suite runs against; newer ones warn.
const PG_NEWEST: i64 = 18;
const MARIADB_NEWEST: (i64, i64) = (11, 8);

pub fn check(facts: &Facts) -> Vec<Finding> {
    let what = facts.describe();
    let standby = if facts.standby { " (a replica)" } else { "" };
    let finding = match facts.flavour {
        Flavour::PostgreSql => {
            let major = facts.version / 10000;
            if major < 12 {
                Finding::fail(
                    &VERSION,
                    format!("{what}: older than 12"),
                    Fix::note("dbintel reads PostgreSQL 12 to 18; upgrade the server."),
                )
            } else if major > PG_NEWEST {
                Finding::warn(
                    &VERSION,
                    format!("{what}: newer than {PG_NEWEST}, the newest dbintel is tested with"),
                    Fix::note("Collectors may meet views that changed; watch /status for failing collectors."),
                )
            } else {
                Finding::ok(&VERSION, format!("{what}{standby}"))
            }
        }
        Flavour::MariaDb => {
            let (major, minor) = (facts.version / 10000, facts.version / 100 % 100);
            if (major, minor) < (10, 5) {
                Finding::fail(
                    &VERSION,
                    format!("{what}: older than 10.5"),
                    Fix::note("dbintel reads MariaDB 10.5 and later; upgrade the server."),
                )
            } else if (major, minor) > MARIADB_NEWEST {
                Finding::warn(
                    &VERSION,
                    format!("{what}: newer than {}.{}, the newest dbintel is tested with", MARIADB_NEWEST.0, MARIADB_NEWEST.1),
                    Fix::note("Collectors may meet tables that changed; watch /status for failing collectors."),
                )
            } else {
                Finding::ok(&VERSION, format!("{what}{standby}"))
            }
        }
        Flavour::MySql => {
            let (major, minor) = (facts.version / 10000, facts.version / 100 % 100);
            if major < 8 {
                Finding::fail(
                    &VERSION,
                    format!("{what}: older than 8.0"),
                    Fix::note("dbintel reads MySQL 8.0 and 8.4; upgrade the server."),
                )
            } else if (major, minor) > (8, 4) {
                Finding::warn(
                    &VERSION,
                    format!("{what}: newer than 8.4, the newest dbintel is tested with"),
                    Fix::note("Collectors may meet tables that changed; watch /status for failing collectors."),
                )
            } else {
                Finding::ok(&VERSION, format!("{what}{standby}"))
            }
        }
    };
    vec![finding]
}
