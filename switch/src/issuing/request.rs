//! What the issuing engine is asked: [`IssuingRequest`], its [`RequestKind`], the idempotency key
//! [`IdemKey`] and the outcome of the PIN check [`PinCheck`].
//!
//! Owns the engine's input vocabulary and the adapters from the typed ISO 8583 views
//! ([`IssuingRequest::from_authorization`], [`IssuingRequest::from_reversal`]). It leaves field
//! validation to [`crate::iso8583::views`] (a request that reaches here is well formed) and every
//! rule to [`super::rules`].
//!
//! Why a separate request type instead of the views: the engine also runs inside the issuer
//! simulator and as stand-in, where requests do not come from a decoded message, and it must not
//! see what it has no business with (PIN blocks, track data). The PIN arrives only as the outcome
//! of a check made by whoever holds the keys.

use core::fmt;
use core::hash::{Hash, Hasher};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::domain::{
    AcquirerId, Amount, Currency, Decline, Expiry, Mti, Pan, ProcessingCode, Stan, TerminalId,
    TransmissionDateTime,
};
use crate::iso8583::views::{AuthorizationRequest, OriginalData, ReversalRequest};

/// The idempotency key of a request: acquirer (field 32), terminal (41), STAN (11) and
/// transmission date and time (7). A retry carries the same key and gets the first answer.
///
/// Reversals and completions name their original by field 90, which carries the acquirer, STAN
/// and transmission time but not the terminal; the adapters take the terminal from the reversal
/// or completion itself, since both come from the terminal that sent the original.
///
/// Not card data, so `Debug` and `Display` show it in clear: `100001/000042/1125221800/TERM0001`.
///
/// The key carries its own hash, computed once when it is built: a decision looks keys up
/// several times (idempotency, the hold it resolves, expiry, pruning), and the engine's maps then
/// only mix that word with their own key (see [`super::hash`]). Equality compares the hash first.
///
/// Packed into 32 bytes, half a cache line: an engine holds a key for every answered request of
/// its retry window, up to three times (its record's map, the pruning order, the hold-expiry
/// index), so every byte here is three bytes per record. The acquirer and the transmission time
/// are held as numbers (`AcquirerId::to_word`, `TransmissionDateTime::to_number`), which
/// give the parts back exactly; as their own types the key took 48 bytes.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct IdemKey {
    hash: u64,
    acquirer: u64,
    terminal: TerminalId,
    stan: Stan,
    transmission: u32,
}

/// Ordered by acquirer, STAN, transmission, terminal (the hash only follows the parts).
impl Ord for IdemKey {
    fn cmp(&self, other: &Self) -> core::cmp::Ordering {
        // The acquirer by its digits, as `AcquirerId` orders (a prefix first), not by its word;
        // the transmission's number orders as its ten digits do.
        (self.acquirer(), self.stan, self.transmission, self.terminal).cmp(&(
            other.acquirer(),
            other.stan,
            other.transmission,
            other.terminal,
        ))
    }
}

impl PartialOrd for IdemKey {
    fn partial_cmp(&self, other: &Self) -> Option<core::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl IdemKey {
    /// The key of a request from its four parts.
    pub fn new(
        acquirer: AcquirerId,
        terminal: TerminalId,
        stan: Stan,
        transmission: TransmissionDateTime,
    ) -> IdemKey {
        let acquirer = acquirer.to_word();
        let transmission = transmission.to_number();
        let mut term = [0u8; 8];
        term.copy_from_slice(terminal.as_bytes());
        // Bits 0-40 acquirer, 64-83 STAN, 96-127 transmission; then the terminal's bytes. Each
        // part has bits of its own, so equal keys and only equal keys give equal words.
        let first = u128::from(acquirer)
            | (u128::from(stan.value()) << 64)
            | (u128::from(transmission) << 96);
        let second = u128::from(u64::from_le_bytes(term));
        IdemKey {
            hash: super::hash::key_hash(first, second),
            acquirer,
            stan,
            transmission,
            terminal,
        }
    }

    /// The key of the original a reversal or completion refers to: field 90 plus the terminal of
    /// the reversal or completion.
    pub fn of_original(original: &OriginalData, terminal: TerminalId) -> IdemKey {
        IdemKey::new(
            original.acquirer,
            terminal,
            original.stan,
            original.transmission,
        )
    }

    /// Field 32.
    pub fn acquirer(&self) -> AcquirerId {
        AcquirerId::from_word(self.acquirer)
    }

    /// Field 41.
    pub const fn terminal(&self) -> TerminalId {
        self.terminal
    }

    /// Field 11.
    pub const fn stan(&self) -> Stan {
        self.stan
    }

    /// Field 7.
    pub fn transmission(&self) -> TransmissionDateTime {
        TransmissionDateTime::from_number(self.transmission)
    }

    /// The `Display` form, `acquirer/stan/transmission/terminal` (`100001/000123/1128093015/TERM0001`),
    /// built on the stack without a formatter: every ledger event and checkpointed record
    /// carries one, and `write!` through `Display` cost about 1,400 instructions a key
    /// (docs/performance.md, "Instructions per answer"). At most 38 bytes (11 + 6 + 10 + 8 and
    /// three separators). Each part is copied to its place at a size known when compiling (the
    /// acquirer's eleven padded bytes, then cut to its length): pushed part by part, each a
    /// `memcpy` call and a capacity check, it cost about 420 instructions a key in a profiling
    /// build (less where LTO inlined it: docs/performance.md, "Smaller futures, again").
    pub fn text(&self) -> arrayvec::ArrayString<40> {
        let acquirer = self.acquirer();
        let mut buf = [0u8; 40];
        let padded = acquirer.padded();
        buf[..padded.len()].copy_from_slice(padded);
        let n = acquirer.len();
        buf[n] = b'/';
        buf[n + 1..n + 7].copy_from_slice(&self.stan.to_field());
        buf[n + 7] = b'/';
        buf[n + 8..n + 18].copy_from_slice(self.transmission().as_bytes());
        buf[n + 18] = b'/';
        buf[n + 19..n + 27].copy_from_slice(self.terminal.as_bytes());
        // Digits, `/` and the terminal's `ans` bytes are ASCII, and the zeros after them too, so
        // this cannot fail; were it to, the text would come out empty, never a panic.
        let mut text = arrayvec::ArrayString::from_byte_string(&buf).unwrap_or_default();
        text.truncate(n + 27);
        text
    }

    /// Parses the `Display` form. The terminal comes last because it is `ans` and may itself
    /// contain `/`; the other three parts are digits.
    pub fn parse(text: &str) -> Option<IdemKey> {
        let mut parts = text.splitn(4, '/');
        let acquirer = AcquirerId::parse(parts.next()?).ok()?;
        let stan = Stan::from_field(parts.next()?.as_bytes()).ok()?;
        let transmission = TransmissionDateTime::from_field(parts.next()?.as_bytes()).ok()?;
        let terminal = TerminalId::from_field(parts.next()?.as_bytes()).ok()?;
        Some(IdemKey::new(acquirer, terminal, stan, transmission))
    }
}

/// The precomputed hash, as one word.
impl Hash for IdemKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(self.hash);
    }
}

impl fmt::Display for IdemKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text())
    }
}

impl fmt::Debug for IdemKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "IdemKey({self})")
    }
}

/// Serialised as its `Display` string: readable in a snapshot, and a plain string for postcard.
impl Serialize for IdemKey {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.text())
    }
}

impl<'de> Deserialize<'de> for IdemKey {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<IdemKey, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        IdemKey::parse(&text).ok_or_else(|| serde::de::Error::custom("malformed idempotency key"))
    }
}

/// The outcome of the PIN check, made by whoever can see the PIN (a security module, or
/// [`super::pin::verify_clear_pin`] in a simulator). The engine owns what follows from it: the
/// count of wrong tries and the block after too many.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default)]
pub enum PinCheck {
    /// No PIN in the request (field 52 absent). Not a verification: the try count is unchanged.
    #[default]
    Absent,
    /// The PIN matched the card's verification data.
    Verified,
    /// The PIN did not match.
    Wrong,
}

/// What a request asks the ledger to do.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum RequestKind {
    /// 0100: decide, and on approval place a hold (debits) or post at once (credits: refund 20,
    /// deposit 21). A balance inquiry (31) changes nothing.
    Authorization,
    /// 0200: decide, and on approval post at once.
    Financial,
    /// 0220 with field 90: post the hold placed by `original`, possibly for a different amount
    /// (field 4), and release the rest.
    Completion {
        /// The key of the authorization that placed the hold.
        original: IdemKey,
    },
    /// 0400 / 0420: void the hold (or undo the posting) of `original`, in full, or down to
    /// `replacement` (field 95: what remains).
    Reversal {
        /// The key of the request being reversed.
        original: IdemKey,
        /// Field 95's actual amount: what remains after the reversal. `None` reverses in full.
        replacement: Option<Amount>,
    },
    /// 0120 / 0220 without field 90: a decision somebody else already made (stand-in) that the
    /// ledger must record even past limits, funds, status or PIN. Only a wrong currency or
    /// amount refuses it.
    Advice {
        /// `true` posts at once (0220), `false` places a hold (0120).
        financial: bool,
    },
}

/// One request to the issuing engine.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct IssuingRequest {
    /// What to do with the ledger.
    pub kind: RequestKind,
    /// Idempotency key: a second request with this key gets the first answer.
    pub key: IdemKey,
    /// Field 2.
    pub pan: Pan,
    /// Field 3.
    pub processing_code: ProcessingCode,
    /// Field 4; absent only on a balance inquiry.
    pub amount: Option<Amount>,
    /// Field 49.
    pub currency: Currency,
    /// Field 18, the merchant category code.
    pub mcc: Option<u16>,
    /// Field 14, when the acquirer sent it.
    pub expiry: Option<Expiry>,
    /// Outcome of the PIN check; [`PinCheck::Absent`] without field 52.
    pub pin: PinCheck,
    /// Field 60 = `1`: the terminal accepts an approval for less than asked (answer 10).
    pub partial_supported: bool,
}

impl IssuingRequest {
    /// The request an 0100, 0200, 0120 or 0220 (or repeat) stands for. `pin` is the outcome of
    /// checking field 52, made by the caller.
    ///
    /// 0100 is an [`RequestKind::Authorization`], 0200 a [`RequestKind::Financial`], 0220 with
    /// field 90 a [`RequestKind::Completion`], 0120 and 0220 without field 90 an
    /// [`RequestKind::Advice`]. Any other MTI is [`Decline::InvalidTransaction`].
    pub fn from_authorization(
        req: &AuthorizationRequest<'_>,
        pin: PinCheck,
    ) -> Result<IssuingRequest, Decline> {
        let kind = match req.mti.original() {
            Mti::AUTH_REQUEST => RequestKind::Authorization,
            Mti::FINANCIAL_REQUEST => RequestKind::Financial,
            // An 0120 reports a stand-in decision; field 90 says whether the request it reports
            // was a 0200 (post at once) or a 0100 (hold).
            Mti::AUTH_ADVICE => RequestKind::Advice {
                financial: req
                    .original
                    .is_some_and(|o| o.mti.original() == Mti::FINANCIAL_REQUEST),
            },
            Mti::FINANCIAL_ADVICE => match &req.original {
                Some(original) => RequestKind::Completion {
                    original: IdemKey::of_original(original, req.terminal),
                },
                None => RequestKind::Advice { financial: true },
            },
            _ => return Err(Decline::InvalidTransaction),
        };
        // An 0120 advice names the request it reports in field 90. Keying it by that request
        // makes every resend of the advice (the switch's links give each its own STAN) land on
        // the same record, and an issuer that did see the original answers it as a retry
        // instead of holding twice.
        let key = match (kind, &req.original) {
            (RequestKind::Advice { .. }, Some(original)) => {
                IdemKey::of_original(original, req.terminal)
            }
            _ => IdemKey::new(req.acquirer, req.terminal, req.stan, req.transmission),
        };
        Ok(IssuingRequest {
            kind,
            key,
            pan: req.pan,
            processing_code: req.processing_code,
            amount: req.amount,
            currency: req.currency,
            mcc: req.mcc,
            expiry: req.expiry,
            pin,
            partial_supported: req.partial_approval_supported,
        })
    }

    /// The request an 0400 or 0420 (or repeat) stands for: a reversal of the original named by
    /// field 90, partial when field 95 is present.
    pub fn from_reversal(req: &ReversalRequest) -> IssuingRequest {
        IssuingRequest {
            kind: RequestKind::Reversal {
                original: IdemKey::of_original(&req.original, req.terminal),
                replacement: req.replacement.map(|r| r.transaction),
            },
            key: IdemKey::new(req.acquirer, req.terminal, req.stan, req.transmission),
            pan: req.pan,
            processing_code: req.processing_code,
            amount: Some(req.amount),
            currency: req.amount.currency(),
            mcc: None,
            expiry: None,
            pin: PinCheck::Absent,
            partial_supported: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn key() -> IdemKey {
        IdemKey::new(
            AcquirerId::parse("100001").unwrap(),
            TerminalId::from_field(b"TE/M0001").unwrap(),
            Stan::new(42).unwrap(),
            TransmissionDateTime::from_field(b"1125221800").unwrap(),
        )
    }

    #[test]
    fn key_text_round_trip_even_with_a_slash_in_the_terminal() {
        let k = key();
        assert_eq!(k.to_string(), "100001/000042/1125221800/TE/M0001");
        assert_eq!(IdemKey::parse(&k.to_string()), Some(k));
        assert_eq!(IdemKey::parse("100001/000042/1125221800"), None);
        assert_eq!(IdemKey::parse("1000x1/000042/1125221800/TERM0001"), None);
        let bytes = postcard::to_allocvec(&k).unwrap();
        assert_eq!(postcard::from_bytes::<IdemKey>(&bytes).unwrap(), k);
    }

    #[test]
    fn a_key_is_half_a_cache_line() {
        // Three copies per held record (docs/performance.md, "Idempotency records"): a field
        // added here costs the engine three times its size per request of the retry window.
        assert_eq!(size_of::<IdemKey>(), 32);
    }

    /// Valid parts of a key: acquirer ids of every length (leading zeros included), any STAN,
    /// transmission times across their range, terminals of any `ans` bytes.
    fn parts() -> impl Strategy<Value = (AcquirerId, Stan, TransmissionDateTime, TerminalId)> {
        (
            "[0-9]{1,11}",
            0..=Stan::MAX,
            (1u32..=12, 1u32..=31, 0u32..24, 0u32..60, 0u32..60),
            proptest::collection::vec(0x20u8..0x7F, 8),
        )
            .prop_map(|(a, stan, (mo, d, h, mi, s), term)| {
                let text = format!("{mo:02}{d:02}{h:02}{mi:02}{s:02}");
                (
                    AcquirerId::parse(&a).unwrap(),
                    Stan::new(stan).unwrap(),
                    TransmissionDateTime::from_field(text.as_bytes()).unwrap(),
                    TerminalId::from_field(&term).unwrap(),
                )
            })
    }

    /// Parts from pools so small that two keys often share their first parts, so that the order
    /// of the later ones is exercised too (random acquirers almost never tie).
    fn pooled_parts() -> impl Strategy<Value = (AcquirerId, Stan, TransmissionDateTime, TerminalId)>
    {
        (
            proptest::sample::select(vec!["0", "1", "01", "10", "00000000000", "99999999999"]),
            0u32..3,
            proptest::sample::select(vec!["0101000000", "1231235959", "0102000000"]),
            proptest::sample::select(vec![*b"TERM0001", *b"TERM0002", *b"term0001"]),
        )
            .prop_map(|(a, stan, t, term)| {
                (
                    AcquirerId::parse(a).unwrap(),
                    Stan::new(stan).unwrap(),
                    TransmissionDateTime::from_field(t.as_bytes()).unwrap(),
                    TerminalId::from_field(&term).unwrap(),
                )
            })
    }

    proptest! {
        /// The packed key gives its parts back, orders as the parts do, and is equal exactly
        /// when they are: what the 48-byte key of separate fields did.
        #[test]
        fn a_packed_key_keeps_its_parts_their_order_and_their_equality(
            (x, y) in prop_oneof![(parts(), parts()), (pooled_parts(), pooled_parts())],
        ) {
            let key = |(a, stan, t, term): (AcquirerId, Stan, TransmissionDateTime, TerminalId)| {
                IdemKey::new(a, term, stan, t)
            };
            let (kx, ky) = (key(x), key(y));
            prop_assert_eq!((kx.acquirer(), kx.stan(), kx.transmission(), kx.terminal()), x);
            prop_assert_eq!(kx.cmp(&ky), x.cmp(&y));
            prop_assert_eq!(kx == ky, x == y);
            prop_assert_eq!(
                kx.to_string(),
                format!("{}/{}/{}/{}", x.0, x.1, x.2, x.3)
            );
            prop_assert_eq!(IdemKey::parse(&kx.to_string()), Some(kx));
            // Serialised as exactly that text: what journals written through `write!` hold.
            prop_assert_eq!(
                postcard::to_allocvec(&kx).unwrap(),
                postcard::to_allocvec(&format!("{}/{}/{}/{}", x.0, x.1, x.2, x.3)).unwrap()
            );
        }
    }

    #[test]
    fn acquirer_ids_that_differ_only_in_leading_zeros_are_different_keys() {
        let with = |a: &str| {
            IdemKey::new(
                AcquirerId::parse(a).unwrap(),
                TerminalId::from_field(b"TERM0001").unwrap(),
                Stan::new(1).unwrap(),
                TransmissionDateTime::from_field(b"0101000000").unwrap(),
            )
        };
        let keys = ["1", "01", "001", "00000000001", "0", "00000000000"].map(with);
        for (i, a) in keys.iter().enumerate() {
            for b in &keys[i + 1..] {
                assert_ne!(a, b);
            }
        }
        assert_eq!(keys[1].acquirer().as_str(), "01");
        assert_eq!(
            keys[5].to_string(),
            "00000000000/000001/0101000000/TERM0001"
        );
    }

    #[test]
    fn the_longest_key_serialises_as_its_text_as_journals_already_hold_it() {
        // An 11-digit acquirer: the longest text. Journals written before the key was
        // formatted on the stack hold `collect_str`'s bytes, which are the text's.
        let k = IdemKey::new(
            AcquirerId::parse("12345678901").unwrap(),
            TerminalId::from_field(b"TE/M0001").unwrap(),
            Stan::new(999_999).unwrap(),
            TransmissionDateTime::from_field(b"1231235959").unwrap(),
        );
        let text = k.to_string();
        // Written out, so that a change to `Display` that would break old journals fails here.
        assert_eq!(text, "12345678901/999999/1231235959/TE/M0001");
        assert_eq!(
            postcard::to_allocvec(&k).unwrap(),
            postcard::to_allocvec(&text).unwrap()
        );
        assert_eq!(serde_json::to_string(&k).unwrap(), format!("\"{text}\""));
    }
}
