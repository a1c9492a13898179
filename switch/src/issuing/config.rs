//! The issuer file, `config/issuers/<id>.toml`: who the issuer is, where its simulator listens,
//! where its journal goes, its products, accounts and cards ([`IssuerFile`]).
//!
//! Owns the file's shape (typed serde structs with `deny_unknown_fields`, so a misspelt key is an
//! error), reading the optional CSV files of cards and accounts it names (paths relative to the
//! TOML file), and the static checks ([`IssuerFile::validate`]), which report every problem at
//! once in the switch's [`Problem`] format. It leaves what the values *mean* to the engine
//! ([`super::Engine::from_file`] converts a valid file into its tables) and binding the listener
//! and opening the journal to the issuer simulator.
//!
//! Why strings for amounts, PANs and dates: they are checked here all together rather than by
//! serde one at a time, so an operator sees every bad row of a 10,000-card file in one pass, and
//! amounts are parsed by [`Amount::parse_major`] in the product's currency (no floats anywhere).
//! Percentages are decimal strings parsed exactly by `rust_decimal`.
//!
//! The file never holds a PIN: each card carries its PVV and PVKI, computed under the issuer's
//! PVK (`[security] pvk`). The PVK in the repository's files is a published test key.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::config::{ConfigError, Problem};
use crate::domain::{Amount, Currency, Expiry, Pan};

use super::pin::parse_pvk;

/// Default `hold_expiry_h`: a week, the usual card-scheme authorization validity.
const HOLD_EXPIRY_H_DEFAULT: u32 = 168;
/// Default `[ledger] idempotency_window_h`: 30 days, above every hold expiry by default.
const IDEMPOTENCY_WINDOW_H_DEFAULT: u32 = 720;
/// Default `[ledger] records_max`: 20 million records, about 5–7 GB at the 240–340 bytes one
/// costs (docs/performance.md, "Idempotency records: bounded", "Smaller idempotency keys" and
/// "Idempotency records packed"), instead of growing until the machine runs out of memory.
const RECORDS_MAX_DEFAULT: u64 = 20_000_000;
/// Default `[ledger] sweep_interval_s`: how often expired holds are released and old records
/// forgotten on accounts that see no requests.
const SWEEP_INTERVAL_S_DEFAULT: u32 = 60;
/// Default `pin_tries_max`: the third wrong PIN in a row blocks the card.
const PIN_TRIES_DEFAULT: u8 = 3;
/// Longest `auth_code_prefix`, so at least four characters of the 6-character code count.
pub(crate) const AUTH_PREFIX_MAX: usize = 2;
/// Default `cycle_day`: 31, i.e. every statement cycle closes on the last day of its month.
pub(crate) const CYCLE_DAY_DEFAULT: u8 = 31;
/// Default `due_days`: the payment is due 25 days after the cycle closes.
pub(crate) const DUE_DAYS_DEFAULT: u32 = 25;
/// Longest `due_days`: the shortest cycle (February) has 28 days, so the due date always falls
/// before the next cycle closes, and that close can tell whether the payment was on time.
pub(crate) const DUE_DAYS_MAX: u32 = 28;
/// Default `min_payment_percent`.
pub(crate) const MIN_PAYMENT_PERCENT_DEFAULT: &str = "1";

/// The whole issuer file.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct IssuerFile {
    /// Cards in a CSV file, relative to the TOML file, in addition to `[[card]]`. Columns:
    /// `pan,account,expiry,status,pvki,pvv` (header row required; `pvki` and `pvv` may be empty).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cards_csv: Option<String>,
    /// Accounts in a CSV file, relative to the TOML file, in addition to `[[account]]`. Columns:
    /// `id,product,balance,credit_limit,cash_limit,overdraft`, optionally `cycle_day` (empty
    /// cells take the defaults).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accounts_csv: Option<String>,
    /// `[issuer]`: identity.
    pub issuer: IssuerSection,
    /// `[listener]`: where the issuer simulator listens; absent for an on-us issuer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listener: Option<ListenerSection>,
    /// `[journal]`: where the issuer simulator journals its ledger events.
    pub journal: JournalSection,
    /// `[security]`: PIN verification key.
    #[serde(default)]
    pub security: SecuritySection,
    /// `[ledger]`: idempotency and retention.
    #[serde(default)]
    pub ledger: LedgerSection,
    /// `[[product]]`: card products (count, 1..N).
    #[serde(default, rename = "product")]
    pub products: Vec<ProductEntry>,
    /// `[[account]]`: accounts, plus those of `accounts_csv`.
    #[serde(default, rename = "account", skip_serializing_if = "Vec::is_empty")]
    pub accounts: Vec<AccountEntry>,
    /// `[[card]]`: cards, plus those of `cards_csv`.
    #[serde(default, rename = "card", skip_serializing_if = "Vec::is_empty")]
    pub cards: Vec<CardEntry>,
    /// Where the file came from, for messages and relative paths. Not part of the file.
    #[serde(skip)]
    pub origin: String,
}

/// `[issuer]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct IssuerSection {
    /// The issuer id, as in the switch's `[[issuer]] id` (1-32 of `a-z0-9-`).
    pub id: String,
    /// Display name.
    pub name: String,
    /// 0-2 upper-case letters or digits that open every authorization code (field 38); the rest
    /// is a base-36 counter. Default: none.
    #[serde(default)]
    pub auth_code_prefix: String,
}

/// `[listener]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ListenerSection {
    /// `ip:port` the issuer simulator listens on.
    pub address: String,
}

/// `[journal]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct JournalSection {
    /// Directory of the issuer's journal, relative to the working directory.
    pub dir: String,
}

/// `[security]`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SecuritySection {
    /// PIN verification key: double-length TDES, 32 hex digits. Without it no PIN can be
    /// verified from a PIN block (the engine still applies PIN outcomes given to it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pvk: Option<String>,
    /// Issuer simulator only: the keys file holding the link keys below (path relative to the
    /// working directory). Required when `pin_key` or `mac_key` is set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keys_file: Option<String>,
    /// Issuer simulator only: key id of the zone PIN key the switch sends PIN blocks under
    /// (`issuer:<id>:zpk`, the switch's `[[issuer]] pin_key`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pin_key: Option<String>,
    /// Issuer simulator only: key id of the link's MAC key (`issuer:<id>:mac`, the switch's
    /// `[[issuer]] mac_key`): messages both ways carry a MAC under it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac_key: Option<String>,
}

/// `[ledger]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct LedgerSection {
    /// How long the answer to a request is kept for retries, and a posting stays reversible
    /// (hours). At least every product's `hold_expiry_h`. Default 720 (30 days).
    pub idempotency_window_h: u32,
    /// Most idempotency records held at once, over every account (records, one per answered
    /// request within the window). From 15/16 of it the sweep forgets the oldest records that
    /// stand for no money; at it, new authorizations and financial requests are answered 96
    /// (see `Engine::sweep` and `Engine::process_with`). Default 20,000,000.
    pub records_max: u64,
    /// Seconds between sweeps: expired holds released and records past the window forgotten on
    /// accounts without requests of their own (0: never; requests still do both on their own
    /// account). Default 60.
    pub sweep_interval_s: u32,
}

impl Default for LedgerSection {
    fn default() -> Self {
        LedgerSection {
            idempotency_window_h: IDEMPOTENCY_WINDOW_H_DEFAULT,
            records_max: RECORDS_MAX_DEFAULT,
            sweep_interval_s: SWEEP_INTERVAL_S_DEFAULT,
        }
    }
}

/// The three card products.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ProductKind {
    /// Pay later: a credit line; the balance is what the cardholder owes.
    Credit,
    /// Pay now: the cardholder's own money, plus an optional overdraft.
    Debit,
    /// Pay first: loaded money; the balance never goes negative.
    Prepaid,
}

/// `[[product]]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ProductEntry {
    /// Product id, referenced by accounts.
    pub id: String,
    /// `credit`, `debit` or `prepaid`.
    pub kind: ProductKind,
    /// ISO 4217 currency of the accounts: numeric (`"156"`) or alphabetic (`"CNY"`).
    pub currency: String,
    /// An authorization hold is released after this long if not completed (hours). Default 168.
    #[serde(default = "default_hold_expiry_h")]
    pub hold_expiry_h: u32,
    /// A completion may exceed its hold by up to this percentage (e.g. `"20"` for tips), decimal.
    /// Default `"0"`.
    #[serde(default = "zero_pct")]
    pub completion_tolerance_pct: String,
    /// Credit only: approvals may go this percentage above the credit limit, decimal. Default `"0"`.
    #[serde(default = "zero_pct")]
    pub over_limit_pct: String,
    /// Wrong PINs in a row that block the card (75) until reset. Default 3.
    #[serde(default = "default_pin_tries")]
    pub pin_tries_max: u8,
    /// Merchant category codes where the card may not be used (57).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub blocked_mcc: Vec<u16>,
    /// Whether cash (processing codes 01 and 09) is allowed; `false` for gift cards (57).
    /// Default `true`.
    #[serde(default = "yes")]
    pub cash_allowed: bool,
    /// Whether a purchase above the available funds may be approved for the available funds
    /// (10) when the terminal supports it (field 60). Default: `true` for prepaid, else `false`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partial_approval: Option<bool>,
    /// Prepaid only: a load (deposit 21) may not take the balance above this, major units.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_balance: Option<String>,
    /// Most approved debits per card in any rolling hour (65).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub velocity_per_hour: Option<u32>,
    /// Per card and business day, cash withdrawals (processing code 01).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub daily_cash: Option<DailyLimitEntry>,
    /// Per card and business day, purchases (processing codes 00 and 09).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub daily_purchase: Option<DailyLimitEntry>,
    /// Day of the month on which the statement cycle closes, 1-31; a day past the end of a
    /// month closes on its last day. Accounts may override it. Default 31 (calendar months).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cycle_day: Option<u8>,
    /// Credit only: days from the cycle's close to the payment due date, 1-28. Default 25.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub due_days: Option<u32>,
    /// Credit only: annual percentage rate on purchases (and on interest and fees, which join
    /// the purchase balance), decimal percent such as `"18.25"`. Default `"0"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub purchase_apr: Option<String>,
    /// Credit only: annual percentage rate on cash advances, decimal percent. Default `"0"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cash_apr: Option<String>,
    /// Credit only: the minimum payment is this percentage of the new balance plus the cycle's
    /// interest and fees (see `issuing::statement`), decimal. Default `"1"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_payment_percent: Option<String>,
    /// Credit only: the minimum payment is at least this (or the whole balance when it is
    /// smaller), major units. Default `"0"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_payment_floor: Option<String>,
    /// Credit only: charged at the next cycle's close when the payments and credits received by
    /// the due date are below the minimum payment (never more than that minimum), major units.
    /// Default `"0"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub late_fee: Option<String>,
}

/// A per-day limit on one channel.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DailyLimitEntry {
    /// Most money per business day, major units (61 above).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub amount: Option<String>,
    /// Most approvals per business day (65 above).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<u32>,
}

/// `[[account]]` or a row of `accounts_csv`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AccountEntry {
    /// Account id, unique in the file, referenced by cards.
    pub id: String,
    /// Product id.
    pub product: String,
    /// Opening ledger balance, major units. Debit and prepaid: the money on the account. Credit:
    /// the balance owed. Default `"0"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub balance: Option<String>,
    /// Credit only, required: the credit limit, major units.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credit_limit: Option<String>,
    /// Credit only: cash advances outstanding (with cash holds) stay within this, major units.
    /// Default: the credit limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cash_limit: Option<String>,
    /// Debit only: how far below zero the account may go, major units. Default `"0"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub overdraft: Option<String>,
    /// The product's `cycle_day` for this account only, 1-31.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cycle_day: Option<u8>,
}

/// Card status, as issued or after maintenance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CardStatus {
    /// In use.
    #[default]
    Active,
    /// Reported lost (41).
    Lost,
    /// Reported stolen (43).
    Stolen,
    /// Restricted by the issuer (62).
    Restricted,
    /// Closed (57).
    Closed,
}

/// `[[card]]` or a row of `cards_csv`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CardEntry {
    /// The PAN, 12-19 digits with a valid Luhn check digit, unique in the file.
    pub pan: String,
    /// Account id.
    pub account: String,
    /// Expiry `YYMM`, as in field 14.
    pub expiry: String,
    /// `active`, `lost`, `stolen`, `restricted` or `closed`. Default `active`.
    #[serde(default)]
    pub status: CardStatus,
    /// PIN verification key index, 0-6. Required with `pvv`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pvki: Option<u8>,
    /// Visa PVV, 4 digits, of the card's PIN under the issuer's PVK. Without it the card has no
    /// PIN that could verify.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pvv: Option<String>,
}

fn default_hold_expiry_h() -> u32 {
    HOLD_EXPIRY_H_DEFAULT
}

fn default_pin_tries() -> u8 {
    PIN_TRIES_DEFAULT
}

fn zero_pct() -> String {
    "0".to_owned()
}

fn yes() -> bool {
    true
}

impl IssuerFile {
    /// Reads the TOML file at `path` and the CSV files it names (relative to it), without
    /// validating; see [`IssuerFile::load`].
    pub fn read(path: &Path) -> Result<IssuerFile, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
            path: path.to_owned(),
            source,
        })?;
        let origin = path.display().to_string();
        let mut file = IssuerFile::from_toml_str(&text, &origin)?;
        let base = path.parent().unwrap_or(Path::new("."));
        if let Some(csv) = file.cards_csv.clone() {
            let rows: Vec<CardEntry> = read_csv(&base.join(csv))?;
            file.cards.extend(rows);
        }
        if let Some(csv) = file.accounts_csv.clone() {
            let rows: Vec<AccountEntry> = read_csv(&base.join(csv))?;
            file.accounts.extend(rows);
        }
        Ok(file)
    }

    /// Reads the issuer file at `path` (and its CSV files) and validates it: the only way the
    /// issuer simulator gets an [`IssuerFile`], so it never meets an invalid one.
    pub fn load(path: &Path) -> Result<IssuerFile, ConfigError> {
        let file = IssuerFile::read(path)?;
        file.validate().map_err(ConfigError::Invalid)?;
        Ok(file)
    }

    /// Parses TOML text; `origin` names it in messages. CSV files are not read (they are
    /// relative to a path); use [`IssuerFile::read`] for that. Not validated.
    pub fn from_toml_str(text: &str, origin: &str) -> Result<IssuerFile, ConfigError> {
        let mut file: IssuerFile = toml::from_str(text).map_err(|err| ConfigError::Parse {
            file: origin.to_owned(),
            message: err.to_string().trim_end().replace('\n', "; "),
        })?;
        origin.clone_into(&mut file.origin);
        Ok(file)
    }

    /// The file as TOML (the CSV rows included as `[[card]]` and `[[account]]`).
    pub fn to_toml_string(&self) -> Result<String, toml::ser::Error> {
        toml::to_string_pretty(self)
    }

    /// The directory relative paths in the file start from.
    pub fn base_dir(&self) -> PathBuf {
        Path::new(&self.origin)
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default()
    }

    /// Checks every rule and reports every broken one, not just the first.
    pub fn validate(&self) -> Result<(), Vec<Problem>> {
        let mut report = Report {
            file: &self.origin,
            problems: Vec::new(),
        };
        self.check(&mut report);
        if report.problems.is_empty() {
            Ok(())
        } else {
            Err(report.problems)
        }
    }

    fn check(&self, r: &mut Report<'_>) {
        let id = &self.issuer.id;
        if id.is_empty()
            || id.len() > 32
            || !id
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        {
            r.push("issuer.id", "must be 1-32 characters of a-z, 0-9 and -");
        }
        if self.issuer.name.trim().is_empty() {
            r.push("issuer.name", "must not be empty");
        }
        let prefix = &self.issuer.auth_code_prefix;
        if prefix.len() > AUTH_PREFIX_MAX
            || !prefix
                .bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
        {
            r.push(
                "issuer.auth_code_prefix",
                "must be 0-2 upper-case letters or digits",
            );
        }
        if let Some(listener) = &self.listener
            && listener.address.parse::<SocketAddr>().is_err()
        {
            r.push(
                "listener.address",
                format!(
                    "must be an ip:port socket address (got {:?})",
                    listener.address
                ),
            );
        }
        if self.journal.dir.trim().is_empty() {
            r.push("journal.dir", "must not be empty");
        }
        if let Some(pvk) = &self.security.pvk
            && parse_pvk(pvk).is_none()
        {
            r.push(
                "security.pvk",
                "must be 32 hex digits (a double-length TDES key)",
            );
        }
        self.check_link_keys(r);
        if self.ledger.idempotency_window_h == 0 {
            r.push("ledger.idempotency_window_h", "must be greater than 0");
        }
        if self.ledger.records_max == 0 {
            r.push("ledger.records_max", "must be greater than 0");
        } else if usize::try_from(self.ledger.records_max).is_err() {
            r.push("ledger.records_max", "too large for this machine");
        }

        let products = self.check_products(r);
        let accounts = self.check_accounts(r, &products);
        self.check_cards(r, &accounts);
    }

    /// `[security]` link keys: ids that parse, of the right purpose, and a keys file to find
    /// them in. Whether the keys file holds them is checked when the simulator loads it.
    fn check_link_keys(&self, r: &mut Report<'_>) {
        use crate::security::{KeyId, KeyPurpose};
        let sec = &self.security;
        for (key, value, purpose) in [
            ("security.pin_key", &sec.pin_key, KeyPurpose::Zpk),
            ("security.mac_key", &sec.mac_key, KeyPurpose::Mac),
        ] {
            let Some(text) = value else { continue };
            match text.parse::<KeyId>() {
                Err(e) => r.push(key, format!("{e} (got {text:?})")),
                Ok(id) if id.purpose() != purpose => r.push(key, format!("{id} is not {purpose}")),
                Ok(_) => {}
            }
        }
        if (sec.pin_key.is_some() || sec.mac_key.is_some()) && sec.keys_file.is_none() {
            r.push(
                "security.keys_file",
                "required with pin_key or mac_key: the keys file that holds them",
            );
        }
    }

    fn check_products<'a>(&'a self, r: &mut Report<'_>) -> HashMap<&'a str, ProductView> {
        let mut out = HashMap::new();
        if self.products.is_empty() {
            r.push("product", "at least one [[product]] is required");
        }
        for (i, p) in self.products.iter().enumerate() {
            let key = |field: &str| format!("product[{i}].{field}");
            if p.id.is_empty() {
                r.push(key("id"), "must not be empty");
            }
            let currency = parse_currency(&p.currency);
            if currency.is_none() {
                r.push(
                    key("currency"),
                    format!(
                        "must be a supported ISO 4217 code such as \"156\" or \"CNY\" (got {:?})",
                        p.currency
                    ),
                );
            }
            if p.hold_expiry_h == 0 {
                r.push(key("hold_expiry_h"), "must be greater than 0");
            } else if p.hold_expiry_h > self.ledger.idempotency_window_h {
                r.push(
                    key("hold_expiry_h"),
                    "must not exceed ledger.idempotency_window_h (a hold must resolve before its record is forgotten)",
                );
            }
            r.pct(key("completion_tolerance_pct"), &p.completion_tolerance_pct);
            r.pct(key("over_limit_pct"), &p.over_limit_pct);
            if p.kind != ProductKind::Credit && parse_pct(&p.over_limit_pct) != Some(Decimal::ZERO)
            {
                r.push(key("over_limit_pct"), "applies to credit products only");
            }
            if p.pin_tries_max == 0 {
                r.push(key("pin_tries_max"), "must be greater than 0");
            }
            if p.velocity_per_hour == Some(0) {
                r.push(key("velocity_per_hour"), "must be greater than 0 when set");
            }
            IssuerFile::check_statement_terms(r, p, &key);
            if let Some(c) = currency {
                match (&p.max_balance, p.kind) {
                    (Some(text), ProductKind::Prepaid) => {
                        r.amount(key("max_balance"), text, c, false);
                    }
                    (Some(_), _) => r.push(key("max_balance"), "applies to prepaid products only"),
                    (None, _) => {}
                }
                if p.kind == ProductKind::Credit {
                    for (name, text) in [
                        ("min_payment_floor", &p.min_payment_floor),
                        ("late_fee", &p.late_fee),
                    ] {
                        if let Some(text) = text {
                            r.amount(key(name), text, c, false);
                        }
                    }
                }
                for (name, limit) in [
                    ("daily_cash", &p.daily_cash),
                    ("daily_purchase", &p.daily_purchase),
                ] {
                    if let Some(limit) = limit {
                        if let Some(amount) = &limit.amount {
                            r.amount(key(&format!("{name}.amount")), amount, c, false);
                        }
                        if limit.count == Some(0) {
                            r.push(
                                key(&format!("{name}.count")),
                                "must be greater than 0 when set",
                            );
                        }
                    }
                }
            }
            if out.contains_key(p.id.as_str()) {
                r.push(key("id"), format!("duplicate product id {:?}", p.id));
                continue;
            }
            out.insert(
                p.id.as_str(),
                ProductView {
                    kind: p.kind,
                    currency,
                    max_balance: currency
                        .and_then(|c| p.max_balance.as_deref().map(|m| (m, c)))
                        .and_then(|(m, c)| Amount::parse_major(m, c).ok()),
                },
            );
        }
        out
    }

    /// The statement terms of product `p`: cycle day for every product, the rest credit only.
    fn check_statement_terms(r: &mut Report<'_>, p: &ProductEntry, key: &dyn Fn(&str) -> String) {
        r.cycle_day(key("cycle_day"), p.cycle_day);
        let credit_only = [
            ("due_days", p.due_days.is_some()),
            ("purchase_apr", p.purchase_apr.is_some()),
            ("cash_apr", p.cash_apr.is_some()),
            ("min_payment_percent", p.min_payment_percent.is_some()),
            ("min_payment_floor", p.min_payment_floor.is_some()),
            ("late_fee", p.late_fee.is_some()),
        ];
        if p.kind != ProductKind::Credit {
            for (name, set) in credit_only {
                if set {
                    r.push(key(name), "applies to credit products only");
                }
            }
            return;
        }
        if let Some(days) = p.due_days
            && !(1..=DUE_DAYS_MAX).contains(&days)
        {
            r.push(
                key("due_days"),
                format!("must be 1-{DUE_DAYS_MAX} (the due date must fall before the next close)"),
            );
        }
        for (name, text) in [
            ("purchase_apr", &p.purchase_apr),
            ("cash_apr", &p.cash_apr),
            ("min_payment_percent", &p.min_payment_percent),
        ] {
            if let Some(text) = text {
                r.pct(key(name), text);
            }
        }
    }

    fn check_accounts<'a>(
        &'a self,
        r: &mut Report<'_>,
        products: &HashMap<&str, ProductView>,
    ) -> HashSet<&'a str> {
        let mut ids = HashSet::with_capacity(self.accounts.len());
        for (i, a) in self.accounts.iter().enumerate() {
            let key = |field: &str| format!("account[{i}].{field}");
            if a.id.is_empty() {
                r.push(key("id"), "must not be empty");
            }
            if !ids.insert(a.id.as_str()) {
                r.push(key("id"), format!("duplicate account id {:?}", a.id));
            }
            let Some(product) = products.get(a.product.as_str()) else {
                r.push(key("product"), format!("no product {:?}", a.product));
                continue;
            };
            r.cycle_day(key("cycle_day"), a.cycle_day);
            let Some(c) = product.currency else { continue };
            let balance = match &a.balance {
                Some(text) => r.amount(key("balance"), text, c, true),
                None => Some(Amount::zero(c)),
            };
            match product.kind {
                ProductKind::Credit => {
                    let limit = match &a.credit_limit {
                        Some(text) => r.amount(key("credit_limit"), text, c, false),
                        None => {
                            r.push(key("credit_limit"), "required for a credit account");
                            None
                        }
                    };
                    if let Some(text) = &a.cash_limit {
                        let cash = r.amount(key("cash_limit"), text, c, false);
                        if let (Some(cash), Some(limit)) = (cash, limit)
                            && cash.minor() > limit.minor()
                        {
                            r.push(key("cash_limit"), "must not exceed credit_limit");
                        }
                    }
                    if a.overdraft.is_some() {
                        r.push(key("overdraft"), "applies to debit accounts only");
                    }
                }
                ProductKind::Debit | ProductKind::Prepaid => {
                    for (field, value) in [
                        ("credit_limit", &a.credit_limit),
                        ("cash_limit", &a.cash_limit),
                    ] {
                        if value.is_some() {
                            r.push(key(field), "applies to credit accounts only");
                        }
                    }
                    if let Some(text) = &a.overdraft {
                        if product.kind == ProductKind::Prepaid {
                            r.push(key("overdraft"), "applies to debit accounts only");
                        } else {
                            r.amount(key("overdraft"), text, c, false);
                        }
                    }
                    if product.kind == ProductKind::Prepaid
                        && let Some(b) = balance
                    {
                        if b.is_negative() {
                            r.push(key("balance"), "a prepaid balance must not be negative");
                        }
                        if let Some(max) = product.max_balance
                            && b.minor() > max.minor()
                        {
                            r.push(key("balance"), "above the product's max_balance");
                        }
                    }
                }
            }
        }
        ids
    }

    fn check_cards(&self, r: &mut Report<'_>, accounts: &HashSet<&str>) {
        let mut pans = HashSet::with_capacity(self.cards.len());
        let mut per_account: HashMap<&str, u32> = HashMap::new();
        for (i, c) in self.cards.iter().enumerate() {
            let key = |field: &str| format!("card[{i}].{field}");
            // Messages never repeat the PAN: a config error may be logged.
            match Pan::parse(c.pan.as_bytes()) {
                Ok(pan) => {
                    if !pans.insert(pan) {
                        r.push(key("pan"), format!("duplicate card {pan}"));
                    }
                }
                Err(e) => r.push(key("pan"), e.to_string()),
            }
            if accounts.contains(c.account.as_str()) {
                let n = per_account.entry(c.account.as_str()).or_default();
                *n += 1;
                if *n > u32::from(u16::MAX) {
                    r.push(key("account"), "more than 65535 cards on one account");
                }
            } else {
                r.push(key("account"), format!("no account {:?}", c.account));
            }
            if let Err(e) = Expiry::from_field(c.expiry.as_bytes()) {
                r.push(key("expiry"), format!("{e} (got {:?})", c.expiry));
            }
            match (&c.pvv, c.pvki) {
                (Some(pvv), Some(pvki)) => {
                    if pvv.len() != 4 || !pvv.bytes().all(|b| b.is_ascii_digit()) {
                        r.push(key("pvv"), "must be 4 digits");
                    }
                    if pvki > 6 {
                        r.push(key("pvki"), "must be 0-6");
                    }
                }
                (Some(_), None) => r.push(key("pvki"), "required with pvv"),
                (None, Some(_)) => r.push(key("pvv"), "required with pvki"),
                (None, None) => {}
            }
        }
    }
}

/// What card and account checks need to know about a product.
struct ProductView {
    kind: ProductKind,
    currency: Option<Currency>,
    max_balance: Option<Amount>,
}

/// Parses a currency written as its numeric (`"156"`) or alphabetic (`"CNY"`) ISO 4217 code.
pub(crate) fn parse_currency(text: &str) -> Option<Currency> {
    if text.bytes().all(|b| b.is_ascii_digit()) {
        Currency::from_field(text.as_bytes()).ok()
    } else {
        Currency::from_alpha(text).ok()
    }
}

/// Parses a percentage 0-100 written as a decimal string, exactly (no float on the way).
pub(crate) fn parse_pct(text: &str) -> Option<Decimal> {
    let d = Decimal::from_str_exact(text)
        .or_else(|_| Decimal::from_str(text))
        .ok()?;
    (Decimal::ZERO..=Decimal::ONE_HUNDRED)
        .contains(&d)
        .then_some(d)
}

/// Reads a CSV file with a header row into `T` rows.
fn read_csv<T: serde::de::DeserializeOwned>(path: &Path) -> Result<Vec<T>, ConfigError> {
    let file = std::fs::File::open(path).map_err(|source| ConfigError::Io {
        path: path.to_owned(),
        source,
    })?;
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_reader(file);
    reader
        .deserialize()
        .collect::<Result<Vec<T>, _>>()
        .map_err(|err| ConfigError::Parse {
            file: path.display().to_string(),
            // csv errors name the row and the column, never echo a whole row.
            message: err.to_string(),
        })
}

/// Collects problems for one file.
struct Report<'a> {
    file: &'a str,
    problems: Vec<Problem>,
}

impl Report<'_> {
    fn push(&mut self, key: impl Into<String>, message: impl Into<String>) {
        self.problems.push(Problem {
            file: self.file.to_owned(),
            key: key.into(),
            message: message.into(),
        });
    }

    fn pct(&mut self, key: String, text: &str) {
        if parse_pct(text).is_none() {
            self.push(
                key,
                format!(
                    "must be a decimal percentage 0-100 such as \"20\" or \"7.5\" (got {text:?})"
                ),
            );
        }
    }

    fn cycle_day(&mut self, key: String, day: Option<u8>) {
        if day.is_some_and(|d| !(1..=31).contains(&d)) {
            self.push(key, "must be a day of the month, 1-31");
        }
    }

    /// Parses an amount in major units; negative only when `signed`.
    fn amount(&mut self, key: String, text: &str, c: Currency, signed: bool) -> Option<Amount> {
        match Amount::parse_major(text, c) {
            Ok(a) if a.is_negative() && !signed => {
                self.push(key, "must not be negative");
                None
            }
            Ok(a) if a.minor().unsigned_abs() > MAX_CONFIG_MINOR => {
                self.push(key, "too large");
                None
            }
            Ok(a) => Some(a),
            Err(e) => {
                self.push(key, format!("{e} (got {text:?})"));
                None
            }
        }
    }
}

/// Largest configured amount (minor units): 10^15, so sums of a few of them never overflow.
pub(crate) const MAX_CONFIG_MINOR: u64 = 1_000_000_000_000_000;

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
[issuer]
id = "test-bank"
name = "Test Bank"

[journal]
dir = "data/test"

[[product]]
id = "p"
kind = "debit"
currency = "156"
"#;

    #[test]
    fn minimal_file_is_valid() {
        let f = IssuerFile::from_toml_str(MINIMAL, "mem").unwrap();
        assert_eq!(f.validate(), Ok(()));
        assert_eq!(f.ledger.idempotency_window_h, 720);
        assert_eq!(f.products[0].hold_expiry_h, 168);
    }

    #[test]
    fn link_key_ids_need_their_purpose_and_a_keys_file() {
        let text = MINIMAL.replace(
            "[journal]",
            "[security]\npin_key = \"issuer:test-bank:mac\"\nmac_key = \"mac\"\n\n[journal]",
        );
        let f = IssuerFile::from_toml_str(&text, "mem").expect("parses");
        let problems = f.validate().expect_err("problems");
        let keys: Vec<&str> = problems.iter().map(|p| p.key.as_str()).collect();
        assert_eq!(
            keys,
            ["security.pin_key", "security.mac_key", "security.keys_file"]
        );
        let good = MINIMAL.replace(
            "[journal]",
            "[security]\nkeys_file = \"k.toml\"\npin_key = \"issuer:test-bank:zpk\"\n\n[journal]",
        );
        let f = IssuerFile::from_toml_str(&good, "mem").expect("parses");
        assert_eq!(f.validate(), Ok(()));
        assert_eq!(f.security.pin_key.as_deref(), Some("issuer:test-bank:zpk"));
    }

    #[test]
    fn unknown_keys_are_errors() {
        let text = MINIMAL.replace("dir =", "dri =");
        assert!(matches!(
            IssuerFile::from_toml_str(&text, "mem"),
            Err(ConfigError::Parse { .. })
        ));
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let text = format!(
            r#"{MINIMAL}
[[product]]
id = "p"
kind = "credit"
currency = "XYZ"
completion_tolerance_pct = "-3"

[[account]]
id = "A1"
product = "p"
balance = "12.345"
credit_limit = "10"

[[account]]
id = "A1"
product = "nope"

[[card]]
pan = "4111110000000014"
account = "A2"
expiry = "3013"
pvv = "12345"
"#
        );
        let f = IssuerFile::from_toml_str(&text, "mem").unwrap();
        let problems = f.validate().unwrap_err();
        let keys: Vec<&str> = problems.iter().map(|p| p.key.as_str()).collect();
        for expected in [
            "product[1].currency",
            "product[1].completion_tolerance_pct",
            "product[1].id",
            "account[0].balance",
            "account[0].credit_limit",
            "account[1].id",
            "account[1].product",
            "card[0].pan",
            "card[0].account",
            "card[0].expiry",
            "card[0].pvki",
        ] {
            assert!(keys.contains(&expected), "{expected} missing from {keys:?}");
        }
        for p in &problems {
            assert!(!p.to_string().contains("4111110000000014"), "{p}");
        }
    }
}
