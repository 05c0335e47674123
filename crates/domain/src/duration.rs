//! Human durations (`30s`, `2m`, `30d`) for the wait timeout and the retention period.
//! Parsing is `humantime`'s; the limits are ours (docs/live-operations.md).

use std::time::Duration;

use crate::ValidationError;

/// How long `…/wait` waits when the caller names no timeout.
pub const DEFAULT_WAIT: Duration = Duration::from_secs(60);
/// The longest wait a caller may ask for.
pub const MAX_WAIT: Duration = Duration::from_secs(120);
/// How long terminal operations are kept when `--retention` is not given.
pub const DEFAULT_RETENTION: Duration = Duration::from_secs(30 * 24 * 3600);

/// The grammar of a wait timeout, bounds included (0–120 s): seconds (`30s`), whole
/// minutes (`2m`), minutes and seconds (`1m30s`) or milliseconds (`500ms`). Published as
/// the parameter's pattern; the server accepts exactly what it matches.
pub const WAIT_TIMEOUT_PATTERN: &str = "^(([0-9]|[1-9][0-9]|1[01][0-9]|120)s|[0-2]m|1m([0-9]|[1-5][0-9])s|([0-9]|[1-9][0-9]{1,4}|1[01][0-9]{4}|120000)ms)$";

/// Parses a wait timeout written as [`WAIT_TIMEOUT_PATTERN`] says (`30s`, `2m`, `1m30s`).
pub fn parse_wait_timeout(field: &str, s: &str) -> Result<Duration, ValidationError> {
    static GRAMMAR: std::sync::LazyLock<Option<regex::Regex>> =
        std::sync::LazyLock::new(|| regex::Regex::new(WAIT_TIMEOUT_PATTERN).ok());
    let rule = || {
        ValidationError::new(
            field,
            format!(
                "must be a duration from 0s to {}s, e.g. 30s or 2m",
                MAX_WAIT.as_secs()
            ),
        )
    };
    if !GRAMMAR.as_ref().is_some_and(|g| g.is_match(s)) {
        return Err(rule());
    }
    let d = humantime::parse_duration(s).map_err(|_| rule())?;
    if d > MAX_WAIT { Err(rule()) } else { Ok(d) }
}

/// Parses a retention period: any positive human duration (`30d`, `12h`, `3s`).
pub fn parse_retention(s: &str) -> Result<Duration, ValidationError> {
    match humantime::parse_duration(s.trim()) {
        Ok(d) if !d.is_zero() => Ok(d),
        _ => Err(ValidationError::new(
            "retention",
            "must be a positive duration, e.g. 30d, 12h or 3s",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wait_timeouts() {
        let ok = |s: &str| parse_wait_timeout("timeout", s).map(|d| d.as_secs());
        assert_eq!(ok("30s"), Ok(30));
        assert_eq!(ok("2m"), Ok(120));
        assert_eq!(ok("1m30s"), Ok(90));
        assert_eq!(ok("0s"), Ok(0));
        assert_eq!(ok("120s"), Ok(120));
        assert_eq!(
            parse_wait_timeout("timeout", "500ms"),
            Ok(Duration::from_millis(500))
        );
        for bad in [
            "121s",
            "3m",
            "30",
            "-1s",
            "",
            "soon",
            "1h",
            "30 parsecs",
            "0",
            "1m 30s",
            " 30s",
            "2m1s",
            "120001ms",
            "007s",
        ] {
            let e = parse_wait_timeout("timeout", bad).expect_err(bad);
            assert_eq!(e.field, "timeout", "{bad}");
        }
    }

    #[test]
    fn retention_periods() {
        assert_eq!(parse_retention("30d").map(|d| d.as_secs()), Ok(2_592_000));
        assert_eq!(parse_retention("3s").map(|d| d.as_secs()), Ok(3));
        assert_eq!(DEFAULT_RETENTION, parse_retention("30d").expect("30d"));
        for bad in ["0s", "0", "", "forever", "30"] {
            assert!(parse_retention(bad).is_err(), "{bad}");
        }
    }
}
