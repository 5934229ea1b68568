//! Drives the server over loopback: in process through `serve`, and the binary itself.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rkube_testserver::{State, hostname, serve};

/// One GET; returns the status code, the Content-Length header and the body.
fn get(port: u16, path: &str) -> (u16, usize, String) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    write!(stream, "GET {path} HTTP/1.1\r\nHost: x\r\nUser-Agent: test\r\n\r\n").unwrap();
    let mut raw = String::new();
    stream.read_to_string(&mut raw).expect("read");
    let (head, body) = raw.split_once("\r\n\r\n").expect("head and body");
    let code = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    assert!(head.contains("\r\nConnection: close"), "{head}");
    let len = head.lines().find_map(|l| l.strip_prefix("Content-Length: ")).expect("content-length").parse().unwrap();
    (code, len, body.to_string())
}

#[test]
fn endpoints_over_loopback() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || serve(listener, Arc::new(State::default())));

    let host = hostname();
    assert_eq!(get(port, "/"), (200, host.len() + 11, format!("hostname: {host}\n")));
    assert_eq!(get(port, "/hostname").2, host);
    assert_eq!(get(port, "/healthz"), (200, 2, "ok".to_string()));
    assert_eq!(get(port, "/fail").0, 200);
    assert_eq!(get(port, "/healthz").0, 500);
    assert_eq!(get(port, "/heal").0, 200);
    assert_eq!(get(port, "/healthz").0, 200);
    assert_eq!(get(port, "/echo?msg=hello%20world"), (200, 11, "hello world".to_string()));
    assert_eq!(get(port, "/env/PATH").2, std::env::var("PATH").unwrap());
    assert_eq!(get(port, "/env/RKUBE_TESTSERVER_SURELY_UNSET").0, 404);
    assert_eq!(get(port, "/nope").0, 404);
}

#[test]
fn binary_serves_and_exits_as_told() {
    let bin = env!("CARGO_BIN_EXE_rkube-testserver");

    let status = Command::new(bin).args(["--exit-code", "3"]).stdout(Stdio::null()).status().unwrap();
    assert_eq!(status.code(), Some(3));
    let status = Command::new(bin).args(["--bogus"]).stderr(Stdio::null()).status().unwrap();
    assert_eq!(status.code(), Some(2));

    // Port 0 picks a free port; the first line of stdout tells which.
    let start = Instant::now();
    let mut child = Command::new(bin)
        .env("PORT", "0")
        .args(["--exit-after", "3", "--exit-code", "7", "--alloc-mib", "8"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    assert_eq!(lines.next().unwrap().unwrap(), "allocated and touched 8 MiB");
    let listening = lines.next().unwrap().unwrap();
    let port: u16 = listening.rsplit(':').next().unwrap().parse().unwrap();
    assert_eq!(get(port, "/healthz").2, "ok");
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(7));
    assert!(start.elapsed() >= Duration::from_secs(3));
}
