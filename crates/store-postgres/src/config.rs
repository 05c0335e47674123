//! How to reach the database. The URL carries the password, so it never appears in
//! logs, errors or `Debug` output: everything that prints a [`DatabaseUrl`] prints it
//! with the password replaced.

use std::fmt;
use std::str::FromStr;

/// A `postgres://user:password@host:port/db?options` URL whose password is redacted
/// wherever it is shown.
#[derive(Clone)]
pub struct DatabaseUrl {
    raw: String,
    config: tokio_postgres::Config,
}

impl DatabaseUrl {
    /// The parsed connection settings.
    pub fn config(&self) -> &tokio_postgres::Config {
        &self.config
    }

    /// The URL with its password replaced by `***` (safe to log).
    pub fn redacted(&self) -> String {
        redact(&self.raw)
    }

    /// The URL as given, password included: only for handing to another opsd process.
    pub fn expose(&self) -> &str {
        &self.raw
    }
}

/// Replaces the password of a `scheme://user:password@…` URL, and of a `password=…`
/// query parameter, with `***`.
fn redact(raw: &str) -> String {
    let mut out = raw.to_owned();
    if let Some(scheme_end) = out.find("://") {
        let rest = scheme_end + 3;
        let authority_end = out[rest..].find(['/', '?']).map_or(out.len(), |i| rest + i);
        if let Some(at) = out[rest..authority_end].rfind('@')
            && let Some(colon) = out[rest..rest + at].find(':')
        {
            out.replace_range(rest + colon + 1..rest + at, "***");
        }
    }
    if let Some(q) = out.find('?') {
        let (head, query) = out.split_at(q + 1);
        let query: Vec<String> = query
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some((k, _)) if k.eq_ignore_ascii_case("password") => format!("{k}=***"),
                _ => pair.to_owned(),
            })
            .collect();
        out = format!("{head}{}", query.join("&"));
    }
    out
}

impl FromStr for DatabaseUrl {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        if !(s.starts_with("postgres://") || s.starts_with("postgresql://")) {
            return Err(format!(
                "database URL {} must start with postgres:// or postgresql://",
                redact(s)
            ));
        }
        // tokio-postgres's parse errors quote nothing of the input, so they are safe to show.
        let config = s
            .parse::<tokio_postgres::Config>()
            .map_err(|e| format!("database URL {} is not valid: {e}", redact(s)))?;
        Ok(Self {
            raw: s.to_owned(),
            config,
        })
    }
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("DatabaseUrl")
            .field(&self.redacted())
            .finish()
    }
}

impl fmt::Display for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_password_never_shows() {
        for raw in [
            "postgres://opsd:s3cr3t-pw@db.internal:5432/opsd",
            "postgresql://opsd:s3cr3t-pw@127.0.0.1/opsd?sslmode=disable",
            "postgres://opsd@127.0.0.1/opsd?password=s3cr3t-pw&application_name=x",
            "postgres://opsd:s3cr3t-pw@10.0.0.1:5432,10.0.0.2:5433/opsd?target_session_attrs=read-write",
        ] {
            let url: DatabaseUrl = raw.parse().expect("valid URL");
            for shown in [format!("{url:?}"), format!("{url}"), url.redacted()] {
                assert!(!shown.contains("s3cr3t-pw"), "{shown}");
                assert!(shown.contains("***"), "{shown}");
            }
            assert_eq!(url.expose(), raw);
        }
        let bad = "mysql://opsd:s3cr3t-pw@host/db".parse::<DatabaseUrl>();
        assert!(!bad.expect_err("refused").contains("s3cr3t-pw"));
    }

    #[test]
    fn a_multi_host_url_names_every_host() {
        let url: DatabaseUrl =
            "postgres://opsd:pw@10.0.0.1:5432,10.0.0.2:5433/opsd?target_session_attrs=read-write"
                .parse()
                .expect("valid");
        assert_eq!(url.config().get_hosts().len(), 2);
        assert_eq!(url.config().get_ports(), &[5432, 5433]);
        assert_eq!(
            url.config().get_target_session_attrs(),
            tokio_postgres::config::TargetSessionAttrs::ReadWrite
        );
    }

    #[test]
    fn urls_without_password_are_shown_as_they_are() {
        let url: DatabaseUrl = "postgres://opsd@127.0.0.1:5433/opsd"
            .parse()
            .expect("valid");
        assert_eq!(url.redacted(), "postgres://opsd@127.0.0.1:5433/opsd");
    }
}
