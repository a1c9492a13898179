//! [`Currency`] (ISO 4217) and [`Amount`] (an integer count of minor units in one currency).
//!
//! Owns the conversions between amounts and their two outside forms: the ISO 8583 `n 12` field
//! (fields 4, 5, 6, with the currency in fields 49-51) and human input such as `"12.34"` in
//! configuration and simulators. It leaves foreign exchange, fees and limits to the decision
//! layer, because those are policy, not representation.
//!
//! Why integers only: money must add up exactly, and the wire already counts minor units. Floats
//! never appear, not even for parsing, so `"0.1"` is exactly ten cents. Why the currency lives in
//! every amount: adding yen to euros is the classic silent bug; here it is an error.

use core::cmp::Ordering;
use core::fmt;
use core::str::FromStr;

use super::ascii;
use super::error::DomainError;

/// An ISO 4217 currency the switch supports, with its numeric code and minor-unit exponent.
///
/// Closed set on purpose: an unknown currency in field 49 is refused at the edge instead of being
/// carried around with a guessed exponent.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct Currency {
    numeric: u16,
    exponent: u8,
    alpha: &'static str,
}

impl Currency {
    /// Chinese yuan renminbi.
    pub const CNY: Currency = Currency::known(156, 2, "CNY");
    /// US dollar.
    pub const USD: Currency = Currency::known(840, 2, "USD");
    /// Euro.
    pub const EUR: Currency = Currency::known(978, 2, "EUR");
    /// Japanese yen (no minor unit).
    pub const JPY: Currency = Currency::known(392, 0, "JPY");
    /// Pound sterling.
    pub const GBP: Currency = Currency::known(826, 2, "GBP");
    /// Hong Kong dollar.
    pub const HKD: Currency = Currency::known(344, 2, "HKD");
    /// Singapore dollar.
    pub const SGD: Currency = Currency::known(702, 2, "SGD");
    /// Swiss franc.
    pub const CHF: Currency = Currency::known(756, 2, "CHF");
    /// South Korean won (no minor unit).
    pub const KRW: Currency = Currency::known(410, 0, "KRW");

    /// Every supported currency.
    pub const ALL: &'static [Currency] = &[
        Currency::CNY,
        Currency::USD,
        Currency::EUR,
        Currency::JPY,
        Currency::GBP,
        Currency::HKD,
        Currency::SGD,
        Currency::CHF,
        Currency::KRW,
    ];

    const fn known(numeric: u16, exponent: u8, alpha: &'static str) -> Currency {
        Currency {
            numeric,
            exponent,
            alpha,
        }
    }

    /// The ISO 4217 numeric code, e.g. 156 for CNY.
    pub const fn numeric(self) -> u16 {
        self.numeric
    }

    /// The number of decimals of the minor unit: 2 for CNY (fen), 0 for JPY.
    pub const fn exponent(self) -> u8 {
        self.exponent
    }

    /// The ISO 4217 alphabetic code, e.g. `"CNY"`.
    pub const fn alpha(self) -> &'static str {
        self.alpha
    }

    /// Looks a currency up by its ISO 4217 numeric code.
    pub fn from_numeric(numeric: u16) -> Result<Currency, DomainError> {
        Currency::ALL
            .iter()
            .copied()
            .find(|c| c.numeric == numeric)
            .ok_or(DomainError::CurrencyUnknown)
    }

    /// Looks a currency up by its ISO 4217 alphabetic code (upper case), for configuration.
    pub fn from_alpha(alpha: &str) -> Result<Currency, DomainError> {
        if alpha.len() != 3 || !alpha.bytes().all(|b| b.is_ascii_uppercase()) {
            return Err(DomainError::CurrencyFormat);
        }
        Currency::ALL
            .iter()
            .copied()
            .find(|c| c.alpha == alpha)
            .ok_or(DomainError::CurrencyUnknown)
    }

    /// Parses an ISO 8583 currency field (49, 50, 51): exactly 3 ASCII digits.
    pub fn from_field(field: &[u8]) -> Result<Currency, DomainError> {
        if field.len() != 3 {
            return Err(DomainError::CurrencyFormat);
        }
        let numeric = ascii::digits_value(field).ok_or(DomainError::CurrencyFormat)?;
        // Three digits are at most 999, so the narrowing is lossless.
        Currency::from_numeric(numeric as u16)
    }

    /// The 3-digit field form, e.g. `*b"156"`.
    pub fn to_field(self) -> [u8; 3] {
        ascii::fixed_digits(u64::from(self.numeric))
    }

    /// `10^exponent`: how many minor units make one major unit.
    const fn minor_per_major(self) -> u64 {
        10u64.pow(self.exponent as u32)
    }
}

/// Shows the alphabetic code, e.g. `CNY`.
impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.alpha)
    }
}

/// Parses the alphabetic code, as [`Currency::from_alpha`].
impl FromStr for Currency {
    type Err = DomainError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Currency::from_alpha(s)
    }
}

/// A signed amount of money: an integer number of minor units in one currency.
///
/// Signed because reversals, refunds and balances go negative; the wire field is unsigned, so
/// [`Amount::to_field`] refuses negatives. Deliberately not `PartialOrd`: ordering amounts in
/// different currencies has no meaning, so comparison goes through [`Amount::checked_cmp`].
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct Amount {
    minor: i64,
    currency: Currency,
}

/// Largest value of an ISO `n 12` amount field.
const FIELD_MAX: i64 = 999_999_999_999;

impl Amount {
    /// An amount of `minor` minor units (fen, cents, yen) of `currency`.
    pub const fn new(minor: i64, currency: Currency) -> Amount {
        Amount { minor, currency }
    }

    /// Zero in `currency`.
    pub const fn zero(currency: Currency) -> Amount {
        Amount::new(0, currency)
    }

    /// The amount in minor units.
    pub const fn minor(self) -> i64 {
        self.minor
    }

    /// The currency.
    pub const fn currency(self) -> Currency {
        self.currency
    }

    /// True for exactly zero.
    pub const fn is_zero(self) -> bool {
        self.minor == 0
    }

    /// True below zero.
    pub const fn is_negative(self) -> bool {
        self.minor < 0
    }

    /// `self + other`; errors on a currency mismatch or `i64` overflow.
    pub fn checked_add(self, other: Amount) -> Result<Amount, DomainError> {
        self.same_currency(other)?;
        let minor = self
            .minor
            .checked_add(other.minor)
            .ok_or(DomainError::AmountOverflow)?;
        Ok(Amount::new(minor, self.currency))
    }

    /// `self - other`; errors on a currency mismatch or `i64` overflow.
    pub fn checked_sub(self, other: Amount) -> Result<Amount, DomainError> {
        self.same_currency(other)?;
        let minor = self
            .minor
            .checked_sub(other.minor)
            .ok_or(DomainError::AmountOverflow)?;
        Ok(Amount::new(minor, self.currency))
    }

    /// `-self`; errors only for `i64::MIN`, which has no positive counterpart.
    pub fn checked_neg(self) -> Result<Amount, DomainError> {
        let minor = self
            .minor
            .checked_neg()
            .ok_or(DomainError::AmountOverflow)?;
        Ok(Amount::new(minor, self.currency))
    }

    /// Orders two amounts of the same currency (e.g. against a limit); errors on a mismatch.
    pub fn checked_cmp(self, other: Amount) -> Result<Ordering, DomainError> {
        self.same_currency(other)?;
        Ok(self.minor.cmp(&other.minor))
    }

    fn same_currency(self, other: Amount) -> Result<(), DomainError> {
        if self.currency == other.currency {
            Ok(())
        } else {
            Err(DomainError::CurrencyMismatch)
        }
    }

    /// Parses an ISO 8583 amount field (`n 12`, minor units, no sign), e.g. `b"000000001234"`.
    ///
    /// The currency comes from a different field (49-51), hence the argument.
    pub fn from_field(field: &[u8], currency: Currency) -> Result<Amount, DomainError> {
        if field.len() != 12 {
            return Err(DomainError::AmountFormat);
        }
        let minor = ascii::digits_value(field).ok_or(DomainError::AmountFormat)?;
        // Twelve digits are below 10^12, far inside i64.
        Ok(Amount::new(minor as i64, currency))
    }

    /// The 12-digit field form; errors if negative or above 999 999 999 999 minor units.
    pub fn to_field(self) -> Result<[u8; 12], DomainError> {
        if self.minor < 0 {
            return Err(DomainError::AmountNegative);
        }
        if self.minor > FIELD_MAX {
            return Err(DomainError::AmountOverflow);
        }
        Ok(ascii::fixed_digits(self.minor.unsigned_abs()))
    }

    /// Parses a human amount in major units: `"12.34"`, `"12"`, `"0.5"`, `"-3.10"`.
    ///
    /// Strict on purpose, since the input comes from configuration and test scripts where a typo
    /// should fail loudly: an optional leading `-`, at least one integer digit, and if a `.` is
    /// present at least one and at most [`Currency::exponent`] decimals. So `"100"` is valid JPY
    /// and `"100.0"` is not; `".5"`, `"5."`, `"+5"`, `"1,000"` and whitespace are refused.
    pub fn parse_major(text: &str, currency: Currency) -> Result<Amount, DomainError> {
        let (negative, unsigned) = match text.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, text),
        };
        let (int_part, frac_part) = match unsigned.split_once('.') {
            Some((int_part, frac_part)) => {
                if frac_part.is_empty() {
                    return Err(DomainError::AmountFormat);
                }
                (int_part, frac_part)
            }
            None => (unsigned, ""),
        };
        if !ascii::all_digits(int_part.as_bytes()) || !frac_part.bytes().all(|b| b.is_ascii_digit())
        {
            return Err(DomainError::AmountFormat);
        }
        let exponent = currency.exponent();
        if frac_part.len() > usize::from(exponent) {
            return Err(DomainError::AmountTooManyDecimals { exponent });
        }

        let mut magnitude: u64 = 0;
        // Integer digits, then the decimals right-padded with zeros to the exponent: "0.5" in a
        // 2-decimal currency is the digit string "050".
        let padding = usize::from(exponent) - frac_part.len();
        let digits = int_part
            .bytes()
            .chain(frac_part.bytes())
            .chain(core::iter::repeat_n(b'0', padding));
        for b in digits {
            magnitude = magnitude
                .checked_mul(10)
                .and_then(|m| m.checked_add(u64::from(b - b'0')))
                .ok_or(DomainError::AmountOverflow)?;
        }

        let minor = if negative {
            0i64.checked_sub_unsigned(magnitude)
        } else {
            i64::try_from(magnitude).ok()
        }
        .ok_or(DomainError::AmountOverflow)?;
        Ok(Amount::new(minor, currency))
    }
}

/// Shows major units with exactly the currency's decimals and its alpha code: `12.34 CNY`,
/// `-0.05 USD`, `100 JPY`.
impl fmt::Display for Amount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.minor < 0 { "-" } else { "" };
        // unsigned_abs, not abs: i64::MIN must print rather than overflow.
        let magnitude = self.minor.unsigned_abs();
        let exponent = usize::from(self.currency.exponent());
        let per_major = self.currency.minor_per_major();
        let alpha = self.currency.alpha();
        if exponent == 0 {
            write!(f, "{sign}{magnitude} {alpha}")
        } else {
            let major = magnitude / per_major;
            let minor = magnitude % per_major;
            write!(f, "{sign}{major}.{minor:0exponent$} {alpha}")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn currency_lookup() {
        assert_eq!(Currency::from_numeric(156), Ok(Currency::CNY));
        assert_eq!(Currency::from_numeric(392).map(Currency::exponent), Ok(0));
        assert_eq!(Currency::from_numeric(410), Ok(Currency::KRW));
        assert_eq!(Currency::from_numeric(4), Err(DomainError::CurrencyUnknown));
        assert_eq!(Currency::from_field(b"840"), Ok(Currency::USD));
        assert_eq!(
            Currency::from_field(b"999"),
            Err(DomainError::CurrencyUnknown)
        );
        assert_eq!(
            Currency::from_field(b"84"),
            Err(DomainError::CurrencyFormat)
        );
        assert_eq!(
            Currency::from_field(b"8 0"),
            Err(DomainError::CurrencyFormat)
        );
        assert_eq!(Currency::from_alpha("EUR"), Ok(Currency::EUR));
        assert_eq!("GBP".parse::<Currency>(), Ok(Currency::GBP));
        assert_eq!(
            Currency::from_alpha("eur"),
            Err(DomainError::CurrencyFormat)
        );
        assert_eq!(
            Currency::from_alpha("XXX"),
            Err(DomainError::CurrencyUnknown)
        );
        for &c in Currency::ALL {
            assert_eq!(Currency::from_field(&c.to_field()), Ok(c));
            assert_eq!(Currency::from_alpha(c.alpha()), Ok(c));
        }
        assert_eq!(Currency::HKD.to_field(), *b"344");
        assert_eq!(Currency::SGD.numeric(), 702);
        assert_eq!(Currency::CHF.numeric(), 756);
        assert_eq!(Currency::CNY.to_string(), "CNY");
    }

    #[test]
    fn field_parse_and_format() {
        let a = Amount::from_field(b"000000001234", Currency::CNY).unwrap();
        assert_eq!(a.minor(), 1234);
        assert_eq!(a.currency(), Currency::CNY);
        assert_eq!(a.to_field(), Ok(*b"000000001234"));
        assert_eq!(
            Amount::from_field(b"999999999999", Currency::USD).map(Amount::minor),
            Ok(FIELD_MAX)
        );
        assert_eq!(
            Amount::from_field(b"00000000123", Currency::CNY),
            Err(DomainError::AmountFormat)
        );
        assert_eq!(
            Amount::from_field(b"-00000001234", Currency::CNY),
            Err(DomainError::AmountFormat)
        );
        assert_eq!(
            Amount::from_field(b"00000000123 ", Currency::CNY),
            Err(DomainError::AmountFormat)
        );
        assert_eq!(
            Amount::new(-1, Currency::CNY).to_field(),
            Err(DomainError::AmountNegative)
        );
        assert_eq!(
            Amount::new(FIELD_MAX + 1, Currency::CNY).to_field(),
            Err(DomainError::AmountOverflow)
        );
        assert_eq!(Amount::zero(Currency::JPY).to_field(), Ok(*b"000000000000"));
    }

    #[test]
    fn parse_major_honours_exponent() {
        let p = |s, c| Amount::parse_major(s, c).map(Amount::minor);
        assert_eq!(p("12.34", Currency::CNY), Ok(1234));
        assert_eq!(p("12", Currency::CNY), Ok(1200));
        assert_eq!(p("0.5", Currency::CNY), Ok(50));
        assert_eq!(p("0.05", Currency::USD), Ok(5));
        assert_eq!(p("-3.10", Currency::EUR), Ok(-310));
        assert_eq!(p("100", Currency::JPY), Ok(100));
        assert_eq!(p("0", Currency::KRW), Ok(0));
        assert_eq!(
            p("100.0", Currency::JPY),
            Err(DomainError::AmountTooManyDecimals { exponent: 0 })
        );
        assert_eq!(
            p("1.234", Currency::CNY),
            Err(DomainError::AmountTooManyDecimals { exponent: 2 })
        );
        for bad in [
            "", "-", ".", ".5", "5.", "+5", "1,000", " 1", "1 ", "1.2.3", "--1", "1e3", "١",
        ] {
            assert_eq!(
                p(bad, Currency::CNY),
                Err(DomainError::AmountFormat),
                "{bad:?}"
            );
        }
        assert_eq!(
            p("92233720368547758.07", Currency::CNY),
            Ok(i64::MAX),
            "the largest representable amount parses"
        );
        assert_eq!(
            p("92233720368547758.08", Currency::CNY),
            Err(DomainError::AmountOverflow)
        );
        assert_eq!(p("-92233720368547758.08", Currency::CNY), Ok(i64::MIN));
        assert_eq!(
            p("99999999999999999999999", Currency::JPY),
            Err(DomainError::AmountOverflow)
        );
    }

    #[test]
    fn display() {
        assert_eq!(Amount::new(1234, Currency::CNY).to_string(), "12.34 CNY");
        assert_eq!(Amount::new(5, Currency::USD).to_string(), "0.05 USD");
        assert_eq!(Amount::new(-310, Currency::EUR).to_string(), "-3.10 EUR");
        assert_eq!(Amount::new(100, Currency::JPY).to_string(), "100 JPY");
        assert_eq!(Amount::zero(Currency::GBP).to_string(), "0.00 GBP");
        assert_eq!(
            Amount::new(i64::MIN, Currency::CNY).to_string(),
            "-92233720368547758.08 CNY"
        );
    }

    #[test]
    fn arithmetic() {
        let a = Amount::new(1000, Currency::CNY);
        let b = Amount::new(250, Currency::CNY);
        assert_eq!(a.checked_add(b), Ok(Amount::new(1250, Currency::CNY)));
        assert_eq!(b.checked_sub(a), Ok(Amount::new(-750, Currency::CNY)));
        assert!(b.checked_sub(a).unwrap().is_negative());
        assert!(a.checked_sub(a).unwrap().is_zero());
        assert_eq!(a.checked_cmp(b), Ok(Ordering::Greater));
        assert_eq!(a.checked_neg(), Ok(Amount::new(-1000, Currency::CNY)));

        let usd = Amount::new(1, Currency::USD);
        assert_eq!(a.checked_add(usd), Err(DomainError::CurrencyMismatch));
        assert_eq!(a.checked_sub(usd), Err(DomainError::CurrencyMismatch));
        assert_eq!(a.checked_cmp(usd), Err(DomainError::CurrencyMismatch));

        let max = Amount::new(i64::MAX, Currency::CNY);
        let one = Amount::new(1, Currency::CNY);
        assert_eq!(max.checked_add(one), Err(DomainError::AmountOverflow));
        let min = Amount::new(i64::MIN, Currency::CNY);
        assert_eq!(min.checked_sub(one), Err(DomainError::AmountOverflow));
        assert_eq!(min.checked_neg(), Err(DomainError::AmountOverflow));
    }

    fn any_currency() -> impl Strategy<Value = Currency> {
        proptest::sample::select(Currency::ALL)
    }

    proptest! {
        #[test]
        fn field_round_trip(minor in 0..=FIELD_MAX, currency in any_currency()) {
            let amount = Amount::new(minor, currency);
            let field = amount.to_field().unwrap();
            prop_assert!(field.iter().all(u8::is_ascii_digit));
            prop_assert_eq!(Amount::from_field(&field, currency), Ok(amount));
        }

        #[test]
        fn field_parse_round_trip(field in "[0-9]{12}", currency in any_currency()) {
            let amount = Amount::from_field(field.as_bytes(), currency).unwrap();
            prop_assert_eq!(amount.to_field(), Ok(<[u8; 12]>::try_from(field.as_bytes()).unwrap()));
        }

        #[test]
        fn display_parse_round_trip(minor in any::<i64>(), currency in any_currency()) {
            let amount = Amount::new(minor, currency);
            let shown = amount.to_string();
            let number = shown.strip_suffix(currency.alpha()).unwrap().trim_end();
            prop_assert_eq!(Amount::parse_major(number, currency), Ok(amount));
        }
    }
}
