//! Property tests for the codec, in every dialect:
//! - `decode(encode(m)) == m` for random valid messages;
//! - `encode(decode(b)) == b` for the bytes of those messages (relaying keeps every byte);
//! - random and mutated bytes never panic the decoder.

use bytes::{Bytes, BytesMut};
use proptest::prelude::*;
use switch::iso8583::{
    ContentClass, DialectId, ISO87, LengthKind, MessageBuilder, decode, decode_lenient, samples,
};

fn class_char(class: ContentClass) -> BoxedStrategy<u8> {
    match class {
        ContentClass::N => (b'0'..=b'9').boxed(),
        ContentClass::A => prop_oneof![b'A'..=b'Z', b'a'..=b'z', Just(b' ')].boxed(),
        ContentClass::An => prop_oneof![b'A'..=b'Z', b'a'..=b'z', b'0'..=b'9', Just(b' ')].boxed(),
        ContentClass::Ans => (0x20u8..=0x7e).boxed(),
        ContentClass::B => any::<u8>().boxed(),
        ContentClass::Z => prop_oneof![b'0'..=b'9', Just(b'='), Just(b'D')].boxed(),
        ContentClass::XN => (b'0'..=b'9').boxed(),
    }
}

fn field_value(n: u8) -> BoxedStrategy<Vec<u8>> {
    let def = ISO87[n as usize];
    let len = match def.length {
        LengthKind::Fixed => (def.max as usize..=def.max as usize).boxed(),
        // Cap variable lengths so the search stays fast; the caps still exceed every LL maximum.
        _ => (0..=(def.max as usize).min(120)).boxed(),
    };
    let class = def.class;
    len.prop_flat_map(move |l| {
        if class == ContentClass::XN {
            (
                prop_oneof![Just(b'C'), Just(b'D')],
                proptest::collection::vec(class_char(class), l - 1),
            )
                .prop_map(|(s, mut rest)| {
                    rest.insert(0, s);
                    rest
                })
                .boxed()
        } else {
            proptest::collection::vec(class_char(class), l).boxed()
        }
    })
    .boxed()
}

fn message() -> impl Strategy<Value = ([u8; 4], Vec<(u8, Vec<u8>)>)> {
    let mti = proptest::array::uniform3(b'0'..=b'9').prop_map(|[a, b, c]| [b'0', a, b, c]);
    let fields = proptest::collection::btree_set(2u8..=128, 0..24).prop_flat_map(|set| {
        set.into_iter()
            .map(|n| field_value(n).prop_map(move |v| (n, v)))
            .collect::<Vec<_>>()
    });
    (mti, fields)
}

fn dialect() -> impl Strategy<Value = DialectId> {
    prop_oneof![
        Just(DialectId::Iso87Ascii),
        Just(DialectId::Iso87AsciiHexBitmap),
        Just(DialectId::Iso87Bcd)
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn decode_encode_round_trip((mti, fields) in message(), id in dialect()) {
        let d = id.dialect();
        let mut b = MessageBuilder::new(d, mti);
        for (n, v) in &fields {
            b.set(*n, v);
        }
        let bytes = b.to_bytes().expect("valid message encodes");
        let m = decode(d, bytes.clone()).expect("own output decodes");
        prop_assert_eq!(m.mti_digits(), mti);
        let present: Vec<u8> = m.field_numbers().collect();
        let expected: Vec<u8> = fields.iter().map(|(n, _)| *n).collect();
        prop_assert_eq!(present, expected);
        for (n, v) in &fields {
            let got = m.get(*n);
            prop_assert_eq!(got.as_deref(), Some(&v[..]), "field {}", n);
        }
        // encode(decode(b)) == b
        let mut relay = MessageBuilder::new(d, m.mti_digits());
        for n in m.field_numbers() {
            relay.copy_from(&m, n);
        }
        let mut out = BytesMut::new();
        relay.encode(&mut out).expect("relay encodes");
        prop_assert_eq!(&out[..], &bytes[..]);
    }

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..400), id in dialect()) {
        let d = id.dialect();
        let _ = decode(d, Bytes::from(bytes.clone()));
        if let Ok(m) = decode_lenient(d, Bytes::from(bytes)) {
            for n in m.field_numbers() {
                let _ = m.get(n);
            }
            let _ = format!("{m:?}");
        }
    }

    #[test]
    fn mutated_messages_never_panic(
        id in dialect(),
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
        cut in any::<prop::sample::Index>(),
        truncate in any::<bool>(),
    ) {
        let d = id.dialect();
        let mut v = samples::auth_request(d).to_bytes().expect("sample").to_vec();
        for (i, x) in flips {
            let at = i.index(v.len());
            v[at] ^= x;
        }
        if truncate {
            v.truncate(cut.index(v.len() + 1));
        }
        let strict = decode(d, Bytes::from(v.clone()));
        let lenient = decode_lenient(d, Bytes::from(v));
        // Strict success implies lenient success with no content error.
        if strict.is_ok() {
            prop_assert!(lenient.as_ref().is_ok_and(|m| m.content_error().is_none()));
        }
        if let Ok(m) = lenient {
            for n in m.field_numbers() {
                prop_assert!(m.field(n).is_some());
            }
            let _ = format!("{m:?}");
        }
    }
}
