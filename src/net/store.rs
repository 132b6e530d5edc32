//! A real node's durable storage: the state the core persists
//! (`core::Durable`: the coordinator's membership and view, a server's
//! checkpoints) in a file of the node's data directory, so that the node's
//! next life, in a new process on this machine or on another one given a
//! copy of the directory, recovers it.
//!
//! One file, `DIR/durable.pssim`, replaced whole: each write goes to
//! `durable.pssim.tmp`, is fsynced, renamed over the old file, and the
//! directory is fsynced. A crash at any point leaves the old state or the
//! new one, never a mix; a temporary file left by a crash is never read
//! (and is removed when the next life opens the directory). The directory
//! serves one running life at a time: `durable.pssim.lock` is locked while
//! a store lives. A durable
//! state is one value that is always replaced whole, so a file and a
//! rename give all the atomicity needed; an embedded database (redb, sled)
//! would add a dependency and a file format of its own for a store with a
//! single key.
//!
//! ```text
//! offset size
//!  0      8   magic "PSSIMDUR"
//!  8      4   format version (1)
//! 12      1   role: 0 coordinator, 1 server, 2 worker
//! 13      4   node index (0 for the coordinator)
//! 17      4   incarnation: the life of the node that wrote it
//! 21      8   body length in bytes
//! 29      8   xxh3-64 of bytes 0..29 followed by the body
//! 37      …   body: postcard 1.x of `core::Durable`
//! ```
//! (integers little-endian). Postcard is maintained and its wire format is
//! documented and frozen for 1.x (the frames use it too); bincode is
//! unmaintained (RUSTSEC-2025-0141).
//!
//! Reading: no file is a fresh start; any other file that is not a whole,
//! intact state of this node is a [`StoreError`] naming the file and what
//! is wrong (never a panic, never a silent fresh start). A life may
//! recover only state written by an earlier life of the same node.
//!
//! May import: `crate::core`, std, serde (postcard), xxhash_rust. Never:
//! `crate::sim`, madsim, tokio (plain blocking I/O; the host decides where
//! to block).

use crate::core::{Durable, NodeId};
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use xxhash_rust::xxh3::Xxh3;

/// The state file's name in a data directory.
pub const FILE_NAME: &str = "durable.pssim";
/// Where a write goes before it is renamed over [`FILE_NAME`].
const TEMP_NAME: &str = "durable.pssim.tmp";
/// Locked (exclusively, by the operating system) while a node holds the
/// directory: a second process on it would interleave two lives' writes.
pub const LOCK_NAME: &str = "durable.pssim.lock";
/// The first bytes of every state file.
pub const MAGIC: [u8; 8] = *b"PSSIMDUR";
/// The file format this version writes and reads.
pub const FORMAT_VERSION: u32 = 1;
/// Bytes before the body.
pub const HEADER_BYTES: usize = 37;
/// Where the header's checksum starts (it covers the bytes before it).
const CHECKSUM_AT: usize = 29;

/// What is wrong with a data directory or its state file.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Another process holds the directory (its lock file is locked).
    #[error(
        "{path}: locked by another process: a node's data directory serves one running life at \
         a time (stop the other `pssim node`, or give this one its own --data-dir)"
    )]
    Locked {
        /// The lock file.
        path: PathBuf,
    },
    /// An operating-system error (permissions, disk full, ...).
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What the system said.
        source: std::io::Error,
    },
    /// The file does not start with the magic bytes.
    #[error(
        "{path}: not a pssim state file (it starts with {}, not \"PSSIMDUR\")",
        hex(found)
    )]
    BadMagic {
        /// The file.
        path: PathBuf,
        /// Its first bytes.
        found: Vec<u8>,
    },
    /// Written in a format this version does not read.
    #[error(
        "{path}: state file format version {found}; this pssim reads version {FORMAT_VERSION}"
    )]
    UnsupportedVersion {
        /// The file.
        path: PathBuf,
        /// The version it says.
        found: u32,
    },
    /// Shorter than its header says (or than a header).
    #[error("{path}: truncated: {len} bytes where the state takes {expected}")]
    Truncated {
        /// The file.
        path: PathBuf,
        /// Its length.
        len: u64,
        /// The length its header implies (or a header's, if it has none).
        expected: u64,
    },
    /// Longer than its header says.
    #[error("{path}: {len} bytes where the state takes {expected}: bytes follow the state")]
    TrailingBytes {
        /// The file.
        path: PathBuf,
        /// Its length.
        len: u64,
        /// The length its header implies.
        expected: u64,
    },
    /// The checksum does not match the header and body.
    #[error("{path}: checksum mismatch (stored {stored:016x}, computed {computed:016x}): the file is corrupt")]
    ChecksumMismatch {
        /// The file.
        path: PathBuf,
        /// The checksum in the header.
        stored: u64,
        /// The checksum of the bytes read.
        computed: u64,
    },
    /// An intact state of another node.
    #[error(
        "{path}: holds the state of {found}, not of {expected} (another node's data directory?)"
    )]
    WrongNode {
        /// The file.
        path: PathBuf,
        /// The node it belongs to.
        found: String,
        /// The node reading it.
        expected: NodeId,
    },
    /// An intact state of this node written by this life or a later one.
    #[error(
        "{path}: written by life {written} of {node}, so this life must be a later one \
         (--incarnation {} or more; or remove the file to start afresh)",
        written.saturating_add(1)
    )]
    NotALaterLife {
        /// The file.
        path: PathBuf,
        /// The node.
        node: NodeId,
        /// The life that wrote it.
        written: u32,
        /// The life reading it.
        given: u32,
    },
    /// The checksum matches but the body is not a state of this node.
    #[error("{path}: cannot decode the state: {reason}")]
    Undecodable {
        /// The file.
        path: PathBuf,
        /// What the decoder said.
        reason: String,
    },
}

/// A node's data directory.
#[derive(Debug)]
pub struct Store {
    dir: PathBuf,
    node: NodeId,
    incarnation: u32,
    /// The directory's lock file, locked while this store lives (the
    /// operating system releases it when the process ends, killed or not).
    _lock: std::fs::File,
}

impl Store {
    /// Opens (creating it if needed) the data directory `dir` of life
    /// `incarnation` of `node`, locks it ([`LOCK_NAME`]: an error if
    /// another process holds it), and removes a temporary file an earlier
    /// life's crash left.
    pub fn open(dir: &Path, node: NodeId, incarnation: u32) -> Result<Store, StoreError> {
        let io = |source| StoreError::Io {
            path: dir.to_path_buf(),
            source,
        };
        std::fs::create_dir_all(dir).map_err(io)?;
        let lock_path = dir.join(LOCK_NAME);
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|source| StoreError::Io {
                path: lock_path.clone(),
                source,
            })?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(StoreError::Locked { path: lock_path })
            }
            Err(std::fs::TryLockError::Error(source)) => {
                return Err(StoreError::Io {
                    path: lock_path,
                    source,
                })
            }
        }
        let temp = dir.join(TEMP_NAME);
        match std::fs::remove_file(&temp) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(StoreError::Io {
                    path: temp,
                    source: e,
                })
            }
            _ => {}
        }
        Ok(Store {
            dir: dir.to_path_buf(),
            node,
            incarnation,
            _lock: lock,
        })
    }

    /// The state file.
    pub fn path(&self) -> PathBuf {
        self.dir.join(FILE_NAME)
    }

    /// The state an earlier life left: `None` if there is no state file
    /// (a fresh start), an error if the file is not an intact state of an
    /// earlier life of this node.
    pub fn recover(&self) -> Result<Option<Durable>, StoreError> {
        let path = self.path();
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(StoreError::Io { path, source }),
        };
        let (written, state) = decode(&path, &bytes, self.node)?;
        if written >= self.incarnation {
            return Err(StoreError::NotALaterLife {
                path,
                node: self.node,
                written,
                given: self.incarnation,
            });
        }
        Ok(Some(state))
    }

    /// Replaces the state on disk with `state`; returns once it is
    /// durable (file and directory fsynced).
    pub fn write(&self, state: &Durable) -> Result<(), StoreError> {
        let bytes = encode(self.node, self.incarnation, state);
        let temp = self.dir.join(TEMP_NAME);
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| StoreError::Io { path, source }
        };
        let mut f = File::create(&temp).map_err(io(&temp))?;
        f.write_all(&bytes).map_err(io(&temp))?;
        f.sync_all().map_err(io(&temp))?;
        drop(f);
        let path = self.path();
        std::fs::rename(&temp, &path).map_err(io(&path))?;
        // The rename is durable once the directory is.
        File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(io(&self.dir))
    }
}

fn hex(bytes: &[u8]) -> String {
    let pairs: Vec<String> = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("bytes {}", pairs.join(" "))
}

fn role_and_index(node: NodeId) -> (u8, u32) {
    match node {
        NodeId::Coordinator => (0, 0),
        NodeId::Server(i) => (1, i),
        NodeId::Worker(i) => (2, i),
    }
}

fn checksum(header: &[u8], body: &[u8]) -> u64 {
    let mut h = Xxh3::new();
    h.update(header);
    h.update(body);
    h.digest()
}

/// The bytes of a state file holding `state`, written by life
/// `incarnation` of `node`.
pub fn encode(node: NodeId, incarnation: u32, state: &Durable) -> Vec<u8> {
    let body = postcard::to_stdvec(state).expect("a durable state serializes");
    let (role, index) = role_and_index(node);
    let mut out = Vec::with_capacity(HEADER_BYTES + body.len());
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    out.push(role);
    out.extend_from_slice(&index.to_le_bytes());
    out.extend_from_slice(&incarnation.to_le_bytes());
    out.extend_from_slice(&(body.len() as u64).to_le_bytes());
    debug_assert_eq!(out.len(), CHECKSUM_AT);
    let sum = checksum(&out, &body);
    out.extend_from_slice(&sum.to_le_bytes());
    out.extend_from_slice(&body);
    out
}

fn le_u32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}

fn le_u64(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

/// Decodes the state file `bytes` (read from `path`) of `node`: the life
/// that wrote it and the state. Checks, in order: a whole header, the
/// magic, the version, the length, the checksum, the node, the body.
pub fn decode(path: &Path, bytes: &[u8], node: NodeId) -> Result<(u32, Durable), StoreError> {
    let path = || path.to_path_buf();
    let len = bytes.len() as u64;
    let truncated = |expected: usize| StoreError::Truncated {
        path: path(),
        len,
        expected: expected as u64,
    };
    // A cut inside the magic is a truncation; other bytes are not ours.
    if bytes.len() < MAGIC.len() && MAGIC.starts_with(bytes) {
        return Err(truncated(HEADER_BYTES));
    }
    if bytes.len() < MAGIC.len() || bytes[..MAGIC.len()] != MAGIC {
        return Err(StoreError::BadMagic {
            path: path(),
            found: bytes[..bytes.len().min(MAGIC.len())].to_vec(),
        });
    }
    if bytes.len() < 12 {
        return Err(truncated(HEADER_BYTES));
    }
    let version = le_u32(bytes, 8);
    if version != FORMAT_VERSION {
        return Err(StoreError::UnsupportedVersion {
            path: path(),
            found: version,
        });
    }
    if bytes.len() < HEADER_BYTES {
        return Err(truncated(HEADER_BYTES));
    }
    let expected = (HEADER_BYTES as u64).saturating_add(le_u64(bytes, 21));
    if len < expected {
        return Err(StoreError::Truncated {
            path: path(),
            len,
            expected,
        });
    }
    if len > expected {
        return Err(StoreError::TrailingBytes {
            path: path(),
            len,
            expected,
        });
    }
    let body = &bytes[HEADER_BYTES..];
    let stored = le_u64(bytes, CHECKSUM_AT);
    let computed = checksum(&bytes[..CHECKSUM_AT], body);
    if stored != computed {
        return Err(StoreError::ChecksumMismatch {
            path: path(),
            stored,
            computed,
        });
    }
    let (role, index) = (bytes[12], le_u32(bytes, 13));
    if (role, index) != role_and_index(node) {
        let found = match role {
            0 => NodeId::Coordinator.to_string(),
            1 => NodeId::Server(index).to_string(),
            2 => NodeId::Worker(index).to_string(),
            r => format!("a node of unknown role {r}"),
        };
        return Err(StoreError::WrongNode {
            path: path(),
            found,
            expected: node,
        });
    }
    let undecodable = |reason: String| StoreError::Undecodable {
        path: path(),
        reason,
    };
    let (state, rest) =
        postcard::take_from_bytes::<Durable>(body).map_err(|e| undecodable(e.to_string()))?;
    if !rest.is_empty() {
        return Err(undecodable(format!(
            "{} bytes of the body follow the state",
            rest.len()
        )));
    }
    let fits = matches!(
        (&state, node),
        (Durable::Coordinator(_), NodeId::Coordinator) | (Durable::Server(_), NodeId::Server(_))
    );
    if !fits {
        return Err(undecodable(format!("the body is not a state {node} keeps")));
    }
    Ok((le_u32(bytes, 17), state))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::msg::RangeState;
    use crate::core::view::{Member, Membership, View};
    use crate::core::{Clock, CoordinatorState, LeaseBound, Seq};
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    fn server_state(params: Vec<f32>, applied: u64) -> Durable {
        let mut ranges = BTreeMap::new();
        ranges.insert(
            2,
            RangeState {
                params: params.into(),
                table: vec![(0, 0, Clock(7)), (3, 1, Clock(5))],
                dedup: vec![(
                    1,
                    Seq {
                        incarnation: 2,
                        n: 9,
                    },
                    40,
                )],
                applied,
                applied_digest: 0xdead_beef,
                log_index: applied + 3,
                membership: Membership::initial(4),
                widened: 1,
            },
        );
        Durable::Server(ranges)
    }

    fn coordinator_state(version: u64, sessions: u64) -> Durable {
        let mut membership = Membership::initial(3);
        membership.version = version;
        membership.fences.insert(1, (2, Clock(11)));
        let mut admitted = BTreeMap::new();
        admitted.insert(
            1,
            Member {
                incarnation: 2,
                start_clock: Clock(11),
            },
        );
        let mut ceilings = BTreeMap::new();
        ceilings.insert(
            0,
            LeaseBound {
                life: 1,
                bound: Clock(30),
                earlier: Clock(12),
            },
        );
        Durable::Coordinator(CoordinatorState {
            membership,
            view: View::initial(3, 2),
            admitted,
            sessions,
            changes: Vec::new(),
            attempts: 4,
            ceilings,
        })
    }

    fn temp_dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("pssim-store-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    #[test]
    fn a_state_survives_the_store_and_only_a_later_life_recovers_it() {
        let dir = temp_dir("round-trip");
        let s = NodeId::Server(2);
        let first = Store::open(&dir, s, 0).unwrap();
        assert!(first.recover().unwrap_or_else(|e| panic!("{e}")).is_none());
        let a = server_state(vec![0.5, -1.25, f32::MIN_POSITIVE], 17);
        let b = server_state(vec![3.0; 1000], 18);
        first.write(&a).unwrap();
        first.write(&b).unwrap();
        assert!(!dir.join(TEMP_NAME).exists());
        // One running life at a time.
        let e = Store::open(&dir, s, 1).unwrap_err();
        assert!(matches!(e, StoreError::Locked { .. }), "{e}");
        assert!(
            e.to_string()
                .contains("durable.pssim.lock: locked by another process"),
            "{e}"
        );
        drop(first);
        let next = Store::open(&dir, s, 1).unwrap();
        assert_eq!(next.recover().unwrap(), Some(b.clone()));
        drop(next);
        // The life that wrote it may not (nor an earlier one).
        let e = Store::open(&dir, s, 0).unwrap().recover().unwrap_err();
        assert!(
            matches!(e, StoreError::NotALaterLife { written: 0, .. }),
            "{e}"
        );
        assert!(e.to_string().contains("--incarnation 1 or more"), "{e}");
        // Another node's directory.
        let e = Store::open(&dir, NodeId::Server(1), 1)
            .unwrap()
            .recover()
            .unwrap_err();
        assert!(matches!(e, StoreError::WrongNode { .. }), "{e}");
        assert!(e
            .to_string()
            .contains("holds the state of server-2, not of server-1"));
        // A temporary file a crash left is removed, never read.
        std::fs::write(dir.join(TEMP_NAME), b"half a write").unwrap();
        let again = Store::open(&dir, s, 2).unwrap();
        assert!(!dir.join(TEMP_NAME).exists());
        assert_eq!(again.recover().unwrap(), Some(b));
        let c = coordinator_state(5, 3);
        let cdir = dir.join("coordinator");
        Store::open(&cdir, NodeId::Coordinator, 0)
            .unwrap()
            .write(&c)
            .unwrap();
        let back = Store::open(&cdir, NodeId::Coordinator, 1)
            .unwrap()
            .recover()
            .unwrap();
        assert_eq!(back, Some(c));
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn every_truncation_is_reported_as_one() {
        let path = Path::new("/data/server-2/durable.pssim");
        for state in [server_state(vec![1.0, 2.0], 3), coordinator_state(2, 1)] {
            let bytes = encode(NodeId::Server(2), 0, &state);
            for cut in 0..bytes.len() {
                match decode(path, &bytes[..cut], NodeId::Server(2)) {
                    Err(StoreError::Truncated { len, expected, .. }) => {
                        assert_eq!(len, cut as u64);
                        assert!(expected > len);
                    }
                    other => panic!("cut at {cut} of {}: {other:?}", bytes.len()),
                }
            }
        }
    }

    #[test]
    fn errors_name_the_file_and_the_fault() {
        let path = Path::new("/data/coordinator/durable.pssim");
        let mut bytes = encode(NodeId::Coordinator, 3, &coordinator_state(9, 2));
        let n = bytes.len();
        bytes[n - 1] ^= 0x40;
        let e = decode(path, &bytes, NodeId::Coordinator).unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.starts_with("/data/coordinator/durable.pssim: checksum mismatch"),
            "{msg}"
        );
        let e = decode(path, b"{\"not\": \"ours\"}", NodeId::Coordinator).unwrap_err();
        assert!(e.to_string().contains("not a pssim state file"), "{e}");
        // A body that passes the checksum but is not a state.
        let mut forged =
            encode(NodeId::Coordinator, 0, &coordinator_state(1, 1))[..CHECKSUM_AT].to_vec();
        forged[21..29].copy_from_slice(&3u64.to_le_bytes());
        let body = [9u8, 9, 9];
        let sum = checksum(&forged, &body);
        forged.extend_from_slice(&sum.to_le_bytes());
        forged.extend_from_slice(&body);
        let e = decode(path, &forged, NodeId::Coordinator).unwrap_err();
        assert!(matches!(e, StoreError::Undecodable { .. }), "{e}");
    }

    fn any_state() -> impl Strategy<Value = Durable> {
        prop_oneof![
            (proptest::collection::vec(-1e6f32..1e6, 0..64), any::<u64>())
                .prop_map(|(p, a)| server_state(p, a >> 2)),
            (1u64..1000, any::<u64>()).prop_map(|(v, s)| coordinator_state(v, s)),
        ]
    }

    proptest! {
        /// A state round-trips, and a flipped byte anywhere in its file is
        /// caught, with the error its position calls for.
        #[test]
        fn a_flipped_byte_is_always_caught(
            state in any_state(),
            life in 0u32..5,
            at in any::<prop::sample::Index>(),
            mask in 1u8..=255,
        ) {
            let node = match state {
                Durable::Coordinator(_) => NodeId::Coordinator,
                Durable::Server(_) => NodeId::Server(2),
            };
            let path = Path::new("durable.pssim");
            let bytes = encode(node, life, &state);
            prop_assert_eq!(decode(path, &bytes, node).unwrap(), (life, state));
            let i = at.index(bytes.len());
            let mut bad = bytes.clone();
            bad[i] ^= mask;
            let e = decode(path, &bad, node).unwrap_err();
            let expected = match i {
                0..=7 => matches!(e, StoreError::BadMagic { .. }),
                8..=11 => matches!(e, StoreError::UnsupportedVersion { .. }),
                21..=28 => matches!(e, StoreError::Truncated { .. } | StoreError::TrailingBytes { .. }),
                _ => matches!(e, StoreError::ChecksumMismatch { .. }),
            };
            prop_assert!(expected, "byte {} ^ {:#04x}: {}", i, mask, e);
        }
    }
}
