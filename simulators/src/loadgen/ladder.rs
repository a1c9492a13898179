//! The floor ladder: the relay baseline with the least work any durable ISO 8583 switch must do
//! added one step at a time, so one grid run shows what each step costs against the relay.
//!
//! The throughput goals compare the switch with the raw relay ([`super::relay`]). When the
//! switch is far from them, the question is whether the gap is the switch's own overhead or
//! work no switch can skip. The ladder answers it by measurement, in the same process and
//! run as the relay and the switch (`loadgen grid --ladder`):
//!
//! 1. [`RelayWork::Raw`]: the relay as it is, bytes copied.
//! 2. [`RelayWork::Codec`]: every request and every answer is decoded with the switch's codec
//!    (`switch::iso8583::decode`, the ISO 8583:1987 ASCII dialect the grid's stack speaks) and
//!    encoded again from the decoded fields before it goes on: a switch must read what it routes
//!    and write what it forwards. The echo check in the load client then also proves the codec
//!    gives back the bytes it was given.
//! 3. [`RelayWork::Durable`]: step 2, plus two journal records per transaction in the switch's
//!    own journal (`switch::journal::FileJournal`, the grid's sync policy): the request (queued,
//!    not awaited, as the switch queues its request record) and the answer, whose ticket is
//!    awaited before the answer goes back, as the switch awaits its decision record. A record is
//!    the message re-encoded without its card data (fields 2, 14, 35, 45, 52): card data never
//!    reaches a journal in clear.
//! 4. Step 3 in front of an echo backend that also runs its answers through
//!    [`RelayWork::Durable`] (`EchoBackend::start_with`), with a journal of its own: the remote
//!    path's two durable writes in series (the switch's and the issuer host's).
//!
//! What the ladder leaves out on purpose, because a switch may organise it differently: routing,
//! screening, the duplicate window, PAN encryption, record formats, an issuer's decision (the
//! backend stays the echo). So step 3 is a floor (step 4 for the remote path) for "remote with the durable journal": no
//! design that decodes, re-encodes and journals can be cheaper on this machine than step 3 is
//! here, give or take how well its journal is written.

use std::sync::Arc;

use bytes::Bytes;
use switch::iso8583::{self, ISO87_ASCII, Message, MessageBuilder};
use switch::journal::{Admission, AppendTicket, FileJournal, Journal};

/// The work the relay does on each frame besides carrying it (see the module docs).
#[derive(Debug, Clone, Default)]
pub enum RelayWork {
    /// Bytes copied, nothing parsed.
    #[default]
    Raw,
    /// Decoded and re-encoded, both ways.
    Codec,
    /// Decoded and re-encoded, and journaled: the answer waits for its record.
    Durable(Arc<FileJournal>),
}

impl RelayWork {
    /// The ladder step's name, for labels and the table.
    pub fn name(&self) -> &'static str {
        match self {
            RelayWork::Raw => "relay",
            RelayWork::Codec => "relay+codec",
            RelayWork::Durable(_) => "relay+codec+journal",
        }
    }
}

/// Card data fields: left out of journal records.
const CARD_DATA: [u8; 5] = [2, 14, 35, 45, 52];

/// Why a frame could not be carried through a ladder step (it is dropped and counted).
#[derive(Debug, thiserror::Error)]
pub enum StepError {
    #[error("frame does not decode: {0}")]
    Decode(#[from] iso8583::DecodeError),
    #[error("frame does not encode again: {0}")]
    Encode(#[from] iso8583::EncodeError),
    #[error("journal refused the record: {0}")]
    Journal(#[from] switch::journal::JournalError),
}

/// A builder holding every field of `msg`, in wire form.
fn rebuild(msg: &Message) -> MessageBuilder<'_> {
    let mut fields = [0u8; 128];
    let mut n = 0;
    for f in msg.field_numbers() {
        fields[n] = f;
        n += 1;
    }
    let mut b = MessageBuilder::new(msg.dialect(), msg.mti_digits());
    b.copy_fields(msg, &fields[..n]);
    b
}

/// Which record of a transaction a frame makes in the durable step, as in the switch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Leg {
    /// A request on its way in: its record admits the transaction (refused when the journal's
    /// queue is full) and is covered by the answer's, as the switch's request record.
    Request,
    /// The answer to a request whose record was taken: awaited before the answer goes back, and
    /// never refused for the queue's depth, as the switch's decision record.
    Answer,
    /// The one record of a backend that journals only its answers (the durable echo, as an
    /// issuer host): admitted like a request, awaited like an answer.
    Only,
}

/// Carries `frame` through `work`: the bytes to send on, and for an answer of a durable step the
/// ticket to await before sending them.
pub fn step(
    work: &RelayWork,
    frame: Bytes,
    leg: Leg,
) -> Result<(Bytes, Option<AppendTicket>), StepError> {
    let journal = match work {
        RelayWork::Raw => return Ok((frame, None)),
        RelayWork::Codec => None,
        RelayWork::Durable(j) => Some(j),
    };
    let msg = iso8583::decode(&ISO87_ASCII, frame)?;
    let mut b = rebuild(&msg);
    let out = b.to_bytes()?;
    let Some(journal) = journal else {
        return Ok((out, None));
    };
    for n in CARD_DATA {
        b.remove(n);
    }
    // Encoded into a buffer of this thread's, which the journal copies: the switch's records
    // take no allocation each either (`Record::with_encoded`), and the floor must not pay
    // more than the switch does.
    thread_local! {
        static RECORD: std::cell::Cell<bytes::BytesMut> = std::cell::Cell::new(bytes::BytesMut::new());
    }
    let mut record = RECORD.take();
    record.clear();
    b.encode(&mut record)?;
    let queued = match leg {
        Leg::Request => journal
            .append_covered(&record, Admission::New)
            .map(|()| (out, None)),
        Leg::Answer => Ok((out, Some(journal.append_as(&record, Admission::Continuing)))),
        Leg::Only => Ok((out, Some(journal.append(&record)))),
    };
    RECORD.set(record);
    Ok(queued?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use switch::iso8583::samples;
    use switch::journal::{JournalOptions, read_all};

    fn sample() -> Bytes {
        samples::auth_request(&ISO87_ASCII)
            .to_bytes()
            .expect("sample encodes")
    }

    #[test]
    fn the_codec_step_gives_back_the_bytes_it_was_given() {
        let frame = sample();
        let (out, ticket) = step(&RelayWork::Codec, frame.clone(), Leg::Request).expect("carried");
        assert_eq!(out, frame);
        assert!(ticket.is_none());
    }

    #[test]
    fn a_frame_that_does_not_decode_is_refused() {
        let refused = step(&RelayWork::Codec, Bytes::from_static(b"01"), Leg::Request);
        assert!(matches!(refused, Err(StepError::Decode(_))), "{refused:?}");
    }

    #[tokio::test]
    async fn the_durable_step_journals_both_records_without_card_data() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let (journal, _) =
            FileJournal::open(dir.path(), JournalOptions::default()).expect("journal opens");
        let work = RelayWork::Durable(Arc::new(journal));
        let frame = sample();
        let (out, ticket) = step(&work, frame.clone(), Leg::Request).expect("request");
        assert_eq!(out, frame);
        assert!(
            ticket.is_none(),
            "the request's record is covered by the answer's"
        );
        let (_, ticket) = step(&work, frame.clone(), Leg::Answer).expect("answer");
        assert_eq!(ticket.expect("the answer waits").await.expect("durable"), 2);

        let records = read_all(dir.path()).expect("journal reads");
        assert_eq!(records.len(), 2);
        let full = iso8583::decode(&ISO87_ASCII, frame).expect("decodes");
        assert!(full.has(2) && full.has(35), "the sample carries card data");
        for (_, payload) in records {
            let rec = iso8583::decode(&ISO87_ASCII, payload).expect("a record is a message");
            assert!(CARD_DATA.iter().all(|&n| !rec.has(n)));
            assert_eq!(rec.get(11), full.get(11));
        }
    }
}
