//! Human-readable ages and durations, as `kubectl get` shows them in AGE-like columns.

use jiff::{SignedDuration, Timestamp};

/// Formats a duration the way upstream's `duration.HumanDuration` does: about two to
/// three significant figures, switching units at fixed boundaries (`119s`, `2m`,
/// `9m59s`, `10m`, `179m`, `3h`, `7h59m`, `8h`, `47h`, `2d`, `7d23h`, `8d`, `729d`,
/// `2y`, `7y364d`, `8y`).
///
/// Durations down to one second in the past print as `0s`, because clocks of different
/// machines drift a little; anything more negative is `<invalid>`.
pub fn human_duration(d: SignedDuration) -> String {
    // Truncation toward zero matters at the negative boundary: -1.9s counts as -1s.
    let seconds = d.as_secs();
    if seconds < -1 {
        return "<invalid>".to_string();
    }
    if seconds < 0 {
        return "0s".to_string();
    }
    if seconds < 60 * 2 {
        return format!("{seconds}s");
    }
    let minutes = seconds / 60;
    if minutes < 10 {
        let s = seconds % 60;
        return if s == 0 { format!("{minutes}m") } else { format!("{minutes}m{s}s") };
    }
    if minutes < 60 * 3 {
        return format!("{minutes}m");
    }
    let hours = minutes / 60;
    if hours < 8 {
        let m = minutes % 60;
        return if m == 0 { format!("{hours}h") } else { format!("{hours}h{m}m") };
    }
    if hours < 48 {
        return format!("{hours}h");
    }
    let days = hours / 24;
    if hours < 24 * 8 {
        let h = hours % 24;
        return if h == 0 { format!("{days}d") } else { format!("{days}d{h}h") };
    }
    if hours < 24 * 365 * 2 {
        return format!("{days}d");
    }
    let years = days / 365;
    if hours < 24 * 365 * 8 {
        let dy = days % 365;
        return if dy == 0 { format!("{years}y") } else { format!("{years}y{dy}d") };
    }
    format!("{years}y")
}

/// Parses a Kubernetes `Time`/`MicroTime` (RFC 3339). Absent, empty, unparsable and Go's
/// zero time (`0001-01-01T00:00:00Z`, which upstream treats as "unset") all give `None`.
pub(crate) fn parse_time(raw: Option<&str>) -> Option<Timestamp> {
    let ts: Timestamp = raw?.parse().ok()?;
    (ts != go_zero_time()).then_some(ts)
}

fn go_zero_time() -> Timestamp {
    // -62135596800 is 0001-01-01T00:00:00Z in Unix seconds; always in jiff's range.
    Timestamp::from_second(-62_135_596_800).unwrap_or(Timestamp::MIN)
}

/// Age of a timestamp relative to `now`, or `<unknown>` when it is unset.
pub(crate) fn since(raw: Option<&str>, now: Timestamp) -> String {
    match parse_time(raw) {
        Some(ts) => age_since(ts, now),
        None => "<unknown>".to_string(),
    }
}

/// Time elapsed from `ts` to `now`, formatted.
pub(crate) fn age_since(ts: Timestamp, now: Timestamp) -> String {
    human_duration(now.duration_since(ts))
}

/// The AGE cell: time since `metadata.creationTimestamp`.
pub(crate) fn age(obj: &serde_json::Value, now: Timestamp) -> String {
    since(obj.pointer("/metadata/creationTimestamp").and_then(serde_json::Value::as_str), now)
}

/// The creation time as the default table convertor prints it: UTC RFC 3339 with whole
/// seconds, and Go's zero time when unset.
pub(crate) fn created_at(raw: Option<&str>) -> String {
    let ts = parse_time(raw).unwrap_or_else(go_zero_time);
    ts.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: i64) -> SignedDuration {
        SignedDuration::from_millis(n)
    }

    const S: i64 = 1000;
    const M: i64 = 60 * S;
    const H: i64 = 60 * M;
    const D: i64 = 24 * H;
    const Y: i64 = 365 * D;

    #[test]
    fn human_duration_matches_upstream_boundaries() {
        let cases: &[(SignedDuration, &str)] = &[
            (ms(-2 * S), "<invalid>"),
            (SignedDuration::new(-1, -999_999_999), "0s"),
            (ms(0), "0s"),
            (ms(S - 1), "0s"),
            (ms(S), "1s"),
            (ms(70 * S), "70s"),
            (ms(2 * M - 1), "119s"),
            (ms(2 * M), "2m"),
            (ms(2 * M + S), "2m1s"),
            (ms(190 * S), "3m10s"),
            (ms(10 * M - 1), "9m59s"),
            (ms(10 * M), "10m"),
            (ms(10 * M + S), "10m"),
            (ms(70 * M), "70m"),
            (ms(3 * H - 1), "179m"),
            (ms(3 * H), "3h"),
            (ms(3 * H + M), "3h1m"),
            (ms(8 * H - 1), "7h59m"),
            (ms(8 * H), "8h"),
            (ms(8 * H + 59 * M), "8h"),
            (ms(47 * H), "47h"),
            (ms(2 * D - 1), "47h"),
            (ms(2 * D), "2d"),
            (ms(49 * H), "2d1h"),
            (ms(8 * D - 1), "7d23h"),
            (ms(8 * D), "8d"),
            (ms(8 * D + 23 * H), "8d"),
            (ms(8 * D + 2 * H), "8d"),
            (ms(367 * D), "367d"),
            (ms(2 * Y - 1), "729d"),
            (ms(2 * Y), "2y"),
            (ms(2 * Y + 23 * H + 59 * M), "2y"),
            (ms(2 * Y + D - 1), "2y"),
            (ms(2 * Y + D), "2y1d"),
            (ms(2 * Y + 25 * H), "2y1d"),
            (ms(3 * Y), "3y"),
            (ms(7 * Y), "7y"),
            (ms(8 * Y - 1), "7y364d"),
            (ms(8 * Y), "8y"),
            (ms(8 * Y + 2 * H), "8y"),
            (ms(8 * Y + 364 * D), "8y"),
            (ms(9 * Y), "9y"),
            (ms(10 * Y), "10y"),
        ];
        for (d, want) in cases {
            assert_eq!(human_duration(*d), *want, "duration {d:?}");
        }
    }

    #[test]
    fn unset_times_are_unknown() {
        let now: Timestamp = "2025-01-01T00:00:00Z".parse().unwrap();
        assert_eq!(since(None, now), "<unknown>");
        assert_eq!(since(Some(""), now), "<unknown>");
        assert_eq!(since(Some("not a time"), now), "<unknown>");
        assert_eq!(since(Some("0001-01-01T00:00:00Z"), now), "<unknown>");
        assert_eq!(since(Some("2024-12-31T23:55:00Z"), now), "5m");
        assert_eq!(since(Some("2024-12-31T23:59:30.123456Z"), now), "29s");
    }

    #[test]
    fn created_at_is_utc_seconds() {
        assert_eq!(created_at(Some("2024-05-06T07:08:09.5+02:00")), "2024-05-06T05:08:09Z");
        assert_eq!(created_at(None), "0001-01-01T00:00:00Z");
    }
}
