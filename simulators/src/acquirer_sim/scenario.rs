//! What `acquirer-sim` sends: one [`Op`] per one-shot command, or a scenario file of steps.
//!
//! # Scenario files
//!
//! TOML, with an optional top-level `description` and one `[[step]]` table per transaction, run
//! in order on one connection:
//!
//! ```toml
//! description = "hold and capture"
//!
//! [[step]]
//! name = "hold"                 # optional; lets later steps refer to this one
//! action = "preauth"            # purchase preauth complete reverse refund balance echo cash load
//! pan = "4111110000000013"
//! amount = "100.00"             # major units of the client's currency
//! expiry = "3012"               # optional, YYMM
//! pin = "1234"                  # optional, enciphered by the PIN pad of --keys (zone or DUKPT)
//! partial = false               # optional, field 60 = 1
//! mcc = 5411                    # optional
//! expect = "00"                 # optional expected field 39; absent = any answer passes
//!
//! [[step]]
//! action = "complete"           # or "reverse" (with `advice = true` for an 0420)
//! of = "hold"                   # or `ref`: the earlier step's STAN, field 7, RRN, auth code
//! amount = "80.00"              # optional with `of`: defaults to the original amount
//! expect = "00"
//! ```
//!
//! A `reverse` may add `replacement = "20.00"` (field 95, a partial reversal). A `complete` or
//! `reverse` without `of` names its original explicitly with `pan`, `amount`, `original_stan`,
//! `original_time` (MMDDhhmmss), and optionally `original_mti` (default 0100 for a completion,
//! 0200 for a reversal), `original_rrn` and `auth_code`. Unknown keys are errors.

use std::collections::HashMap;

use serde::Deserialize;
use switch::client::{OriginalRef, TxnKind, TxnOptions};
use switch::domain::{
    Amount, Currency, Mti, ProcessingCode, ResponseCode, Stan, TransmissionDateTime,
};

/// The `action` of a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Purchase,
    Preauth,
    Complete,
    Reverse,
    Refund,
    Balance,
    Echo,
    Cash,
    Load,
}

impl Action {
    pub fn name(self) -> &'static str {
        match self {
            Action::Purchase => "purchase",
            Action::Preauth => "preauth",
            Action::Complete => "complete",
            Action::Reverse => "reverse",
            Action::Refund => "refund",
            Action::Balance => "balance",
            Action::Echo => "echo",
            Action::Cash => "cash",
            Action::Load => "load",
        }
    }

    /// The request type of a card transaction with no original.
    fn kind(self) -> Option<TxnKind> {
        Some(match self {
            Action::Purchase => TxnKind::Purchase,
            Action::Preauth => TxnKind::Preauth,
            Action::Refund => TxnKind::Refund,
            Action::Balance => TxnKind::Balance,
            Action::Cash => TxnKind::Cash,
            Action::Load => TxnKind::Load,
            Action::Complete | Action::Reverse | Action::Echo => return None,
        })
    }
}

/// One `[[step]]` as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Step {
    pub action: Action,
    pub name: Option<String>,
    #[serde(alias = "ref")]
    pub of: Option<String>,
    pub pan: Option<String>,
    pub amount: Option<String>,
    pub expiry: Option<String>,
    pub pin: Option<String>,
    #[serde(default)]
    pub partial: bool,
    pub mcc: Option<u16>,
    pub replacement: Option<String>,
    #[serde(default)]
    pub advice: bool,
    pub original_mti: Option<String>,
    pub original_stan: Option<String>,
    pub original_time: Option<String>,
    pub original_rrn: Option<String>,
    pub auth_code: Option<String>,
    pub expect: Option<String>,
}

/// A scenario file as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScenarioFile {
    pub description: Option<String>,
    #[serde(rename = "step", default)]
    pub steps: Vec<Step>,
}

/// The original of a completion or reversal.
#[derive(Debug, Clone)]
pub enum Original {
    /// The result of an earlier step (index into the steps, from 0).
    Step(usize),
    Explicit(OriginalRef),
}

/// One request to send, checked.
#[derive(Debug, Clone)]
pub enum Op {
    Txn {
        kind: TxnKind,
        pan: String,
        amount: Option<Amount>,
        opts: TxnOptions,
    },
    Complete {
        original: Original,
        /// `None`: the original's amount.
        amount: Option<Amount>,
    },
    Reverse {
        original: Original,
        /// `None`: the original's amount.
        amount: Option<Amount>,
        replacement: Option<Amount>,
        advice: bool,
    },
    Echo,
}

/// A checked step.
#[derive(Debug, Clone)]
pub struct PlannedStep {
    /// From 1, as printed.
    pub number: usize,
    pub name: Option<String>,
    pub action: Action,
    pub op: Op,
    pub expect: Option<ResponseCode>,
}

/// A checked scenario.
#[derive(Debug, Clone)]
pub struct Scenario {
    pub description: Option<String>,
    pub steps: Vec<PlannedStep>,
}

/// Parses major units in `currency`.
pub fn amount(text: &str, currency: Currency) -> Result<Amount, String> {
    Amount::parse_major(text, currency).map_err(|e| format!("amount {text:?}: {e}"))
}

/// Parses a STAN of 1-6 digits.
pub fn stan(text: &str) -> Result<Stan, String> {
    let bad = || format!("STAN {text:?} is not 1 to 6 digits");
    if text.is_empty() || text.len() > 6 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    Stan::new(text.parse().map_err(|_| bad())?).map_err(|_| bad())
}

/// Parses field 7, MMDDhhmmss.
pub fn transmission(text: &str) -> Result<TransmissionDateTime, String> {
    TransmissionDateTime::from_field(text.as_bytes())
        .map_err(|e| format!("time {text:?} (MMDDhhmmss): {e}"))
}

/// Parses an MTI of 4 digits.
pub fn mti(text: &str) -> Result<Mti, String> {
    Mti::from_digits(text.as_bytes()).map_err(|e| format!("MTI {text:?}: {e}"))
}

/// Parses an expected response code, e.g. `51`.
pub fn response_code(text: &str) -> Result<ResponseCode, String> {
    ResponseCode::from_field(text.as_bytes())
        .map_err(|e| format!("expected response code {text:?}: {e}"))
}

/// An explicit original, as the `complete` and `reverse` commands give it.
pub struct ExplicitOriginal<'a> {
    pub mti: Mti,
    pub pan: &'a str,
    pub stan: &'a str,
    pub time: &'a str,
    pub rrn: Option<&'a str>,
    pub auth_code: Option<&'a str>,
    pub amount: Amount,
}

impl ExplicitOriginal<'_> {
    pub fn to_ref(&self) -> Result<OriginalRef, String> {
        Ok(OriginalRef {
            rrn: self.rrn.map(str::to_owned),
            auth_code: self.auth_code.map(str::to_owned),
            amount: Some(self.amount),
            processing_code: ProcessingCode::PURCHASE,
            ..OriginalRef::new(
                self.mti,
                stan(self.stan)?,
                transmission(self.time)?,
                self.pan,
            )
        })
    }
}

impl Scenario {
    /// Parses and checks a scenario file; amounts are in `currency`.
    pub fn parse(text: &str, currency: Currency) -> Result<Scenario, String> {
        let file: ScenarioFile = toml::from_str(text).map_err(|e| e.to_string())?;
        if file.steps.is_empty() {
            return Err("the scenario has no [[step]]".into());
        }
        let mut names: HashMap<&str, (usize, Action)> = HashMap::new();
        let mut steps = Vec::with_capacity(file.steps.len());
        for (i, s) in file.steps.iter().enumerate() {
            let label = match &s.name {
                Some(n) => format!("step {} ({n})", i + 1),
                None => format!("step {}", i + 1),
            };
            let op = plan_step(s, currency, &names).map_err(|e| format!("{label}: {e}"))?;
            let expect = s
                .expect
                .as_deref()
                .map(response_code)
                .transpose()
                .map_err(|e| format!("{label}: {e}"))?;
            if let Some(n) = &s.name
                && names.insert(n, (i, s.action)).is_some()
            {
                return Err(format!("{label}: the name {n:?} is used twice"));
            }
            steps.push(PlannedStep {
                number: i + 1,
                name: s.name.clone(),
                action: s.action,
                op,
                expect,
            });
        }
        Ok(Scenario {
            description: file.description,
            steps,
        })
    }
}

fn plan_step(
    s: &Step,
    currency: Currency,
    names: &HashMap<&str, (usize, Action)>,
) -> Result<Op, String> {
    let refuse = |present: bool, key: &str| {
        if present {
            Err(format!("`{key}` does not apply to {}", s.action.name()))
        } else {
            Ok(())
        }
    };
    let required = |v: &Option<String>, key: &str| {
        v.clone()
            .ok_or_else(|| format!("{} needs `{key}`", s.action.name()))
    };
    let card_options = s.expiry.is_some() || s.pin.is_some() || s.partial || s.mcc.is_some();
    let original_keys = s.original_mti.is_some()
        || s.original_stan.is_some()
        || s.original_time.is_some()
        || s.original_rrn.is_some()
        || s.auth_code.is_some();
    let amount_of = |v: &Option<String>| v.as_deref().map(|a| amount(a, currency)).transpose();

    if let Some(kind) = s.action.kind() {
        refuse(s.of.is_some(), "of")?;
        refuse(original_keys, "original_*/auth_code")?;
        refuse(s.replacement.is_some(), "replacement")?;
        refuse(s.advice, "advice")?;
        let amount = if kind == TxnKind::Balance {
            refuse(s.amount.is_some(), "amount")?;
            None
        } else {
            Some(amount(&required(&s.amount, "amount")?, currency)?)
        };
        let opts = TxnOptions {
            expiry: s.expiry.clone(),
            pin: s.pin.clone(),
            partial_approval: s.partial,
            mcc: s.mcc,
            ..TxnOptions::default()
        };
        return Ok(Op::Txn {
            kind,
            pan: required(&s.pan, "pan")?,
            amount,
            opts,
        });
    }
    match s.action {
        Action::Echo => {
            let extra = s.of.is_some()
                || s.pan.is_some()
                || s.amount.is_some()
                || card_options
                || original_keys
                || s.replacement.is_some()
                || s.advice;
            refuse(extra, "a card or amount key")?;
            Ok(Op::Echo)
        }
        Action::Complete | Action::Reverse => {
            refuse(card_options, "expiry/pin/partial/mcc")?;
            let complete = s.action == Action::Complete;
            if complete {
                refuse(s.replacement.is_some(), "replacement")?;
                refuse(s.advice, "advice")?;
            }
            let amount = amount_of(&s.amount)?;
            let original = match &s.of {
                Some(of) => {
                    refuse(
                        s.pan.is_some(),
                        "pan (with `of`, the original's card is used)",
                    )?;
                    refuse(original_keys, "original_*/auth_code (with `of`)")?;
                    let Some(&(index, action)) = names.get(of.as_str()) else {
                        return Err(format!("`of = {of:?}` names no earlier step"));
                    };
                    if action == Action::Echo {
                        return Err(format!("`of = {of:?}` names an echo, which has no card"));
                    }
                    Original::Step(index)
                }
                None => {
                    let default_mti = if complete { "0100" } else { "0200" };
                    let explicit = ExplicitOriginal {
                        mti: mti(s.original_mti.as_deref().unwrap_or(default_mti))?,
                        pan: &required(&s.pan, "pan (or `of`)")?,
                        stan: &required(&s.original_stan, "original_stan (or `of`)")?,
                        time: &required(&s.original_time, "original_time (or `of`)")?,
                        rrn: s.original_rrn.as_deref(),
                        auth_code: s.auth_code.as_deref(),
                        amount: amount.ok_or_else(|| {
                            format!("{} needs `amount` (or `of`)", s.action.name())
                        })?,
                    };
                    Original::Explicit(explicit.to_ref()?)
                }
            };
            if complete {
                Ok(Op::Complete { original, amount })
            } else {
                Ok(Op::Reverse {
                    original,
                    amount,
                    replacement: amount_of(&s.replacement)?,
                    advice: s.advice,
                })
            }
        }
        _ => unreachable!("card transactions are planned above"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Scenario, String> {
        Scenario::parse(text, Currency::CNY)
    }

    #[test]
    fn parses_steps_and_references() {
        let s = parse(
            r#"
            description = "hold and capture"

            [[step]]
            name = "hold"
            action = "preauth"
            pan = "4111110000000013"
            amount = "100.00"
            expiry = "3012"
            pin = "1234"
            expect = "00"

            [[step]]
            action = "complete"
            of = "hold"
            amount = "80.00"
            expect = "00"

            [[step]]
            action = "reverse"
            ref = "hold"
            replacement = "20.00"
            advice = true

            [[step]]
            action = "balance"
            pan = "6050010000000013"

            [[step]]
            action = "echo"
            "#,
        )
        .expect("valid");
        assert_eq!(s.description.as_deref(), Some("hold and capture"));
        assert_eq!(s.steps.len(), 5);
        match &s.steps[0].op {
            Op::Txn {
                kind, amount, opts, ..
            } => {
                assert_eq!(*kind, TxnKind::Preauth);
                assert_eq!(*amount, Some(Amount::new(10_000, Currency::CNY)));
                assert_eq!(opts.pin.as_deref(), Some("1234"));
                assert_eq!(opts.expiry.as_deref(), Some("3012"));
            }
            op => panic!("{op:?}"),
        }
        assert_eq!(s.steps[0].expect, Some(ResponseCode::Approved));
        assert!(matches!(
            s.steps[1].op,
            Op::Complete { original: Original::Step(0), amount: Some(a) } if a.minor() == 8_000
        ));
        assert!(matches!(
            s.steps[2].op,
            Op::Reverse {
                original: Original::Step(0),
                amount: None,
                replacement: Some(_),
                advice: true
            }
        ));
        assert_eq!(s.steps[2].expect, None);
        assert!(matches!(
            s.steps[3].op,
            Op::Txn {
                kind: TxnKind::Balance,
                amount: None,
                ..
            }
        ));
        assert!(matches!(s.steps[4].op, Op::Echo));
        assert_eq!(s.steps[4].number, 5);
    }

    #[test]
    fn explicit_originals() {
        let s = parse(
            r#"
            [[step]]
            action = "reverse"
            pan = "4111110000000013"
            amount = "12.34"
            original_stan = "42"
            original_time = "1125221800"
            "#,
        )
        .expect("valid");
        let Op::Reverse {
            original: Original::Explicit(o),
            ..
        } = &s.steps[0].op
        else {
            panic!("{:?}", s.steps[0].op);
        };
        assert_eq!(o.mti, Mti::FINANCIAL_REQUEST);
        assert_eq!(o.stan.value(), 42);
        assert_eq!(o.transmission.to_string(), "1125221800");
        assert_eq!(o.pan.expose(), "4111110000000013");
    }

    #[test]
    fn mistakes_are_reported_with_their_step() {
        let cases = [
            (
                "[[step]]\naction = \"purchase\"\namount = \"1.00\"",
                "step 1: purchase needs `pan`",
            ),
            (
                "[[step]]\naction = \"purchase\"\npan = \"4111110000000013\"",
                "needs `amount`",
            ),
            (
                "[[step]]\naction = \"purchase\"\npan = \"1\"\namount = \"1.001\"",
                "amount",
            ),
            (
                "[[step]]\naction = \"refund\"\npan = \"1\"\namount = \"1\"\nexpect = \"XX\"",
                "expected response code",
            ),
            (
                "[[step]]\naction = \"complete\"\nof = \"later\"",
                "names no earlier step",
            ),
            (
                "[[step]]\naction = \"balance\"\npan = \"1\"\namount = \"1\"",
                "`amount` does not apply",
            ),
            (
                "[[step]]\naction = \"refund\"\npan = \"1\"\namount = \"1\"\nadvice = true",
                "`advice`",
            ),
            (
                "[[step]]\naction = \"purchase\"\npan = \"1\"\namount = \"1\"\ncolour = 1",
                "unknown field",
            ),
            ("[[step]]\naction = \"withdraw\"", "unknown variant"),
            (
                "[[step]]\nname = \"a\"\naction = \"echo\"\n[[step]]\nname = \"a\"\naction = \"echo\"",
                "step 2 (a): the name \"a\" is used twice",
            ),
            (
                "[[step]]\nname = \"e\"\naction = \"echo\"\n[[step]]\naction = \"reverse\"\nof = \"e\"",
                "has no card",
            ),
            (
                "[[step]]\naction = \"reverse\"\npan = \"1\"\namount = \"1\"\noriginal_stan = \"1\"",
                "original_time",
            ),
            ("description = \"nothing\"", "no [[step]]"),
        ];
        for (text, want) in cases {
            let e = parse(text).expect_err(text);
            assert!(e.contains(want), "{text:?}: {e:?} lacks {want:?}");
        }
    }

    #[test]
    fn the_shipped_default_cards_scenario_parses() {
        let s = parse(include_str!("../../scenarios/default-cards.toml")).expect("valid");
        assert!(s.steps.len() >= 15);
        assert!(s.steps.iter().all(|st| st.expect.is_some()));
    }
}
