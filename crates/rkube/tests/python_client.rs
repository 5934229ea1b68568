//! End to end: the official Python `kubernetes` client (PyPI `kubernetes`), unchanged,
//! against a real `rkube server`: create, list (selectors, pagination), patch (strategic
//! merge, JSON merge, JSON patch), replace, watch and delete. The checks live in
//! `tests/python/client_test.py`; this test starts the cluster and runs it.

mod common;

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::Cluster;

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/python/client_test.py");
const TIMEOUT: Duration = Duration::from_secs(180);

/// Fails (never skips) when the client is missing: CI installs it with the script.
fn require_python_client() {
    let out = Command::new("python3")
        .args(["-c", "import kubernetes"])
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run python3 ({e}): run scripts/install-test-deps.sh"));
    assert!(
        out.status.success(),
        "the Python kubernetes client is not installed (`python3 -c 'import kubernetes'` failed: {}); \
         run scripts/install-test-deps.sh",
        String::from_utf8_lossy(&out.stderr).trim()
    );
}

#[test]
fn python_client_round_trip() {
    require_python_client();
    let c = Cluster::start();
    let mut child = Command::new("python3")
        .arg(SCRIPT)
        .arg(&c.kubeconfig)
        .env("PYTHONUNBUFFERED", "1")
        .env("HOME", c.dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run python3");
    // Drain both pipes in threads so a chatty script never blocks on a full pipe.
    let drain = |mut r: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut s = String::new();
            let _ = r.read_to_string(&mut s);
            s
        })
    };
    let stdout = drain(Box::new(child.stdout.take().expect("stdout")));
    let stderr = drain(Box::new(child.stderr.take().expect("stderr")));
    let deadline = Instant::now() + TIMEOUT;
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait python3") {
            break Some(s);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let stdout = stdout.join().expect("stdout thread");
    let stderr = stderr.join().expect("stderr thread");
    let report = format!("stdout:\n{stdout}\nstderr:\n{stderr}\nserver log:\n{}", c.log());
    let status = status.unwrap_or_else(|| panic!("client_test.py did not finish in {TIMEOUT:?}\n{report}"));
    assert_eq!(status.code(), Some(0), "client_test.py failed ({status})\n{report}");
    assert!(stdout.contains("python client: all checks passed"), "client_test.py ended early\n{report}");
}
