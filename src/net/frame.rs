//! The wire format of the TCP host: length-prefixed frames.
//!
//! ```text
//! ┌──────────────┬─────────┬──────────────────────────────┐
//! │ len: u32 LE  │ version │ body: bincode of `Frame`     │
//! └──────────────┴─────────┴──────────────────────────────┘
//!   len counts the version byte and the body
//! ```
//!
//! The first frame on a connection is [`Frame::Hello`], naming the sender;
//! every later one is a [`Frame::Msg`]. A frame longer than the reader's
//! limit, cut short, with another version or a body that does not decode
//! is a [`FrameError`]: the reader closes that connection (and only that
//! one).

use crate::core::{Message, NodeId};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt};

/// The version byte this build writes and accepts.
pub const VERSION: u8 = 1;

/// Bytes before the body: the length and the version byte.
pub const HEADER_BYTES: usize = 5;

/// Default largest frame a reader accepts (`len`): 256 MiB, room for a
/// push of 64 million floats.
pub const DEFAULT_MAX_FRAME_BYTES: u32 = 256 << 20;

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
    Msg(Message),
}

/// Why a frame could not be read.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// `len` is above the reader's limit (or too small to hold a version).
    #[error("frame of {len} bytes is outside 1..={max} bytes")]
    BadLength {
        /// The length prefix read.
        len: u32,
        /// The reader's limit.
        max: u32,
    },
    /// The version byte is not [`VERSION`].
    #[error("frame version {0} (this build speaks version {VERSION})")]
    BadVersion(u8),
    /// The connection ended inside a frame.
    #[error("connection closed inside a frame ({got} of {want} bytes)")]
    Truncated {
        /// Bytes of the frame received.
        got: usize,
        /// Bytes the frame announced (header included).
        want: usize,
    },
    /// The body is not a valid `Frame`.
    #[error("undecodable frame body: {0}")]
    Decode(String),
    /// The socket failed.
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
}

/// Appends the encoding of `frame` to `buf` (header included) and returns
/// the frame's size in bytes.
pub fn encode_into(frame: &Frame, buf: &mut Vec<u8>) -> usize {
    let start = buf.len();
    buf.extend_from_slice(&[0, 0, 0, 0, VERSION]);
    bincode::serialize_into(&mut *buf, frame).expect("every Frame serializes");
    let len = (buf.len() - start - 4) as u32;
    buf[start..start + 4].copy_from_slice(&len.to_le_bytes());
    buf.len() - start
}

/// The encoding of `frame`.
pub fn encode(frame: &Frame) -> Vec<u8> {
    let mut buf = Vec::new();
    encode_into(frame, &mut buf);
    buf
}

/// Decodes the part of a frame after the length prefix (version and body).
pub fn decode_body(body: &[u8]) -> Result<Frame, FrameError> {
    match body.first() {
        Some(&VERSION) => {
            bincode::deserialize(&body[1..]).map_err(|e| FrameError::Decode(e.to_string()))
        }
        Some(&v) => Err(FrameError::BadVersion(v)),
        None => Err(FrameError::BadLength { len: 0, max: 0 }),
    }
}

/// Decodes one whole frame from the front of `bytes`: the frame and the
/// bytes it used. For tests and tools; the host reads with [`read_frame`].
pub fn decode(bytes: &[u8], max_frame_bytes: u32) -> Result<(Frame, usize), FrameError> {
    let want_header = |got| FrameError::Truncated { got, want: 4 };
    let len_bytes: [u8; 4] = bytes
        .get(..4)
        .ok_or_else(|| want_header(bytes.len()))?
        .try_into()
        .expect("4 bytes");
    let len = check_len(u32::from_le_bytes(len_bytes), max_frame_bytes)?;
    let total = 4 + len as usize;
    let body = bytes.get(4..total).ok_or(FrameError::Truncated {
        got: bytes.len(),
        want: total,
    })?;
    Ok((decode_body(body)?, total))
}

fn check_len(len: u32, max: u32) -> Result<u32, FrameError> {
    if len == 0 || len > max {
        return Err(FrameError::BadLength { len, max });
    }
    Ok(len)
}

/// Reads one frame; `Ok(None)` when the peer closed the connection between
/// frames. `buf` is reused between calls (frames of tens of megabytes are
/// read without reallocating).
pub async fn read_frame<R: AsyncRead + Unpin>(
    r: &mut R,
    buf: &mut Vec<u8>,
    max_frame_bytes: u32,
) -> Result<Option<Frame>, FrameError> {
    let mut len_bytes = [0u8; 4];
    let mut got = 0;
    while got < 4 {
        match r.read(&mut len_bytes[got..]).await? {
            0 if got == 0 => return Ok(None),
            0 => return Err(FrameError::Truncated { got, want: 4 }),
            n => got += n,
        }
    }
    let len = check_len(u32::from_le_bytes(len_bytes), max_frame_bytes)? as usize;
    buf.clear();
    buf.resize(len, 0);
    let mut got = 0;
    while got < len {
        match r.read(&mut buf[got..]).await? {
            0 => {
                return Err(FrameError::Truncated {
                    got: 4 + got,
                    want: 4 + len,
                })
            }
            n => got += n,
        }
    }
    decode_body(buf).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::{Clock, Epoch, Keys, Seq};

    fn push(n: usize) -> Frame {
        Frame::Msg(Message::PushReq {
            epoch: Epoch(3),
            range: 1,
            worker: 2,
            seq: Seq {
                incarnation: 1,
                n: 7,
            },
            clock: Clock(5),
            keys: Keys::All,
            values: (0..n).map(|i| i as f32 * 0.5).collect(),
        })
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
        ] {
            let bytes = encode(&f);
            let (back, used) = decode(&bytes, DEFAULT_MAX_FRAME_BYTES).unwrap();
            assert_eq!((back, used), (f, bytes.len()));
        }
    }

    #[test]
    fn dense_payload_costs_four_bytes_a_float() {
        assert_eq!(encode(&push(1000)).len() - encode(&push(0)).len(), 4000);
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
        let mut junk = good.clone();
        junk[5] = 0xff;
        assert!(matches!(decode(&junk, 1 << 20), Err(FrameError::Decode(_))));
    }
}
