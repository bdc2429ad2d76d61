//! Prometheus-style durations: `500ms`, `10s`, `1m30s`, `2h`, `1d`, `1w`.

use std::time::Duration;

/// The longest duration accepted: Prometheus's limit (the largest `int64` of nanoseconds, about
/// 292 years), so that adding it to any clock reading cannot overflow.
pub const MAX_DURATION: Duration = Duration::from_nanos(i64::MAX as u64);

/// Parse a duration such as `1m30s`. A bare `0` is accepted; anything longer than
/// [`MAX_DURATION`] (or too long to be a number at all) is an error, never a panic.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    if t == "0" {
        return Ok(Duration::ZERO);
    }
    if t.is_empty() {
        return Err("empty duration (e.g. 10s, 1m30s, 500ms)".into());
    }
    let bad =
        || format!("invalid duration {s:?} (e.g. 10s, 1m30s, 500ms; units ms, s, m, h, d, w)");
    let mut total = Duration::ZERO;
    let mut rest = t;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit() && c != '.')
            .unwrap_or(rest.len());
        if digits == 0 {
            return Err(bad());
        }
        let num: f64 = rest[..digits].parse().map_err(|_| bad())?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let secs = match &rest[..unit_len] {
            "ms" => 0.001,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            "d" => 86400.0,
            "w" => 604800.0,
            _ => return Err(bad()),
        };
        rest = &rest[unit_len..];
        // `num` can be infinite (400 digits parse as +inf); try_from refuses that and overflow.
        total = Duration::try_from_secs_f64(num * secs)
            .ok()
            .and_then(|d| total.checked_add(d))
            .filter(|d| *d <= MAX_DURATION)
            .ok_or_else(|| {
                format!(
                    "duration {s:?} is too large: at most 15250w (about 292 years; e.g. 10s, 1h, 4w)"
                )
            })?;
    }
    Ok(total)
}

/// Format a duration the way it would be written in the config.
pub fn format_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms == 0 {
        return "0s".into();
    }
    if !ms.is_multiple_of(1000) {
        return format!("{ms}ms");
    }
    let mut s = ms / 1000;
    let mut out = String::new();
    for (unit, n) in [("h", 3600), ("m", 60), ("s", 1)] {
        if s >= n {
            out.push_str(&format!("{}{unit}", s / n));
            s %= n;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_prometheus_durations() {
        assert_eq!(parse_duration("10s").unwrap(), Duration::from_secs(10));
        assert_eq!(parse_duration("1m30s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("2h").unwrap(), Duration::from_secs(7200));
        assert_eq!(parse_duration("0").unwrap(), Duration::ZERO);
        assert!(parse_duration("10").is_err());
        assert!(parse_duration("ten seconds").is_err());
        assert!(parse_duration("5x").is_err());
        assert!(parse_duration("").is_err());
        assert_eq!(format_duration(Duration::from_secs(90)), "1m30s");
        assert_eq!(format_duration(Duration::from_millis(250)), "250ms");
    }

    #[test]
    fn huge_durations_are_errors_not_panics() {
        let nines = format!("{}s", "9".repeat(400));
        for huge in [
            "99999999999999999999s",
            "18446744073709551616s",
            "15251w",
            "9999999999999999w1s",
            "10000000000000000000000000000000000000ms",
            nines.as_str(),
        ] {
            let e = parse_duration(huge).expect_err(huge);
            assert!(e.contains("too large"), "{huge}: {e}");
            assert!(e.contains("e.g. 10s"), "{huge}: {e}");
        }
        // The limit itself is fine, one more second is not.
        assert!(parse_duration("15250w").is_ok());
        assert!(parse_duration("106751d23h47m16s").is_ok());
        assert!(parse_duration("106751d23h47m17s").is_err());
        assert_eq!(
            parse_duration("106751d23h47m16s").unwrap().as_secs(),
            MAX_DURATION.as_secs()
        );
    }
}
