//! A buffered XXH3 hasher: the same digest as [`Xxh3`] fed the same bytes,
//! with far fewer calls into it. Hashing an event field by field called
//! XXH3's streaming update once per field (about 50 instructions each, 6%
//! of a message-bound run); here writes are gathered in a buffer and
//! handed over [`SPILL`] bytes at a time. An input that never reaches that
//! (a message's digest) is digested in one shot, with no streaming state:
//! setting one up and feeding it through its own 256-byte buffer copied
//! about as many bytes as the digest read (1.5% of the scale benchmark).
//! XXH3's streaming digest does not depend on how its input is split and
//! equals its one-shot digest, so every trace hash is unchanged (the tests
//! check both).
//!
//! The buffer is taken from a per-thread spare and given back when the
//! hasher is dropped, so a digest allocates nothing once the thread has
//! hashed its longest input.
//!
//! May import: std, xxhash_rust. Never: a host (`crate::sim`, `crate::net`),
//! anything with a clock or I/O.

use std::cell::Cell;
use std::hash::Hasher;
use xxhash_rust::xxh3::{xxh3_128, xxh3_64, Xxh3};

/// Bytes gathered before they are handed to a streaming hasher.
const SPILL: usize = 1 << 16;

thread_local! {
    /// A buffer a dropped hasher left, for the next one.
    static SPARE: Cell<Vec<u8>> = const { Cell::new(Vec::new()) };
}

/// [`Xxh3`] behind a buffer.
pub struct BufXxh3 {
    buf: Vec<u8>,
    /// Created at the first spill: an input shorter than [`SPILL`] is
    /// digested in one shot. Held inline: `Xxh3` is 64-byte aligned, and
    /// a box of it cost an aligned allocation and its free.
    inner: Option<Xxh3>,
}

impl Default for BufXxh3 {
    fn default() -> BufXxh3 {
        BufXxh3::new()
    }
}

impl Clone for BufXxh3 {
    fn clone(&self) -> BufXxh3 {
        let mut c = BufXxh3::new();
        c.buf.extend_from_slice(&self.buf);
        c.inner.clone_from(&self.inner);
        c
    }
}

impl Drop for BufXxh3 {
    fn drop(&mut self) {
        let buf = std::mem::take(&mut self.buf);
        // Keep the larger of the two buffers (a thread has few hashers
        // alive at once: the trace's, and a message's at a time).
        let _ = SPARE.try_with(|s| {
            let spare = s.take();
            s.set(if spare.capacity() >= buf.capacity() {
                spare
            } else {
                buf
            });
        });
    }
}

impl std::fmt::Debug for BufXxh3 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BufXxh3").finish_non_exhaustive()
    }
}

impl BufXxh3 {
    /// An empty hasher (XXH3 with the default secret and seed 0, as
    /// [`Xxh3::new`]).
    pub fn new() -> BufXxh3 {
        let mut buf = SPARE.try_with(Cell::take).unwrap_or_default();
        buf.clear();
        BufXxh3 { buf, inner: None }
    }

    /// Feeds `bytes`.
    #[inline]
    pub fn update(&mut self, bytes: &[u8]) {
        if self.buf.len() + bytes.len() > SPILL {
            self.spill(bytes);
            return;
        }
        self.buf.extend_from_slice(bytes);
    }

    /// Hands the buffer over, then `bytes` (buffered if they fit).
    #[cold]
    fn spill(&mut self, bytes: &[u8]) {
        let inner = self.inner.get_or_insert_with(Xxh3::new);
        inner.update(&self.buf);
        self.buf.clear();
        if bytes.len() > SPILL {
            inner.update(bytes);
        } else {
            self.buf.extend_from_slice(bytes);
        }
    }

    /// Everything fed so far, in a streaming hasher (`None`: it is all in
    /// the buffer).
    fn flushed(&self) -> Option<Xxh3> {
        let mut h = self.inner.as_ref()?.clone();
        h.update(&self.buf);
        Some(h)
    }

    /// The 64-bit digest of everything fed so far (XXH3's one-shot digest
    /// equals its streaming one).
    pub fn digest(&self) -> u64 {
        match self.flushed() {
            Some(h) => h.digest(),
            None => xxh3_64(&self.buf),
        }
    }

    /// [`BufXxh3::digest`] of a hasher no longer needed (no copy of the
    /// streaming state).
    pub fn into_digest(mut self) -> u64 {
        match self.inner.as_mut() {
            Some(h) => {
                h.update(&self.buf);
                h.digest()
            }
            None => xxh3_64(&self.buf),
        }
    }

    /// The 128-bit digest of everything fed so far.
    pub fn digest128(&self) -> u128 {
        match self.flushed() {
            Some(h) => h.digest128(),
            None => xxh3_128(&self.buf),
        }
    }
}

impl Hasher for BufXxh3 {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        self.update(bytes);
    }

    fn finish(&self) -> u64 {
        self.digest()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_digest_is_xxh3s_however_the_input_is_split() {
        // Pieces of every size around the buffer's capacity.
        let data: Vec<u8> = (0..(3 * SPILL as u32 + 5000))
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        for step in [1, 3, 7, 64, 255, 256, 257, 1000, 40_000] {
            let (mut a, mut b) = (BufXxh3::new(), Xxh3::new());
            let mut at = 0;
            let mut k = 0;
            while at < data.len() {
                // Vary the piece length: step, then 1, then 2·step, ...
                let n = [step, 1, 2 * step][k % 3].min(data.len() - at);
                a.update(&data[at..at + n]);
                b.update(&data[at..at + n]);
                at += n;
                k += 1;
                if k % 17 == 0 {
                    assert_eq!(a.digest(), b.digest());
                }
            }
            assert_eq!(a.digest(), b.digest(), "pieces of {step}");
            assert_eq!(a.clone().into_digest(), b.digest(), "pieces of {step}");
            assert_eq!(a.digest128(), b.digest128(), "pieces of {step}");
            let mut whole = Xxh3::new();
            whole.update(&data);
            assert_eq!(a.digest128(), whole.digest128());
        }
    }

    #[test]
    fn a_short_input_digests_as_the_streaming_hasher_does() {
        for n in (0..=300).chain([SPILL - 1, SPILL, SPILL + 1]) {
            let data: Vec<u8> = (0..n as u32).map(|i| ((i * 40_503) >> 3) as u8).collect();
            let (mut a, mut b) = (BufXxh3::new(), Xxh3::new());
            a.update(&data);
            b.update(&data);
            assert_eq!(a.digest(), b.digest(), "{n} bytes");
            assert_eq!(a.clone().into_digest(), b.digest(), "{n} bytes");
            assert_eq!(a.digest128(), b.digest128(), "{n} bytes");
        }
    }

    #[test]
    fn hashing_through_the_hasher_trait_matches() {
        use std::hash::Hash;
        let (mut a, mut b) = (BufXxh3::new(), Xxh3::new());
        for i in 0..1000u64 {
            (i, "event", [i as u32; 3], Some(i)).hash(&mut a);
            (i, "event", [i as u32; 3], Some(i)).hash(&mut b);
        }
        assert_eq!(a.finish(), b.finish());
        assert_ne!(a.finish(), Xxh3::new().finish());
    }
}
