//! Message and party identifiers: [`Stan`] (field 11), [`Rrn`] (37), [`AuthCode`] (38),
//! [`TerminalId`] (41), [`MerchantId`] (42) and [`AcquirerId`] (32).
//!
//! Owns the length and character-set rules of each identifier, so a value of one of these types
//! is known to be encodable back into its field unchanged. It leaves generating RRNs and
//! authorization codes, and matching originals to reversals, to the components that own those
//! sequences, since they need state (counters, clocks, journals) that a value type must not have.
//!
//! Why one type per identifier rather than `String`s: the switch keys duplicates and reversals on
//! tuples of them, and distinct types stop a terminal id from being compared with a merchant id.
//! All are stored inline and `Copy`, as they are built for every message on the hot path. None of
//! them is card data, so `Display` and `Debug` show them in clear.

use core::fmt;
use core::str::FromStr;

use super::ascii;
use super::error::DomainError;

/// System trace audit number (field 11): 000000-999999, assigned by the message's sender.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct Stan(u32);

impl Stan {
    /// Largest STAN the 6-digit field can carry.
    pub const MAX: u32 = 999_999;

    /// A STAN from its numeric value; errors above 999 999.
    pub const fn new(value: u32) -> Result<Stan, DomainError> {
        if value > Stan::MAX {
            Err(DomainError::StanRange)
        } else {
            Ok(Stan(value))
        }
    }

    /// Parses field 11: exactly 6 ASCII digits.
    pub fn from_field(field: &[u8]) -> Result<Stan, DomainError> {
        if field.len() != 6 {
            return Err(DomainError::StanFormat);
        }
        let value = ascii::digits_value(field).ok_or(DomainError::StanFormat)?;
        // Six digits are at most 999 999.
        Ok(Stan(value as u32))
    }

    /// The 6-digit field form, zero padded.
    pub fn to_field(self) -> [u8; 6] {
        ascii::fixed_digits(u64::from(self.0))
    }

    /// The numeric value.
    pub const fn value(self) -> u32 {
        self.0
    }

    /// The following STAN for a sender's own counter: 999999 wraps to 000001.
    ///
    /// 000000 is skipped because many hosts treat an all-zero STAN as "absent".
    pub const fn next(self) -> Stan {
        if self.0 >= Stan::MAX {
            Stan(1)
        } else {
            Stan(self.0 + 1)
        }
    }
}

/// Six digits, zero padded, as on the wire.
impl fmt::Display for Stan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:06}", self.0)
    }
}

/// Defines a fixed-length, inline, `Copy` identifier whose bytes all satisfy `$allowed`.
macro_rules! fixed_id {
    (
        $(#[$meta:meta])*
        $name:ident, $len:literal, $kind:literal, $charset:literal, $allowed:path
    ) => {
        $(#[$meta])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name([u8; $len]);

        impl $name {
            /// Length of the field in bytes.
            pub const LEN: usize = $len;

            #[doc = concat!("Parses the field: exactly ", stringify!($len), " bytes of ISO `",
                $charset, "`.")]
            pub fn from_field(field: &[u8]) -> Result<$name, DomainError> {
                let bytes: [u8; $len] = field.try_into().map_err(|_| DomainError::IdLength {
                    kind: $kind,
                    len: field.len(),
                    expected: stringify!($len),
                })?;
                if !bytes.iter().all(|&b| $allowed(b)) {
                    return Err(DomainError::IdCharset {
                        kind: $kind,
                        charset: $charset,
                    });
                }
                Ok($name(bytes))
            }

            /// The field bytes, padding included.
            pub const fn as_bytes(&self) -> &[u8] {
                &self.0
            }

            /// The field as text, padding included.
            pub fn as_str(&self) -> &str {
                ascii::as_str(&self.0)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.pad(self.as_str())
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!(stringify!($name), "({:?})"), self.as_str())
            }
        }

        /// Parses like `from_field`, for configuration and tests.
        impl FromStr for $name {
            type Err = DomainError;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                $name::from_field(s.as_bytes())
            }
        }
    };
}

fixed_id!(
    /// Retrieval reference number (field 37): 12 characters `an`, echoed unchanged in the
    /// response and used with the STAN to find the original of a reversal.
    Rrn, 12, "rrn", "an", ascii::is_an
);

fixed_id!(
    /// Authorization identification response (field 38): 6 characters `an`, the issuer's
    /// approval code. Space is allowed because short codes are space padded.
    AuthCode, 6, "auth code", "an", ascii::is_an
);

fixed_id!(
    /// Card acceptor terminal identification (field 41): 8 characters `ans`.
    TerminalId, 8, "terminal id", "ans", ascii::is_ans
);

fixed_id!(
    /// Card acceptor identification code (field 42): 15 characters `ans`, the merchant.
    MerchantId, 15, "merchant id", "ans", ascii::is_ans
);

const ACQUIRER_MAX: usize = 11;

/// Acquiring institution identification code (field 32): 1-11 digits, `LLVAR`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AcquirerId {
    /// Digits in `digits[..len]`, zero after, so the derives compare only real content
    /// (a shorter id orders first when it is a prefix, since 0 < b'0').
    digits: [u8; ACQUIRER_MAX],
    len: u8,
}

impl AcquirerId {
    /// Parses the field content (without its length prefix): 1-11 ASCII digits.
    pub fn from_field(field: &[u8]) -> Result<AcquirerId, DomainError> {
        let len = field.len();
        if !(1..=ACQUIRER_MAX).contains(&len) {
            return Err(DomainError::IdLength {
                kind: "acquirer id",
                len,
                expected: "1-11",
            });
        }
        if !ascii::all_digits(field) {
            return Err(DomainError::IdCharset {
                kind: "acquirer id",
                charset: "n",
            });
        }
        let mut digits = [0u8; ACQUIRER_MAX];
        digits[..len].copy_from_slice(field);
        Ok(AcquirerId {
            digits,
            // At most 11, checked above.
            len: len as u8,
        })
    }

    /// Parses an acquirer id from configuration text; same rules as [`AcquirerId::from_field`].
    pub fn parse(text: &str) -> Result<AcquirerId, DomainError> {
        AcquirerId::from_field(text.as_bytes())
    }

    /// The digits.
    pub fn as_bytes(&self) -> &[u8] {
        &self.digits[..usize::from(self.len)]
    }

    /// The digits as text.
    pub fn as_str(&self) -> &str {
        ascii::as_str(self.as_bytes())
    }

    /// The digits in the first [`AcquirerId::len`] bytes, zeros after: for a caller that copies
    /// all eleven bytes at once (a copy of a known size, no call) and then keeps `len` of them.
    pub(crate) fn padded(&self) -> &[u8; ACQUIRER_MAX] {
        &self.digits
    }

    /// Number of digits, 1-11.
    #[expect(
        clippy::len_without_is_empty,
        reason = "an AcquirerId has at least 1 digit"
    )]
    pub fn len(&self) -> usize {
        usize::from(self.len)
    }

    /// The id as one word: the digits' value times 16 plus their count. Distinct ids give
    /// distinct words (the count keeps leading zeros apart), and 11 digits times 16 stay below
    /// 2^41. For keys held by the million ([`crate::issuing::IdemKey`]): 8 bytes instead of 12.
    pub(crate) fn to_word(self) -> u64 {
        let value = self
            .as_bytes()
            .iter()
            .fold(0u64, |acc, &d| acc * 10 + u64::from(d - b'0'));
        value << 4 | u64::from(self.len)
    }

    /// The id whose [`AcquirerId::to_word`] is `word`. Total, so that it cannot fail inside a
    /// decision: any word gives some id (its count taken into 1–11, its value cut to that many
    /// digits), and the words `to_word` makes give back their id exactly.
    pub(crate) fn from_word(word: u64) -> AcquirerId {
        let len = (word & 0xF).clamp(1, ACQUIRER_MAX as u64) as usize;
        let mut value = word >> 4;
        let mut digits = [0u8; ACQUIRER_MAX];
        for slot in digits[..len].iter_mut().rev() {
            // `value % 10` is below 10, so the narrowing cannot lose anything.
            *slot = b'0' + (value % 10) as u8;
            value /= 10;
        }
        AcquirerId {
            digits,
            // At most 11, clamped above.
            len: len as u8,
        }
    }
}

impl fmt::Display for AcquirerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

impl fmt::Debug for AcquirerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AcquirerId({})", self.as_str())
    }
}

/// Parses like [`AcquirerId::parse`].
impl FromStr for AcquirerId {
    type Err = DomainError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        AcquirerId::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stan() {
        assert_eq!(Stan::new(999_999).map(Stan::value), Ok(999_999));
        assert_eq!(Stan::new(1_000_000), Err(DomainError::StanRange));
        assert_eq!(Stan::from_field(b"000123").map(Stan::value), Ok(123));
        assert_eq!(Stan::from_field(b"000000").map(Stan::value), Ok(0));
        assert_eq!(Stan::from_field(b"12345"), Err(DomainError::StanFormat));
        assert_eq!(Stan::from_field(b"1234567"), Err(DomainError::StanFormat));
        assert_eq!(Stan::from_field(b"12345a"), Err(DomainError::StanFormat));
        assert_eq!(Stan::new(42).unwrap().to_field(), *b"000042");
        assert_eq!(Stan::new(42).unwrap().to_string(), "000042");
    }

    #[test]
    fn stan_wraps_skipping_zero() {
        let last = Stan::new(999_999).unwrap();
        assert_eq!(last.next().value(), 1);
        assert_eq!(last.next().to_field(), *b"000001");
        assert_eq!(Stan::new(0).unwrap().next().value(), 1);
        assert_eq!(Stan::new(41).unwrap().next().value(), 42);
        assert_eq!(Stan::new(999_998).unwrap().next().value(), 999_999);
    }

    #[test]
    fn rrn() {
        let rrn = Rrn::from_field(b"612345000001").unwrap();
        assert_eq!(rrn.as_bytes(), b"612345000001");
        assert_eq!(rrn.as_str(), "612345000001");
        assert_eq!(rrn.to_string(), "612345000001");
        assert_eq!(format!("{rrn:?}"), "Rrn(\"612345000001\")");
        assert!(Rrn::from_field(b"ABC 12345xyz").is_ok());
        assert_eq!(
            Rrn::from_field(b"61234500000"),
            Err(DomainError::IdLength {
                kind: "rrn",
                len: 11,
                expected: "12"
            })
        );
        assert_eq!(
            Rrn::from_field(b"61234500000-"),
            Err(DomainError::IdCharset {
                kind: "rrn",
                charset: "an"
            })
        );
    }

    #[test]
    fn auth_code() {
        assert_eq!(
            AuthCode::from_field(b"A1B2C3").map(|a| a.to_string()),
            Ok("A1B2C3".into())
        );
        assert!(AuthCode::from_field(b"1234  ").is_ok());
        assert!(AuthCode::from_field(b"12345").is_err());
        assert!(matches!(
            AuthCode::from_field(b"12345/"),
            Err(DomainError::IdCharset { charset: "an", .. })
        ));
    }

    #[test]
    fn terminal_and_merchant() {
        let tid = TerminalId::from_field(b"TERM-01 ").unwrap();
        assert_eq!(tid.as_str(), "TERM-01 ");
        assert_eq!(format!("{tid:?}"), "TerminalId(\"TERM-01 \")");
        assert!(TerminalId::from_field(b"TERM001").is_err());
        assert!(matches!(
            TerminalId::from_field(b"TERM\x00001"),
            Err(DomainError::IdCharset {
                kind: "terminal id",
                charset: "ans"
            })
        ));
        assert!(matches!(
            TerminalId::from_field(b"TERM\xC3\xA900"),
            Err(DomainError::IdCharset { .. })
        ));

        let mid = MerchantId::from_field(b"MERCHANT#000001").unwrap();
        assert_eq!(mid.as_bytes(), b"MERCHANT#000001");
        assert_eq!("MERCHANT#000001".parse::<MerchantId>(), Ok(mid));
        assert!(matches!(
            MerchantId::from_field(b"SHORT"),
            Err(DomainError::IdLength {
                kind: "merchant id",
                len: 5,
                expected: "15"
            })
        ));
    }

    #[test]
    fn acquirer_id() {
        let id = AcquirerId::from_field(b"12345678").unwrap();
        assert_eq!(id.as_str(), "12345678");
        assert_eq!(id.len(), 8);
        assert_eq!(id.to_string(), "12345678");
        assert_eq!(format!("{id:?}"), "AcquirerId(12345678)");
        assert_eq!(AcquirerId::parse("12345678"), Ok(id));
        assert_eq!(AcquirerId::parse("1").map(|a| a.len()), Ok(1));
        assert_eq!(AcquirerId::parse("12345678901").map(|a| a.len()), Ok(11));
        assert!(matches!(
            AcquirerId::parse(""),
            Err(DomainError::IdLength { len: 0, .. })
        ));
        assert!(matches!(
            AcquirerId::parse("123456789012"),
            Err(DomainError::IdLength { len: 12, .. })
        ));
        assert!(matches!(
            AcquirerId::parse("12A"),
            Err(DomainError::IdCharset { charset: "n", .. })
        ));
        assert_ne!(AcquirerId::parse("1"), AcquirerId::parse("10"));
        assert!(AcquirerId::parse("1").unwrap() < AcquirerId::parse("10").unwrap());
    }
}
