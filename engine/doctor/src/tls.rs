//! Whether the session to the server is encrypted, and whether the
//! server's certificate was checked. On loopback or a Unix socket
//! nothing travels a network, and TLS is not asked for.

use dbintel_dsl::schema::SslMode;
use dbintel_sources::target::Target;

use crate::check::{Check, Family, Finding, Fix, BOTH};
use crate::examine::Ctx;
use crate::facts::{opt_text, text};

pub const TLS: Check = Check {
    id: "tls",
    family: Family::Tls,
    engines: BOTH,
    what: "the session is encrypted and the server's certificate verified (sslmode = verify-full), unless on loopback",
    means: "the password and every statement text cross the network readable, or to a server that was not proven to be the right one",
};

/// Loopback names and addresses, and Unix sockets.
pub fn is_local(host: &str) -> bool {
    host.starts_with('/') || host.eq_ignore_ascii_case("localhost") || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

pub async fn check(ctx: &Ctx<'_>, host: &str, sslmode: SslMode) -> Vec<Finding> {
    let (sql, engine) = match ctx.target {
        Target::Pg(_) => {
            ("SELECT ssl::text AS ssl, version AS version, cipher AS cipher FROM pg_stat_ssl WHERE pid = pg_backend_pid()", "pg")
        }
        Target::My(_) => ("SHOW SESSION STATUS WHERE Variable_name IN ('Ssl_version', 'Ssl_cipher')", "my"),
    };
    let rows = match ctx.target.query(crate::WHAT, sql).await {
        Ok(rows) => rows,
        Err(e) => return vec![Finding::skip(&TLS, format!("cannot read the session's TLS state ({})", e.code()))],
    };
    let (on, version, cipher) = if engine == "pg" {
        let row = rows.first().cloned().unwrap_or_default();
        (text(&row, "ssl") == "true", opt_text(&row, "version"), opt_text(&row, "cipher"))
    } else {
        let value = |name: &str| {
            rows.iter().find(|r| text(r, "Variable_name") == name).and_then(|r| opt_text(r, "Value")).filter(|v| !v.is_empty())
        };
        let cipher = value("Ssl_cipher");
        (cipher.is_some(), value("Ssl_version"), cipher)
    };
    let local = is_local(host);
    let server_side = match ctx.target {
        Target::Pg(_) => "PostgreSQL: ssl = on with ssl_cert_file and ssl_key_file",
        Target::My(_) => "MySQL/MariaDB: ssl_cert, ssl_key (and require_secure_transport)",
    };
    if !on {
        if local {
            return vec![Finding::ok(&TLS, "not encrypted; loopback, so nothing crosses a network")];
        }
        return vec![Finding::warn(
            &TLS,
            format!("not encrypted (sslmode = {})", sslmode.as_str()),
            Fix::note(format!(
                "Turn TLS on at the server ({server_side}), then set the source's sslmode = verify-full and sslrootcert = \"/path/to/ca.pem\"."
            )),
        )];
    }
    let how = format!("{} {}", version.unwrap_or_default(), cipher.unwrap_or_default()).trim().to_string();
    if local || matches!(sslmode, SslMode::VerifyFull) {
        return vec![Finding::ok(&TLS, format!("encrypted ({how}), sslmode = {}", sslmode.as_str()))];
    }
    vec![Finding::warn(
        &TLS,
        format!("encrypted ({how}) but sslmode = {}: the server's certificate is not checked against its name", sslmode.as_str()),
        Fix::note(
            "Set the source's sslmode = verify-full and sslrootcert = \"/path/to/ca.pem\" (the CA that signed the server's certificate).",
        ),
    )]
}

#[cfg(test)]
mod tests {
    #[test]
    fn loopback_and_sockets_are_local_names_and_addresses_elsewhere_are_not() {
        for host in ["127.0.0.1", "::1", "localhost", "/var/run/postgresql", "127.0.0.2"] {
            assert!(super::is_local(host), "{host}");
        }
        for host in ["10.0.0.5", "db.internal", "localhost.example.com", "::ffff:10.0.0.1"] {
            assert!(!super::is_local(host), "{host}");
        }
    }
}
