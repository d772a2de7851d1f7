//! Elasticsearch time values (`60s`, `48h`, `500ms`).

/// Parses an Elasticsearch time value into milliseconds, the way the server does (trimmed,
/// case-insensitive, integer with a unit, or a bare `0`). `-1` ("never"/"disabled") and
/// anything else unparseable give None: for `gc_deletes` they are no usable duration.
/// Sub-millisecond units round down.
pub fn parse_time_value_ms(s: &str) -> Option<u64> {
    const UNITS: [(&str, u64, u64); 7] = [
        ("nanos", 1, 1_000_000),
        ("micros", 1, 1_000),
        ("ms", 1, 1),
        ("s", 1_000, 1),
        ("m", 60_000, 1),
        ("h", 3_600_000, 1),
        ("d", 86_400_000, 1),
    ];
    let s = s.trim().to_ascii_lowercase();
    if s == "0" {
        return Some(0);
    }
    UNITS.iter().find_map(|(unit, mul, div)| {
        let digits = s.strip_suffix(unit)?;
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        digits
            .parse::<u64>()
            .ok()?
            .checked_mul(*mul)
            .map(|v| v / div)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

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
        for s in [
            "-1",
            "-5s",
            "",
            "s",
            "10",
            "1.5h",
            "1w",
            "abc",
            "99999999999999999999d",
        ] {
            assert_eq!(parse_time_value_ms(s), None, "{s}");
        }
    }
}
