//! The business day: which day a moment belongs to, when a day closes, and whether the card was
//! at the point of sale (field 22). Plain functions of their arguments; the caller reads the clock.
//!
//! # The rule
//!
//! The switch's clock is UTC, and so is the cutover time (`[switch] business_date_cutover`,
//! `HH:MM`). Business day D closes at the cutover time on calendar date D: a moment before the
//! cutover belongs to today's business date, a moment at or after it to tomorrow's. With the
//! default `23:00`, 22:59:59 on 25 November is business day 25 November and 23:00:00 is
//! 26 November. A cutover of `00:00` means the calendar day: day D closes at midnight ending D.

use chrono::{Duration, NaiveDate, NaiveDateTime, NaiveTime, Timelike};

/// Minutes in a day.
const DAY_MINUTES: u16 = 24 * 60;

/// The business date `now` belongs to, with the cutover `cutover_minutes` after midnight
/// (0..1440; larger values are read modulo a day).
pub fn business_date(now: NaiveDateTime, cutover_minutes: u16) -> NaiveDate {
    let cutover = cutover_minutes % DAY_MINUTES;
    let minute_of_day = (now.hour() * 60 + now.minute()) as u16;
    if cutover != 0 && minute_of_day >= cutover {
        now.date().succ_opt().unwrap_or(now.date())
    } else {
        now.date()
    }
}

/// The moment business day `day` closes: its first moment that belongs to the next day.
pub fn cutover_instant(day: NaiveDate, cutover_minutes: u16) -> NaiveDateTime {
    let cutover = cutover_minutes % DAY_MINUTES;
    if cutover == 0 {
        return (day + Duration::days(1)).and_time(NaiveTime::MIN);
    }
    let time = NaiveTime::from_hms_opt(u32::from(cutover / 60), u32::from(cutover % 60), 0)
        .unwrap_or(NaiveTime::MIN);
    day.and_time(time)
}

/// The last business day that has ended at `now`: the one before `now`'s.
pub fn last_closed_day(now: NaiveDateTime, cutover_minutes: u16) -> NaiveDate {
    let today = business_date(now, cutover_minutes);
    today.pred_opt().unwrap_or(today)
}

/// Whether the card was present, from field 22 (POS entry mode, `n 3`, read as a number so that
/// `051` is 51). Its first two digits are the PAN entry mode:
///
/// | PAN entry mode | meaning                                   | card present |
/// |----------------|-------------------------------------------|--------------|
/// | 02             | magnetic stripe, track not guaranteed     | yes          |
/// | 05             | chip (ICC)                                | yes          |
/// | 07             | contactless chip                          | yes          |
/// | 80             | chip fallback to magnetic stripe          | yes          |
/// | 90             | magnetic stripe, full track read          | yes          |
/// | 91             | contactless magnetic stripe               | yes          |
/// | 95             | chip, CVV unreliable                      | yes          |
/// | 01             | key entered                               | no           |
/// | 10             | credential on file                        | no           |
/// | 81             | e-commerce                                | no           |
/// | anything else  | unknown (00, 03, 04, ...)                 | `None`       |
///
/// Key entry (01) counts as not present: nothing shows the card was there, and schemes price it
/// with card-not-present traffic. `None` (field absent or mode unknown) is priced as card not
/// present too by the fee schedule ([`super::fees`]), which keeps the issuer from being
/// under-paid on traffic the acquirer did not describe.
pub fn card_present(pos_entry_mode: Option<u16>) -> Option<bool> {
    match pos_entry_mode? / 10 {
        2 | 5 | 7 | 80 | 90 | 91 | 95 => Some(true),
        1 | 10 | 81 => Some(false),
        _ => None,
    }
}
