//! How to reach the database. The URL carries the password, so it never appears in
//! logs, errors or `Debug` output: everything that prints a [`DatabaseUrl`] prints it
//! with the password replaced.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// How long the server lets a connection of this store sit inside a transaction without
/// a statement before it ends the session (no transaction of opsd pauses that long).
const IDLE_IN_TRANSACTION: Duration = Duration::from_secs(30);
/// The longest the server runs one statement of this store (`statement_timeout`): no
/// statement of a request may outlast the request's default timeout. Migrations lift it
/// for their own session.
const STATEMENT_TIMEOUT: Duration = Duration::from_secs(30);
/// TCP keepalive on every connection: the first probe after this long without traffic,
/// then every [`KEEPALIVE_INTERVAL`], the connection given up after
/// [`KEEPALIVE_RETRIES`] unanswered probes (about 25 s for an idle connection to a host
/// that vanished, instead of the kernel's two hours).
const KEEPALIVE_IDLE: Duration = Duration::from_secs(10);
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(5);
const KEEPALIVE_RETRIES: u32 = 3;
/// How long sent data may stay unacknowledged before the kernel closes the connection
/// (`TCP_USER_TIMEOUT`): a busy connection to a host that vanished fails after this.
const TCP_USER_TIMEOUT: Duration = Duration::from_secs(20);
/// tokio-postgres's keepalive idle time when the URL sets none.
const DEFAULT_KEEPALIVE_IDLE: Duration = Duration::from_secs(2 * 60 * 60);

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

    /// The settings of every connection the store opens (pool, listener, migrations):
    /// the URL's, plus a connect timeout, an application name, server-side timeouts
    /// (`idle_in_transaction_session_timeout`, `statement_timeout`), TCP keepalive and
    /// a TCP user timeout. What the URL sets itself (its `options`, keepalive, user
    /// timeout) wins. Without these, a connection lost in the middle of a batch would
    /// keep its rows and the feed head locked until the server noticed, and a
    /// vanished host would be noticed after hours.
    pub fn session_config(&self, connect_timeout: Duration) -> tokio_postgres::Config {
        let mut pg = self.config.clone();
        pg.connect_timeout(connect_timeout);
        if pg.get_application_name().is_none() {
            pg.application_name("opsd");
        }
        let ours = format!(
            "-c idle_in_transaction_session_timeout={} -c statement_timeout={}",
            IDLE_IN_TRANSACTION.as_millis(),
            STATEMENT_TIMEOUT.as_millis()
        );
        // Later `-c` settings win: the URL's own come last.
        let startup = match pg.get_options() {
            Some(given) => format!("{ours} {given}"),
            None => ours,
        };
        pg.options(&startup);
        if pg.get_keepalives_idle() == DEFAULT_KEEPALIVE_IDLE {
            pg.keepalives_idle(KEEPALIVE_IDLE)
                .keepalives_interval(KEEPALIVE_INTERVAL)
                .keepalives_retries(KEEPALIVE_RETRIES);
        }
        if pg.get_tcp_user_timeout().is_none() {
            pg.tcp_user_timeout(TCP_USER_TIMEOUT);
        }
        pg
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
    fn every_connection_gets_timeouts_unless_the_url_sets_its_own() {
        let url: DatabaseUrl = "postgres://opsd@127.0.0.1/opsd".parse().expect("valid");
        let pg = url.session_config(Duration::from_secs(5));
        assert!(pg.get_keepalives());
        assert_eq!(pg.get_keepalives_idle(), KEEPALIVE_IDLE);
        assert_eq!(pg.get_keepalives_interval(), Some(KEEPALIVE_INTERVAL));
        assert_eq!(pg.get_keepalives_retries(), Some(KEEPALIVE_RETRIES));
        assert_eq!(pg.get_tcp_user_timeout(), Some(&TCP_USER_TIMEOUT));
        assert_eq!(
            pg.get_options(),
            Some("-c idle_in_transaction_session_timeout=30000 -c statement_timeout=30000")
        );
        assert_eq!(pg.get_application_name(), Some("opsd"));

        let own: DatabaseUrl = "postgres://opsd@127.0.0.1/opsd?keepalives_idle=60\
             &tcp_user_timeout=7&options=-c%20statement_timeout%3D5000"
            .parse()
            .expect("valid");
        let pg = own.session_config(Duration::from_secs(5));
        assert_eq!(pg.get_keepalives_idle(), Duration::from_secs(60));
        assert_eq!(pg.get_tcp_user_timeout(), Some(&Duration::from_secs(7)));
        let options = pg.get_options().unwrap_or_default();
        assert!(options.ends_with("-c statement_timeout=5000"), "{options}");
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
