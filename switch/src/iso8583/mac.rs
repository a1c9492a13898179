//! Where a message authentication code sits in an ISO 8583 message, and the bytes it covers.
//!
//! The rule, for every party and both directions: the MAC is in field 64, or in field 128 when
//! the message has a secondary bitmap (any field above 64). Either way it is the message's last
//! field, so its 8 bytes end the message. It covers the message from the MTI to the end of the
//! last field before the MAC, as encoded on the wire, with the MAC's bit already set in the
//! bitmap. The length header and any fixed header of the framing are not covered.
//!
//! This module owns that layout: [`encode_with_mac`] writes a message with its MAC, and
//! [`mac_field_of`] / [`has_mac`] say where a received message must carry it. It leaves the
//! algorithms and keys to the security module ([`crate::security`]), which sees only bytes: the
//! caller hands in a closure that computes the MAC. Plain synchronous code, no I/O.

use bytes::BytesMut;

use super::decode::Message;
use super::encode::MessageBuilder;
use super::error::EncodeError;

/// Bytes of a MAC (field 64 or 128).
pub const MAC_LEN: usize = 8;

/// What the builder holds in the MAC field until the MAC is computed: the bytes are covered by
/// nothing (the MAC input stops before them) and overwritten once the MAC is known.
static PLACEHOLDER: [u8; MAC_LEN] = [0; MAC_LEN];

/// The field that carries the MAC of a message with (`true`) or without a secondary bitmap.
pub const fn mac_field(secondary_bitmap: bool) -> u8 {
    if secondary_bitmap { 128 } else { 64 }
}

/// The field a received message must carry its MAC in: 128 when it has a secondary bitmap,
/// otherwise 64.
pub fn mac_field_of(msg: &Message) -> u8 {
    mac_field(msg.has(1))
}

/// True when `msg` carries a MAC where the rule puts it. A field 64 in a message with a
/// secondary bitmap does not count: there the MAC belongs in 128.
pub fn has_mac(msg: &Message) -> bool {
    msg.has(mac_field_of(msg))
}

/// Why a message could not be written with its MAC.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MacEncodeError<E> {
    #[error(transparent)]
    Encode(#[from] EncodeError),
    /// The closure that computes the MAC failed.
    #[error("MAC: {0}")]
    Mac(E),
}

/// Appends `b` to `dst` with its MAC: any field 64 or 128 already set is dropped, the MAC field
/// the rule asks for is set, the message is encoded, `mac` is given the encoded bytes it covers
/// (from the MTI up to the MAC) and its result is written as the last 8 bytes. On error `dst` is
/// as it was. `b` is left with the placeholder in its MAC field.
pub fn encode_with_mac<E>(
    b: &mut MessageBuilder<'_>,
    dst: &mut BytesMut,
    mac: impl FnOnce(&[u8]) -> Result<[u8; MAC_LEN], E>,
) -> Result<(), MacEncodeError<E>> {
    b.remove(64).remove(128);
    let field = mac_field(b.has_secondary_bitmap());
    b.set(field, &PLACEHOLDER);
    let start = dst.len();
    b.encode(dst)?;
    let end = dst.len();
    // The MAC field is the last one written, 8 raw bytes in every dialect.
    let covered = end - MAC_LEN;
    match mac(&dst[start..covered]) {
        Ok(code) => {
            dst[covered..end].copy_from_slice(&code);
            Ok(())
        }
        Err(e) => {
            dst.truncate(start);
            Err(MacEncodeError::Mac(e))
        }
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::iso8583::{DialectId, decode, samples};

    /// A stand-in for a real MAC: the XOR of the covered bytes folded into 8, plus the length.
    fn fold(data: &[u8]) -> Result<[u8; 8], ()> {
        let mut out = [0u8; 8];
        for (i, b) in data.iter().enumerate() {
            out[i % 8] ^= b;
        }
        out[0] = out[0].wrapping_add(data.len() as u8);
        Ok(out)
    }

    #[test]
    fn mac_goes_last_in_64_and_covers_everything_before_it_in_every_dialect() {
        for id in DialectId::ALL {
            let d = id.dialect();
            let mut b = samples::auth_request(d);
            b.set(64, b"STALEMAC");
            let mut out = BytesMut::new();
            encode_with_mac(&mut b, &mut out, fold).expect("encode");
            let msg = decode(d, out.clone().freeze()).expect("decodes");
            assert_eq!(mac_field_of(&msg), 64, "{id}");
            assert!(has_mac(&msg));
            let (data, code) = out.split_at(out.len() - MAC_LEN);
            assert_eq!(
                msg.get(64).as_deref(),
                Some(code),
                "{id}: the MAC is field 64"
            );
            assert_eq!(code, fold(data).expect("mac"), "{id}");
            // The bitmap the MAC covers already has bit 64 set.
            assert!(msg.has(64));
        }
    }

    #[test]
    fn a_secondary_bitmap_moves_the_mac_to_128() {
        let d = DialectId::Iso87Ascii.dialect();
        let mut b = samples::auth_request(d);
        b.set(64, b"STALEMAC")
            .set(90, b"010000000111252218000000010000100000000000");
        let mut out = BytesMut::new();
        encode_with_mac(&mut b, &mut out, fold).expect("encode");
        let msg = decode(d, out.clone().freeze()).expect("decodes");
        assert!(!msg.has(64), "the stale 64 is dropped");
        assert_eq!(mac_field_of(&msg), 128);
        let (data, code) = out.split_at(out.len() - MAC_LEN);
        assert_eq!(msg.get(128).as_deref(), Some(code));
        assert_eq!(code, fold(data).expect("mac"));
    }

    #[test]
    fn a_64_under_a_secondary_bitmap_is_no_mac() {
        let d = DialectId::Iso87Ascii.dialect();
        let mut b = samples::auth_request(d);
        b.set(64, b"MACBYTES")
            .set(90, b"010000000111252218000000010000100000000000");
        let msg = decode(d, b.to_bytes().expect("encode")).expect("decodes");
        assert!(!has_mac(&msg));
        let mut b = samples::auth_request(d);
        b.remove(64);
        let msg = decode(d, b.to_bytes().expect("encode")).expect("decodes");
        assert!(!has_mac(&msg));
    }

    #[test]
    fn a_failing_mac_leaves_the_buffer_as_it_was() {
        let d = DialectId::Iso87Ascii.dialect();
        let mut b = samples::auth_request(d);
        let mut out = BytesMut::from(&b"keep"[..]);
        let r = encode_with_mac(&mut b, &mut out, |_| Err::<[u8; 8], _>("no key"));
        assert_eq!(r, Err(MacEncodeError::Mac("no key")));
        assert_eq!(Bytes::from(out), Bytes::from_static(b"keep"));
    }
}
