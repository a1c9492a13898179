//! Unit tests for the codec: round trips in every dialect and each strict-validation rule.

use bytes::{Bytes, BytesMut};

use super::dialect::{BitmapEncoding, Dialect, DialectId, Encoding};
use super::*;

fn encode(b: &MessageBuilder<'_>) -> Bytes {
    b.to_bytes().expect("encode")
}

/// Rewrites the content of field `n` in an encoded ASCII message.
fn patch(msg: &Bytes, at: usize, with: &[u8]) -> Bytes {
    let mut v = msg.to_vec();
    v[at..at + with.len()].copy_from_slice(with);
    Bytes::from(v)
}

#[test]
fn sample_sizes_match_the_issue() {
    assert_eq!(encode(&samples::auth_request(&ISO87_ASCII)).len(), 204);
    assert_eq!(encode(&samples::auth_response(&ISO87_ASCII)).len(), 129);
}

#[test]
fn round_trip_every_dialect() {
    for id in DialectId::ALL {
        let d = id.dialect();
        for b in [samples::auth_request(d), samples::auth_response(d)] {
            let bytes = encode(&b);
            let m = decode(d, bytes.clone()).unwrap_or_else(|e| panic!("{id}: {e}"));
            for n in 2..=128u8 {
                match b.get(n) {
                    Some(Value::Text(t)) => {
                        assert_eq!(m.get(n).as_deref(), Some(t), "{id} field {n}")
                    }
                    Some(Value::Packed { .. }) => unreachable!(),
                    None => assert!(!m.has(n), "{id} field {n}"),
                }
            }
            // The fields listed are exactly the fields present, ascending.
            assert_eq!(
                m.field_numbers().collect::<Vec<_>>(),
                (2..=128u8).filter(|&n| m.has(n)).collect::<Vec<_>>(),
                "{id}"
            );
            // Relaying every field rebuilds the same bytes.
            let mut relay = MessageBuilder::new(d, m.mti_digits());
            for n in m.field_numbers() {
                relay.copy_from(&m, n);
            }
            assert_eq!(encode(&relay), bytes, "{id}");
        }
    }
}

/// `content_is` agrees with comparing `bytes()`, packed BCD included, without unpacking: equal
/// content, one digit changed (first and last), and a length off by one.
#[test]
fn content_is_compares_as_bytes_does() {
    for id in DialectId::ALL {
        let d = id.dialect();
        let m = decode(d, encode(&samples::auth_request(d))).expect("decode");
        for n in m.field_numbers() {
            let f = m.field(n).expect("present");
            let ascii = f.bytes().into_owned();
            assert!(f.content_is(&ascii), "{id} field {n}");
            for at in [0, ascii.len() - 1] {
                let mut other = ascii.clone();
                other[at] = if other[at] == b'1' { b'2' } else { b'1' };
                assert!(!f.content_is(&other), "{id} field {n} at {at}");
            }
            assert!(!f.content_is(&ascii[1..]), "{id} field {n}");
            let mut longer = ascii.clone();
            longer.push(b'0');
            assert!(!f.content_is(&longer), "{id} field {n}");
        }
    }
}

#[test]
fn bcd_is_smaller_and_packs_numerics() {
    let bytes = encode(&samples::auth_request(&ISO87_BCD));
    assert_eq!(&bytes[..2], &[0x01, 0x00]);
    // Field 2: LL prefix 0x16 then 8 packed bytes.
    assert_eq!(
        &bytes[10..19],
        &[0x16, 0x41, 0x11, 0x11, 0x00, 0x00, 0x00, 0x00, 0x13]
    );
    assert!(bytes.len() < 204);
}

#[test]
fn cross_dialect_relay_unpacks_and_packs() {
    let bcd = decode(&ISO87_BCD, encode(&samples::auth_request(&ISO87_BCD))).unwrap();
    let mut to_ascii = MessageBuilder::new(&ISO87_ASCII, bcd.mti_digits());
    for n in bcd.field_numbers() {
        to_ascii.copy_from(&bcd, n);
    }
    assert_eq!(
        encode(&to_ascii),
        encode(&samples::auth_request(&ISO87_ASCII))
    );
}

#[test]
fn hex_bitmap_is_sixteen_hex_chars() {
    let bytes = encode(&samples::auth_request(&ISO87_ASCII_HEXBITMAP));
    assert_eq!(&bytes[..4], b"0100");
    assert!(
        bytes[4..20]
            .iter()
            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_lowercase())
    );
    assert_eq!(bytes.len(), 212);
    let lower = Bytes::from(
        bytes.to_ascii_lowercase()[..20]
            .iter()
            .chain(&bytes[20..])
            .copied()
            .collect::<Vec<_>>(),
    );
    // Lower-case hex would not relay byte for byte, so it is refused.
    assert_eq!(
        decode(&ISO87_ASCII_HEXBITMAP, lower).unwrap_err(),
        DecodeError::BadBitmap
    );
}

#[test]
fn letters_in_field_4_name_field_4() {
    let bytes = encode(&samples::auth_request(&ISO87_ASCII));
    // MTI 4 + bitmap 8 + F2 (2+16) + F3 6 = 36: F4 starts there.
    let bad = patch(&bytes, 36, b"0000000012AB");
    let e = decode(&ISO87_ASCII, bad.clone()).unwrap_err();
    assert_eq!(
        e,
        DecodeError::BadContent {
            field: 4,
            class: ContentClass::N
        }
    );
    assert!(e.to_string().contains("field 4"), "{e}");
    assert!(!e.is_structural());
    // Lenient decode still reaches every field.
    let m = decode_lenient(&ISO87_ASCII, bad).unwrap();
    assert_eq!(m.content_error(), Some(e));
    assert_eq!(m.get(11).as_deref(), Some(&b"000001"[..]));
    assert_eq!(m.get(41).as_deref(), Some(&b"TERM0001"[..]));
}

#[test]
fn field_2_longer_than_19_names_field_2() {
    let mut b = samples::auth_request(&ISO87_ASCII);
    b.set(2, b"41111100000000130001");
    assert_eq!(
        b.to_bytes(),
        Err(EncodeError::TooLong {
            field: 2,
            len: 20,
            max: 19
        })
    );
    // Forge it on the wire: same message with a 20-digit PAN.
    let good = encode(&samples::auth_request(&ISO87_ASCII));
    let mut v = good[..12].to_vec();
    v.extend_from_slice(b"2041111100000000130001");
    v.extend_from_slice(&good[30..]);
    let e = decode(&ISO87_ASCII, Bytes::from(v)).unwrap_err();
    assert_eq!(
        e,
        DecodeError::TooLong {
            field: 2,
            len: 20,
            max: 19
        }
    );
    assert!(e.to_string().contains("field 2"));
}

#[test]
fn structural_errors() {
    let good = encode(&samples::auth_request(&ISO87_ASCII));
    assert_eq!(
        decode(&ISO87_ASCII, good.slice(..3)).unwrap_err(),
        DecodeError::TruncatedMti
    );
    assert_eq!(
        decode(&ISO87_ASCII, good.slice(..10)).unwrap_err(),
        DecodeError::TruncatedBitmap
    );
    assert_eq!(
        decode(&ISO87_ASCII, good.slice(..good.len() - 1)).unwrap_err(),
        DecodeError::Truncated { field: 49 }
    );
    assert_eq!(
        decode(&ISO87_ASCII, patch(&good, 0, b"01A0")).unwrap_err(),
        DecodeError::BadMti
    );
    assert_eq!(
        decode(&ISO87_ASCII, patch(&good, 0, b"1100")).unwrap_err(),
        DecodeError::UnsupportedVersion
    );
    let e = decode(&ISO87_ASCII, patch(&good, 12, b"1X")).unwrap_err();
    assert_eq!(e, DecodeError::BadLengthPrefix { field: 2 });
    assert!(e.is_structural());
    let hex = encode(&samples::auth_request(&ISO87_ASCII_HEXBITMAP));
    assert_eq!(
        decode(&ISO87_ASCII_HEXBITMAP, patch(&hex, 4, b"G")).unwrap_err(),
        DecodeError::BadBitmap
    );
}

#[test]
fn trailing_bytes_are_a_content_error() {
    let good = encode(&samples::auth_request(&ISO87_ASCII));
    let mut v = good.to_vec();
    v.extend_from_slice(b"XX");
    let e = decode(&ISO87_ASCII, Bytes::from(v)).unwrap_err();
    assert_eq!(e, DecodeError::TrailingBytes { count: 2 });
    assert!(!e.is_structural());
}

static SPARSE: Dialect = {
    let mut fields = ISO87_ASCII.fields;
    fields[60] = None;
    Dialect {
        id: DialectId::Iso87Ascii,
        mti: Encoding::Ascii,
        bitmap: BitmapEncoding::Binary,
        fields,
    }
};

#[test]
fn undefined_field_bit_is_rejected() {
    let mut b = MessageBuilder::new(&ISO87_ASCII, *b"0100");
    b.set(3, b"000000").set(60, b"1");
    let bytes = encode(&b);
    assert_eq!(
        decode(&SPARSE, bytes).unwrap_err(),
        DecodeError::UndefinedField { field: 60 }
    );
    let mut b = MessageBuilder::new(&SPARSE, *b"0100");
    b.set(60, b"1");
    assert_eq!(b.to_bytes(), Err(EncodeError::UndefinedField { field: 60 }));
}

#[test]
fn secondary_bitmap_is_derived() {
    let mut b = MessageBuilder::new(&ISO87_ASCII, *b"0800");
    b.set(7, b"1125221800").set(11, b"000001").set(70, b"301");
    let bytes = encode(&b);
    assert_eq!(bytes.len(), 4 + 16 + 10 + 6 + 3);
    assert_eq!(bytes[4] & 0x80, 0x80, "bit 1 set by the codec");
    let m = decode(&ISO87_ASCII, bytes).unwrap();
    assert!(m.has(1));
    assert_eq!(m.get(70).as_deref(), Some(&b"301"[..]));
    // Removing field 70 drops the secondary bitmap.
    b.remove(70);
    let bytes = encode(&b);
    assert_eq!(bytes.len(), 4 + 8 + 10 + 6);
    assert_eq!(bytes[4] & 0x80, 0);
}

#[test]
fn empty_secondary_bitmap_is_rejected() {
    let mut v = b"0800".to_vec();
    v.extend_from_slice(&[0x80, 0, 0, 0, 0, 0, 0, 0]);
    v.extend_from_slice(&[0; 8]);
    assert_eq!(
        decode(&ISO87_ASCII, Bytes::from(v)).unwrap_err(),
        DecodeError::EmptySecondaryBitmap
    );
}

#[test]
fn builder_rejects_bad_values() {
    let mut b = MessageBuilder::new(&ISO87_ASCII, *b"0100");
    b.set(1, b"x");
    assert_eq!(b.to_bytes(), Err(EncodeError::NotSettable { field: 1 }));
    let mut b = MessageBuilder::new(&ISO87_ASCII, *b"0100");
    b.set(3, b"00000");
    assert_eq!(
        b.to_bytes(),
        Err(EncodeError::WrongLength {
            field: 3,
            len: 5,
            expected: 6
        })
    );
    b.set(3, b"00000A");
    assert_eq!(
        b.to_bytes(),
        Err(EncodeError::BadContent {
            field: 3,
            class: ContentClass::N
        })
    );
    let mut dst = BytesMut::from(&b"keep"[..]);
    assert!(b.encode(&mut dst).is_err());
    assert_eq!(&dst[..], b"keep", "dst untouched on error");
    let mut b = MessageBuilder::new(&ISO87_ASCII, *b"01X0");
    b.set(3, b"000000");
    assert_eq!(b.to_bytes(), Err(EncodeError::BadMti));
}

#[test]
fn bcd_pad_nibble_must_be_zero() {
    let mut b = MessageBuilder::new(&ISO87_BCD, *b"0100");
    b.set(22, b"051");
    let bytes = encode(&b);
    assert_eq!(&bytes[10..], &[0x00, 0x51]);
    assert_eq!(
        decode(&ISO87_BCD, patch(&bytes, 10, &[0x10])).unwrap_err(),
        DecodeError::BadPad { field: 22 }
    );
    assert_eq!(
        decode(&ISO87_BCD, patch(&bytes, 11, &[0x5A])).unwrap_err(),
        DecodeError::BadContent {
            field: 22,
            class: ContentClass::N
        }
    );
}

#[test]
fn debug_masks_cardholder_data() {
    let mut b = samples::auth_request(&ISO87_ASCII);
    b.set(52, &[0x12, 0x34, 0x56, 0x78, 0x9A, 0xBC, 0xDE, 0xF0]);
    b.set(55, &[0x9F, 0x02, 0x06, 0, 0, 0, 0, 0x12, 0x34]);
    let m = decode(&ISO87_ASCII, encode(&b)).unwrap();
    let s = format!("{m:?}");
    assert!(s.contains("411111******0013"), "{s}");
    assert!(!s.contains("4111110000000013"), "{s}");
    assert!(!s.contains("30121011234567890123"), "{s}");
    assert!(!s.contains("123456789ABCDEF0"), "{s}");
    assert!(!s.contains("9F0206"), "{s}");
    assert!(s.contains("TERM0001"), "{s}");
}

#[test]
fn field_55_is_raw_binary_lll() {
    let icc = [0x9Fu8, 0x26, 0x08, 1, 2, 3, 4, 5, 6, 7, 8];
    let mut b = MessageBuilder::new(&ISO87_ASCII, *b"0100");
    b.set(55, &icc);
    let bytes = encode(&b);
    assert_eq!(&bytes[12..15], b"011");
    assert_eq!(&bytes[15..], &icc);
    let m = decode(&ISO87_ASCII, bytes).unwrap();
    assert_eq!(m.get(55).as_deref(), Some(&icc[..]));
}

#[test]
fn lenient_decode_marks_each_bad_field() {
    let good = encode(&samples::auth_request(&ISO87_ASCII));
    // F4 at 36..48 and F11 at 58..64 both broken.
    let bad = patch(&patch(&good, 36, b"0000000012AB"), 58, b"00A001");
    let m = decode_lenient(&ISO87_ASCII, bad).unwrap();
    assert_eq!(
        m.content_error(),
        Some(DecodeError::BadContent {
            field: 4,
            class: ContentClass::N
        })
    );
    assert!(!m.is_valid(4));
    assert!(!m.is_valid(11));
    assert!(m.is_valid(41) && m.is_valid(37) && m.is_valid(2));
    assert!(!m.is_valid(5), "absent is not valid");
}
