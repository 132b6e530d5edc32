//! Real mode (src/net/): a live node against hostile bytes on its socket,
//! the frame codec against arbitrary input, and the push+pull benchmark.

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use pssim::core::codec::Payload;
use pssim::core::{Clock, Epoch, Keys, Message, NodeId, ProtocolConfig};
use pssim::net::events::EventSink;
use pssim::net::frame::{self, Frame, FrameError};
use pssim::net::host::{self, NodeOptions};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A message frame, stamped as a node would (any stamp is accepted).
fn stamped(msg: Message) -> Frame {
    Frame::Msg { lamport: 1, msg }
}

const MAX_FRAME: u32 = 1 << 20;
const DIM: u32 = 64;

fn config() -> Arc<ProtocolConfig> {
    pssim::net::bench::single_server_config(DIM)
}

/// What a hostile client writes.
#[derive(Clone, Debug)]
enum Hostile {
    /// Arbitrary bytes, then the write half is closed.
    Random(Vec<u8>),
    /// A valid hello and a valid push cut short, then closed.
    Truncated(usize),
    /// A length prefix above the node's limit.
    Oversize(u32),
    /// A frame with another version byte.
    BadVersion(u8),
    /// A frame with an unknown tag byte.
    BadTag(u8),
    /// A hello, then a frame whose body is garbage.
    Garbage(Vec<u8>),
    /// A message before any hello.
    NoHello,
    /// A hello as builds before postcard wrote it (version 1, bincode).
    OldFormat,
}

impl Hostile {
    /// The bytes, and whether the node must close the connection on its
    /// own (without seeing the end of the stream).
    fn bytes(&self) -> (Vec<u8>, bool) {
        let hello = frame::encode(&Frame::Hello {
            from: NodeId::Worker(0),
            incarnation: 0,
        });
        let pull = frame::encode(&stamped(pull(0)));
        match self {
            Hostile::Random(b) => (b.clone(), false),
            Hostile::Truncated(k) => {
                let mut b = hello;
                let push = frame::encode(&stamped(Message::PushReq {
                    epoch: Epoch(1),
                    range: 0,
                    worker: 0,
                    seq: pssim::core::Seq::default(),
                    clock: Clock(0),
                    keys: Keys::All,
                    values: Payload::Dense(vec![1.0; 2000].into()),
                }));
                b.extend_from_slice(&push[..k % push.len()]);
                (b, false)
            }
            Hostile::Oversize(len) => (len.to_le_bytes().to_vec(), true),
            Hostile::BadVersion(v) => {
                let mut b = hello;
                b[4] = *v;
                (b, true)
            }
            Hostile::BadTag(t) => {
                let mut b = hello;
                b[5] = *t;
                (b, true)
            }
            Hostile::Garbage(g) => {
                let mut b = hello;
                b.extend_from_slice(&(2 + g.len() as u32).to_le_bytes());
                b.extend_from_slice(&[frame::VERSION, 0]);
                b.extend_from_slice(g);
                (b, false)
            }
            Hostile::NoHello => (pull, true),
            Hostile::OldFormat => {
                // Frame::Hello { from: worker-0, incarnation: 0 }, bincode 1.3.
                let mut b = vec![26, 0, 0, 0, frame::VERSION_BINCODE, 0, 0, 0, 0, 0];
                b.extend_from_slice(&8u64.to_le_bytes());
                b.extend_from_slice(b"worker-0");
                b.extend_from_slice(&0u32.to_le_bytes());
                (b, true)
            }
        }
    }
}

fn hostile() -> impl Strategy<Value = Hostile> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..256).prop_map(Hostile::Random),
        (0usize..9000).prop_map(Hostile::Truncated),
        (MAX_FRAME + 1..=u32::MAX).prop_map(Hostile::Oversize),
        (0u8..=255)
            .prop_filter("not the version", |v| *v != frame::VERSION)
            .prop_map(Hostile::BadVersion),
        (2u8..=255).prop_map(Hostile::BadTag),
        prop::collection::vec(any::<u8>(), 1..64).prop_map(Hostile::Garbage),
        Just(Hostile::NoHello),
        Just(Hostile::OldFormat),
    ]
}

fn pull(clock: u32) -> Message {
    Message::PullReq {
        epoch: Epoch(1),
        range: 0,
        worker: 0,
        incarnation: 0,
        clock: Clock(clock),
        keys: Keys::All,
        schedule: 0,
        base: 0,
    }
}

/// Waits for the node to close a connection.
async fn closed_by_peer(s: &mut TcpStream) -> bool {
    let mut b = [0u8; 64];
    let deadline = Instant::now() + Duration::from_secs(3);
    while Instant::now() < deadline {
        match tokio::time::timeout(Duration::from_secs(3), s.read(&mut b)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => {}
            Err(_) => return false,
        }
    }
    false
}

#[test]
fn a_node_keeps_serving_well_formed_clients_whatever_others_send() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (addr, mut good_tx, mut good_rx) = rt.block_on(async {
        let server_l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let worker_l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let coord_l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = server_l.local_addr().unwrap();
        let peers: BTreeMap<NodeId, std::net::SocketAddr> = [
            (NodeId::Server(0), addr),
            (NodeId::Worker(0), worker_l.local_addr().unwrap()),
            (NodeId::Coordinator, coord_l.local_addr().unwrap()),
        ]
        .into();
        let node = host::spawn_node(
            NodeOptions {
                id: NodeId::Server(0),
                incarnation: 0,
                cfg: config(),
                job: None,
                seed: 0,
                peers: Arc::new(peers),
                origin: Instant::now(),
                step_time: Duration::ZERO,
                max_frame_bytes: MAX_FRAME,
                durable: Arc::default(),
                store: None,
                events: EventSink::discard(),
                net_model: None,
            },
            server_l,
        );
        std::mem::forget(node); // lives as long as the runtime
        std::mem::forget(coord_l);
        let mut tx = TcpStream::connect(addr).await.unwrap();
        tx.write_all(&frame::encode(&Frame::Hello {
            from: NodeId::Worker(0),
            incarnation: 0,
        }))
        .await
        .unwrap();
        tx.write_all(&frame::encode(&stamped(pull(0))))
            .await
            .unwrap();
        // The node's answers come on its own connection to the worker.
        let (mut rx, _) = worker_l.accept().await.unwrap();
        let mut buf = Vec::new();
        let hello = frame::read_frame(&mut rx, &mut buf, MAX_FRAME)
            .await
            .unwrap();
        assert!(matches!(
            hello,
            Some(Frame::Hello {
                from: NodeId::Server(0),
                ..
            })
        ));
        (addr, tx, rx)
    });
    let mut clock = 0u32;
    let round_trip = std::cell::RefCell::new(|rt: &tokio::runtime::Runtime| {
        rt.block_on(async {
            let mut buf = Vec::new();
            // Skip to the answer of the last pull sent, then ask again.
            loop {
                let f = tokio::time::timeout(
                    Duration::from_secs(3),
                    frame::read_frame(&mut good_rx, &mut buf, MAX_FRAME),
                )
                .await
                .expect("the node stopped answering a well-formed client")
                .unwrap();
                match f {
                    Some(Frame::Msg {
                        msg:
                            Message::PullResp {
                                clock: c, values, ..
                            },
                        ..
                    }) if c.0 == clock => {
                        assert_eq!(values.len(), DIM as usize);
                        break;
                    }
                    Some(_) => {}
                    None => panic!("the node closed its connection to the good client"),
                }
            }
            clock += 1;
            good_tx
                .write_all(&frame::encode(&stamped(pull(clock))))
                .await
                .unwrap();
        })
    });
    let round_trip = |rt: &tokio::runtime::Runtime| (round_trip.borrow_mut())(rt);
    round_trip(&rt);
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(64);
    let mut runner = TestRunner::new(Config::with_cases(cases));
    runner
        .run(&hostile(), |h| {
            let (bytes, closes_itself) = h.bytes();
            let closed = rt.block_on(async {
                let mut s = TcpStream::connect(addr).await.unwrap();
                // The node may close first: a write error is fine.
                let _ = s.write_all(&bytes).await;
                if !closes_itself {
                    let _ = s.shutdown().await;
                }
                closed_by_peer(&mut s).await
            });
            prop_assert!(closed, "{h:?}: the node kept the connection open");
            round_trip(&rt);
            Ok(())
        })
        .unwrap();
    // Many hostile connections at once, then the good client again.
    rt.block_on(async {
        let mut conns = Vec::new();
        for i in 0..50u32 {
            let mut s = TcpStream::connect(addr).await.unwrap();
            let _ = s.write_all(&(MAX_FRAME + i + 1).to_le_bytes()).await;
            conns.push(s);
        }
        for mut s in conns {
            assert!(closed_by_peer(&mut s).await);
        }
    });
    round_trip(&rt);
}

proptest! {
    #[test]
    fn the_codec_rejects_arbitrary_bytes_with_a_typed_error(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        // Never panics; whatever it accepts re-encodes to the same bytes.
        if let Ok((f, used)) = frame::decode(&bytes, MAX_FRAME) {
            prop_assert_eq!(&frame::encode(&f)[..], &bytes[..used]);
        }
    }

    #[test]
    fn every_cut_of_a_frame_is_truncated(n in 0usize..3000, cut in any::<prop::sample::Index>()) {
        let f = stamped(Message::PullResp {
            range: 0,
            clock: Clock(3),
            values: Payload::Dense((0..n).map(|i| i as f32).collect()),
            schedule: Vec::new(),
            held: 0,
            base: 0,
        });
        let bytes = frame::encode(&f);
        let k = cut.index(bytes.len());
        let cut_short = matches!(frame::decode(&bytes[..k], MAX_FRAME), Err(FrameError::Truncated { .. }));
        prop_assert!(cut_short, "a frame cut at {} of {} bytes", k, bytes.len());
        prop_assert_eq!(frame::decode(&bytes, MAX_FRAME).unwrap(), (f, bytes.len()));
    }
}

/// ps-lite's `test_kv_app_benchmark` workload: the numbers `pssim bench`
/// reports. Only sanity is asserted here (the machine may be busy).
#[test]
fn push_pull_of_ten_million_floats_through_the_host() {
    let pp = pssim::net::bench::push_pull(10_000_000, 3).unwrap();
    eprintln!(
        "host {:.3} GB/s, raw TCP {:.3} GB/s, ratio {:.2}",
        pp.host_bps / 1e9,
        pp.raw_bps / 1e9,
        pp.host_bps / pp.raw_bps
    );
    assert!(pp.host_bps > 0.0 && pp.raw_bps > 0.0);
}
