//! The thin layer around [`super::answer`]: parsing and writing messages, the UDP and TCP
//! loops, and relaying to the upstream resolvers.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::Record;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;
use tokio::time::{Instant, timeout, timeout_at};

use super::Error;
use super::answer::{Resolution, resolve};
use super::index::Index;

/// How long the upstream resolvers get for one question, all attempts together.
pub const UPSTREAM_DEADLINE: Duration = Duration::from_secs(2);
/// A TCP client that sends nothing for this long is disconnected.
const TCP_IDLE: Duration = Duration::from_secs(10);
/// Questions relayed upstream at the same time; beyond that the server answers SERVFAIL
/// at once rather than holding sockets and memory for a flood it cannot serve.
const MAX_FORWARDS: usize = 1024;
const MAX_TCP_CONNECTIONS: usize = 512;
/// The UDP payload we advertise and accept (the DNS flag day 2020 value, no fragments).
const EDNS_PAYLOAD: u16 = 1232;
/// Plain DNS over UDP without EDNS.
const UDP_PLAIN: usize = 512;

/// What the UDP and TCP loops share.
pub(crate) struct Shared {
    pub index: watch::Receiver<Arc<Index>>,
    pub upstreams: Arc<[SocketAddr]>,
    pub forwards: Arc<Semaphore>,
}

impl Shared {
    pub fn new(index: watch::Receiver<Arc<Index>>, upstreams: Vec<SocketAddr>) -> Shared {
        Shared { index, upstreams: upstreams.into(), forwards: Arc::new(Semaphore::new(MAX_FORWARDS)) }
    }
}

/// What to do with one received packet.
pub(crate) enum Step {
    Reply(Vec<u8>),
    /// Not a question (a response, or too short to carry an id): no answer.
    Drop,
    /// Needs the upstream resolvers.
    Upstream(Box<Upstream>),
}

pub(crate) struct Upstream {
    request: Message,
    raw: Vec<u8>,
    limit: usize,
    chase: Option<(Vec<Record>, hickory_proto::rr::Name)>,
}

/// Answers one packet from the index, or says it needs the upstreams. `udp` selects the
/// size limit (512 bytes or the client's EDNS size) beyond which the answer is truncated.
pub(crate) fn handle(index: &Index, packet: &[u8], udp: bool) -> Step {
    if packet.len() < 12 {
        return Step::Drop;
    }
    let request = match Message::from_vec(packet) {
        Ok(request) => request,
        Err(err) => {
            // The QR bit of a response: never answer those (no reflection loops).
            if packet[2] & 0x80 != 0 {
                return Step::Drop;
            }
            tracing::debug!(error = %err, "malformed dns message");
            let id = u16::from_be_bytes([packet[0], packet[1]]);
            return Message::error_msg(id, OpCode::Query, ResponseCode::FormErr)
                .to_vec()
                .map_or(Step::Drop, Step::Reply);
        }
    };
    if request.message_type() != MessageType::Query {
        return Step::Drop;
    }
    let limit = if udp {
        request.extensions().as_ref().map_or(UDP_PLAIN, |e| usize::from(e.max_payload().clamp(512, EDNS_PAYLOAD)))
    } else {
        usize::from(u16::MAX)
    };
    if request.op_code() != OpCode::Query {
        return Step::Reply(response(&request, ResponseCode::NotImp, false, Vec::new(), Vec::new(), Vec::new(), limit));
    }
    let [query] = request.queries() else {
        return Step::Reply(response(
            &request,
            ResponseCode::FormErr,
            false,
            Vec::new(),
            Vec::new(),
            Vec::new(),
            limit,
        ));
    };
    match resolve(index, query.name(), query.query_type()) {
        Resolution::Local(a) => {
            Step::Reply(response(&request, a.rcode, true, a.answers, a.authority, a.additionals, limit))
        }
        Resolution::Forward => Step::Upstream(Box::new(Upstream { request, raw: packet.to_vec(), limit, chase: None })),
        Resolution::Chase { cnames, target } => {
            Step::Upstream(Box::new(Upstream { request, raw: packet.to_vec(), limit, chase: Some((cnames, target)) }))
        }
    }
}

/// A response to `request`, truncated (TC set, records dropped) if longer than `limit`.
fn response(
    request: &Message,
    rcode: ResponseCode,
    authoritative: bool,
    answers: Vec<Record>,
    authority: Vec<Record>,
    additionals: Vec<Record>,
    limit: usize,
) -> Vec<u8> {
    let mut msg = Message::new();
    msg.set_id(request.id())
        .set_message_type(MessageType::Response)
        .set_op_code(request.op_code())
        .set_authoritative(authoritative)
        .set_recursion_desired(request.recursion_desired())
        .set_recursion_available(true)
        .set_checking_disabled(request.checking_disabled())
        .set_response_code(rcode);
    msg.add_queries(request.queries().iter().cloned());
    msg.add_answers(answers);
    msg.add_name_servers(authority);
    msg.add_additionals(additionals);
    if request.extensions().is_some() {
        let mut edns = Edns::new();
        edns.set_max_payload(EDNS_PAYLOAD);
        msg.set_edns(edns);
    }
    match msg.to_vec() {
        Ok(bytes) if bytes.len() <= limit => bytes,
        Ok(_) => msg.truncate().to_vec().unwrap_or_default(),
        Err(err) => {
            tracing::warn!(error = %err, "encoding a dns response failed");
            Message::error_msg(request.id(), request.op_code(), ResponseCode::ServFail).to_vec().unwrap_or_default()
        }
    }
}

impl Upstream {
    /// Asks the upstreams and builds the reply; SERVFAIL if none answers in time.
    pub async fn run(self, upstreams: &[SocketAddr]) -> Vec<u8> {
        let Upstream { request, raw, limit, chase } = self;
        let servfail = || response(&request, ResponseCode::ServFail, false, Vec::new(), Vec::new(), Vec::new(), limit);
        match chase {
            None => match exchange(upstreams, &raw).await {
                Ok(reply) if reply.len() <= limit => reply,
                Ok(_) => {
                    // Too long for this client's UDP: tell it to come back over TCP.
                    let mut short = request.truncate();
                    short.set_message_type(MessageType::Response).set_recursion_available(true);
                    short.to_vec().unwrap_or_else(|_| servfail())
                }
                Err(err) => {
                    tracing::debug!(error = %err, "forwarding failed");
                    servfail()
                }
            },
            Some((cnames, target)) => {
                let qtype = request.queries().first().map_or(hickory_proto::rr::RecordType::A, Query::query_type);
                let mut question = Message::new();
                question.set_id(rand::random()).set_recursion_desired(true).add_query(Query::query(target, qtype));
                let reply = match question.to_vec() {
                    Ok(bytes) => exchange(upstreams, &bytes).await.and_then(|r| {
                        Message::from_vec(&r).map_err(|e| Error::Upstream { detail: format!("unreadable answer: {e}") })
                    }),
                    Err(e) => Err(Error::Upstream { detail: format!("encoding the question: {e}") }),
                };
                match reply {
                    Ok(mut reply) => {
                        let mut answers = cnames;
                        answers.extend(reply.take_answers());
                        let rcode = reply.response_code();
                        response(&request, rcode, false, answers, reply.take_name_servers(), Vec::new(), limit)
                    }
                    Err(err) => {
                        tracing::debug!(error = %err, "chasing an external name failed");
                        response(&request, ResponseCode::ServFail, false, cnames, Vec::new(), Vec::new(), limit)
                    }
                }
            }
        }
    }
}

/// Relays the question `raw` to the upstreams in turn (starting at a random one, to
/// spread load as CoreDNS's `forward` does) within [`UPSTREAM_DEADLINE`]; over UDP, then
/// TCP when the UDP answer is truncated. The answer carries the question's id.
pub(crate) async fn exchange(upstreams: &[SocketAddr], raw: &[u8]) -> Result<Vec<u8>, Error> {
    if upstreams.is_empty() || raw.len() < 12 {
        return Err(Error::Upstream { detail: "no upstream resolvers".into() });
    }
    let deadline = Instant::now() + UPSTREAM_DEADLINE;
    let first = rand::random_range(0..upstreams.len());
    let mut last = Error::Upstream { detail: "no answer".into() };
    for i in 0..upstreams.len() {
        let upstream = upstreams[(first + i) % upstreams.len()];
        // Later upstreams get their share of what is left, so one dead resolver cannot
        // use up the whole deadline.
        let left = deadline.saturating_duration_since(Instant::now());
        let share = left / u32::try_from(upstreams.len() - i).unwrap_or(1);
        match timeout(share, exchange_one(upstream, raw, deadline)).await {
            Ok(Ok(reply)) => return Ok(reply),
            Ok(Err(err)) => last = err,
            Err(_) => last = Error::Upstream { detail: format!("{upstream} did not answer in {share:?}") },
        }
    }
    Err(last)
}

async fn exchange_one(upstream: SocketAddr, raw: &[u8], deadline: Instant) -> Result<Vec<u8>, Error> {
    let io = |e: std::io::Error| Error::Upstream { detail: format!("{upstream}: {e}") };
    let bind: SocketAddr = if upstream.is_ipv4() { ([0, 0, 0, 0], 0).into() } else { ([0u16; 8], 0).into() };
    // A fresh socket per question: a random source port plus a random id, so off-path
    // spoofed answers are hard to get accepted.
    let socket = UdpSocket::bind(bind).await.map_err(io)?;
    socket.connect(upstream).await.map_err(io)?;
    let id: u16 = rand::random();
    let original = [raw[0], raw[1]];
    let mut question = raw.to_vec();
    question[..2].copy_from_slice(&id.to_be_bytes());
    socket.send(&question).await.map_err(io)?;
    let mut buf = vec![0u8; 65535];
    let mut reply = loop {
        let n = socket.recv(&mut buf).await.map_err(io)?;
        // Only a response with our id counts; anything else is ignored.
        if n >= 12 && buf[..2] == id.to_be_bytes() && buf[2] & 0x80 != 0 {
            break buf[..n].to_vec();
        }
    };
    if reply[2] & 0x02 != 0 {
        reply = timeout_at(deadline, exchange_tcp(upstream, &question))
            .await
            .map_err(|_| Error::Upstream { detail: format!("{upstream}: tcp retry timed out") })??;
    }
    reply[..2].copy_from_slice(&original);
    Ok(reply)
}

async fn exchange_tcp(upstream: SocketAddr, question: &[u8]) -> Result<Vec<u8>, Error> {
    let io = |e: std::io::Error| Error::Upstream { detail: format!("{upstream} over tcp: {e}") };
    let mut stream = TcpStream::connect(upstream).await.map_err(io)?;
    let len = u16::try_from(question.len()).map_err(|_| Error::Upstream { detail: "question too long".into() })?;
    let mut framed = len.to_be_bytes().to_vec();
    framed.extend_from_slice(question);
    stream.write_all(&framed).await.map_err(io)?;
    let mut len = [0u8; 2];
    stream.read_exact(&mut len).await.map_err(io)?;
    let mut reply = vec![0u8; usize::from(u16::from_be_bytes(len))];
    stream.read_exact(&mut reply).await.map_err(io)?;
    if reply.len() < 12 || reply[..2] != question[..2] {
        return Err(Error::Upstream { detail: format!("{upstream} over tcp: answer does not match the question") });
    }
    Ok(reply)
}

/// One UDP worker; several share the socket so that both cores answer.
pub(crate) async fn udp_loop(socket: Arc<UdpSocket>, shared: Arc<Shared>) {
    // Questions longer than this are cut by the kernel, fail to parse and get FORMERR.
    let mut buf = vec![0u8; 4096];
    loop {
        let (n, peer) = match socket.recv_from(&mut buf).await {
            Ok(got) => got,
            Err(err) => {
                // ICMP errors of earlier sends surface here; nothing is wrong with us.
                tracing::trace!(error = %err, "dns udp receive");
                continue;
            }
        };
        let index = shared.index.borrow().clone();
        match handle(&index, &buf[..n], true) {
            Step::Reply(bytes) => {
                if let Err(err) = socket.send_to(&bytes, peer).await {
                    tracing::trace!(error = %err, %peer, "dns udp send");
                }
            }
            Step::Drop => {}
            Step::Upstream(job) => match shared.forwards.clone().try_acquire_owned() {
                Ok(permit) => {
                    let socket = socket.clone();
                    let upstreams = shared.upstreams.clone();
                    // Bounded by UPSTREAM_DEADLINE; the permit caps how many run.
                    tokio::spawn(async move {
                        let bytes = job.run(&upstreams).await;
                        let _ = socket.send_to(&bytes, peer).await;
                        drop(permit);
                    });
                }
                Err(_) => {
                    let bytes =
                        response(&job.request, ResponseCode::ServFail, false, vec![], vec![], vec![], job.limit);
                    let _ = socket.send_to(&bytes, peer).await;
                }
            },
        }
    }
}

pub(crate) async fn tcp_loop(listener: TcpListener, shared: Arc<Shared>) {
    // Connections live in this set so that they end with the server.
    let mut connections = JoinSet::new();
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(got) => got,
            Err(err) => {
                tracing::debug!(error = %err, "dns tcp accept");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        while connections.try_join_next().is_some() {}
        if connections.len() >= MAX_TCP_CONNECTIONS {
            tracing::debug!(%peer, "too many dns tcp connections; closing the new one");
            continue;
        }
        connections.spawn(tcp_connection(stream, shared.clone()));
    }
}

/// Length-prefixed messages, answered in order, until the client closes or idles.
async fn tcp_connection(mut stream: TcpStream, shared: Arc<Shared>) {
    loop {
        let mut len = [0u8; 2];
        if !matches!(timeout(TCP_IDLE, stream.read_exact(&mut len)).await, Ok(Ok(_))) {
            return;
        }
        let mut packet = vec![0u8; usize::from(u16::from_be_bytes(len))];
        if !matches!(timeout(TCP_IDLE, stream.read_exact(&mut packet)).await, Ok(Ok(_))) {
            return;
        }
        let index = shared.index.borrow().clone();
        let reply = match handle(&index, &packet, false) {
            Step::Reply(bytes) => bytes,
            Step::Drop => return,
            Step::Upstream(job) => job.run(&shared.upstreams).await,
        };
        let Ok(len) = u16::try_from(reply.len()) else { return };
        let mut framed = len.to_be_bytes().to_vec();
        framed.extend_from_slice(&reply);
        if !matches!(timeout(TCP_IDLE, stream.write_all(&framed)).await, Ok(Ok(()))) {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use hickory_proto::rr::{Name, RecordType};

    use super::*;

    fn question(name: &str, qtype: RecordType, edns: bool) -> Message {
        let mut msg = Message::new();
        msg.set_id(7).set_recursion_desired(true).add_query(Query::query(Name::from_ascii(name).unwrap(), qtype));
        if edns {
            let mut e = Edns::new();
            e.set_max_payload(1232);
            msg.set_edns(e);
        }
        msg
    }

    fn reply(step: Step) -> Message {
        match step {
            Step::Reply(bytes) => Message::from_vec(&bytes).unwrap(),
            _ => panic!("expected a reply"),
        }
    }

    #[test]
    fn malformed_packets_get_formerr_or_nothing() {
        let index = Index::empty("cluster.local");
        assert!(matches!(handle(&index, &[1, 2, 3], true), Step::Drop));
        // A header claiming one question but carrying none.
        let bad = [0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
        let msg = reply(handle(&index, &bad, true));
        assert_eq!((msg.id(), msg.response_code()), (0x1234, ResponseCode::FormErr));
        let mut response = bad;
        response[2] |= 0x80;
        assert!(matches!(handle(&index, &response, true), Step::Drop));
        // Two questions.
        let mut two = question("a.cluster.local.", RecordType::A, false);
        two.add_query(Query::query(Name::from_ascii("b.cluster.local.").unwrap(), RecordType::A));
        assert_eq!(reply(handle(&index, &two.to_vec().unwrap(), true)).response_code(), ResponseCode::FormErr);
        // Not a query.
        let mut notify = question("cluster.local.", RecordType::SOA, false);
        notify.set_op_code(OpCode::Notify);
        assert_eq!(reply(handle(&index, &notify.to_vec().unwrap(), true)).response_code(), ResponseCode::NotImp);
    }

    #[test]
    fn long_udp_answers_are_truncated_unless_edns_allows_them() {
        use crate::dns::tests::{headless, slice};
        let eps: Vec<String> = (1..=60).map(|i| format!("10.0.1.{i}")).collect();
        let eps: Vec<(&str, Option<&str>, Option<bool>)> = eps.iter().map(|ip| (ip.as_str(), None, None)).collect();
        let index = Index::build(
            "cluster.local",
            &[Arc::new(headless("ns", "big", false))],
            &[Arc::new(slice("ns", "big", "a", &eps))],
        );
        let name = "big.ns.svc.cluster.local.";
        let plain = reply(handle(&index, &question(name, RecordType::A, false).to_vec().unwrap(), true));
        assert!(plain.truncated() && plain.answers().is_empty());
        let edns = reply(handle(&index, &question(name, RecordType::A, true).to_vec().unwrap(), true));
        assert!(!edns.truncated() && edns.answers().len() == 60 && edns.extensions().is_some());
        let tcp = reply(handle(&index, &question(name, RecordType::A, false).to_vec().unwrap(), false));
        assert!(!tcp.truncated() && tcp.answers().len() == 60);
        assert!(tcp.authoritative() && tcp.recursion_desired() && tcp.id() == 7);
    }
}
