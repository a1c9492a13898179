//! [`Product`]: the kind of card a BIN range carries (credit, debit, prepaid).
//!
//! Owns the three names and their text form (`credit`, `debit`, `prepaid`, as written in
//! `[[bin_range]].product` and in journal records). What a product *does* to an authorization is
//! the issuing engine's business, and what it costs (interchange) is clearing's; this type only
//! lets routing, the journal and clearing agree on the word, so it sits at the bottom with the
//! other domain values.

use core::fmt;

use serde::{Deserialize, Serialize};

/// A card product family.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Product {
    /// Pay later: spending on a credit line.
    Credit,
    /// Pay now: the cardholder's own account.
    Debit,
    /// Pay first: money loaded beforehand.
    Prepaid,
}

impl Product {
    /// Every product.
    pub const ALL: [Product; 3] = [Product::Credit, Product::Debit, Product::Prepaid];

    /// The lower-case name, as in configuration files.
    pub const fn name(self) -> &'static str {
        match self {
            Product::Credit => "credit",
            Product::Debit => "debit",
            Product::Prepaid => "prepaid",
        }
    }
}

impl fmt::Display for Product {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_match_serde() {
        for p in Product::ALL {
            let json = serde_json::to_string(&p).expect("serialize");
            assert_eq!(json, format!("\"{}\"", p.name()));
            assert_eq!(p.to_string(), p.name());
        }
    }
}
