//! Postcard into a `Vec<u8>` that copies byte strings whole.
//!
//! The journal's records and the ledger's events are encoded with postcard on every
//! transaction. `postcard::to_extend` writes through `Extend<u8>`, which appends a string's bytes
//! one at a time; this flavor appends them with `extend_from_slice` (one `memcpy`), and pushes
//! single bytes (tags, varints) with `push`. The bytes are exactly `to_extend`'s: a test below
//! compares the two. It owns nothing else: what is encoded is `events`' and `issuing`'s.

use postcard::ser_flavors::Flavor;
use serde::Serialize;

/// Appends `value`'s postcard encoding to `out` (which may already hold bytes, such as a
/// version byte) and returns it.
pub(crate) fn postcard_onto<T: Serialize + ?Sized>(
    value: &T,
    out: Vec<u8>,
) -> Result<Vec<u8>, postcard::Error> {
    postcard::serialize_with_flavor(value, VecFlavor(out))
}

struct VecFlavor(Vec<u8>);

impl Flavor for VecFlavor {
    type Output = Vec<u8>;

    #[inline(always)]
    fn try_push(&mut self, data: u8) -> postcard::Result<()> {
        self.0.push(data);
        Ok(())
    }

    #[inline(always)]
    fn try_extend(&mut self, data: &[u8]) -> postcard::Result<()> {
        self.0.extend_from_slice(data);
        Ok(())
    }

    fn finalize(self) -> postcard::Result<Vec<u8>> {
        Ok(self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[derive(Serialize)]
    struct Sample<'a> {
        tag: u8,
        n: u64,
        s: &'a str,
        bytes: &'a [u8],
        list: Vec<u32>,
        opt: Option<i64>,
    }

    proptest! {
        /// Byte for byte what `postcard::to_extend` writes, after whatever `out` held.
        #[test]
        fn the_same_bytes_as_to_extend(
            prefix in proptest::collection::vec(any::<u8>(), 0..4),
            tag in any::<u8>(),
            n in any::<u64>(),
            s in ".{0,40}",
            bytes in proptest::collection::vec(any::<u8>(), 0..300),
            list in proptest::collection::vec(any::<u32>(), 0..20),
            opt in any::<Option<i64>>(),
        ) {
            let v = Sample { tag, n, s: &s, bytes: &bytes, list, opt };
            let ours = postcard_onto(&v, prefix.clone()).unwrap();
            let theirs = postcard::to_extend(&v, prefix).unwrap();
            prop_assert_eq!(ours, theirs);
        }
    }
}
