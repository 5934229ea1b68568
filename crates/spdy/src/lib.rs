//! SPDY/3.1, as much of it as Kubernetes streaming uses: the apiserver speaks it to a
//! kubelet (through the kubelet, to the container runtime's streaming server) when it
//! translates a WebSocket `kubectl exec` into the runtime's protocol.
//!
//! Start at [`conn::Connection`] (a client connection with streams); [`frame`] holds
//! the byte layout and the zlib-compressed header blocks.

pub mod conn;
mod dictionary;
pub mod frame;

pub use conn::{Connection, Stream, StreamReceiver, StreamSender};
pub use frame::Headers;

#[derive(Debug, Clone, thiserror::Error)]
pub enum Error {
    #[error("spdy protocol error: {0}")]
    Protocol(String),
    #[error("spdy connection closed")]
    Closed,
    #[error("spdy stream reset by the peer (status {0})")]
    Reset(u32),
}
