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

/// [`with_relay`]'s answer, encoded.
pub fn relay_bytes(
    dialect: &'static Dialect,
    req: &Message,
    reply: &Message,
) -> Result<Bytes, AnswerError> {
    with_relay(dialect, req, reply, |b| b.to_bytes())?.map_err(AnswerError::from)
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
        let req = decode(
            &ISO87_ASCII,
            samples::auth_request(&ISO87_ASCII)
                .to_bytes()
                .expect("encode"),
        )
        .expect("req");
        let mut r = MessageBuilder::new(&ISO87_ASCII, *b"0110");
        r.set(11, b"000777")
            .set(39, b"10")
            .set(38, b"P00001")
            .set(4, b"000000001000")
            .set(49, b"156");
        r.set(54, b"0002156C000000000000");
        let reply = decode(&ISO87_ASCII, r.to_bytes().expect("encode")).expect("reply");
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
    }
}
