//! [`KeyedState`]: the hasher of the engine's hash maps (cards by PAN, records by idempotency
//! key), and [`key_hash`], the hash an idempotency key computes once and carries.
//!
//! Owns only hashing. Why not the standard `RandomState`: SipHash-1-3 took a third of a
//! decision's time in the authorize bench (a decision hashes a PAN and an idempotency key several
//! times). This is a folded 64x64->128-bit multiply per 8-byte word, the construction of
//! `ahash`'s and `foldhash`'s portable fallbacks, keyed with random per-map keys from the
//! standard library's `RandomState`, so bucket positions cannot be predicted from outside. That
//! is weaker than SipHash against a determined collision search, which is acceptable here: the
//! keys an outsider influences come from authenticated acquirers, and each map is per account
//! and bounded by the idempotency window.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::sync::OnceLock;

/// Process-wide random keys for [`key_hash`].
static KEY_HASH_KEYS: OnceLock<KeyedState> = OnceLock::new();

/// The hash an [`super::IdemKey`] carries: its 256 bits of content, keyed with random
/// process-wide keys (so, like the maps' own keys, unknown outside the process; the hash is
/// never stored or sent).
pub(crate) fn key_hash(first: u128, second: u128) -> u64 {
    let keys = KEY_HASH_KEYS.get_or_init(KeyedState::default);
    let mut h = keys.build_hasher();
    h.write_u128(first);
    h.write_u128(second);
    h.finish()
}

/// Random keys for one map.
#[derive(Clone, Copy, Debug)]
pub(crate) struct KeyedState {
    k0: u64,
    k1: u64,
}

impl Default for KeyedState {
    fn default() -> Self {
        let s = RandomState::new();
        KeyedState {
            k0: s.hash_one(0x243F_6A88_85A3_08D3_u64),
            // Odd, so the multiplier never loses low bits.
            k1: s.hash_one(0x1319_8A2E_0370_7344_u64) | 1,
        }
    }
}

impl KeyedState {
    /// Fixed keys for a table that is moved out at once and never holds an entry (the
    /// placeholder left by moving a table between places, `split_map`): `default` costs a
    /// `RandomState` and two hashes, paid per account at each checkpoint for nothing.
    pub(crate) const fn placeholder() -> KeyedState {
        KeyedState { k0: 0, k1: 1 }
    }
}

impl BuildHasher for KeyedState {
    type Hasher = KeyedHasher;

    fn build_hasher(&self) -> KeyedHasher {
        KeyedHasher {
            h: self.k0,
            k: self.k1,
        }
    }
}

/// The running state: one 64-bit word, mixed with each input word.
pub(crate) struct KeyedHasher {
    h: u64,
    k: u64,
}

/// The high and low halves of `a * b` XORed: every input bit reaches every output bit.
#[inline]
fn folded_multiply(a: u64, b: u64) -> u64 {
    let full = u128::from(a) * u128::from(b);
    // Truncation to each half is the point.
    (full as u64) ^ ((full >> 64) as u64)
}

impl KeyedHasher {
    #[inline]
    fn mix(&mut self, word: u64) {
        self.h = folded_multiply(self.h ^ word, self.k).rotate_left(23);
    }
}

impl Hasher for KeyedHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(16);
        for c in &mut chunks {
            let mut w = [0u8; 16];
            w.copy_from_slice(c);
            self.write_u128(u128::from_le_bytes(w));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut w = [0u8; 16];
            w[..rest.len()].copy_from_slice(rest);
            // The length keeps "ab" and "ab\0" apart.
            self.write_u128(u128::from_le_bytes(w) ^ ((rest.len() as u128) << 123));
        }
    }

    #[inline]
    fn write_u8(&mut self, i: u8) {
        self.mix(u64::from(i));
    }

    #[inline]
    fn write_u32(&mut self, i: u32) {
        self.mix(u64::from(i));
    }

    #[inline]
    fn write_u64(&mut self, i: u64) {
        self.mix(i);
    }

    #[inline]
    fn write_u128(&mut self, i: u128) {
        // Two words, one multiply: both halves are keyed before they meet.
        let (lo, hi) = (i as u64, (i >> 64) as u64);
        self.h = folded_multiply(lo ^ self.h, hi ^ self.k).rotate_left(23);
    }

    #[inline]
    fn write_usize(&mut self, i: usize) {
        self.mix(i as u64);
    }

    #[inline]
    fn finish(&self) -> u64 {
        folded_multiply(self.h, self.k ^ 0x9E37_79B9_7F4A_7C15)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn spreads_similar_keys() {
        let s = KeyedState::default();
        let hashes: HashSet<u64> = (0u32..100_000)
            .map(|i| s.hash_one(format!("4111110000{i:06}")))
            .collect();
        assert_eq!(hashes.len(), 100_000);
        // Low bits (bucket index) spread too.
        let buckets: HashSet<u64> = (0u32..4096)
            .map(|i| s.hash_one(format!("4111110000{i:06}")) & 0xFFF)
            .collect();
        assert!(buckets.len() > 2_400, "{}", buckets.len());
    }
}
