//! [`Floats`]: a vector of model values shared copy-on-write.
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
//! May import: std, serde. Never: a host (`crate::sim`, `crate::net`),
//! madsim, tokio, a clock or I/O.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::ops::Deref;
use std::sync::Arc;

/// Model values, shared copy-on-write (see the module documentation).
/// Derefs to `[f32]`.
#[derive(Clone, Default, PartialEq)]
pub struct Floats(Arc<[f32]>);

impl Floats {
    /// The values, writable: copied first if another holder shares them.
    pub fn make_mut(&mut self) -> &mut [f32] {
        if Arc::get_mut(&mut self.0).is_none() {
            self.0 = Arc::from(&*self.0);
        }
        Arc::get_mut(&mut self.0).expect("a fresh copy has one holder")
    }

    /// Whether `a` and `b` are the same vector (not only equal values).
    pub fn ptr_eq(a: &Floats, b: &Floats) -> bool {
        Arc::ptr_eq(&a.0, &b.0)
    }
}

impl Deref for Floats {
    type Target = [f32];

    fn deref(&self) -> &[f32] {
        &self.0
    }
}

impl From<Vec<f32>> for Floats {
    fn from(v: Vec<f32>) -> Floats {
        Floats(v.into())
    }
}

impl From<&[f32]> for Floats {
    fn from(v: &[f32]) -> Floats {
        Floats(v.into())
    }
}

/// For a host that fills the vector in place (`Arc::new_uninit_slice`).
impl From<Arc<[f32]>> for Floats {
    fn from(v: Arc<[f32]>) -> Floats {
        Floats(v)
    }
}

impl FromIterator<f32> for Floats {
    fn from_iter<I: IntoIterator<Item = f32>>(it: I) -> Floats {
        Floats(it.into_iter().collect())
    }
}

impl PartialEq<[f32]> for Floats {
    fn eq(&self, other: &[f32]) -> bool {
        *self.0 == *other
    }
}

impl PartialEq<Vec<f32>> for Floats {
    fn eq(&self, other: &Vec<f32>) -> bool {
        *self.0 == **other
    }
}

/// As the values (a list, like `Vec<f32>`).
impl fmt::Debug for Floats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

/// As a sequence of floats, exactly as `Vec<f32>`.
impl Serialize for Floats {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}

impl<'de> Deserialize<'de> for Floats {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Floats, D::Error> {
        Vec::<f32>::deserialize(d).map(Floats::from)
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
