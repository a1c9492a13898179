//! Runs the `acquirer-sim` binary against an in-test fake switch on 127.0.0.1:0 and checks what
//! it prints and how it exits.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Command, Output};
use std::thread;

use bytes::Bytes;
use switch::domain::ResponseCode;
use switch::iso8583::views::response_builder;
use switch::iso8583::{ISO87_ASCII, Message, decode};

/// Purchases above this many minor units are declined 51, like the 100.00 limit card.
const LIMIT_MINOR: u64 = 10_000;

/// The fake's answer: MTI + 10 with the usual echoed fields; 0800s get 70 and 00; others 00
/// with auth code A00001, or 51 above [`LIMIT_MINOR`].
fn answer(req: &Message) -> Vec<u8> {
    let amount = req
        .get(4)
        .and_then(|v| std::str::from_utf8(&v).ok()?.parse::<u64>().ok())
        .unwrap_or(0);
    let code = if amount > LIMIT_MINOR {
        ResponseCode::InsufficientFunds
    } else {
        ResponseCode::Approved
    };
    let mut b = response_builder(&ISO87_ASCII, req, code).expect("builder");
    b.copy_from(req, 70);
    if code == ResponseCode::Approved && !req.has(70) {
        b.set(38, b"A00001");
    }
    b.to_bytes().expect("encode").to_vec()
}

/// Serves one connection: 2-byte big-endian length, then the message. Answers unless `silent`.
fn serve(mut stream: TcpStream, silent: bool) {
    loop {
        let mut len = [0u8; 2];
        if stream.read_exact(&mut len).is_err() {
            return;
        }
        let mut payload = vec![0u8; usize::from(u16::from_be_bytes(len))];
        if stream.read_exact(&mut payload).is_err() {
            return;
        }
        if silent {
            continue;
        }
        let req =
            decode(&ISO87_ASCII, Bytes::from(payload)).expect("the simulator's request decodes");
        let resp = answer(&req);
        let mut out = (resp.len() as u16).to_be_bytes().to_vec();
        out.extend_from_slice(&resp);
        if stream.write_all(&out).is_err() {
            return;
        }
    }
}

/// A fake switch on 127.0.0.1:0, one thread per connection, for the life of the test process.
fn fake_switch(silent: bool) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            thread::spawn(move || serve(stream, silent));
        }
    });
    addr
}

fn sim(addr: SocketAddr, args: &[&str]) -> (i32, String, String) {
    let out: Output = Command::new(env!("CARGO_BIN_EXE_acquirer-sim"))
        .arg("--target")
        .arg(addr.to_string())
        .args(args)
        .output()
        .expect("run acquirer-sim");
    (
        out.status.code().expect("exit code"),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn last_line(s: &str) -> &str {
    s.lines().last().unwrap_or("")
}

#[test]
fn echo_is_answered() {
    let addr = fake_switch(false);
    let (code, out, err) = sim(addr, &["echo"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("> 0800 request"), "{out}");
    assert!(out.contains("< 0810 response"), "{out}");
    assert!(last_line(&out).starts_with("OK 00 stan="), "{out}");
}

#[test]
fn purchase_approved_prints_masked_messages_and_the_outcome() {
    let addr = fake_switch(false);
    let (code, out, err) = sim(
        addr,
        &[
            "purchase",
            "--pan",
            "4111110000000013",
            "--amount",
            "12.34",
            "--expiry",
            "3012",
            "--pin",
            "1234",
        ],
    );
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("> 0200 request"), "{out}");
    assert!(out.contains("< 0210 response"), "{out}");
    let outcome = last_line(&out);
    assert!(
        outcome.starts_with("APPROVED 00 auth=A00001 stan="),
        "{out}"
    );
    assert!(
        outcome.contains(" rrn=") && outcome.contains(" latency="),
        "{out}"
    );
    assert!(out.contains("411111******0013"), "{out}");
    assert!(
        !out.contains("4111110000000013"),
        "clear PAN printed:\n{out}"
    );
    assert!(
        out.contains("[8 bytes redacted]"),
        "PIN block not redacted:\n{out}"
    );
}

#[test]
fn purchase_declined_still_exits_zero() {
    let addr = fake_switch(false);
    let (code, out, err) = sim(
        addr,
        &[
            "purchase",
            "--pan",
            "4111110000000047",
            "--amount",
            "150.00",
        ],
    );
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        last_line(&out).starts_with("DECLINED 51 (Not sufficient funds) stan="),
        "{out}"
    );
}

#[test]
fn json_output_is_one_object_per_transaction() {
    let addr = fake_switch(false);
    let (code, out, err) = sim(
        addr,
        &[
            "--json",
            "purchase",
            "--pan",
            "4111110000000013",
            "--amount",
            "12.34",
        ],
    );
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(out.lines().count(), 1, "{out}");
    let v: serde_json::Value = serde_json::from_str(&out).expect("JSON");
    assert_eq!(v["action"], "purchase");
    assert_eq!(v["request_mti"], "0200");
    assert_eq!(v["response_code"], "00");
    assert_eq!(v["approved"], true);
    assert_eq!(v["auth_code"], "A00001");
    assert_eq!(v["amount"], "12.34");
    assert_eq!(v["pan"], "411111******0013");
}

#[test]
fn transport_and_usage_errors_have_their_exit_codes() {
    // A port nothing listens on any more.
    let closed = TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr");
    let (code, _, err) = sim(closed, &["echo"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("cannot connect"), "{err}");

    let silent = fake_switch(true);
    let (code, _, err) = sim(silent, &["--timeout-ms", "200", "echo"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("no response"), "{err}");

    let addr = fake_switch(false);
    let (code, _, err) = sim(
        addr,
        &[
            "purchase",
            "--pan",
            "4111110000000013",
            "--amount",
            "12.345",
        ],
    );
    assert_eq!(code, 2, "{err}");
    let (code, _, err) = sim(addr, &["purchase", "--amount", "12.34"]);
    assert_eq!(code, 2, "{err}");
    let (code, _, err) = sim(addr, &["--dialect", "iso93", "echo"]);
    assert_eq!(code, 2, "{err}");
}

#[test]
fn script_prints_one_line_per_step_and_fails_on_a_wrong_code() {
    let addr = fake_switch(false);
    let path = std::env::temp_dir().join(format!("acquirer-sim-test-{}.toml", std::process::id()));
    std::fs::write(
        &path,
        r#"
        [[step]]
        name = "hold"
        action = "preauth"
        pan = "4111110000000013"
        amount = "100.00"
        expect = "00"

        [[step]]
        action = "complete"
        of = "hold"
        amount = "80.00"
        expect = "00"

        [[step]]
        name = "too-much"
        action = "purchase"
        pan = "4111110000000047"
        amount = "150.00"
        expect = "00"
        "#,
    )
    .expect("write scenario");
    let (code, out, err) = sim(addr, &["script", path.to_str().expect("utf-8 path")]);
    let _ = std::fs::remove_file(&path);
    assert_eq!(code, 1, "{out}{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 4, "{out}");
    assert!(
        lines[0]
            .starts_with("PASS step 1 (hold): preauth 411111******0013 100.00 CNY -> APPROVED 00"),
        "{out}"
    );
    assert!(
        lines[1].starts_with("PASS step 2: complete 411111******0013 80.00 CNY -> APPROVED 00"),
        "{out}"
    );
    assert!(
        lines[2].starts_with("FAIL step 3 (too-much): purchase"),
        "{out}"
    );
    assert!(
        lines[2].contains("DECLINED 51") && lines[2].ends_with("expect=00"),
        "{out}"
    );
    assert_eq!(lines[3], "3 steps: 2 passed, 1 failed");
}
