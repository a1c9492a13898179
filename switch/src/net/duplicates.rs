//! The duplicate window. A request is identified by (acquirer, terminal 41, STAN 11, transmission
//! date and time 7) and its message type, a repeat counting as its original (0101 as 0100, 0421
//! as 0420); within `duplicate_window_s` a second request with the same identity gets the first
//! one's answer, is never forwarded again and never holds funds again. If the first is still in
//! flight, the duplicate waits for it. The message type is part of it because acquirers reuse an
//! authorization's STAN and time in its reversal or completion: those are new requests, and the
//! authorization's stored answer (an 0110) is no answer to them.
//!
//! The window is a sharded map (dashmap), so look-ups of different keys do not contend on one lock;
//! the order of arrival, which expiry walks, is one queue behind a mutex that every new request
//! holds for its look-up and its place (see [`DuplicateWindow::claim`]). Each key holds
//! either a pending slot or the finished answer. A pending slot gets a `watch` channel only when a
//! duplicate actually arrives while the original is in flight: duplicates are rare, and a channel
//! per request was most of the window's cost (`cargo bench --bench matching`). Expiry is by
//! monotonic time, swept in insertion order. Every claim of a key gets a generation of its own,
//! and the slot and its place in the order both carry it: a key can be claimed again after an
//! original ended without an answer (or was evicted in flight), and the old claim's leftovers
//! (its place in the order, its `Pending`) must then touch nothing of the new one's. Without
//! that, the old place in the order expired the retry's answer early, and a dropped original
//! freed its retry's pending slot, letting a third copy through as new.
//!
//! Recovery seeds the window from the journal's decisions ([`DuplicateWindow::seed`]); the
//! answer is then rebuilt from the duplicate request itself plus the recorded decision, because
//! the journal never holds the answer's bytes (they carry the PAN).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use dashmap::DashMap;
use dashmap::mapref::entry::Entry;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::domain::{AcquirerId, Mti, Stan, TerminalId, TransmissionDateTime};
use crate::events::DecisionRecord;

/// The duplicate key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DupKey {
    pub acquirer: AcquirerId,
    pub terminal: TerminalId,
    pub stan: Stan,
    pub transmission: TransmissionDateTime,
}

/// What the window is keyed by: the request's duplicate key and its message type, repeats
/// folded into their originals.
type WindowKey = (DupKey, u16);

fn window_key(key: DupKey, mti: Mti) -> WindowKey {
    (key, mti.original().value())
}

/// A finished answer.
#[derive(Debug, Clone)]
pub enum Answer {
    /// The encoded answer message, as sent.
    Bytes(Bytes),
    /// Recovered from the journal: rebuild the answer from the duplicate request.
    Recorded(std::sync::Arc<DecisionRecord>),
}

/// Which claim of a key a slot or a place in the order belongs to.
type Generation = u64;

/// The claim a completed answer belongs to, for [`DuplicateWindow::replace`]: the key may have
/// been claimed again by then (after an eviction), and that later claim's answer is not the
/// one to replace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClaimId(Generation);

struct Slot {
    generation: Generation,
    state: SlotState,
}

enum SlotState {
    /// The original is in flight; the sender exists once a duplicate waits for it.
    Pending(Option<watch::Sender<Option<Answer>>>),
    Done(Answer),
}

impl Slot {
    fn is_done(&self) -> bool {
        matches!(self.state, SlotState::Done(_))
    }
}

/// What [`DuplicateWindow::claim`] found.
pub enum Claim {
    /// First sighting: process it, then [`Pending::complete`].
    New(Pending),
    /// Seen before: wait for (or take) the first answer.
    Duplicate(Waiter),
}

/// The original's side of a pending slot. Dropping it without completing frees the key, so a
/// retry is processed afresh (the original produced no answer), and waiting duplicates get none.
pub struct Pending {
    /// False once completed; a `Pending` dropped while still live frees its slot.
    live: bool,
    key: WindowKey,
    generation: Generation,
    window: Arc<DuplicateWindow>,
}

/// A duplicate's side.
pub struct Waiter(WaiterInner);

enum WaiterInner {
    Ready(Answer),
    Wait(watch::Receiver<Option<Answer>>),
}

impl Waiter {
    /// The original's answer, or `None` if the original ended without one.
    pub async fn answer(self) -> Option<Answer> {
        match self.0 {
            WaiterInner::Ready(a) => Some(a),
            WaiterInner::Wait(mut rx) => loop {
                if let Some(a) = rx.borrow_and_update().clone() {
                    return Some(a);
                }
                if rx.changed().await.is_err() {
                    return rx.borrow().clone();
                }
            },
        }
    }
}

/// The window. It lives in an `Arc`: a [`Pending`] refers back to it.
pub struct DuplicateWindow {
    /// foldhash rather than SipHash: still seeded at random per process (the key is chosen by
    /// acquirers, so an unkeyed hash would invite collisions), and several times cheaper.
    map: DashMap<WindowKey, Slot, foldhash::fast::RandomState>,
    order: Mutex<VecDeque<(Instant, WindowKey, Generation)>>,
    generations: AtomicU64,
    window: Duration,
    entries_max: usize,
}

impl DuplicateWindow {
    /// Shards of the map: a growth step moves at most this fraction of the entries.
    pub const SHARDS: usize = 256;

    /// A window of `window` length holding at most `entries_max` keys (oldest evicted first).
    ///
    /// Neither table may grow in one long step: a growth step moves every entry of its table
    /// under a lock that other requests need, and in a server that is a stall of the whole
    /// acquirer side. With dashmap's default 8 shards, all of them doubled within a few
    /// thousand claims of each other at about 915k entries, 11 ms each (at 458k, 6–7 ms), and
    /// the order queue's doubling at 524k copies 29 MB under its mutex (`cargo run --release -p
    /// switch --example duplicate_window_pauses`; docs/performance.md). So the map has
    /// [`Self::SHARDS`] shards, each growing on its own by a 256th of the entries (as an
    /// account's records do in [`crate::issuing`]'s split map), and the order queue is
    /// allocated for `entries_max` at once (it holds one more for a moment before the oldest is
    /// evicted; the config caps the limit). That allocation is address space, not memory: the
    /// queue is written front to back, so its pages become resident as the window fills, as
    /// they did when it grew. Sizing the map at once would also have removed its pauses, but
    /// keys land on its pages at random, so it would be resident early, and an idle switch
    /// would hold its control bytes in huge pages (measured: 22 → 57 MB RSS at start).
    pub fn new(window: Duration, entries_max: usize) -> DuplicateWindow {
        let capacity = entries_max.saturating_add(1);
        DuplicateWindow {
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
        // Distinct is all that matters, not order between threads.
        self.generations.fetch_add(1, Ordering::Relaxed)
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Looks up `key`, registering it as pending when it is new.
    ///
    /// The order's lock is taken once and held across the look-up: the sweep must come first
    /// (a key past the window is new again) and the new key's place goes at the back, and
    /// locking for each was two lock round trips per request, the lock's cache line moving
    /// between the cores each time. The order's lock is always taken before a map shard's.
    pub fn claim(self: &Arc<Self>, key: DupKey, mti: Mti, now: Instant) -> Claim {
        let key = window_key(key, mti);
        let mut order = self.order.lock().unwrap_or_else(|p| p.into_inner());
        self.expire(&mut order, now);
        match self.map.entry(key) {
            Entry::Occupied(mut e) => Claim::Duplicate(Waiter(match &mut e.get_mut().state {
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
                Claim::New(Pending {
                    live: true,
                    key,
                    generation,
                    window: Arc::clone(self),
                })
            }
        }
    }

    /// Seeds a finished answer (recovery). `age` is how long ago it was given.
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

    /// Records `key`'s arrival, then evicts beyond `entries_max`.
    fn remember(&self, at: Instant, key: WindowKey, generation: Generation) {
        let mut order = self.order.lock().unwrap_or_else(|p| p.into_inner());
        order.push_back((at, key, generation));
        self.expire(&mut order, at);
    }

    /// Pops places off the front of the order: beyond `entries_max`, or older than the window.
    /// A place whose generation is not the slot's is a leftover of an earlier claim of the key
    /// (one that ended without an answer): it goes, and the slot stays. It still counted
    /// against `entries_max` until then, which keeps the limit a bound on the order's memory.
    fn expire(&self, order: &mut VecDeque<(Instant, WindowKey, Generation)>, now: Instant) {
        while let Some(&(at, k, generation)) = order.front() {
            if order.len() <= self.entries_max && now.saturating_duration_since(at) < self.window {
                break;
            }
            let evicted = order.len() > self.entries_max;
            order.pop_front();
            if evicted {
                self.map.remove_if(&k, |_, s| s.generation == generation);
            } else if self
                .map
                .remove_if(&k, |_, s| s.generation == generation && s.is_done())
                .is_none()
                && self.map.get(&k).is_some_and(|s| s.generation == generation)
            {
                // A still-pending original keeps its slot until it completes (its duplicates
                // must still find it), and a place in the order as the newest entry: without
                // one, its answer would stay in the map for good once it came, out of reach of
                // both the window and the limit.
                order.push_back((now, k, generation));
            }
        }
    }

    /// Replaces the finished answer of `key` given under `claim`, if the window still holds it
    /// (an approval the switch had to reverse because the acquirer never received it). An answer
    /// of a later claim of the key is left alone.
    pub fn replace(&self, key: &DupKey, mti: Mti, claim: ClaimId, answer: Answer) {
        let key = &window_key(*key, mti);
        if let Some(mut slot) = self.map.get_mut(key)
            && slot.generation == claim.0
            && slot.is_done()
        {
            slot.state = SlotState::Done(answer);
        }
    }

    /// Forgets keys older than the window.
    pub fn sweep(&self, now: Instant) {
        let mut order = self.order.lock().unwrap_or_else(|p| p.into_inner());
        self.expire(&mut order, now);
    }
}

impl Pending {
    pub fn key(&self) -> &DupKey {
        &self.key.0
    }

    /// Records the answer and wakes any waiting duplicates. Returns the claim the answer is kept
    /// under, or `None` when a later claim of the key owns it now.
    pub fn complete(mut self, answer: Answer) -> Option<ClaimId> {
        self.live = false;
        // The window keeps its own exact-size copy of an encoded answer: the caller's comes from
        // a buffer with room to spare (256 bytes for an answer of about 150), and sharing it
        // would also allocate a reference count. A window of a million answers is the switch's
        // largest memory, so these bytes count.
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
                (tx, Some(ClaimId(self.generation)))
            }
            // Evicted while in flight (the window was full), and the key claimed again since:
            // that later claim owns the key now, and its own answer is the one its duplicates
            // must get. This one's waiters went with the evicted slot.
            Entry::Occupied(_) => (None, None),
            // Evicted while in flight and not claimed since: remember the answer again, as the
            // newest entry, so it counts against the limit and expires like any other (without
            // its place in the order it stayed in the map for good).
            Entry::Vacant(v) => {
                let generation = self.window.next_generation();
                v.insert(Slot {
                    generation,
                    state: SlotState::Done(kept),
                });
                self.window.remember(Instant::now(), self.key, generation);
                (None, Some(ClaimId(generation)))
            }
        };
        if let Some(tx) = waiting {
            let _ = tx.send(Some(answer));
        }
        kept_as
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        if self.live {
            // The original ended without an answer: its duplicates see the channel close. Only
            // its own slot goes, and that is still pending (only its own `complete`, which
            // clears `live`, makes it done); the check keeps that true if the code changes.
            self.window.map.remove_if(&self.key, |_, s| {
                s.generation == self.generation && !s.is_done()
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(stan: u32) -> DupKey {
        DupKey {
            acquirer: AcquirerId::parse("100001").expect("acq"),
            terminal: TerminalId::from_field(b"TERM0001").expect("tid"),
            stan: Stan::new(stan).expect("stan"),
            transmission: TransmissionDateTime::from_field(b"1125221800").expect("t"),
        }
    }

    /// Claims and answers each STAN in `stans` (new keys, so the window fills).
    fn answer_all(w: &Arc<DuplicateWindow>, stans: std::ops::Range<u32>, at: Instant) {
        for s in stans {
            if let Claim::New(p) = w.claim(key(s), Mti::AUTH_REQUEST, at) {
                p.complete(Answer::Bytes(Bytes::new()));
            }
        }
    }

    fn bytes_of(a: Option<Answer>) -> Option<Bytes> {
        match a {
            Some(Answer::Bytes(b)) => Some(b),
            _ => None,
        }
    }

    #[tokio::test]
    async fn duplicate_waits_for_the_original() {
        let w = Arc::new(DuplicateWindow::new(Duration::from_secs(60), 1000));
        let now = Instant::now();
        let Claim::New(p) = w.claim(key(1), Mti::AUTH_REQUEST, now) else {
            panic!("first is new")
        };
        let Claim::Duplicate(d) = w.claim(key(1), Mti::AUTH_REQUEST, now) else {
            panic!("second is a duplicate")
        };
        let waiter = tokio::spawn(d.answer());
        p.complete(Answer::Bytes(Bytes::from_static(b"answer")));
        assert_eq!(
            bytes_of(waiter.await.expect("join")),
            Some(Bytes::from_static(b"answer"))
        );
        let Claim::Duplicate(d) = w.claim(key(1), Mti::AUTH_REQUEST, now) else {
            panic!("still a duplicate")
        };
        assert_eq!(
            bytes_of(d.answer().await),
            Some(Bytes::from_static(b"answer"))
        );
        assert!(
            matches!(w.claim(key(2), Mti::AUTH_REQUEST, now), Claim::New(_)),
            "other STAN is new"
        );
    }

    #[tokio::test]
    async fn dropped_original_frees_the_key() {
        let w = Arc::new(DuplicateWindow::new(Duration::from_secs(60), 1000));
        let now = Instant::now();
        let Claim::New(p) = w.claim(key(1), Mti::AUTH_REQUEST, now) else {
            panic!("new")
        };
        let Claim::Duplicate(d) = w.claim(key(1), Mti::AUTH_REQUEST, now) else {
            panic!("dup")
        };
        drop(p);
        assert!(d.answer().await.is_none());
        assert!(matches!(
            w.claim(key(1), Mti::AUTH_REQUEST, now),
            Claim::New(_)
        ));
    }

    #[tokio::test(start_paused = true)]
    async fn expires_after_the_window_and_respects_the_cap() {
        let w = Arc::new(DuplicateWindow::new(Duration::from_secs(300), 2));
        let t0 = Instant::now();
        let Claim::New(p) = w.claim(key(1), Mti::AUTH_REQUEST, t0) else {
            panic!("new")
        };
        p.complete(Answer::Bytes(Bytes::from_static(b"a")));
        assert!(matches!(
            w.claim(key(1), Mti::AUTH_REQUEST, t0 + Duration::from_secs(299)),
            Claim::Duplicate(_)
        ));
        assert!(matches!(
            w.claim(key(1), Mti::AUTH_REQUEST, t0 + Duration::from_secs(301)),
            Claim::New(_)
        ));
        let t1 = t0 + Duration::from_secs(400);
        answer_all(&w, 10..13, t1);
        assert!(w.len() <= 2);
        assert!(
            matches!(w.claim(key(10), Mti::AUTH_REQUEST, t1), Claim::New(_)),
            "oldest evicted at the cap"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn an_answer_evicted_in_flight_stays_within_the_limit_and_expires() {
        let w = Arc::new(DuplicateWindow::new(Duration::from_secs(60), 2));
        let t0 = Instant::now();
        let Claim::New(first) = w.claim(key(1), Mti::AUTH_REQUEST, t0) else {
            panic!("new");
        };
        // Two more arrivals evict the first while it is still in flight.
        answer_all(&w, 2..4, t0);
        first.complete(Answer::Bytes(Bytes::from_static(b"late")));
        assert!(w.len() <= 2, "{} keys held, limit 2", w.len());
        // Its repeat still gets the answer...
        let Claim::Duplicate(d) = w.claim(key(1), Mti::AUTH_REQUEST, Instant::now()) else {
            panic!("the late answer was not remembered");
        };
        assert_eq!(bytes_of(d.answer().await).as_deref(), Some(&b"late"[..]));
        // ...until the window has passed.
        tokio::time::advance(Duration::from_secs(61)).await;
        w.sweep(Instant::now());
        assert_eq!(w.len(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn an_answer_that_outlives_its_window_in_flight_expires_once_given() {
        let w = Arc::new(DuplicateWindow::new(Duration::from_secs(60), 1000));
        let Claim::New(slow) = w.claim(key(1), Mti::AUTH_REQUEST, Instant::now()) else {
            panic!("new");
        };
        // Its window passes while it is still in flight: duplicates still find it.
        tokio::time::advance(Duration::from_secs(61)).await;
        w.sweep(Instant::now());
        assert!(matches!(
            w.claim(key(1), Mti::AUTH_REQUEST, Instant::now()),
            Claim::Duplicate(_)
        ));
        slow.complete(Answer::Bytes(Bytes::from_static(b"slow")));
        assert_eq!(w.len(), 1);
        // Once answered, it goes when the window has passed again, as any entry does.
        tokio::time::advance(Duration::from_secs(61)).await;
        w.sweep(Instant::now());
        assert_eq!(w.len(), 0, "the late answer stayed in the window for good");
        assert!(matches!(
            w.claim(key(1), Mti::AUTH_REQUEST, Instant::now()),
            Claim::New(_)
        ));
    }

    #[tokio::test(start_paused = true)]
    async fn a_dropped_originals_place_in_the_order_does_not_expire_its_retry() {
        let w = Arc::new(DuplicateWindow::new(Duration::from_secs(60), 1000));
        let Claim::New(first) = w.claim(key(1), Mti::AUTH_REQUEST, Instant::now()) else {
            panic!("new");
        };
        drop(first);
        // The retry comes half a window later and is answered.
        tokio::time::advance(Duration::from_secs(30)).await;
        let Claim::New(retry) = w.claim(key(1), Mti::AUTH_REQUEST, Instant::now()) else {
            panic!("the key was not freed");
        };
        retry.complete(Answer::Bytes(Bytes::from_static(b"retry")));
        // The first claim's window has passed, the retry's has not: its repeat gets its answer.
        tokio::time::advance(Duration::from_secs(31)).await;
        w.sweep(Instant::now());
        let Claim::Duplicate(d) = w.claim(key(1), Mti::AUTH_REQUEST, Instant::now()) else {
            panic!("the retry's answer expired with the dropped original's place");
        };
        assert_eq!(bytes_of(d.answer().await).as_deref(), Some(&b"retry"[..]));
        // And it goes once its own window has passed.
        tokio::time::advance(Duration::from_secs(30)).await;
        w.sweep(Instant::now());
        assert_eq!(w.len(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn an_original_evicted_in_flight_leaves_a_later_claim_of_its_key_alone() {
        let w = Arc::new(DuplicateWindow::new(Duration::from_secs(60), 2));
        let t0 = Instant::now();
        let Claim::New(first) = w.claim(key(1), Mti::AUTH_REQUEST, t0) else {
            panic!("new");
        };
        // Two arrivals evict it while it is in flight; then its key is claimed again.
        answer_all(&w, 2..4, t0);
        let Claim::New(second) = w.claim(key(1), Mti::AUTH_REQUEST, t0) else {
            panic!("the evicted key is claimed anew");
        };
        // The first ends without an answer: the second's claim must stand, so a third copy
        // waits for the second's answer instead of going through as new.
        drop(first);
        let Claim::Duplicate(third) = w.claim(key(1), Mti::AUTH_REQUEST, t0) else {
            panic!("a dropped evicted original freed a later claim of its key");
        };
        let third = tokio::spawn(third.answer());
        second.complete(Answer::Bytes(Bytes::from_static(b"second")));
        assert_eq!(
            bytes_of(third.await.expect("join")).as_deref(),
            Some(&b"second"[..])
        );

        // An evicted original that does complete leaves the later claim's answer in place too.
        let Claim::New(first) = w.claim(key(20), Mti::AUTH_REQUEST, t0) else {
            panic!("new");
        };
        answer_all(&w, 21..23, t0);
        let Claim::New(second) = w.claim(key(20), Mti::AUTH_REQUEST, t0) else {
            panic!("the evicted key is claimed anew");
        };
        first.complete(Answer::Bytes(Bytes::from_static(b"first")));
        let Claim::Duplicate(d) = w.claim(key(20), Mti::AUTH_REQUEST, t0) else {
            panic!("dup");
        };
        let d = tokio::spawn(d.answer());
        second.complete(Answer::Bytes(Bytes::from_static(b"second")));
        assert_eq!(
            bytes_of(d.await.expect("join")).as_deref(),
            Some(&b"second"[..]),
            "a repeat of the second claim got the evicted first's answer"
        );
        assert!(w.len() <= 2, "{} keys held, limit 2", w.len());
    }

    #[tokio::test]
    async fn evicting_a_dropped_originals_place_leaves_its_retry() {
        let w = Arc::new(DuplicateWindow::new(Duration::from_secs(60), 2));
        let now = Instant::now();
        let Claim::New(first) = w.claim(key(1), Mti::AUTH_REQUEST, now) else {
            panic!("new");
        };
        drop(first);
        let Claim::New(retry) = w.claim(key(1), Mti::AUTH_REQUEST, now) else {
            panic!("the key was not freed");
        };
        retry.complete(Answer::Bytes(Bytes::from_static(b"retry")));
        // A third key takes the order past its limit: the first claim's leftover place goes.
        answer_all(&w, 2..3, now);
        let Claim::Duplicate(d) = w.claim(key(1), Mti::AUTH_REQUEST, now) else {
            panic!("evicting the dropped original's place evicted its retry");
        };
        assert_eq!(bytes_of(d.answer().await).as_deref(), Some(&b"retry"[..]));
    }

    #[tokio::test(start_paused = true)]
    async fn replace_changes_only_the_answer_of_its_own_claim() {
        let w = Arc::new(DuplicateWindow::new(Duration::from_secs(60), 1));
        let t0 = Instant::now();
        // What a repeat of STAN 1 gets after the first claim's answer is replaced by "reversed".
        let repeat_after_replacing = |first_claim| {
            w.replace(
                &key(1),
                Mti::AUTH_REQUEST,
                first_claim,
                Answer::Bytes(Bytes::from_static(b"reversed")),
            );
            match w.claim(key(1), Mti::AUTH_REQUEST, t0) {
                Claim::Duplicate(d) => d.answer(),
                Claim::New(_) => panic!("the answer left the window"),
            }
        };
        let Claim::New(first) = w.claim(key(1), Mti::AUTH_REQUEST, t0) else {
            panic!("new");
        };
        let first_claim = first
            .complete(Answer::Bytes(Bytes::from_static(b"approved")))
            .expect("kept");
        // Replaced while the window still holds it: a repeat gets the new answer.
        let answer = repeat_after_replacing(first_claim).await;
        assert_eq!(bytes_of(answer).as_deref(), Some(&b"reversed"[..]));
        // Evicted by another key, then claimed and answered again: the first claim's
        // replacement must not touch the second's answer.
        answer_all(&w, 2..3, t0);
        let Claim::New(second) = w.claim(key(1), Mti::AUTH_REQUEST, t0) else {
            panic!("the evicted key is claimed anew");
        };
        second.complete(Answer::Bytes(Bytes::from_static(b"second")));
        let answer = repeat_after_replacing(first_claim).await;
        assert_eq!(
            bytes_of(answer).as_deref(),
            Some(&b"second"[..]),
            "an earlier claim's replacement overwrote a later claim's answer"
        );
    }

    #[tokio::test]
    async fn every_waiting_duplicate_gets_the_answer_or_the_end() {
        let w = Arc::new(DuplicateWindow::new(Duration::from_secs(60), 1000));
        let now = Instant::now();
        let Claim::New(p) = w.claim(key(7), Mti::AUTH_REQUEST, now) else {
            panic!("first is new")
        };
        let waiters: Vec<_> = (0..2)
            .map(|_| match w.claim(key(7), Mti::AUTH_REQUEST, now) {
                Claim::Duplicate(d) => tokio::spawn(d.answer()),
                Claim::New(_) => panic!("a duplicate"),
            })
            .collect();
        p.complete(Answer::Bytes(Bytes::from_static(b"first")));
        for waiter in waiters {
            assert_eq!(
                bytes_of(waiter.await.expect("join")),
                Some(Bytes::from_static(b"first"))
            );
        }

        // An original that ends without an answer: its duplicate learns so, and the key is free.
        let Claim::New(p) = w.claim(key(8), Mti::AUTH_REQUEST, now) else {
            panic!("new")
        };
        let Claim::Duplicate(d) = w.claim(key(8), Mti::AUTH_REQUEST, now) else {
            panic!("a duplicate")
        };
        let waiter = tokio::spawn(d.answer());
        drop(p);
        assert!(waiter.await.expect("join").is_none());
        assert!(matches!(
            w.claim(key(8), Mti::AUTH_REQUEST, now),
            Claim::New(_)
        ));
    }

    #[tokio::test]
    async fn the_message_type_is_part_of_the_identity_and_a_repeat_is_its_original() {
        let w = Arc::new(DuplicateWindow::new(Duration::from_secs(60), 1000));
        let now = Instant::now();
        let Claim::New(p) = w.claim(key(9), Mti::AUTH_REQUEST, now) else {
            panic!("new")
        };
        p.complete(Answer::Bytes(Bytes::from_static(b"0110")));
        // A reversal that reuses the authorization's STAN and time is a new request...
        assert!(matches!(
            w.claim(key(9), Mti::REVERSAL_REQUEST, now),
            Claim::New(_)
        ));
        // ...while a repeat of the authorization (0101) is its duplicate.
        let repeat = Mti::from_digits(b"0101").expect("mti");
        let Claim::Duplicate(d) = w.claim(key(9), repeat, now) else {
            panic!("a repeat is a duplicate")
        };
        assert_eq!(
            bytes_of(d.answer().await),
            Some(Bytes::from_static(b"0110"))
        );
    }
}
