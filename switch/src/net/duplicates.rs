//! The duplicate window. A request is identified by (acquirer, terminal 41, STAN 11, transmission
//! date and time 7) and its message type, a repeat counting as its original (0101 as 0100, 0421
//! as 0420); within `duplicate_window_s` a second request with the same identity gets the first
//! one's answer, is never forwarded again and never holds funds again. If the first is still in
//! flight, the duplicate waits for it. The message type is part of it because acquirers reuse an
//! authorization's STAN and time in its reversal or completion: those are new requests, and the
//! authorization's stored answer (an 0110) is no answer to them.
//!
//! The window is one ring of places in arrival order, each holding its key and its state (a
//! pending original, or the finished answer), plus an index from the key's hash to the place's
//! generation: its position in the ring, counted from the window's creation. Both sit behind one
//! mutex that a request holds for its look-up and its place (see [`DuplicateWindow::claim`]).
//! The shape is for the steady state, in which the window is full and every new request evicts
//! the oldest: the eviction pops the ring's front (memory read in order) and leaves the key's
//! index entry where it is. An entry whose generation has left the ring is stale and matches
//! nothing; a table sweeps out its stale entries only when it is full and would otherwise grow,
//! one sequential pass over a 256th of the index. Removing each entry as its place left was two
//! cache misses per request, in a table of tens of megabytes read at random. The original's
//! completion finds its place by generation, a slot of the ring written a moment before, not
//! through a hash look-up. The map it replaces held the keys and answers themselves, so each of
//! the three steps missed the cache on a fat entry (17.8% of the switch's samples once full,
//! docs/performance.md, "The duplicate window once it is full"). The ring is held in blocks of
//! 1 MiB, allocated and freed as it moves, so memory follows the places held ([`Ring`]).
//!
//! A pending place gets a `watch` channel only when a duplicate actually arrives while the
//! original is in flight: duplicates are rare, and a channel per request was most of the
//! window's cost (`cargo bench --bench matching`). Expiry is by monotonic time, swept in arrival
//! order by each claim and, for a switch gone quiet, by a timer ([`DuplicateWindow::sweep_every`]).
//! Every claim of a key has a generation of its own and its answer is kept under it: a key can
//! be claimed again after an original ended without an answer (or its place was replaced by a
//! recovery seed), and the old claim's leftovers must then touch nothing of the new one's.
//! Without that, the old place in the order expired the retry's answer early, and a dropped
//! original freed its retry's pending slot, letting a third copy through as new.
//!
//! A pending original is never evicted, by the window or by the limit: it moves to the back of
//! the ring until it completes. Evicting it (as the map before did at the limit) left its waiting
//! duplicates without an answer and let a repeat arriving before its answer through as new, to
//! be forwarded and to hold funds a second time. So `duplicate_entries_max` bounds the answers
//! kept, and the originals in flight come on top of it, bounded by the listener's
//! `connections_max` times each session's `inflight_per_connection_max`. They do not count
//! against the limit: counted, a window over it with only originals in flight moved every one of
//! them on every call. A moved original's answer is then kept for a window from its last move,
//! not from its arrival: that errs toward answering a repeat, never toward processing it twice.
//!
//! Recovery seeds the window from the journal's decisions ([`DuplicateWindow::seed`]); the
//! answer is then rebuilt from the duplicate request itself plus the recorded decision, because
//! the journal never holds the answer's bytes (they carry the PAN).

use std::collections::VecDeque;
use std::hash::BuildHasher;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use arrayvec::ArrayVec;
use bytes::Bytes;
use hashbrown::HashTable;
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

/// A place's position in the ring, counted from the window's creation: [`Ring::get`] finds the
/// place of a generation for as long as the ring holds it.
type Generation = u64;

/// The claim a completed answer belongs to, for [`DuplicateWindow::replace`]: the key may have
/// been claimed again by then (after an eviction), and that later claim's answer is not the
/// one to replace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClaimId(Generation);

/// One arrival, in the ring.
struct Place {
    at: Instant,
    /// The key's hash, kept so that removing the place's index entry reads no key.
    hash: u64,
    key: WindowKey,
    /// The claim this place serves: its own generation, or, for a pending original that was
    /// moved to the back (past the window, or at the front of a window over its limit), the
    /// generation of the place it was claimed in.
    claim: Generation,
    state: PlaceState,
}

enum PlaceState {
    /// The original is in flight; the sender exists once a duplicate waits for it.
    Pending(Option<watch::Sender<Option<Answer>>>),
    Done(Kept),
    /// No longer the key's: its original ended without an answer, or a later seed of its key
    /// replaced it. The place stays until it reaches the front, so the ring's positions stay
    /// generations.
    Vacated,
}

/// Encoded answers up to this many bytes are kept in their place in the ring. The switch's answers
/// to loadgen's whole mix are 122–171 bytes; a larger one (field 55, say) gets an allocation.
const INLINE_ANSWER_BYTES: usize = 176;

/// A finished answer as the window keeps it. Inline, because an allocation per answer cost a
/// call to the allocator when the answer came and a cache-missing free when it was evicted, a
/// million answers later; in a place of its own, it also costs no more memory than the
/// allocation did (the size class above 150 bytes, plus the `Bytes` handle).
enum Kept {
    Inline(ArrayVec<u8, INLINE_ANSWER_BYTES>),
    Other(Answer),
}

impl Kept {
    fn new(answer: &Answer) -> Kept {
        match answer {
            Answer::Bytes(b) => match ArrayVec::try_from(&b[..]) {
                Ok(inline) => Kept::Inline(inline),
                // An exact-size copy: the caller's comes from a buffer with room to spare.
                Err(_) => Kept::Other(Answer::Bytes(Bytes::copy_from_slice(b))),
            },
            Answer::Recorded(r) => Kept::Other(Answer::Recorded(Arc::clone(r))),
        }
    }

    fn answer(&self) -> Answer {
        match self {
            Kept::Inline(bytes) => Answer::Bytes(Bytes::copy_from_slice(bytes)),
            Kept::Other(a) => a.clone(),
        }
    }
}

/// An index entry: which place holds a key. Each key in the window has exactly one live entry,
/// pointing at a place in the ring that is not [`PlaceState::Vacated`]; the entries of places
/// that have left the ring are stale (generation below `first`) until a sweep removes them.
#[derive(Clone, Copy)]
struct Indexed {
    hash: u64,
    generation: Generation,
}

/// What [`DuplicateWindow::claim`] found.
pub enum Claim {
    /// First sighting: process it, then [`Pending::complete`].
    New(Pending),
    /// Seen before: wait for (or take) the first answer.
    Duplicate(Waiter),
}

/// The original's side of a pending place. Dropping it without completing frees the key, so a
/// retry is processed afresh (the original produced no answer), and waiting duplicates get none.
pub struct Pending {
    /// False once completed; a `Pending` dropped while still live frees its place.
    live: bool,
    key: WindowKey,
    hash: u64,
    claim: Generation,
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
    inner: Mutex<Inner>,
    /// foldhash rather than SipHash: still seeded at random per process (the key is chosen by
    /// acquirers, so an unkeyed hash would invite collisions), and several times cheaper.
    hasher: foldhash::fast::RandomState,
    window: Duration,
    entries_max: usize,
    /// The `now` of each finished pass of [`Self::sweep_every`], for tests to wait on.
    #[cfg(test)]
    timer_passes: watch::Sender<Option<Instant>>,
}

struct Inner {
    /// The index, in [`DuplicateWindow::SHARDS`] tables picked by bits of the hash that the
    /// tables themselves do not use (see [`shard_of`]).
    index: Box<[HashTable<Indexed>]>,
    /// Keys in the window: live index entries, stale ones not counted.
    keys: usize,
    /// Places holding a pending original. They never count against the limit: an original in
    /// flight is not evicted, and counting it made a window over its limit with nothing but
    /// originals in flight turn all of them over on every call.
    pending: usize,
    places: Ring,
    /// Pending places moved to the back so far, for tests of the work done.
    #[cfg(test)]
    moved: usize,
}

/// The index table a hash belongs to. A table uses the hash's low bits for its bucket and its
/// top seven as a tag, so the shard takes bits 48–55: keys sharing them share a table, and would
/// share a tag if the shard came from the top bits, making every probe a match.
/// `tables` is a power of two.
fn shard_of(hash: u64, tables: usize) -> usize {
    (hash >> 48) as usize & (tables - 1)
}

/// Places per block of the ring: 4,096 places of 256 bytes, 1 MiB.
const BLOCK_PLACES: usize = 4096;

/// The ring: places in arrival order, in blocks allocated as the back needs them and freed as the
/// front leaves them. A ring buffer allocated for `duplicate_entries_max` at once cycles its
/// write position through all of it, so after that many arrivals every page of it is resident
/// (256 MB at the default limit), however few keys a quiet switch's window holds; and the limit
/// would have been reserved at start. Blocks keep memory to the places held, give no growth step
/// (a block is never copied), and cost one division per look-up.
#[derive(Default)]
struct Ring {
    /// Each full but the back one; the front one's first `front_taken` are gone.
    blocks: VecDeque<Vec<Option<Place>>>,
    front_taken: usize,
    len: usize,
    /// The generation of the front place: how many places have left the ring.
    first: Generation,
    /// The last block emptied, kept for the next one needed: in the steady state a block is
    /// freed and another allocated every 4,096 requests, and the allocator returned the freed
    /// pages to the kernel, so each new block faulted them in again, zeroed.
    spare: Option<Vec<Option<Place>>>,
}

impl Ring {
    fn len(&self) -> usize {
        self.len
    }

    /// The generation the next place pushed gets.
    fn next(&self) -> Generation {
        self.first + self.len as u64
    }

    /// Which block, and where in it, holds the place of `generation`, if the ring holds it.
    fn slot(&self, generation: Generation) -> Option<(usize, usize)> {
        let i = usize::try_from(generation.checked_sub(self.first)?).ok()?;
        let at = self.front_taken + (i < self.len).then_some(i)?;
        Some((at / BLOCK_PLACES, at % BLOCK_PLACES))
    }

    fn get(&self, generation: Generation) -> Option<&Place> {
        let (block, at) = self.slot(generation)?;
        self.blocks.get(block)?.get(at)?.as_ref()
    }

    fn get_mut(&mut self, generation: Generation) -> Option<&mut Place> {
        let (block, at) = self.slot(generation)?;
        self.blocks.get_mut(block)?.get_mut(at)?.as_mut()
    }

    fn front(&self) -> Option<&Place> {
        self.get(self.first)
    }

    fn push_back(&mut self, place: Place) {
        if self.blocks.back().is_none_or(|b| b.len() == BLOCK_PLACES) {
            let block = self
                .spare
                .take()
                .unwrap_or_else(|| Vec::with_capacity(BLOCK_PLACES));
            self.blocks.push_back(block);
        }
        if let Some(back) = self.blocks.back_mut() {
            back.push(Some(place));
            self.len += 1;
        }
    }

    /// The front place and its generation.
    fn pop_front(&mut self) -> Option<(Generation, Place)> {
        if self.len == 0 {
            return None;
        }
        let front = self.blocks.front_mut()?;
        let place = front.get_mut(self.front_taken)?.take()?;
        let generation = self.first;
        self.advance();
        Some((generation, place))
    }

    /// Drops the front place where it lies. Every eviction comes here: a place is four cache
    /// lines, and moving one out only to drop it was a 256-byte copy each time. `perf` (remote
    /// traffic) put 1.4% of the switch's samples on that copy; most of it was the front place's
    /// cache miss, which the read of its state now takes instead (about 0.7%).
    fn discard_front(&mut self) {
        if self.len == 0 {
            return;
        }
        if let Some(slot) = self
            .blocks
            .front_mut()
            .and_then(|b| b.get_mut(self.front_taken))
        {
            *slot = None;
        }
        self.advance();
    }

    /// The front place has gone: the next one is the front, and an emptied block is kept.
    fn advance(&mut self) {
        self.first += 1;
        self.front_taken += 1;
        self.len -= 1;
        if self.front_taken == BLOCK_PLACES {
            if let Some(mut emptied) = self.blocks.pop_front() {
                emptied.clear();
                self.spare = Some(emptied);
            }
            self.front_taken = 0;
        }
    }
}

impl Inner {
    /// Places that count against the limit: all but the pending originals.
    fn answers(&self) -> usize {
        self.places.len().saturating_sub(self.pending)
    }

    /// Replaces the state of the place of `generation`, keeping `pending` in step; the old state,
    /// or `None` when the ring does not hold that place. Every move of a place from one state to
    /// another after [`Inner::push`] comes here, so the count cannot miss one.
    fn replace_state(&mut self, generation: Generation, state: PlaceState) -> Option<PlaceState> {
        let place = self.places.get_mut(generation)?;
        let old = std::mem::replace(&mut place.state, state);
        let now_pending = matches!(place.state, PlaceState::Pending(_));
        if matches!(old, PlaceState::Pending(_)) {
            self.pending -= 1;
        }
        if now_pending {
            self.pending += 1;
        }
        Some(old)
    }

    fn table(&mut self, hash: u64) -> &mut HashTable<Indexed> {
        let tables = self.index.len();
        &mut self.index[shard_of(hash, tables)]
    }

    /// The generation of the place holding `key`, if the window has it. A stale entry of the key
    /// matches nothing: the ring has no place for its generation.
    fn find(&self, hash: u64, key: &WindowKey) -> Option<Generation> {
        self.index[shard_of(hash, self.index.len())]
            .find(hash, |e| {
                e.hash == hash && self.places.get(e.generation).is_some_and(|p| p.key == *key)
            })
            .map(|e| e.generation)
    }

    /// Removes a live entry at once (a vacated place: rare).
    fn unindex(&mut self, hash: u64, generation: Generation) {
        if let Ok(e) = self
            .table(hash)
            .find_entry(hash, |e| e.generation == generation)
        {
            e.remove();
            self.keys -= 1;
        }
    }

    /// Appends a place for a new claim of `key` and indexes it. The key must not be in the index.
    fn push(&mut self, at: Instant, hash: u64, key: WindowKey, state: PlaceState) -> Generation {
        let generation = self.places.next();
        if matches!(state, PlaceState::Pending(_)) {
            self.pending += 1;
        }
        self.places.push_back(Place {
            at,
            hash,
            key,
            claim: generation,
            state,
        });
        let first = self.places.first;
        let table = self.table(hash);
        if table.len() == table.capacity() {
            table.retain(|e| e.generation >= first);
            // Still mostly live: grow now, or the next sweep would come a few inserts later.
            if table.len() > table.capacity() / 4 * 3 {
                table.reserve(table.capacity() - table.len() + 1, |e| e.hash);
            }
        }
        table.insert_unique(hash, Indexed { hash, generation }, |e| e.hash);
        self.keys += 1;
        generation
    }

    /// The generation of the place serving `claim` of `key`: the place it was claimed in, or the
    /// one it moved to. `None` once it was evicted or vacated.
    fn serving(&self, hash: u64, key: &WindowKey, claim: Generation) -> Option<Generation> {
        match self.places.get(claim) {
            Some(p) if p.claim == claim && !matches!(p.state, PlaceState::Vacated) => Some(claim),
            _ => self
                .find(hash, key)
                .filter(|g| self.places.get(*g).is_some_and(|p| p.claim == claim)),
        }
    }

    /// Pops places off the front of the ring: beyond `entries_max`, or older than the window.
    /// Evicts what is past the window or over the limit, at most `budget` places, and says
    /// whether it stopped for the budget. A pending original is never evicted: it goes to the
    /// back, at most `moves` times in all (the caller's count, which this lowers), so that a ring
    /// of nothing but pending originals over the limit ends the call instead of turning over.
    fn expire(
        &mut self,
        now: Instant,
        window: Duration,
        entries_max: usize,
        budget: usize,
        moves: &mut usize,
    ) -> bool {
        for _ in 0..budget {
            let Some(front) = self.places.front() else {
                return false;
            };
            let over = self.answers() > entries_max;
            if !over && now.saturating_duration_since(front.at) < window {
                return false;
            }
            match front.state {
                PlaceState::Pending(_) if *moves == 0 => return false,
                PlaceState::Pending(_) => *moves -= 1,
                // An answer past the window or beyond the limit, dropped where it lies. Its
                // index entry is stale from here on.
                PlaceState::Done(_) => {
                    self.places.discard_front();
                    self.keys -= 1;
                    continue;
                }
                PlaceState::Vacated => {
                    self.places.discard_front();
                    continue;
                }
            }
            // A still-pending original keeps the key until it completes, in a place at the
            // back, past the window and over the limit alike: its duplicates must find it, or a
            // repeat arriving before its answer would be processed as new. Without a place, its
            // answer would stay for good once it came, out of reach of both the window and the
            // limit. Over the limit the ring then holds more than `entries_max` places, as many
            // more as there are originals in flight, which the acquirer sessions' own limits
            // bound.
            let Some((generation, place)) = self.places.pop_front() else {
                return false;
            };
            let PlaceState::Pending(tx) = place.state else {
                continue; // not reached: the front was pending just above
            };
            #[cfg(test)]
            {
                self.moved += 1;
            }
            let moved_to = self.places.next();
            if let Some(e) = self
                .table(place.hash)
                .find_mut(place.hash, |e| e.generation == generation)
            {
                e.generation = moved_to;
            }
            self.places.push_back(Place {
                at: now,
                state: PlaceState::Pending(tx),
                ..place
            });
        }
        true
    }
}

impl DuplicateWindow {
    /// Index tables: a growth step moves at most this fraction of the entries.
    pub const SHARDS: usize = 256;
    /// Places one round of [`Self::sweep`] evicts under the lock: a block of the ring, a few
    /// hundred microseconds.
    pub const SWEEP_PLACES: usize = BLOCK_PLACES;

    /// A window of `window` length holding at most `entries_max` answers (oldest evicted
    /// first), beside the originals in flight, which are never evicted.
    ///
    /// Neither the index nor the ring may grow in one long step: a growth step moves every entry
    /// of its table under the lock that every request needs, a stall of the whole acquirer side.
    /// With one table per map, all of them doubled within a few thousand claims of each other
    /// at about 915k entries, 11 ms each (at 458k, 6–7 ms), and the order queue's doubling at
    /// 524k copied 29 MB under its mutex (`cargo run --release -p switch --example
    /// duplicate_window_pauses`; docs/performance.md). So the index has [`Self::SHARDS`]
    /// tables, each growing on its own by a 256th of the entries (as an account's records do in
    /// [`crate::issuing`]'s split map), and the ring grows by blocks that are never copied
    /// ([`Ring`]). Sizing the index at once would also have removed its pauses, but keys land on
    /// its pages at random, so it would be resident early.
    pub fn new(window: Duration, entries_max: usize) -> DuplicateWindow {
        Self::with_tables(window, entries_max, Self::SHARDS)
    }

    /// [`Self::new`] with `tables` index tables (a power of two): tests use one, so that a few
    /// keys share a table and its sweeps.
    fn with_tables(window: Duration, entries_max: usize, tables: usize) -> DuplicateWindow {
        DuplicateWindow {
            inner: Mutex::new(Inner {
                index: (0..tables.next_power_of_two())
                    .map(|_| HashTable::new())
                    .collect(),
                keys: 0,
                pending: 0,
                #[cfg(test)]
                moved: 0,
                places: Ring::default(),
            }),
            hasher: foldhash::fast::RandomState::default(),
            window,
            entries_max,
            #[cfg(test)]
            timer_passes: watch::Sender::new(None),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // Every change under the lock leaves the index and the ring consistent before it can
        // panic, so a poisoned lock's state is still sound.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// An original that ends turns its pending place into an answer (or a vacated place), which
    /// counts against the limit: what the limit then asks for is evicted now rather than at the
    /// next claim.
    fn expire_if_over(&self, inner: &mut Inner) {
        if inner.answers() > self.entries_max {
            self.expire(inner, Instant::now());
        }
    }

    fn expire(&self, inner: &mut Inner, now: Instant) {
        let mut moves = inner.places.len();
        inner.expire(now, self.window, self.entries_max, usize::MAX, &mut moves);
    }

    pub fn len(&self) -> usize {
        self.lock().keys
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Looks up `key`, registering it as pending when it is new.
    ///
    /// The lock is taken once and held across the look-up: the sweep must come first (a key past
    /// the window is new again) and a new key's place goes at the back, and locking for each was
    /// two lock round trips per request, the lock's cache line moving between the cores each
    /// time. The hash is computed before the lock is taken.
    pub fn claim(self: &Arc<Self>, key: DupKey, mti: Mti, now: Instant) -> Claim {
        let key = window_key(key, mti);
        let hash = self.hasher.hash_one(key);
        let mut inner = self.lock();
        self.expire(&mut inner, now);
        if let Some(generation) = inner.find(hash, &key)
            && let Some(place) = inner.places.get_mut(generation)
        {
            match &mut place.state {
                PlaceState::Pending(Some(tx)) => {
                    return Claim::Duplicate(Waiter(WaiterInner::Wait(tx.subscribe())));
                }
                PlaceState::Pending(tx) => {
                    let (sender, rx) = watch::channel(None);
                    *tx = Some(sender);
                    return Claim::Duplicate(Waiter(WaiterInner::Wait(rx)));
                }
                PlaceState::Done(kept) => {
                    return Claim::Duplicate(Waiter(WaiterInner::Ready(kept.answer())));
                }
                // Not reachable through the index; were it, the key would be treated as new.
                PlaceState::Vacated => inner.unindex(hash, generation),
            }
        }
        let claim = inner.push(now, hash, key, PlaceState::Pending(None));
        self.expire(&mut inner, now);
        drop(inner);
        Claim::New(Pending {
            live: true,
            key,
            hash,
            claim,
            window: Arc::clone(self),
        })
    }

    /// Seeds a finished answer (recovery). `age` is how long ago it was given. A later seed of
    /// the same key replaces an earlier one.
    pub fn seed(&self, key: DupKey, mti: Mti, answer: Answer, age: Duration, now: Instant) {
        let key = window_key(key, mti);
        if age >= self.window {
            return;
        }
        let at = now.checked_sub(age).unwrap_or(now);
        let hash = self.hasher.hash_one(key);
        let mut inner = self.lock();
        if let Some(generation) = inner.find(hash, &key) {
            inner.unindex(hash, generation);
            inner.replace_state(generation, PlaceState::Vacated);
        }
        inner.push(at, hash, key, PlaceState::Done(Kept::new(&answer)));
        self.expire(&mut inner, at);
    }

    /// Replaces the finished answer of `key` given under `claim`, if the window still holds it
    /// (an approval the switch had to reverse because the acquirer never received it). An answer
    /// of a later claim of the key is left alone.
    pub fn replace(&self, key: &DupKey, mti: Mti, claim: ClaimId, answer: Answer) {
        let key = window_key(*key, mti);
        let hash = self.hasher.hash_one(key);
        let mut inner = self.lock();
        if let Some(generation) = inner.serving(hash, &key, claim.0)
            && let Some(place) = inner.places.get_mut(generation)
            && let PlaceState::Done(kept) = &mut place.state
        {
            *kept = Kept::new(&answer);
        }
    }

    /// Forgets keys older than the window, [`Self::SWEEP_PLACES`] at a time: a claim waits for
    /// the lock between two rounds, never for the whole sweep.
    pub fn sweep(&self, now: Instant) {
        let mut moves = self.lock().places.len();
        while self.lock().expire(
            now,
            self.window,
            self.entries_max,
            Self::SWEEP_PLACES,
            &mut moves,
        ) {}
    }

    /// Sweeps every `every` until `stop`. Claims expire what is old as they come, so this is for
    /// a switch gone quiet: without it, its last answers, and the ring's blocks that hold them,
    /// stay until the next request, which then pays for evicting them all.
    pub async fn sweep_every(
        self: Arc<Self>,
        every: Duration,
        stop: tokio_util::sync::CancellationToken,
    ) {
        let mut tick = tokio::time::interval_at(Instant::now() + every, every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                () = stop.cancelled() => return,
            }
            // Off the runtime's workers: a window of a million keys gone quiet at once is a
            // few milliseconds of eviction.
            let w = Arc::clone(&self);
            let now = Instant::now();
            if tokio::task::spawn_blocking(move || w.sweep(now))
                .await
                .is_err()
            {
                tracing::error!("duplicate window sweep failed");
            }
            #[cfg(test)]
            self.timer_passes.send_replace(Some(now));
        }
    }

    /// What must hold between any two calls, or the first thing that does not: each live index
    /// entry points at a place of its key's hash that is not vacated, `keys` counts them, no
    /// key has two, and the ring holds at most `entries_max` places that are not pending
    /// originals.
    #[cfg(test)]
    fn invariants(&self) -> Result<(), String> {
        let inner = self.lock();
        let mut live = Vec::new();
        for e in inner.index.iter().flat_map(|t| t.iter()) {
            if e.generation < inner.places.first {
                continue;
            }
            let Some(place) = inner.places.get(e.generation) else {
                return Err(format!("entry {} past the ring's back", e.generation));
            };
            if matches!(place.state, PlaceState::Vacated) || place.hash != e.hash {
                return Err(format!(
                    "entry {} at a vacated or other place",
                    e.generation
                ));
            }
            live.push(place.key);
        }
        if live.len() != inner.keys {
            return Err(format!(
                "{} live entries, {} keys counted",
                live.len(),
                inner.keys
            ));
        }
        let distinct: std::collections::HashSet<_> = live.iter().collect();
        if distinct.len() != live.len() {
            return Err("a key with two live entries".into());
        }
        // Beyond the limit, only pending originals: every other place over it was evicted.
        let pending = (inner.places.first..inner.places.next())
            .filter(|&g| {
                inner
                    .places
                    .get(g)
                    .is_some_and(|p| matches!(p.state, PlaceState::Pending(_)))
            })
            .count();
        if pending != inner.pending {
            return Err(format!(
                "{pending} pending places, {} counted",
                inner.pending
            ));
        }
        if inner.places.len() - pending > self.entries_max {
            return Err(format!(
                "{} places held, {pending} of them pending",
                inner.places.len()
            ));
        }
        Ok(())
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
        // The window keeps its own copy (see `Kept`): the caller's comes from a buffer with
        // room to spare (256 bytes for an answer of about 150), and sharing it would also
        // allocate a reference count. A window of a million answers is the switch's largest
        // memory, so these bytes count.
        let kept = Kept::new(&answer);
        let window = &self.window;
        let mut inner = window.lock();
        let (waiting, kept_as) = match inner.serving(self.hash, &self.key, self.claim) {
            Some(generation) => {
                let waiting = match inner.replace_state(generation, PlaceState::Done(kept)) {
                    Some(PlaceState::Pending(tx)) => tx,
                    Some(PlaceState::Done(_) | PlaceState::Vacated) | None => None,
                };
                (waiting, Some(ClaimId(self.claim)))
            }
            // The place is gone while in flight (a recovery seed of the key replaced it; pending
            // originals are not evicted), and the key claimed again since: that later claim
            // owns the key now, and its own answer is the one its duplicates must get.
            None if inner.find(self.hash, &self.key).is_some() => (None, None),
            // The place is gone and the key not claimed since: remember the answer again, as the
            // newest entry, so it counts against the limit and expires like any other.
            None => {
                let now = Instant::now();
                let generation = inner.push(now, self.hash, self.key, PlaceState::Done(kept));
                window.expire(&mut inner, now);
                (None, Some(ClaimId(generation)))
            }
        };
        window.expire_if_over(&mut inner);
        drop(inner);
        if let Some(tx) = waiting {
            let _ = tx.send(Some(answer));
        }
        kept_as
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        if self.live {
            // The original ended without an answer: its place is vacated and the key is free.
            // Its duplicates see the channel close once the sender drops, after the lock.
            let mut inner = self.window.lock();
            let Some(generation) = inner.serving(self.hash, &self.key, self.claim) else {
                return;
            };
            let mut waiting = None;
            if inner
                .places
                .get(generation)
                .is_some_and(|p| matches!(p.state, PlaceState::Pending(_)))
            {
                waiting = inner.replace_state(generation, PlaceState::Vacated);
                inner.unindex(self.hash, generation);
            }
            self.window.expire_if_over(&mut inner);
            drop(inner);
            drop(waiting);
        }
    }
}

#[cfg(test)]
#[path = "duplicates_model.rs"]
mod model;

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

    /// New claims of `stans`, left in flight.
    fn claim_all(
        w: &Arc<DuplicateWindow>,
        stans: std::ops::Range<u32>,
        at: Instant,
    ) -> Vec<Pending> {
        stans
            .map(|s| match w.claim(key(s), Mti::AUTH_REQUEST, at) {
                Claim::New(p) => p,
                Claim::Duplicate(_) => panic!("key {s} is not new"),
            })
            .collect()
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

    #[tokio::test]
    async fn answers_kept_inline_or_not_come_back_whole() {
        let w = Arc::new(DuplicateWindow::new(Duration::from_secs(60), 1000));
        let now = Instant::now();
        for (stan, len) in [(1, 0), (2, 171), (3, INLINE_ANSWER_BYTES), (4, 300)] {
            let answer: Bytes = (0..len).map(|i| i as u8).collect();
            let Claim::New(p) = w.claim(key(stan), Mti::AUTH_REQUEST, now) else {
                panic!("new");
            };
            p.complete(Answer::Bytes(answer.clone()));
            let Claim::Duplicate(d) = w.claim(key(stan), Mti::AUTH_REQUEST, now) else {
                panic!("a duplicate");
            };
            assert_eq!(bytes_of(d.answer().await), Some(answer), "{len} bytes");
        }
        // A place stays within four cache lines with its answer inline, in the ring's blocks too.
        assert!(
            std::mem::size_of::<Option<Place>>() <= 256,
            "a place is {} bytes",
            std::mem::size_of::<Option<Place>>()
        );
    }

    fn numbered(claim: Generation) -> Place {
        Place {
            at: Instant::now(),
            hash: 0,
            key: window_key(key(1), Mti::AUTH_REQUEST),
            claim,
            state: PlaceState::Vacated,
        }
    }

    #[test]
    fn the_ring_finds_and_pops_places_across_its_blocks() {
        let mut ring = Ring::default();
        let n = 3 * BLOCK_PLACES as u64 + 5;
        for i in 0..n {
            ring.push_back(numbered(i));
        }
        assert_eq!(ring.len(), n as usize);
        for i in 0..n {
            assert_eq!(ring.get(i).map(|p| p.claim), Some(i));
        }
        assert!(ring.get(n).is_none());
        for i in 0..5000 {
            assert_eq!(ring.pop_front().map(|(_, p)| p.claim), Some(i));
        }
        // The first block is gone with its last place; the rest still answer by generation.
        assert_eq!(ring.blocks.len(), 3);
        assert_eq!(ring.front().map(|p| p.claim), Some(5000));
        assert!(ring.get(4999).is_none(), "a place that left is still found");
        assert_eq!(ring.get(6000).map(|p| p.claim), Some(6000));
        ring.get_mut(6000).expect("place").claim = 77;
        assert_eq!(ring.get(6000).map(|p| p.claim), Some(77));
        while ring.pop_front().is_some() {}
        assert_eq!(ring.len(), 0);
        assert!(ring.front().is_none());
        ring.push_back(numbered(9));
        assert_eq!(ring.front().map(|p| p.claim), Some(9));
        assert_eq!(ring.next(), n + 1);
        assert!(ring.blocks.len() <= 2);
    }

    #[test]
    fn a_quiet_windows_ring_holds_only_the_blocks_it_uses() {
        // A switch at 100 requests a second with a 10-second window: about 1,000 keys held,
        // whatever the limit, and after 100,000 requests still only the blocks they need.
        let w = Arc::new(DuplicateWindow::new(Duration::from_secs(10), 1_000_000));
        let t0 = Instant::now();
        for i in 0..100_000u32 {
            let at = t0 + Duration::from_millis(u64::from(i) * 10);
            if let Claim::New(p) = w.claim(key(i + 1), Mti::AUTH_REQUEST, at) {
                p.complete(Answer::Bytes(Bytes::from_static(b"answer")));
            }
        }
        assert!((999..=1001).contains(&w.len()), "{} keys held", w.len());
        assert!(
            w.lock().places.blocks.len() <= 2,
            "blocks kept after they emptied"
        );
        assert!(w.lock().places.spare.is_some(), "no block kept for reuse");
    }

    #[tokio::test(start_paused = true)]
    async fn a_switch_gone_quiet_lets_go_of_its_answers_on_the_timer() {
        let w = Arc::new(DuplicateWindow::new(Duration::from_secs(10), 1_000_000));
        // Three blocks' worth, so that the sweep takes several rounds of the lock.
        let n = 3 * BLOCK_PLACES as u32;
        let t0 = Instant::now();
        answer_all(&w, 1..n + 1, t0);
        let mut passes = w.timer_passes.subscribe();
        let stop = tokio_util::sync::CancellationToken::new();
        let timer = tokio::spawn(Arc::clone(&w).sweep_every(Duration::from_secs(1), stop.clone()));
        // Each pass of the timer, as it finishes (the sweep runs on a blocking thread): inside
        // the window it leaves every key, and the first pass past it empties the window.
        loop {
            passes.changed().await.expect("the timer runs");
            let Some(at) = *passes.borrow_and_update() else {
                continue;
            };
            if at < t0 + Duration::from_secs(10) {
                assert_eq!(w.len(), n as usize, "swept inside the window");
            } else {
                assert!(w.is_empty(), "{} keys held after the window", w.len());
                break;
            }
        }
        assert!(w.lock().places.blocks.len() <= 1, "blocks kept when empty");
        assert!(matches!(
            w.claim(key(1), Mti::AUTH_REQUEST, Instant::now()),
            Claim::New(_)
        ));
        stop.cancel();
        timer.await.expect("the timer ends when stopped");
    }

    #[test]
    fn a_sweep_takes_the_lock_a_block_at_a_time_and_finishes() {
        let w = Arc::new(DuplicateWindow::new(Duration::from_secs(10), 1_000_000));
        let t0 = Instant::now();
        let n = 2 * BLOCK_PLACES + 7;
        answer_all(&w, 1..n as u32 + 1, t0);
        let later = t0 + Duration::from_secs(11);
        let mut inner = w.lock();
        let mut moves = usize::MAX;
        assert!(inner.expire(
            later,
            w.window,
            w.entries_max,
            DuplicateWindow::SWEEP_PLACES,
            &mut moves
        ));
        assert_eq!(
            inner.keys,
            n - DuplicateWindow::SWEEP_PLACES,
            "one round's worth"
        );
        drop(inner);
        w.sweep(later);
        assert!(w.is_empty());
    }

    #[test]
    fn stale_index_entries_are_swept_before_a_table_grows() {
        let w = Arc::new(DuplicateWindow::new(Duration::from_secs(60), 10_000));
        let now = Instant::now();
        // Twenty times the limit in distinct keys: every claim after the first 10,000 evicts.
        answer_all(&w, 1..200_001, now);
        assert_eq!(w.len(), 10_000);
        let inner = w.lock();
        let entries: usize = inner.index.iter().map(|t| t.len()).sum();
        let live = inner
            .index
            .iter()
            .flat_map(|t| t.iter())
            .filter(|e| e.generation >= inner.places.first)
            .count();
        assert_eq!(live, 10_000, "live index entries");
        // About 39 keys per table: a table is swept when full and grows only when more than
        // three quarters of it is live, so it holds at most 8/3 of the most live keys it has had.
        // The hash is seeded at random, and over 190,000 evictions a table's live count wanders
        // above its mean: 8/3 of today's 10,000 was exceeded once in a full run (27,105). A table
        // at 112 entries (128 buckets) grows again only past 84 live keys, more than twice its
        // mean, so the total stays under 256 × 112 = 28,672; unswept, it would be 200,000.
        assert!(
            entries <= 3 * 10_000,
            "{entries} index entries for 10,000 keys: stale ones were never swept"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_pending_original_is_never_evicted_at_the_limit() {
        let w = Arc::new(DuplicateWindow::new(Duration::from_secs(60), 2));
        let t0 = Instant::now();
        let Claim::New(first) = w.claim(key(1), Mti::AUTH_REQUEST, t0) else {
            panic!("new");
        };
        // Two answers fill the limit, which the original in flight does not count against.
        answer_all(&w, 2..4, t0);
        assert_eq!(w.len(), 3, "two answers and the original in flight");
        // A third answer: the oldest answer goes, not the original.
        answer_all(&w, 4..5, t0);
        assert!(
            matches!(w.claim(key(2), Mti::AUTH_REQUEST, t0), Claim::New(_)),
            "the oldest answer was kept over a pending original"
        );
        // Its repeat waits for it rather than going through as new (a second hold, a second
        // forward to the issuer)...
        let Claim::Duplicate(d) = w.claim(key(1), Mti::AUTH_REQUEST, t0) else {
            panic!("a pending original was evicted at the limit");
        };
        let d = tokio::spawn(d.answer());
        first.complete(Answer::Bytes(Bytes::from_static(b"late")));
        assert_eq!(
            bytes_of(d.await.expect("join")).as_deref(),
            Some(&b"late"[..])
        );
        assert!(w.len() <= 2, "{} keys held, limit 2", w.len());
        // ...and its answer goes when the window has passed, as any other.
        tokio::time::advance(Duration::from_secs(61)).await;
        w.sweep(Instant::now());
        assert_eq!(w.len(), 0);
    }

    #[test]
    fn originals_in_flight_far_beyond_the_limit_cost_little_per_request() {
        // A limit set far below what is in flight: 100 originals against a limit of 10. They
        // must not be turned over on every call (that was about 300 moves per request, and a
        // switch that slow keeps even more in flight).
        let w = Arc::new(DuplicateWindow::new(Duration::from_secs(60), 10));
        let t0 = Instant::now();
        let in_flight = claim_all(&w, 1..101, t0);
        answer_all(&w, 1000..3000, t0);
        let moved = w.lock().moved;
        // Each eviction may move the originals in front of it once: about 100 moves per 10
        // evictions, so about 20,000 for 2,000 requests, against 600,000 when they counted.
        assert!(moved <= 25_000, "{moved} moves for 2,000 requests");
        assert_eq!(w.len(), 110, "the 100 in flight and the 10 newest answers");
        w.invariants().expect("invariants");
        drop(in_flight);
        answer_all(&w, 3000..3001, t0);
        assert!(w.len() <= 10);
    }

    #[tokio::test(start_paused = true)]
    async fn more_originals_in_flight_than_the_limit_are_all_kept_until_they_end() {
        let w = Arc::new(DuplicateWindow::new(Duration::from_secs(60), 2));
        let t0 = Instant::now();
        let pending = claim_all(&w, 1..6, t0);
        // Five in flight against a limit of two: the window holds all five (and the claims
        // above ended, rather than turning the ring over for good).
        assert_eq!(w.len(), 5);
        for s in 1..6 {
            assert!(
                matches!(w.claim(key(s), Mti::AUTH_REQUEST, t0), Claim::Duplicate(_)),
                "key {s} evicted in flight"
            );
        }
        w.sweep(t0);
        assert_eq!(w.len(), 5);
        w.invariants().expect("invariants");
        // As they end, the window comes back within its limit at once.
        for (i, p) in pending.into_iter().enumerate() {
            p.complete(Answer::Bytes(Bytes::from_static(b"done")));
            w.invariants().expect("invariants");
            // At most two answers, beside the originals still in flight.
            let in_flight = 5 - (i + 1);
            assert!(
                w.len() <= 2 + in_flight,
                "{} keys, {in_flight} in flight",
                w.len()
            );
        }
        assert_eq!(w.len(), 2);
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

    /// One step of the property test below.
    #[derive(Debug, Clone)]
    enum Op {
        /// Claims key `k` (of four) as an authorization, or as a reversal when `reversal`.
        Claim { k: u32, reversal: bool },
        /// Completes the `i`-th live original (modulo how many there are) with answer `tag`,
        /// of one byte or, when `long`, more than the window keeps inline.
        Complete { i: usize, tag: u8, long: bool },
        /// Drops the `i`-th live original without an answer.
        Drop { i: usize },
        /// Replaces the answer kept under the `i`-th claim completed so far.
        Replace { i: usize, tag: u8 },
        /// Lets `s` seconds pass, then sweeps when `sweep`.
        Advance { s: u64, sweep: bool },
        /// Seeds key `k` with a recorded answer given `age` seconds ago, as recovery does.
        Seed { k: u32, age: u64, tag: u8 },
    }

    fn op() -> impl proptest::strategy::Strategy<Value = Op> {
        use proptest::prelude::*;
        prop_oneof![
            4 => (0u32..4, any::<bool>()).prop_map(|(k, reversal)| Op::Claim { k, reversal }),
            3 => (any::<usize>(), any::<u8>(), any::<bool>())
                .prop_map(|(i, tag, long)| Op::Complete { i, tag, long }),
            1 => any::<usize>().prop_map(|i| Op::Drop { i }),
            1 => (any::<usize>(), any::<u8>()).prop_map(|(i, tag)| Op::Replace { i, tag }),
            2 => (0u64..8, any::<bool>()).prop_map(|(s, sweep)| Op::Advance { s, sweep }),
            1 => (0u32..4, 0u64..12, any::<u8>()).prop_map(|(k, age, tag)| Op::Seed { k, age, tag }),
        ]
    }

    /// What a waiter got, comparable across the two windows.
    fn outcome(a: Option<Answer>) -> Option<Vec<u8>> {
        a.map(|a| match a {
            Answer::Bytes(b) => b.to_vec(),
            Answer::Recorded(r) => format!("recorded {}", r.txn).into_bytes(),
        })
    }

    /// Runs `ops` against the ring and against the map it replaced ([`model`]), in paused time,
    /// and checks that both give the same outcome at every step: new or duplicate, the answer
    /// each duplicate gets (or that it gets none), whether a completion is kept, and how many
    /// keys are held. With `tables` = 1 the few keys share one index table, so its sweeps of
    /// stale entries happen while some of them are live.
    fn agree(
        ops: Vec<Op>,
        entries_max: usize,
        tables: usize,
    ) -> Result<(), proptest::test_runner::TestCaseError> {
        use proptest::{prop_assert, prop_assert_eq};
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .expect("runtime");
        rt.block_on(async move {
            let ring = Arc::new(DuplicateWindow::with_tables(
                Duration::from_secs(10),
                entries_max,
                tables,
            ));
            let map = Arc::new(model::ModelWindow::new(
                Duration::from_secs(10),
                entries_max,
            ));
            let mut live: Vec<(Pending, model::ModelPending, Mti)> = Vec::new();
            let mut kept: Vec<(DupKey, Mti, ClaimId, model::ModelClaimId)> = Vec::new();
            let mut waiters = Vec::new();
            for (step, op) in ops.into_iter().enumerate() {
                match op {
                    Op::Claim { k, reversal } => {
                        let mti = if reversal {
                            Mti::REVERSAL_REQUEST
                        } else {
                            Mti::AUTH_REQUEST
                        };
                        let now = Instant::now();
                        match (ring.claim(key(k), mti, now), map.claim(key(k), mti, now)) {
                            (Claim::New(a), model::ModelClaim::New(b)) => live.push((a, b, mti)),
                            (Claim::Duplicate(a), model::ModelClaim::Duplicate(b)) => waiters
                                .push((step, tokio::spawn(a.answer()), tokio::spawn(b.answer()))),
                            (Claim::New(_), _) => {
                                return Err(proptest::test_runner::TestCaseError::fail(format!(
                                    "step {step}: the ring saw a new request, the model a duplicate"
                                )));
                            }
                            (Claim::Duplicate(_), _) => {
                                return Err(proptest::test_runner::TestCaseError::fail(format!(
                                    "step {step}: the ring saw a duplicate, the model a new request"
                                )));
                            }
                        }
                    }
                    Op::Complete { i, tag, long } if !live.is_empty() => {
                        let (a, b, mti) = live.remove(i % live.len());
                        let k = *a.key();
                        let len = if long { INLINE_ANSWER_BYTES + 1 } else { 1 };
                        let answer = Answer::Bytes(Bytes::from(vec![tag; len]));
                        let (ka, kb) = (a.complete(answer.clone()), b.complete(answer));
                        prop_assert_eq!(ka.is_some(), kb.is_some(), "step {}: kept", step);
                        if let (Some(ka), Some(kb)) = (ka, kb) {
                            kept.push((k, mti, ka, kb));
                        }
                    }
                    Op::Drop { i } if !live.is_empty() => {
                        drop(live.remove(i % live.len()));
                    }
                    Op::Replace { i, tag } if !kept.is_empty() => {
                        let (k, mti, ka, kb) = kept[i % kept.len()];
                        let answer = Answer::Bytes(Bytes::from(vec![tag, tag]));
                        ring.replace(&k, mti, ka, answer.clone());
                        map.replace(&k, mti, kb, answer);
                    }
                    Op::Advance { s, sweep } => {
                        tokio::time::advance(Duration::from_secs(s)).await;
                        if sweep {
                            ring.sweep(Instant::now());
                            map.sweep(Instant::now());
                        }
                    }
                    Op::Seed { k, age, tag } => {
                        // Recovery seeds decisions from the journal, not answer bytes.
                        let answer = Answer::Recorded(Arc::new(DecisionRecord::new(
                            u64::from(tag),
                            0,
                            None,
                            100,
                            "00",
                            crate::events::DecisionSource::OnUs,
                            None,
                        )));
                        let (age, now) = (Duration::from_secs(age), Instant::now());
                        ring.seed(key(k), Mti::AUTH_REQUEST, answer.clone(), age, now);
                        map.seed(key(k), Mti::AUTH_REQUEST, answer, age, now);
                    }
                    Op::Complete { .. } | Op::Drop { .. } | Op::Replace { .. } => {}
                }
                prop_assert_eq!(ring.len(), map.len(), "step {}: keys held", step);
                prop_assert_eq!(ring.is_empty(), map.is_empty(), "step {}: empty", step);
                if let Err(broken) = ring.invariants() {
                    return Err(proptest::test_runner::TestCaseError::fail(format!(
                        "step {step}: {broken}"
                    )));
                }
                // Only originals in flight keep the window over its limit.
                prop_assert!(
                    ring.len() <= entries_max + live.len(),
                    "step {}: over the limit",
                    step
                );
            }
            // Every original ends, so every waiter has its outcome.
            drop(live);
            // An hour of paused time passes at once if nothing else can run: a waiter still
            // waiting then is one that would never be woken.
            let hour = Duration::from_secs(3600);
            for (step, a, b) in waiters {
                let (Ok(a), Ok(b)) = (
                    tokio::time::timeout(hour, a).await,
                    tokio::time::timeout(hour, b).await,
                ) else {
                    return Err(proptest::test_runner::TestCaseError::fail(format!(
                        "the duplicate of step {step} was never woken"
                    )));
                };
                let (a, b) = (a.expect("join"), b.expect("join"));
                prop_assert_eq!(outcome(a), outcome(b), "the duplicate of step {}", step);
            }
            Ok(())
        })
    }

    proptest::proptest! {
        #![proptest_config(proptest::test_runner::Config::with_cases(512))]

        #[test]
        fn the_ring_answers_as_the_map_did(
            ops in proptest::collection::vec(op(), 1..60),
            entries_max in 1usize..6,
            one_table in proptest::bool::ANY,
        ) {
            let tables = if one_table { 1 } else { DuplicateWindow::SHARDS };
            agree(ops, entries_max, tables)?;
        }
    }
}
