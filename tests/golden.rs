//! Golden messages: bytes written by an independent codec (pyiso8583, see
//! `tests/fixtures/make_golden.py`) must decode in ours to the listed field values, and our encoder
//! must rebuild them byte for byte from those values.

use bytes::Bytes;
use switch::iso8583::{ISO87_ASCII, MessageBuilder, decode};

struct Golden {
    name: String,
    bytes: Vec<u8>,
    mti: [u8; 4],
    fields: Vec<(u8, Vec<u8>)>,
}

fn unhex(s: &str) -> Vec<u8> {
    hex::decode(s.trim()).expect("fixture hex")
}

fn load_all() -> Vec<Golden> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let mut out = Vec::new();
    let mut paths: Vec<_> = std::fs::read_dir(&dir)
        .expect("fixtures dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "golden"))
        .collect();
    paths.sort();
    for path in paths {
        let text = std::fs::read_to_string(&path).expect("read fixture");
        let mut g = Golden {
            name: path.display().to_string(),
            bytes: vec![],
            mti: [0; 4],
            fields: vec![],
        };
        for line in text
            .lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
        {
            let (k, v) = line.split_once(": ").expect("key: value");
            match k {
                "hex" => g.bytes = unhex(v),
                "t" => g.mti = v.as_bytes().try_into().expect("mti"),
                n => {
                    let value = match v.strip_prefix("hex:") {
                        Some(h) => unhex(h),
                        None => v.as_bytes().to_vec(),
                    };
                    g.fields.push((n.parse().expect("field number"), value));
                }
            }
        }
        out.push(g);
    }
    out
}

#[test]
fn golden_messages_decode_to_their_fields() {
    let all = load_all();
    assert!(all.len() >= 7, "fixtures missing: {}", all.len());
    for g in &all {
        let m = decode(&ISO87_ASCII, Bytes::from(g.bytes.clone()))
            .unwrap_or_else(|e| panic!("{}: {e}", g.name));
        assert_eq!(m.mti_digits(), g.mti, "{}", g.name);
        let present: Vec<u8> = m.field_numbers().collect();
        let expected: Vec<u8> = g.fields.iter().map(|(n, _)| *n).collect();
        assert_eq!(present, expected, "{}", g.name);
        for (n, v) in &g.fields {
            assert_eq!(m.get(*n).as_deref(), Some(&v[..]), "{} field {n}", g.name);
        }
    }
}

#[test]
fn golden_messages_encode_byte_for_byte() {
    for g in &load_all() {
        let mut b = MessageBuilder::new(&ISO87_ASCII, g.mti);
        for (n, v) in &g.fields {
            b.set(*n, v);
        }
        let bytes = b.to_bytes().unwrap_or_else(|e| panic!("{}: {e}", g.name));
        assert_eq!(
            hex::encode_upper(&bytes),
            hex::encode_upper(&g.bytes),
            "{}",
            g.name
        );
    }
}

#[test]
fn the_set_covers_what_the_issue_asks() {
    let all = load_all();
    let mtis: Vec<[u8; 4]> = all.iter().map(|g| g.mti).collect();
    for mti in [
        b"0100", b"0110", b"0200", b"0400", b"0420", b"0800", b"0810",
    ] {
        assert!(
            mtis.contains(mti),
            "no golden {}",
            String::from_utf8_lossy(mti)
        );
    }
    assert!(
        all.iter()
            .any(|g| g.mti == *b"0400" && g.fields.iter().any(|(n, _)| *n == 90))
    );
    assert!(
        all.iter().any(|g| g.fields.iter().any(|(n, _)| *n > 64)),
        "one with a secondary bitmap"
    );
}
