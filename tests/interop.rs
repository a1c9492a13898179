//! Interop with an independent codec, [iso8583_rs](https://crates.io/crates/iso8583_rs) 0.1.10,
//! for the `iso87-ascii` dialect: ASCII MTI, numerics and length prefixes; 8-byte binary bitmaps;
//! raw 8-byte fields 52, 64 and 128; field 55 as binary LLLVAR.
//!
//! iso8583_rs reads its layout from a YAML spec named by the `SPEC_FILE` environment variable,
//! once, into a process-wide static. Ours is `tests/fixtures/iso8583_rs_spec.yaml`; every test
//! goes through [`their_spec`], which sets the variable before the first use.
//!
//! For the fields the fixture defines (see [`DEFINED`]) the two codecs agree byte for byte:
//! iso8583_rs's bitmaps are binary, its ASCII length prefixes are zero-padded decimal, binary
//! fields carry raw bytes (a `Variable` binary field's prefix counts bytes, as ours does), and
//! fields go out in bit order. What differs, each pinned by a test at the end of this file:
//! - **Field 65.** iso8583_rs reads bit 65 as "a tertiary bitmap follows the secondary one"
//!   (fields 129-192) and never has a field 65; ours has an 8-byte `b` field 65 and no tertiary
//!   bitmap. A message with bit 65 set does not interoperate, so the fixture leaves 65 out.
//! - **No validation in iso8583_rs.** It assembles fixed fields of the wrong length, variable
//!   fields over their maximum and characters outside the field's class, and it parses all of
//!   them, and trailing bytes, without complaint. Ours refuses each on encode and reports each on
//!   decode.
//! - **Malformed length prefix.** iso8583_rs panics (`parse::<usize>().unwrap()`); ours returns
//!   `DecodeError::BadLengthPrefix`.
//! - **API shape.** iso8583_rs takes and returns binary field values as hex strings, and selects
//!   the message layout by matching the MTI against the spec's selector list, so an MTI the spec
//!   does not list is rejected; ours takes bytes and accepts any version-0 MTI.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Once;

use bytes::Bytes;
use iso8583_rs::iso8583::iso_spec::{self, IsoMsg, Spec};
use proptest::prelude::*;
use switch::iso8583::{
    ContentClass, DecodeError, EncodeError, ISO87, ISO87_ASCII, LengthKind, Message,
    MessageBuilder, decode, decode_lenient, samples,
};

/// The fields the fixture spec defines, in position order.
const DEFINED: [u8; 29] = [
    2, 3, 4, 7, 11, 12, 13, 14, 18, 22, 25, 32, 35, 37, 38, 39, 41, 42, 43, 48, 49, 52, 54, 55, 64,
    70, 90, 95, 128,
];

/// Fields iso8583_rs holds as `BINARY`: set and read as hex strings through its API.
fn is_binary(n: u8) -> bool {
    ISO87[n as usize].class == ContentClass::B || n == 55
}

const SPEC_PATH: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/iso8583_rs_spec.yaml"
);

/// iso8583_rs's spec, loaded from the fixture on first use.
fn their_spec() -> &'static Spec {
    static SET_SPEC_FILE: Once = Once::new();
    SET_SPEC_FILE.call_once(|| {
        // SAFETY: runs once, before iso8583_rs's lazy static first reads the variable. Nothing in
        // this test binary reads the environment outside `std::env`, whose functions take std's
        // environment lock, so no read can race this write.
        unsafe { std::env::set_var("SPEC_FILE", SPEC_PATH) };
    });
    iso_spec::spec("")
}

type Fields = Vec<(u8, Vec<u8>)>;

fn owned(fields: &[(u8, &[u8])]) -> Fields {
    fields.iter().map(|&(n, v)| (n, v.to_vec())).collect()
}

// ---- iso8583_rs side -------------------------------------------------------------------------

/// An iso8583_rs message holding `fields` under `mti`.
fn their_msg(mti: &str, fields: &[(u8, Vec<u8>)]) -> IsoMsg {
    let spec = their_spec();
    let seg = spec
        .get_message_from_header(mti)
        .unwrap_or_else(|e| panic!("{}", e.msg));
    let mut msg = iso_spec::new_msg(spec, seg);
    msg.set("message_type", mti).unwrap();
    for (n, v) in fields {
        let text = if is_binary(*n) {
            hex::encode(v)
        } else {
            String::from_utf8(v.clone()).unwrap()
        };
        msg.set_on(*n as u32, &text)
            .unwrap_or_else(|e| panic!("set_on({n}): {}", e.msg));
    }
    msg
}

fn their_assemble(mti: &str, fields: &[(u8, Vec<u8>)]) -> Vec<u8> {
    their_msg(mti, fields)
        .assemble()
        .unwrap_or_else(|e| panic!("assemble: {}", e.msg))
}

/// Parses `wire` with iso8583_rs and returns its MTI and fields (binary ones hex-decoded).
fn their_parse(wire: &[u8]) -> (String, Fields) {
    let mut buf = wire.to_vec();
    let msg = their_spec()
        .parse(&mut buf)
        .unwrap_or_else(|e| panic!("iso8583_rs parse: {}", e.msg));
    their_fields(&msg)
}

fn their_fields(msg: &IsoMsg) -> (String, Fields) {
    let mti = msg.get_field_value(&"message_type".to_string()).unwrap();
    let mut fields = Vec::new();
    for pos in 2..=192u32 {
        if pos == 65 || !msg.bmp.is_on(pos) {
            continue;
        }
        let text = msg
            .bmp_child_value(pos)
            .unwrap_or_else(|e| panic!("field {pos}: {}", e.msg));
        let n = u8::try_from(pos).expect("iso8583_rs returned a field above 128");
        let v = if is_binary(n) {
            hex::decode(text).unwrap()
        } else {
            text.into_bytes()
        };
        fields.push((n, v));
    }
    (mti, fields)
}

// ---- our side --------------------------------------------------------------------------------

fn our_encode(mti: &str, fields: &[(u8, Vec<u8>)]) -> Bytes {
    let mut b = MessageBuilder::new(&ISO87_ASCII, mti.as_bytes().try_into().unwrap());
    for (n, v) in fields {
        b.set(*n, v);
    }
    b.to_bytes().unwrap_or_else(|e| panic!("our encode: {e}"))
}

fn our_fields(msg: &Message) -> (String, Fields) {
    let mti = String::from_utf8(msg.mti_digits().to_vec()).unwrap();
    (
        mti,
        msg.field_numbers()
            .map(|n| (n, msg.get(n).unwrap().into_owned()))
            .collect(),
    )
}

fn our_decode(wire: &[u8]) -> (String, Fields) {
    let msg = decode(&ISO87_ASCII, Bytes::copy_from_slice(wire))
        .unwrap_or_else(|e| panic!("our decode: {e}"));
    our_fields(&msg)
}

/// Both directions and the bytes, for one message: iso8583_rs's bytes decode in ours, ours parse
/// in iso8583_rs, both recover `fields`, and both codecs write the same bytes.
fn assert_interop(mti: &str, fields: &[(u8, Vec<u8>)]) -> Vec<u8> {
    let theirs = their_assemble(mti, fields);
    let ours = our_encode(mti, fields);

    let expected = (mti.to_string(), fields.to_vec());
    assert_eq!(our_decode(&theirs), expected, "iso8583_rs -> ours");
    assert_eq!(their_parse(&ours), expected, "ours -> iso8583_rs");
    assert_eq!(
        hex::encode(&ours),
        hex::encode(&theirs),
        "same fields, different bytes"
    );
    theirs
}

// ---- the fixture ------------------------------------------------------------------------------

#[test]
fn fixture_defines_exactly_the_listed_fields() {
    let seg = their_spec().get_message_from_header("0100").unwrap();
    let bitmap = seg
        .field_by_name(&"bitmap".to_string())
        .map_err(|e| e.msg)
        .unwrap();
    let positions: Vec<u32> = bitmap.children().iter().map(|f| f.position()).collect();
    assert_eq!(
        positions,
        DEFINED.iter().map(|&n| n as u32).collect::<Vec<_>>()
    );
    for mti in [
        "0100", "0110", "0200", "0210", "0420", "0430", "0800", "0810",
    ] {
        assert!(their_spec().get_message_from_header(mti).is_ok(), "{mti}");
    }
}

/// A value of `len` characters valid for `class`, varied so that misplaced bytes show.
fn sample_value(n: u8, len: usize) -> Vec<u8> {
    let alphabet: &[u8] = match ISO87[n as usize].class {
        ContentClass::N => b"0123456789",
        ContentClass::A => b"ABCXYZ abcxyz",
        ContentClass::An => b"AZaz09 5M",
        ContentClass::Ans => b"A1 -/~z*",
        ContentClass::Z => b"4111=0123",
        ContentClass::XN => b"0123456789",
        ContentClass::B => return (0..len).map(|i| (i * 37 + n as usize) as u8).collect(),
    };
    let mut v: Vec<u8> = (0..len)
        .map(|i| alphabet[(i + n as usize) % alphabet.len()])
        .collect();
    if ISO87[n as usize].class == ContentClass::XN && len > 0 {
        v[0] = b'C';
    }
    v
}

/// Each defined field alone, at its fixed length or at 0, 1 and its maximum: the fixture's layout
/// is ours, field by field.
#[test]
fn every_defined_field_has_the_same_layout() {
    for n in DEFINED {
        let def = ISO87[n as usize];
        let lengths: Vec<usize> = match def.length {
            LengthKind::Fixed => vec![def.max as usize],
            _ => vec![0, 1, def.max as usize],
        };
        for len in lengths {
            let fields = vec![(n, sample_value(n, len))];
            let wire = assert_interop("0200", &fields);
            let bitmaps = if n > 64 { 16 } else { 8 };
            let prefix = match def.length {
                LengthKind::Fixed => 0,
                LengthKind::LlVar => 2,
                LengthKind::LllVar => 3,
            };
            assert_eq!(
                wire.len(),
                4 + bitmaps + prefix + len,
                "field {n} length {len}"
            );
            if prefix > 0 {
                let digits = format!("{len:0prefix$}");
                assert_eq!(
                    &wire[4 + bitmaps..4 + bitmaps + prefix],
                    digits.as_bytes(),
                    "field {n} prefix"
                );
            }
        }
    }
}

// ---- (a) iso8583_rs assembles, ours decodes -------------------------------------------------------

#[test]
fn their_0100_decodes_in_ours() {
    let fields = owned(&samples::AUTH_REQUEST_FIELDS);
    let wire = their_assemble("0100", &fields);
    assert_eq!(wire.len(), 204);
    let msg =
        decode(&ISO87_ASCII, Bytes::from(wire)).expect("our strict decode of iso8583_rs's 0100");
    assert_eq!(&msg.mti_digits(), b"0100");
    assert!(!msg.has(1), "no secondary bitmap");
    for (n, v) in samples::AUTH_REQUEST_FIELDS {
        assert_eq!(msg.get(n).as_deref(), Some(v), "field {n}");
    }
    assert_eq!(
        msg.field_numbers().count(),
        samples::AUTH_REQUEST_FIELDS.len()
    );
}

#[test]
fn their_0110_decodes_in_ours() {
    let fields = owned(&samples::AUTH_RESPONSE_FIELDS);
    let wire = their_assemble("0110", &fields);
    assert_eq!(wire.len(), 129);
    let msg =
        decode(&ISO87_ASCII, Bytes::from(wire)).expect("our strict decode of iso8583_rs's 0110");
    assert_eq!(&msg.mti_digits(), b"0110");
    for (n, v) in samples::AUTH_RESPONSE_FIELDS {
        assert_eq!(msg.get(n).as_deref(), Some(v), "field {n}");
    }
    assert_eq!(
        msg.field_numbers().count(),
        samples::AUTH_RESPONSE_FIELDS.len()
    );
    assert_eq!(msg.get(38).as_deref(), Some(&b"A12345"[..]));
    assert_eq!(msg.get(39).as_deref(), Some(&b"00"[..]));
}

/// An echo test: field 70 lives in the secondary bitmap, which iso8583_rs switches on by itself.
#[test]
fn their_0800_with_secondary_bitmap_decodes_in_ours() {
    let fields = owned(&[(7, b"1125221800"), (11, b"000042"), (70, b"301")]);
    let wire = their_assemble("0800", &fields);
    assert_eq!(wire.len(), 4 + 16 + 10 + 6 + 3);
    // Primary: bits 1, 7, 11. Secondary: bit 70.
    assert_eq!(&wire[4..12], &[0x82, 0x20, 0, 0, 0, 0, 0, 0]);
    assert_eq!(&wire[12..20], &[0x04, 0, 0, 0, 0, 0, 0, 0]);
    let msg =
        decode(&ISO87_ASCII, Bytes::from(wire)).expect("our strict decode of iso8583_rs's 0800");
    assert_eq!(&msg.mti_digits(), b"0800");
    assert!(msg.has(1));
    assert_eq!(msg.field_numbers().collect::<Vec<_>>(), [7, 11, 70]);
    assert_eq!(msg.get(70).as_deref(), Some(&b"301"[..]));
    assert_eq!(msg.get(11).as_deref(), Some(&b"000042"[..]));
}

// ---- (b) ours encodes, iso8583_rs parses ------------------------------------------------------------

#[test]
fn our_0100_parses_in_theirs() {
    let wire = samples::auth_request(&ISO87_ASCII).to_bytes().unwrap();
    assert_eq!(wire.len(), 204);
    let mut buf = wire.to_vec();
    let msg = their_spec().parse(&mut buf).map_err(|e| e.msg).unwrap();
    assert_eq!(
        msg.get_field_value(&"message_type".to_string()).unwrap(),
        "0100"
    );
    assert!(!msg.bmp.is_on(1));
    // iso8583_rs keeps the bitmap it read as a field; it is ours, byte for byte.
    assert_eq!(
        msg.fd_map.get("bitmap").map(Vec::as_slice),
        Some(&wire[4..12])
    );
    for (n, v) in samples::AUTH_REQUEST_FIELDS {
        assert_eq!(
            msg.bmp_child_value(n as u32).unwrap().as_bytes(),
            v,
            "field {n}"
        );
    }
    assert_eq!(
        their_fields(&msg),
        ("0100".to_string(), owned(&samples::AUTH_REQUEST_FIELDS))
    );
}

#[test]
fn our_0110_parses_in_theirs() {
    let wire = samples::auth_response(&ISO87_ASCII).to_bytes().unwrap();
    assert_eq!(wire.len(), 129);
    assert_eq!(
        their_parse(&wire),
        ("0110".to_string(), owned(&samples::AUTH_RESPONSE_FIELDS))
    );
}

#[test]
fn our_0810_with_secondary_bitmap_parses_in_theirs() {
    let mut b = MessageBuilder::new(&ISO87_ASCII, *b"0810");
    b.set(70, b"301")
        .set(39, b"00")
        .set(11, b"000042")
        .set(7, b"1125221800");
    let wire = b.to_bytes().unwrap();
    let mut buf = wire.to_vec();
    let msg = their_spec().parse(&mut buf).map_err(|e| e.msg).unwrap();
    assert!(msg.bmp.is_on(1) && msg.bmp.is_on(70));
    assert_eq!(
        msg.fd_map.get("bitmap").map(Vec::as_slice),
        Some(&wire[4..20])
    );
    assert_eq!(
        their_fields(&msg),
        (
            "0810".to_string(),
            owned(&[
                (7, b"1125221800"),
                (11, b"000042"),
                (39, b"00"),
                (70, b"301")
            ])
        )
    );
}

// ---- (c) same fields, same bytes -----------------------------------------------------------------

#[test]
fn samples_are_byte_identical() {
    let req = assert_interop("0100", &owned(&samples::AUTH_REQUEST_FIELDS));
    assert_eq!(req, samples::auth_request(&ISO87_ASCII).to_bytes().unwrap());
    let resp = assert_interop("0110", &owned(&samples::AUTH_RESPONSE_FIELDS));
    assert_eq!(
        resp,
        samples::auth_response(&ISO87_ASCII).to_bytes().unwrap()
    );
}

#[test]
fn network_management_is_byte_identical() {
    assert_interop(
        "0800",
        &owned(&[(7, b"1125221800"), (11, b"000042"), (70, b"301")]),
    );
    assert_interop(
        "0810",
        &owned(&[
            (7, b"1125221800"),
            (11, b"000042"),
            (39, b"00"),
            (70, b"301"),
        ]),
    );
}

/// A chip purchase with PIN block and MAC (binary 52 and 64, binary LLLVAR 55), and its reversal
/// with original data elements, replacement amounts and a secondary MAC (90, 95, 128).
#[test]
fn binary_fields_and_secondary_fields_are_byte_identical() {
    let icc: Vec<u8> =
        hex::decode("9f2608c2c12b098f3da6e39f2701809f10120110a0000f040000000000000000000000ff")
            .unwrap();
    let mut purchase = owned(&samples::AUTH_REQUEST_FIELDS);
    purchase.extend([
        (32, b"12345678901".to_vec()),
        (48, b"R=0;Z=ABC".to_vec()),
        (52, vec![0x77, 0xfc, 0xbd, 0x9f, 0xfc, 0x0d, 0xfa, 0x6f]),
        (54, b"1002156C000000001000".to_vec()),
        (55, icc.clone()),
        (64, vec![0xe4, 0x70, 0x06, 0xf5, 0xde, 0x8c, 0x70, 0xb9]),
    ]);
    purchase.sort_by_key(|&(n, _)| n);
    let wire = assert_interop("0200", &purchase);
    // Field 55's prefix counts bytes, and its content is raw.
    let at = wire
        .windows(icc.len())
        .position(|w| w == icc.as_slice())
        .expect("raw ICC data on the wire");
    assert_eq!(&wire[at - 3..at], format!("{:03}", icc.len()).as_bytes());

    let reversal = vec![
        (2, b"4111110000000013".to_vec()),
        (3, b"000000".to_vec()),
        (4, b"000000001234".to_vec()),
        (11, b"000002".to_vec()),
        (39, b"68".to_vec()),
        (90, b"010000000111252218000000000012300000000456".to_vec()),
        (95, b"000000000000000000000000C00000000D00000000".to_vec()),
        (128, vec![1, 2, 3, 4, 5, 6, 7, 8]),
    ];
    let wire = assert_interop("0420", &reversal);
    assert_eq!(&wire[wire.len() - 8..], &[1, 2, 3, 4, 5, 6, 7, 8]);
}

// ---- random messages --------------------------------------------------------------------------------

/// A valid value for field `n` of any allowed length.
fn value_strategy(n: u8) -> BoxedStrategy<Vec<u8>> {
    let def = ISO87[n as usize];
    let len = match def.length {
        LengthKind::Fixed => def.max as usize..=def.max as usize,
        _ => 0..=def.max as usize,
    };
    let alphabet: &'static [u8] = match def.class {
        ContentClass::B => return prop::collection::vec(any::<u8>(), len).boxed(),
        ContentClass::N => b"0123456789",
        ContentClass::Z => b"0123456789=D",
        ContentClass::A => b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz ",
        ContentClass::An => b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789 ",
        ContentClass::Ans | ContentClass::XN => {
            // No x+n field is defined in the fixture; printable ASCII for ans.
            assert_ne!(
                def.class,
                ContentClass::XN,
                "field {n}: add an x+n generator"
            );
            b" !\"#$%&'()*+,-./0123456789:;<=>?@ABCDEFGHIJKLMNOPQRSTUVWXYZ[\\]^_`abcdefghijklmnopqrstuvwxyz{|}~"
        }
    };
    prop::collection::vec(prop::sample::select(alphabet), len).boxed()
}

fn message_strategy() -> impl Strategy<Value = (&'static str, Fields)> {
    let mti = prop::sample::select(vec![
        "0100", "0110", "0200", "0210", "0420", "0430", "0800", "0810",
    ]);
    let fields: Vec<_> = DEFINED
        .iter()
        .map(|&n| {
            prop::option::weighted(0.4, value_strategy(n)).prop_map(move |v| v.map(|v| (n, v)))
        })
        .collect();
    (mti, fields).prop_map(|(mti, fields)| (mti, fields.into_iter().flatten().collect()))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Any set of defined fields with any valid values: same bytes from both codecs, and each
    /// recovers every value from the other's bytes.
    #[test]
    fn random_messages_interoperate((mti, fields) in message_strategy()) {
        let theirs = their_assemble(mti, &fields);
        let ours = our_encode(mti, &fields);
        prop_assert_eq!(hex::encode(&ours), hex::encode(&theirs));
        let expected = (mti.to_string(), fields.clone());
        prop_assert_eq!(our_decode(&theirs), expected.clone());
        prop_assert_eq!(their_parse(&ours), expected);
    }
}

// ---- where the two differ ----------------------------------------------------------------------------

/// Bit 65: ours writes an 8-byte field 65 after field 64; iso8583_rs reads the 8 bytes after the
/// secondary bitmap as a tertiary bitmap, so the rest of the message is read out of place.
#[test]
fn field_65_is_a_tertiary_bitmap_to_iso8583_rs() {
    let mut b = MessageBuilder::new(&ISO87_ASCII, *b"0800");
    b.set(11, b"000042").set(65, &[0u8; 8]).set(70, b"301");
    let wire = b.to_bytes().unwrap();
    let ours = decode(&ISO87_ASCII, wire.clone()).unwrap();
    assert_eq!(ours.get(65).as_deref(), Some(&[0u8; 8][..]));
    assert_eq!(ours.get(70).as_deref(), Some(&b"301"[..]));

    let mut buf = wire.to_vec();
    match their_spec().parse(&mut buf) {
        // The "tertiary bitmap" is "000042" plus 2 bytes of field 65: bits for fields 129+ that
        // the spec does not define.
        Err(e) => assert!(e.msg.contains("not defined"), "{}", e.msg),
        Ok(msg) => panic!(
            "iso8583_rs read bit 65 as a field: {:?}",
            their_fields(&msg)
        ),
    }
}

/// iso8583_rs assembles whatever it is given: a fixed field one character short, a variable field
/// over its maximum, a letter in a numeric field. Ours refuses each on encode and reports each when
/// decoding iso8583_rs's bytes.
#[test]
fn iso8583_rs_assembles_invalid_fields_that_ours_refuses() {
    let base = owned(&samples::AUTH_RESPONSE_FIELDS);
    let with = |n: u8, v: &[u8]| -> Fields {
        base.iter()
            .map(|(m, old)| (*m, if *m == n { v.to_vec() } else { old.clone() }))
            .collect()
    };

    // Field 3 (n6) given 5 digits: iso8583_rs writes 5 bytes and every later field shifts.
    let short = with(3, b"00000");
    let wire = their_assemble("0110", &short);
    assert_eq!(wire.len(), 128);
    assert!(decode(&ISO87_ASCII, Bytes::from(wire)).is_err());
    let mut b = MessageBuilder::new(&ISO87_ASCII, *b"0110");
    b.set(3, b"00000");
    assert_eq!(
        b.to_bytes().unwrap_err(),
        EncodeError::WrongLength {
            field: 3,
            len: 5,
            expected: 6
        }
    );

    // Field 2 (n..19) given 20 digits.
    let long = with(2, b"41111100000000130000");
    let wire = their_assemble("0110", &long);
    assert_eq!(
        decode(&ISO87_ASCII, Bytes::from(wire.clone())).unwrap_err(),
        DecodeError::TooLong {
            field: 2,
            len: 20,
            max: 19
        }
    );
    // The lenient decode still walks it (a content error, not a structural one).
    assert_eq!(
        decode_lenient(&ISO87_ASCII, Bytes::from(wire))
            .unwrap()
            .get(2)
            .as_deref(),
        Some(&long[0].1[..])
    );
    let mut b = MessageBuilder::new(&ISO87_ASCII, *b"0110");
    b.set(2, b"41111100000000130000");
    assert_eq!(
        b.to_bytes().unwrap_err(),
        EncodeError::TooLong {
            field: 2,
            len: 20,
            max: 19
        }
    );

    // Field 4 (n12) with a letter.
    let bad = with(4, b"00000000123A");
    let wire = their_assemble("0110", &bad);
    assert_eq!(
        decode(&ISO87_ASCII, Bytes::from(wire)).unwrap_err(),
        DecodeError::BadContent {
            field: 4,
            class: ContentClass::N
        }
    );
    let mut b = MessageBuilder::new(&ISO87_ASCII, *b"0110");
    b.set(4, b"00000000123A");
    assert_eq!(
        b.to_bytes().unwrap_err(),
        EncodeError::BadContent {
            field: 4,
            class: ContentClass::N
        }
    );
}

/// iso8583_rs parses messages that ours reports: trailing bytes, and a field over its maximum.
#[test]
fn iso8583_rs_parses_what_ours_reports() {
    let mut wire = samples::auth_response(&ISO87_ASCII)
        .to_bytes()
        .unwrap()
        .to_vec();
    wire.extend_from_slice(b"XX");
    assert_eq!(
        decode(&ISO87_ASCII, Bytes::from(wire.clone())).unwrap_err(),
        DecodeError::TrailingBytes { count: 2 }
    );
    assert_eq!(
        their_parse(&wire),
        ("0110".to_string(), owned(&samples::AUTH_RESPONSE_FIELDS))
    );

    // Field 2 as "20" + 20 digits, hand-written.
    let mut b = MessageBuilder::new(&ISO87_ASCII, *b"0110");
    b.set(2, b"4111110000000013").set(39, b"05");
    let good = b.to_bytes().unwrap().to_vec();
    let mut long = good[..12].to_vec();
    long.extend_from_slice(b"2041111100000000130000");
    long.extend_from_slice(&good[12 + 2 + 16..]);
    assert_eq!(
        decode(&ISO87_ASCII, Bytes::from(long.clone())).unwrap_err(),
        DecodeError::TooLong {
            field: 2,
            len: 20,
            max: 19
        }
    );
    assert_eq!(
        their_parse(&long),
        (
            "0110".to_string(),
            owned(&[(2, b"41111100000000130000"), (39, b"05")])
        )
    );
}

/// A length prefix that is not a number: ours returns an error, iso8583_rs panics.
#[test]
fn malformed_length_prefix_is_an_error_in_ours_and_a_panic_in_iso8583_rs() {
    let mut wire = samples::auth_request(&ISO87_ASCII)
        .to_bytes()
        .unwrap()
        .to_vec();
    assert_eq!(
        &wire[12..14],
        b"16",
        "field 2's prefix follows MTI and bitmap"
    );
    wire[13] = b'x';
    assert_eq!(
        decode(&ISO87_ASCII, Bytes::from(wire.clone())).unwrap_err(),
        DecodeError::BadLengthPrefix { field: 2 }
    );
    let spec = their_spec();
    let outcome = catch_unwind(AssertUnwindSafe(|| spec.parse(&mut wire).is_ok()));
    assert!(
        outcome.is_err(),
        "iso8583_rs no longer panics on a bad prefix: {outcome:?}"
    );
}

/// iso8583_rs picks the layout by MTI from the spec's selector list; ours takes any version-0 MTI.
#[test]
fn iso8583_rs_rejects_an_mti_its_spec_does_not_list() {
    let mut b = MessageBuilder::new(&ISO87_ASCII, *b"0600");
    b.set(11, b"000001");
    let wire = b.to_bytes().unwrap();
    assert_eq!(
        &decode(&ISO87_ASCII, wire.clone()).unwrap().mti_digits(),
        b"0600"
    );
    let mut buf = wire.to_vec();
    let err = their_spec().parse(&mut buf).map(|_| ()).unwrap_err();
    assert!(err.msg.contains("message not found"), "{}", err.msg);
}
