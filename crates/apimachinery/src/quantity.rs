//! Kubernetes resource quantities (`100m`, `1.5`, `512Mi`, `1G`, `2e3`) as integers.
//!
//! The grammar is apimachinery's `resource.Quantity`: a signed decimal number and one
//! suffix — binary SI (`Ki` … `Ei`), decimal SI (`n`, `u`, `m`, ``, `k` … `E`) or a decimal
//! exponent (`e3`, `E-2`). The scheduler compares CPU in milli-cores and everything else
//! in whole units; as upstream's `MilliValue()`/`Value()`, a fraction rounds up (away
//! from zero), so `0.1m` of CPU is still `1` milli-core and never fits in nothing.

/// The exact value `mantissa × 10^exp10 × 2^exp2`, sign apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Parsed {
    negative: bool,
    mantissa: u128,
    exp10: i32,
    exp2: u32,
    /// Significant digits were dropped: the true value is a bit above the mantissa.
    inexact: bool,
}

/// Mantissas stay below 10^36, far from u128's 3.4 × 10^38, so one more decimal shift
/// or a binary suffix multiplication is checked rather than assumed.
const MAX_DIGITS: usize = 36;

fn parse(s: &str) -> Option<Parsed> {
    let (negative, rest) = match s.as_bytes().first()? {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    let number_end = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(rest.len());
    let (number, suffix) = rest.split_at(number_end);
    let (int_part, frac_part) = match number.split_once('.') {
        Some((i, f)) => (i, f),
        None => (number, ""),
    };
    if (int_part.is_empty() && frac_part.is_empty()) || frac_part.contains('.') {
        return None;
    }
    let (suffix_exp10, exp2) = suffix_scale(suffix)?;
    let mut mantissa: u128 = 0;
    let mut digits = 0usize;
    let mut exp10: i32 = suffix_exp10;
    let mut inexact = false;
    for c in int_part.bytes() {
        let d = u128::from(c - b'0');
        if digits == 0 && d == 0 {
            continue;
        }
        if digits < MAX_DIGITS {
            mantissa = mantissa * 10 + d;
            digits += 1;
        } else {
            exp10 = exp10.saturating_add(1);
            inexact |= d != 0;
        }
    }
    for c in frac_part.bytes() {
        let d = u128::from(c - b'0');
        if digits == 0 && d == 0 {
            exp10 = exp10.saturating_sub(1);
            continue;
        }
        if digits < MAX_DIGITS {
            mantissa = mantissa * 10 + d;
            digits += 1;
            exp10 = exp10.saturating_sub(1);
        } else {
            inexact |= d != 0;
        }
    }
    Some(Parsed { negative, mantissa, exp10, exp2, inexact })
}

/// `(power of ten, power of two)` a suffix stands for.
fn suffix_scale(suffix: &str) -> Option<(i32, u32)> {
    Some(match suffix {
        "" => (0, 0),
        "n" => (-9, 0),
        "u" => (-6, 0),
        "m" => (-3, 0),
        "k" => (3, 0),
        "M" => (6, 0),
        "G" => (9, 0),
        "T" => (12, 0),
        "P" => (15, 0),
        "E" => (18, 0),
        "Ki" => (0, 10),
        "Mi" => (0, 20),
        "Gi" => (0, 30),
        "Ti" => (0, 40),
        "Pi" => (0, 50),
        "Ei" => (0, 60),
        _ => {
            let exp = suffix.strip_prefix(['e', 'E'])?;
            let digits = exp.strip_prefix(['+', '-']).unwrap_or(exp);
            if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            // Anything beyond a few hundred saturates or rounds to the smallest unit anyway.
            let digits = digits.trim_start_matches('0');
            let n: i32 = if digits.is_empty() {
                0
            } else if digits.len() > 6 {
                999_999
            } else {
                digits.parse().ok()?
            };
            (if exp.starts_with('-') { -n } else { n }, 0)
        }
    })
}

/// The quantity times `10^scale`, rounded up away from zero and saturated to `i64`;
/// `None` if `s` is not a quantity.
pub fn parse_scaled(s: &str, scale: i32) -> Option<i64> {
    let p = parse(s)?;
    if p.mantissa == 0 {
        return Some(0);
    }
    let exp10 = p.exp10.saturating_add(scale);
    let magnitude: u128 = if exp10 >= 0 {
        let mut v = p.mantissa.checked_shl(p.exp2).filter(|v| v >> p.exp2 == p.mantissa).unwrap_or(u128::MAX);
        for _ in 0..exp10.min(40) {
            v = v.saturating_mul(10);
        }
        // Dropped digits only happen past 10^36, which saturates anyway.
        v
    } else {
        let num = p.mantissa.checked_shl(p.exp2).filter(|v| v >> p.exp2 == p.mantissa).unwrap_or(u128::MAX);
        let neg = exp10.unsigned_abs();
        if neg > 38 {
            1
        } else {
            let den = 10u128.pow(neg);
            num / den + u128::from(num % den != 0 || p.inexact)
        }
    };
    let v = i64::try_from(magnitude).unwrap_or(i64::MAX);
    Some(if p.negative { -v } else { v })
}

/// Milli-units (CPU): `100m` → 100, `1.5` → 1500. Unparseable quantities count as 0,
/// as the scheduler would never have seen such a pod upstream (decoding fails there).
pub fn milli(s: &str) -> i64 {
    parse_scaled(s, 3).unwrap_or_else(|| {
        tracing::debug!(quantity = s, "ignoring an unparseable quantity");
        0
    })
}

/// Whole units (bytes, pods, extended resources): `512Mi` → 536870912.
pub fn value(s: &str) -> i64 {
    parse_scaled(s, 0).unwrap_or_else(|| {
        tracing::debug!(quantity = s, "ignoring an unparseable quantity");
        0
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities_by_table() {
        let cases: &[(&str, Option<i64>, Option<i64>)] = &[
            // (text, milli, value)
            ("0", Some(0), Some(0)),
            ("1", Some(1000), Some(1)),
            ("100m", Some(100), Some(1)),
            ("1500m", Some(1500), Some(2)),
            ("1.5", Some(1500), Some(2)),
            ("0.1", Some(100), Some(1)),
            (".5", Some(500), Some(1)),
            ("5.", Some(5000), Some(5)),
            ("+2", Some(2000), Some(2)),
            ("-2", Some(-2000), Some(-2)),
            ("0.1m", Some(1), Some(1)),
            ("250u", Some(1), Some(1)),
            ("1000000n", Some(1), Some(1)),
            ("1k", Some(1_000_000), Some(1000)),
            ("1M", Some(1_000_000_000), Some(1_000_000)),
            ("1G", Some(1_000_000_000_000), Some(1_000_000_000)),
            ("1T", None, Some(1_000_000_000_000)),
            ("1Ki", Some(1_024_000), Some(1024)),
            ("512Mi", Some(536_870_912_000), Some(536_870_912)),
            ("1.5Gi", None, Some(1_610_612_736)),
            ("1Ei", Some(i64::MAX), Some(1_152_921_504_606_846_976)),
            ("16Ei", Some(i64::MAX), Some(i64::MAX)),
            ("2e3", Some(2_000_000), Some(2000)),
            ("2E3", Some(2_000_000), Some(2000)),
            ("5e-3", Some(5), Some(1)),
            ("1e+2", Some(100_000), Some(100)),
            ("1e0000001", Some(10_000), Some(10)),
            ("1e-0", Some(1000), Some(1)),
            ("1e999999999", Some(i64::MAX), Some(i64::MAX)),
            ("1e-999999", Some(1), Some(1)),
            ("000123", Some(123_000), Some(123)),
            ("0.000", Some(0), Some(0)),
            ("123456789012345678901234567890123456789012345", Some(i64::MAX), Some(i64::MAX)),
            ("0.0000000000000000000000000000000000000000001", Some(1), Some(1)),
            ("", None, None),
            ("m", None, None),
            (".", None, None),
            ("1.2.3", None, None),
            ("1 Gi", None, None),
            ("1gi", None, None),
            ("1e", None, None),
            ("1e1.5", None, None),
            ("--1", None, None),
            ("abc", None, None),
            ("1Ki2", None, None),
        ];
        for (text, milli, value) in cases {
            if let Some(m) = milli {
                assert_eq!(parse_scaled(text, 3), Some(*m), "{text:?} in milli");
            }
            assert_eq!(parse_scaled(text, 0), *value, "{text:?} in units");
            if value.is_none() {
                assert_eq!(parse_scaled(text, 3), None, "{text:?} in milli");
            }
        }
    }

    #[test]
    fn unparseable_counts_as_zero() {
        assert_eq!(milli("lots"), 0);
        assert_eq!(value("1.2.3Gi"), 0);
        assert_eq!(milli("250m"), 250);
        assert_eq!(value("2Gi"), 2 << 30);
    }

    proptest::proptest! {
        #[test]
        fn never_panics(s in "\\PC{0,40}") {
            let _ = parse_scaled(&s, 3);
            let _ = parse_scaled(&s, 0);
        }

        #[test]
        fn whole_numbers_round_trip(n in 0i64..1_000_000_000_000) {
            proptest::prop_assert_eq!(parse_scaled(&n.to_string(), 0), Some(n));
            proptest::prop_assert_eq!(parse_scaled(&format!("{n}m"), 3), Some(n));
        }
    }
}
