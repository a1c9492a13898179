//! [`Expiry`]: a card's expiration date as carried in ISO 8583 field 14 (`YYMM`).
//!
//! Owns parsing the field and the rule for when a card has expired. It leaves "what is today" to
//! the caller: decisions are pure functions that take time as an argument, so the same message
//! gives the same answer in a test, a replay and production. It also leaves the *decision* to
//! decline with 54 to the card rules, since some transactions (refunds, reversals) are allowed on
//! expired cards.
//!
//! Calendar dates use `chrono::NaiveDate` (no time zone: expiry is a calendar month, and which
//! zone's "today" applies is the caller's policy).

use core::fmt;

use chrono::{Datelike, NaiveDate};

use super::ascii;
use super::error::DomainError;

/// A card expiry month. Field order (year, then month) makes the derived ordering chronological.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct Expiry {
    /// Full year, 2000-2099.
    year: u16,
    /// 1-12.
    month: u8,
}

impl Expiry {
    /// Parses field 14: 4 ASCII digits `YYMM` with month 01-12.
    ///
    /// `YY` is taken as 20YY: cards are issued for a few years at most, and a 1900s expiry can
    /// only be wrong data, which then reads as long expired.
    pub fn from_field(field: &[u8]) -> Result<Expiry, DomainError> {
        if field.len() != 4 {
            return Err(DomainError::ExpiryFormat);
        }
        let yymm = ascii::digits_value(field).ok_or(DomainError::ExpiryFormat)?;
        // Four digits are at most 9999, so both parts fit.
        Expiry::new(2000 + (yymm / 100) as u16, (yymm % 100) as u8)
    }

    /// An expiry from a full year (2000-2099, the range field 14 can express) and a month 1-12.
    pub fn new(year: u16, month: u8) -> Result<Expiry, DomainError> {
        if !(2000..=2099).contains(&year) {
            return Err(DomainError::ExpiryFormat);
        }
        if !(1..=12).contains(&month) {
            return Err(DomainError::ExpiryMonth);
        }
        Ok(Expiry { year, month })
    }

    /// The 4-digit `YYMM` field form.
    pub fn to_field(self) -> [u8; 4] {
        ascii::fixed_digits(u64::from(self.year % 100) * 100 + u64::from(self.month))
    }

    /// The full year, e.g. 2030. `i32` to compare directly with `chrono::Datelike::year`.
    pub const fn year(self) -> i32 {
        self.year as i32
    }

    /// The month, 1-12. `u32` to compare directly with `chrono::Datelike::month`.
    pub const fn month(self) -> u32 {
        self.month as u32
    }

    /// True when the card is expired in the given month.
    ///
    /// A card is valid through the last day of its expiry month, so it is expired only from the
    /// first day of the following month: `(today_year, today_month) > (year, month)`. Taking
    /// year and month rather than a date keeps the rule independent of the calendar library.
    pub const fn is_expired(&self, today_year: i32, today_month: u32) -> bool {
        let (year, month) = (self.year(), self.month());
        today_year > year || (today_year == year && today_month > month)
    }

    /// [`Expiry::is_expired`] for a calendar date.
    pub fn is_expired_on(&self, date: NaiveDate) -> bool {
        self.is_expired(date.year(), date.month())
    }

    /// The last calendar day on which the card is valid.
    pub fn last_valid_day(&self) -> NaiveDate {
        let (next_year, next_month) = if self.month == 12 {
            (self.year() + 1, 1)
        } else {
            (self.year(), self.month() + 1)
        };
        // Years 2000-2100 and months 1-12 are always representable, and day 1 of a month always
        // has a predecessor; `MAX` only satisfies the types.
        NaiveDate::from_ymd_opt(next_year, next_month, 1)
            .and_then(|d| d.pred_opt())
            .unwrap_or(NaiveDate::MAX)
    }
}

/// `MM/YY`, as printed on the card. An expiry date alone is not sensitive card data.
impl fmt::Display for Expiry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:02}/{:02}", self.month, self.year % 100)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn date(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).unwrap()
    }

    #[test]
    fn parse() {
        let e = Expiry::from_field(b"3012").unwrap();
        assert_eq!((e.year(), e.month()), (2030, 12));
        assert_eq!(e.to_field(), *b"3012");
        assert_eq!(e.to_string(), "12/30");
        let e = Expiry::from_field(b"0001").unwrap();
        assert_eq!((e.year(), e.month()), (2000, 1));
        assert_eq!(e.to_field(), *b"0001");
        assert_eq!(Expiry::from_field(b"2400"), Err(DomainError::ExpiryMonth));
        assert_eq!(Expiry::from_field(b"2413"), Err(DomainError::ExpiryMonth));
        assert_eq!(Expiry::from_field(b"241"), Err(DomainError::ExpiryFormat));
        assert_eq!(Expiry::from_field(b"24012"), Err(DomainError::ExpiryFormat));
        assert_eq!(Expiry::from_field(b"24-1"), Err(DomainError::ExpiryFormat));
        assert_eq!(Expiry::new(1999, 1), Err(DomainError::ExpiryFormat));
        assert_eq!(Expiry::new(2030, 0), Err(DomainError::ExpiryMonth));
    }

    #[test]
    fn expiry_boundaries() {
        let e3012 = Expiry::from_field(b"3012").unwrap();
        assert!(!e3012.is_expired(2026, 11));
        assert!(!e3012.is_expired(2030, 12));
        assert!(e3012.is_expired(2031, 1));

        let e2401 = Expiry::from_field(b"2401").unwrap();
        assert!(!e2401.is_expired(2024, 1));
        assert!(e2401.is_expired(2024, 2));
        assert!(!e2401.is_expired(2023, 12));
        assert!(e2401.is_expired(2025, 1));

        assert!(!e2401.is_expired_on(date(2024, 1, 31)));
        assert!(e2401.is_expired_on(date(2024, 2, 1)));
        assert!(!e3012.is_expired_on(date(2026, 11, 15)));
    }

    #[test]
    fn last_valid_day() {
        assert_eq!(
            Expiry::from_field(b"2402").unwrap().last_valid_day(),
            date(2024, 2, 29)
        );
        assert_eq!(
            Expiry::from_field(b"9912").unwrap().last_valid_day(),
            date(2099, 12, 31)
        );
        let e = Expiry::from_field(b"2401").unwrap();
        assert!(!e.is_expired_on(e.last_valid_day()));
        assert!(e.is_expired_on(e.last_valid_day().succ_opt().unwrap()));
    }

    #[test]
    fn ordering_is_chronological() {
        let a = Expiry::from_field(b"2412").unwrap();
        let b = Expiry::from_field(b"2501").unwrap();
        assert!(a < b);
    }
}

/// Field 7, transmission date and time, `MMDDhhmmss` in UTC. It carries no year; it is part of
/// the duplicate key and of field 90, so it is kept exactly as sent.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TransmissionDateTime([u8; 10]);

impl TransmissionDateTime {
    /// Ten digits with month 01–12, day 01–31, hour < 24, minute and second < 60.
    pub fn from_field(field: &[u8]) -> Result<TransmissionDateTime, DomainError> {
        let raw: [u8; 10] = field
            .try_into()
            .map_err(|_| DomainError::TransmissionFormat)?;
        if !raw.iter().all(u8::is_ascii_digit) {
            return Err(DomainError::TransmissionFormat);
        }
        let two = |i: usize| (raw[i] - b'0') as u32 * 10 + (raw[i + 1] - b'0') as u32;
        let ok = (1..=12).contains(&two(0))
            && (1..=31).contains(&two(2))
            && two(4) < 24
            && two(6) < 60
            && two(8) < 60;
        if !ok {
            return Err(DomainError::TransmissionFormat);
        }
        Ok(TransmissionDateTime(raw))
    }

    /// From a UTC timestamp.
    pub fn from_datetime(t: chrono::NaiveDateTime) -> TransmissionDateTime {
        use chrono::Timelike;
        let mut raw = [0u8; 10];
        let parts = [t.month(), t.day(), t.hour(), t.minute(), t.second()];
        for (i, p) in parts.iter().enumerate() {
            raw[2 * i] = b'0' + (p / 10) as u8;
            raw[2 * i + 1] = b'0' + (p % 10) as u8;
        }
        TransmissionDateTime(raw)
    }

    pub fn to_field(self) -> [u8; 10] {
        self.0
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The ten digits as text.
    pub fn as_str(&self) -> &str {
        ascii::as_str(&self.0)
    }

    /// The ten digits as one number. It fits 32 bits because the month is at most 12 (the
    /// number is at most 1,231,235,959); for keys held by the million
    /// ([`crate::issuing::IdemKey`]): 4 bytes instead of 10.
    pub(crate) fn to_number(self) -> u32 {
        // Ten validated digits starting 0 or 1: at most 1,299,999,999, below 2^32.
        self.0
            .iter()
            .fold(0u32, |acc, &d| acc * 10 + u32::from(d - b'0'))
    }

    /// The time whose [`TransmissionDateTime::to_number`] is `n`, given back exactly. Total, so
    /// that it cannot fail inside a decision: a number no time gives would give ten digits that
    /// are not a time, which is why this is for numbers `to_number` made, and crate-private.
    pub(crate) fn from_number(n: u32) -> TransmissionDateTime {
        let t = TransmissionDateTime(ascii::fixed_digits(u64::from(n)));
        debug_assert!(
            TransmissionDateTime::from_field(&t.0).is_ok(),
            "not a to_number: {n}"
        );
        t
    }
}

impl fmt::Display for TransmissionDateTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Always ten ASCII digits by construction.
        f.write_str(core::str::from_utf8(&self.0).unwrap_or("??????????"))
    }
}

impl fmt::Debug for TransmissionDateTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TransmissionDateTime({self})")
    }
}

#[cfg(test)]
mod transmission_tests {
    use super::*;

    #[test]
    fn transmission_date_time() {
        let t = TransmissionDateTime::from_field(b"1125221800").expect("valid");
        assert_eq!(t.to_string(), "1125221800");
        assert!(TransmissionDateTime::from_field(b"1325221800").is_err());
        assert!(TransmissionDateTime::from_field(b"1125241800").is_err());
        assert!(TransmissionDateTime::from_field(b"112522180").is_err());
        assert!(TransmissionDateTime::from_field(b"11252218a0").is_err());
        let dt = NaiveDate::from_ymd_opt(2026, 11, 25)
            .and_then(|d| d.and_hms_opt(22, 18, 0))
            .expect("date");
        assert_eq!(TransmissionDateTime::from_datetime(dt), t);
    }
}
