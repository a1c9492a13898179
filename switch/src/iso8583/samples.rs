//! Representative messages shared by tests, benches, the interop suite and the demo, so that every
//! figure in `docs/benchmarks.md` is measured on the same bytes.
//!
//! The 0100 is 204 bytes in `iso87-ascii` (fields 2, 3, 4, 7, 11, 12, 13, 14, 18, 22, 25, 35, 37,
//! 41, 42, 43, 49) and its 0110 is 129 bytes (it echoes most fields, drops 14, 35 and 43, and adds
//! 38 and 39). The card is the published test card 4111110000000013.

use super::dialect::Dialect;
use super::encode::MessageBuilder;

/// Fields of the sample 0100, as (field, value).
pub const AUTH_REQUEST_FIELDS: [(u8, &[u8]); 17] = [
    (2, b"4111110000000013"),
    (3, b"000000"),
    (4, b"000000001234"),
    (7, b"1125221800"),
    (11, b"000001"),
    (12, b"221800"),
    (13, b"1125"),
    (14, b"3012"),
    (18, b"5411"),
    (22, b"051"),
    (25, b"00"),
    (35, b"4111110000000013=30121011234567890123"),
    (37, b"533022000001"),
    (41, b"TERM0001"),
    (42, b"MERCHANT0000001"),
    (43, b"Harbor Grocery        Shanghai     CN156"),
    (49, b"156"),
];

/// Fields of the sample 0110.
pub const AUTH_RESPONSE_FIELDS: [(u8, &[u8]); 16] = [
    (2, b"4111110000000013"),
    (3, b"000000"),
    (4, b"000000001234"),
    (7, b"1125221800"),
    (11, b"000001"),
    (12, b"221800"),
    (13, b"1125"),
    (18, b"5411"),
    (22, b"051"),
    (25, b"00"),
    (37, b"533022000001"),
    (38, b"A12345"),
    (39, b"00"),
    (41, b"TERM0001"),
    (42, b"MERCHANT0000001"),
    (49, b"156"),
];

/// A builder holding `fields` under `mti`.
pub fn builder(
    dialect: &'static Dialect,
    mti: [u8; 4],
    fields: &[(u8, &'static [u8])],
) -> MessageBuilder<'static> {
    let mut b = MessageBuilder::new(dialect, mti);
    for &(n, v) in fields {
        b.set(n, v);
    }
    b
}

/// The sample 0100.
pub fn auth_request(dialect: &'static Dialect) -> MessageBuilder<'static> {
    builder(dialect, *b"0100", &AUTH_REQUEST_FIELDS)
}

/// The sample 0110.
pub fn auth_response(dialect: &'static Dialect) -> MessageBuilder<'static> {
    builder(dialect, *b"0110", &AUTH_RESPONSE_FIELDS)
}
