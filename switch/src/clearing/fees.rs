//! The fee schedule (`config/fees.toml`): interchange, scheme fees and merchant discount rates,
//! parsed, checked (every problem at once) and compiled for lookup; and the one fee formula.
//!
//! # The formula and its rounding
//!
//! Every fee is computed on one transaction's amount `a` in minor units, with `rust_decimal`:
//!
//! ```text
//! fee(a) = 0                                             when a = 0
//! fee(a) = clamp(round(a × percent / 100 + fixed), min, max)   otherwise
//! ```
//!
//! `round` goes to a whole minor unit, **half away from zero** (`MidpointAwayFromZero`: 0.5 fen
//! becomes 1 fen, -0.5 fen becomes -1 fen). It is the rule schemes and most ledgers print on
//! invoices, it is symmetric in sign (so a refund's fee is exactly the negative of the sale's),
//! and a tie is rare enough that banker's rounding would buy nothing but surprise. `min` and `max`
//! are whole minor units, so clamping keeps the result whole. Scheme fees use the same formula
//! with `percent = bps / 100` and `fixed = per_item`, without bounds. Totals are sums of the
//! rounded per-transaction fees, never fees of summed amounts.
//!
//! `fee(0) = 0` makes a reversal after clearing simple: an item that takes an approval from
//! `before` to `after` carries `fee(after) - fee(before)`, so a reversal in full returns every
//! fee, including fixed and per-item parts.
//!
//! # The file
//!
//! Amounts (`fixed`, `min`, `max`, `*_per_item`) are major-unit decimal strings of the row's
//! currency with at most its number of decimals (`"0.05"` in CNY); percentages and basis points
//! are decimal strings. Each row has a `currency` (ISO 4217 numeric), by default the file's. A
//! row's optional selectors say what it applies to; the most specific matching row wins:
//!
//! - `[[interchange]]`: `product`, `mcc_group`, `card_present` (weights 4, 2, 1). Card present is
//!   read as *not* present when field 22 said nothing ([`super::card_present`]).
//! - `[[mdr]]`: `merchant`, `mcc_group`, `acquirer` (weights 4, 2, 1).
//! - `[[scheme_fee]]`: one per currency.
//!
//! Every currency that appears needs a catch-all interchange row, a catch-all MDR row and a scheme
//! fee, so no transaction can miss a rate. `[[mcc_group]]` lists MCCs (`"5411"`) and ranges
//! (`"5811-5814"`); an MCC in no group, or a transaction without one, is in group `other`.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;
use std::str::FromStr;

use rust_decimal::prelude::ToPrimitive;
use rust_decimal::{Decimal, RoundingStrategy};
use serde::{Deserialize, Serialize};

use crate::config::Problem;
use crate::domain::{Currency, Product};

/// The group of MCCs that no `[[mcc_group]]` lists.
pub const OTHER_GROUP: &str = "other";

/// `config/fees.toml` as written.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct FeeFile {
    /// Currency of rows that do not name one (ISO 4217 numeric, 3 digits). Default `156`.
    #[serde(default = "default_currency")]
    pub currency: String,
    /// A refund returns the interchange its amount would have earned: the issuer pays it back to
    /// the acquirer (boolean). Default true.
    #[serde(default = "default_true")]
    pub refund_reverses_interchange: bool,
    #[serde(default, rename = "mcc_group")]
    pub mcc_groups: Vec<MccGroupEntry>,
    #[serde(default, rename = "interchange")]
    pub interchange: Vec<InterchangeEntry>,
    #[serde(default, rename = "scheme_fee")]
    pub scheme_fees: Vec<SchemeFeeEntry>,
    #[serde(default, rename = "mdr")]
    pub mdr: Vec<MdrEntry>,
}

fn default_currency() -> String {
    "156".to_owned()
}

fn default_true() -> bool {
    true
}

fn default_zero() -> String {
    "0".to_owned()
}

/// `[[mcc_group]]`: a named set of merchant category codes.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct MccGroupEntry {
    /// Referenced by `mcc_group` in rate rows; `other` is reserved.
    pub name: String,
    /// MCCs (`"5411"`) and inclusive ranges (`"5811-5814"`), 4 digits each.
    pub mccs: Vec<String>,
}

/// A percentage plus a fixed amount, bounded.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RateEntry {
    /// Percent of the amount (decimal string, 0..=100, e.g. `"1.20"`).
    pub percent: String,
    /// Added per transaction (major units). Default `"0"`.
    #[serde(default = "default_zero")]
    pub fixed: String,
    /// Smallest fee (major units). Optional.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<String>,
    /// Largest fee (major units). Optional.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<String>,
}

/// `[[interchange]]`: paid by the acquirer to the issuer.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct InterchangeEntry {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub currency: Option<String>,
    /// `credit` | `debit` | `prepaid`; absent: any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub product: Option<Product>,
    /// An `[[mcc_group]]` name or `other`; absent: any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mcc_group: Option<String>,
    /// Absent: either.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub card_present: Option<bool>,
    #[serde(flatten)]
    pub rate: RateEntry,
}

/// `[[scheme_fee]]`: charged by the switch to both sides of every cleared transaction.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SchemeFeeEntry {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub currency: Option<String>,
    /// Basis points of the amount charged to the acquirer (decimal string).
    pub acquirer_bps: String,
    /// Charged to the acquirer per transaction (major units).
    pub acquirer_per_item: String,
    /// Basis points of the amount charged to the issuer (decimal string).
    pub issuer_bps: String,
    /// Charged to the issuer per transaction (major units).
    pub issuer_per_item: String,
}

/// `[[mdr]]`: the merchant discount the acquirer keeps from the merchant's sales.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct MdrEntry {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub currency: Option<String>,
    /// Field 32; absent: any acquirer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acquirer: Option<String>,
    /// Field 42 without padding; absent: any merchant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub merchant: Option<String>,
    /// An `[[mcc_group]]` name or `other`; absent: any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mcc_group: Option<String>,
    #[serde(flatten)]
    pub rate: RateEntry,
}

/// A compiled rate, in minor units of its currency.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    pub percent: Decimal,
    pub fixed_minor: Decimal,
    pub min_minor: Option<Decimal>,
    pub max_minor: Option<Decimal>,
}

impl Rate {
    /// The fee on `amount_minor` (see the module documentation). Fails only if the fee does not
    /// fit an `i64`.
    pub fn fee(&self, amount_minor: i64) -> Result<i64, FeeError> {
        if amount_minor == 0 {
            return Ok(0);
        }
        let raw = Decimal::from(amount_minor)
            .checked_mul(self.percent)
            .and_then(|v| v.checked_div(Decimal::ONE_HUNDRED))
            .and_then(|v| v.checked_add(self.fixed_minor))
            .ok_or(FeeError::Overflow)?;
        let mut fee = round_minor(raw);
        if let Some(min) = self.min_minor {
            fee = fee.max(min);
        }
        if let Some(max) = self.max_minor {
            fee = fee.min(max);
        }
        fee.to_i64().ok_or(FeeError::Overflow)
    }
}

/// The one rounding rule: to a whole minor unit, half away from zero.
pub fn round_minor(value: Decimal) -> Decimal {
    value.round_dp_with_strategy(0, RoundingStrategy::MidpointAwayFromZero)
}

/// Why a fee could not be computed, or a schedule not loaded.
#[derive(Debug, thiserror::Error)]
pub enum FeeError {
    #[error("{}: cannot read the fee schedule: {source}", path.display())]
    Io {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{file}: {message}")]
    Parse { file: String, message: String },
    #[error("{}", problems.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
    Invalid { problems: Vec<Problem> },
    #[error("fee schedule has no {what} for currency {currency}")]
    NoRate { what: &'static str, currency: u16 },
    #[error("fee computation overflows")]
    Overflow,
}

#[derive(Debug, Clone)]
struct Selected<K> {
    key: K,
    weight: u8,
    rate: Rate,
}

type InterchangeKey = (Option<Product>, Option<String>, Option<bool>);
type MdrKey = (Option<String>, Option<String>, Option<String>);

/// The checked, compiled schedule.
#[derive(Debug, Clone)]
pub struct FeeSchedule {
    pub refund_reverses_interchange: bool,
    /// Inclusive MCC ranges and their group, sorted.
    groups: Vec<(u16, u16, String)>,
    interchange: HashMap<u16, Vec<Selected<InterchangeKey>>>,
    scheme: HashMap<u16, (Rate, Rate)>,
    mdr: HashMap<u16, Vec<Selected<MdrKey>>>,
}

/// The rates one transaction is charged at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rates {
    pub interchange: Rate,
    pub scheme_acquirer: Rate,
    pub scheme_issuer: Rate,
    pub mdr: Rate,
}

impl FeeSchedule {
    /// Reads, parses and checks a fee file.
    pub fn load(path: &Path) -> Result<FeeSchedule, FeeError> {
        let text = std::fs::read_to_string(path).map_err(|source| FeeError::Io {
            path: path.to_owned(),
            source,
        })?;
        FeeSchedule::from_toml_str(&text, &path.display().to_string())
    }

    /// Parses and checks `text`; `origin` names it in errors.
    pub fn from_toml_str(text: &str, origin: &str) -> Result<FeeSchedule, FeeError> {
        let file: FeeFile = toml::from_str(text).map_err(|e| FeeError::Parse {
            file: origin.to_owned(),
            message: e.to_string().trim_end().replace('\n', "; "),
        })?;
        FeeSchedule::compile(&file, origin)
    }

    /// Checks every rule of `file`, reporting every broken one, and compiles it.
    pub fn compile(file: &FeeFile, origin: &str) -> Result<FeeSchedule, FeeError> {
        let mut c = Checker {
            file: origin,
            problems: Vec::new(),
        };
        let default_currency = c.currency("currency", &file.currency);
        let groups = c.groups(&file.mcc_groups);
        let names: BTreeSet<&str> = file.mcc_groups.iter().map(|g| g.name.as_str()).collect();
        let mut currencies: BTreeSet<u16> = BTreeSet::new();
        let row_currency = |c: &mut Checker<'_>, key: String, cur: &Option<String>| match cur {
            Some(text) => c.currency(&key, text),
            None => default_currency,
        };

        let mut interchange: HashMap<u16, Vec<Selected<InterchangeKey>>> = HashMap::new();
        for (i, row) in file.interchange.iter().enumerate() {
            let at = |k: &str| format!("interchange[{i}].{k}");
            let cur = row_currency(&mut c, at("currency"), &row.currency);
            c.group_ref(at("mcc_group"), row.mcc_group.as_deref(), &names);
            let Some(cur) = cur else { continue };
            let Some(rate) = c.rate(&at(""), &row.rate, cur) else {
                continue;
            };
            currencies.insert(cur.numeric());
            let key = (row.product, row.mcc_group.clone(), row.card_present);
            let selectors = [key.0.is_some(), key.1.is_some(), key.2.is_some()];
            if !add_row(
                interchange.entry(cur.numeric()).or_default(),
                key,
                selectors,
                rate,
            ) {
                c.push(
                    format!("interchange[{i}]"),
                    "repeats another row's currency, product, mcc_group and card_present",
                );
            }
        }

        let mut scheme = HashMap::new();
        for (i, row) in file.scheme_fees.iter().enumerate() {
            let at = |k: &str| format!("scheme_fee[{i}].{k}");
            let Some(cur) = row_currency(&mut c, at("currency"), &row.currency) else {
                continue;
            };
            let acquirer = c.bps(
                &at("acquirer_"),
                &row.acquirer_bps,
                &row.acquirer_per_item,
                cur,
            );
            let issuer = c.bps(&at("issuer_"), &row.issuer_bps, &row.issuer_per_item, cur);
            currencies.insert(cur.numeric());
            if let (Some(a), Some(b)) = (acquirer, issuer)
                && scheme.insert(cur.numeric(), (a, b)).is_some()
            {
                c.push(
                    format!("scheme_fee[{i}]"),
                    "a second scheme fee for the same currency",
                );
            }
        }

        let mut mdr: HashMap<u16, Vec<Selected<MdrKey>>> = HashMap::new();
        for (i, row) in file.mdr.iter().enumerate() {
            let at = |k: &str| format!("mdr[{i}].{k}");
            let cur = row_currency(&mut c, at("currency"), &row.currency);
            c.group_ref(at("mcc_group"), row.mcc_group.as_deref(), &names);
            for (k, v) in [("merchant", &row.merchant), ("acquirer", &row.acquirer)] {
                if v.as_deref()
                    .is_some_and(|v| v.trim().is_empty() || v.trim() != v)
                {
                    c.push(at(k), "must not be empty or padded with spaces");
                }
            }
            let Some(cur) = cur else { continue };
            let Some(rate) = c.rate(&at(""), &row.rate, cur) else {
                continue;
            };
            currencies.insert(cur.numeric());
            let key = (
                row.merchant.clone(),
                row.mcc_group.clone(),
                row.acquirer.clone(),
            );
            let selectors = [key.0.is_some(), key.1.is_some(), key.2.is_some()];
            if !add_row(mdr.entry(cur.numeric()).or_default(), key, selectors, rate) {
                c.push(
                    format!("mdr[{i}]"),
                    "repeats another row's currency, merchant, mcc_group and acquirer",
                );
            }
        }

        for cur in &currencies {
            if !interchange
                .get(cur)
                .is_some_and(|rows| rows.iter().any(|r| r.weight == 0))
            {
                c.push("interchange", format!("needs a catch-all row (no product, mcc_group or card_present) for currency {cur:03}"));
            }
            if !mdr
                .get(cur)
                .is_some_and(|rows| rows.iter().any(|r| r.weight == 0))
            {
                c.push("mdr", format!("needs a default row (no merchant, mcc_group or acquirer) for currency {cur:03}"));
            }
            if !scheme.contains_key(cur) {
                c.push("scheme_fee", format!("needs a row for currency {cur:03}"));
            }
        }
        if currencies.is_empty() {
            c.push("interchange", "the schedule has no rates at all");
        }
        if !c.problems.is_empty() {
            return Err(FeeError::Invalid {
                problems: c.problems,
            });
        }
        Ok(FeeSchedule {
            refund_reverses_interchange: file.refund_reverses_interchange,
            groups,
            interchange,
            scheme,
            mdr,
        })
    }

    /// The MCC group of `mcc` (`other` when it is in none or absent).
    pub fn group_of(&self, mcc: Option<u16>) -> &str {
        let Some(mcc) = mcc else { return OTHER_GROUP };
        let i = self.groups.partition_point(|(lo, _, _)| *lo <= mcc);
        match i.checked_sub(1).map(|i| &self.groups[i]) {
            Some((_, hi, name)) if mcc <= *hi => name,
            _ => OTHER_GROUP,
        }
    }

    /// The rates for a transaction.
    pub fn rates(&self, tx: &RateQuery<'_>) -> Result<Rates, FeeError> {
        let group = self.group_of(tx.mcc);
        let card_present = tx.card_present.unwrap_or(false);
        let interchange = self
            .interchange
            .get(&tx.currency)
            .and_then(|rows| {
                best(rows, |(p, g, cp)| {
                    p.is_none_or(|p| Some(p) == tx.product)
                        && g.as_deref().is_none_or(|g| g == group)
                        && cp.is_none_or(|cp| cp == card_present)
                })
            })
            .ok_or(FeeError::NoRate {
                what: "interchange",
                currency: tx.currency,
            })?;
        let mdr = self
            .mdr
            .get(&tx.currency)
            .and_then(|rows| {
                best(rows, |(m, g, a)| {
                    m.as_deref().is_none_or(|m| m == tx.merchant)
                        && g.as_deref().is_none_or(|g| g == group)
                        && a.as_deref().is_none_or(|a| a == tx.acquirer)
                })
            })
            .ok_or(FeeError::NoRate {
                what: "merchant discount rate",
                currency: tx.currency,
            })?;
        let &(scheme_acquirer, scheme_issuer) =
            self.scheme.get(&tx.currency).ok_or(FeeError::NoRate {
                what: "scheme fee",
                currency: tx.currency,
            })?;
        Ok(Rates {
            interchange,
            scheme_acquirer,
            scheme_issuer,
            mdr,
        })
    }
}

/// What picks a transaction's rates.
#[derive(Debug, Clone, Copy)]
pub struct RateQuery<'a> {
    pub currency: u16,
    pub product: Option<Product>,
    pub mcc: Option<u16>,
    pub card_present: Option<bool>,
    pub acquirer: &'a str,
    /// Field 42 without padding.
    pub merchant: &'a str,
}

/// Adds a rate row whose three selectors (heaviest first) are set as given; false when another
/// row has the same selectors.
fn add_row<K: PartialEq>(
    rows: &mut Vec<Selected<K>>,
    key: K,
    selectors: [bool; 3],
    rate: Rate,
) -> bool {
    let repeated = rows.iter().any(|r| r.key == key);
    let weight = 4 * u8::from(selectors[0]) + 2 * u8::from(selectors[1]) + u8::from(selectors[2]);
    rows.push(Selected { key, weight, rate });
    !repeated
}

/// The heaviest row whose selectors all match.
fn best<K>(rows: &[Selected<K>], matches: impl Fn(&K) -> bool) -> Option<Rate> {
    rows.iter()
        .filter(|r| matches(&r.key))
        .max_by_key(|r| r.weight)
        .map(|r| r.rate)
}

/// Collects problems with their keys.
struct Checker<'a> {
    file: &'a str,
    problems: Vec<Problem>,
}

impl Checker<'_> {
    fn push(&mut self, key: impl Into<String>, message: impl Into<String>) {
        self.problems.push(Problem {
            file: self.file.to_owned(),
            key: key.into(),
            message: message.into(),
        });
    }

    fn currency(&mut self, key: &str, text: &str) -> Option<Currency> {
        let c = Currency::from_field(text.as_bytes()).ok();
        if c.is_none() {
            self.push(
                key,
                format!("must be a known ISO 4217 numeric code (got {text:?})"),
            );
        }
        c
    }

    /// A non-negative decimal string: digits, optionally a point and more digits.
    fn decimal(&mut self, key: &str, text: &str) -> Option<Decimal> {
        let (int, frac) = text.split_once('.').unwrap_or((text, ""));
        let plain = !int.is_empty()
            && int.bytes().all(|b| b.is_ascii_digit())
            && frac.bytes().all(|b| b.is_ascii_digit())
            && !(text.contains('.') && frac.is_empty());
        match plain.then(|| Decimal::from_str(text).ok()).flatten() {
            Some(d) => Some(d),
            None => {
                self.push(
                    key,
                    format!("must be a non-negative decimal such as \"1.20\" (got {text:?})"),
                );
                None
            }
        }
    }

    /// A major-unit amount with at most the currency's decimals, in minor units.
    fn amount(&mut self, key: &str, text: &str, currency: Currency) -> Option<Decimal> {
        let d = self.decimal(key, text)?;
        if d.normalize().scale() > u32::from(currency.exponent()) {
            self.push(
                key,
                format!(
                    "has more than {} decimals for {}",
                    currency.exponent(),
                    currency.alpha()
                ),
            );
            return None;
        }
        d.checked_mul(Decimal::from(10u64.pow(u32::from(currency.exponent()))))
    }

    fn rate(&mut self, at: &str, r: &RateEntry, currency: Currency) -> Option<Rate> {
        let percent = self.decimal(&format!("{at}percent"), &r.percent);
        if percent.is_some_and(|p| p > Decimal::ONE_HUNDRED) {
            self.push(format!("{at}percent"), "must be at most 100");
        }
        let fixed = self.amount(&format!("{at}fixed"), &r.fixed, currency);
        let min = r
            .min
            .as_ref()
            .map(|m| self.amount(&format!("{at}min"), m, currency));
        let max = r
            .max
            .as_ref()
            .map(|m| self.amount(&format!("{at}max"), m, currency));
        if let (Some(Some(lo)), Some(Some(hi))) = (min, max)
            && lo > hi
        {
            self.push(format!("{at}min"), "must not exceed max");
        }
        Some(Rate {
            percent: percent.filter(|p| *p <= Decimal::ONE_HUNDRED)?,
            fixed_minor: fixed?,
            min_minor: min.map_or(Some(None), |m| m.map(Some))?,
            max_minor: max.map_or(Some(None), |m| m.map(Some))?,
        })
    }

    fn bps(&mut self, at: &str, bps: &str, per_item: &str, currency: Currency) -> Option<Rate> {
        let bps = self.decimal(&format!("{at}bps"), bps);
        let fixed = self.amount(&format!("{at}per_item"), per_item, currency);
        Some(Rate {
            percent: bps? / Decimal::ONE_HUNDRED,
            fixed_minor: fixed?,
            min_minor: None,
            max_minor: None,
        })
    }

    fn group_ref(&mut self, key: String, group: Option<&str>, names: &BTreeSet<&str>) {
        if let Some(g) = group
            && g != OTHER_GROUP
            && !names.contains(g)
        {
            self.push(key, format!("names no [[mcc_group]] ({g:?})"));
        }
    }

    fn groups(&mut self, groups: &[MccGroupEntry]) -> Vec<(u16, u16, String)> {
        let mut out = Vec::new();
        let mut names = BTreeMap::new();
        for (i, g) in groups.iter().enumerate() {
            if g.name.trim().is_empty() || g.name == OTHER_GROUP {
                self.push(
                    format!("mcc_group[{i}].name"),
                    "must be non-empty and not `other` (the group of every unlisted MCC)",
                );
            } else if let Some(first) = names.insert(g.name.as_str(), i) {
                self.push(
                    format!("mcc_group[{i}].name"),
                    format!("duplicate of mcc_group[{first}].name"),
                );
            }
            if g.mccs.is_empty() {
                self.push(format!("mcc_group[{i}].mccs"), "must list at least one MCC");
            }
            for (j, text) in g.mccs.iter().enumerate() {
                let (lo, hi) = text.split_once('-').unwrap_or((text, text));
                match (mcc(lo), mcc(hi)) {
                    (Some(lo), Some(hi)) if lo <= hi => out.push((lo, hi, g.name.clone())),
                    _ => self.push(
                        format!("mcc_group[{i}].mccs[{j}]"),
                        format!(
                            "must be a 4-digit MCC or a range such as \"5811-5814\" (got {text:?})"
                        ),
                    ),
                }
            }
        }
        out.sort();
        for pair in out.windows(2) {
            if pair[1].0 <= pair[0].1 {
                self.push(
                    "mcc_group",
                    format!(
                        "MCC {:04} is in both {} and {}",
                        pair[1].0, pair[0].2, pair[1].2
                    ),
                );
            }
        }
        out
    }
}

fn mcc(text: &str) -> Option<u16> {
    (text.len() == 4 && text.bytes().all(|b| b.is_ascii_digit()))
        .then(|| text.parse().ok())
        .flatten()
}
