//! The coded fields that steer a message: [`Mti`] (message type indicator), [`ProcessingCode`]
//! (field 3, with [`TxnType`] and [`AccountType`]) and [`ResponseCode`] (field 39).
//!
//! Owns the meaning of each code and the conversions to and from their field bytes. It leaves
//! which MTIs a dialect accepts to the codec, and which response code a decision produces to the
//! decision layer: this module says what `51` *means*, not when to send it.
//!
//! Why closed enums for processing and response codes: the switch must refuse what it does not
//! understand (12 for an unknown processing code) rather than pass it along, and a closed enum
//! makes every `match` in the decision layer exhaustive, so adding a code is a compile error
//! everywhere it matters.

use core::fmt;

use super::ascii;
use super::error::DomainError;

/// Message type indicator: 4 digits, version / class / function / origin.
///
/// Any 4 digits are accepted, including other ISO 8583 versions: whether an MTI is supported is
/// the dialect's decision, and refusing it there lets the switch answer rather than drop it.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Mti(u16);

impl Mti {
    /// Authorization request.
    pub const AUTH_REQUEST: Mti = Mti(100);
    /// Authorization request response.
    pub const AUTH_RESPONSE: Mti = Mti(110);
    /// Authorization advice.
    pub const AUTH_ADVICE: Mti = Mti(120);
    /// Authorization advice response.
    pub const AUTH_ADVICE_RESPONSE: Mti = Mti(130);
    /// Financial transaction request.
    pub const FINANCIAL_REQUEST: Mti = Mti(200);
    /// Financial transaction request response.
    pub const FINANCIAL_RESPONSE: Mti = Mti(210);
    /// Financial transaction advice.
    pub const FINANCIAL_ADVICE: Mti = Mti(220);
    /// Financial transaction advice response.
    pub const FINANCIAL_ADVICE_RESPONSE: Mti = Mti(230);
    /// Reversal request.
    pub const REVERSAL_REQUEST: Mti = Mti(400);
    /// Reversal request response.
    pub const REVERSAL_RESPONSE: Mti = Mti(410);
    /// Reversal advice.
    pub const REVERSAL_ADVICE: Mti = Mti(420);
    /// Reversal advice response.
    pub const REVERSAL_ADVICE_RESPONSE: Mti = Mti(430);
    /// Network management request (sign-on, echo, key exchange).
    pub const NETWORK_REQUEST: Mti = Mti(800);
    /// Network management request response.
    pub const NETWORK_RESPONSE: Mti = Mti(810);

    /// Parses the 4 ASCII digits that open every message. Takes a slice so the codec can pass
    /// its buffer directly; `&[u8; 4]` coerces.
    pub fn from_digits(digits: &[u8]) -> Result<Mti, DomainError> {
        if digits.len() != 4 {
            return Err(DomainError::MtiFormat);
        }
        let value = ascii::digits_value(digits).ok_or(DomainError::MtiFormat)?;
        // Four digits are at most 9999.
        Ok(Mti(value as u16))
    }

    /// The 4-digit wire form, e.g. `*b"0110"`.
    pub fn to_digits(self) -> [u8; 4] {
        ascii::fixed_digits(u64::from(self.0))
    }

    /// The numeric value, e.g. 110 for `0110`.
    pub const fn value(self) -> u16 {
        self.0
    }

    /// 1st digit: ISO 8583 version (0 = 1987).
    pub const fn version(self) -> u8 {
        (self.0 / 1000) as u8
    }

    /// 2nd digit: message class (1 authorization, 2 financial, 4 reversal, 8 network...).
    pub const fn class(self) -> u8 {
        (self.0 / 100 % 10) as u8
    }

    /// 3rd digit: message function (0 request, 1 request response, 2 advice, 3 advice
    /// response, 4 notification...).
    pub const fn function(self) -> u8 {
        (self.0 / 10 % 10) as u8
    }

    /// 4th digit: transaction originator (0 acquirer, 1 acquirer repeat, 2 issuer, 3 issuer
    /// repeat, ...).
    pub const fn origin(self) -> u8 {
        (self.0 % 10) as u8
    }

    /// True for requests and advices (function 0 or 2): messages that expect a response.
    pub const fn is_request(self) -> bool {
        matches!(self.function(), 0 | 2)
    }

    /// True for advices (function 2), which the receiver must accept rather than decline.
    pub const fn is_advice(self) -> bool {
        self.function() == 2
    }

    /// True for responses (function 1 or 3).
    pub const fn is_response(self) -> bool {
        matches!(self.function(), 1 | 3)
    }

    /// True for repeats (odd origin digit): a resend of a message that went unanswered.
    pub const fn is_repeat(self) -> bool {
        self.origin() % 2 == 1
    }

    /// The message a repeat stands for (0401 → 0400); any other MTI is returned unchanged.
    pub const fn original(self) -> Mti {
        if self.is_repeat() {
            Mti(self.0 - 1)
        } else {
            self
        }
    }

    /// The MTI of the response to this request or advice (`0100` → `0110`, `0420` → `0430`);
    /// `None` for anything that is not answered.
    ///
    /// A repeat is answered as its original would have been (`0401` → `0410`): the repeat
    /// marker describes how the request travelled, not the response.
    pub const fn response(self) -> Option<Mti> {
        if self.is_request() {
            let unrepeated = if self.is_repeat() { self.0 - 1 } else { self.0 };
            Some(Mti(unrepeated + 10))
        } else {
            None
        }
    }
}

/// Four digits, zero padded: `0100`.
impl fmt::Display for Mti {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}", self.0)
    }
}

impl fmt::Debug for Mti {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Mti({:04})", self.0)
    }
}

/// Transaction type: the first two digits of the processing code (ISO 8583:1987 values).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum TxnType {
    /// 00: goods and services.
    Purchase,
    /// 01: cash withdrawal / advance.
    Cash,
    /// 09: goods and services with cash disbursement.
    PurchaseWithCashback,
    /// 20: returns (refund to the cardholder).
    Refund,
    /// 21: deposits (payment, prepaid load).
    Deposit,
    /// 31: available funds / balance inquiry.
    BalanceInquiry,
    /// 40: cardholder accounts transfer.
    Transfer,
}

impl TxnType {
    /// Every supported transaction type.
    pub const ALL: &'static [TxnType] = &[
        TxnType::Purchase,
        TxnType::Cash,
        TxnType::PurchaseWithCashback,
        TxnType::Refund,
        TxnType::Deposit,
        TxnType::BalanceInquiry,
        TxnType::Transfer,
    ];

    /// The two-digit code as a number, e.g. 31 for balance inquiry.
    pub const fn code(self) -> u8 {
        match self {
            TxnType::Purchase => 0,
            TxnType::Cash => 1,
            TxnType::PurchaseWithCashback => 9,
            TxnType::Refund => 20,
            TxnType::Deposit => 21,
            TxnType::BalanceInquiry => 31,
            TxnType::Transfer => 40,
        }
    }

    /// The transaction type with numeric code `code`; unknown codes are
    /// [`DomainError::ProcessingCodeUnknown`].
    pub const fn from_code(code: u8) -> Result<TxnType, DomainError> {
        Ok(match code {
            0 => TxnType::Purchase,
            1 => TxnType::Cash,
            9 => TxnType::PurchaseWithCashback,
            20 => TxnType::Refund,
            21 => TxnType::Deposit,
            31 => TxnType::BalanceInquiry,
            40 => TxnType::Transfer,
            _ => return Err(DomainError::ProcessingCodeUnknown),
        })
    }
}

/// Account type: the 3rd-4th ("from") and 5th-6th ("to") digit pairs of the processing code.
///
/// Limited to the ISO 8583:1987 values. 60 (stored value) and the like are scheme-specific
/// extensions; until a dialect needs one they are refused as unknown (answer 12).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum AccountType {
    /// 00: default / unspecified; the issuer picks.
    Default,
    /// 10: savings.
    Savings,
    /// 20: checking (cheque).
    Checking,
    /// 30: credit facility.
    Credit,
    /// 40: universal.
    Universal,
}

impl AccountType {
    /// Every supported account type.
    pub const ALL: &'static [AccountType] = &[
        AccountType::Default,
        AccountType::Savings,
        AccountType::Checking,
        AccountType::Credit,
        AccountType::Universal,
    ];

    /// The two-digit code as a number, e.g. 30 for credit.
    pub const fn code(self) -> u8 {
        match self {
            AccountType::Default => 0,
            AccountType::Savings => 10,
            AccountType::Checking => 20,
            AccountType::Credit => 30,
            AccountType::Universal => 40,
        }
    }

    /// The account type with numeric code `code`; unknown codes are
    /// [`DomainError::ProcessingCodeUnknown`].
    pub const fn from_code(code: u8) -> Result<AccountType, DomainError> {
        Ok(match code {
            0 => AccountType::Default,
            10 => AccountType::Savings,
            20 => AccountType::Checking,
            30 => AccountType::Credit,
            40 => AccountType::Universal,
            _ => return Err(DomainError::ProcessingCodeUnknown),
        })
    }
}

/// Processing code (field 3): what the transaction does and between which accounts.
///
/// The fields are public because every combination of the enums is a valid code.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct ProcessingCode {
    /// Digits 1-2.
    pub txn: TxnType,
    /// Digits 3-4: the account debited (or inquired).
    pub from: AccountType,
    /// Digits 5-6: the account credited.
    pub to: AccountType,
}

impl ProcessingCode {
    /// A processing code from its parts.
    pub const fn new(txn: TxnType, from: AccountType, to: AccountType) -> ProcessingCode {
        ProcessingCode { txn, from, to }
    }

    /// A plain purchase from the default account: `000000`.
    pub const PURCHASE: ProcessingCode = ProcessingCode::new(
        TxnType::Purchase,
        AccountType::Default,
        AccountType::Default,
    );

    /// Parses field 3. Malformed content (not 6 digits) is
    /// [`DomainError::ProcessingCodeFormat`] (answer 30); well-formed but unsupported codes are
    /// [`DomainError::ProcessingCodeUnknown`] (answer 12).
    pub fn from_field(field: &[u8]) -> Result<ProcessingCode, DomainError> {
        if field.len() != 6 || !ascii::all_digits(field) {
            return Err(DomainError::ProcessingCodeFormat);
        }
        let pair = |i: usize| (field[i] - b'0') * 10 + (field[i + 1] - b'0');
        Ok(ProcessingCode {
            txn: TxnType::from_code(pair(0))?,
            from: AccountType::from_code(pair(2))?,
            to: AccountType::from_code(pair(4))?,
        })
    }

    /// The 6-digit field form.
    pub fn to_field(self) -> [u8; 6] {
        let value = u64::from(self.txn.code()) * 10_000
            + u64::from(self.from.code()) * 100
            + u64::from(self.to.code());
        ascii::fixed_digits(value)
    }
}

/// Six digits, as on the wire: `310000`.
impl fmt::Display for ProcessingCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:02}{:02}{:02}",
            self.txn.code(),
            self.from.code(),
            self.to.code()
        )
    }
}

/// Response code (field 39), ISO 8583:1987 values the switch produces or understands.
///
/// The discriminant is the numeric code, so `ResponseCode::InsufficientFunds as u8 == 51`.
/// Codes outside this set coming back from an issuer are [`DomainError::ResponseCodeUnknown`];
/// mapping them (usually to 05 or 96) is the issuer link's policy.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
#[repr(u8)]
pub enum ResponseCode {
    /// 00 Approved.
    Approved = 0,
    /// 01 Refer to card issuer.
    ReferToIssuer = 1,
    /// 03 Invalid merchant.
    InvalidMerchant = 3,
    /// 05 Do not honour.
    DoNotHonour = 5,
    /// 06 Error.
    Error = 6,
    /// 10 Approved for partial amount.
    ApprovedPartial = 10,
    /// 12 Invalid transaction.
    InvalidTransaction = 12,
    /// 13 Invalid amount.
    InvalidAmount = 13,
    /// 14 Invalid card number.
    InvalidCardNumber = 14,
    /// 15 No such issuer.
    NoSuchIssuer = 15,
    /// 25 Unable to locate record.
    UnableToLocateRecord = 25,
    /// 30 Format error.
    FormatError = 30,
    /// 41 Lost card.
    LostCard = 41,
    /// 43 Stolen card.
    StolenCard = 43,
    /// 51 Not sufficient funds.
    InsufficientFunds = 51,
    /// 54 Expired card.
    ExpiredCard = 54,
    /// 55 Incorrect PIN.
    IncorrectPin = 55,
    /// 57 Transaction not permitted to cardholder.
    NotPermittedToCardholder = 57,
    /// 58 Transaction not permitted to terminal.
    NotPermittedToTerminal = 58,
    /// 61 Exceeds withdrawal amount limit.
    ExceedsAmountLimit = 61,
    /// 62 Restricted card.
    RestrictedCard = 62,
    /// 63 Security violation.
    SecurityViolation = 63,
    /// 65 Exceeds withdrawal frequency limit.
    ExceedsFrequencyLimit = 65,
    /// 75 Allowable number of PIN tries exceeded.
    PinTriesExceeded = 75,
    /// 91 Issuer or switch inoperative.
    IssuerInoperative = 91,
    /// 94 Duplicate transmission.
    DuplicateTransmission = 94,
    /// 96 System malfunction.
    SystemMalfunction = 96,
}

impl ResponseCode {
    /// Every response code, in numeric order.
    pub const ALL: &'static [ResponseCode] = &[
        ResponseCode::Approved,
        ResponseCode::ReferToIssuer,
        ResponseCode::InvalidMerchant,
        ResponseCode::DoNotHonour,
        ResponseCode::Error,
        ResponseCode::ApprovedPartial,
        ResponseCode::InvalidTransaction,
        ResponseCode::InvalidAmount,
        ResponseCode::InvalidCardNumber,
        ResponseCode::NoSuchIssuer,
        ResponseCode::UnableToLocateRecord,
        ResponseCode::FormatError,
        ResponseCode::LostCard,
        ResponseCode::StolenCard,
        ResponseCode::InsufficientFunds,
        ResponseCode::ExpiredCard,
        ResponseCode::IncorrectPin,
        ResponseCode::NotPermittedToCardholder,
        ResponseCode::NotPermittedToTerminal,
        ResponseCode::ExceedsAmountLimit,
        ResponseCode::RestrictedCard,
        ResponseCode::SecurityViolation,
        ResponseCode::ExceedsFrequencyLimit,
        ResponseCode::PinTriesExceeded,
        ResponseCode::IssuerInoperative,
        ResponseCode::DuplicateTransmission,
        ResponseCode::SystemMalfunction,
    ];

    /// The numeric value, e.g. 51.
    pub const fn numeric(self) -> u8 {
        self as u8
    }

    /// The two field bytes, e.g. `*b"51"`.
    pub const fn code(&self) -> [u8; 2] {
        let n = *self as u8;
        [b'0' + n / 10, b'0' + n % 10]
    }

    /// The two-character code as text, e.g. `"51"`.
    pub const fn as_str(&self) -> &'static str {
        match self {
            ResponseCode::Approved => "00",
            ResponseCode::ReferToIssuer => "01",
            ResponseCode::InvalidMerchant => "03",
            ResponseCode::DoNotHonour => "05",
            ResponseCode::Error => "06",
            ResponseCode::ApprovedPartial => "10",
            ResponseCode::InvalidTransaction => "12",
            ResponseCode::InvalidAmount => "13",
            ResponseCode::InvalidCardNumber => "14",
            ResponseCode::NoSuchIssuer => "15",
            ResponseCode::UnableToLocateRecord => "25",
            ResponseCode::FormatError => "30",
            ResponseCode::LostCard => "41",
            ResponseCode::StolenCard => "43",
            ResponseCode::InsufficientFunds => "51",
            ResponseCode::ExpiredCard => "54",
            ResponseCode::IncorrectPin => "55",
            ResponseCode::NotPermittedToCardholder => "57",
            ResponseCode::NotPermittedToTerminal => "58",
            ResponseCode::ExceedsAmountLimit => "61",
            ResponseCode::RestrictedCard => "62",
            ResponseCode::SecurityViolation => "63",
            ResponseCode::ExceedsFrequencyLimit => "65",
            ResponseCode::PinTriesExceeded => "75",
            ResponseCode::IssuerInoperative => "91",
            ResponseCode::DuplicateTransmission => "94",
            ResponseCode::SystemMalfunction => "96",
        }
    }

    /// The ISO 8583:1987 meaning, e.g. `"Not sufficient funds"`.
    pub const fn meaning(&self) -> &'static str {
        match self {
            ResponseCode::Approved => "Approved",
            ResponseCode::ReferToIssuer => "Refer to card issuer",
            ResponseCode::InvalidMerchant => "Invalid merchant",
            ResponseCode::DoNotHonour => "Do not honour",
            ResponseCode::Error => "Error",
            ResponseCode::ApprovedPartial => "Approved for partial amount",
            ResponseCode::InvalidTransaction => "Invalid transaction",
            ResponseCode::InvalidAmount => "Invalid amount",
            ResponseCode::InvalidCardNumber => "Invalid card number",
            ResponseCode::NoSuchIssuer => "No such issuer",
            ResponseCode::UnableToLocateRecord => "Unable to locate record",
            ResponseCode::FormatError => "Format error",
            ResponseCode::LostCard => "Lost card",
            ResponseCode::StolenCard => "Stolen card",
            ResponseCode::InsufficientFunds => "Not sufficient funds",
            ResponseCode::ExpiredCard => "Expired card",
            ResponseCode::IncorrectPin => "Incorrect PIN",
            ResponseCode::NotPermittedToCardholder => "Transaction not permitted to cardholder",
            ResponseCode::NotPermittedToTerminal => "Transaction not permitted to terminal",
            ResponseCode::ExceedsAmountLimit => "Exceeds withdrawal amount limit",
            ResponseCode::RestrictedCard => "Restricted card",
            ResponseCode::SecurityViolation => "Security violation",
            ResponseCode::ExceedsFrequencyLimit => "Exceeds withdrawal frequency limit",
            ResponseCode::PinTriesExceeded => "Allowable number of PIN tries exceeded",
            ResponseCode::IssuerInoperative => "Issuer or switch inoperative",
            ResponseCode::DuplicateTransmission => "Duplicate transmission",
            ResponseCode::SystemMalfunction => "System malfunction",
        }
    }

    /// Parses field 39. Not 2 alphanumeric characters is [`DomainError::ResponseCodeFormat`];
    /// a well-formed code outside [`ResponseCode::ALL`] (e.g. a scheme's `N7`) is
    /// [`DomainError::ResponseCodeUnknown`], so the issuer link can map it instead of
    /// treating the message as broken.
    pub fn from_field(field: &[u8]) -> Result<ResponseCode, DomainError> {
        if field.len() != 2 || !field.iter().all(u8::is_ascii_alphanumeric) {
            return Err(DomainError::ResponseCodeFormat);
        }
        ResponseCode::ALL
            .iter()
            .copied()
            .find(|rc| rc.code() == field)
            .ok_or(DomainError::ResponseCodeUnknown)
    }

    /// True for the codes that approve the transaction: 00, and 10 (partial approval).
    pub const fn is_approval(&self) -> bool {
        matches!(self, ResponseCode::Approved | ResponseCode::ApprovedPartial)
    }
}

/// Code and meaning, for logs and operators: `51 (Not sufficient funds)`. Encoders must use
/// [`ResponseCode::code`], not this.
impl fmt::Display for ResponseCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.as_str(), self.meaning())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mti_parts_and_digits() {
        let mti = Mti::from_digits(b"0100").unwrap();
        assert_eq!(mti, Mti::AUTH_REQUEST);
        assert_eq!(mti.value(), 100);
        assert_eq!(mti.to_digits(), *b"0100");
        assert_eq!(mti.to_string(), "0100");
        assert_eq!(format!("{mti:?}"), "Mti(0100)");
        assert_eq!(
            (mti.version(), mti.class(), mti.function(), mti.origin()),
            (0, 1, 0, 0)
        );
        let arr: [u8; 4] = *b"0810";
        assert_eq!(Mti::from_digits(&arr), Ok(Mti::NETWORK_RESPONSE));
        assert_eq!(Mti::from_digits(b"010"), Err(DomainError::MtiFormat));
        assert_eq!(Mti::from_digits(b"01000"), Err(DomainError::MtiFormat));
        assert_eq!(Mti::from_digits(b"01a0"), Err(DomainError::MtiFormat));
        assert_eq!(Mti::from_digits(b"1100").map(Mti::version), Ok(1));
    }

    #[test]
    fn mti_response_mapping() {
        let pairs = [
            (Mti::AUTH_REQUEST, Mti::AUTH_RESPONSE),
            (Mti::AUTH_ADVICE, Mti::AUTH_ADVICE_RESPONSE),
            (Mti::FINANCIAL_REQUEST, Mti::FINANCIAL_RESPONSE),
            (Mti::FINANCIAL_ADVICE, Mti::FINANCIAL_ADVICE_RESPONSE),
            (Mti::REVERSAL_REQUEST, Mti::REVERSAL_RESPONSE),
            (Mti::REVERSAL_ADVICE, Mti::REVERSAL_ADVICE_RESPONSE),
            (Mti::NETWORK_REQUEST, Mti::NETWORK_RESPONSE),
        ];
        for (request, response) in pairs {
            assert!(request.is_request() && !request.is_response(), "{request}");
            assert!(
                response.is_response() && !response.is_request(),
                "{response}"
            );
            assert_eq!(request.response(), Some(response), "{request}");
            assert_eq!(response.response(), None, "{response}");
            assert_eq!(request.class(), response.class());
        }
        assert!(Mti::REVERSAL_ADVICE.is_advice());
        assert!(!Mti::REVERSAL_REQUEST.is_advice());

        // Repeats are answered like their originals.
        let repeat = Mti::from_digits(b"0421").unwrap();
        assert!(repeat.is_repeat() && repeat.is_request());
        assert_eq!(repeat.response(), Some(Mti::REVERSAL_ADVICE_RESPONSE));
        assert_eq!(
            Mti::from_digits(b"0101").unwrap().response(),
            Some(Mti::AUTH_RESPONSE)
        );
        // Notifications (function 4) are neither requests nor responses.
        let notification = Mti::from_digits(b"0140").unwrap();
        assert!(!notification.is_request() && !notification.is_response());
        assert_eq!(notification.response(), None);
    }

    #[test]
    fn processing_code_round_trip() {
        for &txn in TxnType::ALL {
            assert_eq!(TxnType::from_code(txn.code()), Ok(txn));
            for &from in AccountType::ALL {
                for &to in AccountType::ALL {
                    let pc = ProcessingCode::new(txn, from, to);
                    let field = pc.to_field();
                    assert_eq!(ProcessingCode::from_field(&field), Ok(pc));
                    assert_eq!(pc.to_string().as_bytes(), field);
                }
            }
        }
        for &acct in AccountType::ALL {
            assert_eq!(AccountType::from_code(acct.code()), Ok(acct));
        }
    }

    #[test]
    fn processing_code_values() {
        let pc = ProcessingCode::from_field(b"312000").unwrap();
        assert_eq!(pc.txn, TxnType::BalanceInquiry);
        assert_eq!(pc.from, AccountType::Checking);
        assert_eq!(pc.to, AccountType::Default);
        assert_eq!(ProcessingCode::PURCHASE.to_field(), *b"000000");
        assert_eq!(
            ProcessingCode::new(
                TxnType::PurchaseWithCashback,
                AccountType::Credit,
                AccountType::Default
            )
            .to_field(),
            *b"093000"
        );
        assert_eq!(
            ProcessingCode::new(
                TxnType::Transfer,
                AccountType::Savings,
                AccountType::Universal
            )
            .to_field(),
            *b"401040"
        );
        assert_eq!(TxnType::Deposit.code(), 21);
        assert_eq!(TxnType::Refund.code(), 20);
        assert_eq!(TxnType::Cash.code(), 1);
    }

    #[test]
    fn processing_code_errors_are_distinct() {
        for unknown in [&b"990000"[..], b"006000", b"000099", b"020000"] {
            assert_eq!(
                ProcessingCode::from_field(unknown),
                Err(DomainError::ProcessingCodeUnknown)
            );
        }
        for malformed in [&b"00000"[..], b"0000000", b"00000A", b"", b" 00000"] {
            assert_eq!(
                ProcessingCode::from_field(malformed),
                Err(DomainError::ProcessingCodeFormat)
            );
        }
    }

    #[test]
    fn response_code_round_trip() {
        assert_eq!(ResponseCode::ALL.len(), 27);
        let mut previous = None;
        for &rc in ResponseCode::ALL {
            assert_eq!(ResponseCode::from_field(&rc.code()), Ok(rc));
            assert_eq!(rc.as_str().as_bytes(), rc.code());
            assert_eq!(rc.as_str().parse::<u8>(), Ok(rc.numeric()));
            assert!(!rc.meaning().is_empty());
            // Strictly increasing: sorted and free of duplicates.
            assert!(previous < Some(rc.numeric()), "{rc}");
            previous = Some(rc.numeric());
        }
    }

    #[test]
    fn response_code_values() {
        assert_eq!(ResponseCode::InsufficientFunds.code(), *b"51");
        assert_eq!(ResponseCode::InsufficientFunds as u8, 51);
        assert_eq!(ResponseCode::Approved.as_str(), "00");
        assert_eq!(
            ResponseCode::InsufficientFunds.to_string(),
            "51 (Not sufficient funds)"
        );
        assert_eq!(
            ResponseCode::InvalidCardNumber.meaning(),
            "Invalid card number"
        );
        assert_eq!(ResponseCode::FormatError.code(), *b"30");
        assert_eq!(ResponseCode::InvalidTransaction.code(), *b"12");
        assert!(ResponseCode::Approved.is_approval());
        assert!(ResponseCode::ApprovedPartial.is_approval());
        let approvals = ResponseCode::ALL
            .iter()
            .filter(|rc| rc.is_approval())
            .count();
        assert_eq!(approvals, 2);
    }

    #[test]
    fn response_code_errors_are_distinct() {
        assert_eq!(
            ResponseCode::from_field(b"N7"),
            Err(DomainError::ResponseCodeUnknown)
        );
        assert_eq!(
            ResponseCode::from_field(b"99"),
            Err(DomainError::ResponseCodeUnknown)
        );
        assert_eq!(
            ResponseCode::from_field(b"5"),
            Err(DomainError::ResponseCodeFormat)
        );
        assert_eq!(
            ResponseCode::from_field(b"051"),
            Err(DomainError::ResponseCodeFormat)
        );
        assert_eq!(
            ResponseCode::from_field(b"5 "),
            Err(DomainError::ResponseCodeFormat)
        );
    }
}
