//! Tests of the security module as the switch uses it: keys loaded from a keys file, MACs by
//! party, PIN translation between zones and from DUKPT terminals, the clear-block hand-off to
//! the issuing engine's PIN reader. The primitives' published vectors are tested beside them
//! (`blocks`, `mac`, `pinblock`, `dukpt`, `keys`).

use std::path::Path;

use proptest::prelude::*;

use super::dukpt::{aes_encrypt_pin, aes_initial_key, tdes_encrypt_pin, tdes_ipek};
use super::pinblock::{encrypt_iso0, encrypt_iso4};
use super::*;
use crate::domain::{Pan, luhn_check_digit};
use crate::issuing::ClearPin;

const X919_KEY: &str = "7CA110454A1A6E570131D9619DC1376E";
const CMAC_KEY: &str = "2B7E151628AED2A6ABF7158809CF4F3C";
const ACQ_TDES_ZPK: &str = "387DC02F50189F866DBFB7C4A4AE8EF3";
const ACQ_AES_ZPK: &str = "00112233445566778899AABBCCDDEEFF";
const ISS_TDES_ZPK: &str = "1863F482F40ABECD6609F33F78EF1AB8";
const ISS_AES_ZPK: &str = "0F1E2D3C4B5A69788796A5B4C3D2E1F0";
const TDES_BDK: &str = "0123456789ABCDEFFEDCBA9876543210";
const AES_BDK: &str = "FEDCBA9876543210F1F1F1F1F1F1F1F1";

fn keys_text() -> String {
    format!(
        r#"
[journal]
pan_key = "000102030405060708090A0B0C0D0E0F101112131415161718191A1B1C1D1E1F"

[[acquirer]]
id = "100002"
mac_algorithm = "x9.19"
mac_key = "{X919_KEY}"
zpk_algorithm = "tdes"
zpk = "{ACQ_TDES_ZPK}"

[[acquirer]]
id = "200001"
mac_algorithm = "aes-cmac"
mac_key = "{CMAC_KEY}"
zpk_algorithm = "aes"
zpk = "{ACQ_AES_ZPK}"

[[issuer]]
id = "north-bank"
zpk_algorithm = "tdes"
zpk = "{ISS_TDES_ZPK}"

[[issuer]]
id = "aes-bank"
zpk_algorithm = "aes"
zpk = "{ISS_AES_ZPK}"

[[bdk]]
name = "test-tdes"
algorithm = "tdes"
key = "{TDES_BDK}"

[[bdk]]
name = "test-aes"
algorithm = "aes"
key = "{AES_BDK}"
"#
    )
}

fn hsm() -> SoftwareSecurityModule {
    let keys = KeysFile::from_toml_str(&keys_text(), Path::new("test-keys.toml")).expect("keys");
    SoftwareSecurityModule::from_keys(&keys).expect("module")
}

fn key16(text: &str) -> [u8; 16] {
    let mut k = [0u8; 16];
    hex::decode_to_slice(text, &mut k).expect("hex");
    k
}

fn id(text: &str) -> KeyId {
    text.parse().expect("key id")
}

fn pan(digits: &str) -> Pan {
    Pan::parse(digits.as_bytes()).expect("pan")
}

/// The PIN the issuing engine reads from the clear block the module lends for `pan`.
fn pin_seen_by_issuer(
    hsm: &dyn SecurityModule,
    source: PinSource<'_>,
    pan: &Pan,
    block: &EncryptedPinBlock,
) -> Result<Option<String>, SecurityError> {
    hsm.with_clear_pin_block(source, pan, block, |clear| {
        ClearPin::from_iso0_block(clear, pan).map(|p| p.expose_str().to_owned())
    })
}

#[test]
fn x919_mac_by_party() {
    let hsm = hsm();
    let key = id("acquirer:100002:mac");
    let mac = hsm.generate_mac(&key, b"Hello World !!!!").expect("mac");
    assert_eq!(hex::encode_upper(mac), "F09B856213BAB83B");
    assert_eq!(hsm.verify_mac(&key, b"Hello World !!!!", &mac), Ok(()));
}

#[test]
fn aes_cmac_by_party_is_the_leftmost_eight_bytes() {
    let hsm = hsm();
    let key = id("acquirer:200001:mac");
    let data = hex::decode("6BC1BEE22E409F96E93D7E117393172A").expect("hex");
    let mac = hsm.generate_mac(&key, &data).expect("mac");
    assert_eq!(hex::encode_upper(mac), "070A16B46B4D4144");
    assert_eq!(hsm.verify_mac(&key, &data, &mac), Ok(()));
}

#[test]
fn wrong_mac_and_tampered_message_are_rejected() {
    let hsm = hsm();
    for key in [id("acquirer:100002:mac"), id("acquirer:200001:mac")] {
        let mut message = b"0200\x72\x00\x00\x00\x00\x00\x00\x01164111111111111111000000".to_vec();
        message.extend_from_slice(&[0; 8]);
        let input = mac_input(&message).expect("input").to_vec();
        let mac = hsm.generate_mac(&key, &input).expect("mac");
        let at = message.len() - MAC_LEN;
        message[at..].copy_from_slice(&mac);
        assert_eq!(hsm.verify_message_mac(&key, &message), Ok(()));

        let mut wrong = mac;
        wrong[7] ^= 0x01;
        let mismatch = Err(SecurityError::MacMismatch { key: key.clone() });
        assert_eq!(hsm.verify_mac(&key, &input, &wrong), mismatch);

        let mut tampered = message.clone();
        tampered[30] ^= 0x01; // one bit of the amount
        assert_eq!(hsm.verify_message_mac(&key, &tampered), mismatch);
        let mut truncated = input.clone();
        truncated.pop();
        assert_eq!(hsm.verify_mac(&key, &truncated, &mac), mismatch);
        assert_eq!(
            hsm.verify_message_mac(&key, &message[..10]),
            Err(SecurityError::MacInput(MacInputError::TooShort { len: 10 }))
        );
    }
}

#[test]
fn keys_are_used_only_for_their_purpose() {
    let hsm = hsm();
    let zpk = id("issuer:north-bank:zpk");
    assert!(matches!(
        hsm.generate_mac(&zpk, b"x"),
        Err(SecurityError::WrongKeyKind {
            expected: "a MAC key",
            ..
        })
    ));
    assert_eq!(
        hsm.generate_mac(&id("issuer:north-bank:mac"), b"x"),
        Err(SecurityError::UnknownKey(id("issuer:north-bank:mac")))
    );
    let p = pan("4012345678909");
    let block = encrypt_iso0(&key16(ACQ_TDES_ZPK), "1234", &p).expect("block");
    assert!(matches!(
        hsm.translate_pin(&id("acquirer:100002:mac"), &zpk, &p, &block),
        Err(SecurityError::WrongKeyKind {
            expected: "a zone PIN key",
            ..
        })
    ));
    assert!(matches!(
        hsm.translate_pin_dukpt(&zpk, &[0; 10], &block, &zpk, &p),
        Err(SecurityError::WrongKeyKind {
            expected: "a base derivation key",
            ..
        })
    ));
}

#[test]
fn translate_format_0_to_format_0() {
    let hsm = hsm();
    let p = pan("4012345678909");
    let from = id("acquirer:100002:zpk");
    let to = id("issuer:north-bank:zpk");
    let incoming = encrypt_iso0(&key16(ACQ_TDES_ZPK), "1234", &p).expect("block");
    let out = hsm
        .translate_pin(&from, &to, &p, &incoming)
        .expect("translate");
    assert_ne!(out, incoming);
    // What the issuer receives is what a PIN pad holding the issuer's key would have sent.
    assert_eq!(
        out,
        encrypt_iso0(&key16(ISS_TDES_ZPK), "1234", &p).expect("block")
    );
    assert_eq!(
        pin_seen_by_issuer(&hsm, PinSource::Zone(&to), &p, &out),
        Ok(Some("1234".to_owned()))
    );
    // And back: the acquirer's block comes out again.
    assert_eq!(hsm.translate_pin(&to, &from, &p, &out), Ok(incoming));
}

#[test]
fn translate_between_format_0_and_format_4() {
    let hsm = hsm();
    let p = pan("4111111111111111");
    let tdes_acq = id("acquirer:100002:zpk");
    let aes_iss = id("issuer:aes-bank:zpk");
    let incoming = encrypt_iso0(&key16(ACQ_TDES_ZPK), "987654", &p).expect("block");
    let out = hsm
        .translate_pin(&tdes_acq, &aes_iss, &p, &incoming)
        .expect("0 -> 4");
    assert!(matches!(out, EncryptedPinBlock::Iso4(_)), "{out:?}");
    assert_eq!(
        pin_seen_by_issuer(&hsm, PinSource::Zone(&aes_iss), &p, &out),
        Ok(Some("987654".to_owned()))
    );
    // The random half of format 4 makes each translation different.
    let again = hsm
        .translate_pin(&tdes_acq, &aes_iss, &p, &incoming)
        .expect("0 -> 4");
    assert_ne!(out, again);

    let aes_acq = id("acquirer:200001:zpk");
    let tdes_iss = id("issuer:north-bank:zpk");
    let incoming = encrypt_iso4(&key16(ACQ_AES_ZPK), "4321", &p, [9; 8]).expect("block");
    let out = hsm
        .translate_pin(&aes_acq, &tdes_iss, &p, &incoming)
        .expect("4 -> 0");
    assert_eq!(
        out,
        encrypt_iso0(&key16(ISS_TDES_ZPK), "4321", &p).expect("block")
    );
}

#[test]
fn published_format_4_block_is_read_under_its_zone() {
    let hsm = hsm();
    let block = EncryptedPinBlock::from_bytes(
        &hex::decode("E4BE5B623AF7E006AC319E5B93544564").expect("hex"),
    )
    .expect("16 bytes");
    // The vector's PAN 1234567890123456 fails Luhn; the module takes validated PANs only, so
    // check the block through the format 4 decipherment under the vector's key instead.
    let vector_pan = b"1234567890123456";
    let field = pinblock::decipher_iso4(
        &key16(ACQ_AES_ZPK),
        match &block {
            EncryptedPinBlock::Iso4(b) => b,
            EncryptedPinBlock::Iso0(_) => panic!("format 4 expected"),
        },
        vector_pan,
    );
    assert!(pinblock::decode_iso4_field(&field).is_ok());
    // Under a Luhn-valid PAN the same block does not decode: the PAN is bound in.
    let other = pan("4111111111111111");
    assert_eq!(
        hsm.translate_pin(
            &id("acquirer:200001:zpk"),
            &id("issuer:north-bank:zpk"),
            &other,
            &block
        ),
        Err(SecurityError::InvalidPinBlock {
            key: id("acquirer:200001:zpk")
        })
    );
}

#[test]
fn dukpt_to_zone() {
    let hsm = hsm();
    let p = pan("4012345678909");
    let to = id("issuer:north-bank:zpk");
    let bdk = id("bdk:test-tdes");
    // The published encrypted block of X9.24-1 Annex A.4, counter 1.
    let ksn = hex::decode("FFFF9876543210E00001").expect("hex");
    let vector = EncryptedPinBlock::from_bytes(&hex::decode("1B9C1845EB993A7A").expect("hex"))
        .expect("8 bytes");
    let out = hsm
        .translate_pin_dukpt(&bdk, &ksn, &vector, &to, &p)
        .expect("translate");
    assert_eq!(
        out,
        encrypt_iso0(&key16(ISS_TDES_ZPK), "1234", &p).expect("block")
    );

    // A terminal-side encryption at counter 2 translates as well.
    let ksn2 = hex::decode("FFFF9876543210E00002").expect("hex");
    let ipek = tdes_ipek(&key16(TDES_BDK), &ksn2).expect("ipek");
    let block = tdes_encrypt_pin(&ipek, &ksn2, "55555", &p).expect("encrypt");
    assert_eq!(
        pin_seen_by_issuer(
            &hsm,
            PinSource::Dukpt {
                bdk: &bdk,
                ksn: &ksn2
            },
            &p,
            &block
        ),
        Ok(Some("55555".to_owned()))
    );
    // Under the wrong counter the key differs and the block does not decode.
    assert_eq!(
        hsm.translate_pin_dukpt(&bdk, &ksn, &block, &to, &p),
        Err(SecurityError::InvalidPinBlock { key: bdk.clone() })
    );

    // AES DUKPT into a TDES zone: format 4 in, format 0 out.
    let aes_bdk = id("bdk:test-aes");
    let aes_ksn = hex::decode("123456789012345600000007").expect("hex");
    let initial = aes_initial_key(
        &key16(AES_BDK),
        &[0x12, 0x34, 0x56, 0x78, 0x90, 0x12, 0x34, 0x56],
    );
    let block = aes_encrypt_pin(&initial, &aes_ksn, "2468", &p, [3; 8]).expect("encrypt");
    let out = hsm
        .translate_pin_dukpt(&aes_bdk, &aes_ksn, &block, &to, &p)
        .expect("translate");
    assert_eq!(
        out,
        encrypt_iso0(&key16(ISS_TDES_ZPK), "2468", &p).expect("block")
    );
    // A TDES KSN with the AES BDK is refused by length.
    assert!(matches!(
        hsm.translate_pin_dukpt(&aes_bdk, &ksn, &block, &to, &p),
        Err(SecurityError::Ksn {
            source: KsnError::Length { expected: 12, .. },
            ..
        })
    ));
}

#[test]
fn bad_pin_blocks_are_rejected_without_panicking_or_values() {
    let hsm = hsm();
    let p = pan("4111111111111111");
    let from = id("acquirer:100002:zpk");
    let to = id("issuer:north-bank:zpk");
    let invalid = SecurityError::InvalidPinBlock { key: from.clone() };
    // Garbage, and a good block for another card.
    for block in [
        EncryptedPinBlock::Iso0([0; 8]),
        EncryptedPinBlock::Iso0([0xFF; 8]),
        encrypt_iso0(&key16(ACQ_TDES_ZPK), "1234", &pan("5555555555554444")).expect("block"),
        encrypt_iso0(&key16(ISS_TDES_ZPK), "1234", &p).expect("wrong key"),
    ] {
        assert_eq!(
            hsm.translate_pin(&from, &to, &p, &block),
            Err(invalid.clone())
        );
        let mut called = false;
        let r = hsm.use_clear_pin_block(PinSource::Zone(&from), &p, &block, &mut |_| called = true);
        assert_eq!(r, Err(invalid.clone()));
        assert!(!called, "no clear block for an invalid PIN block");
    }
    // Format 4 block under a TDES zone, format 0 under an AES zone.
    let err = hsm
        .translate_pin(&from, &to, &p, &EncryptedPinBlock::Iso4([1; 16]))
        .expect_err("format");
    assert!(
        matches!(err, SecurityError::PinBlockFormat { .. }),
        "{err:?}"
    );
    let aes_zone = id("acquirer:200001:zpk");
    let err = hsm
        .translate_pin(&aes_zone, &to, &p, &EncryptedPinBlock::Iso0([1; 8]))
        .expect_err("format");
    assert_eq!(
        err.to_string(),
        "a format 0 PIN block cannot be used with acquirer:200001:zpk (AES)"
    );
    // Errors name keys, never the PAN.
    let text = format!("{invalid:?} {invalid}");
    assert!(!text.contains("4111") && !text.contains("1234"), "{text}");
}

#[test]
fn debug_prints_no_key_material() {
    let keys = KeysFile::from_toml_str(&keys_text(), Path::new("k")).expect("keys");
    let hsm = SoftwareSecurityModule::from_keys(&keys).expect("module");
    let shown = format!("{hsm:?} {keys:?} {:?}", keys.acquirer[0].zpk);
    for key in [
        X919_KEY,
        CMAC_KEY,
        ACQ_TDES_ZPK,
        ACQ_AES_ZPK,
        ISS_TDES_ZPK,
        ISS_AES_ZPK,
        TDES_BDK,
        AES_BDK,
    ] {
        let bytes = key16(key);
        assert!(
            !shown.contains(key) && !shown.contains(&key.to_lowercase()),
            "{shown}"
        );
        assert!(!shown.contains(&format!("{:?}", &bytes[..4])), "{shown}");
        assert!(!shown.contains(&key[..8]), "{shown}");
    }
    assert!(shown.contains("acquirer:100002:mac (x9.19 MAC)"), "{shown}");
    assert!(shown.contains("bdk:test-aes (AES BDK)"), "{shown}");
    assert_eq!(hsm.key_ids().len(), 8);
}

#[test]
fn from_keys_validates_a_file_built_in_code() {
    let mut keys = KeysFile::from_toml_str(&keys_text(), Path::new("k")).expect("keys");
    keys.bdk[0].algorithm = "3des".into();
    keys.issuer[1].id = keys.issuer[0].id.clone();
    let err = SoftwareSecurityModule::from_keys(&keys).expect_err("invalid");
    let KeyError::Problems(problems) = err else {
        panic!("expected problems");
    };
    let names: Vec<&str> = problems.iter().map(|p| p.key.as_str()).collect();
    assert_eq!(names, ["issuer[1].id", "bdk[0].algorithm"]);
}

#[test]
fn shipped_keys_build_a_module() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/keys.toml");
    let keys = KeysFile::load(&path).expect("config/keys.toml");
    let hsm = SoftwareSecurityModule::from_keys(&keys).expect("module");
    let p = pan("4111111111111111");
    let block = encrypt_iso0(
        &key16(keys.acquirer[1].zpk.as_ref().expect("zpk").expose_hex()),
        "1234",
        &p,
    )
    .expect("block");
    let out = hsm
        .translate_pin(
            &id("acquirer:100002:zpk"),
            &id("issuer:east-bank:zpk"),
            &p,
            &block,
        )
        .expect("translate");
    assert_eq!(
        pin_seen_by_issuer(&hsm, PinSource::Zone(&id("issuer:east-bank:zpk")), &p, &out),
        Ok(Some("1234".to_owned()))
    );
    let mac = hsm
        .generate_mac(&id("acquirer:100002:mac"), b"0800")
        .expect("mac");
    assert_eq!(
        hsm.verify_mac(&id("acquirer:100002:mac"), b"0800", &mac),
        Ok(())
    );
}

/// A Luhn-valid PAN of 12-19 digits.
fn any_pan() -> impl Strategy<Value = Pan> {
    proptest::collection::vec(0u8..10, 11..=18).prop_map(|digits| {
        let mut text: Vec<u8> = digits.iter().map(|d| b'0' + d).collect();
        text.push(luhn_check_digit(&text));
        Pan::parse(&text).expect("luhn-valid by construction")
    })
}

fn any_pin() -> impl Strategy<Value = String> {
    "[0-9]{4,12}"
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Whatever the PIN, the PAN and the zones' algorithms, the issuer reads the PIN the
    /// cardholder entered.
    #[test]
    fn translation_recovers_the_pin(
        pin in any_pin(),
        pan in any_pan(),
        aes_in in any::<bool>(),
        aes_out in any::<bool>(),
        random in any::<[u8; 8]>(),
    ) {
        let hsm = hsm();
        let (from, block) = if aes_in {
            (id("acquirer:200001:zpk"), encrypt_iso4(&key16(ACQ_AES_ZPK), &pin, &pan, random).expect("block"))
        } else {
            (id("acquirer:100002:zpk"), encrypt_iso0(&key16(ACQ_TDES_ZPK), &pin, &pan).expect("block"))
        };
        let to = id(if aes_out { "issuer:aes-bank:zpk" } else { "issuer:north-bank:zpk" });
        let out = hsm.translate_pin(&from, &to, &pan, &block).expect("translate");
        prop_assert_eq!(
            pin_seen_by_issuer(&hsm, PinSource::Zone(&to), &pan, &out),
            Ok(Some(pin))
        );
    }

    #[test]
    fn dukpt_translation_recovers_the_pin(
        pin in any_pin(),
        pan in any_pan(),
        counter in 1u32..0x20_0000,
        aes in any::<bool>(),
    ) {
        prop_assume!(counter.count_ones() <= 10);
        let hsm = hsm();
        let (bdk, ksn, block) = if aes {
            let mut ksn = hex::decode("1234567890123456").expect("hex");
            ksn.extend_from_slice(&counter.to_be_bytes());
            let initial = aes_initial_key(&key16(AES_BDK), &[0x12, 0x34, 0x56, 0x78, 0x90, 0x12, 0x34, 0x56]);
            let block = aes_encrypt_pin(&initial, &ksn, &pin, &pan, [5; 8]).expect("encrypt");
            (id("bdk:test-aes"), ksn, block)
        } else {
            let mut ksn = hex::decode("FFFF9876543210E00000").expect("hex");
            ksn[7] |= (counter >> 16) as u8;
            ksn[8] = (counter >> 8) as u8;
            ksn[9] = counter as u8;
            let ipek = tdes_ipek(&key16(TDES_BDK), &ksn).expect("ipek");
            (id("bdk:test-tdes"), ksn.clone(), tdes_encrypt_pin(&ipek, &ksn, &pin, &pan).expect("encrypt"))
        };
        let to = id("issuer:north-bank:zpk");
        let out = hsm.translate_pin_dukpt(&bdk, &ksn, &block, &to, &pan).expect("translate");
        prop_assert_eq!(
            pin_seen_by_issuer(&hsm, PinSource::Zone(&to), &pan, &out),
            Ok(Some(pin))
        );
    }
}
