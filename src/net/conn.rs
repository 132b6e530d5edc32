//! Connection health: how the TCP host notices a connection that stalled
//! (a partition, a peer that stopped reading, a peer gone) and dials
//! again, and the start-up barrier.
//!
//! A message written into a socket whose peer no longer acknowledges sits
//! in the kernel's send queue while TCP retransmits it with a growing
//! back-off (0.2 s, 0.4 s, 0.8 s, ...): after a partition heals, the queue
//! waits for the next retransmission, up to as long again as the partition
//! lasted, and nothing above it knows. Measured in network namespaces
//! (docs/real-mode.md): a server cut off for 1.5 s was back in one of its
//! ranges 0.17 s after the heal and in the other 1.71 s after it. So every
//! connection carries three deadlines, all derived from the protocol's
//! `heartbeat_timeout` ([`Health::new`]):
//!
//! - `TCP_USER_TIMEOUT` (Linux): the kernel aborts a connection whose
//!   written bytes stay unacknowledged (or whose peer's window stays
//!   closed) that long, and discards what it held (nothing stale arrives
//!   after the next connection's frames). It also caps the retransmission
//!   back-off, so a shorter outage is retransmitted within it.
//! - Keepalive on both ends: an idle connection whose peer vanished is
//!   found (the readers' half-open inbound connections go away).
//! - A write deadline ([`Deadline`]): a frame write that makes no progress
//!   for `write_stall` fails; the writer aborts the connection (RST, its
//!   queue discarded) and the next message dials again.
//!
//! The writer also watches its connection between messages ([`ended`]): a
//! connection the node only writes on becomes readable only when it ends
//! (the peer closed it, or the kernel gave up on it), so the next message
//! dials a fresh one instead of being lost on the dead one. A message on a
//! dead connection is dropped, as a lossy network drops it; the protocol's
//! retries and heartbeats recover.
//!
//! Replies are not a usable signal here: a node sends on its own
//! connection and hears back on the peer's, and several flows have no
//! reply at all (a worker's heartbeats, a coordinator's views), so "sent
//! but heard nothing" misfires on healthy links. The peer's TCP
//! acknowledgements are the replies every byte gets, and the user timeout
//! is the deadline on them.
//!
//! The start-up barrier ([`await_peers`]): a node's first life waits,
//! before its first clock, until every peer accepts connections, so the
//! first messages are not dropped on peers not yet listening.
//!
//! May import: `crate::core`, `super` (net), tokio, socket2. Never:
//! `crate::sim` (hosts never import each other), madsim.

use crate::core::NodeId;
use std::collections::BTreeMap;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::AsyncWrite;
use tokio::net::TcpStream;
use tokio::time::{Instant, Sleep};

/// The deadlines of a node's connections.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Health {
    /// How long a connection attempt may take: half the heartbeat timeout,
    /// within 100–500 ms (one SYN: Linux retransmits it only after 1 s).
    pub connect_timeout: Duration,
    /// `TCP_USER_TIMEOUT`: written bytes unacknowledged this long abort the
    /// connection. The heartbeat timeout (at least 100 ms).
    pub user_timeout: Duration,
    /// A frame write making no progress this long fails. The heartbeat
    /// timeout (at least 100 ms).
    pub write_stall: Duration,
    /// Keepalive: first probe after this long idle (the heartbeat timeout,
    /// at least 1 s: the kernel counts whole seconds), then one a second;
    /// the user timeout ends it.
    pub keepalive_idle: Duration,
}

impl Health {
    /// The deadlines for a protocol whose heartbeat timeout is `heartbeat`.
    pub fn new(heartbeat: Duration) -> Health {
        let floor = Duration::from_millis(100);
        Health {
            connect_timeout: (heartbeat / 2).clamp(floor, Duration::from_millis(500)),
            user_timeout: heartbeat.max(floor),
            write_stall: heartbeat.max(floor),
            keepalive_idle: heartbeat.max(Duration::from_secs(1)),
        }
    }
}

/// Sets a connection's options: no Nagle delay, keepalive and (Linux) the
/// user timeout. Applied to both ends (outbound after connect, inbound
/// after accept).
pub fn tune(stream: &TcpStream, h: &Health) -> io::Result<()> {
    let sock = socket2::SockRef::from(stream);
    sock.set_tcp_nodelay(true)?;
    let ka = socket2::TcpKeepalive::new().with_time(h.keepalive_idle);
    #[cfg(any(target_os = "linux", target_os = "android", target_os = "macos"))]
    let ka = ka.with_interval(Duration::from_secs(1)).with_retries(3);
    sock.set_tcp_keepalive(&ka)?;
    #[cfg(any(target_os = "linux", target_os = "android"))]
    sock.set_tcp_user_timeout(Some(h.user_timeout))?;
    Ok(())
}

/// Connects to `addr` within the connect timeout and tunes the connection.
pub async fn dial(addr: SocketAddr, h: &Health) -> io::Result<TcpStream> {
    let s = tokio::time::timeout(h.connect_timeout, TcpStream::connect(addr))
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "connect timed out"))??;
    tune(&s, h)?;
    Ok(s)
}

/// Closes a connection at once with a reset, discarding what its send
/// queue still holds: frames of a stalled connection must not arrive
/// after those of the connection that replaces it.
pub fn abort(stream: TcpStream) {
    let _ = socket2::SockRef::from(&stream).set_linger(Some(Duration::ZERO));
    drop(stream);
}

/// Resolves when a connection the node only writes on has ended: the peer
/// closed it (end of stream) or the kernel gave up on it (an error:
/// `TCP_USER_TIMEOUT`, keepalive, a reset). Never resolves on a healthy
/// connection (its peer writes nothing on it).
pub async fn ended(stream: &TcpStream) {
    let mut byte = [0u8; 64];
    loop {
        if stream.readable().await.is_err() {
            return;
        }
        match stream.try_read(&mut byte) {
            Ok(0) => return,
            // A peer has nothing to say on our connection; ignore it.
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(_) => return,
        }
    }
}

/// A writer whose writes fail with `TimedOut` once they make no progress
/// for `stall` (the deadline moves with every byte written, so a large
/// frame on a slow but live link is not cut off).
pub struct Deadline<'a, W> {
    inner: &'a mut W,
    stall: Duration,
    sleep: Pin<Box<Sleep>>,
}

impl<'a, W: AsyncWrite + Unpin> Deadline<'a, W> {
    /// Wraps `inner`; the first deadline is `stall` from now.
    pub fn new(inner: &'a mut W, stall: Duration) -> Self {
        Deadline {
            inner,
            stall,
            sleep: Box::pin(tokio::time::sleep(stall)),
        }
    }

    fn expired(&mut self, cx: &mut Context<'_>) -> bool {
        self.sleep.as_mut().poll(cx).is_ready()
    }

    fn stalled(&self) -> io::Error {
        io::Error::new(
            io::ErrorKind::TimedOut,
            format!("no write progress for {:?}", self.stall),
        )
    }
}

impl<W: AsyncWrite + Unpin> AsyncWrite for Deadline<'_, W> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        match Pin::new(&mut *this.inner).poll_write(cx, buf) {
            Poll::Ready(Ok(n)) => {
                if n > 0 {
                    let next = Instant::now() + this.stall;
                    this.sleep.as_mut().reset(next);
                }
                Poll::Ready(Ok(n))
            }
            Poll::Pending if this.expired(cx) => Poll::Ready(Err(this.stalled())),
            other => other,
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        match Pin::new(&mut *this.inner).poll_flush(cx) {
            Poll::Pending if this.expired(cx) => Poll::Ready(Err(this.stalled())),
            other => other,
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.get_mut().inner).poll_shutdown(cx)
    }
}

/// How often the barrier tries a peer that refused (it is not listening
/// yet).
const BARRIER_RETRY: Duration = Duration::from_millis(25);

/// The start-up barrier: waits until every peer but `me` accepts a
/// connection (its listener is up, so what this node sends next is not
/// dropped), for at most `deadline`. Each probe connection is reset at
/// once; the peer's reader sees it end before a hello and forgets it.
/// Returns how long it waited, or the peers still unreachable at the
/// deadline, each with the last error it gave.
pub async fn await_peers(
    me: NodeId,
    peers: &BTreeMap<NodeId, SocketAddr>,
    deadline: Duration,
    h: &Health,
) -> Result<Duration, Vec<(NodeId, SocketAddr, String)>> {
    let start = Instant::now();
    let end = start + deadline;
    let mut probes = tokio::task::JoinSet::new();
    for (&id, &addr) in peers.iter().filter(|(&id, _)| id != me) {
        let h = *h;
        probes.spawn(async move {
            let mut last = String::from("not tried");
            loop {
                let now = Instant::now();
                if now >= end {
                    return Err((id, addr, last));
                }
                let attempt = h.connect_timeout.min(end - now);
                match tokio::time::timeout(attempt, TcpStream::connect(addr)).await {
                    Ok(Ok(probe)) => {
                        // Reset, not closed: a closing side keeps its
                        // port in TIME_WAIT for a minute, and a port
                        // picked for a node not yet listening could be it.
                        abort(probe);
                        return Ok(());
                    }
                    Ok(Err(e)) => last = e.to_string(),
                    Err(_) => last = format!("no answer within {attempt:?}"),
                }
                tokio::time::sleep_until((Instant::now() + BARRIER_RETRY).min(end)).await;
            }
        });
    }
    let mut unreachable = Vec::new();
    while let Some(r) = probes.join_next().await {
        if let Ok(Err(peer)) = r {
            unreachable.push(peer);
        }
    }
    if unreachable.is_empty() {
        Ok(start.elapsed())
    } else {
        unreachable.sort_by_key(|p| p.0);
        Err(unreachable)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    #[test]
    fn deadlines_follow_the_heartbeat_timeout() {
        let h = Health::new(Duration::from_millis(500));
        assert_eq!(h.connect_timeout, Duration::from_millis(250));
        assert_eq!(h.user_timeout, Duration::from_millis(500));
        assert_eq!(h.keepalive_idle, Duration::from_secs(1));
        let h = Health::new(Duration::from_millis(20));
        assert_eq!(h.connect_timeout, Duration::from_millis(100));
        assert_eq!(h.write_stall, Duration::from_millis(100));
        let h = Health::new(Duration::from_secs(10));
        assert_eq!(h.connect_timeout, Duration::from_millis(500));
        assert_eq!(h.keepalive_idle, Duration::from_secs(10));
    }

    /// A peer that accepts but never reads: the writes fill both socket
    /// buffers, then make no progress, and the deadline fails the write.
    #[test]
    fn a_write_the_peer_never_reads_fails_at_the_deadline() {
        rt().block_on(async {
            let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = l.local_addr().unwrap();
            let h = Health::new(Duration::from_millis(200));
            let mut s = dial(addr, &h).await.unwrap();
            let (_held, _) = l.accept().await.unwrap();
            let big = vec![7u8; 64 << 20];
            let t = Instant::now();
            let err = Deadline::new(&mut s, h.write_stall)
                .write_all(&big)
                .await
                .unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::TimedOut, "{err}");
            assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
        });
    }

    /// A slow reader that keeps reading: progress moves the deadline, so
    /// a write far longer than the stall time completes.
    #[test]
    fn a_slow_but_live_reader_is_not_cut_off() {
        rt().block_on(async {
            let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = l.local_addr().unwrap();
            let stall = Duration::from_millis(200);
            let h = Health::new(stall);
            let mut s = dial(addr, &h).await.unwrap();
            let (mut r, _) = l.accept().await.unwrap();
            let reader = tokio::spawn(async move {
                let mut got = 0usize;
                let mut buf = vec![0u8; 1 << 20];
                loop {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    match r.read(&mut buf).await.unwrap() {
                        0 => return got,
                        n => got += n,
                    }
                }
            });
            let big = vec![1u8; 16 << 20];
            let t = Instant::now();
            Deadline::new(&mut s, stall).write_all(&big).await.unwrap();
            drop(s);
            assert_eq!(reader.await.unwrap(), big.len());
            assert!(t.elapsed() > stall * 3, "took {:?}", t.elapsed());
        });
    }

    #[test]
    fn a_closed_peer_ends_the_connection() {
        rt().block_on(async {
            let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let h = Health::new(Duration::from_millis(200));
            let s = dial(l.local_addr().unwrap(), &h).await.unwrap();
            let (peer, _) = l.accept().await.unwrap();
            let watch = tokio::time::timeout(Duration::from_millis(100), ended(&s)).await;
            assert!(watch.is_err(), "a live connection must not end");
            drop(peer);
            tokio::time::timeout(Duration::from_secs(2), ended(&s))
                .await
                .expect("the end of the connection is seen");
        });
    }

    #[test]
    fn the_barrier_waits_for_a_late_peer_and_names_a_missing_one() {
        rt().block_on(async {
            // Reserve two ports, free them: nobody listens there yet.
            let a = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            let b = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            let (addr_a, addr_b) = (a.local_addr().unwrap(), b.local_addr().unwrap());
            drop((a, b));
            let peers: BTreeMap<NodeId, SocketAddr> = [
                (NodeId::Coordinator, "127.0.0.1:1".parse().unwrap()),
                (NodeId::Server(0), addr_a),
                (NodeId::Server(1), addr_b),
            ]
            .into();
            let h = Health::new(Duration::from_millis(200));
            // server-0 starts listening 300 ms late; server-1 never does.
            let late = tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(300)).await;
                let l = tokio::net::TcpListener::bind(addr_a).await.unwrap();
                tokio::time::sleep(Duration::from_secs(3)).await;
                drop(l);
            });
            let err = await_peers(NodeId::Coordinator, &peers, Duration::from_secs(1), &h)
                .await
                .unwrap_err();
            assert_eq!(err.len(), 1, "{err:?}");
            assert_eq!((err[0].0, err[0].1), (NodeId::Server(1), addr_b));
            assert!(err[0].2.contains("refused"), "{err:?}");
            // Without the missing peer, it passes once server-0 listens.
            let mut two = peers.clone();
            two.remove(&NodeId::Server(1));
            let waited = await_peers(NodeId::Coordinator, &two, Duration::from_secs(2), &h)
                .await
                .unwrap();
            assert!(waited < Duration::from_millis(200), "{waited:?}");
            late.abort();
        });
    }
}
