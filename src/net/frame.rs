//! The wire format of the TCP host: length-prefixed frames.
//!
//! ```text
//! ┌─────────────┬─────────┬─────┬───────────────────────────────────────────┐
//! │ len: u32 LE │ version │ tag │ body                                      │
//! └─────────────┴─────────┴─────┴───────────────────────────────────────────┘
//!   len counts every byte after itself; version 3
//!   tag 0: body = postcard of `Frame`
//!   tag 1: body = head_len: u32 LE, head: postcard of `Frame` with its float
//!          vector emptied, count: u64 LE, count f32 LE values
//! ```
//!
//! Tag 1 carries the model values of big pushes, pulls, chain pushes and
//! snapshots straight from and into the message's own vector (no
//! per-float encoding, no intermediate buffer): the bulk of the bytes goes
//! at memory speed. The writer sends them from the vector the message
//! shares with the replica ([`Floats`]: a pull answer is not a copy); the
//! reader reads them into a fresh vector without zeroing it first.
//! Everything else is plain serde in postcard 1 (varint integers and
//! lengths, floats as 4 little-endian bytes, enum variants by index).
//!
//! Version 1 was the same layout with bincode 1.3 bodies (bincode is
//! unmaintained, RUSTSEC-2025-0141); version 2 had postcard bodies whose
//! messages carried no Lamport stamp. A frame of an older build is refused
//! by its version byte, with an error that says so.
//!
//! The first frame on a connection is [`Frame::Hello`], naming the sender;
//! every later one is a [`Frame::Msg`], stamped with the sender's logical
//! clock ([`super::events`]: the receiver's clock moves past it, so the
//! events a message causes are ordered after the events that preceded its
//! sending, whatever the machines' wall clocks say). A frame longer than the reader's
//! limit, cut short, with another version or tag, or a body that does not
//! decode is a [`FrameError`]: the reader closes that connection (and only
//! that one).
//!
//! May import: `crate::core`, `crate::run`, `crate::scenario`,
//! `crate::outcome`, `super` (net), tokio. Never: `crate::sim` (hosts never
//! import each other), madsim.

use crate::core::codec::Payload;
use crate::core::floats::Floats;
use crate::core::msg::{Entry, Op, Push};
use crate::core::{Message, NodeId};
use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use std::mem::MaybeUninit;
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};

/// The version byte this build writes and accepts.
pub const VERSION: u8 = 3;

/// The version of frames whose messages carry no Lamport stamp (builds
/// before `pssim judge`): refused, and named as such in the error.
pub const VERSION_UNSTAMPED: u8 = 2;

/// The version of frames whose bodies are bincode 1.3 (builds before
/// postcard): refused, and named as such in the error.
pub const VERSION_BINCODE: u8 = 1;

/// Bytes before the body: length, version and tag.
pub const HEADER_BYTES: usize = 6;

/// Default largest frame a reader accepts (`len`): 256 MiB, room for a
/// push of 64 million floats.
pub const DEFAULT_MAX_FRAME_BYTES: u32 = 256 << 20;

/// Float vectors at least this long travel in bulk (tag 1).
const BULK_MIN_FLOATS: usize = 1024;

const TAG_PLAIN: u8 = 0;
const TAG_BULK: u8 = 1;

/// What a frame carries.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Frame {
    /// First frame of a connection: who is sending, in which life.
    Hello {
        /// The sender.
        from: NodeId,
        /// The sender's incarnation (0 in its first life).
        incarnation: u32,
    },
    /// A protocol message from the sender named by the hello.
    Msg {
        /// The sender's logical clock when it sent the message
        /// ([`super::events::EventSink::stamp_send`]).
        lamport: u64,
        /// The message.
        msg: Message,
    },
}

/// Why a frame could not be read.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// `len` is above the reader's limit, or too small for the header.
    #[error("frame of {len} bytes is outside 2..={max} bytes")]
    BadLength {
        /// The length prefix read.
        len: u32,
        /// The reader's limit.
        max: u32,
    },
    /// The version byte is not [`VERSION`].
    #[error("frame version {0} (this build speaks version {VERSION}{hint})", hint = version_hint(*.0))]
    BadVersion(u8),
    /// The tag byte is neither 0 (plain) nor 1 (bulk floats).
    #[error("frame tag {0} (expected 0 or 1)")]
    BadTag(u8),
    /// The connection ended inside a frame.
    #[error("connection closed inside a frame ({got} of {want} bytes)")]
    Truncated {
        /// Bytes of the frame received.
        got: usize,
        /// Bytes the frame announced (length prefix included).
        want: usize,
    },
    /// The body is not a valid frame.
    #[error("undecodable frame body: {0}")]
    Decode(String),
    /// The socket failed.
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
}

/// What a version byte other than ours most likely means.
fn version_hint(v: u8) -> &'static str {
    if v == VERSION_BINCODE {
        "; version 1 is the bincode format of older pssim builds: run the same build on every node"
    } else if v == VERSION_UNSTAMPED {
        "; version 2 is the format of older pssim builds, without Lamport stamps: run the same build on every node"
    } else {
        ""
    }
}

/// The raw float vector of a frame (a bulk frame's head leaves it empty):
/// dense payloads and snapshots. Compressed payloads are small and travel
/// in the postcard head.
fn floats_slot(frame: &mut Frame) -> Option<&mut Floats> {
    match frame {
        Frame::Msg {
            msg:
                Message::PushReq {
                    values: Payload::Dense(values),
                    ..
                }
                | Message::PullResp {
                    values: Payload::Dense(values),
                    ..
                }
                | Message::ChainPush {
                    entry:
                        Entry {
                            op:
                                Op::Push(Push {
                                    values: Payload::Dense(values),
                                    ..
                                }),
                            ..
                        },
                    ..
                },
            ..
        } => Some(values),
        Frame::Msg {
            msg: Message::Snapshot { state, .. },
            ..
        } => Some(&mut state.params),
        _ => None,
    }
}

/// The floats' wire form (little-endian): their own memory on a
/// little-endian machine, a converted copy elsewhere.
fn le_bytes(v: &[f32]) -> Cow<'_, [u8]> {
    if cfg!(target_endian = "little") {
        // SAFETY: f32 is 4 plain bytes with no padding; the slice covers
        // exactly the memory of `v`, which outlives the borrow.
        Cow::Borrowed(unsafe {
            std::slice::from_raw_parts(v.as_ptr().cast::<u8>(), std::mem::size_of_val(v))
        })
    } else {
        Cow::Owned(v.iter().flat_map(|x| x.to_le_bytes()).collect())
    }
}

/// Encodes the header and the postcard part of `frame` into `buf` (cleared
/// first); the floats to write after it (bulk), if any, are left taken
/// out of the frame and returned (a shared vector: no copy). Put them back
/// with [`restore`].
fn encode_head(frame: &mut Frame, buf: &mut Vec<u8>) -> Option<Floats> {
    buf.clear();
    let bulk = floats_slot(frame)
        .filter(|v| v.len() >= BULK_MIN_FLOATS)
        .map(std::mem::take);
    let tag = if bulk.is_some() { TAG_BULK } else { TAG_PLAIN };
    buf.extend_from_slice(&[0, 0, 0, 0, VERSION, tag]);
    if bulk.is_some() {
        buf.extend_from_slice(&[0; 4]);
    }
    // Serializing our own types into memory cannot fail (every length is
    // known, every string is formatted by `Display`).
    *buf = postcard::to_extend(&*frame, std::mem::take(buf)).expect("every Frame serializes");
    let mut len = buf.len() - 4;
    if let Some(v) = &bulk {
        let head_len = (buf.len() - HEADER_BYTES - 4) as u32;
        buf[HEADER_BYTES..HEADER_BYTES + 4].copy_from_slice(&head_len.to_le_bytes());
        buf.extend_from_slice(&(v.len() as u64).to_le_bytes());
        len += 8 + 4 * v.len();
    }
    let len = u32::try_from(len).expect("a frame fits in 4 GiB");
    buf[..4].copy_from_slice(&len.to_le_bytes());
    bulk
}

fn restore(frame: &mut Frame, bulk: Option<Floats>) {
    if let (Some(v), Some(slot)) = (bulk, floats_slot(frame)) {
        *slot = v;
    }
}

/// Writes `frame`; returns its size in bytes. `scratch` is reused between
/// calls. The frame is unchanged afterwards (its floats are lent out).
pub async fn write_frame<W: AsyncWrite + Unpin>(
    w: &mut W,
    frame: &mut Frame,
    scratch: &mut Vec<u8>,
) -> std::io::Result<usize> {
    let bulk = encode_head(frame, scratch);
    let mut size = scratch.len();
    let mut res = w.write_all(scratch).await;
    if let (Ok(()), Some(v)) = (&res, &bulk) {
        res = w.write_all(&le_bytes(v)).await;
        size += 4 * v.len();
    }
    restore(frame, bulk);
    res.map(|()| size)
}

/// The encoding of `frame`, whole.
pub fn encode(frame: &Frame) -> Vec<u8> {
    let mut f = frame.clone();
    let mut buf = Vec::new();
    if let Some(v) = encode_head(&mut f, &mut buf) {
        buf.extend_from_slice(&le_bytes(&v));
    }
    buf
}

fn decode_head(tag: u8, head: &[u8]) -> Result<Frame, FrameError> {
    let (mut frame, rest): (Frame, _) = postcard::take_from_bytes(head).map_err(|e| {
        FrameError::Decode(format!(
            "{} bytes of {} are not a frame: {e}",
            head.len(),
            if tag == TAG_BULK { "head" } else { "body" }
        ))
    })?;
    if !rest.is_empty() {
        return Err(FrameError::Decode(format!(
            "{} bytes after the frame's {} bytes",
            rest.len(),
            head.len() - rest.len()
        )));
    }
    if tag == TAG_BULK {
        match floats_slot(&mut frame) {
            None => {
                return Err(FrameError::Decode(
                    "a bulk frame must carry dense values (push, pull answer, chain push) or a snapshot"
                        .into(),
                ))
            }
            Some(v) if !v.is_empty() => {
                return Err(FrameError::Decode(format!(
                    "a bulk frame's head carries {} floats of its own (they follow the head)",
                    v.len()
                )))
            }
            Some(_) => {}
        }
    }
    Ok(frame)
}

fn check_len(len: u32, max: u32) -> Result<u32, FrameError> {
    if len < 2 || len > max {
        return Err(FrameError::BadLength { len, max });
    }
    Ok(len)
}

fn check_header(version: u8, tag: u8) -> Result<(), FrameError> {
    if version != VERSION {
        return Err(FrameError::BadVersion(version));
    }
    if tag != TAG_PLAIN && tag != TAG_BULK {
        return Err(FrameError::BadTag(tag));
    }
    Ok(())
}

/// Where the parts of a bulk frame's body lie: the head's length and the
/// float count, checked against the frame's length.
fn bulk_layout(body_len: usize, head_len: u32, count: u64) -> Result<usize, FrameError> {
    let want = 4u64 + u64::from(head_len) + 8 + count.saturating_mul(4);
    if want != body_len as u64 {
        return Err(FrameError::Decode(format!(
            "bulk frame of {body_len} body bytes announces {want}"
        )));
    }
    Ok(count as usize)
}

/// Decodes one whole frame from the front of `bytes`: the frame and the
/// bytes it used. For tests and tools; the host reads with [`read_frame`].
pub fn decode(bytes: &[u8], max_frame_bytes: u32) -> Result<(Frame, usize), FrameError> {
    let truncated = |want| FrameError::Truncated {
        got: bytes.len(),
        want,
    };
    let len_bytes: [u8; 4] = bytes.get(..4).ok_or(truncated(4))?.try_into().expect("4");
    let len = check_len(u32::from_le_bytes(len_bytes), max_frame_bytes)? as usize;
    let total = 4 + len;
    let frame = bytes.get(..total).ok_or(truncated(total))?;
    check_header(frame[4], frame[5])?;
    let body = &frame[HEADER_BYTES..];
    if frame[5] == TAG_PLAIN {
        return Ok((decode_head(TAG_PLAIN, body)?, total));
    }
    let short = || FrameError::Decode("bulk frame too short for its head".into());
    let head_len = u32::from_le_bytes(body.get(..4).ok_or_else(short)?.try_into().expect("4"));
    let head_end = 4 + head_len as usize;
    let count_bytes = body.get(head_end..head_end + 8).ok_or_else(short)?;
    let count = u64::from_le_bytes(count_bytes.try_into().expect("8"));
    bulk_layout(body.len(), head_len, count)?;
    let mut f = decode_head(TAG_BULK, &body[4..head_end])?;
    let v: Floats = body[head_end + 8..]
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes(b.try_into().expect("4")))
        .collect();
    restore(&mut f, Some(v));
    Ok((f, total))
}

/// Reads exactly `buf.len()` bytes; `got_before` bytes of the frame were
/// read already (for the error).
async fn fill<R: AsyncRead + Unpin>(
    r: &mut R,
    buf: &mut [u8],
    got_before: usize,
    want: usize,
) -> Result<(), FrameError> {
    let mut got = 0;
    while got < buf.len() {
        match r.read(&mut buf[got..]).await? {
            0 => {
                return Err(FrameError::Truncated {
                    got: got_before + got,
                    want,
                })
            }
            n => got += n,
        }
    }
    Ok(())
}

/// Reads `count` little-endian floats into a new vector, straight from the
/// socket: the vector's memory is not zeroed first (a 40 MB push would be
/// written twice). `got_before` bytes of the frame were read already.
async fn read_floats<R: AsyncRead + Unpin>(
    r: &mut R,
    count: usize,
    got_before: usize,
    want: usize,
) -> Result<Floats, FrameError> {
    let mut v = Arc::<[f32]>::new_uninit_slice(count);
    {
        let slots = Arc::get_mut(&mut v).expect("a new vector has one holder");
        // SAFETY: the slice covers exactly the memory of `slots` (4 bytes a
        // float); `MaybeUninit<u8>` has alignment 1 and, like
        // `MaybeUninit<f32>`, may hold any (or no) value.
        let bytes = unsafe {
            std::slice::from_raw_parts_mut(
                slots.as_mut_ptr().cast::<MaybeUninit<u8>>(),
                std::mem::size_of_val(slots),
            )
        };
        let mut rb = ReadBuf::uninit(bytes);
        while rb.remaining() > 0 {
            let before = rb.filled().len();
            std::future::poll_fn(|cx| std::pin::Pin::new(&mut *r).poll_read(cx, &mut rb)).await?;
            if rb.filled().len() == before {
                return Err(FrameError::Truncated {
                    got: got_before + before,
                    want,
                });
            }
        }
    }
    // SAFETY: the loop above filled every byte (`ReadBuf` counts only what
    // the reader wrote), and every bit pattern is a valid f32.
    let mut v = unsafe { v.assume_init() };
    if cfg!(target_endian = "big") {
        for x in Arc::get_mut(&mut v).expect("still one holder") {
            *x = f32::from_bits(x.to_bits().swap_bytes());
        }
    }
    Ok(Floats::from(v))
}

/// Reads one frame; `Ok(None)` when the peer closed the connection between
/// frames. `buf` holds the non-bulk part and is reused between calls; bulk
/// floats are read straight into the message's vector.
pub async fn read_frame<R: AsyncRead + Unpin>(
    r: &mut R,
    buf: &mut Vec<u8>,
    max_frame_bytes: u32,
) -> Result<Option<Frame>, FrameError> {
    let mut header = [0u8; HEADER_BYTES];
    let n = r.read(&mut header).await?;
    if n == 0 {
        return Ok(None);
    }
    let len = if n >= 4 {
        u32::from_le_bytes(header[..4].try_into().expect("4"))
    } else {
        // The length prefix arrived in pieces.
        fill(r, &mut header[n..4], n, 4).await?;
        u32::from_le_bytes(header[..4].try_into().expect("4"))
    };
    let len = check_len(len, max_frame_bytes)? as usize;
    let want = 4 + len;
    let have = n.max(4);
    fill(r, &mut header[have..], have, want).await?;
    check_header(header[4], header[5])?;
    let body_len = len - 2;
    if header[5] == TAG_PLAIN {
        buf.clear();
        buf.resize(body_len, 0);
        fill(r, buf, HEADER_BYTES, want).await?;
        return decode_head(TAG_PLAIN, buf).map(Some);
    }
    let mut head_len = [0u8; 4];
    if body_len < 12 {
        return Err(FrameError::Decode(
            "bulk frame too short for its head".into(),
        ));
    }
    fill(r, &mut head_len, HEADER_BYTES, want).await?;
    let head_len = u32::from_le_bytes(head_len);
    if u64::from(head_len) + 12 > body_len as u64 {
        return Err(FrameError::Decode(
            "bulk frame too short for its head".into(),
        ));
    }
    buf.clear();
    buf.resize(head_len as usize + 8, 0);
    fill(r, buf, HEADER_BYTES + 4, want).await?;
    let (head, count) = buf.split_at(head_len as usize);
    let count = bulk_layout(
        body_len,
        head_len,
        u64::from_le_bytes(count.try_into().expect("8")),
    )?;
    let mut f = decode_head(TAG_BULK, head)?;
    let v = read_floats(r, count, want - 4 * count, want).await?;
    restore(&mut f, Some(v));
    Ok(Some(f))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::{Clock, Epoch, Keys, Seq};

    fn push(n: usize) -> Frame {
        Frame::Msg {
            lamport: 1_700_000_000_123 + n as u64,
            msg: Message::PushReq {
                epoch: Epoch(3),
                range: 1,
                worker: 2,
                seq: Seq {
                    incarnation: 1,
                    n: 7,
                },
                clock: Clock(5),
                keys: Keys::All,
                values: Payload::Dense((0..n).map(|i| i as f32 * 0.5).collect()),
            },
        }
    }

    #[test]
    fn frames_round_trip() {
        for f in [
            Frame::Hello {
                from: NodeId::Server(3),
                incarnation: 2,
            },
            push(0),
            push(1000),
            push(5000),
        ] {
            let bytes = encode(&f);
            let (back, used) = decode(&bytes, DEFAULT_MAX_FRAME_BYTES).unwrap();
            assert_eq!((back, used), (f, bytes.len()));
        }
    }

    #[test]
    fn dense_payload_costs_four_bytes_a_float() {
        assert_eq!(encode(&push(3000)).len() - encode(&push(2000)).len(), 4000);
        // Plain frames: the count is a varint (2 bytes from 128 to 16383).
        assert_eq!(encode(&push(1000)).len() - encode(&push(500)).len(), 2000);
        assert_eq!(
            encode(&push(128)).len() - encode(&push(0)).len(),
            4 * 128 + 1
        );
    }

    #[test]
    fn frames_written_are_read_back() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(async {
            let (mut a, mut b) = tokio::io::duplex(1 << 16);
            let frames = vec![push(3), push(5000), push(0)];
            let sent = frames.clone();
            let writer = tokio::spawn(async move {
                let mut scratch = Vec::new();
                for mut f in sent {
                    let before = f.clone();
                    let n = write_frame(&mut a, &mut f, &mut scratch).await.unwrap();
                    assert_eq!(f, before, "the frame is lent, not consumed");
                    assert_eq!(n, encode(&f).len());
                }
            });
            let mut buf = Vec::new();
            for f in &frames {
                let got = read_frame(&mut b, &mut buf, 1 << 20).await.unwrap();
                assert_eq!(got.as_ref(), Some(f));
            }
            writer.await.unwrap();
            assert!(read_frame(&mut b, &mut buf, 1 << 20)
                .await
                .unwrap()
                .is_none());
        });
    }

    #[test]
    fn floats_serialize_as_a_vec() {
        let v: Vec<f32> = (0..300).map(|i| i as f32 - 0.25).collect();
        let f = Floats::from(v.clone());
        assert_eq!(
            postcard::to_allocvec(&f).unwrap(),
            postcard::to_allocvec(&v).unwrap()
        );
        let back: Floats = postcard::from_bytes(&postcard::to_allocvec(&v).unwrap()).unwrap();
        assert_eq!(back, f);
    }

    #[test]
    fn a_bulk_frame_is_written_from_the_shared_vector() {
        let mut f = push(5000);
        let before = floats_slot(&mut f).unwrap().clone();
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let mut out = Vec::new();
        let n = rt
            .block_on(write_frame(&mut out, &mut f, &mut Vec::new()))
            .unwrap();
        assert_eq!((n, &out), (out.len(), &encode(&f)));
        let after = floats_slot(&mut f).unwrap();
        assert!(Floats::ptr_eq(&before, after), "lent, not copied");
    }

    /// `Frame::Hello { from: worker-0, incarnation: 0 }` as builds before
    /// postcard wrote it: version 1, bincode 1.3 (a u32 variant index, the
    /// node name as a u64 length and its bytes, a u32).
    const BINCODE_HELLO: [u8; 30] = [
        26, 0, 0, 0, 1, 0, // len, version 1, tag 0
        0, 0, 0, 0, // Frame::Hello
        8, 0, 0, 0, 0, 0, 0, 0, b'w', b'o', b'r', b'k', b'e', b'r', b'-', b'0', // from
        0, 0, 0, 0, // incarnation
    ];

    #[test]
    fn an_old_bincode_frame_is_refused_by_its_version() {
        let err = decode(&BINCODE_HELLO, 1 << 20).unwrap_err();
        assert!(matches!(err, FrameError::BadVersion(VERSION_BINCODE)));
        let text = err.to_string();
        assert!(
            text.contains("version 1") && text.contains("bincode") && text.contains("version 3"),
            "{text}"
        );
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let read = rt.block_on(read_frame(
            &mut &BINCODE_HELLO[..],
            &mut Vec::new(),
            1 << 20,
        ));
        assert!(matches!(read, Err(FrameError::BadVersion(1))));
        // A bincode body under this version's byte is not a frame either.
        let mut relabelled = BINCODE_HELLO;
        relabelled[4] = VERSION;
        let err = decode(&relabelled, 1 << 20).unwrap_err();
        assert!(matches!(err, FrameError::Decode(_)), "{err}");
    }

    #[test]
    fn an_unstamped_version_2_frame_is_refused_by_its_version() {
        // A version-2 hello: the same postcard body, the old version byte.
        let mut old = encode(&Frame::Hello {
            from: NodeId::Worker(0),
            incarnation: 0,
        });
        old[4] = VERSION_UNSTAMPED;
        let err = decode(&old, 1 << 20).unwrap_err();
        assert!(matches!(err, FrameError::BadVersion(VERSION_UNSTAMPED)));
        let text = err.to_string();
        assert!(
            text.contains("version 2") && text.contains("Lamport") && text.contains("version 3"),
            "{text}"
        );
    }

    #[test]
    fn the_lamport_stamp_round_trips_and_costs_a_varint() {
        let stamped = |lamport| {
            encode(&Frame::Msg {
                lamport,
                msg: Message::PushReq {
                    epoch: Epoch(1),
                    range: 0,
                    worker: 0,
                    seq: Seq {
                        incarnation: 0,
                        n: 0,
                    },
                    clock: Clock(0),
                    keys: Keys::All,
                    values: Payload::Dense(Floats::from(vec![1.0f32])),
                },
            })
        };
        for l in [0, 1, 127, 128, u64::from(u32::MAX), u64::MAX] {
            let bytes = stamped(l);
            let (back, _) = decode(&bytes, 1 << 20).unwrap();
            assert!(matches!(back, Frame::Msg { lamport, .. } if lamport == l));
        }
        // An hour of microseconds is 5 bytes of varint.
        assert_eq!(stamped(3_600_000_000).len() - stamped(0).len(), 4);
    }

    #[test]
    fn garbage_bodies_are_refused_with_what_is_wrong() {
        let frame = |tag: u8, body: &[u8]| {
            let mut b = (2 + body.len() as u32).to_le_bytes().to_vec();
            b.extend_from_slice(&[VERSION, tag]);
            b.extend_from_slice(body);
            b
        };
        let msg = |bytes: &[u8]| match decode(bytes, 1 << 20) {
            Err(FrameError::Decode(m)) => m,
            other => panic!("{other:?}"),
        };
        // A variant index no `Frame` has.
        assert!(msg(&frame(TAG_PLAIN, &[7, 0, 0])).contains("not a frame"));
        // A frame and a byte more.
        let hello = encode(&Frame::Hello {
            from: NodeId::Worker(1),
            incarnation: 0,
        });
        let mut body = hello[HEADER_BYTES..].to_vec();
        body.push(0);
        assert!(msg(&frame(TAG_PLAIN, &body)).contains("1 bytes after the frame's"));
        // A bulk frame whose head carries floats of its own.
        let head = postcard::to_allocvec(&push(3)).unwrap();
        let mut body = (head.len() as u32).to_le_bytes().to_vec();
        body.extend_from_slice(&head);
        body.extend_from_slice(&0u64.to_le_bytes());
        assert!(msg(&frame(TAG_BULK, &body)).contains("3 floats of its own"));
        // A bulk frame of something that has no float vector.
        let head = postcard::to_allocvec(&Frame::Hello {
            from: NodeId::Coordinator,
            incarnation: 0,
        })
        .unwrap();
        let mut body = (head.len() as u32).to_le_bytes().to_vec();
        body.extend_from_slice(&head);
        body.extend_from_slice(&0u64.to_le_bytes());
        assert!(msg(&frame(TAG_BULK, &body)).contains("must carry dense values"));
    }

    #[test]
    fn bad_frames_are_typed_errors() {
        let good = encode(&push(10));
        assert!(matches!(
            decode(&good[..good.len() - 1], 1 << 20),
            Err(FrameError::Truncated { .. })
        ));
        assert!(matches!(
            decode(&good, 8),
            Err(FrameError::BadLength { max: 8, .. })
        ));
        let mut v2 = good.clone();
        v2[4] = 9;
        assert!(matches!(
            decode(&v2, 1 << 20),
            Err(FrameError::BadVersion(9))
        ));
        let mut tag = good.clone();
        tag[5] = 7;
        assert!(matches!(decode(&tag, 1 << 20), Err(FrameError::BadTag(7))));
        let mut junk = good.clone();
        junk[6] = 0xff;
        assert!(matches!(decode(&junk, 1 << 20), Err(FrameError::Decode(_))));
    }
}
