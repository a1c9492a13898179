//! The duplicate window. A request is identified by (acquirer, terminal 41, STAN 11, transmission
//! date and time 7) and its message type, a repeat counting as its original (0101 as 0100, 0421
//! as 0420); within `duplicate_window_s` a second request with the same identity gets the first
//! one's answer, is never forwarded again and never holds funds again. If the first is still in
//! flight, the duplicate waits for it. The message type is part of it because acquirers reuse an
//! authorization's STAN and time in its reversal or completion: those are new requests, and the
//! authorization's stored answer (an 0110) is no answer to them.
//!
//! The window is a sharded map (dashmap), so acquirers never contend on one lock. Each key holds
//! either a pending slot or the finished answer. A pending slot gets a `watch` channel only when a
//! duplicate actually arrives while the original is in flight: duplicates are rare, and a channel
//! per request was most of the window's cost (`cargo bench --bench matching`). Expiry is by
//! monotonic time, swept in insertion order. Recovery seeds the window from the journal's
//! decisions ([`DuplicateWindow::seed`]); the answer is then rebuilt from the duplicate request
//! itself plus the recorded decision, because the journal never holds the answer's bytes (they
//! carry the PAN).

use std::collections::VecDeque;
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

enum Slot {
    /// The original is in flight; the sender exists once a duplicate waits for it.
    Pending(Option<watch::Sender<Option<Answer>>>),
    Done(Answer),
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
    order: Mutex<VecDeque<(Instant, WindowKey)>>,
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
            window,
            entries_max,
        }
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Looks up `key`, registering it as pending when it is new.
    pub fn claim(self: &Arc<Self>, key: DupKey, mti: Mti, now: Instant) -> Claim {
        let key = window_key(key, mti);
        self.sweep(now);
        match self.map.entry(key) {
            Entry::Occupied(mut e) => Claim::Duplicate(Waiter(match e.get_mut() {
                Slot::Pending(Some(tx)) => WaiterInner::Wait(tx.subscribe()),
                Slot::Pending(tx) => {
                    let (sender, rx) = watch::channel(None);
                    *tx = Some(sender);
                    WaiterInner::Wait(rx)
                }
                Slot::Done(a) => WaiterInner::Ready(a.clone()),
            })),
            Entry::Vacant(v) => {
                v.insert(Slot::Pending(None));
                self.remember(now, key);
                Claim::New(Pending {
                    live: true,
                    key,
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
        self.map.insert(key, Slot::Done(answer));
        self.remember(at, key);
    }

    /// Records `key`'s arrival, then evicts beyond `entries_max`.
    fn remember(&self, at: Instant, key: WindowKey) {
        let mut order = self.order.lock().unwrap_or_else(|p| p.into_inner());
        order.push_back((at, key));
        self.expire(&mut order, at);
    }

    fn expire(&self, order: &mut VecDeque<(Instant, WindowKey)>, now: Instant) {
        while let Some(&(at, k)) = order.front() {
            if order.len() <= self.entries_max && now.saturating_duration_since(at) < self.window {
                break;
            }
            let evicted = order.len() > self.entries_max;
            order.pop_front();
            if evicted {
                self.map.remove(&k);
            } else if self
                .map
                .remove_if(&k, |_, s| matches!(s, Slot::Done(_)))
                .is_none()
                && self.map.contains_key(&k)
            {
                // A still-pending original keeps its slot until it completes (its duplicates
                // must still find it), and a place in the order as the newest entry: without
                // one, its answer would stay in the map for good once it came, out of reach of
                // both the window and the limit.
                order.push_back((now, k));
            }
        }
    }

    /// Replaces the finished answer of `key`, if the window still holds it (an approval the
    /// switch had to reverse because the acquirer never received it).
    pub fn replace(&self, key: &DupKey, mti: Mti, answer: Answer) {
        let key = &window_key(*key, mti);
        if let Some(mut slot) = self.map.get_mut(key)
            && matches!(*slot, Slot::Done(_))
        {
            *slot = Slot::Done(answer);
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

    /// Records the answer and wakes any waiting duplicates.
    pub fn complete(mut self, answer: Answer) {
        self.live = false;
        // The window keeps its own exact-size copy of an encoded answer: the caller's comes from
        // a buffer with room to spare (256 bytes for an answer of about 150), and sharing it
        // would also allocate a reference count. A window of a million answers is the switch's
        // largest memory, so these bytes count.
        let kept = match &answer {
            Answer::Bytes(b) => Answer::Bytes(Bytes::copy_from_slice(b)),
            Answer::Recorded(r) => Answer::Recorded(Arc::clone(r)),
        };
        let waiting = match self.window.map.get_mut(&self.key) {
            Some(mut slot) => match std::mem::replace(&mut *slot, Slot::Done(kept)) {
                Slot::Pending(tx) => tx,
                Slot::Done(_) => None,
            },
            // Evicted while in flight (the window was full): remember the answer again, as the
            // newest entry, so it counts against the limit and expires like any other (without
            // its place in the order it stayed in the map for good).
            None => {
                self.window.map.insert(self.key, Slot::Done(kept));
                self.window.remember(Instant::now(), self.key);
                None
            }
        };
        if let Some(tx) = waiting {
            let _ = tx.send(Some(answer));
        }
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        if self.live {
            // The original ended without an answer: its duplicates see the channel close.
            self.window
                .map
                .remove_if(&self.key, |_, s| matches!(s, Slot::Pending(_)));
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
        for s in 10..13 {
            if let Claim::New(p) = w.claim(key(s), Mti::AUTH_REQUEST, t1) {
                p.complete(Answer::Bytes(Bytes::new()));
            }
        }
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
        for s in 2..4 {
            if let Claim::New(p) = w.claim(key(s), Mti::AUTH_REQUEST, t0) {
                p.complete(Answer::Bytes(Bytes::new()));
            }
        }
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
