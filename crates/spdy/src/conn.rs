//! A SPDY/3.1 client connection over any byte stream: open streams, send and receive
//! their data. One task reads and dispatches frames, one writes them in order.
//!
//! What Kubernetes needs of SPDY is small: the client opens a few streams whose
//! `streamtype` header names their role, the server answers each with SYN_REPLY, and
//! bytes flow until FIN or RST. Pings are echoed. Flow-control windows are not
//! enforced by the Go implementation the kubelet side uses, so none are kept here.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, oneshot};

use crate::Error;
use crate::frame::{self, Frame, HeaderDecoder, HeaderEncoder, Headers, rst};

/// Data frames are cut at this size.
const CHUNK: usize = 32 * 1024;

#[derive(Default)]
struct Slot {
    reply: Option<oneshot::Sender<Result<Headers, Error>>>,
    data: Option<mpsc::Sender<Bytes>>,
}

type Streams = Arc<Mutex<HashMap<u32, Slot>>>;

/// The client side of a SPDY connection.
pub struct Connection {
    out: mpsc::Sender<Frame>,
    streams: Streams,
    next_id: AtomicU32,
}

/// The sending half of a stream.
#[derive(Clone)]
pub struct StreamSender {
    id: u32,
    out: mpsc::Sender<Frame>,
}

/// The receiving half of a stream: `None` once the peer sent FIN or reset it.
pub struct StreamReceiver {
    rx: mpsc::Receiver<Bytes>,
}

/// An open stream and the headers of the peer's SYN_REPLY.
pub struct Stream {
    pub id: u32,
    pub reply: Headers,
    pub sender: StreamSender,
    pub receiver: StreamReceiver,
}

fn lock(streams: &Streams) -> std::sync::MutexGuard<'_, HashMap<u32, Slot>> {
    streams.lock().unwrap_or_else(|p| p.into_inner())
}

impl Connection {
    /// Starts the reader and writer tasks on `io`, an upgraded HTTP connection.
    pub fn client<IO>(io: IO) -> Connection
    where
        IO: AsyncRead + AsyncWrite + Send + 'static,
    {
        let (read, write) = tokio::io::split(io);
        let (out, out_rx) = mpsc::channel(64);
        let streams: Streams = Arc::default();
        tokio::spawn(write_frames(write, out_rx));
        tokio::spawn(read_frames(read, out.clone(), streams.clone()));
        Connection { out, streams, next_id: AtomicU32::new(1) }
    }

    /// Opens a stream with `headers` and waits for the peer's reply.
    pub async fn open(&self, headers: Headers) -> Result<Stream, Error> {
        let id = self.next_id.fetch_add(2, Ordering::Relaxed);
        let (reply_tx, reply_rx) = oneshot::channel();
        let (data_tx, data_rx) = mpsc::channel(16);
        lock(&self.streams).insert(id, Slot { reply: Some(reply_tx), data: Some(data_tx) });
        self.out
            .send(Frame::SynStream { id, associated: 0, priority: 0, fin: false, headers })
            .await
            .map_err(|_| Error::Closed)?;
        let reply = reply_rx.await.map_err(|_| Error::Closed)??;
        Ok(Stream {
            id,
            reply,
            sender: StreamSender { id, out: self.out.clone() },
            receiver: StreamReceiver { rx: data_rx },
        })
    }

    /// Tells the peer no more streams will come (GOAWAY).
    pub async fn go_away(&self) {
        let last_good = self.next_id.load(Ordering::Relaxed).saturating_sub(2);
        let _ = self.out.send(Frame::GoAway { last_good, status: 0 }).await;
    }
}

impl StreamSender {
    pub async fn send(&self, mut data: Bytes) -> Result<(), Error> {
        while !data.is_empty() {
            let chunk = data.split_to(data.len().min(CHUNK));
            self.out.send(Frame::Data { id: self.id, fin: false, data: chunk }).await.map_err(|_| Error::Closed)?;
        }
        Ok(())
    }

    /// Half-closes the stream (FIN): the peer sees end of input.
    pub async fn finish(&self) -> Result<(), Error> {
        self.out.send(Frame::Data { id: self.id, fin: true, data: Bytes::new() }).await.map_err(|_| Error::Closed)
    }

    pub async fn reset(&self) {
        let _ = self.out.send(Frame::RstStream { id: self.id, status: rst::CANCEL }).await;
    }
}

impl StreamReceiver {
    pub async fn recv(&mut self) -> Option<Bytes> {
        self.rx.recv().await
    }
}

async fn write_frames<W: AsyncWrite>(write: W, mut frames: mpsc::Receiver<Frame>) {
    tokio::pin!(write);
    let mut headers = HeaderEncoder::default();
    let mut buf = BytesMut::new();
    while let Some(f) = frames.recv().await {
        buf.clear();
        if let Err(e) = frame::encode(&f, &mut buf, &mut headers) {
            tracing::debug!(error = %e, "spdy: cannot encode a frame");
            break;
        }
        // Batch whatever else is already queued into the same write.
        while let Ok(f) = frames.try_recv() {
            if frame::encode(&f, &mut buf, &mut headers).is_err() {
                break;
            }
        }
        if write.write_all(&buf).await.is_err() || write.flush().await.is_err() {
            break;
        }
    }
    let _ = write.shutdown().await;
}

async fn read_frames<R: AsyncRead>(read: R, out: mpsc::Sender<Frame>, streams: Streams) {
    tokio::pin!(read);
    let mut headers = HeaderDecoder::default();
    let mut buf = BytesMut::with_capacity(64 * 1024);
    'read: loop {
        loop {
            let f = match frame::decode(&mut buf, &mut headers) {
                Ok(Some(f)) => f,
                Ok(None) => break,
                Err(e) => {
                    tracing::debug!(error = %e, "spdy: protocol error");
                    let _ = out.send(Frame::GoAway { last_good: 0, status: rst::PROTOCOL_ERROR }).await;
                    break 'read;
                }
            };
            match f {
                Frame::SynReply { id, fin, headers } => {
                    let mut s = lock(&streams);
                    if let Some(slot) = s.get_mut(&id) {
                        if let Some(tx) = slot.reply.take() {
                            let _ = tx.send(Ok(headers));
                        }
                        if fin {
                            slot.data = None;
                        }
                    }
                }
                Frame::Data { id, fin, data } => {
                    let tx = lock(&streams).get(&id).and_then(|s| s.data.clone());
                    if let Some(tx) = tx
                        && !data.is_empty()
                    {
                        // A receiver that went away only loses its own stream's data.
                        let _ = tx.send(data).await;
                    }
                    if fin && let Some(slot) = lock(&streams).get_mut(&id) {
                        slot.data = None;
                    }
                }
                Frame::RstStream { id, status } => {
                    if let Some(slot) = lock(&streams).remove(&id)
                        && let Some(tx) = slot.reply
                    {
                        let _ = tx.send(Err(Error::Reset(status)));
                    }
                }
                Frame::Ping { id } => {
                    let _ = out.send(Frame::Ping { id }).await;
                }
                Frame::SynStream { id, .. } => {
                    // Servers never open streams in the protocols Kubernetes uses.
                    let _ = out.send(Frame::RstStream { id, status: rst::REFUSED_STREAM }).await;
                }
                Frame::GoAway { .. } => break 'read,
                Frame::Headers { .. } | Frame::WindowUpdate { .. } | Frame::Settings | Frame::Unknown => {}
            }
        }
        match read.read_buf(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
    }
    // Wake everyone still waiting: pending opens fail, receivers see the end.
    for (_, slot) in lock(&streams).drain() {
        if let Some(tx) = slot.reply {
            let _ = tx.send(Err(Error::Closed));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tiny SPDY echo server: replies to every stream and echoes its data back on it.
    async fn echo_server(io: tokio::io::DuplexStream) {
        let (mut r, mut w) = tokio::io::split(io);
        let (mut dec, mut enc) = (HeaderDecoder::default(), HeaderEncoder::default());
        let mut buf = BytesMut::new();
        loop {
            while let Some(f) = frame::decode(&mut buf, &mut dec).unwrap() {
                let mut out = BytesMut::new();
                match f {
                    Frame::SynStream { id, headers, .. } => {
                        let reply = vec![("echo".to_string(), frame::header(&headers, "streamtype").unwrap().into())];
                        frame::encode(&Frame::SynReply { id, fin: false, headers: reply }, &mut out, &mut enc).unwrap();
                        frame::encode(&Frame::Ping { id: 2 }, &mut out, &mut enc).unwrap();
                    }
                    Frame::Data { id, fin, data } => {
                        frame::encode(&Frame::Data { id, fin, data }, &mut out, &mut enc).unwrap();
                    }
                    Frame::GoAway { .. } => return,
                    _ => {}
                }
                w.write_all(&out).await.unwrap();
            }
            if r.read_buf(&mut buf).await.unwrap() == 0 {
                return;
            }
        }
    }

    #[tokio::test]
    async fn streams_open_carry_data_and_finish() {
        let (client, server) = tokio::io::duplex(1024);
        tokio::spawn(echo_server(server));
        let conn = Connection::client(client);
        let mut a = conn.open(vec![("streamtype".into(), "stdout".into())]).await.unwrap();
        let mut b = conn.open(vec![("streamtype".into(), "stderr".into())]).await.unwrap();
        assert_eq!(frame::header(&a.reply, "echo"), Some("stdout"));
        assert_eq!(frame::header(&b.reply, "echo"), Some("stderr"));
        assert_eq!((a.id, b.id), (1, 3));
        let big = Bytes::from(vec![7u8; 100_000]);
        a.sender.send(big.clone()).await.unwrap();
        a.sender.finish().await.unwrap();
        let mut got = Vec::new();
        while let Some(d) = a.receiver.recv().await {
            got.extend_from_slice(&d);
        }
        assert_eq!(got, big);
        b.sender.send(Bytes::from_static(b"x")).await.unwrap();
        assert_eq!(b.receiver.recv().await.as_deref(), Some(&b"x"[..]));
        conn.go_away().await;
    }
}
