//! BIN routing: which issuer a PAN belongs to.
//!
//! Owns the lookup table built from `[[bin_range]]`. Ranges are PAN prefixes of 6–11 digits and
//! may nest (a narrow range inside a wide one); the most specific range wins. Config validation
//! ([`crate::config`]) has already rejected ranges that overlap without nesting, so the ranges
//! form a laminar family and can be flattened once, at build time, into disjoint segments of the
//! 11-digit prefix space, each labelled with its innermost range's issuer. A lookup is then one
//! binary search over a sorted `Vec<u64>`: O(log n), no allocation, no pointer chasing.
//!
//! What the issuer *is* (remote link group or on-us engine) is the caller's business; routing only
//! returns the index of the issuer in the config's `[[issuer]]` list, and, for clearing, the card
//! product the innermost range names ([`RoutingTable::route_card`], one lookup for both).

use crate::config::BinRangeConfig;
use crate::domain::{Pan, Product};

/// Prefix length every range is widened to.
const WIDTH: usize = 11;

/// An issuer's position in `Config::issuers`.
pub type IssuerIndex = u32;

/// Where a card routes: its innermost range's issuer and card product, from one lookup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    pub issuer: IssuerIndex,
    /// `None` when the range names no product.
    pub product: Option<Product>,
}

/// The compiled routing table.
#[derive(Debug, Clone, Default)]
pub struct RoutingTable {
    /// Segment start points, ascending (11-digit prefixes as integers).
    starts: Vec<u64>,
    /// Inclusive segment ends, parallel to `starts`.
    ends: Vec<u64>,
    /// Issuer of each segment, parallel to `starts`.
    issuers: Vec<IssuerIndex>,
    /// Card product of each segment, parallel to `starts`.
    products: Vec<Option<Product>>,
}

/// Why a table could not be built (validation normally catches these first).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RoutingError {
    #[error("bin_range[{index}]: bounds are not 6-11 digits of equal length with low <= high")]
    BadRange { index: usize },
    #[error("bin_range[{index}]: issuer is not configured")]
    UnknownIssuer { index: usize },
    #[error("bin_range[{index}]: overlaps another range without nesting")]
    Overlap { index: usize },
}

fn widen(digits: &str, fill: u8) -> Option<u64> {
    let b = digits.as_bytes();
    if !(6..=WIDTH).contains(&b.len()) || !b.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let mut v = 0u64;
    for i in 0..WIDTH {
        let d = if i < b.len() { b[i] - b'0' } else { fill };
        v = v * 10 + d as u64;
    }
    Some(v)
}

/// The PAN's first [`WIDTH`] digits as an integer. A valid PAN has at least 12 digits, so they
/// always exist.
#[inline]
fn prefix(pan: &Pan) -> u64 {
    pan.expose_digits()
        .iter()
        .take(WIDTH)
        .fold(0u64, |v, d| v * 10 + (d - b'0') as u64)
}

#[derive(Clone, Copy)]
struct Range {
    low: u64,
    high: u64,
    issuer: IssuerIndex,
    product: Option<Product>,
    index: usize,
}

impl RoutingTable {
    /// Builds the table. `issuer_index` maps an issuer id to its index.
    pub fn build(
        ranges: &[BinRangeConfig],
        issuer_index: impl Fn(&str) -> Option<IssuerIndex>,
    ) -> Result<RoutingTable, RoutingError> {
        let mut rs = Vec::with_capacity(ranges.len());
        for (index, r) in ranges.iter().enumerate() {
            let (Some(low), Some(high)) = (widen(&r.low, 0), widen(&r.high, 9)) else {
                return Err(RoutingError::BadRange { index });
            };
            if r.low.len() != r.high.len() || low > high {
                return Err(RoutingError::BadRange { index });
            }
            let issuer = issuer_index(&r.issuer).ok_or(RoutingError::UnknownIssuer { index })?;
            rs.push(Range {
                low,
                high,
                issuer,
                product: r.product,
                index,
            });
        }
        // Outer ranges before the ranges nested in them.
        rs.sort_by(|a, b| a.low.cmp(&b.low).then(b.high.cmp(&a.high)));

        let mut t = RoutingTable::default();
        let mut stack: Vec<Range> = Vec::new();
        // Next prefix not yet assigned to a segment.
        let mut pos = 0u64;
        for r in rs {
            while let Some(top) = stack.last().copied() {
                if top.high >= r.low {
                    break;
                }
                t.emit(pos.max(top.low), top.high, &top);
                pos = pos.max(top.high + 1);
                stack.pop();
            }
            if let Some(top) = stack.last() {
                if r.high > top.high || (r.low == top.low && r.high == top.high) {
                    return Err(RoutingError::Overlap { index: r.index });
                }
                if pos < r.low {
                    t.emit(pos.max(top.low), r.low - 1, top);
                }
            }
            pos = pos.max(r.low);
            stack.push(r);
        }
        while let Some(top) = stack.pop() {
            t.emit(pos.max(top.low), top.high, &top);
            pos = pos.max(top.high + 1);
        }
        Ok(t)
    }

    fn emit(&mut self, start: u64, end: u64, range: &Range) {
        if start > end {
            return;
        }
        // Merge with the previous segment when contiguous, same issuer and same product.
        if let (Some(e), Some(&i), Some(&p)) = (
            self.ends.last_mut(),
            self.issuers.last(),
            self.products.last(),
        ) && *e + 1 == start
            && i == range.issuer
            && p == range.product
        {
            *e = end;
            return;
        }
        self.starts.push(start);
        self.ends.push(end);
        self.issuers.push(range.issuer);
        self.products.push(range.product);
    }

    /// The issuer of `pan`, or `None` when no range matches (answer 15).
    #[inline]
    pub fn route(&self, pan: &Pan) -> Option<IssuerIndex> {
        self.route_prefix(prefix(pan))
    }

    /// Looks up an 11-digit prefix given as an integer.
    #[inline]
    pub fn route_prefix(&self, key: u64) -> Option<IssuerIndex> {
        self.segment(key).map(|i| self.issuers[i])
    }

    /// The issuer and card product of `pan`'s innermost range, or `None` when no range matches
    /// (answer 15). An authorization's screening takes both here, so its journal record's product
    /// comes from the same table and the same search as its issuer.
    #[inline]
    pub fn route_card(&self, pan: &Pan) -> Option<Route> {
        self.segment(prefix(pan)).map(|i| Route {
            issuer: self.issuers[i],
            product: self.products[i],
        })
    }

    /// The segment holding `key`: one binary search over the starts.
    #[inline]
    fn segment(&self, key: u64) -> Option<usize> {
        let i = self.starts.partition_point(|&s| s <= key);
        (i > 0 && key <= self.ends[i - 1]).then(|| i - 1)
    }

    /// Number of disjoint segments after flattening.
    pub fn segments(&self) -> usize {
        self.starts.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(low: &str, high: &str, issuer: &str) -> BinRangeConfig {
        BinRangeConfig {
            low: low.into(),
            high: high.into(),
            issuer: issuer.into(),
            product: None,
        }
    }

    fn idx(id: &str) -> Option<IssuerIndex> {
        id.strip_prefix('i').and_then(|n| n.parse().ok())
    }

    fn pan(s: &str) -> Pan {
        Pan::parse(s.as_bytes()).expect("valid test PAN")
    }

    #[test]
    fn default_ranges() {
        let t = RoutingTable::build(
            &[
                r("411111", "411111", "i0"),
                r("622202", "622202", "i1"),
                r("605001", "605001", "i2"),
            ],
            idx,
        )
        .expect("build");
        assert_eq!(t.route(&pan("4111110000000013")), Some(0));
        assert_eq!(t.route(&pan("6222020000000015")), Some(1));
        assert_eq!(t.route(&pan("6050010000000013")), Some(2));
        assert_eq!(t.route(&pan("9999990000000014")), None);
        assert_eq!(t.route(&pan("4111111111111111")), Some(0));
        assert_eq!(t.route(&pan("4111120000000012")), None);
    }

    #[test]
    fn most_specific_wins() {
        let t = RoutingTable::build(
            &[
                r("400000", "499999", "i0"),
                r("41111100", "41111199", "i1"),
                r("4111115", "4111115", "i2"),
                r("450000", "450000", "i3"),
            ],
            idx,
        )
        .expect("build");
        assert_eq!(t.route_prefix(40_000_000_000), Some(0));
        assert_eq!(t.route_prefix(41_111_099_999), Some(0));
        assert_eq!(t.route_prefix(41_111_100_000), Some(1));
        assert_eq!(t.route_prefix(41_111_149_999), Some(1));
        assert_eq!(t.route_prefix(41_111_150_000), Some(2));
        assert_eq!(t.route_prefix(41_111_159_999), Some(2));
        assert_eq!(t.route_prefix(41_111_160_000), Some(1));
        assert_eq!(t.route_prefix(41_111_200_000), Some(0));
        assert_eq!(t.route_prefix(45_000_000_000), Some(3));
        assert_eq!(t.route_prefix(45_000_100_000), Some(0));
        assert_eq!(t.route_prefix(49_999_999_999), Some(0));
        assert_eq!(t.route_prefix(50_000_000_000), None);
        assert_eq!(t.route_prefix(39_999_999_999), None);
    }

    #[test]
    fn product_of_the_innermost_range() {
        let with = |low: &str, high: &str, issuer: &str, product| BinRangeConfig {
            product,
            ..r(low, high, issuer)
        };
        let t = RoutingTable::build(
            &[
                with("400000", "499999", "i0", Some(Product::Credit)),
                with("41111100", "41111199", "i0", Some(Product::Debit)),
                r("450000", "450000", "i0"),
            ],
            idx,
        )
        .expect("build");
        // Same issuer throughout, so only the product keeps the segments apart.
        assert_eq!(t.segments(), 5);
        let product = |p: &str| t.route_card(&pan(p)).map(|r| r.product);
        assert_eq!(product("4000000000000002"), Some(Some(Product::Credit)));
        assert_eq!(product("4111110000000013"), Some(Some(Product::Debit)));
        assert_eq!(product("4111120000000012"), Some(Some(Product::Credit)));
        assert_eq!(product("4500000000000007"), Some(None));
        assert_eq!(product("9999990000000014"), None);
        assert_eq!(t.route(&pan("4111110000000013")), Some(0));
        // The same search: its issuer is `route`'s.
        for p in [
            "4000000000000002",
            "4111110000000013",
            "4500000000000007",
            "9999990000000014",
        ] {
            assert_eq!(
                t.route_card(&pan(p)).map(|r| r.issuer),
                t.route(&pan(p)),
                "{p}"
            );
        }
    }

    #[test]
    fn overlap_and_bad_ranges_are_errors() {
        assert_eq!(
            RoutingTable::build(
                &[r("400000", "450000", "i0"), r("440000", "460000", "i1")],
                idx
            )
            .unwrap_err(),
            RoutingError::Overlap { index: 1 }
        );
        assert_eq!(
            RoutingTable::build(
                &[r("411111", "411111", "i0"), r("411111", "411111", "i1")],
                idx
            )
            .unwrap_err(),
            RoutingError::Overlap { index: 1 }
        );
        assert_eq!(
            RoutingTable::build(&[r("41111", "41111", "i0")], idx).unwrap_err(),
            RoutingError::BadRange { index: 0 }
        );
        assert_eq!(
            RoutingTable::build(&[r("411111", "411111", "x")], idx).unwrap_err(),
            RoutingError::UnknownIssuer { index: 0 }
        );
    }

    #[test]
    fn matches_a_linear_scan_on_many_nested_ranges() {
        // Random laminar family: disjoint 6-digit ranges, each with nested 8-digit children.
        let mut rng = fastrand::Rng::with_seed(7);
        let mut ranges = Vec::new();
        let mut base = 100_000u64;
        for i in 0..300 {
            let width = rng.u64(1..50);
            let (lo, hi) = (base, base + width);
            ranges.push(r(&lo.to_string(), &hi.to_string(), &format!("i{}", i % 7)));
            let child = lo * 100 + rng.u64(0..100);
            ranges.push(r(
                &child.to_string(),
                &(child + rng.u64(0..3)).to_string(),
                &format!("i{}", 7 + i % 5),
            ));
            base = hi + rng.u64(1..20);
        }
        let t = RoutingTable::build(&ranges, idx).expect("build");
        let scan = |key: u64| {
            ranges
                .iter()
                .filter_map(|c| {
                    let (lo, hi) = (widen(&c.low, 0)?, widen(&c.high, 9)?);
                    (lo <= key && key <= hi).then_some((hi - lo, idx(&c.issuer)?))
                })
                .min()
                .map(|(_, i)| i)
        };
        for _ in 0..20_000 {
            let key = rng.u64(10_000_000_000..base * 100_000 + 100_000);
            assert_eq!(t.route_prefix(key), scan(key), "key {key}");
        }
    }
}
