//! Secrets (DSNs, keys) read from `env("X")` or `file("/path")`.
//!
//! A [`Secret`] never prints its value: Debug and Display show where it came
//! from. Errors from drivers are passed through [`Secret::scrub`] before
//! anyone sees them, in case a driver echoes part of a DSN.

use std::fmt;

use dbintel_dsl::plan::SecretRef;

#[derive(Clone)]
pub struct Secret {
    value: String,
    origin: String,
}

#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("environment variable `{0}` is not set")]
    EnvMissing(String),
    #[error("cannot read secret file `{path}`: {error}")]
    File { path: String, error: std::io::Error },
}

impl Secret {
    pub fn resolve(reference: &SecretRef) -> Result<Secret, SecretError> {
        match reference {
            SecretRef::Env(name) => match std::env::var(name) {
                Ok(value) if !value.is_empty() => Ok(Secret { value, origin: format!("env({name:?})") }),
                _ => Err(SecretError::EnvMissing(name.clone())),
            },
            SecretRef::File(path) => std::fs::read_to_string(path)
                .map(|v| Secret { value: v.trim_end_matches(['\n', '\r']).to_string(), origin: format!("file({path:?})") })
                .map_err(|error| SecretError::File { path: path.clone(), error }),
        }
    }

    /// A value given some other way (a header written in the file or in
    /// an environment variable); `origin` says where, for messages.
    pub fn plain(value: &str, origin: &str) -> Secret {
        Secret { value: value.to_string(), origin: origin.to_string() }
    }

    /// The value, for handing to a driver. Never log it.
    pub fn expose(&self) -> &str {
        &self.value
    }

    /// `text` with the secret, and any password inside it if it is a URL,
    /// replaced by `***`.
    pub fn scrub(&self, text: &str) -> String {
        // an empty secret (a targets list entry without a password) hides
        // nothing; replacing "" would put *** between every character
        let mut out = if self.value.is_empty() { text.to_string() } else { text.replace(&self.value, "***") };
        if let Some(password) = url_password(&self.value) {
            if password.len() >= 3 {
                out = out.replace(password, "***");
            }
        }
        out
    }
}

/// The password of `scheme://user:password@host/...`, if there is one.
pub fn url_password(url: &str) -> Option<&str> {
    let rest = url.split_once("://")?.1;
    let userinfo = rest.split_once('@')?.0;
    let password = userinfo.split_once(':')?.1;
    (!password.is_empty()).then_some(password)
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secret({})", self.origin)
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<secret from {}>", self.origin)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_shows_its_value() {
        std::env::set_var("DBINTEL_TEST_SECRET_DSN", "postgres://mon:s3cr3t-pw@db:5432/app");
        let s = Secret::resolve(&SecretRef::Env("DBINTEL_TEST_SECRET_DSN".into())).expect("set");
        assert!(!format!("{s:?} {s}").contains("s3cr3t"));
        assert_eq!(s.scrub("failed: password s3cr3t-pw rejected"), "failed: password *** rejected");
        assert_eq!(url_password("mysql://u:p4ss@h/db"), Some("p4ss"));
        assert_eq!(url_password("postgres://u@h/db"), None);
    }

    #[test]
    fn an_empty_secret_leaves_messages_as_they_are() {
        let s = Secret::plain("", "the targets list");
        assert_eq!(s.scrub("connection refused at db:5432"), "connection refused at db:5432");
    }
}
