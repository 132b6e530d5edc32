//! The real-mode benchmark of `pssim bench`: ps-lite's
//! `test_kv_app_benchmark` workload — a worker pushes `n` floats to a
//! server and pulls them back — through the TCP host and its framing, on
//! loopback, against raw TCP moving the same bytes in the same pattern.
//!
//! May import: `crate::core`, `crate::run`, `crate::scenario`,
//! `crate::outcome`, `super` (net), tokio. Never: `crate::sim` (hosts never
//! import each other), madsim.

use super::events::EventSink;
use super::frame::{self, Frame};
use super::host::{self, NodeOptions};
use crate::core::codec::Payload;
use crate::core::floats::Floats;
use crate::core::{Clock, Epoch, Keys, Message, NodeId, ProtocolConfig, Seq};
use std::collections::BTreeMap;
use std::sync::Arc;
// Real wall time: this measures real sockets (no simulation involved).
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Throughputs measured, in bytes per second of payload (pushed plus
/// pulled), each from the median round (the machine may be shared: the
/// median is robust to a round slowed by something else).
#[derive(Clone, Copy, Debug)]
pub struct PushPull {
    /// Through the TCP host: a `core::Server` behind `net::host`, a client
    /// encoding and decoding frames as a worker does.
    pub host_bps: f64,
    /// Raw TCP: the same bytes written and read back, no framing.
    pub raw_bps: f64,
}

/// One server holding one range of `n` keys for one ASP worker, with
/// timeouts and heartbeats too long to matter: a server to drive by hand.
pub fn single_server_config(n: u32) -> Arc<ProtocolConfig> {
    Arc::new(ProtocolConfig::single_server(n))
}

/// Measures `rounds` push+pull rounds of `n` floats each way (after one
/// warm-up round), both ways; host and raw rounds alternate so that both
/// see the same machine.
pub fn push_pull(n: u32, rounds: u32) -> Result<PushPull, String> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    rt.block_on(async move {
        let mut host = Vec::new();
        let mut raw = Vec::new();
        for _ in 0..rounds {
            host.push(host_rounds(n, 1).await.map_err(|e| e.to_string())?);
            raw.push(
                raw_rounds(n as usize * 4, 1)
                    .await
                    .map_err(|e| e.to_string())?,
            );
        }
        let bytes = 2.0 * 4.0 * f64::from(n);
        Ok(PushPull {
            host_bps: bytes / median(host).as_secs_f64(),
            raw_bps: bytes / median(raw).as_secs_f64(),
        })
    })
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

async fn host_rounds(n: u32, rounds: u32) -> std::io::Result<Duration> {
    let server_l = TcpListener::bind("127.0.0.1:0").await?;
    let worker_l = TcpListener::bind("127.0.0.1:0").await?;
    // The server heartbeats its coordinator: give it a listener that is
    // never read (heartbeats are hourly here anyway).
    let coord_l = TcpListener::bind("127.0.0.1:0").await?;
    let peers: BTreeMap<NodeId, std::net::SocketAddr> = [
        (NodeId::Server(0), server_l.local_addr()?),
        (NodeId::Worker(0), worker_l.local_addr()?),
        (NodeId::Coordinator, coord_l.local_addr()?),
    ]
    .into();
    let server_addr = peers[&NodeId::Server(0)];
    let node = host::spawn_node(
        NodeOptions {
            id: NodeId::Server(0),
            incarnation: 0,
            cfg: single_server_config(n),
            job: None,
            seed: 0,
            peers: Arc::new(peers),
            origin: Instant::now(),
            step_time: Duration::ZERO,
            max_frame_bytes: frame::DEFAULT_MAX_FRAME_BYTES,
            durable: Arc::default(),
            store: None,
            events: EventSink::discard(),
            net_model: None,
        },
        server_l,
    );
    let mut to_server = TcpStream::connect(server_addr).await?;
    to_server.set_nodelay(true)?;
    to_server
        .write_all(&frame::encode(&Frame::Hello {
            from: NodeId::Worker(0),
            incarnation: 0,
        }))
        .await?;
    // The server connects back to the worker's address when it first
    // answers (its hello comes first on that connection).
    let mut accept = Some(tokio::spawn(async move {
        let (mut s, _) = worker_l.accept().await?;
        let mut buf = Vec::new();
        frame::read_frame(&mut s, &mut buf, u32::MAX)
            .await
            .map_err(std::io::Error::other)?;
        Ok::<_, std::io::Error>(s)
    }));
    let mut from_server: Option<TcpStream> = None;
    let mut rbuf = Vec::new();
    let grad: Floats = (0..n).map(|i| (i % 7) as f32 * 1e-3).collect();
    let mut wbuf = Vec::new();
    let mut start = Instant::now();
    for round in 0..=rounds {
        if round == 1 {
            start = Instant::now();
        }
        let clock = Clock(round);
        let mut push = Frame::Msg {
            lamport: u64::from(2 * round),
            msg: Message::PushReq {
                epoch: Epoch(1),
                range: 0,
                worker: 0,
                seq: Seq {
                    incarnation: 0,
                    n: u64::from(round),
                },
                clock,
                keys: Keys::All,
                // Shared, as a worker's push shares nothing it must copy.
                values: Payload::Dense(grad.clone()),
            },
        };
        frame::write_frame(&mut to_server, &mut push, &mut wbuf).await?;
        if let Some(a) = accept.take() {
            from_server = Some(a.await.map_err(std::io::Error::other)??);
        }
        let from_server = from_server.as_mut().expect("connected above");
        expect(from_server, &mut rbuf, "push_ack").await?;
        let mut pull = Frame::Msg {
            lamport: u64::from(2 * round + 1),
            msg: Message::PullReq {
                epoch: Epoch(1),
                range: 0,
                worker: 0,
                incarnation: 0,
                clock: Clock(round + 1),
                keys: Keys::All,
                schedule: 0,
                base: 0,
            },
        };
        frame::write_frame(&mut to_server, &mut pull, &mut wbuf).await?;
        let values = expect(from_server, &mut rbuf, "pull_resp").await?;
        assert_eq!(values, n as usize, "a pull answers every key");
    }
    let took = start.elapsed();
    node.task.abort();
    Ok(took)
}

/// Reads frames until one of `kind` (the server also sends other
/// messages); returns the number of values it carries.
async fn expect(s: &mut TcpStream, buf: &mut Vec<u8>, kind: &str) -> std::io::Result<usize> {
    loop {
        match frame::read_frame(s, buf, u32::MAX).await {
            Ok(Some(Frame::Msg { msg: m, .. })) if m.kind() == kind => {
                return Ok(match m {
                    Message::PullResp { values, .. } => values.len(),
                    _ => 0,
                })
            }
            Ok(Some(_)) => {}
            Ok(None) => return Err(std::io::ErrorKind::UnexpectedEof.into()),
            Err(e) => return Err(std::io::Error::other(e)),
        }
    }
}

/// Raw TCP: per round, `bytes` from client to server, then `bytes` back.
async fn raw_rounds(bytes: usize, rounds: u32) -> std::io::Result<Duration> {
    let l = TcpListener::bind("127.0.0.1:0").await?;
    let addr = l.local_addr()?;
    let echo = tokio::spawn(async move {
        let (mut s, _) = l.accept().await?;
        s.set_nodelay(true)?;
        let mut buf = vec![0u8; bytes];
        for _ in 0..=rounds {
            s.read_exact(&mut buf).await?;
            s.write_all(&buf).await?;
        }
        Ok::<_, std::io::Error>(())
    });
    let mut c = TcpStream::connect(addr).await?;
    c.set_nodelay(true)?;
    let out = vec![1u8; bytes];
    let mut back = vec![0u8; bytes];
    let mut start = Instant::now();
    for round in 0..=rounds {
        if round == 1 {
            start = Instant::now();
        }
        c.write_all(&out).await?;
        c.read_exact(&mut back).await?;
    }
    let took = start.elapsed();
    echo.await.map_err(std::io::Error::other)??;
    Ok(took)
}
