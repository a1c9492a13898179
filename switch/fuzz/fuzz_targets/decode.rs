//! Fuzzes the decoder of every dialect, strict and lenient. Whatever decodes leniently must also
//! survive field reads, the masked `Debug` print and a relay re-encode without panicking, and a
//! strictly valid message must relay back to the same bytes.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use switch::iso8583::{DialectId, MessageBuilder, decode, decode_lenient};

fuzz_target!(|data: &[u8]| {
    for id in DialectId::ALL {
        let d = id.dialect();
        let bytes = Bytes::copy_from_slice(data);
        if let Ok(m) = decode_lenient(d, bytes.clone()) {
            for n in m.field_numbers() {
                let _ = m.get(n);
            }
            let _ = format!("{m:?}");
        }
        if let Ok(m) = decode(d, bytes.clone()) {
            let mut relay = MessageBuilder::new(d, m.mti_digits());
            for n in m.field_numbers() {
                relay.copy_from(&m, n);
            }
            let out = relay.to_bytes().expect("a valid message re-encodes");
            assert_eq!(&out[..], data, "relay is byte-exact");
        }
    }
});
