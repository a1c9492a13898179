//! Typed views: the boundary where a generic [`Message`] becomes domain types, so business code
//! never touches bitmaps or raw fields.
//!
//! Each view checks its MTI's field rules (mandatory, optional, forbidden: the [`RULES`] table,
//! which the README reproduces) and parses every field it reads into a domain type. A failure is
//! a [`ViewError`] naming the field, with the field-39 answer it deserves. Views borrow from the
//! message where they can (field 43, field 54) and copy the small fixed fields into `Copy` domain
//! types.
//!
//! Responses are built the other way: [`response_builder`] echoes the request fields an acquirer
//! matches on and adds 38, 39 and 54.

use std::borrow::Cow;

use super::decode::Message;
use super::dialect::Dialect;
use super::encode::MessageBuilder;
use crate::domain::{
    AcquirerId, Amount, AuthCode, Currency, Decline, DomainError, Expiry, MerchantId, Mti, Pan,
    ProcessingCode, ResponseCode, Rrn, Stan, TerminalId, TransmissionDateTime, TxnType,
};

/// Why a message does not fit its view. Names the field, never its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ViewError {
    #[error("MTI {0} has no view here")]
    UnsupportedMti(Mti),
    #[error("MTI is not four digits")]
    BadMti,
    #[error("field {field}: mandatory for this message but absent")]
    Missing { field: u8 },
    #[error("field {field}: not allowed in this message")]
    Forbidden { field: u8 },
    #[error("field {field}: {source}")]
    Invalid { field: u8, source: DomainError },
}

impl ViewError {
    /// The decline a request that fails its view gets.
    pub fn decline(&self) -> Decline {
        match self {
            ViewError::UnsupportedMti(_) => Decline::InvalidTransaction,
            ViewError::BadMti | ViewError::Missing { .. } | ViewError::Forbidden { .. } => {
                Decline::FormatError
            }
            ViewError::Invalid { source, .. } => match source {
                DomainError::PanLuhn => Decline::InvalidCardNumber,
                DomainError::ProcessingCodeUnknown => Decline::InvalidTransaction,
                DomainError::AmountTooManyDecimals { .. }
                | DomainError::AmountNegative
                | DomainError::AmountOverflow
                | DomainError::CurrencyMismatch => Decline::InvalidAmount,
                _ => Decline::FormatError,
            },
        }
    }

    /// The field-39 answer for a request that fails its view.
    pub fn response_code(&self) -> ResponseCode {
        self.decline().response_code()
    }

    pub fn field(&self) -> Option<u8> {
        match *self {
            ViewError::Missing { field }
            | ViewError::Forbidden { field }
            | ViewError::Invalid { field, .. } => Some(field),
            _ => None,
        }
    }
}

/// Which fields a message type must, may and must not carry.
#[derive(Debug, Clone, Copy)]
pub struct FieldRule {
    pub mti: Mti,
    pub mandatory: &'static [u8],
    /// Everything else, outside `mandatory` and `optional`, is forbidden.
    pub optional: &'static [u8],
}

const AUTH_MANDATORY: &[u8] = &[2, 3, 7, 11, 32, 41, 42, 49];
// Field 4 is mandatory except on a balance inquiry; `AuthorizationRequest` checks that rule.
const AUTH_OPTIONAL: &[u8] = &[
    4, 12, 13, 14, 18, 19, 22, 23, 25, 26, 35, 37, 43, 45, 48, 52, 53, 55, 60, 62, 63, 64, 128,
];
// An 0120 advice reports a decision already made (stand-in): it carries the answer (38, 39) and
// names the request it reports in field 90.
const ADVICE_OPTIONAL: &[u8] = &[
    4, 12, 13, 14, 18, 19, 22, 23, 25, 26, 35, 37, 38, 39, 43, 45, 48, 52, 53, 55, 60, 62, 63, 64,
    90, 128,
];
const COMPLETION_MANDATORY: &[u8] = &[2, 3, 4, 7, 11, 32, 37, 38, 41, 42, 49, 90];
const COMPLETION_OPTIONAL: &[u8] = &[12, 13, 14, 18, 22, 23, 25, 43, 48, 55, 60, 64, 128];
const REVERSAL_MANDATORY: &[u8] = &[2, 3, 4, 7, 11, 32, 41, 49, 90];
const REVERSAL_OPTIONAL: &[u8] = &[
    12, 13, 14, 18, 22, 25, 37, 38, 39, 42, 43, 48, 55, 60, 64, 95, 128,
];
const NETWORK_MANDATORY: &[u8] = &[7, 11, 70];
const NETWORK_OPTIONAL: &[u8] = &[32, 33, 48, 53, 64, 96, 100, 128];

/// The field rules per request MTI. The README's table of mandatory fields is this table.
pub const RULES: &[FieldRule] = &[
    FieldRule {
        mti: Mti::AUTH_REQUEST,
        mandatory: AUTH_MANDATORY,
        optional: AUTH_OPTIONAL,
    },
    FieldRule {
        mti: Mti::AUTH_ADVICE,
        mandatory: AUTH_MANDATORY,
        optional: ADVICE_OPTIONAL,
    },
    FieldRule {
        mti: Mti::FINANCIAL_REQUEST,
        mandatory: AUTH_MANDATORY,
        optional: AUTH_OPTIONAL,
    },
    FieldRule {
        mti: Mti::FINANCIAL_ADVICE,
        mandatory: COMPLETION_MANDATORY,
        optional: COMPLETION_OPTIONAL,
    },
    FieldRule {
        mti: Mti::REVERSAL_REQUEST,
        mandatory: REVERSAL_MANDATORY,
        optional: REVERSAL_OPTIONAL,
    },
    FieldRule {
        mti: Mti::REVERSAL_ADVICE,
        mandatory: REVERSAL_MANDATORY,
        optional: REVERSAL_OPTIONAL,
    },
    FieldRule {
        mti: Mti::NETWORK_REQUEST,
        mandatory: NETWORK_MANDATORY,
        optional: NETWORK_OPTIONAL,
    },
];

/// The rule for a request MTI (repeats, e.g. 0401, use their original's rule).
pub fn rule_for(mti: Mti) -> Option<&'static FieldRule> {
    let base = mti.original();
    RULES.iter().find(|r| r.mti == base)
}

/// Checks mandatory and forbidden fields of `msg` against `rule`; the error names the
/// lowest-numbered field at fault.
///
/// On the presence bitmap, as masks: walking every field number and searching the rule's lists
/// for each was 1% of the switch's samples.
pub fn check_rule(msg: &Message, rule: &FieldRule) -> Result<(), ViewError> {
    check_present(msg.bitmap(), rule)
}

/// [`check_rule`] on a presence bitmap. Field 1 (the secondary bitmap) is framing, not content.
fn check_present(bitmap: u128, rule: &FieldRule) -> Result<(), ViewError> {
    let present = bitmap & !field_bit(1);
    let mandatory = field_bits(rule.mandatory);
    let missing = mandatory & !present;
    if missing != 0 {
        return Err(ViewError::Missing {
            field: lowest_field(missing),
        });
    }
    let forbidden = present & !(mandatory | field_bits(rule.optional));
    if forbidden != 0 {
        return Err(ViewError::Forbidden {
            field: lowest_field(forbidden),
        });
    }
    Ok(())
}

/// Field `n`'s bit (1–128) in a presence bitmap ([`Message::bitmap`]: bit 127 is field 1).
fn field_bit(n: u8) -> u128 {
    1u128 << (128 - u32::from(n.clamp(1, 128)))
}

fn field_bits(fields: &[u8]) -> u128 {
    fields.iter().fold(0, |m, &n| m | field_bit(n))
}

/// The lowest field number among the bits of a non-zero `mask`.
fn lowest_field(mask: u128) -> u8 {
    // At most 128 leading zeros in a non-zero mask, so at most 128.
    u8::try_from(mask.leading_zeros() + 1).unwrap_or(u8::MAX)
}

/// The MTI of a decoded message as a domain type.
pub fn mti_of(msg: &Message) -> Result<Mti, ViewError> {
    Mti::from_digits(&msg.mti_digits()).map_err(|_| ViewError::BadMti)
}

fn req<'m>(msg: &'m Message, field: u8) -> Result<Cow<'m, [u8]>, ViewError> {
    msg.get(field).ok_or(ViewError::Missing { field })
}

fn parse<T>(
    msg: &Message,
    field: u8,
    f: impl FnOnce(&[u8]) -> Result<T, DomainError>,
) -> Result<T, ViewError> {
    let v = req(msg, field)?;
    f(&v).map_err(|source| ViewError::Invalid { field, source })
}

fn parse_opt<T>(
    msg: &Message,
    field: u8,
    f: impl FnOnce(&[u8]) -> Result<T, DomainError>,
) -> Result<Option<T>, ViewError> {
    match msg.get(field) {
        None => Ok(None),
        Some(v) => f(&v)
            .map(Some)
            .map_err(|source| ViewError::Invalid { field, source }),
    }
}

fn digits_u16(v: &[u8]) -> Result<u16, DomainError> {
    if v.is_empty() || v.len() > 4 || !v.iter().all(u8::is_ascii_digit) {
        return Err(DomainError::ProcessingCodeFormat);
    }
    Ok(v.iter().fold(0u16, |a, &d| a * 10 + (d - b'0') as u16))
}

/// Field 90: the original transaction a reversal or completion refers to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OriginalData {
    pub mti: Mti,
    pub stan: Stan,
    pub transmission: TransmissionDateTime,
    /// The original acquirer id, right-justified and zero-padded to 11 digits on the wire.
    pub acquirer: AcquirerId,
    /// Original forwarding institution, 11 digits (zeros when none).
    pub forwarding: [u8; 11],
}

impl OriginalData {
    pub fn from_field(v: &[u8]) -> Result<OriginalData, DomainError> {
        if v.len() != 42 {
            return Err(DomainError::IdLength {
                kind: "original data elements",
                len: v.len(),
                expected: "42",
            });
        }
        let mti = Mti::from_digits(&v[0..4])?;
        let stan = Stan::from_field(&v[4..10])?;
        let transmission = TransmissionDateTime::from_field(&v[10..20])?;
        let acq = &v[20..31];
        let first = acq.iter().position(|&c| c != b'0').unwrap_or(acq.len() - 1);
        let acquirer = AcquirerId::from_field(&acq[first..])?;
        let forwarding: [u8; 11] = v[31..42].try_into().map_err(|_| DomainError::IdLength {
            kind: "original data elements",
            len: v.len(),
            expected: "42",
        })?;
        Ok(OriginalData {
            mti,
            stan,
            transmission,
            acquirer,
            forwarding,
        })
    }

    pub fn to_field(&self) -> [u8; 42] {
        let mut out = [b'0'; 42];
        out[0..4].copy_from_slice(&self.mti.to_digits());
        out[4..10].copy_from_slice(&self.stan.to_field());
        out[10..20].copy_from_slice(self.transmission.as_bytes());
        let a = self.acquirer.as_bytes();
        out[31 - a.len()..31].copy_from_slice(a);
        out[31..42].copy_from_slice(&self.forwarding);
        out
    }
}

/// Field 95: the amounts that actually happened, for a partial reversal or completion.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplacementAmounts {
    /// Actual transaction amount (field 4's replacement).
    pub transaction: Amount,
    /// Actual settlement amount, in the same currency here (settlement conversion is not used).
    pub settlement: Amount,
}

impl ReplacementAmounts {
    pub fn from_field(v: &[u8], currency: Currency) -> Result<ReplacementAmounts, DomainError> {
        if v.len() != 42 {
            return Err(DomainError::AmountFormat);
        }
        let transaction = Amount::from_field(&v[0..12], currency)?;
        let settlement = Amount::from_field(&v[12..24], currency)?;
        for fee in [&v[24..33], &v[33..42]] {
            if !(fee[0] == b'C' || fee[0] == b'D') || !fee[1..].iter().all(u8::is_ascii_digit) {
                return Err(DomainError::AmountFormat);
            }
        }
        Ok(ReplacementAmounts {
            transaction,
            settlement,
        })
    }

    pub fn to_field(&self) -> Result<[u8; 42], DomainError> {
        let mut out = [b'0'; 42];
        out[0..12].copy_from_slice(&self.transaction.to_field()?);
        out[12..24].copy_from_slice(&self.settlement.to_field()?);
        out[24] = b'C';
        out[33] = b'C';
        Ok(out)
    }
}

/// One 20-character entry of field 54: account type, amount type, currency, sign, amount.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AdditionalAmount {
    /// Account type, e.g. `00` default, `30` credit.
    pub account_type: u8,
    /// Amount type: `01` ledger balance, `02` available balance (ISO 8583:1987 values).
    pub amount_type: u8,
    /// Signed: negative is a debit balance (`D`).
    pub amount: Amount,
}

impl AdditionalAmount {
    pub const LEDGER: u8 = 1;
    pub const AVAILABLE: u8 = 2;

    pub fn to_field(&self) -> Result<[u8; 20], DomainError> {
        let mut out = [b'0'; 20];
        out[0] = b'0' + self.account_type / 10;
        out[1] = b'0' + self.account_type % 10;
        out[2] = b'0' + self.amount_type / 10;
        out[3] = b'0' + self.amount_type % 10;
        out[4..7].copy_from_slice(&self.amount.currency().to_field());
        out[7] = if self.amount.is_negative() {
            b'D'
        } else {
            b'C'
        };
        let abs = if self.amount.is_negative() {
            self.amount.checked_neg()?
        } else {
            self.amount
        };
        out[8..20].copy_from_slice(&abs.to_field()?);
        Ok(out)
    }

    /// Parses every 20-character entry of a field-54 value.
    pub fn parse_all(v: &[u8]) -> Result<Vec<AdditionalAmount>, DomainError> {
        if !v.len().is_multiple_of(20) {
            return Err(DomainError::AmountFormat);
        }
        v.chunks_exact(20)
            .map(|e| {
                let account_type =
                    digits_u16(&e[0..2]).map_err(|_| DomainError::AmountFormat)? as u8;
                let amount_type =
                    digits_u16(&e[2..4]).map_err(|_| DomainError::AmountFormat)? as u8;
                let currency = Currency::from_field(&e[4..7])?;
                let abs = Amount::from_field(&e[8..20], currency)?;
                let amount = match e[7] {
                    b'C' => abs,
                    b'D' => abs.checked_neg()?,
                    _ => return Err(DomainError::AmountFormat),
                };
                Ok(AdditionalAmount {
                    account_type,
                    amount_type,
                    amount,
                })
            })
            .collect()
    }
}

/// Field 62 (private use here): the key serial number of a DUKPT PIN pad, as hex digits: 20
/// for TDES DUKPT (a 10-byte KSN), 24 for AES DUKPT (12 bytes).
pub const KSN_FIELD: u8 = 62;
/// Field 63 (private use here): an ISO 9564 format 4 PIN block (16 bytes, AES) as 32 hex
/// digits. Field 52 is 8 bytes in ISO 8583:1987 and holds format 0 blocks only.
pub const PIN_BLOCK_AES_FIELD: u8 = 63;

/// A DUKPT key serial number as sent in field 62: 10 bytes (TDES) or 12 (AES).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Ksn {
    bytes: [u8; 12],
    len: u8,
}

impl Ksn {
    /// From 20 or 24 hex digits.
    pub fn from_field(v: &[u8]) -> Result<Ksn, DomainError> {
        let len = match v.len() {
            20 => 10,
            24 => 12,
            n => {
                return Err(DomainError::IdLength {
                    kind: "KSN",
                    len: n,
                    expected: "20 or 24 hex digits",
                });
            }
        };
        let mut bytes = [0u8; 12];
        hex_into(v, &mut bytes[..len], "KSN")?;
        Ok(Ksn {
            bytes,
            len: len as u8,
        })
    }

    /// From the KSN's bytes (10 or 12).
    pub fn from_bytes(b: &[u8]) -> Option<Ksn> {
        if b.len() != 10 && b.len() != 12 {
            return None;
        }
        let mut bytes = [0u8; 12];
        bytes[..b.len()].copy_from_slice(b);
        Some(Ksn {
            bytes,
            len: b.len() as u8,
        })
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }

    /// Field 62's value: upper-case hex.
    pub fn to_field(&self) -> String {
        hex::encode_upper(self.as_bytes())
    }
}

/// Decodes hex digits (either case) into `out`, which must be half as long.
fn hex_into(v: &[u8], out: &mut [u8], kind: &'static str) -> Result<(), DomainError> {
    hex::decode_to_slice(v, out).map_err(|_| DomainError::IdCharset {
        kind,
        charset: "hex",
    })
}

/// Field 63's format 4 PIN block: 32 hex digits.
fn pin_block_aes(v: &[u8]) -> Result<[u8; 16], DomainError> {
    if v.len() != 32 {
        return Err(DomainError::IdLength {
            kind: "format 4 PIN block",
            len: v.len(),
            expected: "32 hex digits",
        });
    }
    let mut out = [0u8; 16];
    hex_into(v, &mut out, "format 4 PIN block")?;
    Ok(out)
}

/// A 0100, 0200, 0120 or 0220 (and their repeats): what the card rules and routing read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthorizationRequest<'m> {
    pub mti: Mti,
    pub pan: Pan,
    pub processing_code: ProcessingCode,
    /// Absent only on a balance inquiry.
    pub amount: Option<Amount>,
    pub currency: Currency,
    pub transmission: TransmissionDateTime,
    pub stan: Stan,
    pub expiry: Option<Expiry>,
    pub mcc: Option<u16>,
    pub pos_entry_mode: Option<u16>,
    pub acquirer: AcquirerId,
    pub rrn: Option<Rrn>,
    pub auth_code: Option<AuthCode>,
    pub terminal: TerminalId,
    pub merchant: MerchantId,
    pub card_acceptor: Option<Cow<'m, [u8]>>,
    /// Field 52 as sent (encrypted, format 0); only the security module may look inside.
    pub pin_block: Option<[u8; 8]>,
    /// Field 63: a format 4 PIN block (encrypted, AES), when the PIN key is AES. Never together
    /// with field 52.
    pub pin_block_aes: Option<[u8; 16]>,
    /// Field 62: the KSN of the DUKPT PIN pad that enciphered the PIN block.
    pub ksn: Option<Ksn>,
    /// Field 53, e.g. a key index.
    pub security_control: Option<Cow<'m, [u8]>>,
    /// Track 2 was present (its content is never kept).
    pub track2_present: bool,
    /// Field 60 = `1`: the terminal accepts a partial approval.
    pub partial_approval_supported: bool,
    /// Field 90, on a completion (0220).
    pub original: Option<OriginalData>,
}

impl<'m> AuthorizationRequest<'m> {
    pub fn from_message(msg: &'m Message) -> Result<AuthorizationRequest<'m>, ViewError> {
        let mti = mti_of(msg)?;
        let base = mti.original();
        if ![
            Mti::AUTH_REQUEST,
            Mti::AUTH_ADVICE,
            Mti::FINANCIAL_REQUEST,
            Mti::FINANCIAL_ADVICE,
        ]
        .contains(&base)
        {
            return Err(ViewError::UnsupportedMti(mti));
        }
        let rule = rule_for(mti).ok_or(ViewError::UnsupportedMti(mti))?;
        check_rule(msg, rule)?;
        let pan = parse(msg, 2, Pan::parse)?;
        let processing_code = parse(msg, 3, ProcessingCode::from_field)?;
        let currency = parse(msg, 49, Currency::from_field)?;
        let amount = parse_opt(msg, 4, |v| Amount::from_field(v, currency))?;
        if amount.is_none() && processing_code.txn != TxnType::BalanceInquiry {
            return Err(ViewError::Missing { field: 4 });
        }
        let pin_block = match msg.get(52) {
            None => None,
            Some(v) => Some(<[u8; 8]>::try_from(&v[..]).map_err(|_| ViewError::Invalid {
                field: 52,
                source: DomainError::IdLength {
                    kind: "PIN block",
                    len: v.len(),
                    expected: "8",
                },
            })?),
        };
        let pin_block_aes = parse_opt(msg, PIN_BLOCK_AES_FIELD, pin_block_aes)?;
        if pin_block.is_some() && pin_block_aes.is_some() {
            return Err(ViewError::Forbidden {
                field: PIN_BLOCK_AES_FIELD,
            });
        }
        let ksn = parse_opt(msg, KSN_FIELD, Ksn::from_field)?;
        if ksn.is_some() && pin_block.is_none() && pin_block_aes.is_none() {
            // A KSN names the key of a PIN block; without one it means nothing.
            return Err(ViewError::Forbidden { field: KSN_FIELD });
        }
        let partial = msg.get(60).is_some_and(|v| &v[..] == b"1");
        Ok(AuthorizationRequest {
            mti,
            pan,
            processing_code,
            amount,
            currency,
            transmission: parse(msg, 7, TransmissionDateTime::from_field)?,
            stan: parse(msg, 11, Stan::from_field)?,
            expiry: parse_opt(msg, 14, Expiry::from_field)?,
            mcc: parse_opt(msg, 18, digits_u16)?,
            pos_entry_mode: parse_opt(msg, 22, digits_u16)?,
            acquirer: parse(msg, 32, AcquirerId::from_field)?,
            rrn: parse_opt(msg, 37, Rrn::from_field)?,
            auth_code: parse_opt(msg, 38, AuthCode::from_field)?,
            terminal: parse(msg, 41, TerminalId::from_field)?,
            merchant: parse(msg, 42, MerchantId::from_field)?,
            card_acceptor: msg.get(43),
            pin_block,
            pin_block_aes,
            ksn,
            security_control: msg.get(53),
            track2_present: msg.has(35),
            partial_approval_supported: partial,
            original: parse_opt(msg, 90, OriginalData::from_field)?,
        })
    }
}

impl AuthorizationRequest<'_> {
    /// True when the request carries a PIN block (field 52 or 63).
    pub fn has_pin(&self) -> bool {
        self.pin_block.is_some() || self.pin_block_aes.is_some()
    }
}

/// An issuer's 0110/0210/0130/0230 (or the switch's own answer), as routing and matching read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthorizationResponse<'m> {
    pub mti: Mti,
    pub stan: Stan,
    pub response_code: ResponseCode,
    pub auth_code: Option<AuthCode>,
    /// Field 4 of the response: the approved amount (differs on a partial approval).
    pub amount: Option<Amount>,
    pub rrn: Option<Rrn>,
    pub additional_amounts: Option<Cow<'m, [u8]>>,
}

impl<'m> AuthorizationResponse<'m> {
    pub fn from_message(msg: &'m Message) -> Result<AuthorizationResponse<'m>, ViewError> {
        let mti = mti_of(msg)?;
        if !mti.is_response() || mti.class() == 8 {
            return Err(ViewError::UnsupportedMti(mti));
        }
        let currency = parse_opt(msg, 49, Currency::from_field)?;
        let amount = match currency {
            Some(c) => parse_opt(msg, 4, |v| Amount::from_field(v, c))?,
            None => None,
        };
        Ok(AuthorizationResponse {
            mti,
            stan: parse(msg, 11, Stan::from_field)?,
            response_code: parse(msg, 39, ResponseCode::from_field)?,
            auth_code: parse_opt(msg, 38, AuthCode::from_field)?,
            amount,
            rrn: parse_opt(msg, 37, Rrn::from_field)?,
            additional_amounts: msg.get(54),
        })
    }
}

/// A 0400 or 0420 (and repeats).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReversalRequest {
    pub mti: Mti,
    pub pan: Pan,
    pub processing_code: ProcessingCode,
    /// The original amount (field 4).
    pub amount: Amount,
    pub transmission: TransmissionDateTime,
    pub stan: Stan,
    pub acquirer: AcquirerId,
    pub terminal: TerminalId,
    pub rrn: Option<Rrn>,
    pub original: OriginalData,
    /// Field 95: present on a partial reversal.
    pub replacement: Option<ReplacementAmounts>,
}

impl ReversalRequest {
    pub fn is_advice(&self) -> bool {
        self.mti.is_advice()
    }

    pub fn from_message(msg: &Message) -> Result<ReversalRequest, ViewError> {
        let mti = mti_of(msg)?;
        let base = mti.original();
        if base != Mti::REVERSAL_REQUEST && base != Mti::REVERSAL_ADVICE {
            return Err(ViewError::UnsupportedMti(mti));
        }
        check_rule(msg, rule_for(mti).ok_or(ViewError::UnsupportedMti(mti))?)?;
        let currency = parse(msg, 49, Currency::from_field)?;
        Ok(ReversalRequest {
            mti,
            pan: parse(msg, 2, Pan::parse)?,
            processing_code: parse(msg, 3, ProcessingCode::from_field)?,
            amount: parse(msg, 4, |v| Amount::from_field(v, currency))?,
            transmission: parse(msg, 7, TransmissionDateTime::from_field)?,
            stan: parse(msg, 11, Stan::from_field)?,
            acquirer: parse(msg, 32, AcquirerId::from_field)?,
            terminal: parse(msg, 41, TerminalId::from_field)?,
            rrn: parse_opt(msg, 37, Rrn::from_field)?,
            original: parse(msg, 90, OriginalData::from_field)?,
            replacement: parse_opt(msg, 95, |v| ReplacementAmounts::from_field(v, currency))?,
        })
    }
}

/// Field 70 codes the switch acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NetworkCode {
    SignOn,
    SignOff,
    Echo,
}

impl NetworkCode {
    pub fn code(self) -> &'static [u8; 3] {
        match self {
            NetworkCode::SignOn => b"001",
            NetworkCode::SignOff => b"002",
            NetworkCode::Echo => b"301",
        }
    }

    pub fn from_field(v: &[u8]) -> Result<NetworkCode, DomainError> {
        match v {
            b"001" => Ok(NetworkCode::SignOn),
            b"002" => Ok(NetworkCode::SignOff),
            b"301" => Ok(NetworkCode::Echo),
            _ => Err(DomainError::ProcessingCodeUnknown),
        }
    }
}

/// A 0800 (request) or 0810 (response).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NetworkManagement {
    pub mti: Mti,
    pub transmission: TransmissionDateTime,
    pub stan: Stan,
    pub code: NetworkCode,
    /// Present on an 0810.
    pub response_code: Option<ResponseCode>,
}

impl NetworkManagement {
    pub fn from_message(msg: &Message) -> Result<NetworkManagement, ViewError> {
        let mti = mti_of(msg)?;
        match mti {
            Mti::NETWORK_REQUEST => {
                check_rule(msg, rule_for(mti).ok_or(ViewError::UnsupportedMti(mti))?)?
            }
            Mti::NETWORK_RESPONSE => {}
            _ => return Err(ViewError::UnsupportedMti(mti)),
        }
        Ok(NetworkManagement {
            mti,
            transmission: parse(msg, 7, TransmissionDateTime::from_field)?,
            stan: parse(msg, 11, Stan::from_field)?,
            code: parse(msg, 70, NetworkCode::from_field)?,
            response_code: parse_opt(msg, 39, ResponseCode::from_field)?,
        })
    }
}

/// The request fields every response echoes, where present.
pub const ECHOED_FIELDS: [u8; 12] = [2, 3, 4, 7, 11, 12, 13, 32, 37, 41, 42, 49];

/// A response to `req`: its MTI + 10 (repeats answered like the original), the echoed fields,
/// and 39. Callers add 38 and 54 (and replace 4 on a partial approval) before encoding.
pub fn response_builder<'a>(
    dialect: &'static Dialect,
    req: &'a Message,
    code: ResponseCode,
) -> Result<MessageBuilder<'a>, ViewError> {
    let mti = mti_of(req)?;
    let resp = mti.response().ok_or(ViewError::UnsupportedMti(mti))?;
    let mut b = MessageBuilder::new(dialect, resp.to_digits());
    b.copy_fields(req, &ECHOED_FIELDS);
    b.set(39, code_bytes(code));
    Ok(b)
}

/// Field 39's two bytes for `code`, with a `'static` lifetime so builders can borrow them.
pub fn code_bytes(code: ResponseCode) -> &'static [u8] {
    code.as_str().as_bytes()
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::iso8583::{ISO87_ASCII, decode, samples};

    /// The rule check as it was written first, on field numbers and the rule's lists: the masks
    /// must find the same fault, field for field.
    fn check_by_lists(bitmap: u128, rule: &FieldRule) -> Result<(), ViewError> {
        let has = |n: u8| bitmap & (1u128 << (128 - u32::from(n))) != 0;
        if let Some(&field) = rule.mandatory.iter().find(|&&n| !has(n)) {
            return Err(ViewError::Missing { field });
        }
        if let Some(field) = (2..=128u8)
            .find(|&n| has(n) && !rule.mandatory.contains(&n) && !rule.optional.contains(&n))
        {
            return Err(ViewError::Forbidden { field });
        }
        Ok(())
    }

    /// The masks name the lowest-numbered field at fault, as the lists did only because each
    /// is ascending; a field 1 (the secondary bitmap) or one outside 2–128 would mean nothing.
    #[test]
    fn every_rule_lists_fields_ascending_within_2_to_128() {
        for rule in RULES {
            for list in [rule.mandatory, rule.optional] {
                assert!(list.iter().all(|n| (2..=128).contains(n)), "{:?}", rule.mti);
                assert!(list.windows(2).all(|w| w[0] < w[1]), "{:?}", rule.mti);
            }
            assert!(
                rule.mandatory.iter().all(|n| !rule.optional.contains(n)),
                "{:?}",
                rule.mti
            );
        }
    }

    proptest::proptest! {
        #[test]
        fn rule_masks_agree_with_the_lists(
            bitmap: u128,
            rule in 0..RULES.len(),
            fill_mandatory: bool,
            keep_allowed_only: bool,
        ) {
            let rule = &RULES[rule];
            let mut bitmap = bitmap;
            // Random bitmaps almost always miss a mandatory field and carry a forbidden one:
            // steer some toward the other outcomes.
            if fill_mandatory {
                bitmap |= field_bits(rule.mandatory);
            }
            if keep_allowed_only {
                bitmap &= field_bits(rule.mandatory) | field_bits(rule.optional) | field_bit(1);
            }
            proptest::prop_assert_eq!(check_present(bitmap, rule), check_by_lists(bitmap, rule));
        }
    }

    fn auth_msg(extra: &[(u8, &'static [u8])], drop: &[u8]) -> Message {
        let mut b = samples::auth_request(&ISO87_ASCII);
        b.set(32, b"100001");
        for &(n, v) in extra {
            b.set(n, v);
        }
        for &n in drop {
            b.remove(n);
        }
        decode(&ISO87_ASCII, b.to_bytes().expect("encode")).expect("decode")
    }

    #[test]
    fn authorization_request_view() {
        let m = auth_msg(&[(60, b"1")], &[]);
        let v = AuthorizationRequest::from_message(&m).expect("view");
        assert_eq!(v.mti, Mti::AUTH_REQUEST);
        assert_eq!(v.pan.to_string(), "411111******0013");
        assert_eq!(v.amount, Some(Amount::new(1234, Currency::CNY)));
        assert_eq!(v.stan.value(), 1);
        assert_eq!(v.acquirer.as_str(), "100001");
        assert_eq!(v.terminal.as_str(), "TERM0001");
        assert_eq!(v.mcc, Some(5411));
        assert!(v.track2_present);
        assert!(v.partial_approval_supported);
        assert!(v.pin_block.is_none());
    }

    #[test]
    fn missing_forbidden_and_invalid_fields() {
        let m = auth_msg(&[], &[32]);
        assert_eq!(
            AuthorizationRequest::from_message(&m),
            Err(ViewError::Missing { field: 32 })
        );
        let m = auth_msg(&[(39, b"00")], &[]);
        let e = AuthorizationRequest::from_message(&m).unwrap_err();
        assert_eq!(e, ViewError::Forbidden { field: 39 });
        assert_eq!(e.response_code(), ResponseCode::FormatError);
        let m = auth_msg(&[(2, b"4111110000000012")], &[]);
        let e = AuthorizationRequest::from_message(&m).unwrap_err();
        assert_eq!(e.field(), Some(2));
        assert_eq!(e.response_code(), ResponseCode::InvalidCardNumber);
        assert!(!e.to_string().contains("4111110000000012"));
        // Balance inquiry may omit field 4; a purchase may not.
        let m = auth_msg(&[(3, b"310000")], &[4]);
        assert!(AuthorizationRequest::from_message(&m).is_ok_and(|v| v.amount.is_none()));
        let m = auth_msg(&[], &[4]);
        assert_eq!(
            AuthorizationRequest::from_message(&m),
            Err(ViewError::Missing { field: 4 })
        );
    }

    #[test]
    fn pin_fields_52_62_63() {
        let m = auth_msg(
            &[
                (62, b"FFFF9876543210E00001"),
                (52, b"\x1b\x9c\x18\x45\xeb\x99\x3a\x7a"),
            ],
            &[],
        );
        let v = AuthorizationRequest::from_message(&m).expect("view");
        assert_eq!(v.pin_block, Some(*b"\x1b\x9c\x18\x45\xeb\x99\x3a\x7a"));
        let ksn = v.ksn.expect("ksn");
        assert_eq!(ksn.as_bytes().len(), 10);
        assert_eq!(ksn.to_field(), "FFFF9876543210E00001");
        assert!(v.has_pin());

        let m = auth_msg(
            &[
                (62, b"123456789012345600000001"),
                (63, b"e4be5b623af7e006ac319e5b93544564"),
            ],
            &[],
        );
        let v = AuthorizationRequest::from_message(&m).expect("view");
        assert_eq!(v.ksn.map(|k| k.as_bytes().len()), Some(12));
        assert_eq!(
            v.pin_block_aes.map(hex::encode_upper).as_deref(),
            Some("E4BE5B623AF7E006AC319E5B93544564")
        );
        assert!(v.pin_block.is_none() && v.has_pin());

        for (extra, field) in [
            (&[(62u8, &b"FFFF9876543210E0000"[..])][..], 62u8),
            (&[(63, &b"E4BE5B623AF7E006AC319E5B9354456Z"[..])][..], 63),
            (&[(62, &b"FFFF9876543210E00001"[..])][..], 62),
            (
                &[
                    (52, &b"12345678"[..]),
                    (63, &b"E4BE5B623AF7E006AC319E5B93544564"[..]),
                ][..],
                63,
            ),
        ] {
            let m = auth_msg(extra, &[]);
            let e = AuthorizationRequest::from_message(&m).expect_err("refused");
            assert_eq!(e.field(), Some(field), "{e}");
            assert_eq!(e.response_code(), ResponseCode::FormatError);
        }
    }

    #[test]
    fn reversal_view_with_original_and_replacement() {
        let orig =
            OriginalData::from_field(b"010000000111252218000000010000100000000000").expect("f90");
        assert_eq!(orig.mti, Mti::AUTH_REQUEST);
        assert_eq!(orig.acquirer.as_str(), "100001");
        assert_eq!(
            &orig.to_field()[..],
            b"010000000111252218000000010000100000000000"
        );
        let repl = ReplacementAmounts {
            transaction: Amount::new(500, Currency::CNY),
            settlement: Amount::new(500, Currency::CNY),
        };
        let repl_field = repl.to_field().expect("f95");
        let f90 = orig.to_field();
        let mut b = MessageBuilder::new(&ISO87_ASCII, *b"0420");
        for (n, v) in [
            (2u8, &b"4111110000000013"[..]),
            (3, b"000000"),
            (4, b"000000001234"),
            (7, b"1125222000"),
            (11, b"000002"),
            (32, b"100001"),
            (41, b"TERM0001"),
            (49, b"156"),
        ] {
            b.set(n, v);
        }
        b.set(90, &f90).set(95, &repl_field);
        let m = decode(&ISO87_ASCII, b.to_bytes().expect("encode")).expect("decode");
        let r = ReversalRequest::from_message(&m).expect("view");
        assert!(r.is_advice());
        assert_eq!(r.original, orig);
        assert_eq!(r.replacement.map(|x| x.transaction.minor()), Some(500));
    }

    #[test]
    fn network_management_view() {
        let mut b = MessageBuilder::new(&ISO87_ASCII, *b"0800");
        b.set(7, b"1125221800").set(11, b"000009").set(70, b"301");
        let m = decode(&ISO87_ASCII, b.to_bytes().expect("encode")).expect("decode");
        let v = NetworkManagement::from_message(&m).expect("view");
        assert_eq!(v.code, NetworkCode::Echo);
        b.set(70, b"999");
        let m = decode(&ISO87_ASCII, b.to_bytes().expect("encode")).expect("decode");
        assert_eq!(
            NetworkManagement::from_message(&m).unwrap_err().field(),
            Some(70)
        );
    }

    #[test]
    fn response_echoes_and_adds_39() {
        let m = auth_msg(&[], &[]);
        let mut b = response_builder(&ISO87_ASCII, &m, ResponseCode::Approved).expect("builder");
        b.set(38, b"A12345");
        let bytes: Bytes = b.to_bytes().expect("encode");
        let r = decode(&ISO87_ASCII, bytes).expect("decode");
        assert_eq!(&r.mti_digits(), b"0110");
        for n in ECHOED_FIELDS {
            assert_eq!(r.get(n), m.get(n), "field {n}");
        }
        assert!(
            !r.has(35) && !r.has(14),
            "track 2 and expiry are not echoed"
        );
        let v = AuthorizationResponse::from_message(&r).expect("view");
        assert_eq!(v.response_code, ResponseCode::Approved);
        assert_eq!(v.auth_code.map(|a| a.to_string()), Some("A12345".into()));
    }

    #[test]
    fn additional_amounts_round_trip() {
        let a = AdditionalAmount {
            account_type: 30,
            amount_type: AdditionalAmount::AVAILABLE,
            amount: Amount::new(998766, Currency::CNY),
        };
        let l = AdditionalAmount {
            account_type: 30,
            amount_type: AdditionalAmount::LEDGER,
            amount: Amount::new(-1234, Currency::CNY),
        };
        let mut v = a.to_field().expect("a").to_vec();
        v.extend_from_slice(&l.to_field().expect("l"));
        assert_eq!(&v[..20], b"3002156C000000998766");
        assert_eq!(AdditionalAmount::parse_all(&v).expect("parse"), vec![a, l]);
    }
}
