//! Crash recovery of a real `issuer-sim` process: purchases stream into it over TCP, it is killed
//! with SIGKILL in the middle, restarted on the same journal, and its balances must equal what its
//! journal says (a fresh engine replaying the journal) and every approval the client received must
//! be in the books.
//!
//! East Bank's link is MACed (AES-CMAC, `issuer:east-bank:mac`): the test's client plays the
//! switch's side of it with the test keys file.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;

use switch::client::{
    AcquirerClient, ClientConfig, ClientOptions, PinSetup, TerminalKeys, TxnOptions,
};
use switch::config::JournalSync;
use switch::domain::{Amount, Currency, Pan};
use switch::host::open_journal;
use switch::issuing::{Engine, IssuerFile};
use switch::security::KeysFile;

const CARD: &str = "6222020000000015";

fn keys_path() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/keys.toml")
}

/// A client that MACs as the switch does on East Bank's link.
async fn client(addr: &str, terminal: &str) -> AcquirerClient {
    let keys = KeysFile::load(&keys_path()).expect("keys");
    let mac = "issuer:east-bank:mac".parse().expect("key id");
    let keys = TerminalKeys::from_keys_file(&keys, Some(&mac), &PinSetup::None).expect("mac key");
    AcquirerClient::connect_with(
        addr,
        ClientConfig {
            terminal_id: terminal.into(),
            ..ClientConfig::default()
        },
        ClientOptions {
            keys: Arc::new(keys),
            ..ClientOptions::default()
        },
    )
    .await
    .expect("connect")
}

fn start_sim(config: &Path, journal: &Path) -> (Child, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_issuer-sim"))
        .args(["--config"])
        .arg(config)
        .args(["--listen", "127.0.0.1:0", "--journal-dir"])
        .arg(journal)
        .arg("--keys")
        .arg(keys_path())
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("issuer-sim starts");
    let stdout = child.stdout.take().expect("stdout");
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .expect("issuer-sim prints its address");
    let addr = line.trim().rsplit(' ').next().expect("address").to_owned();
    assert!(
        addr.starts_with("127.0.0.1:"),
        "unexpected first line: {line}"
    );
    (child, addr)
}

/// The available balance the issuer reports for `CARD` (balance inquiry over TCP).
async fn available(addr: &str) -> i64 {
    let c = client(addr, "BALQUERY").await;
    let r = c.balance(CARD).await.expect("balance inquiry answered");
    r.additional_amount(2)
        .expect("available balance in field 54")
        .minor()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_issuer_sim_recovers_exactly_what_its_journal_says() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let config = root.join("config/issuers/east-bank.toml");
    let tmp = std::env::temp_dir().join(format!("switchyard-crash-{}", std::process::id()));
    let journal = tmp.join("journal");
    let _ = std::fs::remove_dir_all(&tmp);

    let (mut child, addr) = start_sim(&config, &journal);
    let before = available(&addr).await;
    let client = Arc::new(client(&addr, "TERM0001").await);
    let amount = Amount::new(100, Currency::CNY);
    // Load: many purchases in flight; kill the process while they are.
    let mut tasks = Vec::new();
    for _ in 0..200 {
        let c = Arc::clone(&client);
        tasks.push(tokio::spawn(async move {
            c.purchase(CARD, amount, TxnOptions::new().expiry("3012"))
                .await
        }));
    }
    // Kill once at least one approval has come back, so the crash lands mid-stream.
    let mut approved = 0i64;
    let mut first = true;
    for t in tasks {
        if let Ok(Ok(r)) = t.await
            && r.is_approved()
        {
            approved += 1;
            if first {
                first = false;
                child.kill().expect("SIGKILL");
            }
        }
    }
    let _ = child.wait();
    assert!(approved >= 1, "at least one approval before the kill");

    // What the journal says: a fresh engine replaying it.
    let file = IssuerFile::load(&config).expect("issuer file");
    let engine = Engine::from_file(&file).expect("engine");
    let (j, _) = open_journal(&journal, JournalSync::Always, &engine).expect("journal");
    drop(j);
    let pan = Pan::parse(CARD.as_bytes()).expect("pan");
    let from_journal = engine.balances(&pan).expect("card").available.minor();

    let (mut child, addr) = start_sim(&config, &journal);
    let after = available(&addr).await;
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&tmp);

    assert_eq!(
        after, from_journal,
        "the restarted issuer holds exactly what its journal says"
    );
    // Every approval the client saw was journaled before it was sent, so it is in the books.
    assert!(
        before - after >= approved * 100,
        "approvals received ({approved}) are all charged: {before} -> {after}"
    );
    assert_eq!((before - after) % 100, 0, "whole purchases only");
}
