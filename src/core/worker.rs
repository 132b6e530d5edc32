//! The worker state machine. Each clock: pull the keys it needs from every
//! range's head, ask the host to charge the compute time, compute the
//! minibatch gradient, push it to every range (an empty push where the batch
//! touches no key), and advance once every range acknowledged. Every request
//! is retried on a timeout with exponential backoff; a retried push reuses
//! its sequence number, so servers apply it once.
//!
//! May import: `crate::core` (its siblings), `crate::ml` (the job a
//! worker computes), std, serde, rand (a generator handed in). Never: a
//! host (`crate::sim`, `crate::net`), madsim, tokio, a clock or I/O.

use super::codec::{self, Encoder, Payload};
use super::config::{Change, ProtocolConfig, Schedule};
use super::event::Event;
use super::floats::KeyList;
use super::ids::{Clock, NodeId, RangeId, Seq, WorkerId};
use super::msg::{Keys, Message};
use super::view::View;
use super::{Command, Timer};
use crate::ml::{Dataset, Model, ParamView};
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

/// What a worker trains: the model and its data.
#[derive(Debug)]
pub struct Job {
    /// The model.
    pub model: Model,
    /// The data set (all workers share it; each trains on its shard).
    pub data: Arc<Dataset>,
    /// Whether to pull only the keys a minibatch touches.
    pub sparse: bool,
}

/// Training examples a loss estimate uses at most (a fixed prefix of the
/// shuffled training split).
const LOSS_ROWS: usize = 512;

impl Job {
    /// Test accuracy of `params` (every key of the model) and the mean
    /// training loss over a fixed prefix of the training split.
    pub fn evaluate(&self, params: &[f32]) -> (crate::ml::Evaluation, f64) {
        self.evaluate_with(&self.model, params)
    }

    /// [`Job::evaluate`] of `model` (the job's model after live
    /// widenings: `crate::core::widen`).
    pub fn evaluate_with(&self, model: &Model, params: &[f32]) -> (crate::ml::Evaluation, f64) {
        let test = model.evaluate(params, &self.data.test);
        let train = &self.data.train;
        let rows: Vec<u32> = (0..train.rows().min(LOSS_ROWS) as u32).collect();
        let mut scratch = vec![0f32; params.len()];
        let view = ParamView {
            keys: None,
            values: params,
        };
        let loss = model.gradient(train, &rows, view, &mut scratch);
        (test, loss)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Waiting to be admitted (after a restart).
    Joining,
    /// Waiting for pull answers.
    Pulling,
    /// The host is charging compute time.
    Computing,
    /// Waiting for push acknowledgements.
    Pushing,
    /// All clocks done.
    Done,
}

/// A worker node.
#[derive(Debug)]
pub struct Worker {
    id: WorkerId,
    incarnation: u32,
    cfg: Arc<ProtocolConfig>,
    job: Arc<Job>,
    rng: ChaCha8Rng,
    view: View,
    clock: Clock,
    phase: Phase,
    next_n: u64,
    /// Shuffled shard rows and the position of the next batch in it.
    order: Vec<u32>,
    order_pos: usize,
    batch: Vec<u32>,
    /// Sparse: the batch's keys, sorted; `values`/`grad` align with them.
    keys: Vec<u32>,
    /// Sparse: where each non-zero of the batch sits in `keys`.
    slots: Vec<u32>,
    /// Per range: the slice of `keys` (sparse) or of the key space (dense).
    split: Vec<Range<usize>>,
    /// Sparse: each range's keys of this clock (`keys[split[r]]`), shared
    /// by its pull, its push and their retries.
    range_keys: Vec<KeyList>,
    values: Vec<f32>,
    grad: Vec<f32>,
    /// Per range: the request awaiting an answer.
    outstanding: Vec<Option<Message>>,
    waiting: usize,
    retry_gen: u64,
    attempt: u32,
    /// Mean training loss of the last minibatch.
    last_loss: f64,
    /// Hyperparameters over clocks, with the live changes adopted so far.
    schedule: Schedule,
    /// Live changes adopted (1, 2, ... in order).
    changes: u64,
    /// Push compression with its error-feedback residual.
    encoder: Encoder,
    /// Boundaries of the live widenings adopted, in order.
    widenings: Vec<Clock>,
    /// The widening level of the model and layout in use (the one in force
    /// at `clock` once the clock began).
    level: u32,
}

impl Worker {
    /// Worker `id`, life number `incarnation` (0 at job start), with its own
    /// seeded generator for minibatch sampling.
    pub fn new(
        id: WorkerId,
        incarnation: u32,
        cfg: Arc<ProtocolConfig>,
        job: Arc<Job>,
        rng: ChaCha8Rng,
    ) -> Worker {
        let order = job.data.shard(id, cfg.workers);
        let ranges = cfg.ranges.ranges() as usize;
        let dim = cfg.ranges.dim() as usize;
        let dense_split = (0..ranges as u32)
            .map(|r| {
                let k = cfg.ranges.keys(r);
                k.start as usize..k.end as usize
            })
            .collect();
        Worker {
            id,
            incarnation,
            view: View::initial(cfg.servers, cfg.replication),
            clock: Clock(0),
            phase: Phase::Joining,
            next_n: 0,
            order,
            order_pos: usize::MAX,
            batch: Vec::new(),
            keys: Vec::new(),
            slots: Vec::new(),
            split: if job.sparse { Vec::new() } else { dense_split },
            range_keys: Vec::new(),
            values: if job.sparse {
                Vec::new()
            } else {
                vec![0.0; dim]
            },
            grad: if job.sparse {
                Vec::new()
            } else {
                vec![0.0; dim]
            },
            outstanding: vec![None; ranges],
            waiting: 0,
            retry_gen: 0,
            attempt: 0,
            last_loss: f64::NAN,
            schedule: cfg.schedule.clone(),
            changes: 0,
            encoder: Encoder::default(),
            widenings: Vec::new(),
            level: 0,
            cfg,
            job,
            rng,
        }
    }

    /// This worker's index.
    pub fn id(&self) -> WorkerId {
        self.id
    }

    /// The clock being computed (equals `clocks` once done).
    pub fn clock(&self) -> Clock {
        self.clock
    }

    /// Whether every clock is done.
    pub fn is_done(&self) -> bool {
        self.phase == Phase::Done
    }

    /// Mean loss of the last minibatch computed.
    pub fn last_loss(&self) -> f64 {
        self.last_loss
    }

    /// Starts: a first-life worker begins clock 0 at once.
    pub fn on_start(&mut self, now: Duration, out: &mut Vec<Command>) {
        self.heartbeat(out);
        if self.incarnation == 0 {
            self.begin_clock(now, out);
        }
    }

    /// Handles a message.
    pub fn on_message(
        &mut self,
        now: Duration,
        _from: NodeId,
        msg: Message,
        out: &mut Vec<Command>,
    ) {
        match msg {
            Message::PullResp {
                range,
                clock,
                values,
                schedule,
                held,
                base,
            } => {
                // Learn the changes first: the answer may be for a clock
                // past one of them.
                if self.adopt(&schedule, out) {
                    // The batch size of this clock changed: start it over.
                    if self.phase == Phase::Pulling {
                        self.begin_clock(now, out);
                    }
                    return;
                }
                self.on_pull_resp(range, clock, values, (held, base), out)
            }
            Message::Commit {
                k,
                boundary,
                change,
            } if self.adopt(&[(k, boundary, change)], out) && self.phase == Phase::Pulling => {
                self.begin_clock(now, out);
            }
            Message::PushAck { range, seq, clock } => self.on_push_ack(now, range, seq, clock, out),
            Message::Admit {
                incarnation,
                start_clock,
                view,
                schedule,
            } if incarnation == self.incarnation => {
                self.adopt(&schedule, out);
                self.on_admit(now, start_clock, view, out)
            }
            Message::ViewUpdate(v) if v.epoch > self.view.epoch => {
                // A new view (published, or a server's redirect): re-send
                // what is outstanding to the new head or tail at once.
                self.view = v;
                self.resend(out);
            }
            _ => {}
        }
    }

    /// Adopts the live changes it lacks, in order. Returns whether the
    /// batch size or the model of the current clock changed (the clock
    /// must start over).
    fn adopt(&mut self, changes: &[(u64, Clock, Change)], out: &mut Vec<Command>) -> bool {
        let before = (
            self.schedule.at(self.clock).batch_size,
            self.level_at(self.clock),
        );
        for &(k, boundary, change) in changes {
            if k != self.changes + 1 {
                continue;
            }
            self.schedule = self
                .schedule
                .with_change(boundary, &change, self.cfg.default_bound);
            if change.widens() {
                self.widenings.push(boundary);
            }
            self.changes = k;
            out.push(Command::Emit(change.event(
                NodeId::Worker(self.id),
                k,
                boundary,
            )));
        }
        let after = (
            self.schedule.at(self.clock).batch_size,
            self.level_at(self.clock),
        );
        after != before && matches!(self.phase, Phase::Pulling)
    }

    /// The widening level in force at `clock` under the changes adopted.
    fn level_at(&self, clock: Clock) -> u32 {
        self.widenings.iter().filter(|&&b| b <= clock).count() as u32
    }

    /// The model of the level in use.
    fn model(&self) -> &crate::ml::Model {
        self.cfg.widen.model(&self.job.model, self.level)
    }

    /// Switches to the model and key layout of widening level `level`
    /// (dense models only: a perceptron). Its values are pulled whole at
    /// once; the compression residual keeps its keys (the new ones owe
    /// nothing).
    fn switch_level(&mut self, level: u32) {
        self.level = level;
        let dim = self.cfg.widen.dim(&self.cfg.ranges, level) as usize;
        self.values.resize(dim, 0.0);
        self.grad.resize(dim, 0.0);
    }

    /// Range `r`'s appended keys at the level in use.
    fn extra(&self, r: RangeId) -> &[u32] {
        self.cfg.widen.extra(self.level, r)
    }

    /// Range `r`'s values of `v` (indexed by key) in the range's order:
    /// its contiguous keys, then its appended keys.
    fn range_values<'a>(&self, r: RangeId, v: &'a [f32]) -> std::borrow::Cow<'a, [f32]> {
        let span = self.split[r as usize].clone();
        if self.level == 0 || self.job.sparse {
            return std::borrow::Cow::Borrowed(&v[span]);
        }
        std::borrow::Cow::Owned(self.cfg.widen.gather(&self.cfg.ranges, self.level, r, v))
    }

    /// Admitted (again) from `start_clock`: a joining worker starts there; a
    /// worker re-admitted at a later clock than its own (it was removed
    /// while cut off) abandons its current clock and jumps ahead.
    fn on_admit(&mut self, now: Duration, start_clock: Clock, view: View, out: &mut Vec<Command>) {
        if view.epoch > self.view.epoch {
            self.view = view;
        }
        let joining = self.phase == Phase::Joining;
        if self.phase == Phase::Done || (!joining && start_clock <= self.clock) {
            return;
        }
        self.clock = start_clock;
        self.retry_gen += 1; // cancels retries of the abandoned clock
        self.outstanding.iter_mut().for_each(|o| *o = None);
        self.begin_clock(now, out);
    }

    /// Handles a timer.
    pub fn on_timer(&mut self, _now: Duration, timer: Timer, out: &mut Vec<Command>) {
        match timer {
            Timer::Heartbeat => self.heartbeat(out),
            Timer::Retry { gen } if gen == self.retry_gen => self.retry(out),
            _ => {}
        }
    }

    fn heartbeat(&self, out: &mut Vec<Command>) {
        out.push(Command::Send {
            to: NodeId::Coordinator,
            msg: Message::WorkerHeartbeat {
                worker: self.id,
                incarnation: self.incarnation,
                clock: self.clock,
                joining: self.phase == Phase::Joining,
                epoch: self.view.epoch,
                done: self.phase == Phase::Done,
            },
        });
        out.push(Command::SetTimer {
            timer: Timer::Heartbeat,
            after: self.cfg.heartbeat_interval,
        });
    }

    /// Starts computing `self.clock`: sample a minibatch and pull.
    fn begin_clock(&mut self, _now: Duration, out: &mut Vec<Command>) {
        if self.clock.0 >= self.cfg.clocks {
            self.phase = Phase::Done;
            out.push(Command::Emit(Event::WorkerDone {
                worker: self.id,
                clock: self.clock,
            }));
            self.heartbeat(out);
            return;
        }
        out.push(Command::Emit(Event::WorkerClock {
            worker: self.id,
            clock: self.clock,
        }));
        let level = self.level_at(self.clock);
        if level != self.level {
            self.switch_level(level);
        }
        self.sample_batch();
        if self.job.sparse {
            self.job.model.batch_keys_slotted(
                &self.job.data.train,
                &self.batch,
                &mut self.keys,
                &mut self.slots,
            );
            self.cfg.ranges.split_sorted(&self.keys, &mut self.split);
            self.range_keys.clear();
            self.range_keys.extend(
                self.split
                    .iter()
                    .map(|span| KeyList::from(&self.keys[span.clone()])),
            );
            self.values.resize(self.keys.len(), 0.0);
            self.grad.resize(self.keys.len(), 0.0);
        }
        self.phase = Phase::Pulling;
        self.waiting = 0;
        let filter = self.cfg.compression.pull_threshold > 0.0;
        for r in 0..self.cfg.ranges.ranges() {
            let span = self.split[r as usize].clone();
            let (keys, base) = if self.job.sparse {
                if span.is_empty() {
                    continue;
                }
                (Keys::List(self.range_keys[r as usize].clone()), 0)
            } else if filter {
                (
                    Keys::All,
                    codec::held_digest(&self.range_values(r, &self.values)),
                )
            } else {
                (Keys::All, 0)
            };
            let msg = Message::PullReq {
                epoch: self.view.epoch,
                range: r,
                worker: self.id,
                incarnation: self.incarnation,
                clock: self.clock,
                keys,
                schedule: self.changes,
                base,
            };
            self.send_request(r, msg, out);
        }
        self.arm_retry(true, out);
        if self.waiting == 0 {
            self.start_compute(out);
        }
    }

    fn sample_batch(&mut self) {
        let n = (self.schedule.at(self.clock).batch_size as usize).min(self.order.len());
        self.batch.clear();
        while self.batch.len() < n {
            if self.order_pos >= self.order.len() {
                self.order.shuffle(&mut self.rng);
                self.order_pos = 0;
            }
            self.batch.push(self.order[self.order_pos]);
            self.order_pos += 1;
        }
    }

    /// Where a request for range `r` goes: pushes to the chain's head,
    /// pulls to its tail.
    fn target(&self, r: RangeId, msg: &Message) -> Option<NodeId> {
        match msg {
            Message::PushReq { .. } => self.view.head(r),
            _ => self.view.tail(r),
        }
    }

    fn send_request(&mut self, r: RangeId, msg: Message, out: &mut Vec<Command>) {
        if let Some(to) = self.target(r, &msg) {
            out.push(Command::Send {
                to,
                msg: msg.clone(),
            });
        }
        self.outstanding[r as usize] = Some(msg);
        self.waiting += 1;
    }

    fn arm_retry(&mut self, fresh: bool, out: &mut Vec<Command>) {
        self.attempt = if fresh { 0 } else { self.attempt + 1 };
        self.retry_gen += 1;
        let after = self.cfg.request_timeout * (1 << self.attempt.min(3));
        out.push(Command::SetTimer {
            timer: Timer::Retry {
                gen: self.retry_gen,
            },
            after,
        });
    }

    fn retry(&mut self, out: &mut Vec<Command>) {
        if !matches!(self.phase, Phase::Pulling | Phase::Pushing)
            || self.cfg.bugs.has(super::bugs::Bug::NoRetry)
        {
            return;
        }
        self.resend(out);
        self.arm_retry(false, out);
    }

    /// Re-sends every outstanding request, routed by the current view and
    /// stamped with its epoch.
    fn resend(&mut self, out: &mut Vec<Command>) {
        if !matches!(self.phase, Phase::Pulling | Phase::Pushing) {
            return;
        }
        for r in 0..self.outstanding.len() {
            let Some(mut msg) = self.outstanding[r].take() else {
                continue;
            };
            if let Message::PullReq { epoch, .. } | Message::PushReq { epoch, .. } = &mut msg {
                *epoch = self.view.epoch;
            }
            if let Message::PullReq { schedule, .. } = &mut msg {
                *schedule = self.changes;
            }
            if let Some(to) = self.target(r as RangeId, &msg) {
                out.push(Command::Send {
                    to,
                    msg: msg.clone(),
                });
            }
            self.outstanding[r] = Some(msg);
        }
    }

    fn on_pull_resp(
        &mut self,
        range: RangeId,
        clock: Clock,
        values: Payload,
        (held, base): (u64, u64),
        out: &mut Vec<Command>,
    ) {
        if self.phase != Phase::Pulling || clock != self.clock {
            return;
        }
        if !matches!(
            self.outstanding[range as usize],
            Some(Message::PullReq { .. })
        ) {
            return;
        }
        let span = self.split[range as usize].clone();
        let extra = if self.job.sparse {
            0
        } else {
            self.extra(range).len()
        };
        if values.len() != span.len() + extra {
            return; // Not an answer to what we asked.
        }
        if base != 0 && codec::held_digest(&self.range_values(range, &self.values)) != base {
            // Only the changes since a copy we no longer hold (an answer
            // to an earlier request, or to our previous life): the answer
            // to the current request is on its way.
            return;
        }
        self.outstanding[range as usize] = None;
        if extra == 0 {
            values.write_into(&mut self.values[span.clone()]);
        } else {
            let mut v = self.range_values(range, &self.values).into_owned();
            values.write_into(&mut v);
            let (ranges, level) = (&self.cfg.ranges, self.level);
            self.cfg
                .widen
                .scatter(ranges, level, range, &v, &mut self.values);
        }
        if held != 0 && codec::held_digest(&self.range_values(range, &self.values)) != held {
            // The server's record of our copy is wrong (our next pull's
            // digest will not match it, so that answer is complete).
            out.push(Command::Emit(Event::PullFilterMismatch {
                worker: self.id,
                range,
                clock,
            }));
        }
        self.waiting -= 1;
        if self.waiting == 0 {
            self.start_compute(out);
        }
    }

    fn start_compute(&mut self, out: &mut Vec<Command>) {
        self.phase = Phase::Computing;
        self.retry_gen += 1; // cancels the pull retry timer

        // The gradient's work on this batch, into the entries that
        // `on_compute_done` computes (the pulled keys, or every key).
        let (model, data) = (self.model(), &self.job.data.train);
        let flops = model.batch_flops(data, &self.batch, self.grad.len());
        out.push(Command::Compute {
            clock: self.clock,
            examples: self.batch.len() as u32,
            flops,
        });
    }

    /// The host has charged the compute time: compute the gradient and push.
    pub fn on_compute_done(&mut self, _now: Duration, out: &mut Vec<Command>) {
        if self.phase != Phase::Computing {
            return;
        }
        let (model, data) = (
            self.cfg.widen.model(&self.job.model, self.level),
            &self.job.data.train,
        );
        self.last_loss = if self.job.sparse {
            model.gradient_slotted(
                data,
                &self.batch,
                &self.keys,
                &self.slots,
                &self.values,
                &mut self.grad,
            )
        } else {
            let view = ParamView {
                keys: None,
                values: &self.values,
            };
            model.gradient(data, &self.batch, view, &mut self.grad)
        };
        self.phase = Phase::Pushing;
        self.waiting = 0;
        let dim = self.cfg.widen.dim(&self.cfg.ranges, self.level) as usize;
        for r in 0..self.cfg.ranges.ranges() {
            let span = self.split.get(r as usize).cloned().unwrap_or(0..0);
            let keys = if self.job.sparse {
                // The pull's keys (`begin_clock`): the same span.
                let keys = self.range_keys.get(r as usize).cloned().unwrap_or_default();
                debug_assert_eq!(*keys, self.keys[span.clone()]);
                Keys::List(keys)
            } else {
                Keys::All
            };
            let grad = if self.job.sparse {
                std::borrow::Cow::Borrowed(&self.grad[span.clone()])
            } else {
                self.range_values(r, &self.grad)
            };
            let (keys, values) = self.encoder.encode(
                &self.cfg.compression,
                dim,
                span.start,
                self.cfg.widen.extra(self.level, r),
                keys,
                &grad,
            );
            let seq = Seq {
                incarnation: self.incarnation,
                n: self.next_n,
            };
            self.next_n += 1;
            let msg = Message::PushReq {
                epoch: self.view.epoch,
                range: r,
                worker: self.id,
                seq,
                clock: self.clock,
                keys,
                values,
            };
            self.send_request(r, msg, out);
        }
        self.arm_retry(true, out);
    }

    fn on_push_ack(
        &mut self,
        now: Duration,
        range: RangeId,
        seq: Seq,
        clock: Clock,
        out: &mut Vec<Command>,
    ) {
        if self.phase != Phase::Pushing {
            return;
        }
        let slot = &mut self.outstanding[range as usize];
        let matches = matches!(slot, Some(Message::PushReq { seq: s, .. }) if *s == seq);
        if !matches {
            return;
        }
        *slot = None;
        out.push(Command::Emit(Event::PushAcked {
            worker: self.id,
            range,
            seq,
            clock,
        }));
        self.waiting -= 1;
        if self.waiting == 0 {
            self.clock = self.clock.next();
            self.begin_clock(now, out);
        }
    }
}
