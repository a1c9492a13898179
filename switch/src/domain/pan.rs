//! [`Pan`] (primary account number, ISO 8583 field 2) and [`Bin`] (the issuer prefix routing
//! keys on), plus the Luhn helpers.
//!
//! Owns what a card number *is*: 12-19 digits with a valid Luhn check digit, and how it may be
//! shown. It leaves "which issuer owns this BIN" to routing and "is this card blocked" to the
//! issuing engine, since those are tables, not properties of the number.
//!
//! Why the masking lives here: a PAN is the one value that must never reach a log in clear (PCI
//! DSS allows at most the first six and last four digits). Making `Display` and `Debug` mask, and
//! naming the clear accessors `expose_*`, means that a stray `{pan}` or `{msg:?}` is safe by
//! default and every clear use is greppable. Why inline storage: a `Pan` is built on the hot path
//! of every authorization, so it is `Copy` and never allocates.

use core::cmp::Ordering;
use core::fmt;
use core::hash::{Hash, Hasher};
use core::str::FromStr;

use super::ascii;
use super::error::DomainError;

const PAN_MIN: usize = 12;
const PAN_MAX: usize = 19;
const BIN_MIN: usize = 6;
const BIN_MAX: usize = 11;
/// Digits PCI DSS allows in clear at each end of a masked PAN.
const SHOWN_HEAD: usize = 6;
const SHOWN_TAIL: usize = 4;

/// True when `digits` is a non-empty all-digit string whose last digit is its Luhn check digit.
///
/// Returns `false` (never panics) for empty input or any non-digit byte.
pub fn luhn_valid(digits: &[u8]) -> bool {
    ascii::all_digits(digits) && luhn_sum(digits, false).is_multiple_of(10)
}

/// The Luhn check digit, as an ASCII byte `b'0'..=b'9'`, to append to `payload` (the digits
/// without their check digit). Returning ASCII lets a generator push it straight onto the
/// payload: `[payload, &[luhn_check_digit(payload)]].concat()` is then [`luhn_valid`].
///
/// `payload` must be ASCII digits; other bytes give a meaningless digit rather than a panic.
pub fn luhn_check_digit(payload: &[u8]) -> u8 {
    // The check digit will sit to the right of the payload, so the payload's last digit is the
    // first one to be doubled.
    let sum = luhn_sum(payload, true);
    // `sum % 10` is below 10, so the narrowing cannot lose anything.
    b'0' + ((10 - sum % 10) % 10) as u8
}

/// Luhn sum of `digits` walked from the right, doubling every second digit starting with the
/// rightmost one when `double_first` is set.
fn luhn_sum(digits: &[u8], double_first: bool) -> u32 {
    let mut double = double_first;
    let mut sum = 0u32;
    for &b in digits.iter().rev() {
        // Wrapping + modulo keeps stray non-digits from panicking in `luhn_check_digit`.
        let d = u32::from(b.wrapping_sub(b'0') % 10);
        sum += if double {
            let x = d * 2;
            if x > 9 { x - 9 } else { x }
        } else {
            d
        };
        double = !double;
    }
    sum
}

/// A primary account number: 12-19 ASCII digits whose Luhn check passed at construction.
///
/// `Display` and `Debug` mask the middle (`411111******0013`); use [`Pan::expose_digits`] or
/// [`Pan::expose_str`] where the clear number is genuinely needed (encoding field 2, issuer
/// lookups).
#[derive(Clone, Copy)]
pub struct Pan {
    /// Digits in `digits[..len]`; the tail is zero so that no stale digits linger.
    digits: [u8; PAN_MAX],
    len: u8,
}

impl Pan {
    /// Validates `digits` (e.g. the content of field 2) and builds a `Pan`.
    ///
    /// The errors are distinct because the answers are: length and non-digit problems are
    /// format errors (30), a Luhn failure is an invalid card number (14).
    pub fn parse(digits: &[u8]) -> Result<Pan, DomainError> {
        let len = digits.len();
        if !(PAN_MIN..=PAN_MAX).contains(&len) {
            return Err(DomainError::PanLength { len });
        }
        if !ascii::all_digits(digits) {
            return Err(DomainError::PanNonDigit);
        }
        if !luhn_valid(digits) {
            return Err(DomainError::PanLuhn);
        }
        let mut buf = [0u8; PAN_MAX];
        buf[..len].copy_from_slice(digits);
        Ok(Pan {
            digits: buf,
            // At most 19, checked above.
            len: len as u8,
        })
    }

    /// The clear digits. Named `expose_` so that every clear use of card data is deliberate
    /// and easy to audit.
    pub fn expose_digits(&self) -> &[u8] {
        &self.digits[..usize::from(self.len)]
    }

    /// The clear digits as text; see [`Pan::expose_digits`].
    pub fn expose_str(&self) -> &str {
        ascii::as_str(self.expose_digits())
    }

    /// The 6-digit BIN (issuer identification number) for routing.
    pub fn bin(&self) -> Bin {
        let mut digits = [0u8; BIN_MAX];
        digits[..BIN_MIN].copy_from_slice(&self.digits[..BIN_MIN]);
        Bin {
            digits,
            len: BIN_MIN as u8,
        }
    }

    /// The first `n` digits, or all of them if `n` is longer than the PAN (routing tables may
    /// carry prefixes of any length, and asking for too many is not a reason to panic).
    pub fn prefix(&self, n: usize) -> &[u8] {
        let digits = self.expose_digits();
        &digits[..n.min(digits.len())]
    }

    /// The last four digits, which may be shown (receipts, logs).
    pub fn last4(&self) -> &[u8] {
        let digits = self.expose_digits();
        &digits[digits.len() - SHOWN_TAIL..]
    }

    /// Number of digits, 12-19.
    #[expect(clippy::len_without_is_empty, reason = "a Pan has at least 12 digits")]
    pub fn len(&self) -> usize {
        usize::from(self.len)
    }

    /// The masked form, first six and last four in clear: `411111******0013`. What `Display`
    /// prints, without going through a formatter: journal records take it on every request.
    pub fn masked(&self) -> MaskedPan {
        let len = self.len();
        let mut out = [b'*'; PAN_MAX];
        out[..SHOWN_HEAD].copy_from_slice(&self.digits[..SHOWN_HEAD]);
        out[len - SHOWN_TAIL..len].copy_from_slice(&self.digits[len - SHOWN_TAIL..len]);
        MaskedPan {
            digits: out,
            len: self.len,
        }
    }
}

/// A PAN's masked form ([`Pan::masked`]), held on the stack.
#[derive(Clone, Copy)]
pub struct MaskedPan {
    digits: [u8; PAN_MAX],
    len: u8,
}

impl MaskedPan {
    pub fn as_str(&self) -> &str {
        ascii::as_str(&self.digits[..usize::from(self.len)])
    }
}

// Equality, ordering and hashing look only at the digits in use. The padding is always zero, so
// derives would agree today, but spelling it out keeps them right if the storage changes.
impl PartialEq for Pan {
    fn eq(&self, other: &Self) -> bool {
        self.expose_digits() == other.expose_digits()
    }
}

impl Eq for Pan {}

impl Hash for Pan {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.expose_digits().hash(state);
    }
}

/// Masked: first six and last four digits, the middle replaced by `*`. Honours width/alignment.
impl fmt::Display for Pan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.masked().as_str())
    }
}

/// Masked like `Display`: `Pan(411111******0013)`, so `{:?}` of any message is log-safe.
impl fmt::Debug for Pan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Pan({})", self.masked().as_str())
    }
}

/// Parses like [`Pan::parse`]; convenient for configuration and tests.
impl FromStr for Pan {
    type Err = DomainError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Pan::parse(s.as_bytes())
    }
}

/// A bank identification number: the leading 6-11 digits of a PAN that identify its issuer.
///
/// Not secret (it is printed on receipts and published in BIN tables), so it displays in clear.
/// Ordered lexicographically by digits, like routing tables.
#[derive(Clone, Copy)]
pub struct Bin {
    digits: [u8; BIN_MAX],
    len: u8,
}

impl Bin {
    /// Validates 6-11 ASCII digits.
    pub fn parse(digits: &[u8]) -> Result<Bin, DomainError> {
        let len = digits.len();
        if !(BIN_MIN..=BIN_MAX).contains(&len) {
            return Err(DomainError::BinLength { len });
        }
        if !ascii::all_digits(digits) {
            return Err(DomainError::BinNonDigit);
        }
        let mut buf = [0u8; BIN_MAX];
        buf[..len].copy_from_slice(digits);
        Ok(Bin {
            digits: buf,
            // At most 11, checked above.
            len: len as u8,
        })
    }

    /// The digits.
    pub fn as_bytes(&self) -> &[u8] {
        &self.digits[..usize::from(self.len)]
    }

    /// The digits as text.
    pub fn as_str(&self) -> &str {
        ascii::as_str(self.as_bytes())
    }

    /// Number of digits, 6-11.
    #[expect(clippy::len_without_is_empty, reason = "a Bin has at least 6 digits")]
    pub fn len(&self) -> usize {
        usize::from(self.len)
    }

    /// True when `pan` starts with this BIN.
    pub fn matches(&self, pan: &Pan) -> bool {
        pan.expose_digits().starts_with(self.as_bytes())
    }
}

impl PartialEq for Bin {
    fn eq(&self, other: &Self) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl Eq for Bin {}

impl Hash for Bin {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_bytes().hash(state);
    }
}

impl PartialOrd for Bin {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Bin {
    fn cmp(&self, other: &Self) -> Ordering {
        self.as_bytes().cmp(other.as_bytes())
    }
}

impl fmt::Display for Bin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

impl fmt::Debug for Bin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Bin({})", self.as_str())
    }
}

/// Parses like [`Bin::parse`], for routing configuration.
impl FromStr for Bin {
    type Err = DomainError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Bin::parse(s.as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const TEST_CARDS: &[&str] = &[
        "4111110000000013",
        "4111110000000021",
        "4111110000000039",
        "4111110000000047",
        "6222020000000015",
        "6222020000000023",
        "6222020000000031",
        "6050010000000013",
        "6050010000000021",
        "9999990000000014",
    ];

    #[test]
    fn luhn_vectors() {
        assert!(luhn_valid(b"79927398713"));
        assert!(!luhn_valid(b"79927398710"));
        assert!(luhn_valid(b"4111111111111111"));
        assert!(luhn_valid(b"5555555555554444"));
        assert!(luhn_valid(b"378282246310005"));
        assert!(!luhn_valid(b"4111111111111112"));
        assert!(!luhn_valid(b""));
        assert!(!luhn_valid(b"7992739871a"));
        for card in TEST_CARDS {
            assert!(luhn_valid(card.as_bytes()), "{card}");
        }
    }

    #[test]
    fn check_digit_completes_test_cards() {
        assert_eq!(luhn_check_digit(b"7992739871"), b'3');
        for card in TEST_CARDS {
            let (payload, check) = card.as_bytes().split_at(card.len() - 1);
            assert_eq!(luhn_check_digit(payload), check[0], "{card}");
        }
        // Garbage in must not panic.
        let _ = luhn_check_digit(b"\xff\x00abc");
        let _ = luhn_check_digit(b"");
    }

    #[test]
    fn parse_errors_are_distinct() {
        assert_eq!(
            Pan::parse(b"41111100000013"[..11].as_ref()),
            Err(DomainError::PanLength { len: 11 })
        );
        assert_eq!(
            Pan::parse(b"41111100000000000013"),
            Err(DomainError::PanLength { len: 20 })
        );
        assert_eq!(Pan::parse(b""), Err(DomainError::PanLength { len: 0 }));
        assert_eq!(
            Pan::parse(b"411111000000001X"),
            Err(DomainError::PanNonDigit)
        );
        assert_eq!(
            Pan::parse(b"4111 1100 0000 0013"),
            Err(DomainError::PanNonDigit)
        );
        assert_eq!(Pan::parse(b"4111110000000014"), Err(DomainError::PanLuhn));
        for card in TEST_CARDS {
            assert!(Pan::parse(card.as_bytes()).is_ok(), "{card}");
        }
    }

    #[test]
    fn accessors() {
        let pan = Pan::parse(b"4111110000000013").unwrap();
        assert_eq!(pan.len(), 16);
        assert_eq!(pan.expose_digits(), b"4111110000000013");
        assert_eq!(pan.expose_str(), "4111110000000013");
        assert_eq!(pan.bin().as_str(), "411111");
        assert_eq!(pan.bin().len(), 6);
        assert_eq!(pan.prefix(8), b"41111100");
        assert_eq!(pan.prefix(0), b"");
        assert_eq!(pan.prefix(99), b"4111110000000013");
        assert_eq!(pan.last4(), b"0013");
        assert_eq!("4111110000000013".parse::<Pan>(), Ok(pan));
        assert_ne!(pan, Pan::parse(b"4111110000000021").unwrap());
        let short = Pan::parse(b"79927398713").err();
        assert_eq!(short, Some(DomainError::PanLength { len: 11 }));
        let twelve = Pan::parse(b"411111000005").unwrap();
        assert_eq!(twelve.len(), 12);
    }

    #[test]
    fn display_and_debug_mask_the_middle() {
        let pan = Pan::parse(b"4111110000000013").unwrap();
        assert_eq!(pan.to_string(), "411111******0013");
        assert_eq!(format!("{pan:?}"), "Pan(411111******0013)");
        assert_eq!(format!("{pan:>20}"), "    411111******0013");
        assert_eq!(format!("{:?}", Some(pan)), "Some(Pan(411111******0013))");

        let twelve = Pan::parse(b"411111000005").unwrap();
        assert_eq!(twelve.to_string(), "411111**0005");
        let nineteen = Pan::parse(b"6222021234567890128").unwrap();
        assert_eq!(nineteen.to_string(), "622202*********0128");
        assert_eq!(nineteen.masked().as_str(), "622202*********0128");
    }

    #[test]
    fn errors_never_carry_digits() {
        for input in [
            &b"4111110000000014"[..],
            b"411111000000001X",
            b"41111100000000000013",
        ] {
            let err = Pan::parse(input).unwrap_err();
            let shown = format!("{err} {err:?}");
            assert!(!shown.contains("411111"), "{shown}");
            assert!(!shown.contains("0013"), "{shown}");
        }
    }

    #[test]
    fn bin() {
        let bin = Bin::parse(b"622202").unwrap();
        assert_eq!(bin.as_str(), "622202");
        assert_eq!(bin.to_string(), "622202");
        assert_eq!(format!("{bin:?}"), "Bin(622202)");
        assert!(bin.matches(&Pan::parse(b"6222020000000015").unwrap()));
        assert!(!bin.matches(&Pan::parse(b"6050010000000013").unwrap()));
        assert_eq!(Bin::parse(b"62220200000").map(|b| b.len()), Ok(11));
        assert_eq!(Bin::parse(b"62220"), Err(DomainError::BinLength { len: 5 }));
        assert_eq!(
            Bin::parse(b"622202000000"),
            Err(DomainError::BinLength { len: 12 })
        );
        assert_eq!(Bin::parse(b"62220a"), Err(DomainError::BinNonDigit));
        assert!(Bin::parse(b"411111").unwrap() < Bin::parse(b"4111110").unwrap());
        assert!(Bin::parse(b"4111110").unwrap() < Bin::parse(b"411112").unwrap());
        assert_eq!("605001".parse::<Bin>(), Bin::parse(b"605001"));
    }

    proptest! {
        #[test]
        fn generated_cards_parse_and_mask(payload in "[0-9]{11,18}") {
            let mut digits = payload.into_bytes();
            digits.push(luhn_check_digit(&digits));
            let pan = Pan::parse(&digits).unwrap();
            prop_assert_eq!(pan.expose_digits(), &digits[..]);

            // Exactly head, stars, tail: no middle digit can survive any formatting path.
            let clear = pan.expose_str();
            let masked = format!(
                "{}{}{}",
                &clear[..6],
                "*".repeat(clear.len() - 10),
                &clear[clear.len() - 4..]
            );
            prop_assert_eq!(pan.to_string(), masked.clone());
            let shown = pan.masked();
            prop_assert_eq!(shown.as_str(), masked.as_str());
            prop_assert_eq!(format!("{pan:?}"), format!("Pan({masked})"));
            #[derive(Debug)]
            #[allow(dead_code, reason = "only read through Debug")]
            struct Request {
                pan: Pan,
            }
            prop_assert_eq!(
                format!("{:?}", Request { pan }),
                format!("Request {{ pan: Pan({masked}) }}")
            );

            // Changing the check digit must break Luhn.
            let last = digits.len() - 1;
            digits[last] = b'0' + (digits[last] - b'0' + 1) % 10;
            prop_assert_eq!(Pan::parse(&digits), Err(DomainError::PanLuhn));
        }
    }
}
