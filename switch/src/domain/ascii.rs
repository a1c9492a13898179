//! Private helpers for the ISO 8583 character sets (`n`, `an`, `ans`) and digit strings.
//!
//! Owns only the byte-level predicates shared by the domain types, so that "what counts as `an`"
//! is decided once. It leaves field lengths and error choice to each type, because those differ
//! per field. Not exported: the codec has its own dialect-driven checks, and these helpers exist
//! only to keep the domain constructors consistent with each other.

/// ISO `n`: an ASCII digit.
pub(super) const fn is_n(b: u8) -> bool {
    b.is_ascii_digit()
}

/// ISO `an`: alphanumeric. ISO 8583:1987 fields such as 37 and 38 are commonly space-padded, so
/// space is accepted as well.
pub(super) const fn is_an(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b' '
}

/// ISO `ans`: printable ASCII including space (0x20-0x7E).
pub(super) const fn is_ans(b: u8) -> bool {
    matches!(b, 0x20..=0x7E)
}

/// True when `bytes` is non-empty and made only of ASCII digits.
pub(super) fn all_digits(bytes: &[u8]) -> bool {
    !bytes.is_empty() && bytes.iter().all(|&b| is_n(b))
}

/// The value of an all-digit string, or `None` if a byte is not a digit or the value overflows.
pub(super) fn digits_value(bytes: &[u8]) -> Option<u64> {
    if !all_digits(bytes) {
        return None;
    }
    bytes.iter().try_fold(0u64, |acc, &b| {
        acc.checked_mul(10)?.checked_add(u64::from(b - b'0'))
    })
}

/// Views bytes that a constructor has already restricted to ASCII as a `&str`.
///
/// The fallback is unreachable for validated input; it exists so that a future bug shows up as
/// an empty string rather than as a panic inside a connection task. `is_ascii` instead of
/// `str::from_utf8`: the ids are read as text about 17 times per request (journal records,
/// duplicate keys), and UTF-8 validation of an 8-byte id costs several times an ASCII check
/// (`callgrind`, docs/performance.md, "Instructions per answer").
pub(super) fn as_str(bytes: &[u8]) -> &str {
    as_ascii_str(bytes).unwrap_or("")
}

/// `bytes` as a `&str` when they are all ASCII.
pub(super) fn as_ascii_str(bytes: &[u8]) -> Option<&str> {
    // SAFETY: every ASCII byte sequence is valid UTF-8, and `is_ascii` is checked on exactly
    // these bytes, so soundness does not rest on any constructor.
    bytes
        .is_ascii()
        .then(|| unsafe { core::str::from_utf8_unchecked(bytes) })
}

/// Writes `value` as exactly `N` zero-padded ASCII digits (keeping the low `N` digits).
pub(super) fn fixed_digits<const N: usize>(mut value: u64) -> [u8; N] {
    let mut out = [b'0'; N];
    for slot in out.iter_mut().rev() {
        // `value % 10` is below 10, so the narrowing cannot lose anything.
        *slot = b'0' + (value % 10) as u8;
        value /= 10;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charsets() {
        assert!(is_an(b'a') && is_an(b'Z') && is_an(b'7') && is_an(b' '));
        assert!(!is_an(b'-') && !is_an(0x7F));
        assert!(is_ans(b'-') && is_ans(b' ') && is_ans(b'~'));
        assert!(!is_ans(0x1F) && !is_ans(0x7F) && !is_ans(0xC3));
    }

    #[test]
    fn digits() {
        assert_eq!(digits_value(b"000123"), Some(123));
        assert_eq!(digits_value(b""), None);
        assert_eq!(digits_value(b"12a"), None);
        assert_eq!(digits_value(b"99999999999999999999"), None);
        assert_eq!(fixed_digits::<6>(42), *b"000042");
        assert_eq!(fixed_digits::<2>(0), *b"00");
    }
}
