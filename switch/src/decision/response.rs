//! Building the acquirer's answer. Responses use the request MTI plus 10 (a repeat is answered as
//! its original), echo the request's fields 2, 3, 4, 7, 11, 12, 13, 32, 37, 41, 42 and 49 where
//! present and valid, and add 38 and 39, plus 54 when there are balances to report. On a partial
//! approval field 4 carries the approved amount instead of the requested one.
//!
//! A field that failed its content check is never echoed: it could not be encoded, and the
//! acquirer matches on 11, 37 and 41, which are echoed whenever they are readable.

use bytes::Bytes;

use crate::domain::ResponseCode;
use crate::iso8583::views::{ECHOED_FIELDS, code_bytes, mti_of};
use crate::iso8583::{Dialect, EncodeError, Message, MessageBuilder};

/// What a decision adds to the echoed fields.
#[derive(Debug, Default, Clone, Copy)]
pub struct Additions<'a> {
    /// Field 38.
    pub auth_code: Option<&'a [u8]>,
    /// Field 4 replacement (partial approval): 12 digits.
    pub approved_amount: Option<&'a [u8]>,
    /// Field 54.
    pub additional_amounts: Option<&'a [u8]>,
}

/// Why no answer can be built.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AnswerError {
    #[error("acquirer request MTI has no response MTI")]
    NoResponseMti,
    #[error("internal: encoding the answer failed: {0}")]
    Encode(#[from] EncodeError),
}

/// Builds the answer to `req` with `code` and `add`, in `dialect`, in this call's frame, and
/// gives it to `f` (which encodes it, MACs it, or both). By reference, because the builder is
/// 2.5 KB and every move of it would be a copy (docs/performance.md, "Answers built in place").
pub fn with_answer<'a, R>(
    dialect: &'static Dialect,
    req: &'a Message,
    code: ResponseCode,
    add: &Additions<'a>,
    f: impl FnOnce(&mut MessageBuilder<'a>) -> R,
) -> Result<R, AnswerError> {
    let mut b = MessageBuilder::new(dialect, response_mti(req)?);
    fill_answer(&mut b, req, code, add);
    Ok(f(&mut b))
}

/// The answer to `req` built from the issuer's `reply`, given to `f` in place as
/// [`with_answer`] does: echoed request fields plus the reply's 38, 39 and 54, and the reply's
/// field 4 when it differs (partial approval).
pub fn with_relay<'a, R>(
    dialect: &'static Dialect,
    req: &'a Message,
    reply: &'a Message,
    f: impl FnOnce(&mut MessageBuilder<'a>) -> R,
) -> Result<R, AnswerError> {
    let mut b = MessageBuilder::new(dialect, response_mti(req)?);
    fill_relay(&mut b, req, reply);
    Ok(f(&mut b))
}

/// [`with_answer`]'s answer, encoded: the common case, where nothing is added to the builder.
pub fn answer_bytes(
    dialect: &'static Dialect,
    req: &Message,
    code: ResponseCode,
    add: &Additions<'_>,
) -> Result<Bytes, AnswerError> {
    with_answer(dialect, req, code, add, |b| b.to_bytes())?.map_err(AnswerError::from)
}

/// [`with_relay`]'s answer, encoded: the reply itself when it already is that answer (see
/// [`reply_as_answer`]), else built.
pub fn relay_bytes(
    dialect: &'static Dialect,
    req: &Message,
    reply: &Message,
) -> Result<Bytes, AnswerError> {
    if let Some(bytes) = reply_as_answer(dialect, req, reply) {
        // Every debug-build test that relays a reply checks the shortcut's premise.
        debug_assert_eq!(
            Some(&bytes),
            with_relay(dialect, req, reply, |b| b.to_bytes())
                .ok()
                .and_then(Result::ok)
                .as_ref(),
            "a reply relayed as received must be the answer building it writes"
        );
        return Ok(bytes);
    }
    with_relay(dialect, req, reply, |b| b.to_bytes())?.map_err(AnswerError::from)
}

/// The issuer's reply, shared rather than copied, when its bytes are exactly the answer
/// [`with_relay`] would build: both messages in `dialect` and cleanly decoded, the reply under the
/// request's response MTI, holding the fields the answer holds and no other (the request's valid
/// echoed fields, 39, and 4, 38 and 54 as the reply has them), and each echoed field as the
/// request has it. An issuer that echoes as this switch does (the issuer hosts use the same
/// [`with_answer`]) passes; one that adds a private field or changes an echoed one gets its
/// answer rebuilt. A clean decode re-encodes to its own bytes (the codec writes one form of each
/// field and reads no other), so equal fields (content and length: see below) and bitmaps mean
/// equal bytes.
fn reply_as_answer(dialect: &'static Dialect, req: &Message, reply: &Message) -> Option<Bytes> {
    let bit = |n: u8| 1u128 << (128 - u32::from(n));
    if !std::ptr::eq(req.dialect(), dialect)
        || !std::ptr::eq(reply.dialect(), dialect)
        || req.content_error().is_some()
        || reply.content_error().is_some()
        || reply.mti_digits() != response_mti(req).ok()?
    {
        return None;
    }
    let mut expect = bit(39);
    for n in ECHOED_FIELDS {
        if req.is_valid(n) {
            expect |= bit(n);
        }
    }
    for n in [4u8, 38, 54] {
        if reply.has(n) {
            expect |= bit(n);
        }
    }
    if reply.bitmap() != expect {
        return None;
    }
    // Field 4 is the reply's whichever way the rebuild takes it (the request's when equal).
    let echoed_as_sent = ECHOED_FIELDS
        .iter()
        .filter(|&&n| n != 4 && req.has(n))
        .all(|&n| match (req.field(n), reply.field(n)) {
            // The length too: in packed BCD an odd count of digits is padded with a leading
            // zero nibble, so "012345" and "12345" pack to the same bytes under different
            // length prefixes.
            (Some(a), Some(b)) => a.len() == b.len() && a.wire() == b.wire(),
            _ => false,
        });
    echoed_as_sent.then(|| reply.as_bytes().clone())
}

/// `req`'s response MTI (four digits).
fn response_mti(req: &Message) -> Result<[u8; 4], AnswerError> {
    let mti = mti_of(req).map_err(|_| AnswerError::NoResponseMti)?;
    Ok(mti
        .response()
        .ok_or(AnswerError::NoResponseMti)?
        .to_digits())
}

fn fill_answer<'a>(
    b: &mut MessageBuilder<'a>,
    req: &'a Message,
    code: ResponseCode,
    add: &Additions<'a>,
) {
    for n in ECHOED_FIELDS {
        if req.is_valid(n) {
            b.copy_from(req, n);
        }
    }
    b.set(39, code_bytes(code));
    if let Some(a) = add.auth_code {
        b.set(38, a);
    }
    if let Some(a) = add.approved_amount {
        b.set(4, a);
    }
    if let Some(a) = add.additional_amounts {
        b.set(54, a);
    }
}

fn fill_relay<'a>(b: &mut MessageBuilder<'a>, req: &'a Message, reply: &'a Message) {
    fill_answer(
        b,
        req,
        ResponseCode::SystemMalfunction,
        &Additions::default(),
    );
    for n in [38u8, 39, 54] {
        if reply.is_valid(n) {
            b.copy_from(reply, n);
        }
    }
    if reply.is_valid(4) && reply.get(4) != req.get(4) {
        b.copy_from(reply, 4);
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::iso8583::{ISO87_ASCII, decode, decode_lenient, samples};

    /// `b` encoded and decoded again in `d`: a message as the switch receives it.
    fn received(d: &'static Dialect, b: &MessageBuilder<'_>) -> Message {
        decode(d, b.to_bytes().expect("encode")).expect("decode")
    }

    #[test]
    fn format_error_answer_echoes_only_valid_fields() {
        let mut v = samples::auth_request(&ISO87_ASCII)
            .to_bytes()
            .expect("encode")
            .to_vec();
        v[40] = b'X'; // field 4
        let req = decode_lenient(&ISO87_ASCII, Bytes::from(v)).expect("structure");
        let bytes = answer_bytes(
            &ISO87_ASCII,
            &req,
            ResponseCode::FormatError,
            &Additions::default(),
        )
        .expect("answer");
        let resp = decode(&ISO87_ASCII, bytes).expect("decode");
        assert_eq!(&resp.mti_digits(), b"0110");
        assert_eq!(resp.get(39).as_deref(), Some(&b"30"[..]));
        assert!(!resp.has(4));
        for n in [11u8, 37, 41] {
            assert_eq!(resp.get(n), req.get(n), "field {n}");
        }
    }

    /// A message with no response MTI (a response itself) has no answer, and the encoder is
    /// never called.
    #[test]
    fn a_response_has_no_answer() {
        let mut r = MessageBuilder::new(&ISO87_ASCII, *b"0110");
        r.set(11, b"000777").set(39, b"00");
        let resp = decode(&ISO87_ASCII, r.to_bytes().expect("encode")).expect("decode");
        let mut called = false;
        let got = with_answer(
            &ISO87_ASCII,
            &resp,
            ResponseCode::Approved,
            &Additions::default(),
            |_| called = true,
        );
        assert_eq!(got, Err(AnswerError::NoResponseMti));
        assert!(!called);
        let got = with_relay(&ISO87_ASCII, &resp, &resp, |_| called = true);
        assert_eq!(got, Err(AnswerError::NoResponseMti));
        assert!(!called);
    }

    #[test]
    fn relay_takes_38_39_54_and_partial_amount() {
        let req = received(&ISO87_ASCII, &samples::auth_request(&ISO87_ASCII));
        let mut r = MessageBuilder::new(&ISO87_ASCII, *b"0110");
        r.set(11, b"000777")
            .set(39, b"10")
            .set(38, b"P00001")
            .set(4, b"000000001000")
            .set(49, b"156");
        r.set(54, b"0002156C000000000000");
        let reply = received(&ISO87_ASCII, &r);
        let resp = decode(
            &ISO87_ASCII,
            relay_bytes(&ISO87_ASCII, &req, &reply).expect("answer"),
        )
        .expect("d");
        assert_eq!(
            resp.get(11).as_deref(),
            Some(&b"000001"[..]),
            "the acquirer's STAN, not the link's"
        );
        assert_eq!(resp.get(39).as_deref(), Some(&b"10"[..]));
        assert_eq!(resp.get(38).as_deref(), Some(&b"P00001"[..]));
        assert_eq!(resp.get(4).as_deref(), Some(&b"000000001000"[..]));
        assert!(resp.has(54));
        // The reply echoes few of the request's fields: rebuilt, not passed on.
        assert_eq!(reply_as_answer(&ISO87_ASCII, &req, &reply), None);
    }

    /// A reply that is already the answer, in every dialect: an issuer host's approval with 38
    /// and 54, and a partial approval whose field 4 differs. Each is passed on as received and
    /// equals the rebuild; each way a reply can differ from the answer gets it rebuilt instead.
    #[test]
    fn a_reply_that_is_the_answer_is_passed_on_and_no_other() {
        use crate::iso8583::DialectId;
        for id in DialectId::ALL {
            let d = id.dialect();
            // With field 32 of an even number of digits, one of them a leading zero: in packed
            // BCD it shares its bytes with the same digits less that zero.
            let mut b = samples::auth_request(d);
            b.set(32, b"012345");
            let req = received(d, &b);
            let reply_with = |f: &dyn Fn(&mut MessageBuilder<'_>)| {
                let bytes = with_answer(
                    d,
                    &req,
                    ResponseCode::Approved,
                    &Additions::default(),
                    |b| {
                        b.set(38, b"A12345").set(54, b"0002156C000000010000");
                        f(b);
                        b.to_bytes()
                    },
                )
                .expect("answer")
                .expect("encode");
                decode(d, bytes).expect("reply")
            };
            let rebuilt = |reply: &Message| {
                with_relay(d, &req, reply, |b| b.to_bytes())
                    .expect("answer")
                    .expect("encode")
            };
            for reply in [
                reply_with(&|_| {}),
                reply_with(&|b| {
                    b.set(4, b"000000001000");
                }),
            ] {
                let passed = reply_as_answer(d, &req, &reply).expect("passed on");
                assert_eq!(&passed, reply.as_bytes(), "{id}");
                assert_eq!(passed, rebuilt(&reply), "{id}");
                assert_eq!(relay_bytes(d, &req, &reply).expect("relay"), passed, "{id}");
            }
            // An extra field, an echoed field changed, an echoed field missing, no 39: rebuilt,
            // and the rebuild differs from the reply.
            let extra = reply_with(&|b| {
                b.set(44, b"1");
            });
            let changed = reply_with(&|b| {
                b.set(41, b"TERM0002");
            });
            let missing = reply_with(&|b| {
                b.remove(37);
            });
            let no_39 = reply_with(&|b| {
                b.remove(39);
            });
            let shorter_32 = reply_with(&|b| {
                b.set(32, b"12345");
            });
            for (what, reply) in [
                ("extra", extra),
                ("changed", changed),
                ("missing", missing),
                ("no 39", no_39),
                ("32 without its leading zero", shorter_32),
            ] {
                assert_eq!(reply_as_answer(d, &req, &reply), None, "{id} {what}");
                assert_ne!(&rebuilt(&reply), reply.as_bytes(), "{id} {what}");
            }
            // Another dialect, or a reply under another MTI.
            let reply = reply_with(&|_| {});
            let other = if d.id == DialectId::Iso87Bcd {
                &ISO87_ASCII
            } else {
                &crate::iso8583::ISO87_BCD
            };
            assert_eq!(reply_as_answer(other, &req, &reply), None, "{id}");
            let financial = received(
                d,
                &samples::builder(d, *b"0210", &samples::AUTH_RESPONSE_FIELDS),
            );
            assert_eq!(reply_as_answer(d, &req, &financial), None, "{id}");
        }

        // A reply with a field that fails its check (a lenient decode): the rebuild leaves the
        // field out, so the reply is not passed on.
        let req = received(&ISO87_ASCII, &samples::auth_request(&ISO87_ASCII));
        // An approval to `req` in iso87-ascii, as an issuer host writes it.
        let approval = |req: &Message, add: Additions<'_>| {
            answer_bytes(&ISO87_ASCII, req, ResponseCode::Approved, &add).expect("answer")
        };
        let mut bytes = approval(
            &req,
            Additions {
                auth_code: Some(b"A12345"),
                ..Additions::default()
            },
        )
        .to_vec();
        let at = bytes
            .windows(6)
            .position(|w| w == b"A12345")
            .expect("field 38");
        bytes[at] = 0x07;
        let reply = decode_lenient(&ISO87_ASCII, bytes.into()).expect("lenient");
        assert!(reply.content_error().is_some() && reply.has(38) && !reply.is_valid(38));
        assert_eq!(reply_as_answer(&ISO87_ASCII, &req, &reply), None);
        let rebuilt = relay_bytes(&ISO87_ASCII, &req, &reply).expect("relay");
        assert!(!decode(&ISO87_ASCII, rebuilt).expect("answer").has(38));

        // A balance inquiry has no field 4; a reply that adds one is the answer as the rebuild
        // writes it (the reply's amount, since it differs from the request's none).
        let mut b = samples::auth_request(&ISO87_ASCII);
        b.set(3, b"310000").remove(4);
        let req = received(&ISO87_ASCII, &b);
        let reply = approval(
            &req,
            Additions {
                approved_amount: Some(b"000000005000"),
                ..Additions::default()
            },
        );
        let reply = decode(&ISO87_ASCII, reply).expect("reply");
        assert!(reply.has(4) && !req.has(4));
        let passed = reply_as_answer(&ISO87_ASCII, &req, &reply).expect("passed on");
        assert_eq!(&passed, reply.as_bytes());
        assert_eq!(
            relay_bytes(&ISO87_ASCII, &req, &reply).expect("relay"),
            passed
        );
    }
}
