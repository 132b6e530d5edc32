//! A buffered XXH3 hasher: the same digest as [`Xxh3`] fed the same bytes,
//! with far fewer calls into it. Hashing an event field by field called
//! XXH3's streaming update once per field (about 50 instructions each, 6%
//! of a message-bound run); here small writes are copied into a buffer
//! that is handed over 256 bytes at a time. XXH3's streaming digest does
//! not depend on how its input is split, so every trace hash is unchanged
//! (a test checks it).
//!
//! May import: std, xxhash_rust. Never: a host (`crate::sim`, `crate::net`),
//! anything with a clock or I/O.

use std::hash::Hasher;
use xxhash_rust::xxh3::{xxh3_128, xxh3_64, Xxh3};

const CAP: usize = 256;

/// [`Xxh3`] behind a small buffer.
#[derive(Clone)]
pub struct BufXxh3 {
    buf: [u8; CAP],
    len: usize,
    /// Created at the first spill: a short input is digested in one shot.
    /// Held inline: `Xxh3` is 64-byte aligned, and a box of it cost an
    /// aligned allocation and its free per long message (3% of a
    /// message-bound run's instructions).
    inner: Option<Xxh3>,
}

impl Default for BufXxh3 {
    fn default() -> BufXxh3 {
        BufXxh3::new()
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
        BufXxh3 {
            buf: [0; CAP],
            len: 0,
            inner: None,
        }
    }

    /// Feeds `bytes`.
    #[inline]
    pub fn update(&mut self, bytes: &[u8]) {
        if self.len + bytes.len() > CAP {
            self.spill(bytes);
            return;
        }
        self.buf[self.len..self.len + bytes.len()].copy_from_slice(bytes);
        self.len += bytes.len();
    }

    /// Hands the buffer over, then `bytes` (buffered if they fit).
    #[cold]
    fn spill(&mut self, bytes: &[u8]) {
        let inner = self.inner.get_or_insert_with(Xxh3::new);
        inner.update(&self.buf[..self.len]);
        self.len = 0;
        if bytes.len() > CAP {
            inner.update(bytes);
        } else {
            self.buf[..bytes.len()].copy_from_slice(bytes);
            self.len = bytes.len();
        }
    }

    /// Everything fed so far, in a streaming hasher (`None`: it is all in
    /// the buffer).
    fn flushed(&self) -> Option<Xxh3> {
        let mut h = self.inner.as_ref()?.clone();
        h.update(&self.buf[..self.len]);
        Some(h)
    }

    /// The 64-bit digest of everything fed so far (XXH3's one-shot digest
    /// equals its streaming one).
    pub fn digest(&self) -> u64 {
        match self.flushed() {
            Some(h) => h.digest(),
            None => xxh3_64(&self.buf[..self.len]),
        }
    }

    /// [`BufXxh3::digest`] of a hasher no longer needed (no copy of the
    /// streaming state).
    pub fn into_digest(mut self) -> u64 {
        match self.inner.as_mut() {
            Some(h) => {
                h.update(&self.buf[..self.len]);
                h.digest()
            }
            None => xxh3_64(&self.buf[..self.len]),
        }
    }

    /// The 128-bit digest of everything fed so far.
    pub fn digest128(&self) -> u128 {
        match self.flushed() {
            Some(h) => h.digest128(),
            None => xxh3_128(&self.buf[..self.len]),
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
        let data: Vec<u8> = (0..5000u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        for step in [1, 3, 7, 64, 255, 256, 257, 1000] {
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
        for n in 0..=CAP {
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
