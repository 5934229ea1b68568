//! `kubectl logs`: reads a container's CRI log file (`<RFC3339Nano> <stream> <P|F>
//! <content>` per line, `P` for a partial line) and turns it back into the container's
//! output, with upstream's options: tail, since, timestamps, limit and follow.

use std::path::PathBuf;
use std::time::Duration;

use bytes::Bytes;
use jiff::Timestamp;
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tokio::sync::mpsc;

/// The query of `GET /containerLogs/...` (the same names as upstream's PodLogOptions).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LogOptions {
    pub follow: bool,
    pub previous: bool,
    pub timestamps: bool,
    pub tail_lines: Option<u64>,
    pub limit_bytes: Option<u64>,
    pub since: Option<Timestamp>,
}

impl LogOptions {
    /// Parses the query; `now` resolves `sinceSeconds`.
    pub fn parse(pairs: &[(String, String)], now: Timestamp) -> Result<LogOptions, String> {
        let mut o = LogOptions::default();
        let flag = |v: &str| v == "true" || v == "1";
        let number = |k: &str, v: &str| v.parse::<u64>().map_err(|_| format!("invalid {k}: {v:?}"));
        for (k, v) in pairs {
            match k.as_str() {
                "follow" => o.follow = flag(v),
                "previous" => o.previous = flag(v),
                "timestamps" => o.timestamps = flag(v),
                "tailLines" => o.tail_lines = Some(number(k, v)?),
                "limitBytes" => o.limit_bytes = Some(number(k, v)?.max(1)),
                "sinceSeconds" => {
                    let s = number(k, v)?.min(i64::MAX as u64 / 2) as i64;
                    o.since = now.checked_sub(jiff::SignedDuration::from_secs(s)).ok();
                }
                "sinceTime" => o.since = Some(v.parse().map_err(|_| format!("invalid sinceTime: {v:?}"))?),
                _ => {}
            }
        }
        Ok(o)
    }
}

/// One line of a CRI log file.
#[derive(Debug, PartialEq)]
pub struct LogLine<'a> {
    pub time: &'a str,
    pub stream: &'a str,
    pub partial: bool,
    pub content: &'a [u8],
}

/// Parses one line (without its newline); `None` for a line that is not CRI format.
pub fn parse_line(line: &[u8]) -> Option<LogLine<'_>> {
    let mut parts = line.splitn(4, |b| *b == b' ');
    let time = std::str::from_utf8(parts.next()?).ok()?;
    let stream = std::str::from_utf8(parts.next()?).ok()?;
    let tag = parts.next()?;
    let content = parts.next().unwrap_or_default();
    if !matches!(stream, "stdout" | "stderr") {
        return None;
    }
    // Tags are `:`-separated; the first is P (partial) or F (full).
    let partial = tag.split(|b| *b == b':').next() == Some(b"P");
    Some(LogLine { time, stream, partial, content })
}

/// What the client sees for `line`: its content, the newline a full line ended with, and
/// the time prefix when asked for.
pub fn render(line: &LogLine<'_>, timestamps: bool, out: &mut Vec<u8>) {
    if timestamps {
        out.extend_from_slice(line.time.as_bytes());
        out.push(b' ');
    }
    out.extend_from_slice(line.content);
    if !line.partial {
        out.push(b'\n');
    }
}

/// The offset where the last `n` lines of `data` start.
pub fn tail_start(data: &[u8], n: u64) -> usize {
    if n == 0 {
        return data.len();
    }
    let mut seen = 0;
    // A trailing newline ends the last line; it does not start a new one.
    let end = if data.ends_with(b"\n") { data.len() - 1 } else { data.len() };
    for i in (0..end).rev() {
        if data[i] == b'\n' {
            seen += 1;
            if seen == n {
                return i + 1;
            }
        }
    }
    0
}

/// Filters and renders complete lines; returns false once `limit` is used up.
struct Renderer {
    options: LogOptions,
    written: u64,
}

impl Renderer {
    fn push(&mut self, raw: &[u8], out: &mut Vec<u8>) -> bool {
        let Some(line) = parse_line(raw) else { return true };
        if let Some(since) = self.options.since
            && line.time.parse::<Timestamp>().is_ok_and(|t| t < since)
        {
            return true;
        }
        let start = out.len();
        render(&line, self.options.timestamps, out);
        self.written += (out.len() - start) as u64;
        if let Some(limit) = self.options.limit_bytes
            && self.written >= limit
        {
            out.truncate(out.len() - (self.written - limit) as usize);
            return false;
        }
        true
    }
}

/// Streams the log at `path` into `tx`. With `follow`, keeps reading new lines until
/// `running` says the container stopped (checked when the file is idle) or the client
/// goes away.
pub async fn stream<F, Fut>(
    path: PathBuf,
    options: LogOptions,
    tx: mpsc::Sender<Result<Bytes, std::io::Error>>,
    running: F,
) where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let mut file = match tokio::fs::File::open(&path).await {
        Ok(f) => f,
        Err(e) => {
            let _ = tx.send(Err(e)).await;
            return;
        }
    };
    if let Some(n) = options.tail_lines {
        let mut all = Vec::new();
        if let Err(e) = file.read_to_end(&mut all).await {
            let _ = tx.send(Err(e)).await;
            return;
        }
        let start = tail_start(&all, n);
        if file.seek(std::io::SeekFrom::Start(start as u64)).await.is_err() {
            return;
        }
    }
    let follow = options.follow;
    let mut renderer = Renderer { options, written: 0 };
    let mut pending: Vec<u8> = Vec::new();
    let mut chunk = vec![0u8; 64 * 1024];
    let mut idle = Duration::ZERO;
    let mut stopped = false;
    loop {
        let n = match file.read(&mut chunk).await {
            Ok(n) => n,
            Err(e) => {
                let _ = tx.send(Err(e)).await;
                return;
            }
        };
        if n > 0 {
            idle = Duration::ZERO;
            pending.extend_from_slice(&chunk[..n]);
            let mut out = Vec::new();
            let mut used = 0;
            let mut more = true;
            while let Some(nl) = pending[used..].iter().position(|b| *b == b'\n') {
                more = renderer.push(&pending[used..used + nl], &mut out);
                used += nl + 1;
                if !more {
                    break;
                }
            }
            pending.drain(..used);
            if !out.is_empty() && tx.send(Ok(Bytes::from(out))).await.is_err() {
                return;
            }
            if !more {
                return;
            }
            continue;
        }
        if !follow || stopped {
            return;
        }
        if tx.is_closed() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        idle += Duration::from_millis(100);
        if idle >= Duration::from_millis(500) {
            idle = Duration::ZERO;
            // One more read after the container stopped picks up its last lines.
            stopped = !running().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOG: &[u8] = b"2026-12-06T10:00:00.000000001Z stdout F one\n\
2026-12-06T10:00:01.000000000Z stderr F two\n\
2026-12-06T10:00:02.000000000Z stdout P thr\n\
2026-12-06T10:00:02.500000000Z stdout F ee\n\
2026-12-06T10:00:03.000000000Z stdout F \n";

    async fn read(options: LogOptions) -> String {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("0.log");
        std::fs::write(&path, LOG).unwrap();
        let (tx, mut rx) = mpsc::channel(16);
        stream(path, options, tx, || async { false }).await;
        let mut out = Vec::new();
        while let Some(Ok(b)) = rx.recv().await {
            out.extend_from_slice(&b);
        }
        String::from_utf8(out).unwrap()
    }

    #[tokio::test]
    async fn options_shape_the_output_as_upstream() {
        assert_eq!(read(LogOptions::default()).await, "one\ntwo\nthree\n\n");
        assert_eq!(read(LogOptions { tail_lines: Some(2), ..Default::default() }).await, "ee\n\n");
        assert_eq!(read(LogOptions { tail_lines: Some(0), ..Default::default() }).await, "");
        assert_eq!(read(LogOptions { tail_lines: Some(99), ..Default::default() }).await, "one\ntwo\nthree\n\n");
        assert_eq!(read(LogOptions { limit_bytes: Some(6), ..Default::default() }).await, "one\ntw");
        let since = "2026-12-06T10:00:01Z".parse().unwrap();
        assert_eq!(read(LogOptions { since: Some(since), ..Default::default() }).await, "two\nthree\n\n");
        assert_eq!(
            read(LogOptions { timestamps: true, tail_lines: Some(1), ..Default::default() }).await,
            "2026-12-06T10:00:03.000000000Z \n"
        );
    }

    #[test]
    fn query_parsing() {
        let now: Timestamp = "2026-12-06T10:00:00Z".parse().unwrap();
        let q = |pairs: &[(&str, &str)]| {
            LogOptions::parse(&pairs.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect::<Vec<_>>(), now)
        };
        let o = q(&[("follow", "true"), ("tailLines", "5"), ("sinceSeconds", "60")]).unwrap();
        assert!(o.follow && !o.previous);
        assert_eq!(o.tail_lines, Some(5));
        assert_eq!(o.since, Some("2026-12-06T09:59:00Z".parse().unwrap()));
        assert!(q(&[("tailLines", "-1")]).is_err());
        assert!(q(&[("sinceTime", "yesterday")]).is_err());
    }

    #[test]
    fn lines_that_are_not_cri_are_skipped() {
        assert_eq!(parse_line(b"garbage"), None);
        assert_eq!(parse_line(b"t bogus F x"), None);
        let l = parse_line(b"t stdout P:x abc def").unwrap();
        assert!(l.partial);
        assert_eq!(l.content, b"abc def");
    }
}
