//! Finding secrets written inside connection strings: a password in a
//! URL's userinfo (`postgres://user:pw@host`, `redis://:pw@host`) or in a
//! password-bearing parameter (`?password=…`, `?sslpassword=…`, or a
//! libpq `key=value` DSN's `password=…`). Secrets come from `env()` or
//! `file()` only; a connection string written in a `.pipe` file or a
//! targets file must carry none. What is found is described by where it
//! sits, never by its value.

/// Parameter names whose values are credentials, compared lower-case with
/// `-` and `_` removed (`ssl_password`, `SSLPassword`, `api-key`).
const SECRET_PARAMETERS: &[&str] = &["password", "passwd", "pwd", "pass", "sslpassword", "secret", "token", "apikey", "authtoken"];

/// Where `text` (a URL, a host, or a `key=value` DSN) carries a secret:
/// `Some("its userinfo (…)")` or ``Some("its `password` parameter")``.
pub fn secret_in_connection_string(text: &str) -> Option<String> {
    let url = text.contains("://");
    // a libpq `key=value` DSN has no userinfo; a URL or a bare host may
    if url || !text.contains('=') {
        let rest = text.split_once("://").map_or(text, |(_, rest)| rest);
        // the userinfo ends at the last `@` before the query: a password
        // with an unencoded `/` in it must be found too
        let before_query = rest.split(['?', '#']).next().unwrap_or(rest);
        if before_query.rsplit_once('@').is_some_and(|(userinfo, _)| userinfo.contains(':')) {
            return Some("its userinfo (`user:password@`)".into());
        }
    }
    // a URL's query, or every `key=value` word of a libpq-style DSN
    let pairs: Vec<&str> = if url {
        match text.split_once('?') {
            Some((_, q)) => q.split('#').next().unwrap_or(q).split(['&', ';']).collect(),
            None => Vec::new(),
        }
    } else {
        text.split_whitespace().collect()
    };
    pairs.iter().filter_map(|pair| pair.split_once('=').map(|(name, _)| name)).find_map(|name| {
        let normal: String = decode(name).chars().filter(|c| *c != '-' && *c != '_').flat_map(char::to_lowercase).collect();
        SECRET_PARAMETERS.contains(&normal.as_str()).then(|| format!("its `{}` parameter", shown(name)))
    })
}

/// A parameter's name as written, percent-decoded.
fn decode(name: &str) -> String {
    let bytes = name.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = (bytes[i] == b'%').then(|| bytes.get(i + 1..i + 3)).flatten().and_then(|h| std::str::from_utf8(h).ok());
        match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
            Some(b) => {
                out.push(b);
                i += 3;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A parameter name fit to show: printable and short (it is the name, not
/// the value, but it came from the same untrusted text).
fn shown(name: &str) -> String {
    decode(name).chars().filter(|c| !c.is_control()).take(32).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_in_userinfo_are_found() {
        for url in ["postgres://u:pw@h/db", "redis://:pw@cache:6379", "mysql://u:p/w@h:3306/x", "u:pw@db.internal"] {
            assert!(secret_in_connection_string(url).is_some_and(|w| w.contains("userinfo")), "{url}");
        }
    }

    #[test]
    fn password_bearing_parameters_are_found_by_name_not_value() {
        for (dsn, name) in [
            ("postgres://u@h/db?password=hunter2", "password"),
            ("postgres://u@h/db?sslmode=require&sslpassword=hunter2", "sslpassword"),
            ("mysql://u@h/db?ssl-mode=REQUIRED&PassWord=hunter2", "PassWord"),
            ("postgres://u@h/db?pass%77ord=hunter2", "password"),
            ("redis://cache:6379/0?password=hunter2#x", "password"),
            ("host=db user=u password=hunter2 dbname=x", "password"),
            ("postgres://u@h/db?x=1;api_key=hunter2", "api_key"),
        ] {
            let found = secret_in_connection_string(dsn).unwrap_or_else(|| panic!("{dsn}: nothing found"));
            assert!(found.contains(&format!("`{name}`")) && !found.contains("hunter2"), "{dsn}: {found}");
        }
    }

    #[test]
    fn connection_strings_without_secrets_pass() {
        for dsn in [
            "postgres://u@h/db",
            "postgres://h:5432/db?sslmode=verify-full&sslrootcert=/etc/ca.pem&sslkey=/etc/key.pem",
            "postgres://u@h:5432/db?application_name=a@b:c",
            "redis://cache:6379",
            "rediss://user@cache:6380/2",
            "db.internal",
            "host=db user=u dbname=x passfile=/etc/pgpass",
            "host=db:5432 user=a@b dbname=x",
        ] {
            assert_eq!(secret_in_connection_string(dsn), None, "{dsn}");
        }
    }
}
