//! `kubectl exec`/`attach` over WebSocket (`v5.channel.k8s.io`, kubectl 1.30+) translated
//! to the SPDY remote-command protocol (`v4.channel.k8s.io`) the kubelet and container
//! runtimes speak, as upstream's apiserver does.
//!
//! WebSocket side: binary messages whose first byte is the channel (0 stdin, 1 stdout,
//! 2 stderr, 3 status, 4 resize; 255 closes the channel named by the next byte). SPDY
//! side: one stream per channel, named by its `streamtype` header. The status (a
//! `metav1.Status` JSON on the error stream) goes out on channel 3 once stdout and
//! stderr are drained, then the WebSocket closes.

use bytes::{BufMut, Bytes, BytesMut};
use futures::{SinkExt, StreamExt};
use hyper_util::rt::TokioIo;
use rkube_spdy::{Connection, StreamReceiver};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use crate::router::Query;

const STDIN: u8 = 0;
const STDOUT: u8 = 1;
const STDERR: u8 = 2;
const ERROR: u8 = 3;
const RESIZE: u8 = 4;
const CLOSE: u8 = 255;

/// Which streams the session has (from the request's query).
#[derive(Debug, Clone, Copy, Default)]
pub struct Flags {
    pub stdin: bool,
    pub stdout: bool,
    pub stderr: bool,
    pub tty: bool,
}

impl Flags {
    pub fn from_query(q: &Query) -> Flags {
        let tty = q.flag("tty");
        Flags {
            stdin: q.flag("stdin") || q.flag("input"),
            stdout: q.flag("stdout") || q.flag("output"),
            // A terminal merges stderr into stdout.
            stderr: (q.flag("stderr") || q.flag("error")) && !tty,
            tty,
        }
    }
}

const SUCCESS: &str = r#"{"metadata":{},"status":"Success"}"#;

fn framed(channel: u8, data: &[u8]) -> Message {
    let mut b = BytesMut::with_capacity(data.len() + 1);
    b.put_u8(channel);
    b.extend_from_slice(data);
    Message::Binary(b.freeze())
}

fn failure(message: &str) -> String {
    serde_json::json!({"metadata": {}, "status": "Failure", "message": message, "reason": "InternalError", "code": 500})
        .to_string()
}

async fn drain(mut rx: StreamReceiver, channel: u8, out: tokio::sync::mpsc::Sender<Message>) {
    while let Some(data) = rx.recv().await {
        if out.send(framed(channel, &data)).await.is_err() {
            return;
        }
    }
}

/// Runs one session until the command ends or either side goes away.
pub async fn translate(
    ws: WebSocketStream<TokioIo<hyper::upgrade::Upgraded>>,
    spdy: hyper::upgrade::Upgraded,
    flags: Flags,
) {
    let (mut ws_tx, mut ws_rx) = ws.split();
    let conn = Connection::client(TokioIo::new(spdy));
    let open = |kind: &str| conn.open(vec![("streamtype".to_string(), kind.to_string())]);
    // The server expects the error stream first, then the data streams.
    let opened = async {
        let error = open("error").await?;
        let stdin = if flags.stdin { Some(open("stdin").await?) } else { None };
        let stdout = if flags.stdout { Some(open("stdout").await?) } else { None };
        let stderr = if flags.stderr { Some(open("stderr").await?) } else { None };
        let resize = if flags.tty { Some(open("resize").await?) } else { None };
        Ok::<_, rkube_spdy::Error>((error, stdin, stdout, stderr, resize))
    };
    let (mut error, stdin, stdout, stderr, resize) = match opened.await {
        Ok(s) => s,
        Err(e) => {
            let _ = ws_tx.send(framed(ERROR, failure(&e.to_string()).as_bytes())).await;
            let _ = ws_tx.close().await;
            return;
        }
    };

    // Everything for the client goes through one queue so frames never interleave.
    let (out_tx, mut out_rx) = tokio::sync::mpsc::channel::<Message>(32);
    let writer = tokio::spawn(async move {
        while let Some(m) = out_rx.recv().await {
            if ws_tx.send(m).await.is_err() {
                return;
            }
        }
        let _ = ws_tx.flush().await;
    });

    let stdin_tx = stdin.map(|s| s.sender);
    let resize_tx = resize.map(|s| s.sender);
    let input = tokio::spawn(async move {
        while let Some(Ok(msg)) = ws_rx.next().await {
            let data = match msg {
                Message::Binary(b) => b,
                Message::Close(_) => break,
                _ => continue,
            };
            let Some((&channel, rest)) = data.split_first() else { continue };
            match channel {
                STDIN => {
                    if let Some(tx) = &stdin_tx {
                        let _ = tx.send(Bytes::copy_from_slice(rest)).await;
                    }
                }
                RESIZE => {
                    if let Some(tx) = &resize_tx {
                        let _ = tx.send(Bytes::copy_from_slice(rest)).await;
                    }
                }
                CLOSE if rest.first() == Some(&STDIN) => {
                    if let Some(tx) = &stdin_tx {
                        let _ = tx.finish().await;
                    }
                }
                _ => {}
            }
        }
    });

    let out_stdout = stdout.map(|s| tokio::spawn(drain(s.receiver, STDOUT, out_tx.clone())));
    let out_stderr = stderr.map(|s| tokio::spawn(drain(s.receiver, STDERR, out_tx.clone())));
    let mut status = Vec::new();
    while let Some(d) = error.receiver.recv().await {
        status.extend_from_slice(&d);
    }
    for task in [out_stdout, out_stderr].into_iter().flatten() {
        let _ = task.await;
    }
    // v4 always sends a Status; older servers say nothing on success.
    let status = if status.is_empty() { SUCCESS.as_bytes().to_vec() } else { status };
    let _ = out_tx.send(framed(ERROR, &status)).await;
    // The client reads the status until the connection ends; only a normal closure
    // (1000) counts as the end of it.
    let _ = out_tx.send(Message::Close(Some(CloseFrame { code: CloseCode::Normal, reason: "".into() }))).await;
    drop(out_tx);
    let _ = writer.await;
    input.abort();
    conn.go_away().await;
}
