//! The duplicate window as it was before the ring (a sharded map of keys to slots, plus an
//! order queue), but for the rule the ring brought with it that a pending original is never
//! evicted and does not count against the limit (`expire`), kept as the model the ring is
//! checked against: the property test in
//! `super::tests` drives both with the same operations and expects the same outcomes. Its
//! comments were dropped; its reasoning is in the ring's module docs and in git history
//! (`055945c`, switch/src/net/duplicates.rs).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use dashmap::DashMap;
use dashmap::mapref::entry::Entry;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::domain::Mti;

use super::{Answer, DupKey, Waiter, WaiterInner, WindowKey, window_key};

type Generation = u64;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ModelClaimId(Generation);

struct Slot {
    generation: Generation,
    state: SlotState,
}

enum SlotState {
    Pending(Option<watch::Sender<Option<Answer>>>),
    Done(Answer),
}

impl Slot {
    fn is_done(&self) -> bool {
        matches!(self.state, SlotState::Done(_))
    }
}

pub enum ModelClaim {
    New(ModelPending),
    Duplicate(Waiter),
}

pub struct ModelPending {
    live: bool,
    key: WindowKey,
    generation: Generation,
    window: Arc<ModelWindow>,
}

pub struct ModelWindow {
    map: DashMap<WindowKey, Slot, foldhash::fast::RandomState>,
    order: Mutex<VecDeque<(Instant, WindowKey, Generation)>>,
    generations: AtomicU64,
    window: Duration,
    entries_max: usize,
}

impl ModelWindow {
    pub const SHARDS: usize = 256;

    pub fn new(window: Duration, entries_max: usize) -> ModelWindow {
        let capacity = entries_max.saturating_add(1);
        ModelWindow {
            map: DashMap::with_capacity_and_hasher_and_shard_amount(
                0,
                foldhash::fast::RandomState::default(),
                Self::SHARDS,
            ),
            order: Mutex::new(VecDeque::with_capacity(capacity)),
            generations: AtomicU64::new(0),
            window,
            entries_max,
        }
    }

    fn next_generation(&self) -> Generation {
        self.generations.fetch_add(1, Ordering::Relaxed)
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    pub fn claim(self: &Arc<Self>, key: DupKey, mti: Mti, now: Instant) -> ModelClaim {
        let key = window_key(key, mti);
        let mut order = self.order.lock().unwrap_or_else(|p| p.into_inner());
        self.expire(&mut order, now);
        match self.map.entry(key) {
            Entry::Occupied(mut e) => ModelClaim::Duplicate(Waiter(match &mut e.get_mut().state {
                SlotState::Pending(Some(tx)) => WaiterInner::Wait(tx.subscribe()),
                SlotState::Pending(tx) => {
                    let (sender, rx) = watch::channel(None);
                    *tx = Some(sender);
                    WaiterInner::Wait(rx)
                }
                SlotState::Done(a) => WaiterInner::Ready(a.clone()),
            })),
            Entry::Vacant(v) => {
                let generation = self.next_generation();
                v.insert(Slot {
                    generation,
                    state: SlotState::Pending(None),
                });
                order.push_back((now, key, generation));
                self.expire(&mut order, now);
                ModelClaim::New(ModelPending {
                    live: true,
                    key,
                    generation,
                    window: Arc::clone(self),
                })
            }
        }
    }

    pub fn seed(&self, key: DupKey, mti: Mti, answer: Answer, age: Duration, now: Instant) {
        let key = window_key(key, mti);
        if age >= self.window {
            return;
        }
        let at = now.checked_sub(age).unwrap_or(now);
        let generation = self.next_generation();
        self.map.insert(
            key,
            Slot {
                generation,
                state: SlotState::Done(answer),
            },
        );
        self.remember(at, key, generation);
    }

    fn remember(&self, at: Instant, key: WindowKey, generation: Generation) {
        let mut order = self.order.lock().unwrap_or_else(|p| p.into_inner());
        order.push_back((at, key, generation));
        self.expire(&mut order, at);
    }

    fn pending(&self) -> usize {
        self.map.iter().filter(|s| !s.is_done()).count()
    }

    /// An original that ends while the window is over its limit (only pending originals keep it
    /// there) lets the window evict again.
    fn expire_if_over(&self) {
        let mut order = self.order.lock().unwrap_or_else(|p| p.into_inner());
        if order.len() - self.pending() > self.entries_max {
            self.expire(&mut order, Instant::now());
        }
    }

    /// Past the window or over the limit, an answer is forgotten and a pending original goes to
    /// the back, each at most once a call (the window's rule since it stopped evicting pending
    /// originals at the limit).
    fn expire(&self, order: &mut VecDeque<(Instant, WindowKey, Generation)>, now: Instant) {
        let mut moves = order.len();
        // Originals in flight do not count against the limit; moving one changes no count.
        let pending = self.pending();
        while let Some(&(at, k, generation)) = order.front() {
            if order.len() - pending <= self.entries_max
                && now.saturating_duration_since(at) < self.window
            {
                break;
            }
            let in_flight = self
                .map
                .get(&k)
                .is_some_and(|s| s.generation == generation && !s.is_done());
            if in_flight {
                if moves == 0 {
                    break;
                }
                moves -= 1;
                order.pop_front();
                order.push_back((now, k, generation));
            } else {
                order.pop_front();
                self.map.remove_if(&k, |_, s| s.generation == generation);
            }
        }
    }

    pub fn replace(&self, key: &DupKey, mti: Mti, claim: ModelClaimId, answer: Answer) {
        let key = &window_key(*key, mti);
        if let Some(mut slot) = self.map.get_mut(key)
            && slot.generation == claim.0
            && slot.is_done()
        {
            slot.state = SlotState::Done(answer);
        }
    }

    pub fn sweep(&self, now: Instant) {
        let mut order = self.order.lock().unwrap_or_else(|p| p.into_inner());
        self.expire(&mut order, now);
    }
}

impl ModelPending {
    pub fn complete(mut self, answer: Answer) -> Option<ModelClaimId> {
        self.live = false;
        let kept = match &answer {
            Answer::Bytes(b) => Answer::Bytes(Bytes::copy_from_slice(b)),
            Answer::Recorded(r) => Answer::Recorded(Arc::clone(r)),
        };
        let (waiting, kept_as) = match self.window.map.entry(self.key) {
            Entry::Occupied(mut slot) if slot.get().generation == self.generation => {
                let tx = match std::mem::replace(&mut slot.get_mut().state, SlotState::Done(kept)) {
                    SlotState::Pending(tx) => tx,
                    SlotState::Done(_) => None,
                };
                (tx, Some(ModelClaimId(self.generation)))
            }
            Entry::Occupied(_) => (None, None),
            Entry::Vacant(v) => {
                let generation = self.window.next_generation();
                v.insert(Slot {
                    generation,
                    state: SlotState::Done(kept),
                });
                self.window.remember(Instant::now(), self.key, generation);
                (None, Some(ModelClaimId(generation)))
            }
        };
        self.window.expire_if_over();
        if let Some(tx) = waiting {
            let _ = tx.send(Some(answer));
        }
        kept_as
    }
}

impl Drop for ModelPending {
    fn drop(&mut self) {
        if self.live {
            self.window.map.remove_if(&self.key, |_, s| {
                s.generation == self.generation && !s.is_done()
            });
            self.window.expire_if_over();
        }
    }
}
