//! The transaction mix (`--mix FILE`): which requests loadgen sends, on which cards, how often,
//! and what the model must know about the cards to predict each answer.
//!
//! # File format (TOML, unknown keys are errors)
//!
//! ```toml
//! currency = "156"                 # field 49 of every request; numeric or alphabetic. Default 156
//!
//! [[cards]]                        # a card set: cards the model treats alike
//! name = "north"                   # referenced by [[txn]] cards
//! csv = "north-bank-cards.csv"     # PANs from the `pan` column of a CSV (relative to this file)...
//! pans = ["4111110000000013"]      # ...and/or listed here (both may be given)
//! kind = "on-file"                 # on-file (default) | not-on-file (routed BIN, unknown card: 14)
//!                                  # | unknown-bin (no BIN range: 15)
//! status = "active"                # active (default) | lost 41 | stolen 43 | restricted 62 | closed 57
//! expiry = "3012"                  # the expiry on file, YYMM; also what field 14 carries by default
//! funds = "ample"                  # ample (never runs dry during a run; the default) | empty (51
//!                                  # on every debit) | a fixed available amount such as "100.00"
//!
//! [[txn]]                          # a weighted transaction
//! name = "purchase"                # label in reports (default: action and card set)
//! weight = 70                      # relative frequency, > 0
//! action = "purchase"              # purchase (0200 000000) | preauth (0100 000000)
//!                                  # | balance (0100 310000, no amount)
//! cards = "north"                  # the card set; each request picks a card uniformly at random
//! amount = "12.34"                 # a fixed amount in major units, or a uniform range:
//! amount_min = "1.00"              #   amount_min..=amount_max (minor units, inclusive)
//! amount_max = "200.00"
//! expiry = "2401"                  # field 14 instead of the set's expiry (e.g. expired: 54)
//! expect = "05"                    # optional: the answer to expect instead of the model's
//! pin = "1234"                     # optional: the cardholder's PIN, enciphered by the PIN pad that
//!                                  # `loadgen run --keys` sets up (the model expects it correct)
//! ```
//!
//! A fixed `funds` amount is only usable when nothing in the mix can be approved on it (the model
//! is stateless, so it cannot follow a balance that approvals spend): loading refuses a mix that
//! could approve a debit on such a set. All problems of a file are reported at once; messages
//! never repeat a card number.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use switch::client::{TxnKind, TxnOptions};
use switch::domain::{Amount, Currency, Expiry, ResponseCode};
use switch::iso8583::decode::mask_pan;
use switch::issuing::{CardStatus, NaiveDate};

use super::model;

/// Why a mix file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum MixError {
    #[error("mix {}: cannot read: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("mix {file}: {message}")]
    Parse { file: String, message: String },
    #[error("mix {file}: {}", problems.join("; "))]
    Invalid { file: String, problems: Vec<String> },
}

/// What a transaction does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// 0200, processing code 000000.
    Purchase,
    /// 0100, 000000: an authorization hold.
    Preauth,
    /// 0100, 310000, without field 4.
    Balance,
}

impl Action {
    /// The client's request type.
    pub fn kind(self) -> TxnKind {
        match self {
            Action::Purchase => TxnKind::Purchase,
            Action::Preauth => TxnKind::Preauth,
            Action::Balance => TxnKind::Balance,
        }
    }

    /// True when the request takes money (funds are checked).
    pub fn is_debit(self) -> bool {
        !matches!(self, Action::Balance)
    }

    pub fn name(self) -> &'static str {
        match self {
            Action::Purchase => "purchase",
            Action::Preauth => "preauth",
            Action::Balance => "balance",
        }
    }
}

/// Where a card set's cards live, as far as routing and the issuer know.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CardKind {
    /// On the file of the issuer its BIN routes to.
    #[default]
    OnFile,
    /// Its BIN routes to an issuer that does not know the card (14).
    NotOnFile,
    /// No BIN range matches (15).
    UnknownBin,
}

/// The money behind a card set, as the model sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Funds {
    /// Far more than a run can spend: every debit within the product's rules is approved.
    Ample,
    /// A fixed available amount that no approval changes (`empty` is zero).
    Fixed(Amount),
}

/// A set of cards the model treats alike.
#[derive(Clone)]
pub struct CardSet {
    pub name: String,
    /// Card numbers, digits only (12-19). `Debug` of the set never shows them.
    pans: Vec<String>,
    pub kind: CardKind,
    pub status: CardStatus,
    /// The expiry on file.
    pub expiry: Expiry,
    pub funds: Funds,
}

// Card numbers never reach a log: `Debug` shows how many there are, not which.
impl fmt::Debug for CardSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CardSet")
            .field("name", &self.name)
            .field("cards", &self.pans.len())
            .field("kind", &self.kind)
            .field("status", &self.status)
            .field("expiry", &self.expiry)
            .field("funds", &self.funds)
            .finish()
    }
}

impl CardSet {
    pub fn len(&self) -> usize {
        self.pans.len()
    }

    pub fn is_empty(&self) -> bool {
        self.pans.is_empty()
    }

    /// The card numbers, in clear: for building requests only.
    pub fn expose_pans(&self) -> &[String] {
        &self.pans
    }
}

/// A weighted transaction of the mix.
#[derive(Debug, Clone)]
pub struct Txn {
    pub name: String,
    pub weight: u32,
    pub action: Action,
    /// Index into [`Mix::sets`].
    pub set: usize,
    /// Amount range in minor units, inclusive; `None` for a balance inquiry.
    pub amount: Option<(i64, i64)>,
    /// Field 14 as sent.
    pub expiry: Expiry,
    /// The options every request of this entry is built with (field 14).
    pub options: TxnOptions,
    /// The declared answer, overriding the model.
    pub expect: Option<ResponseCode>,
}

/// One request to send, picked from the mix. `Debug` masks the card number.
#[derive(Clone, Copy)]
pub struct Pick<'m> {
    /// Index into [`Mix::txns`].
    pub txn: usize,
    pub pan: &'m str,
    /// Minor units; `None` for a balance inquiry.
    pub amount: Option<i64>,
}

impl fmt::Debug for Pick<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pick")
            .field("txn", &self.txn)
            .field("pan", &mask_pan(self.pan.as_bytes()))
            .field("amount", &self.amount)
            .finish()
    }
}

/// A loaded, checked mix.
#[derive(Debug, Clone)]
pub struct Mix {
    /// Where it came from, for messages.
    pub origin: String,
    pub currency: Currency,
    pub sets: Vec<CardSet>,
    pub txns: Vec<Txn>,
    /// Cumulative weights, for picking.
    cumulative: Vec<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMix {
    #[serde(default)]
    currency: Option<String>,
    #[serde(default)]
    cards: Vec<RawCardSet>,
    #[serde(default)]
    txn: Vec<RawTxn>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCardSet {
    name: String,
    #[serde(default)]
    pans: Vec<String>,
    #[serde(default)]
    csv: Option<String>,
    #[serde(default)]
    kind: CardKind,
    #[serde(default)]
    status: CardStatus,
    expiry: String,
    #[serde(default)]
    funds: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTxn {
    #[serde(default)]
    name: Option<String>,
    weight: u32,
    action: Action,
    cards: String,
    #[serde(default)]
    amount: Option<String>,
    #[serde(default)]
    amount_min: Option<String>,
    #[serde(default)]
    amount_max: Option<String>,
    #[serde(default)]
    expiry: Option<String>,
    #[serde(default)]
    expect: Option<String>,
    /// A PIN (4-12 digits) entered at the terminal: enciphered by loadgen's PIN pad (`--keys`).
    #[serde(default)]
    pin: Option<String>,
}

impl Mix {
    /// Reads and checks the mix at `path` (and the CSV files it names, relative to it). `today`
    /// is the date the model checks expiry against.
    pub fn load(path: &Path, today: NaiveDate) -> Result<Mix, MixError> {
        let text = std::fs::read_to_string(path).map_err(|source| MixError::Io {
            path: path.to_owned(),
            source,
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        Mix::from_toml_str(&text, &path.display().to_string(), base, today)
    }

    /// Parses and checks mix text; CSV paths are relative to `base`.
    pub fn from_toml_str(
        text: &str,
        origin: &str,
        base: &Path,
        today: NaiveDate,
    ) -> Result<Mix, MixError> {
        let raw: RawMix = toml::from_str(text).map_err(|e| MixError::Parse {
            file: origin.to_owned(),
            message: e.to_string().trim_end().replace('\n', "; "),
        })?;
        let mut problems = Vec::new();
        let currency = match raw.currency.as_deref() {
            None => Currency::CNY,
            Some(text) => match parse_currency(text) {
                Some(c) => c,
                None => {
                    problems.push(format!(
                        "currency: {text:?} is not a supported ISO 4217 code"
                    ));
                    Currency::CNY
                }
            },
        };

        let mut sets = Vec::with_capacity(raw.cards.len());
        let mut by_name = HashMap::new();
        let mut broken = HashSet::new();
        for (i, c) in raw.cards.into_iter().enumerate() {
            let key = format!("cards[{i}] ({})", c.name);
            if c.name.is_empty() {
                problems.push(format!("cards[{i}].name: must not be empty"));
            }
            if by_name.contains_key(&c.name) || broken.contains(&c.name) {
                problems.push(format!("{key}: duplicate card set name"));
            }
            let mut pans = Vec::new();
            for (j, p) in c.pans.iter().enumerate() {
                if pan_shape_ok(p) {
                    pans.push(p.clone());
                } else {
                    problems.push(format!("{key}.pans[{j}]: must be 12-19 digits"));
                }
            }
            if let Some(csv) = &c.csv {
                match read_pan_column(&base.join(csv)) {
                    Ok(rows) => pans.extend(rows),
                    Err(e) => problems.push(format!("{key}.csv: {e}")),
                }
            }
            if pans.is_empty() {
                problems.push(format!("{key}: no cards (give `pans` or `csv`)"));
            }
            let expiry = match Expiry::from_field(c.expiry.as_bytes()) {
                Ok(e) => Some(e),
                Err(e) => {
                    problems.push(format!("{key}.expiry: {e} (got {:?})", c.expiry));
                    None
                }
            };
            let funds = match c.funds.as_deref() {
                None | Some("ample") => Funds::Ample,
                Some("empty") => Funds::Fixed(Amount::zero(currency)),
                Some(text) => match Amount::parse_major(text, currency) {
                    Ok(a) if !a.is_negative() => Funds::Fixed(a),
                    _ => {
                        problems.push(format!(
                            "{key}.funds: must be \"ample\", \"empty\" or an amount such as \"100.00\" (got {text:?})"
                        ));
                        Funds::Ample
                    }
                },
            };
            // A set without a valid expiry is reported above; entries naming it are skipped.
            if let Some(expiry) = expiry {
                by_name.insert(c.name.clone(), sets.len());
                sets.push(CardSet {
                    name: c.name,
                    pans,
                    kind: c.kind,
                    status: c.status,
                    expiry,
                    funds,
                });
            } else {
                broken.insert(c.name);
            }
        }

        let mut txns = Vec::with_capacity(raw.txn.len());
        for (i, t) in raw.txn.into_iter().enumerate() {
            let key = format!("txn[{i}]");
            if t.weight == 0 {
                problems.push(format!("{key}.weight: must be greater than 0"));
            }
            let Some(&set) = by_name.get(&t.cards) else {
                if !broken.contains(&t.cards) {
                    problems.push(format!("{key}.cards: no card set named {:?}", t.cards));
                }
                continue;
            };
            let amount = match parse_amounts(&t, currency) {
                Ok(a) => a,
                Err(e) => {
                    problems.push(format!("{key}: {e}"));
                    continue;
                }
            };
            let expiry_text = t.expiry.clone().unwrap_or_else(|| {
                let e = sets[set].expiry.to_field();
                String::from_utf8_lossy(&e).into_owned()
            });
            let expiry = match Expiry::from_field(expiry_text.as_bytes()) {
                Ok(e) => e,
                Err(e) => {
                    problems.push(format!("{key}.expiry: {e} (got {expiry_text:?})"));
                    continue;
                }
            };
            let expect = match t.expect.as_deref() {
                None => None,
                Some(code) => match ResponseCode::from_field(code.as_bytes()) {
                    Ok(c) => Some(c),
                    Err(e) => {
                        problems.push(format!("{key}.expect: {e} (got {code:?})"));
                        continue;
                    }
                },
            };
            let mut options = TxnOptions::new().expiry(expiry_text);
            if let Some(pin) = t.pin {
                if switch::security::pinblock::check_pin(&pin).is_ok() {
                    options = options.pin(pin);
                } else {
                    // The value is not echoed: it is a PIN.
                    problems.push(format!("{key}.pin: must be 4 to 12 digits"));
                    continue;
                }
            }
            let name = t
                .name
                .unwrap_or_else(|| format!("{} {}", t.action.name(), t.cards));
            let txn = Txn {
                name,
                weight: t.weight,
                action: t.action,
                set,
                amount,
                expiry,
                options,
                expect,
            };
            if let Err(e) = fixed_funds_stay_fixed(&txn, &sets[set], currency, today) {
                problems.push(format!("{key} ({}): {e}", txn.name));
            }
            txns.push(txn);
        }
        if txns.is_empty() && problems.is_empty() {
            problems.push("at least one [[txn]] is required".into());
        }
        if !problems.is_empty() {
            return Err(MixError::Invalid {
                file: origin.to_owned(),
                problems,
            });
        }
        let mut total = 0u64;
        let cumulative = txns
            .iter()
            .map(|t| {
                total += u64::from(t.weight);
                total
            })
            .collect();
        Ok(Mix {
            origin: origin.to_owned(),
            currency,
            sets,
            txns,
            cumulative,
        })
    }

    /// Sum of the weights.
    pub fn total_weight(&self) -> u64 {
        self.cumulative.last().copied().unwrap_or(0)
    }

    /// Picks a transaction by weight, a card of its set uniformly, and an amount uniformly in its
    /// range (thread-local RNG).
    pub fn pick(&self) -> Pick<'_> {
        let total = self.total_weight().max(1);
        let r = fastrand::u64(0..total);
        let txn = self
            .cumulative
            .partition_point(|&c| c <= r)
            .min(self.txns.len().saturating_sub(1));
        let t = &self.txns[txn];
        let pans = &self.sets[t.set].pans;
        let pan = pans[fastrand::usize(0..pans.len())].as_str();
        let amount = t.amount.map(|(lo, hi)| fastrand::i64(lo..=hi));
        Pick { txn, pan, amount }
    }

    /// What the model expects of each entry, one line each, for the start of a run.
    pub fn describe(&self, today: NaiveDate) -> Vec<String> {
        let total = self.total_weight().max(1);
        self.txns
            .iter()
            .map(|t| {
                let set = &self.sets[t.set];
                let code = t.expect.unwrap_or_else(|| {
                    let amount = t.amount.map(|(_, hi)| Amount::new(hi, self.currency));
                    let pan = set.pans.first().map(String::as_str).unwrap_or("");
                    model::expected(set, t.action, pan, amount, t.expiry, today)
                });
                let amount = match t.amount {
                    None => "-".to_owned(),
                    Some((lo, hi)) if lo == hi => Amount::new(lo, self.currency).to_string(),
                    Some((lo, hi)) => format!(
                        "{}..{}",
                        Amount::new(lo, self.currency),
                        Amount::new(hi, self.currency)
                    ),
                };
                let share = u64::from(t.weight) * 1000 / total;
                format!(
                    "{:<34} {:>3}.{}%  {:<8} {:<36} {:<24} expect {}{}",
                    t.name,
                    share / 10,
                    share % 10,
                    t.action.name(),
                    format!("{} ({} cards)", set.name, set.pans.len()),
                    amount,
                    code.as_str(),
                    if t.expect.is_some() {
                        " (declared)"
                    } else {
                        ""
                    }
                )
            })
            .collect()
    }
}

/// 12-19 ASCII digits (the Luhn check is the model's business: a bad one is answered 14).
fn pan_shape_ok(p: &str) -> bool {
    (12..=19).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_digit())
}

fn parse_currency(text: &str) -> Option<Currency> {
    if text.bytes().all(|b| b.is_ascii_digit()) {
        Currency::from_field(text.as_bytes()).ok()
    } else {
        Currency::from_alpha(text).ok()
    }
}

fn parse_amounts(t: &RawTxn, currency: Currency) -> Result<Option<(i64, i64)>, String> {
    let parse = |field: &str, text: &str| -> Result<i64, String> {
        match Amount::parse_major(text, currency) {
            Ok(a) if a.is_negative() => Err(format!("{field}: must not be negative")),
            Ok(a) if a.to_field().is_err() => Err(format!("{field}: too large for field 4")),
            Ok(a) => Ok(a.minor()),
            Err(e) => Err(format!("{field}: {e} (got {text:?})")),
        }
    };
    match (t.action, &t.amount, &t.amount_min, &t.amount_max) {
        (Action::Balance, None, None, None) => Ok(None),
        (Action::Balance, ..) => Err("a balance inquiry carries no amount".into()),
        (_, Some(a), None, None) => {
            let m = parse("amount", a)?;
            Ok(Some((m, m)))
        }
        (_, None, Some(lo), Some(hi)) => {
            let (lo, hi) = (parse("amount_min", lo)?, parse("amount_max", hi)?);
            if lo > hi {
                return Err("amount_min is above amount_max".into());
            }
            Ok(Some((lo, hi)))
        }
        _ => Err("give either `amount` or both `amount_min` and `amount_max`".into()),
    }
}

/// Refuses an entry that could be approved on a set with a fixed available amount: the
/// stateless model would not know the new balance.
fn fixed_funds_stay_fixed(
    t: &Txn,
    set: &CardSet,
    currency: Currency,
    today: NaiveDate,
) -> Result<(), String> {
    let (Funds::Fixed(_), true, Some((lo, _))) = (set.funds, t.action.is_debit(), t.amount) else {
        return Ok(());
    };
    if t.expect.is_some() {
        return Ok(());
    }
    let Some(pan) = set.pans.first() else {
        return Ok(());
    };
    let code = model::expected(
        set,
        t.action,
        pan,
        Some(Amount::new(lo, currency)),
        t.expiry,
        today,
    );
    if code.is_approval() {
        Err(format!(
            "card set {:?} has a fixed available amount, and this entry could be approved on it \
             (the model cannot follow a balance that approvals spend): send amounts above it, \
             or use funds = \"ample\"",
            set.name
        ))
    } else {
        Ok(())
    }
}

/// The `pan` column of a CSV file with a header row.
fn read_pan_column(path: &Path) -> Result<Vec<String>, String> {
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_path(path)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let headers = reader
        .headers()
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let Some(col) = headers.iter().position(|h| h == "pan") else {
        return Err(format!(
            "{}: no `pan` column in the header row",
            path.display()
        ));
    };
    let mut out = Vec::new();
    let mut record = csv::StringRecord::new();
    let mut row = 1u64;
    loop {
        match reader.read_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {
                row += 1;
                let p = record.get(col).unwrap_or("");
                if !pan_shape_ok(p) {
                    // Never echo the value: it may be a card number.
                    return Err(format!(
                        "{} row {row}: `pan` must be 12-19 digits",
                        path.display()
                    ));
                }
                out.push(p.to_owned());
            }
            Err(e) => return Err(format!("{}: {e}", path.display())),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn today() -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 11, 25).unwrap_or_default()
    }

    const MIX: &str = r#"
[[cards]]
name = "ok"
pans = ["4111110000000013", "4111110000000047"]
expiry = "3012"

[[cards]]
name = "limit"
pans = ["4111110000000047"]
expiry = "3012"
funds = "100.00"

[[txn]]
weight = 3
action = "purchase"
cards = "ok"
amount_min = "1.00"
amount_max = "2.00"

[[txn]]
weight = 1
action = "balance"
cards = "ok"

[[txn]]
name = "over"
weight = 1
action = "purchase"
cards = "limit"
amount = "150.00"
"#;

    #[test]
    fn loads_and_picks_by_weight() {
        let mix = Mix::from_toml_str(MIX, "mem", Path::new("."), today()).expect("mix");
        assert_eq!(mix.total_weight(), 5);
        assert_eq!(mix.txns[0].name, "purchase ok");
        assert_eq!(mix.txns[0].amount, Some((100, 200)));
        let mut counts = [0u32; 3];
        for _ in 0..10_000 {
            let p = mix.pick();
            counts[p.txn] += 1;
            if let Some(a) = p.amount {
                assert!(p.txn == 2 || (100..=200).contains(&a));
            } else {
                assert_eq!(p.txn, 1);
            }
        }
        // 60% / 20% / 20%, loosely.
        assert!((5_500..6_500).contains(&counts[0]), "{counts:?}");
        assert!((1_500..2_500).contains(&counts[1]), "{counts:?}");
        let lines = mix.describe(today());
        assert!(lines[0].contains("expect 00"), "{}", lines[0]);
        assert!(lines[2].contains("expect 51"), "{}", lines[2]);
    }

    #[test]
    fn every_problem_at_once_without_card_numbers() {
        let bad = r#"
currency = "XYZ"
[[cards]]
name = "a"
pans = ["41111100000000AB"]
expiry = "3013"
funds = "lots"

[[cards]]
name = "limit"
pans = ["4111110000000047"]
expiry = "3012"
funds = "100.00"

[[txn]]
weight = 1
action = "purchase"
cards = "a"
amount = "1.00"

[[txn]]
weight = 0
action = "balance"
cards = "limit"
amount = "1.00"

[[txn]]
weight = 1
action = "purchase"
cards = "nope"

[[txn]]
weight = 1
action = "purchase"
cards = "limit"
amount_min = "50.00"
amount_max = "150.00"
"#;
        let e = Mix::from_toml_str(bad, "mem", Path::new("."), today()).expect_err("invalid");
        let text = e.to_string();
        for needle in [
            "currency",
            "pans[0]",
            "expiry",
            "funds",
            "weight",
            "no amount",
            "no card set",
            "fixed available amount",
        ] {
            assert!(text.contains(needle), "{needle} missing from {text}");
        }
        assert!(!text.contains("41111100000000AB"));
    }

    #[test]
    fn debug_never_shows_card_numbers() {
        let mix = Mix::from_toml_str(MIX, "mem", Path::new("."), today()).expect("mix");
        let text = format!("{mix:?} {:?}", mix.pick());
        assert!(!text.contains("4111110000000013"), "{text}");
        assert!(!text.contains("4111110000000047"), "{text}");
    }

    #[test]
    fn a_pin_goes_into_the_options_and_a_bad_one_is_named_not_shown() {
        let text = |pin: &str| {
            format!(
                "[[cards]]\nname = \"a\"\npans = [\"4111110000000013\"]\nexpiry = \"3012\"\n\
                 [[txn]]\nweight = 1\naction = \"balance\"\ncards = \"a\"\npin = \"{pin}\"\n"
            )
        };
        let mix = Mix::from_toml_str(&text("1234"), "mem", Path::new("."), today()).expect("mix");
        assert_eq!(mix.txns[0].options.pin.as_deref(), Some("1234"));
        let e = Mix::from_toml_str(&text("12x45"), "mem", Path::new("."), today())
            .expect_err("not digits");
        let shown = e.to_string();
        assert!(shown.contains("txn[0].pin"), "{shown}");
        assert!(!shown.contains("12x45"), "{shown}");
    }

    #[test]
    fn unknown_keys_are_errors() {
        let e = Mix::from_toml_str(
            "[[txn]]\nweight = 1\naction = \"purchase\"\ncards = \"x\"\namonut = \"1\"\n",
            "mem",
            Path::new("."),
            today(),
        )
        .expect_err("typo");
        assert!(matches!(e, MixError::Parse { .. }), "{e}");
    }

    #[test]
    fn the_shipped_default_mix_loads() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("loadgen/default.toml");
        let mix = Mix::load(&path, today()).expect("default mix");
        assert!(mix.txns.len() >= 5);
    }
}
