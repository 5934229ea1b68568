//! Small statistics helpers and the result table.

use std::time::Duration;

/// The `q`-quantile (0..=1) of `samples` by nearest rank; zero for no samples.
pub fn quantile(samples: &[Duration], q: f64) -> Duration {
    if samples.is_empty() {
        return Duration::ZERO;
    }
    let mut sorted = samples.to_vec();
    sorted.sort_unstable();
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

/// The median of a few repetitions' figures (upper median for an even count).
pub fn median(samples: &[f64]) -> f64 {
    if samples.is_empty() {
        return f64::NAN;
    }
    let mut sorted = samples.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted[sorted.len() / 2]
}

pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Milliseconds, with three decimals below one.
pub fn fmt_ms(d: Duration) -> String {
    let v = ms(d);
    if v < 1.0 { format!("{v:.3} ms") } else { format!("{v:.1} ms") }
}

pub fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

/// Whether a figure meets its target.
#[derive(Clone, Copy)]
pub enum Verdict {
    Pass,
    Fail,
    /// No target: reported for information.
    Info,
}

/// One line of the result table.
pub struct Row {
    pub metric: String,
    pub value: String,
    pub target: String,
    pub baseline: String,
    pub ratio: String,
    pub verdict: Verdict,
}

impl Row {
    pub fn info(metric: impl Into<String>, value: impl Into<String>) -> Row {
        Row {
            metric: metric.into(),
            value: value.into(),
            target: "-".into(),
            baseline: "-".into(),
            ratio: "-".into(),
            verdict: Verdict::Info,
        }
    }

    pub fn target(mut self, target: impl Into<String>, pass: bool) -> Row {
        self.target = target.into();
        self.verdict = if pass { Verdict::Pass } else { Verdict::Fail };
        self
    }

    /// Sets the baseline and the ratio value/baseline.
    pub fn baseline(mut self, baseline: impl Into<String>, value: f64, base: f64) -> Row {
        self.baseline = baseline.into();
        self.ratio = if base > 0.0 && value.is_finite() { format!("{:.3}x", value / base) } else { "-".into() };
        self
    }
}

/// Formats a number with thousands separators and no decimals.
pub fn thousands(value: f64) -> String {
    if !value.is_finite() {
        return "n/a".into();
    }
    let digits = format!("{:.0}", value.abs());
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    if value < 0.0 { format!("-{out}") } else { out }
}

/// Prints the rows as an aligned text table.
pub fn print_table(rows: &[Row]) {
    let header = ["metric", "value", "target", "baseline", "ratio", "result"];
    let cells: Vec<[String; 6]> = rows
        .iter()
        .map(|r| {
            let verdict = match r.verdict {
                Verdict::Pass => "PASS",
                Verdict::Fail => "FAIL",
                Verdict::Info => "-",
            };
            [r.metric.clone(), r.value.clone(), r.target.clone(), r.baseline.clone(), r.ratio.clone(), verdict.into()]
        })
        .collect();
    let mut widths = header.map(str::len);
    for row in &cells {
        for (w, c) in widths.iter_mut().zip(row) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |cols: [&str; 6]| {
        let mut out = String::new();
        for (i, (c, w)) in cols.iter().zip(widths).enumerate() {
            if i > 0 {
                out.push_str(" | ");
            }
            // Numbers right-aligned, words left-aligned.
            if i == 1 || i == 4 {
                out.push_str(&format!("{c:>w$}"));
            } else {
                out.push_str(&format!("{c:<w$}"));
            }
        }
        println!("{}", out.trim_end());
    };
    line(header);
    let rule: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
    println!("{}", rule.join("-+-"));
    for row in &cells {
        line([&row[0], &row[1], &row[2], &row[3], &row[4], &row[5]]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_by_nearest_rank() {
        let samples: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(quantile(&samples, 0.5), Duration::from_millis(50));
        assert_eq!(quantile(&samples, 0.99), Duration::from_millis(99));
        assert_eq!(quantile(&samples, 1.0), Duration::from_millis(100));
        assert_eq!(quantile(&[], 0.5), Duration::ZERO);
    }

    #[test]
    fn medians_and_separators() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(thousands(1234567.4), "1,234,567");
        assert_eq!(thousands(999.0), "999");
    }
}
