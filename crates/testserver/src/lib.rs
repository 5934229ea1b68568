//! `rkube-testserver`: the small HTTP server inside the `testserver` test image (built by
//! `rkube-testimages`), playing the part upstream's e2e tests give to `agnhost`. It uses
//! only the standard library (std::net and one thread per connection) so the binary
//! has no dependencies beyond libc and starts in milliseconds.
//!
//! Endpoints (HTTP/1.1, every response has `Content-Length` and `Connection: close`):
//!
//! - `GET /` → `hostname: <hostname>\n`; `GET /hostname` → the hostname alone
//!   (from `/proc/sys/kernel/hostname`, i.e. the pod name inside a pod);
//! - `GET /healthz` → 200 `ok`, or 500 after `GET /fail` until `GET /heal`;
//! - `GET /echo?msg=x` → `x`; `GET /env/NAME` → the value of environment variable NAME
//!   (404 when unset).
//!
//! Command line (see [`parse_args`]): `--port N` (default `$PORT`, else 8080),
//! `--exit-after SECONDS` and `--exit-code N` for crash tests, `--alloc-mib N` to
//! allocate and touch N MiB before serving (for OOM tests).

use std::io::{self, BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// The port served when neither `--port` nor `$PORT` says otherwise.
pub const DEFAULT_PORT: u16 = 8080;

/// The parsed command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// The TCP port to listen on (all IPv4 addresses).
    pub port: u16,
    /// Exit this long after start (`--exit-after`); with only `--exit-code` given, at once.
    pub exit_after: Option<Duration>,
    /// The exit status used when `exit_after` fires (`--exit-code`, default 0).
    pub exit_code: i32,
    /// MiB to allocate and touch before serving (`--alloc-mib`).
    pub alloc_mib: Option<usize>,
}

/// The usage line printed for `--help` and argument errors.
pub const USAGE: &str = "usage: rkube-testserver [--port N] [--exit-after SECONDS] [--exit-code N] [--alloc-mib N]";

/// Parses the arguments after the program name; `env_port` is the value of `$PORT`.
/// Accepts `--flag value` and `--flag=value`. Returns `Ok(None)` for `--help`.
pub fn parse_args<I>(args: I, env_port: Option<&str>) -> Result<Option<Options>, String>
where
    I: IntoIterator<Item = String>,
{
    let port = match env_port {
        Some(p) if !p.is_empty() => p.parse().map_err(|_| format!("invalid $PORT {p:?}"))?,
        _ => DEFAULT_PORT,
    };
    let mut opts = Options { port, exit_after: None, exit_code: 0, alloc_mib: None };
    let mut exit_code_given = false;
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        if arg == "-h" || arg == "--help" {
            return Ok(None);
        }
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_string(), Some(v.to_string())),
            _ => (arg.clone(), None),
        };
        let mut value = || inline.clone().or_else(|| args.next()).ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--port" => {
                let v = value()?;
                opts.port = v.parse().map_err(|_| format!("invalid --port {v:?}"))?;
            }
            "--exit-after" => {
                let v = value()?;
                let secs: f64 = v.parse().map_err(|_| format!("invalid --exit-after {v:?}"))?;
                opts.exit_after =
                    Some(Duration::try_from_secs_f64(secs).map_err(|_| format!("invalid --exit-after {v:?}"))?);
            }
            "--exit-code" => {
                let v = value()?;
                opts.exit_code = v.parse().map_err(|_| format!("invalid --exit-code {v:?}"))?;
                exit_code_given = true;
            }
            "--alloc-mib" => {
                let v = value()?;
                opts.alloc_mib = Some(v.parse().map_err(|_| format!("invalid --alloc-mib {v:?}"))?);
            }
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    if exit_code_given && opts.exit_after.is_none() {
        opts.exit_after = Some(Duration::ZERO);
    }
    Ok(Some(opts))
}

/// Allocates `mib` MiB and writes one byte per page so the memory is resident.
pub fn alloc_and_touch(mib: usize) -> Vec<u8> {
    let len = mib.saturating_mul(1 << 20);
    let mut buf = vec![0u8; len];
    for i in (0..len).step_by(4096) {
        buf[i] = 1;
    }
    std::hint::black_box(buf)
}

/// The shared state of the handlers: the health flag `/fail` and `/heal` flip.
#[derive(Debug)]
pub struct State {
    healthy: AtomicBool,
}

impl Default for State {
    fn default() -> Self {
        State { healthy: AtomicBool::new(true) }
    }
}

/// The host name as the kernel reports it in this UTS namespace.
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "unknown".to_string())
}

/// Answers one request: the status code and the body.
pub fn respond(state: &State, method: &str, target: &str) -> (u16, String) {
    if method != "GET" && method != "HEAD" {
        return (405, "method not allowed\n".to_string());
    }
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    match path {
        "/" => (200, format!("hostname: {}\n", hostname())),
        "/hostname" => (200, hostname()),
        "/healthz" => {
            if state.healthy.load(Ordering::SeqCst) {
                (200, "ok".to_string())
            } else {
                (500, "failing".to_string())
            }
        }
        "/fail" => {
            state.healthy.store(false, Ordering::SeqCst);
            (200, "healthz now fails\n".to_string())
        }
        "/heal" => {
            state.healthy.store(true, Ordering::SeqCst);
            (200, "healthz now succeeds\n".to_string())
        }
        "/echo" => {
            let msg = query
                .split('&')
                .filter_map(|kv| kv.split_once('=').or(Some((kv, ""))))
                .find(|(k, _)| *k == "msg")
                .map(|(_, v)| percent_decode(v));
            (200, msg.unwrap_or_default())
        }
        _ => match path.strip_prefix("/env/") {
            Some(name) => match std::env::var(percent_decode(name)) {
                Ok(value) => (200, value),
                Err(_) => (404, format!("env {name} not set\n")),
            },
            None => (404, "not found\n".to_string()),
        },
    }
}

/// Decodes `%XX` escapes and `+` (as a space) of a query value; bad escapes stay as they are.
pub fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                match std::str::from_utf8(&bytes[i + 1..i + 3]).ok().and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(b) => {
                        out.push(b);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn reason(code: u16) -> &'static str {
    match code {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        500 => "Internal Server Error",
        _ => "Unknown",
    }
}

/// Serves one connection: reads the request head, writes the response, closes.
pub fn handle(state: &State, stream: TcpStream) -> io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut request_line = String::new();
    reader.read_line(&mut request_line)?;
    // Skip the headers (bounded), up to the blank line.
    let mut header = String::new();
    for _ in 0..100 {
        header.clear();
        if reader.read_line(&mut header)? == 0 || header == "\r\n" || header == "\n" {
            break;
        }
    }
    let mut parts = request_line.split_whitespace();
    let (code, body, head_only) = match (parts.next(), parts.next()) {
        (Some(method), Some(target)) => {
            let (code, body) = respond(state, method, target);
            (code, body, method == "HEAD")
        }
        _ => (400, "bad request\n".to_string(), false),
    };
    let mut out = format!(
        "HTTP/1.1 {code} {}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        reason(code),
        body.len()
    )
    .into_bytes();
    if !head_only {
        out.extend_from_slice(body.as_bytes());
    }
    let mut stream = stream;
    stream.write_all(&out)?;
    stream.flush()
}

/// Accepts connections forever, one thread each.
pub fn serve(listener: TcpListener, state: Arc<State>) -> io::Result<()> {
    for stream in listener.incoming() {
        let Ok(stream) = stream else { continue };
        let state = Arc::clone(&state);
        std::thread::spawn(move || {
            let _ = handle(&state, stream);
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &[&str]) -> Vec<String> {
        s.iter().map(|a| a.to_string()).collect()
    }

    #[test]
    fn parses_flags_and_env() {
        let o = parse_args(args(&[]), None).unwrap().unwrap();
        assert_eq!(o, Options { port: 8080, exit_after: None, exit_code: 0, alloc_mib: None });
        let o = parse_args(args(&[]), Some("9000")).unwrap().unwrap();
        assert_eq!(o.port, 9000);
        let o = parse_args(
            args(&["--port", "81", "--exit-after=2.5", "--exit-code", "3", "--alloc-mib", "64"]),
            Some("9000"),
        )
        .unwrap()
        .unwrap();
        assert_eq!(
            o,
            Options { port: 81, exit_after: Some(Duration::from_millis(2500)), exit_code: 3, alloc_mib: Some(64) }
        );
        let o = parse_args(args(&["--exit-code", "1"]), None).unwrap().unwrap();
        assert_eq!(o.exit_after, Some(Duration::ZERO));
        assert!(parse_args(args(&["--help"]), None).unwrap().is_none());
        assert!(parse_args(args(&["--port"]), None).is_err());
        assert!(parse_args(args(&["--port", "x"]), None).is_err());
        assert!(parse_args(args(&["--bogus"]), None).is_err());
        assert!(parse_args(args(&["--exit-after", "-1"]), None).is_err());
        assert!(parse_args(args(&[]), Some("nope")).is_err());
    }

    #[test]
    fn decodes_percent_escapes() {
        assert_eq!(percent_decode("a%20b+c"), "a b c");
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%zz"), "%zz");
        assert_eq!(percent_decode("%41"), "A");
    }

    #[test]
    fn health_flips() {
        let s = State::default();
        assert_eq!(respond(&s, "GET", "/healthz"), (200, "ok".to_string()));
        respond(&s, "GET", "/fail");
        assert_eq!(respond(&s, "GET", "/healthz").0, 500);
        respond(&s, "GET", "/heal");
        assert_eq!(respond(&s, "GET", "/healthz").0, 200);
        assert_eq!(respond(&s, "POST", "/healthz").0, 405);
        assert_eq!(respond(&s, "GET", "/nope").0, 404);
        assert_eq!(respond(&s, "GET", "/echo?a=1&msg=hi%21"), (200, "hi!".to_string()));
    }

    #[test]
    fn alloc_touches() {
        let buf = alloc_and_touch(2);
        assert_eq!(buf.len(), 2 << 20);
        assert_eq!(buf.iter().filter(|b| **b == 1).count(), 512);
    }
}
