//! The one duration convention of both command lines: every duration flag takes a
//! [`humantime`] value (`50ms`, `30s`, `5m`, `1h 30m`, `2d`; a bare `0` is zero), parsed here.
//!
//! Values the binaries pass on to Elasticsearch as its own time values (a scroll's
//! `keep_alive`, `index.gc_deletes`, `refresh_interval`) are not durations of ours: they are
//! checked by `schema` against Elasticsearch's syntax and sent as written.

use std::time::Duration;

/// Parses a duration flag (clap's `value_parser`); the error names the syntax.
pub fn parse(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text.trim()).map_err(|e| format!("`{text}` is not a duration ({e}): give a number with a unit, e.g. 500ms, 30s, 5m, 1h"))
}

/// Formats a duration the way [`parse`] reads it (for defaults and messages).
pub fn format(d: Duration) -> String {
    humantime::format_duration(d).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_humantime_values_and_names_the_syntax_on_error() {
        assert_eq!(parse("50ms"), Ok(Duration::from_millis(50)));
        assert_eq!(parse(" 30s "), Ok(Duration::from_secs(30)));
        assert_eq!(parse("1h 30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse("2d"), Ok(Duration::from_secs(2 * 86_400)));
        assert_eq!(parse("0"), Ok(Duration::ZERO));
        for bad in ["", "50", "5 parsecs", "-1s"] {
            let err = parse(bad).unwrap_err();
            assert!(err.contains("e.g. 500ms"), "{bad}: {err}");
        }
        for d in [Duration::from_millis(250), Duration::from_secs(90), Duration::from_secs(86_400)] {
            assert_eq!(parse(&format(d)), Ok(d));
        }
    }
}
