//! [`Floats`]: a vector of model values shared copy-on-write; [`KeyList`]:
//! a list of keys shared the same way.
//!
//! A replica's parameters, the dense values of a pull answer and a
//! snapshot's parameters are the same vector more often than not: a pull
//! answer is the replica's values at the moment of the read. Cloning a
//! `Floats` shares it (a reference count, no copy); the replica copies
//! only when it changes a vector some message still holds, so a value
//! once read never changes under its reader. A host that encodes a
//! message (the TCP writer) reads the floats straight from the shared
//! vector. Nothing observable depends on the sharing: equality, `Debug`,
//! serde and every digest see the values only.
//!
//! A worker's keys for a range are the same in its pull and its push of a
//! clock, and a request is kept for its retries: a [`KeyList`] is built
//! once per range and clock and shared by all of them.
//!
//! May import: std, serde. Never: a host (`crate::sim`, `crate::net`),
//! madsim, tokio, a clock or I/O.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::ops::Deref;
use std::sync::Arc;

/// A slice shared copy-on-write (see the module documentation). Derefs to
/// `[T]`; equality, `Debug` and serde are the slice's.
#[derive(Clone, PartialEq)]
pub struct Shared<T>(Arc<[T]>);

/// Model values, shared copy-on-write.
pub type Floats = Shared<f32>;

/// Keys (sorted, absolute ids), shared.
pub type KeyList = Shared<u32>;

impl<T> Default for Shared<T> {
    fn default() -> Shared<T> {
        Shared(Arc::new([]))
    }
}

impl<T: Clone> Shared<T> {
    /// The values, writable: copied first if another holder shares them.
    pub fn make_mut(&mut self) -> &mut [T] {
        if Arc::get_mut(&mut self.0).is_none() {
            self.0 = Arc::from(&*self.0);
        }
        Arc::get_mut(&mut self.0).expect("a fresh copy has one holder")
    }
}

impl<T> Shared<T> {
    /// Whether `a` and `b` are the same vector (not only equal values).
    pub fn ptr_eq(a: &Shared<T>, b: &Shared<T>) -> bool {
        Arc::ptr_eq(&a.0, &b.0)
    }
}

impl<T> Deref for Shared<T> {
    type Target = [T];

    fn deref(&self) -> &[T] {
        &self.0
    }
}

impl<T> From<Vec<T>> for Shared<T> {
    fn from(v: Vec<T>) -> Shared<T> {
        Shared(v.into())
    }
}

impl<T: Clone> From<&[T]> for Shared<T> {
    fn from(v: &[T]) -> Shared<T> {
        Shared(v.into())
    }
}

/// For a host that fills the vector in place (`Arc::new_uninit_slice`).
impl<T> From<Arc<[T]>> for Shared<T> {
    fn from(v: Arc<[T]>) -> Shared<T> {
        Shared(v)
    }
}

impl<T> FromIterator<T> for Shared<T> {
    fn from_iter<I: IntoIterator<Item = T>>(it: I) -> Shared<T> {
        Shared(it.into_iter().collect())
    }
}

impl<T: PartialEq> PartialEq<[T]> for Shared<T> {
    fn eq(&self, other: &[T]) -> bool {
        *self.0 == *other
    }
}

impl<T: PartialEq> PartialEq<Vec<T>> for Shared<T> {
    fn eq(&self, other: &Vec<T>) -> bool {
        *self.0 == **other
    }
}

/// As the values (a list, like `Vec<T>`).
impl<T: fmt::Debug> fmt::Debug for Shared<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

/// As a sequence, exactly as `Vec<T>`.
impl<T: Serialize> Serialize for Shared<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Shared<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Shared<T>, D::Error> {
        Vec::<T>::deserialize(d).map(Shared::from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clones_share_until_written() {
        let mut a = Floats::from(vec![1.0, 2.0, 3.0]);
        let b = a.clone();
        assert!(Floats::ptr_eq(&a, &b), "a clone shares");
        a.make_mut()[0] = 9.0;
        assert!(!Floats::ptr_eq(&a, &b), "a write to a shared vector copies");
        assert_eq!(b, vec![1.0, 2.0, 3.0], "the other holder's values stay");
        assert_eq!(a, vec![9.0, 2.0, 3.0]);
        let before = a.as_ptr();
        a.make_mut()[1] = 8.0;
        assert_eq!(a.as_ptr(), before, "a sole holder writes in place");
    }

    #[test]
    fn looks_like_a_vec() {
        let v = vec![0.5f32, -1.0, f32::MAX];
        let f = Floats::from(v.clone());
        assert_eq!(format!("{f:?}"), format!("{v:?}"));
        assert_eq!(f, v);
        assert_eq!(&*f, &v[..]);
        assert_eq!(Floats::default().len(), 0);
        // Serde: as `Vec<f32>` (checked in `crate::net::frame`'s tests).
    }
}
