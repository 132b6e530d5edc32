//! A simulated node: one madsim task that waits for its next due input and
//! hands it to the node's protocol state machine. Killing the madsim node
//! kills the task; restarting it runs [`node_main`] again, which boots a
//! fresh state machine (memory is lost).
//!
//! May import: `crate::core`, `crate::run`, `crate::scenario`,
//! `super` (sim), madsim. Never: `crate::net` (hosts never import each
//! other), tokio.

use super::inbox::set_timer;
use super::world::{lock, Shared};
use crate::core::NodeId;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

/// The body of a node's madsim task.
pub async fn node_main(shared: Shared, id: NodeId) {
    let idx = lock(&shared).index(id);
    lock(&shared).boot(idx);
    loop {
        NextInput {
            shared: &shared,
            idx,
            armed: None,
        }
        .await;
        lock(&shared).process_due(idx);
    }
}

/// Resolves when the node's earliest input is due.
struct NextInput<'a> {
    shared: &'a Shared,
    idx: usize,
    /// The deadline it set a timer for.
    armed: Option<Duration>,
}

impl Future for NextInput<'_> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        let mut w = lock(this.shared);
        let now = w.now();
        let start = w.start;
        let next = w.next_input_at(this.idx);
        let inbox = &mut w.slots[this.idx].inbox;
        match next {
            Some(at) if at <= now => {
                inbox.unpark();
                Poll::Ready(())
            }
            next => {
                inbox.park(cx.waker(), next);
                drop(w);
                arm(&mut this.armed, start, next, cx);
                Poll::Pending
            }
        }
    }
}

/// The body of the network task: wakes before the earliest arrival of an
/// instant's sends, so that they are planned in time even if nothing else
/// happens until then (locking the world plans them).
pub async fn net_main(shared: Shared) {
    loop {
        NetTurn {
            shared: &shared,
            armed: None,
        }
        .await;
    }
}

/// Resolves when the network task's deadline passed (never: locking the
/// world did the work; it parks again).
struct NetTurn<'a> {
    shared: &'a Shared,
    armed: Option<Duration>,
}

impl Future for NetTurn<'_> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        let mut w = lock(this.shared);
        let start = w.start;
        let next = w.net_due();
        w.net_clock.park(cx.waker(), next);
        drop(w);
        arm(&mut this.armed, start, next, cx);
        Poll::Pending
    }
}

/// Registers a wake-up at `next` (time since `start`) with madsim's timer,
/// unless one is set for that deadline already (`armed`).
fn arm(
    armed: &mut Option<Duration>,
    start: madsim::time::Instant,
    next: Option<Duration>,
    cx: &mut Context<'_>,
) {
    if let Some(at) = next {
        if *armed != Some(at) {
            // The deadline is in the future, so this registers the timer.
            set_timer(start + at, cx);
            *armed = Some(at);
        }
    }
}
