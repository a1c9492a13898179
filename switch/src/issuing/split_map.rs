//! [`SplitMap`]: the hash map an account keeps its idempotency records in, built so that no
//! single insert has to move the whole map.
//!
//! Owns only the table layout; what the records mean is [`super::ledger`]'s. Why not a plain
//! `HashMap`: a hash table grows by doubling, and the insert that crosses the threshold allocates
//! a table twice the size and moves every entry into it, under the account's lock, on the tokio
//! worker that is deciding the request. On an account with a hundred thousand records (a test
//! card taking a quarter of the load) that is about 15 MB of fresh memory, and on the project's
//! virtual machine the kernel's zeroing of those pages alone took about a tenth of a second: every
//! request of that account waited, and with both workers blocked on the lock, every other
//! request of the process too (docs/performance.md, "Open-loop tail latency").
//!
//! So a map starts as one table, as before (an account with a handful of records pays nothing
//! extra), and once that table would grow past [`SPLIT_AT`] entries it is split into
//! [`SHARDS`] tables by a separately keyed hash. From then on each table grows on its own, so one
//! growth step moves about 1/[`SHARDS`] of the records.
//!
//! The tables are also shared copy-on-write, for the same reason at checkpoints: a checkpoint
//! copies every account under its lock, and copying a hundred thousand records took tens of
//! milliseconds that every request of the account waited. [`SplitMap::share`] gives the
//! checkpoint a copy that only counts references to the tables; the checkpoint reads it after
//! letting the lock go, and a table changed while that copy still shares it is copied then, by
//! the change (`Arc::make_mut`): at most one table's worth, the same bound as a growth step.
//!
//! A map of one table holds it in place, not behind an `Arc`, except between a `share` and the
//! next change. A decision's time is a chain of dependent cache misses (docs/performance.md,
//! "Where the time goes now": card, account, the table's header, its control bytes); in place,
//! the header is in the account's own lines, one miss fewer. `share` moves the table behind an
//! `Arc` (its entries stay where they are: only the header moves), and the next change moves it
//! back, copying it only if the checkpoint still holds its copy, as before.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hash};
use std::sync::Arc;

use super::hash::KeyedState;

/// Entries at which a full table is split instead of doubled (the split happens at the first
/// table capacity at or above it: 7,168 entries, about 1 MB of records). Below it a map is one
/// table, exactly as a plain `HashMap`.
pub(crate) const SPLIT_AT: usize = 4096;

/// Tables of a split map (a power of two).
pub(crate) const SHARDS: usize = 64;

/// A hash map that splits into [`SHARDS`] tables once it is large, and whose copies taken by
/// [`SplitMap::share`] share its tables until one side changes them. See the module docs.
///
/// Not `Clone`: a clone of a one-table map would copy the whole table, and a copy taken under an
/// account's lock must be a `share`.
#[derive(Debug)]
pub(crate) struct SplitMap<K, V> {
    tables: Tables<K, V>,
}

#[derive(Debug, Clone)]
enum Tables<K, V> {
    /// One table, in place.
    One(HashMap<K, V, KeyedState>),
    /// One table behind an `Arc`, between a [`SplitMap::share`] and the next change.
    Shared(Arc<HashMap<K, V, KeyedState>>),
    /// `pick` chooses a key's table. It is keyed apart from the tables' own hashers: a table
    /// holding only keys whose hash shares its top bits would crowd its probe sequences.
    Split {
        pick: KeyedState,
        tables: Box<[Arc<HashMap<K, V, KeyedState>>]>,
    },
}

impl<K, V> Default for SplitMap<K, V> {
    fn default() -> Self {
        SplitMap {
            tables: Tables::One(HashMap::with_hasher(KeyedState::default())),
        }
    }
}

impl<K: Hash + Eq + Clone, V: Clone> SplitMap<K, V> {
    fn table(&self, key: &K) -> &HashMap<K, V, KeyedState> {
        match &self.tables {
            Tables::One(t) => t,
            Tables::Shared(t) => t,
            Tables::Split { pick, tables } => &tables[shard(pick, key)],
        }
    }

    /// The one table, if the map is not split.
    fn one(&self) -> Option<&HashMap<K, V, KeyedState>> {
        match &self.tables {
            Tables::One(t) => Some(t),
            Tables::Shared(t) => Some(t),
            Tables::Split { .. } => None,
        }
    }

    /// Moves a shared one table back in place: taken whole if the copy that shared it is gone,
    /// copied if it still holds it.
    fn take_back(&mut self) {
        if matches!(self.tables, Tables::Shared(_)) {
            let placeholder = Tables::One(HashMap::with_hasher(KeyedState::placeholder()));
            if let Tables::Shared(t) = std::mem::replace(&mut self.tables, placeholder) {
                self.tables = Tables::One(Arc::unwrap_or_clone(t));
            }
        }
    }

    /// The table of `key`, for a change: copied first if a checkpoint's copy still shares it.
    fn table_mut(&mut self, key: &K) -> &mut HashMap<K, V, KeyedState> {
        self.take_back();
        match &mut self.tables {
            Tables::One(t) => t,
            // Not reached: `take_back` moved it in place.
            Tables::Shared(t) => Arc::make_mut(t),
            Tables::Split { pick, tables } => Arc::make_mut(&mut tables[shard(pick, key)]),
        }
    }

    /// A copy of the map as it is now that shares its tables instead of copying them: what a
    /// checkpoint takes under the account's lock (see the module docs). A one-table map moves
    /// its table behind an `Arc` for it, until its next change.
    pub(crate) fn share(&mut self) -> SplitMap<K, V> {
        if let Tables::One(t) = &mut self.tables {
            let table = std::mem::replace(t, HashMap::with_hasher(KeyedState::placeholder()));
            self.tables = Tables::Shared(Arc::new(table));
        }
        // Shared or split now: cloning the tables only counts references.
        SplitMap {
            tables: self.tables.clone(),
        }
    }

    pub(crate) fn get(&self, key: &K) -> Option<&V> {
        self.table(key).get(key)
    }

    pub(crate) fn get_mut(&mut self, key: &K) -> Option<&mut V> {
        self.table_mut(key).get_mut(key)
    }

    pub(crate) fn contains_key(&self, key: &K) -> bool {
        self.table(key).contains_key(key)
    }

    pub(crate) fn remove(&mut self, key: &K) -> Option<V> {
        self.table_mut(key).remove(key)
    }

    /// Inserts, returning the value `key` had. Splits first when the one table is full and at
    /// [`SPLIT_AT`] entries or more.
    pub(crate) fn insert(&mut self, key: K, value: V) -> Option<V> {
        if let Some(t) = self.one()
            && t.len() >= SPLIT_AT
            && t.len() == t.capacity()
        {
            self.split();
        }
        self.table_mut(&key).insert(key, value)
    }

    /// Makes room for `additional` more entries without splitting (restoring a snapshot, where a
    /// pause is expected and one exact allocation beats a series of doublings).
    pub(crate) fn reserve(&mut self, additional: usize) {
        self.take_back();
        match &mut self.tables {
            Tables::One(t) => t.reserve(additional),
            Tables::Shared(t) => Arc::make_mut(t).reserve(additional),
            Tables::Split { tables, .. } => {
                for t in tables.iter_mut() {
                    Arc::make_mut(t).reserve(additional.div_ceil(SHARDS));
                }
            }
        }
    }

    pub(crate) fn len(&self) -> usize {
        match &self.tables {
            Tables::One(t) => t.len(),
            Tables::Shared(t) => t.len(),
            Tables::Split { tables, .. } => tables.iter().map(|t| t.len()).sum(),
        }
    }

    /// Every entry, in no particular order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&K, &V)> {
        let (one, tables): (Option<&HashMap<K, V, KeyedState>>, &[Arc<_>]) = match &self.tables {
            Tables::One(t) => (Some(t), &[]),
            Tables::Shared(t) => (Some(t), &[]),
            Tables::Split { tables, .. } => (None, tables),
        };
        one.into_iter()
            .chain(tables.iter().map(|t| &**t))
            .flat_map(|t| t.iter())
    }

    pub(crate) fn values(&self) -> impl Iterator<Item = &V> {
        self.iter().map(|(_, v)| v)
    }

    /// Moves the one table's entries into [`SHARDS`] tables, each sized for twice its share so
    /// that none of them grows again right away.
    fn split(&mut self) {
        // Taken whole if no checkpoint copy shares it, copied otherwise (the copy keeps the old
        // table).
        self.take_back();
        let Tables::One(one) = &mut self.tables else {
            return;
        };
        let one = std::mem::replace(one, HashMap::with_hasher(KeyedState::placeholder()));
        let pick = KeyedState::default();
        let share = (one.len() / SHARDS).max(1) * 2;
        let mut tables: Vec<HashMap<K, V, KeyedState>> = (0..SHARDS)
            .map(|_| HashMap::with_capacity_and_hasher(share, KeyedState::default()))
            .collect();
        for (k, v) in one {
            tables[shard(&pick, &k)].insert(k, v);
        }
        let tables = tables.into_iter().map(Arc::new).collect();
        self.tables = Tables::Split { pick, tables };
    }

    /// Whether the map has split into [`SHARDS`] tables.
    #[cfg(test)]
    pub(crate) fn is_split(&self) -> bool {
        matches!(self.tables, Tables::Split { .. })
    }

    /// The most entries any one table can hold before it grows: the size of the largest move
    /// the next insert could make.
    #[cfg(test)]
    pub(crate) fn largest_capacity(&self) -> usize {
        match &self.tables {
            Tables::One(t) => t.capacity(),
            Tables::Shared(t) => t.capacity(),
            Tables::Split { tables, .. } => tables.iter().map(|t| t.capacity()).max().unwrap_or(0),
        }
    }
}

impl<'a, K: Hash + Eq + Clone, V: Clone> IntoIterator for &'a SplitMap<K, V> {
    type Item = (&'a K, &'a V);
    type IntoIter = Box<dyn Iterator<Item = (&'a K, &'a V)> + 'a>;

    fn into_iter(self) -> Self::IntoIter {
        Box::new(self.iter())
    }
}

/// The table of `key`: the top bits of its `pick` hash.
fn shard<K: Hash>(pick: &KeyedState, key: &K) -> usize {
    (pick.hash_one(key) >> (64 - SHARDS.trailing_zeros())) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A model check across the split: the map answers like a plain `HashMap` before, during and
    /// after it, for inserts, overwrites, lookups and removals.
    #[test]
    fn behaves_like_a_hash_map_across_the_split() {
        let mut map: SplitMap<u64, u64> = SplitMap::default();
        let mut model: HashMap<u64, u64> = HashMap::new();
        let n = (SPLIT_AT * 5) as u64;
        for i in 0..n {
            let k = i.wrapping_mul(0x9E37_79B9_7F4A_7C15);
            assert_eq!(map.insert(k, i), model.insert(k, i));
            if i % 7 == 0 {
                assert_eq!(
                    map.insert(k, i + 1),
                    model.insert(k, i + 1),
                    "overwrite {i}"
                );
            }
            if i % 11 == 0 {
                let gone = (i / 2).wrapping_mul(0x9E37_79B9_7F4A_7C15);
                assert_eq!(map.remove(&gone), model.remove(&gone), "remove {i}");
            }
        }
        assert!(matches!(map.tables, Tables::Split { .. }), "it split");
        assert_eq!(map.len(), model.len());
        for (k, v) in &model {
            assert_eq!(map.get(k), Some(v));
            assert!(map.contains_key(k));
        }
        let mut seen: Vec<(u64, u64)> = map.iter().map(|(k, v)| (*k, *v)).collect();
        let mut want: Vec<(u64, u64)> = model.into_iter().collect();
        seen.sort_unstable();
        want.sort_unstable();
        assert_eq!(seen, want);
        let last = (n - 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        if let Some(v) = map.get_mut(&last) {
            *v = 99;
        }
        assert_eq!(map.get(&last), Some(&99));
    }

    /// Inserts 0..n through `insert` and returns the most entries one growth step moved: when
    /// `capacity` (the largest table's) changes, that table moved its old capacity's worth.
    fn largest_move(n: u64, mut insert: impl FnMut(u64), capacity: impl Fn() -> usize) -> usize {
        let mut largest = 0;
        let mut before = capacity();
        for i in 0..n {
            insert(i);
            let now = capacity();
            if now != before {
                largest = largest.max(before);
            }
            before = now;
        }
        largest
    }

    /// What the split is for: with 250,000 entries (an account taking a quarter of a load test's
    /// traffic for a minute) no growth step moves more than a few thousand entries, where one
    /// table's last doubling moves 229,376.
    #[test]
    fn no_growth_step_moves_more_than_a_shard() {
        let map = std::cell::RefCell::new(SplitMap::<u64, u64>::default());
        let split = largest_move(
            250_000,
            |i| {
                map.borrow_mut().insert(i, i);
            },
            || map.borrow().largest_capacity(),
        );
        assert_eq!(map.borrow().len(), 250_000);
        assert!(
            split <= SPLIT_AT * 2,
            "a growth moved up to {split} entries"
        );
        let plain = std::cell::RefCell::new(HashMap::<u64, u64>::new());
        let one = largest_move(
            250_000,
            |i| {
                plain.borrow_mut().insert(i, i);
            },
            || plain.borrow().capacity(),
        );
        assert!(one > 100_000, "a plain map moved {one}");
    }

    /// A small account stays one table, so a million accounts with a few records each cost what
    /// they did before.
    #[test]
    fn small_maps_stay_one_table() {
        let mut map: SplitMap<u64, u64> = SplitMap::default();
        for i in 0..(SPLIT_AT as u64) {
            map.insert(i, i);
        }
        assert!(matches!(map.tables, Tables::One(_)));
        assert_eq!(map.len(), SPLIT_AT);
    }

    /// What checkpoints rely on: a copy from `share` shares every table, keeps the entries it had
    /// while the original changes, and a change copies only the table it touches.
    #[test]
    fn a_shared_copy_shares_tables_until_one_changes() {
        let mut map: SplitMap<u64, u64> = SplitMap::default();
        let n = (SPLIT_AT * 3) as u64;
        for i in 0..n {
            map.insert(i, i);
        }
        let frozen = map.share();
        let shared = |a: &SplitMap<u64, u64>, b: &SplitMap<u64, u64>| match (&a.tables, &b.tables) {
            (Tables::Split { tables: x, .. }, Tables::Split { tables: y, .. }) => x
                .iter()
                .zip(y.iter())
                .filter(|(p, q)| Arc::ptr_eq(p, q))
                .count(),
            _ => 0,
        };
        assert_eq!(shared(&map, &frozen), SHARDS, "sharing copies nothing");

        map.insert(0, 100);
        assert_eq!(
            shared(&map, &frozen),
            SHARDS - 1,
            "one change copies one table"
        );
        map.remove(&1);
        map.insert(n, n);
        if let Some(v) = map.get_mut(&2) {
            *v = 200;
        }
        assert!(shared(&map, &frozen) >= SHARDS - 4);

        // The copy is the map as it was.
        assert_eq!(frozen.len(), n as usize);
        assert_eq!(frozen.get(&0), Some(&0));
        assert_eq!(frozen.get(&1), Some(&1));
        assert_eq!(frozen.get(&2), Some(&2));
        assert_eq!(frozen.get(&n), None);
        // The map has its changes.
        assert_eq!(map.len(), n as usize);
        assert_eq!(map.get(&0), Some(&100));
        assert_eq!(map.get(&1), None);
        assert_eq!(map.get(&2), Some(&200));
        assert_eq!(map.get(&n), Some(&n));

        // Once the copy is gone, changes copy nothing more.
        drop(frozen);
        let before: Vec<*const HashMap<u64, u64, KeyedState>> = match &map.tables {
            Tables::Split { tables, .. } => tables.iter().map(Arc::as_ptr).collect(),
            Tables::One(_) | Tables::Shared(_) => Vec::new(),
        };
        for i in 0..n {
            map.insert(i, i + 1);
        }
        let after: Vec<*const HashMap<u64, u64, KeyedState>> = match &map.tables {
            Tables::Split { tables, .. } => tables.iter().map(Arc::as_ptr).collect(),
            Tables::One(_) | Tables::Shared(_) => Vec::new(),
        };
        assert_eq!(before, after);
    }

    /// A one-table map is held in place (one dependent miss fewer per lookup), moves behind an
    /// `Arc` for a checkpoint's copy, and moves back at its next change: copied while the copy
    /// lives, taken whole (its entries where they were) once it is gone.
    #[test]
    fn a_small_map_lives_in_place_and_is_shared_only_for_a_copy() {
        let mut map: SplitMap<u64, u64> = SplitMap::default();
        for i in 0..100 {
            map.insert(i, i);
        }
        assert!(matches!(map.tables, Tables::One(_)));
        let at = |m: &SplitMap<u64, u64>, k: u64| m.get(&k).map(|v| v as *const u64);

        // Shared while the copy lives; a change copies, and the copy keeps what it had.
        let frozen = map.share();
        assert!(matches!(map.tables, Tables::Shared(_)));
        assert!(matches!(frozen.tables, Tables::Shared(_)));
        assert_eq!(at(&map, 5), at(&frozen, 5), "the copy copied nothing");
        map.insert(5, 500);
        assert!(matches!(map.tables, Tables::One(_)), "back in place");
        assert_ne!(at(&map, 5), at(&frozen, 5), "copied for the change");
        assert_eq!(frozen.get(&5), Some(&5));
        assert_eq!(map.get(&5), Some(&500));
        assert_eq!(frozen.len(), 100);
        drop(frozen);

        // Shared and let go before the change: taken back whole, entries where they were.
        let before = at(&map, 7);
        let frozen = map.share();
        drop(frozen);
        if let Some(v) = map.get_mut(&7) {
            *v = 700;
        }
        assert!(matches!(map.tables, Tables::One(_)));
        assert_eq!(at(&map, 7), before, "taken back without a copy");
        assert_eq!(map.get(&7), Some(&700));
        assert_eq!(map.len(), 100);
        assert!((0..100).all(|k| map.contains_key(&k)));
        assert_eq!(map.iter().count(), 100);
    }

    /// A small map shared with a checkpoint's copy: the split takes a copy of its own and leaves
    /// the checkpoint's whole.
    #[test]
    fn a_split_leaves_a_shared_copy_whole() {
        let mut map: SplitMap<u64, u64> = SplitMap::default();
        let mut i = 0u64;
        // Up to the entry whose insert splits.
        while map.len() < SPLIT_AT || map.len() < map.largest_capacity() {
            map.insert(i, i);
            i += 1;
        }
        assert!(matches!(map.tables, Tables::One(_)));
        let frozen = map.share();
        map.insert(i, i);
        i += 1;
        assert!(matches!(map.tables, Tables::Split { .. }), "it split");
        assert!(matches!(frozen.tables, Tables::Shared(_)));
        assert_eq!(frozen.len(), (i - 1) as usize);
        assert_eq!(frozen.get(&(i - 1)), None);
        assert!((0..i - 1).all(|k| frozen.get(&k) == Some(&k)));
        assert_eq!(map.len(), i as usize);
        assert!((0..i).all(|k| map.get(&k) == Some(&k)));
    }
}
