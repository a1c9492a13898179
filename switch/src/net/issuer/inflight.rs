//! The response-matching map of one issuer link: requests in flight keyed by the STAN the link
//! gave them, with their deadlines.
//!
//! It owns STAN allocation (the next STAN not in flight, so STANs are unique on a link by
//! construction), matching a reply to its request, and finding requests whose deadline passed.
//! It leaves what a pending request *is* (`V`) and what to do with a reply or a timeout to the
//! link task ([`super::link`]), which is its only owner, so nothing here is locked.
//!
//! Why a map plus a heap: a reply removes its entry in O(1) from the map; deadlines are found
//! in order from a min-heap. A reply does not search the heap, so its deadline stays behind
//! as a stale slot; each entry carries an id so a stale slot is told apart from a later request
//! that reuses the same STAN, and the heap is rebuilt from the map once stale slots outnumber
//! live ones by [`HEAP_SLACK`]. It is public so that `benches/matching.rs` can time it apart from
//! the sockets.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::hash::{BuildHasherDefault, Hasher};

use tokio::time::Instant;

use crate::domain::Stan;

/// The heap of deadlines is rebuilt from the map once it holds this many more entries than
/// there are requests.
pub const HEAP_SLACK: usize = 1024;

/// A cheap hasher for STAN keys: one multiplication (Fibonacci hashing). STANs come from this
/// map's allocator or from acquirers (the core forwards under the acquirer's STAN); a peer that
/// picked STANs to collide in this hash could only slow its own link's map, whose size
/// `inflight_max` bounds, so SipHash's protection would buy little for its cost.
#[derive(Default)]
struct StanHasher(u64);

impl Hasher for StanHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 << 8 | u64::from(b)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }

    fn write_u32(&mut self, n: u32) {
        self.0 = u64::from(n).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

struct Entry<V> {
    /// Tells this entry's heap slot from a stale one left by an earlier use of the same STAN.
    id: u64,
    deadline: Instant,
    value: V,
}

/// Requests in flight on one link, by STAN.
pub struct InFlight<V> {
    map: HashMap<u32, Entry<V>, BuildHasherDefault<StanHasher>>,
    /// Deadlines, earliest first: (deadline, entry id, STAN).
    heap: BinaryHeap<Reverse<(Instant, u64, u32)>>,
    next_id: u64,
}

impl<V> Default for InFlight<V> {
    fn default() -> Self {
        InFlight {
            map: HashMap::default(),
            heap: BinaryHeap::new(),
            next_id: 0,
        }
    }
}

impl<V> InFlight<V> {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// The next STAN after `last` that is not in flight, and advances `last` to it. Terminates
    /// because a link's in-flight map is far smaller than the STAN space (999,999).
    pub fn next_free_stan(&self, last: &mut Stan) -> Stan {
        loop {
            *last = last.next();
            if !self.map.contains_key(&last.value()) {
                return *last;
            }
        }
    }

    /// Adds a request sent under `stan`, due by `deadline`. Replaces any entry with that STAN;
    /// the caller makes sure there is none (it allocates with [`InFlight::next_free_stan`], or
    /// waits until a STAN it is given is free).
    pub fn insert(&mut self, stan: Stan, deadline: Instant, value: V) {
        let id = self.next_id;
        self.next_id += 1;
        self.heap.push(Reverse((deadline, id, stan.value())));
        self.map.insert(
            stan.value(),
            Entry {
                id,
                deadline,
                value,
            },
        );
        if self.heap.len() > 2 * self.map.len() + HEAP_SLACK {
            self.heap = self
                .map
                .iter()
                .map(|(&s, e)| Reverse((e.deadline, e.id, s)))
                .collect();
        }
    }

    /// The request in flight under `stan`, if any.
    pub fn get(&self, stan: u32) -> Option<&V> {
        self.map.get(&stan).map(|e| &e.value)
    }

    /// Takes the request in flight under `stan` (its reply arrived).
    pub fn remove(&mut self, stan: u32) -> Option<V> {
        self.map.remove(&stan).map(|e| e.value)
    }

    /// The earliest deadline still in the heap. It may belong to an answered request (a stale
    /// slot), which only makes the caller's timer fire early and find nothing.
    pub fn earliest_deadline(&self) -> Option<Instant> {
        self.heap.peek().map(|Reverse((t, _, _))| *t)
    }

    /// Takes one request whose deadline is at or before `now`, skipping stale slots; `None` once
    /// no deadline has passed.
    pub fn pop_expired(&mut self, now: Instant) -> Option<(u32, V)> {
        while let Some(&Reverse((t, id, stan))) = self.heap.peek() {
            if t > now {
                return None;
            }
            self.heap.pop();
            if self.map.get(&stan).is_some_and(|e| e.id == id) {
                return self.map.remove(&stan).map(|e| (stan, e.value));
            }
        }
        None
    }

    /// Takes every request in flight (the connection is gone).
    pub fn drain(&mut self) -> impl Iterator<Item = (u32, V)> + '_ {
        self.heap.clear();
        self.map.drain().map(|(s, e)| (s, e.value))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn replies_match_and_deadlines_come_in_order() {
        let t0 = Instant::now();
        let mut m = InFlight::new();
        let mut last = Stan::new(999_998).expect("stan");
        let a = m.next_free_stan(&mut last);
        m.insert(a, t0 + Duration::from_millis(30), "a");
        let b = m.next_free_stan(&mut last);
        m.insert(b, t0 + Duration::from_millis(10), "b");
        assert_eq!(
            (a.value(), b.value()),
            (999_999, 1),
            "STANs wrap past 999999"
        );
        assert_eq!(m.get(a.value()), Some(&"a"));
        assert_eq!(m.remove(b.value()), Some("b"));
        // b's deadline is a stale slot now: it must not expire anything.
        assert_eq!(m.pop_expired(t0 + Duration::from_millis(20)), None);
        assert_eq!(
            m.pop_expired(t0 + Duration::from_millis(30)),
            Some((a.value(), "a"))
        );
        assert!(m.is_empty());
    }

    #[test]
    fn a_reused_stan_is_not_expired_by_its_predecessors_deadline() {
        let t0 = Instant::now();
        let mut m = InFlight::new();
        let s = Stan::new(5).expect("stan");
        m.insert(s, t0, 1);
        assert_eq!(m.remove(5), Some(1));
        m.insert(s, t0 + Duration::from_secs(1), 2);
        assert_eq!(m.pop_expired(t0), None);
        assert_eq!(m.get(5), Some(&2));
    }

    #[test]
    fn stans_skip_those_in_flight_and_wrap_past_zero() {
        let t0 = Instant::now();
        let mut m = InFlight::new();
        for s in [5, 6, 999_999, 1] {
            m.insert(Stan::new(s).expect("stan"), t0, ());
        }
        let mut last = Stan::new(4).expect("stan");
        assert_eq!(m.next_free_stan(&mut last).value(), 7);
        assert_eq!(last.value(), 7);
        let mut last = Stan::new(999_998).expect("stan");
        assert_eq!(m.next_free_stan(&mut last).value(), 2);
    }

    #[test]
    fn stan_hasher_spreads_sequential_keys() {
        let h = |n: u32| {
            let mut s = StanHasher::default();
            s.write_u32(n);
            s.finish()
        };
        assert_ne!(h(1) >> 57, h(2) >> 57);
        assert_ne!(h(1), h(2));
    }

    #[test]
    fn the_heap_stays_bounded_when_replies_leave_stale_slots() {
        let t0 = Instant::now();
        let mut m = InFlight::new();
        let mut last = Stan::new(1).expect("stan");
        for i in 0..10 * HEAP_SLACK {
            let s = m.next_free_stan(&mut last);
            m.insert(s, t0 + Duration::from_secs(i as u64), ());
            m.remove(s.value());
        }
        assert!(m.heap.len() <= HEAP_SLACK + 1, "heap {}", m.heap.len());
    }
}
