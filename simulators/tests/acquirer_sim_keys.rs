//! Runs the `acquirer-sim` binary with terminal keys (`--keys`, `--mac-key`, `--dukpt`) against
//! an in-test fake switch that holds the switch's security module over the test keys file: it
//! checks each request's MAC and deciphers its PIN block, and MACs its answers for a MACing
//! acquirer.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::Command;
use std::sync::{Arc, mpsc};
use std::thread;

use bytes::Bytes;
use switch::decision::security::{PartyMac, pin_block};
use switch::domain::ResponseCode;
use switch::iso8583::views::{AuthorizationRequest, response_builder};
use switch::iso8583::{ISO87_ASCII, decode};
use switch::security::{
    KeyId, KeysFile, PinSource, SecurityModule, SecurityModuleExt, SoftwareSecurityModule,
};

fn keys_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../config/keys.toml")
}

fn module() -> Arc<dyn SecurityModule> {
    let keys = KeysFile::load(&keys_path()).expect("keys");
    Arc::new(SoftwareSecurityModule::from_keys(&keys).expect("module"))
}

fn id(t: &str) -> KeyId {
    t.parse().expect("key id")
}

/// What the fake saw of one request.
#[derive(Debug)]
struct Seen {
    mac_ok: Option<bool>,
    /// The clear PIN block, when the request's PIN block deciphered.
    clear_pin: Option<[u8; 8]>,
    ksn_hex: Option<String>,
    has_63: bool,
}

/// Reads each request, checks it as the switch would, reports it on `tx`, and answers 00
/// (MACed under 100002's key when the request came from 100002).
fn serve(mut stream: TcpStream, module: Arc<dyn SecurityModule>, tx: mpsc::Sender<Seen>) {
    let mac = PartyMac::new(module.clone(), id("acquirer:100002:mac"));
    loop {
        let mut len = [0u8; 2];
        if stream.read_exact(&mut len).is_err() {
            return;
        }
        let mut payload = vec![0u8; usize::from(u16::from_be_bytes(len))];
        if stream.read_exact(&mut payload).is_err() {
            return;
        }
        let req = decode(&ISO87_ASCII, Bytes::from(payload)).expect("request decodes");
        let from_100002 = req.get(32).as_deref() == Some(&b"100002"[..]);
        let view = AuthorizationRequest::from_message(&req).expect("authorization");
        let clear_pin = pin_block(&view).and_then(|block| {
            let zpk = if from_100002 {
                id("acquirer:100002:zpk")
            } else {
                id("acquirer:100001:zpk")
            };
            let bdk = match view.ksn.map(|k| k.as_bytes().len()) {
                Some(10) => Some(id("bdk:test-tdes")),
                Some(_) => Some(id("bdk:test-aes")),
                None => None,
            };
            let source = match (&bdk, &view.ksn) {
                (Some(bdk), Some(ksn)) => PinSource::Dukpt {
                    bdk,
                    ksn: ksn.as_bytes(),
                },
                _ => PinSource::Zone(&zpk),
            };
            module
                .with_clear_pin_block(source, &view.pan, &block, |c| *c)
                .ok()
        });
        let _ = tx.send(Seen {
            mac_ok: from_100002.then(|| mac.check(&req).is_ok()),
            clear_pin,
            ksn_hex: view.ksn.map(|k| k.to_field()),
            has_63: req.has(63),
        });
        let mut b = response_builder(&ISO87_ASCII, &req, ResponseCode::Approved).expect("builder");
        b.set(38, b"A00001");
        let resp = if from_100002 {
            mac.to_bytes(&mut b).expect("maced")
        } else {
            b.to_bytes().expect("encode")
        };
        let mut out = (resp.len() as u16).to_be_bytes().to_vec();
        out.extend_from_slice(&resp);
        if stream.write_all(&out).is_err() {
            return;
        }
    }
}

fn fake_switch() -> (SocketAddr, mpsc::Receiver<Seen>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (tx, rx) = mpsc::channel();
    let module = module();
    thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let (module, tx) = (module.clone(), tx.clone());
            thread::spawn(move || serve(stream, module, tx));
        }
    });
    (addr, rx)
}

fn sim(addr: SocketAddr, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_acquirer-sim"))
        .arg("--target")
        .arg(addr.to_string())
        .arg("--keys")
        .arg(keys_path())
        .args(args)
        .output()
        .expect("run acquirer-sim");
    (
        out.status.code().expect("exit code"),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

const PURCHASE: [&str; 9] = [
    "purchase",
    "--pan",
    "4111110000000013",
    "--amount",
    "1.00",
    "--expiry",
    "3012",
    "--pin",
    "1234",
];

/// The clear format 0 block of PIN 1234 for the purchase's card.
fn expected_clear_pin() -> [u8; 8] {
    let pan = switch::domain::Pan::parse(b"4111110000000013").expect("pan");
    switch::security::pinblock::iso0_clear_block("1234", &pan).expect("block")
}

#[test]
fn a_macing_acquirer_with_its_zone_pin_key() {
    let (addr, seen) = fake_switch();
    let mut args = vec!["--acquirer", "100002", "--mac-key", "acquirer:100002:mac"];
    args.extend(PURCHASE);
    let (code, out, err) = sim(addr, &args);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.lines().last().unwrap_or("").starts_with("APPROVED 00"),
        "{out}"
    );
    let s = seen.recv().expect("request seen");
    assert_eq!(s.mac_ok, Some(true), "the request's MAC verifies");
    assert_eq!(
        s.clear_pin,
        Some(expected_clear_pin()),
        "PIN under 100002's ZPK"
    );
    assert!(s.ksn_hex.is_none());
}

#[test]
fn dukpt_pin_pads_send_their_ksn() {
    for (kind, ksn, field_63, shown) in [
        ("tdes", "FFFF9876543210E00001", false, "[8 bytes redacted]"),
        (
            "aes",
            "123456789012345600000001",
            true,
            "[32 bytes redacted]",
        ),
    ] {
        let (addr, seen) = fake_switch();
        let mut args = vec!["--dukpt", kind];
        args.extend(PURCHASE);
        let (code, out, err) = sim(addr, &args);
        assert_eq!(code, 0, "{kind}: {out}{err}");
        let s = seen.recv().expect("request seen");
        assert_eq!(s.ksn_hex.as_deref(), Some(ksn), "{kind}: the first KSN");
        assert_eq!(s.has_63, field_63, "{kind}");
        assert_eq!(s.clear_pin, Some(expected_clear_pin()), "{kind}");
        assert!(
            out.contains(shown),
            "{kind}: the PIN block is redacted in the output:\n{out}"
        );
    }
}

#[test]
fn an_answer_without_the_expected_mac_is_an_error() {
    let (addr, _seen) = fake_switch();
    // 100001 is not MACed by the fake; a client that expects a MAC refuses the answer.
    let mut args = vec!["--mac-key", "acquirer:100002:mac"];
    args.extend(PURCHASE);
    let (code, out, err) = sim(addr, &args);
    assert_eq!(code, 1, "{out}{err}");
    assert!(err.contains("MAC missing"), "{err}");
}

#[test]
fn key_flags_need_a_keys_file_and_known_keys() {
    let (addr, _seen) = fake_switch();
    let out = Command::new(env!("CARGO_BIN_EXE_acquirer-sim"))
        .args(["--target", &addr.to_string(), "--dukpt", "tdes", "echo"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("need --keys"));
    let (code, _, err) = sim(addr, &["--mac-key", "acquirer:100001:mac", "echo"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("no key acquirer:100001:mac"), "{err}");
}
