//! Elasticsearch time values (`60s`, `48h`, `500ms`).

/// Parses an Elasticsearch time value into milliseconds, the way the server does (trimmed,
/// case-insensitive, integer with a unit, or a bare `0`). `-1` ("never"/"disabled") and
/// anything else unparseable give None: for `gc_deletes` they are no usable duration.
/// Sub-millisecond units round down.
pub fn parse_time_value_ms(s: &str) -> Option<u64> {
    const UNITS: [(&str, u64, u64); 7] =
        [("nanos", 1, 1_000_000), ("micros", 1, 1_000), ("ms", 1, 1), ("s", 1_000, 1), ("m", 60_000, 1), ("h", 3_600_000, 1), ("d", 86_400_000, 1)];
    let s = s.trim().to_ascii_lowercase();
    if s == "0" {
        return Some(0);
    }
    UNITS.iter().find_map(|(unit, mul, div)| {
        let digits = s.strip_suffix(unit)?;
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        digits.parse::<u64>().ok()?.checked_mul(*mul).map(|v| v / div)
    })
}

/// An Elasticsearch time value ([`parse_time_value_ms`]: `500ms`, `90s`, `30m`, `48h`, `2d`)
/// or a bare number of milliseconds (`3600000`), as the server reads one. The error names the
/// accepted syntax. (Durations of cutover's own flags take `runtime::duration`'s syntax.)
fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    let t = text.trim();
    let ms = if !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()) { t.parse().ok() } else { parse_time_value_ms(t) };
    ms.map(std::time::Duration::from_millis)
        .ok_or_else(|| format!("{text:?} is not a duration: give a number with a unit (500ms, 90s, 30m, 48h, 2d) or a bare number of milliseconds"))
}

/// A flag whose value is sent to Elasticsearch as its own time value (`--gc-deletes`,
/// `--keep-alive`, `--refresh-interval`):
/// parsed by [`parse_duration`], and returned in a form Elasticsearch accepts (a bare number
/// of milliseconds gets its `ms` unit; any other value is kept as written, trimmed).
pub fn parse_time_value_arg(text: &str) -> Result<String, String> {
    parse_duration(text)?;
    let t = text.trim();
    Ok(if t.bytes().all(|b| b.is_ascii_digit()) { format!("{t}ms") } else { t.to_owned() })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn duration_flags_take_time_values_and_bare_milliseconds() {
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("3600000"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration(" 250ms "), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("2d"), Ok(Duration::from_secs(2 * 86_400)));
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
        for bad in ["", "h", "1.5h", "-1", "5 weeks", "1w"] {
            let err = parse_duration(bad).unwrap_err();
            assert!(err.contains("bare number of milliseconds"), "{bad}: {err}");
        }
        assert_eq!(parse_time_value_arg("48h").as_deref(), Ok("48h"));
        assert_eq!(parse_time_value_arg("1500").as_deref(), Ok("1500ms"));
        assert_eq!(parse_time_value_arg("0").as_deref(), Ok("0ms"));
        assert!(parse_time_value_arg("soon").is_err());
    }

    #[test]
    fn parses_units() {
        assert_eq!(parse_time_value_ms("60s"), Some(60_000));
        assert_eq!(parse_time_value_ms("48h"), Some(172_800_000));
        assert_eq!(parse_time_value_ms("1d"), Some(86_400_000));
        assert_eq!(parse_time_value_ms("500ms"), Some(500));
        assert_eq!(parse_time_value_ms("2m"), Some(120_000));
        assert_eq!(parse_time_value_ms(" 1H "), Some(3_600_000));
        assert_eq!(parse_time_value_ms("1500micros"), Some(1));
        assert_eq!(parse_time_value_ms("0"), Some(0));
    }

    #[test]
    fn rejects_garbage() {
        for s in ["-1", "-5s", "", "s", "10", "1.5h", "1w", "abc", "99999999999999999999d"] {
            assert_eq!(parse_time_value_ms(s), None, "{s}");
        }
    }
}
