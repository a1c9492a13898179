//! Correctness under load, for CI: the whole stack in-process (the switch with journal
//! `sync = "always"`, North Bank's issuer host, Metro Pay on-us) on generated cards, driven by a
//! short open-loop run of 4 connections × 4 in flight at a modest rate. Every answer must be
//! what loadgen's model says, and nothing may time out or fail. Then the relay baseline, whose
//! answers must echo their requests. These tests assert correctness, never timing.

use std::sync::Arc;
use std::time::Duration;

use simulators::loadgen::gencards::{GenOptions, generate, stack_issuers};
use simulators::loadgen::mix::Mix;
use simulators::loadgen::relay::{EchoBackend, Relay, RelayOptions};
use simulators::loadgen::report::RunReport;
use simulators::loadgen::runner::{Expect, RunOptions, run};
use simulators::loadgen::stack::{Stack, StackOptions};
use switch::clock::{Clock, SystemClock};

fn options(target: String, expect: Expect, rate: Option<u64>) -> RunOptions {
    RunOptions {
        target,
        connections: 4,
        inflight: 4,
        rate,
        warmup: Duration::from_millis(300),
        duration: Duration::from_secs(2),
        timeout: Duration::from_secs(10),
        expect,
        samples: 10,
        ..RunOptions::default()
    }
}

fn assert_clean(r: &RunReport) {
    assert_eq!(
        r.mismatches,
        0,
        "mismatches: {:#?}\n{}",
        r.mismatch_samples,
        r.to_text()
    );
    assert_eq!(
        r.errors.total(),
        0,
        "errors: {:#?}\n{}",
        r.error_samples,
        r.to_text()
    );
    assert!(r.answered > 0, "nothing answered:\n{}", r.to_text());
    assert_eq!(r.answered, r.sent, "{}", r.to_text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_answer_matches_the_model_under_load() {
    let cards = tempfile::tempdir().expect("tempdir");
    let data = generate(&GenOptions {
        count: 2_000,
        out: cards.path().to_owned(),
        issuers: stack_issuers(),
        specials: 3,
    })
    .expect("cards");
    let stack = Stack::start(&data, &StackOptions::default())
        .await
        .expect("stack");
    let today = SystemClock.today();

    // Both issuers at once, then each alone: the remote path and the on-us path.
    let mut mixes = vec![data.mix.clone()];
    mixes.extend(data.issuers.iter().map(|g| g.mix.clone()));
    for path in mixes {
        let mix = Arc::new(Mix::load(&path, today).expect("mix"));
        let r = run(
            &options(stack.addr().to_string(), Expect::Switch, Some(400)),
            mix,
        )
        .await
        .expect("run");
        assert_clean(&r);
        // The mix's declines did come back as such (1% each, over some hundreds of requests).
        assert!(
            r.response_codes.get("00").copied().unwrap_or(0) > 0,
            "{}",
            r.to_text()
        );
        assert!(r.response_codes.len() > 1, "{}", r.to_text());
    }
    stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_relay_returns_every_echo_to_its_sender() {
    let cards = tempfile::tempdir().expect("tempdir");
    let data = generate(&GenOptions {
        count: 100,
        out: cards.path().to_owned(),
        issuers: stack_issuers(),
        specials: 1,
    })
    .expect("cards");
    let mix = Arc::new(Mix::load(&data.mix, SystemClock.today()).expect("mix"));
    let echo = EchoBackend::start("127.0.0.1:0").await.expect("echo");
    let relay = Relay::start(&RelayOptions {
        listen: "127.0.0.1:0".into(),
        backend: echo.local_addr().to_string(),
        pool: 2,
    })
    .await
    .expect("relay");
    // Closed loop: as fast as it goes, for a short while.
    let mut o = options(relay.local_addr().to_string(), Expect::Echo, None);
    o.duration = Duration::from_secs(1);
    let r = run(&o, mix).await.expect("run");
    assert_clean(&r);
    assert_eq!(r.response_codes.keys().collect::<Vec<_>>(), vec!["echo"]);
    relay.shutdown().await;
    echo.shutdown().await;
}

#[tokio::test]
async fn an_unreachable_target_is_a_clear_error() {
    let free = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = free.local_addr().expect("addr");
    drop(free);
    let cards = tempfile::tempdir().expect("tempdir");
    let data = generate(&GenOptions {
        count: 10,
        out: cards.path().to_owned(),
        issuers: stack_issuers(),
        specials: 1,
    })
    .expect("cards");
    let mix = Arc::new(Mix::load(&data.mix, SystemClock.today()).expect("mix"));
    let e = run(&options(addr.to_string(), Expect::Switch, None), mix)
        .await
        .expect_err("no target");
    let text = e.to_string();
    assert!(text.contains(&addr.to_string()), "{text}");
}
