//! Container probes, as upstream's prober: liveness, readiness and startup, each run by
//! exec (CRI ExecSync), httpGet or tcpSocket every `periodSeconds`.
//!
//! The decisions are a pure state machine, [`ProbeState`]: when a probe is due (initial
//! delay, startup gating) and what a history of results means (success and failure
//! thresholds). [`run`] is the thin loop around it: one task per container and probe
//! kind, started and stopped by the pod worker, publishing the current result into
//! [`Results`] and waking the worker when it changes. The worker reads the results as
//! inputs of the pure plan (liveness and startup failures kill the container) and status
//! (readiness).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::core::v1::{Container, Probe};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::runtime::events::{Event, EventType, Recorder};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::cri::Runtime;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ProbeKind {
    Liveness,
    Readiness,
    Startup,
}

impl ProbeKind {
    pub const ALL: [ProbeKind; 3] = [ProbeKind::Liveness, ProbeKind::Readiness, ProbeKind::Startup];

    /// The name events and messages use (`Liveness probe failed: …`).
    pub fn title(self) -> &'static str {
        match self {
            ProbeKind::Liveness => "Liveness",
            ProbeKind::Readiness => "Readiness",
            ProbeKind::Startup => "Startup",
        }
    }

    /// The container's probe of this kind.
    pub fn of(self, c: &Container) -> Option<&Probe> {
        match self {
            ProbeKind::Liveness => c.liveness_probe.as_ref(),
            ProbeKind::Readiness => c.readiness_probe.as_ref(),
            ProbeKind::Startup => c.startup_probe.as_ref(),
        }
    }
}

/// A probe's timings and thresholds with upstream's defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    pub initial_delay: Duration,
    pub period: Duration,
    pub timeout: Duration,
    pub success_threshold: u32,
    pub failure_threshold: u32,
}

impl Settings {
    pub fn of(probe: &Probe) -> Settings {
        let secs = |v: Option<i32>, default: i32, min: i32| Duration::from_secs(v.unwrap_or(default).max(min) as u64);
        let count = |v: Option<i32>, default: i32| v.unwrap_or(default).max(1) as u32;
        Settings {
            initial_delay: secs(probe.initial_delay_seconds, 0, 0),
            period: secs(probe.period_seconds, 10, 1),
            timeout: secs(probe.timeout_seconds, 1, 1),
            success_threshold: count(probe.success_threshold, 1),
            failure_threshold: count(probe.failure_threshold, 3),
        }
    }
}

/// One probe of one container (upstream's probe worker, without its timer): the
/// published result and the run of identical results behind it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeState {
    pub kind: ProbeKind,
    pub settings: Settings,
    /// The published result; `None` is upstream's Unknown.
    pub result: Option<bool>,
    last: Option<bool>,
    run: u32,
    /// No more probing for this container: a startup probe that succeeded, or a
    /// liveness or startup failure (the container is about to be killed).
    pub done: bool,
}

impl ProbeState {
    /// Upstream's initial results: a container is live until proven otherwise, not ready
    /// until proven ready, and its startup is unknown.
    pub fn new(kind: ProbeKind, settings: Settings) -> ProbeState {
        let result = match kind {
            ProbeKind::Liveness => Some(true),
            ProbeKind::Readiness => Some(false),
            ProbeKind::Startup => None,
        };
        ProbeState { kind, settings, result, last: None, run: 0, done: false }
    }

    /// The state of a probe whose container a previous agent already probed: its
    /// published result (from the pod's status) is kept instead of the initial one, so
    /// restarting the agent does not flip a ready pod to unready.
    pub fn resumed(mut self, previous: bool) -> ProbeState {
        self.result = Some(previous);
        self.done = self.kind == ProbeKind::Startup && previous;
        self
    }

    /// Whether to probe now, `since_start` after the container started; `started`:
    /// its startup probe succeeded (or it has none), which gates the other two kinds.
    pub fn due(&self, since_start: Duration, started: bool) -> bool {
        !self.done && (self.kind == ProbeKind::Startup || started) && since_start >= self.settings.initial_delay
    }

    /// Records one probe's outcome; returns the published result when it changed.
    pub fn record(&mut self, ok: bool) -> Option<bool> {
        if self.last == Some(ok) {
            self.run = self.run.saturating_add(1);
        } else {
            self.last = Some(ok);
            self.run = 1;
        }
        let threshold = if ok { self.settings.success_threshold } else { self.settings.failure_threshold };
        if self.run < threshold {
            return None;
        }
        let changed = self.result != Some(ok);
        self.result = Some(ok);
        match (self.kind, ok) {
            (ProbeKind::Startup, true) => self.done = true,
            (ProbeKind::Liveness | ProbeKind::Startup, false) => {
                self.done = true;
                self.run = 0;
            }
            _ => {}
        }
        changed.then_some(ok)
    }
}

/// The published results of one pod's probes, by container id and kind.
pub type Results = Arc<Mutex<HashMap<(String, ProbeKind), bool>>>;

/// Reads one result.
pub fn result(results: &Results, id: &str, kind: ProbeKind) -> Option<bool> {
    results.lock().unwrap_or_else(|e| e.into_inner()).get(&(id.to_string(), kind)).copied()
}

/// What a probe talks to.
#[derive(Debug, Clone)]
pub struct Target {
    pub container_id: String,
    pub container: Container,
    /// Where httpGet and tcpSocket probes go when they name no host.
    pub pod_ip: String,
}

/// The port a probe names: a number or the name of one of the container's ports.
pub fn resolve_port(port: &IntOrString, container: &Container) -> Result<u16, String> {
    match port {
        IntOrString::Int(n) => u16::try_from(*n).ok().filter(|n| *n > 0).ok_or_else(|| format!("invalid port {n}")),
        IntOrString::String(s) => {
            if let Ok(n) = s.parse::<u16>() {
                return Ok(n);
            }
            container
                .ports
                .iter()
                .flatten()
                .find(|p| p.name.as_deref() == Some(s.as_str()))
                .and_then(|p| u16::try_from(p.container_port).ok())
                .ok_or_else(|| format!("couldn't find port: {s} in {}", container.name))
        }
    }
}

/// Runs the probe once: `Ok` on success, the failure's message otherwise.
pub async fn probe_once(
    probe: &Probe,
    target: &Target,
    runtime: &dyn Runtime,
    timeout: Duration,
) -> Result<(), String> {
    if let Some(exec) = &probe.exec {
        let cmd = exec.command.clone().unwrap_or_default();
        let out = runtime
            .exec_sync(&target.container_id, cmd.clone(), timeout)
            .await
            .map_err(|e| format!("exec {cmd:?}: {e}"))?;
        if out.exit_code == 0 {
            return Ok(());
        }
        let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
        text.push_str(&String::from_utf8_lossy(&out.stderr));
        return Err(if text.trim().is_empty() {
            format!("command {cmd:?} exited with {}", out.exit_code)
        } else {
            text.trim_end().to_string()
        });
    }
    if let Some(get) = &probe.http_get {
        let scheme = get.scheme.as_deref().unwrap_or("HTTP");
        if !scheme.eq_ignore_ascii_case("http") {
            return Err(format!("scheme {scheme} is not supported by this kubelet's probes"));
        }
        let port = resolve_port(&get.port, &target.container)?;
        let host = get.host.clone().filter(|h| !h.is_empty()).unwrap_or_else(|| target.pod_ip.clone());
        let path = get.path.clone().filter(|p| !p.is_empty()).unwrap_or_else(|| "/".into());
        let path = if path.starts_with('/') { path } else { format!("/{path}") };
        let headers: Vec<(String, String)> =
            get.http_headers.iter().flatten().map(|h| (h.name.clone(), h.value.clone())).collect();
        return match tokio::time::timeout(timeout, http_status(&host, port, &path, &headers)).await {
            Err(_) => Err(format!(
                "Get \"http://{host}:{port}{path}\": context deadline exceeded (Client.Timeout exceeded while awaiting headers)"
            )),
            Ok(Err(e)) => Err(format!("Get \"http://{host}:{port}{path}\": {e}")),
            Ok(Ok(code)) if (200..400).contains(&code) => Ok(()),
            Ok(Ok(code)) => Err(format!("HTTP probe failed with statuscode: {code}")),
        };
    }
    if let Some(tcp) = &probe.tcp_socket {
        let port = resolve_port(&tcp.port, &target.container)?;
        let host = tcp.host.clone().filter(|h| !h.is_empty()).unwrap_or_else(|| target.pod_ip.clone());
        return match tokio::time::timeout(timeout, tokio::net::TcpStream::connect((host.as_str(), port))).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(format!("dial tcp {host}:{port}: {e}")),
            Err(_) => Err(format!("dial tcp {host}:{port}: i/o timeout")),
        };
    }
    if probe.grpc.is_some() {
        return Err("grpc probes are not supported by this kubelet".into());
    }
    Err("probe has no handler".into())
}

/// One HTTP/1.1 GET; the response's status code. Upstream's prober sends the same
/// User-Agent and Accept unless the probe's headers replace them.
async fn http_status(host: &str, port: u16, path: &str, headers: &[(String, String)]) -> std::io::Result<u16> {
    let mut stream = tokio::net::TcpStream::connect((host, port)).await?;
    let has = |name: &str| headers.iter().any(|(k, _)| k.eq_ignore_ascii_case(name));
    let mut req = format!("GET {path} HTTP/1.1\r\n");
    if !has("host") {
        req.push_str(&format!("Host: {host}:{port}\r\n"));
    }
    if !has("user-agent") {
        req.push_str("User-Agent: kube-probe/1.33\r\n");
    }
    if !has("accept") {
        req.push_str("Accept: */*\r\n");
    }
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("Connection: close\r\n\r\n");
    stream.write_all(req.as_bytes()).await?;
    // Only the status line matters.
    let mut buf = Vec::with_capacity(256);
    let mut chunk = [0u8; 256];
    while !buf.contains(&b'\n') && buf.len() < 8192 {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    parse_status_line(&buf).ok_or_else(|| std::io::Error::other("malformed HTTP response"))
}

fn parse_status_line(buf: &[u8]) -> Option<u16> {
    let line = buf.split(|b| *b == b'\n').next()?;
    let line = std::str::from_utf8(line).ok()?;
    let mut words = line.split_whitespace();
    words.next().filter(|v| v.starts_with("HTTP/"))?;
    words.next()?.parse().ok()
}

/// Everything a probe loop needs besides its probe.
#[derive(Clone)]
pub struct Context {
    pub runtime: Arc<dyn Runtime>,
    pub results: Results,
    /// The pod worker's wake-up: a changed result makes it sync.
    pub wake: Arc<Notify>,
    pub recorder: Recorder,
    pub pod_ref: k8s_openapi::api::core::v1::ObjectReference,
}

/// Probes `target` with its probe of `kind` until aborted (or no longer needed), from a
/// container that started `since_start` ago.
/// `resumed`: the result a previous agent published for this container, if any.
pub async fn run(
    kind: ProbeKind,
    probe: Probe,
    target: Target,
    since_start: Duration,
    resumed: Option<bool>,
    cx: Context,
) {
    let settings = Settings::of(&probe);
    let started_at = Instant::now().checked_sub(since_start).unwrap_or_else(Instant::now);
    let mut state = ProbeState::new(kind, settings);
    if let Some(previous) = resumed {
        state = state.resumed(previous);
    }
    let key = (target.container_id.clone(), kind);
    publish(&cx, &key, state.result);
    let mut tick = tokio::time::interval(settings.period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let started = target.container.startup_probe.is_none()
            || result(&cx.results, &target.container_id, ProbeKind::Startup) == Some(true);
        if !state.due(started_at.elapsed(), started) {
            if state.done {
                return;
            }
            continue;
        }
        let outcome = probe_once(&probe, &target, cx.runtime.as_ref(), settings.timeout).await;
        if let Err(message) = &outcome {
            tracing::debug!(container = %target.container.name, probe = kind.title(), %message, "probe failed");
            let ev = Event {
                type_: EventType::Warning,
                reason: "Unhealthy".into(),
                note: Some(format!("{} probe failed: {message}", kind.title())),
                action: "Probe".into(),
                secondary: None,
            };
            if let Err(e) = cx.recorder.publish(&ev, &cx.pod_ref).await {
                tracing::debug!(error = %e, "cannot record an event");
            }
        }
        if let Some(now) = state.record(outcome.is_ok()) {
            tracing::info!(container = %target.container.name, probe = kind.title(), success = now, "probe result changed");
            publish(&cx, &key, Some(now));
            cx.wake.notify_one();
        }
    }
}

fn publish(cx: &Context, key: &(String, ProbeKind), value: Option<bool>) {
    let mut results = cx.results.lock().unwrap_or_else(|e| e.into_inner());
    match value {
        Some(v) => results.insert(key.clone(), v),
        None => results.remove(key),
    };
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn settings(success: u32, failure: u32, delay: u64) -> Settings {
        Settings {
            initial_delay: Duration::from_secs(delay),
            period: Duration::from_secs(10),
            timeout: Duration::from_secs(1),
            success_threshold: success,
            failure_threshold: failure,
        }
    }

    #[test]
    fn defaults_as_upstream() {
        let p: Probe = serde_json::from_value(json!({"exec": {"command": ["true"]}})).unwrap();
        assert_eq!(Settings::of(&p), settings(1, 3, 0));
        let p: Probe = serde_json::from_value(json!({"periodSeconds": 0, "timeoutSeconds": 5, "failureThreshold": 0,
                                                     "initialDelaySeconds": 7, "successThreshold": 2}))
        .unwrap();
        assert_eq!(
            Settings::of(&p),
            Settings { period: Duration::from_secs(1), timeout: Duration::from_secs(5), ..settings(2, 1, 7) }
        );
    }

    #[test]
    fn results_through_thresholds() {
        use ProbeKind::*;
        // (what, kind, success threshold, failure threshold, outcomes, published result
        // after each, done at the end)
        type Case = (&'static str, ProbeKind, u32, u32, &'static [bool], &'static [Option<bool>], bool);
        const T: Option<bool> = Some(true);
        const F: Option<bool> = Some(false);
        let cases: &[Case] = &[
            ("readiness starts unready, one success flips it", Readiness, 1, 3, &[true], &[T], false),
            (
                "readiness needs successThreshold in a row",
                Readiness,
                2,
                3,
                &[true, false, true, true],
                &[F, F, F, T],
                false,
            ),
            (
                "readiness fails after failureThreshold",
                Readiness,
                1,
                3,
                &[true, false, false, false],
                &[T, T, T, F],
                false,
            ),
            ("readiness flips back", Readiness, 1, 2, &[true, false, false, true], &[T, T, F, T], false),
            (
                "a success resets the failure run",
                Readiness,
                1,
                3,
                &[true, false, false, true, false, false],
                &[T, T, T, T, T, T],
                false,
            ),
            ("liveness holds until failureThreshold", Liveness, 1, 3, &[false, false], &[T, T], false),
            ("liveness fails and stops", Liveness, 1, 3, &[false, false, false], &[T, T, F], true),
            ("liveness failureThreshold 1", Liveness, 1, 1, &[true, false], &[T, F], true),
            ("startup unknown until it succeeds", Startup, 1, 3, &[false, false, true], &[None, None, T], true),
            ("startup fails after failureThreshold", Startup, 1, 2, &[false, false], &[None, F], true),
        ];
        for (what, kind, success, failure, outcomes, want, done) in cases {
            let mut s = ProbeState::new(*kind, settings(*success, *failure, 0));
            let got: Vec<Option<bool>> = outcomes
                .iter()
                .map(|ok| {
                    s.record(*ok);
                    s.result
                })
                .collect();
            assert_eq!(&got, want, "{what}");
            assert_eq!(s.done, *done, "{what}: done");
        }
    }

    #[test]
    fn resumed_results_carry_over() {
        let mut ready = ProbeState::new(ProbeKind::Readiness, settings(1, 3, 0)).resumed(true);
        assert_eq!(ready.result, Some(true));
        assert_eq!(ready.record(true), None, "still ready: no change");
        let startup = ProbeState::new(ProbeKind::Startup, settings(1, 3, 0)).resumed(true);
        assert!(
            startup.done && !startup.due(Duration::from_secs(100), true),
            "a started container is not probed again"
        );
    }

    #[test]
    fn record_reports_changes_only() {
        let mut s = ProbeState::new(ProbeKind::Readiness, settings(1, 1, 0));
        assert_eq!(s.record(false), None, "already unready");
        assert_eq!(s.record(true), Some(true));
        assert_eq!(s.record(true), None);
        assert_eq!(s.record(false), Some(false));
    }

    #[test]
    fn when_probes_are_due() {
        use ProbeKind::*;
        let secs = Duration::from_secs;
        // (kind, initial delay, since start, startup succeeded, due)
        let cases = [
            (Readiness, 5, 4, true, false),
            (Readiness, 5, 5, true, true),
            (Liveness, 0, 0, true, true),
            (Liveness, 0, 30, false, false),
            (Readiness, 0, 30, false, false),
            (Startup, 0, 0, false, true),
            (Startup, 10, 3, false, false),
        ];
        for (kind, delay, since, started, want) in cases {
            let s = ProbeState::new(kind, settings(1, 3, delay));
            assert_eq!(s.due(secs(since), started), want, "{kind:?} delay {delay} at {since} started {started}");
        }
        let mut s = ProbeState::new(Startup, settings(1, 3, 0));
        s.record(true);
        assert!(!s.due(secs(100), true), "a succeeded startup probe stops");
    }

    #[test]
    fn ports_by_number_or_name() {
        let c: Container =
            serde_json::from_value(json!({"name": "web", "ports": [{"name": "http", "containerPort": 8080}]})).unwrap();
        let cases = [
            (IntOrString::Int(80), Ok(80)),
            (IntOrString::String("http".into()), Ok(8080)),
            (IntOrString::String("9090".into()), Ok(9090)),
            (IntOrString::String("grpc".into()), Err("couldn't find port: grpc in web".to_string())),
            (IntOrString::Int(0), Err("invalid port 0".to_string())),
        ];
        for (port, want) in cases {
            assert_eq!(resolve_port(&port, &c), want, "{port:?}");
        }
    }

    #[test]
    fn status_lines() {
        let cases: [(&[u8], Option<u16>); 4] = [
            (b"HTTP/1.1 200 OK\r\n", Some(200)),
            (b"HTTP/1.0 500 Internal Server Error\r\nx: y\r\n", Some(500)),
            (b"HTTP/1.1 302 Found\r\n", Some(302)),
            (b"SSH-2.0-OpenSSH\r\n", None),
        ];
        for (raw, want) in cases {
            assert_eq!(parse_status_line(raw), want);
        }
    }

    #[tokio::test]
    async fn http_and_tcp_against_a_local_server() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            loop {
                let Ok((mut s, _)) = listener.accept().await else { return };
                let mut buf = [0u8; 1024];
                let n = s.read(&mut buf).await.unwrap_or(0);
                let req = String::from_utf8_lossy(&buf[..n]).to_string();
                let code = if req.starts_with("GET /ok ") && req.contains("X-Probe: yes") { 200 } else { 503 };
                let _ = s.write_all(format!("HTTP/1.1 {code} X\r\nContent-Length: 0\r\n\r\n").as_bytes()).await;
            }
        });
        let c: Container = serde_json::from_value(json!({"name": "c"})).unwrap();
        let target = Target { container_id: "id".into(), container: c, pod_ip: "127.0.0.1".into() };
        let rt = crate::cri::CriRuntime::connect(std::path::Path::new("/nonexistent.sock")).unwrap();
        let probe = |v: serde_json::Value| serde_json::from_value::<Probe>(v).unwrap();
        let ok = probe(
            json!({"httpGet": {"path": "/ok", "port": port, "httpHeaders": [{"name": "X-Probe", "value": "yes"}]}}),
        );
        assert_eq!(probe_once(&ok, &target, &rt, Duration::from_secs(1)).await, Ok(()));
        let bad = probe(json!({"httpGet": {"path": "/ok", "port": port}}));
        assert_eq!(
            probe_once(&bad, &target, &rt, Duration::from_secs(1)).await,
            Err("HTTP probe failed with statuscode: 503".into())
        );
        let tcp = probe(json!({"tcpSocket": {"port": port}}));
        assert_eq!(probe_once(&tcp, &target, &rt, Duration::from_secs(1)).await, Ok(()));
    }
}
