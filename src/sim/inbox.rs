//! A node's pending inputs (deliveries, timer firings, compute completions)
//! ordered by due time, and the future a node task awaits them with.
//!
//! madsim's `sleep` rounds every wait up to at least 1 ms; `Sleep::reset`
//! does not, so [`sleep_exact`] gives the exact deadlines the network model
//! computes (microseconds apart on a fast link).
//!
//! May import: `crate::core`, `crate::run`, `crate::scenario`,
//! `super` (sim), madsim. Never: `crate::net` (hosts never import each
//! other), tokio.

use crate::core::Timer;
use madsim::time::{Instant, Sleep};
use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Waker};
use std::time::Duration;

/// Something a node will handle.
#[derive(Debug)]
pub enum Item {
    /// A message's predicted arrival (if `gen` is still its latest
    /// prediction: rates changed since, see `sim::net_flows`).
    Flow {
        /// The message in flight.
        id: u64,
        /// Which prediction this is.
        gen: u64,
    },
    /// A timer fires.
    Timer(Timer),
    /// The modeled compute of a minibatch is finished (if `gen` is still
    /// the node's current compute: a straggler change reschedules it).
    ComputeDone {
        /// Which scheduling of the compute this is.
        gen: u64,
    },
}

/// An item and its place: due time in nanoseconds in the high 64 bits,
/// insertion order in the low (one integer compare orders entries).
#[derive(Debug)]
struct Entry {
    key: u128,
    item: Item,
}

impl Entry {
    fn new(at: Duration, seq: u64, item: Item) -> Entry {
        let at = u64::try_from(at.as_nanos()).expect("a due time within 584 years");
        Entry {
            key: u128::from(at) << 64 | u128::from(seq),
            item,
        }
    }

    fn at(&self) -> Duration {
        Duration::from_nanos((self.key >> 64) as u64)
    }
}

impl PartialEq for Entry {
    fn eq(&self, other: &Self) -> bool {
        self.key == other.key
    }
}
impl Eq for Entry {}
impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Entry {
    fn cmp(&self, other: &Self) -> Ordering {
        self.key.cmp(&other.key)
    }
}

/// A node's inbox: items by (due time, insertion order).
#[derive(Debug, Default)]
pub struct Inbox {
    heap: BinaryHeap<Reverse<Entry>>,
    /// The waiting node task, and the deadline it sleeps until.
    waker: Option<Waker>,
    armed: Option<Duration>,
}

impl Inbox {
    /// Adds an item due at `at`; wakes the node if it sleeps past `at`.
    pub fn push(&mut self, at: Duration, seq: u64, item: Item) {
        self.heap.push(Reverse(Entry::new(at, seq, item)));
        if self.armed.is_none_or(|armed| at < armed) {
            if let Some(w) = &self.waker {
                self.armed = Some(at);
                w.wake_by_ref();
            }
        }
    }

    /// Removes the earliest item if it is due by `now`.
    pub fn pop_due(&mut self, now: Duration) -> Option<Item> {
        if self.heap.peek()?.0.at() <= now {
            self.heap.pop().map(|Reverse(e)| e.item)
        } else {
            None
        }
    }

    /// When the earliest item is due.
    pub fn next_at(&self) -> Option<Duration> {
        self.heap.peek().map(|Reverse(e)| e.at())
    }

    /// When the earliest item is due, after dropping the earliest items
    /// that `stale` says are void (superseded delivery predictions), so
    /// that the node does not wake for them.
    pub fn next_live_at(&mut self, stale: impl Fn(&Item) -> bool) -> Option<Duration> {
        while let Some(Reverse(e)) = self.heap.peek() {
            if !stale(&e.item) {
                return Some(e.at());
            }
            self.heap.pop();
        }
        None
    }

    /// Drops everything (the node crashed).
    pub fn clear(&mut self) {
        self.heap.clear();
        self.waker = None;
        self.armed = None;
    }

    /// Registers the waiting task and the deadline it sleeps until.
    pub fn park(&mut self, waker: &Waker, armed: Option<Duration>) {
        self.waker = Some(waker.clone());
        self.armed = armed;
    }

    /// The task is running: no wake-ups needed until it parks again.
    pub fn unpark(&mut self) {
        self.waker = None;
        self.armed = None;
    }

    /// Number of items pending.
    pub fn len(&self) -> usize {
        self.heap.len()
    }

    /// Whether nothing is pending.
    pub fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }
}

/// Sets a madsim timer that wakes `cx`'s task at exactly `deadline` (if it
/// is in the future). The timer holds the waker and outlives the sleep that
/// set it, so the sleep is neither kept nor allocated.
pub fn set_timer(deadline: Instant, cx: &mut Context<'_>) {
    let _ = Pin::new(&mut exact(deadline)).poll(cx);
}

/// A madsim sleep until exactly `deadline` (no 1 ms rounding).
pub fn sleep_exact(deadline: Instant) -> Pin<Box<Sleep>> {
    Box::pin(exact(deadline))
}

/// madsim's sleep of zero (at least 1 ms) reset to `deadline`, which
/// `Sleep::reset` takes as it is.
fn exact(deadline: Instant) -> Sleep {
    let mut s = madsim::time::sleep(Duration::ZERO);
    Pin::new(&mut s).reset(deadline);
    s
}
