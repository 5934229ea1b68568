//! Just enough of `resource.Quantity` to compare two quantities and reject malformed ones.

/// The message upstream's quantity parser gives for a malformed quantity.
pub const QUANTITY_FORMAT: &str =
    "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'";

/// Parses a quantity into billionths (`1` → 1_000_000_000, `1m` → 1_000_000), saturating
/// far beyond any real resource size. `None` when the text is not a quantity.
pub fn parse_nanos(s: &str) -> Option<i128> {
    let s = s.trim();
    let (negative, rest) = match s.as_bytes().first()? {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    let num_end = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(rest.len());
    let (number, suffix) = rest.split_at(num_end);
    let (int_part, frac_part) = number.split_once('.').unwrap_or((number, ""));
    if (int_part.is_empty() && frac_part.is_empty()) || frac_part.contains('.') {
        return None;
    }
    // Value as an integer mantissa times 10^exp10 times 2^exp2.
    let digits = format!("{int_part}{frac_part}");
    let mut mantissa: i128 = 0;
    for c in digits.chars().take(30) {
        mantissa = mantissa.saturating_mul(10).saturating_add(i128::from(c.to_digit(10)?));
    }
    let mut exp10: i32 = -(i32::try_from(frac_part.len()).ok()?);
    let mut exp2: u32 = 0;
    match suffix {
        "" => {}
        "n" => exp10 -= 9,
        "u" => exp10 -= 6,
        "m" => exp10 -= 3,
        "k" => exp10 += 3,
        "M" => exp10 += 6,
        "G" => exp10 += 9,
        "T" => exp10 += 12,
        "P" => exp10 += 15,
        "E" => exp10 += 18,
        "Ki" => exp2 = 10,
        "Mi" => exp2 = 20,
        "Gi" => exp2 = 30,
        "Ti" => exp2 = 40,
        "Pi" => exp2 = 50,
        "Ei" => exp2 = 60,
        other => {
            let exp = other.strip_prefix(['e', 'E'])?;
            let exp: i32 = exp.parse().ok()?;
            exp10 += exp;
        }
    }
    exp10 += 9; // to nanos
    let mut value = mantissa.saturating_mul(1i128 << exp2);
    if exp10 >= 0 {
        for _ in 0..exp10.min(40) {
            value = value.saturating_mul(10);
        }
    } else {
        for _ in 0..(-exp10).min(40) {
            value /= 10;
        }
    }
    Some(if negative { -value } else { value })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_compares() {
        let table = [
            ("1", Some(1_000_000_000)),
            ("100m", Some(100_000_000)),
            ("0.5", Some(500_000_000)),
            ("1Ki", Some(1_024_000_000_000)),
            ("1e3", Some(1_000_000_000_000)),
            ("-2", Some(-2_000_000_000)),
            ("abc", None),
            ("1Qi", None),
            ("", None),
        ];
        for (s, want) in table {
            assert_eq!(parse_nanos(s), want, "{s}");
        }
        assert!(parse_nanos("1Gi") > parse_nanos("1G"));
    }
}
