//! Heartbeats as datagrams: failure detection that tolerates a lossy
//! network.
//!
//! On a connection, a lost segment holds back everything behind it until
//! TCP retransmits it (0.2 s at the least, doubling each time): under a
//! few per cent of packet loss a heartbeat sent on time often arrives
//! later than the coordinator's timeout, and live nodes are removed
//! (docs/real-mode.md, "Failure detection under loss": 1–5 live nodes
//! removed in 10–38 s runs at 5–10% loss, none after). The simulator never sees this:
//! there a lost heartbeat vanishes and the next one arrives on time, which
//! the timeout (four heartbeat intervals by default) absorbs.
//!
//! So real mode sends heartbeats ([`carries`]) as UDP datagrams, from and
//! to the address each node listens on (TCP and UDP share the port): a
//! lost one vanishes, as in the simulator, and the protocol and its
//! timeouts are unchanged. Everything else stays on the connections.
//!
//! Per-sender order. The simulator delivers a link's messages in order
//! (some may be lost), and the core may rely on it; a datagram overtakes
//! a message still on the connection, or arrives after a later one.
//! [`Order`] restores "a subsequence of what was sent", per sender life:
//!
//! - a datagram stamped below a message already delivered from its sender
//!   is dropped (arriving late is arriving out of order: treated as lost);
//! - a datagram carries `after`, the stamp of the last message its sender
//!   handed to its connection to this node and does not know lost (0:
//!   none; the writer marks what it dropped, or held on a connection it
//!   reset or saw end, as settled: [`super::host`]); until a message
//!   stamped `after` or later has come on the connection, the datagram
//!   waits (only the newest), and is delivered right after it.
//!
//! So a heartbeat is late only when its sender's own messages to the same
//! node are: a server's rare control messages to the coordinator
//! (`JoinReady`, `Prepared`, `MembershipAck`), never a worker's (it sends
//! the coordinator heartbeats only). To keep that wait short, a node's
//! connection to the coordinator gives up sooner than the others
//! ([`control_health`]): a message TCP has not delivered within two
//! heartbeat intervals (at least 250 ms) is dropped with its connection
//! (the protocol sends it again), and the heartbeats behind it go on.
//!
//! Format: the hello frame, then the message frame ([`super::frame`]),
//! then `after` (8 bytes, little-endian). A node whose UDP port cannot be
//! bound sends its heartbeats on the connections, as before.
//!
//! May import: `crate::core`, `crate::run` (traffic counts), `super`
//! (net), tokio. Never: `crate::sim` (hosts never import each other),
//! madsim.

use super::conn::Health;
use super::frame::{self, Frame, FrameError};
use crate::core::{Message, NodeId};
use crate::run::metrics::Traffic;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::{TcpListener, UdpSocket};

/// The largest datagram read (a heartbeat is well under 1 KiB).
pub const MAX_BYTES: usize = 64 * 1024;

/// Whether `msg` goes as a datagram: the heartbeats.
pub fn carries(msg: &Message) -> bool {
    matches!(
        msg,
        Message::WorkerHeartbeat { .. } | Message::ServerHeartbeat { .. }
    )
}

/// One datagram's content.
#[derive(Debug, Clone, PartialEq)]
pub struct Datagram {
    /// The sender.
    pub from: NodeId,
    /// The sender's life.
    pub incarnation: u32,
    /// Its logical clock when it sent it.
    pub lamport: u64,
    /// The stamp of the connection's message that must come first (0: none).
    pub after: u64,
    /// The message (one [`carries`] accepts).
    pub msg: Message,
}

/// Why a datagram was ignored.
#[derive(Debug, thiserror::Error)]
pub enum DatagramError {
    /// A frame in it could not be decoded.
    #[error("{0}")]
    Frame(#[from] FrameError),
    /// Frames in the wrong order, or a trailer of the wrong size.
    #[error("not a hello, a message and an 8-byte stamp")]
    Shape,
    /// A message that does not travel as a datagram.
    #[error("a {0} message does not travel as a datagram")]
    Kind(&'static str),
}

/// Encodes a datagram.
pub fn encode(from: NodeId, incarnation: u32, lamport: u64, after: u64, msg: &Message) -> Vec<u8> {
    let mut b = frame::encode(&Frame::Hello { from, incarnation });
    b.extend(frame::encode(&Frame::Msg {
        lamport,
        msg: msg.clone(),
    }));
    b.extend(after.to_le_bytes());
    b
}

/// Decodes a datagram.
pub fn decode(bytes: &[u8], max_frame_bytes: u32) -> Result<Datagram, DatagramError> {
    let (hello, n) = frame::decode(bytes, max_frame_bytes)?;
    let Frame::Hello { from, incarnation } = hello else {
        return Err(DatagramError::Shape);
    };
    let (m, k) = frame::decode(&bytes[n..], max_frame_bytes)?;
    let Frame::Msg { lamport, msg } = m else {
        return Err(DatagramError::Shape);
    };
    let after: [u8; 8] = bytes[n + k..]
        .try_into()
        .map_err(|_| DatagramError::Shape)?;
    if !carries(&msg) {
        return Err(DatagramError::Kind(msg.kind()));
    }
    Ok(Datagram {
        from,
        incarnation,
        lamport,
        after: u64::from_le_bytes(after),
        msg,
    })
}

/// Binds the node's datagram socket on its listener's address. A restarted
/// node in the same process may find its earlier life's socket still
/// closing: it tries for a second. `None` (said on stderr): heartbeats go
/// on the connections.
pub async fn bind(listener: &TcpListener, me: NodeId) -> Option<Arc<UdpSocket>> {
    let addr = listener.local_addr().ok()?;
    let mut last = None;
    for _ in 0..20 {
        match UdpSocket::bind(addr).await {
            Ok(u) => return Some(Arc::new(u)),
            Err(e) => last = Some(e),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    eprintln!(
        "pssim {me}: cannot bind UDP {addr} ({}); heartbeats go on the connections",
        last.map_or_else(String::new, |e| e.to_string())
    );
    None
}

/// Sends one datagram now; a full socket buffer drops it, as a network
/// would.
pub fn send(udp: &UdpSocket, bytes: &[u8], to: SocketAddr, msg: &Message, stats: &Mutex<Traffic>) {
    let mut st = stats.lock().unwrap_or_else(|e| e.into_inner());
    match udp.try_send_to(bytes, to) {
        // Heartbeats are never compressed: raw = wire, as on a connection.
        Ok(n) => st.count(msg, n, n + msg.raw_wire_size() - msg.wire_size()),
        Err(_) => st.dropped += 1,
    }
}

/// The deadlines of a connection to the coordinator when heartbeats go as
/// datagrams: `TCP_USER_TIMEOUT` and the write stall at two heartbeat
/// intervals, at least 250 ms (TCP's first retransmission, 0.2 s, fits)
/// and at most the usual (the heartbeat timeout), so a control message
/// stuck behind retransmissions holds its sender's heartbeats (module
/// header) for at most that long, within the coordinator's timeout. The
/// connection carries only small control messages.
pub fn control_health(usual: Health, heartbeat_interval: Duration) -> Health {
    let d = (2 * heartbeat_interval)
        .max(Duration::from_millis(250))
        .min(usual.user_timeout);
    Health {
        user_timeout: d,
        write_stall: d,
        ..usual
    }
}

/// What has come from one sender life.
#[derive(Debug, Default)]
struct Link {
    /// The highest stamp delivered (either way).
    last: u64,
    /// The highest stamp delivered from the connection.
    conn: u64,
    /// The newest datagram waiting for the connection: (message, stamp,
    /// after).
    held: Option<(Message, u64, u64)>,
}

/// Keeps what is delivered from each sender life a subsequence of what it
/// sent (the module header).
#[derive(Debug, Default)]
pub struct Order {
    links: BTreeMap<(NodeId, u32), Link>,
}

impl Order {
    /// Takes what came from `from` (sender and life) stamped `lamport`
    /// (`after`: `None` from a connection, else the datagram's) and
    /// returns what to deliver now, in order: nothing, it, or (from a
    /// connection) it and the datagram that waited for it.
    pub fn admit(
        &mut self,
        from: (NodeId, u32),
        msg: Message,
        lamport: u64,
        after: Option<u64>,
    ) -> Vec<(Message, u64)> {
        let l = self.links.entry(from).or_default();
        match after {
            None => {
                l.last = l.last.max(lamport);
                l.conn = l.conn.max(lamport);
                let mut out = vec![(msg, lamport)];
                if let Some((_, _, a)) = &l.held {
                    if *a <= l.conn {
                        let (m, s, _) = l.held.take().expect("held");
                        // Sent before this message: it missed its turn.
                        if s > l.last {
                            l.last = s;
                            out.push((m, s));
                        }
                    }
                }
                out
            }
            Some(_) if lamport <= l.last => Vec::new(),
            Some(a) if a > l.conn => {
                if l.held.as_ref().is_none_or(|h| h.1 < lamport) {
                    l.held = Some((msg, lamport, a));
                }
                Vec::new()
            }
            Some(_) => {
                l.last = lamport;
                vec![(msg, lamport)]
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::{Clock, Epoch};

    fn hb(clock: u32) -> Message {
        Message::WorkerHeartbeat {
            worker: 1,
            incarnation: 0,
            clock: Clock(clock),
            joining: false,
            epoch: Epoch(1),
            done: false,
        }
    }

    fn stamps(v: &[(Message, u64)]) -> Vec<u64> {
        v.iter().map(|(_, s)| *s).collect()
    }

    #[test]
    fn a_datagram_round_trips_and_garbage_is_refused() {
        let b = encode(NodeId::Worker(1), 2, 77, 70, &hb(5));
        let d = decode(&b, 1 << 20).unwrap();
        assert_eq!(
            d,
            Datagram {
                from: NodeId::Worker(1),
                incarnation: 2,
                lamport: 77,
                after: 70,
                msg: hb(5)
            }
        );
        for cut in 0..b.len() {
            assert!(decode(&b[..cut], 1 << 20).is_err(), "cut at {cut}");
        }
        let mut long = b.clone();
        long.push(0);
        assert!(matches!(decode(&long, 1 << 20), Err(DatagramError::Shape)));
        // A message that must stay on the connection.
        let mut other = frame::encode(&Frame::Hello {
            from: NodeId::Server(0),
            incarnation: 0,
        });
        other.extend(frame::encode(&Frame::Msg {
            lamport: 1,
            msg: Message::MembershipAck {
                version: 1,
                done: Vec::new(),
            },
        }));
        other.extend(0u64.to_le_bytes());
        assert!(matches!(
            decode(&other, 1 << 20),
            Err(DatagramError::Kind(_))
        ));
    }

    #[test]
    fn what_is_delivered_is_a_subsequence_of_what_was_sent() {
        let w = (NodeId::Server(0), 0);
        let mut o = Order::default();
        // A datagram with nothing before it on the connection: at once.
        assert_eq!(stamps(&o.admit(w, hb(0), 3, Some(0))), [3]);
        // An older one arriving late: lost.
        assert!(o.admit(w, hb(0), 2, Some(0)).is_empty());
        // One that must follow connection message 5: waits for it; a
        // newer one (also after 5) replaces it.
        assert!(o.admit(w, hb(1), 6, Some(5)).is_empty());
        assert!(o.admit(w, hb(2), 7, Some(5)).is_empty());
        assert_eq!(stamps(&o.admit(w, hb(9), 4, None)), [4]);
        assert_eq!(stamps(&o.admit(w, hb(9), 5, None)), [5, 7]);
        // Delivered 7 already: 6 is late.
        assert!(o.admit(w, hb(1), 6, Some(5)).is_empty());
        // A held datagram overtaken by a later connection message: lost.
        assert!(o.admit(w, hb(3), 9, Some(8)).is_empty());
        assert_eq!(stamps(&o.admit(w, hb(9), 10, None)), [10]);
        // Another life of the same node starts afresh.
        assert_eq!(
            stamps(&o.admit((NodeId::Server(0), 1), hb(0), 1, Some(0))),
            [1]
        );
    }
}
