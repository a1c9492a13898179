//! Correctness under load, for CI: the whole stack in-process (the switch with journal
//! `sync = "always"`, North Bank's issuer host, Metro Pay on-us) on generated cards, driven by a
//! short open-loop run of 4 connections × 4 in flight at a modest rate. Every answer must be
//! what loadgen's model says, and nothing may time out or fail. Then the relay baseline and the
//! steps of the floor ladder, whose answers must echo their requests. These tests assert correctness, never timing.

use std::sync::Arc;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use simulators::loadgen::gencards::{GenOptions, generate, stack_issuers};
use simulators::loadgen::ladder::RelayWork;
use simulators::loadgen::mix::Mix;
use simulators::loadgen::relay::{EchoBackend, Relay, RelayOptions};
use simulators::loadgen::report::RunReport;
use simulators::loadgen::runner::{CLIENT_THREAD, Expect, RunOptions, run};
use simulators::loadgen::stack::{Stack, StackOptions};
use switch::clock::{Clock, SystemClock};
use switch::iso8583::{ISO87_ASCII, decode};
use switch::journal::{FileJournal, Journal, JournalOptions, read_all};

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

/// The response codes a run saw, in order.
fn codes(r: &RunReport) -> Vec<&str> {
    r.response_codes.keys().map(String::as_str).collect()
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
    let (_cards, data) = stack_cards(2_000, 3, false, false);
    // A routing table of a real network's size around the two issuers' BINs: every answer
    // still has to come from the right issuer (and the unknown BIN stay unknown).
    let opts = StackOptions {
        extra_bin_ranges: 20_000,
        ..StackOptions::default()
    };
    let stack = Stack::start(&data, &opts).await.expect("stack");
    let today = SystemClock.today();

    // Both issuers at once, then each alone: the remote path and the on-us path.
    let mut mixes = vec![data.mix.clone()];
    mixes.extend(data.issuers.iter().map(|g| g.mix.clone()));
    for (i, path) in mixes.into_iter().enumerate() {
        let mix = Arc::new(Mix::load(&path, today).expect("mix"));
        let mut o = options(stack.addr().to_string(), Expect::Switch, Some(400));
        // The first run watches the process the stack runs in (this one), as `--watch-pid`
        // watches a switch run apart.
        let watched = (i == 0).then(std::process::id);
        o.watch_pid = watched;
        let r = run(&o, mix).await.expect("run");
        assert_clean(&r);
        if let Some(pid) = watched {
            assert_eq!(r.watched_pid, Some(pid));
            assert!(!r.watched_rss_kib.is_empty(), "{}", r.to_text());
            // The same process as `getrusage` measures, read inside its window and in ticks of
            // 10 ms (user and system truncated apart): never more than that window's time
            // plus two ticks.
            let (watched_us, own_us) = (r.watched_cpu_us.unwrap(), r.cpu_us.unwrap());
            assert!(watched_us > 0, "{}", r.to_text());
            assert!(
                watched_us <= own_us + 20_000,
                "{watched_us} against {own_us} us"
            );
            assert!(
                r.to_text().contains("cpu watched  process"),
                "{}",
                r.to_text()
            );
        } else {
            assert_eq!(r.watched_cpu_us, None);
        }
        // The mix's declines did come back as such (1% each, over some hundreds of requests).
        assert!(
            r.response_codes.get("00").copied().unwrap_or(0) > 0,
            "{}",
            r.to_text()
        );
        assert!(r.response_codes.len() > 1, "{}", r.to_text());
        // A run of 2.3 s has two or three throughput buckets, each with its middle in seconds
        // since the start, in order and inside the run (the drain after it is milliseconds
        // here, but a slow machine may stretch it up to the request timeout).
        let at = &r.throughput_at_s;
        assert_eq!(at.len(), r.throughput_per_s.len(), "{at:?}");
        assert!(at.len() >= 2, "{at:?}");
        assert!(at.windows(2).all(|w| w[0] < w[1]), "{at:?}");
        assert!(at[0] > 0.0, "{at:?}");
        assert!(
            at[at.len() - 1] < r.warmup_s + r.duration_s + 10.0,
            "{at:?}"
        );
    }
    stack.shutdown().await;
}

/// The relay, plain and at each step of the floor ladder (`loadgen grid --ladder`): every answer
/// must be the echo of its own request, byte for byte, so the codec step gives back exactly what
/// it was given; the durable step must journal two records per transaction, none with card data.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_relay_returns_every_echo_to_its_sender() {
    let (_cards, mix) = plain_mix(100);
    let echo = EchoBackend::start("127.0.0.1:0").await.expect("echo");
    let (journal_dir, journal) = journal_in_tempdir();
    let works = [
        RelayWork::Raw,
        RelayWork::Codec,
        RelayWork::Durable(Arc::clone(&journal)),
    ];
    let mut durable_answered = 0;
    for work in works {
        let name = work.name();
        let durable = matches!(work, RelayWork::Durable(_));
        let r = through_relay(echo.local_addr().to_string(), work, &mix).await;
        assert_eq!(
            r.response_codes.keys().collect::<Vec<_>>(),
            vec!["echo"],
            "{name}"
        );
        if durable {
            durable_answered += r.answered;
        }
    }
    echo.shutdown().await;

    // Two journals in series: the durable relay in front of an echo that journals too.
    let (echo_dir, echo_journal) = journal_in_tempdir();
    let durable_echo =
        EchoBackend::start_with("127.0.0.1:0", RelayWork::Durable(Arc::clone(&echo_journal)))
            .await
            .expect("durable echo");
    let r = through_relay(
        durable_echo.local_addr().to_string(),
        RelayWork::Durable(Arc::clone(&journal)),
        &mix,
    )
    .await;
    durable_answered += r.answered;
    durable_echo.shutdown().await;
    // One record per answer at the echo (warmup included in `answered`), none with card data.
    let echoed = echo_journal.flush().await.expect("echo journal flushes");
    assert_eq!(echoed, r.answered);
    assert_no_card_data(echo_dir.path());

    // Two records per transaction at the relay, over both durable runs.
    let flushed = journal.flush().await.expect("journal flushes");
    assert!(durable_answered > 0);
    assert_eq!(flushed, 2 * durable_answered);
    assert_no_card_data(journal_dir.path());
}

/// With the load client on a runtime of its own, as `loadgen grid` runs it, the run's CPU splits
/// into the client's threads' share and the rest (here the relay and echo of this process); on
/// the caller's runtime it does not split.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cpu_splits_when_the_client_has_its_own_runtime() {
    let (_cards, mix) = plain_mix(100);
    let echo = EchoBackend::start("127.0.0.1:0").await.expect("echo");
    let relay = Relay::start(&RelayOptions {
        listen: "127.0.0.1:0".into(),
        backend: echo.local_addr().to_string(),
        pool: 1,
        work: RelayWork::Raw,
    })
    .await
    .expect("relay");
    let mut o = options(relay.local_addr().to_string(), Expect::Echo, None);
    o.duration = Duration::from_secs(1);

    let shared = run(&o, Arc::clone(&mix)).await.expect("run");
    assert_clean(&shared);
    assert!(shared.cpu_us.is_some());
    assert_eq!(shared.client_cpu_us, None);
    assert_eq!(shared.servers_cpu_us_per_answer, None);

    let client = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name(CLIENT_THREAD)
        .enable_all()
        .build()
        .expect("client runtime");
    let r = client
        .spawn(async move { run(&o, mix).await })
        .await
        .expect("client task")
        .expect("run");
    client.shutdown_background();
    assert_clean(&r);
    let (process, own) = (r.cpu_us.unwrap(), r.client_cpu_us.unwrap());
    // Both sides did work in the window: the client built and checked every request, the
    // relay and echo moved each one twice.
    assert!(own > 0 && own < process, "client {own} of {process} us");
    let servers = r.servers_cpu_us_per_answer.unwrap();
    assert!(servers > 0.0, "{}", r.to_text());
    assert!(r.to_text().contains("load client"), "{}", r.to_text());
    relay.shutdown().await;
    echo.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_run_drains_and_reports_what_it_measured() {
    let (_cards, mix) = plain_mix(100);
    // Ten minutes asked for, stopped (as Ctrl-C does in the CLI) once the target has echoed
    // 200 requests: closed loop, open loop, and open loop so slow that every connection is
    // asleep waiting for its next send when the stop comes.
    for (rate, stop_after) in [(None, 200), (Some(500), 200), (Some(4), 2)] {
        let stop = tokio_util::sync::CancellationToken::new();
        let echo = counting_echo(stop_after, stop.clone(), false).await;
        let mut o = options(echo.to_string(), Expect::Echo, rate);
        o.warmup = Duration::ZERO;
        o.duration = Duration::from_secs(600);
        o.stop = Some(stop);
        // A stop that did not work would run for ten minutes: fail long before.
        let r = tokio::time::timeout(Duration::from_secs(60), run(&o, Arc::clone(&mix)))
            .await
            .expect("the stopped run ends")
            .expect("run");
        let text = r.to_text();
        assert!(r.interrupted, "{text}");
        assert!(r.duration_s < 600.0, "{text}");
        // Echoed before the stop, though some were read after it (outside the window).
        assert!(r.answered >= stop_after, "{text}");
        assert!(r.answered_in_window > 0, "{text}");
        // Whatever went out was drained: answered, none lost, none failed.
        assert_eq!(r.answered, r.sent, "{text}");
        assert_clean(&r);
        assert!(text.contains("stopped early"), "{text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_whose_connections_all_close_ends_without_waiting_out_its_window() {
    let (_cards, mix) = plain_mix(10);
    // A target that takes each connection and closes it at once.
    let (listener, addr) = local_listener().await;
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            drop(socket);
        }
    });
    for rate in [None, Some(1_000)] {
        let mut o = options(addr.to_string(), Expect::Echo, rate);
        o.duration = Duration::from_secs(600);
        let r = tokio::time::timeout(Duration::from_secs(60), run(&o, Arc::clone(&mix)))
            .await
            .expect("the run ends when its connections have")
            .expect("run");
        let text = r.to_text();
        assert_eq!(r.answered, 0, "{text}");
        match rate {
            None => assert!(r.errors.total() > 0, "{text}"),
            // Open loop: the sends scheduled after the connections closed are not the target
            // falling behind, and are not reported as if they were.
            Some(_) => {
                assert_eq!(r.backlog, 0, "{text}");
                assert!(r.unsent_no_connection > 0, "{text}");
                assert!(
                    !r.is_clean(),
                    "a run that lost its connections is not clean"
                );
                assert!(text.contains("their connection had closed"), "{text}");
            }
        }
    }
}

/// Open loop, one of two connections closed by the target at once, the run stopped (as Ctrl-C
/// does) after the other has had 200 answers: the closed slot's sends left count up to where the
/// run was stopped, not to the ten minutes it was asked for.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sends_left_by_a_lost_connection_count_to_where_the_run_stopped() {
    const RATE: u64 = 1_000;
    let (_cards, mix) = plain_mix(10);
    let stop = tokio_util::sync::CancellationToken::new();
    let echo = counting_echo(200, stop.clone(), true).await;
    let mut o = options(echo.to_string(), Expect::Echo, Some(RATE));
    o.connections = 2;
    o.warmup = Duration::ZERO;
    o.duration = Duration::from_secs(600);
    o.stop = Some(stop);
    let r = tokio::time::timeout(Duration::from_secs(60), run(&o, mix))
        .await
        .expect("the stopped run ends")
        .expect("run");
    let text = r.to_text();
    assert!(r.interrupted, "{text}");
    assert!(r.answered >= 200, "{text}");
    assert!(r.unsent_no_connection > 0, "{text}");
    // The lost slot's share of the rate, over the window as it ended (and one for rounding).
    let most = (RATE / 2) as f64 * r.duration_s + 1.0;
    assert!(r.unsent_no_connection as f64 <= most, "{text}");
    // The surviving connection keeps up; at most the send due as the stop came is left.
    assert!(r.backlog <= 1, "{text}");
}

/// Closed loop, a terminal that redials every 2 requests with 2 in flight: the target holds
/// each connection's second answer for `HOLD`. The slot its first answer frees cannot be used
/// until the replacement is open, and the request that waited for it counts its latency from
/// when that slot came free, not from when the new connection opened: so every request after
/// the first connection's waited at least `HOLD`, and the median is at least that. (Counted from
/// the new connection, half of them would be answered at once.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_terminal_that_redials_charges_its_wait_to_the_requests_that_waited() {
    const HOLD: Duration = Duration::from_millis(50);
    let (_cards, mix) = plain_mix(10);
    let echo = holding_echo(HOLD).await;
    let o = redialing(echo, None, (1, 2), 2);
    let r = run(&o, mix).await.expect("run");
    assert_clean(&r);
    let text = r.to_text();
    let reconnects = r.reconnects.as_ref().expect("reconnects reported");
    assert!(reconnects.count >= 3, "{text}");
    let hold_us = u64::try_from(HOLD.as_micros()).expect("small");
    assert!(r.latency.p50_us >= hold_us, "{text}");
}

/// A target that hangs up after each answer (as some hosts do with terminals that dial per
/// transaction): a terminal that has used its connection up dials again, whether or not the
/// target has hung up by the time it looks. (Before, a slot that saw the hang-up first stopped
/// sending for the rest of the run.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_terminal_redials_after_a_target_that_hangs_up_each_time() {
    let (_cards, mix) = plain_mix(10);
    let echo = one_answer_echo().await;
    for rate in [None, Some(400)] {
        let o = redialing(echo, rate, (2, 1), 1);
        let r = run(&o, Arc::clone(&mix)).await.expect("run");
        assert_clean(&r);
        let text = r.to_text();
        assert_eq!(r.unsent_no_connection, 0, "{text}");
        let reconnects = r.reconnects.as_ref().expect("reconnects reported");
        assert!(reconnects.count >= 10, "{text}");
    }
}

/// Open loop, a terminal that dials per transaction, against a target that takes one
/// connection and then stops listening: the slot's replacement cannot be opened, so what it
/// still had to send inside the window is counted as sends with no connection, not as backlog.
/// (A connection closed once used up is replaced, not lost; one whose replacement fails is.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_terminal_whose_redial_fails_counts_its_sends_as_unsent() {
    let (_cards, mix) = plain_mix(10);
    let (listener, addr) = local_listener().await;
    tokio::spawn(async move {
        let Ok((socket, _)) = listener.accept().await else {
            return;
        };
        // No more connections: the next dial is refused.
        drop(listener);
        let codec = switch::net::framing::FrameCodec::new(simulators::loadgen::relay::framing());
        let mut framed = Framed::new(socket, codec);
        if let Some(Ok(frame)) = framed.next().await {
            echo(&mut framed, frame).await;
        }
    });
    let o = redialing(addr, Some(100), (1, 1), 1);
    let r = run(&o, mix).await.expect("run");
    let text = r.to_text();
    assert_eq!(r.answered, 1, "{text}");
    assert_eq!(r.errors.connection, 1, "the failed redial: {text}");
    assert!(r.unsent_no_connection > 0, "{text}");
    assert_eq!(r.backlog, 0, "{text}");
}

/// One second against the echo `target`, no warmup: C×P (`shape`) terminals that each dial
/// again after `n` requests.
fn redialing(
    target: std::net::SocketAddr,
    rate: Option<u64>,
    shape: (usize, usize),
    n: u64,
) -> RunOptions {
    RunOptions {
        connections: shape.0,
        inflight: shape.1,
        requests_per_connection: Some(n),
        warmup: Duration::ZERO,
        duration: Duration::from_secs(1),
        ..options(target.to_string(), Expect::Echo, rate)
    }
}

/// An echo backend that answers one request per connection and closes it.
async fn one_answer_echo() -> std::net::SocketAddr {
    test_target(|_, mut framed| async move {
        if let Some(Ok(frame)) = framed.next().await {
            echo(&mut framed, frame).await;
        }
    })
    .await
}

/// An echo backend that answers the first request of each connection at once and the second
/// after `hold` (then each one at once again): a target whose last answer before a terminal
/// hangs up is slow.
async fn holding_echo(hold: Duration) -> std::net::SocketAddr {
    test_target(move |_, mut framed| async move {
        let mut n = 0u64;
        while let Some(Ok(frame)) = framed.next().await {
            n += 1;
            if n == 2 {
                // The slow answer is the point of this backend, not a wait for another task.
                tokio::time::sleep(hold).await;
            }
            if !echo(&mut framed, frame).await {
                break;
            }
        }
    })
    .await
}

/// An echo backend that cancels `stop` once it has answered `n` requests, and goes on
/// answering. With `drop_first`, it closes the first connection it accepts at once.
async fn counting_echo(
    n: u64,
    stop: tokio_util::sync::CancellationToken,
    drop_first: bool,
) -> std::net::SocketAddr {
    let answered = Arc::new(std::sync::atomic::AtomicU64::new(0));
    test_target(move |index, mut framed| {
        let (answered, stop) = (Arc::clone(&answered), stop.clone());
        async move {
            if drop_first && index == 0 {
                return;
            }
            while let Some(Ok(frame)) = framed.next().await {
                if !echo(&mut framed, frame).await {
                    break;
                }
                if answered.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1 == n {
                    stop.cancel();
                }
            }
        }
    })
    .await
}

type Framed = tokio_util::codec::Framed<tokio::net::TcpStream, switch::net::framing::FrameCodec>;

/// A target on 127.0.0.1 speaking loadgen's framing: each connection it accepts (numbered from 0)
/// goes to `serve`, in a task of its own.
async fn test_target<F, Fut>(serve: F) -> std::net::SocketAddr
where
    F: Fn(u64, Framed) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let (listener, addr) = local_listener().await;
    tokio::spawn(async move {
        let mut index = 0;
        while let Ok((socket, _)) = listener.accept().await {
            let codec =
                switch::net::framing::FrameCodec::new(simulators::loadgen::relay::framing());
            tokio::spawn(serve(index, Framed::new(socket, codec)));
            index += 1;
        }
    });
    addr
}

/// A listener on a free port of 127.0.0.1, and its address.
async fn local_listener() -> (tokio::net::TcpListener, std::net::SocketAddr) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    (listener, addr)
}

/// Sends `frame`'s echo back; `false` when the connection is gone.
async fn echo(framed: &mut Framed, frame: switch::net::framing::Frame) -> bool {
    let echoed = switch::net::framing::Frame {
        header: frame.header,
        payload: simulators::loadgen::model::echo_of(&frame.payload).into(),
    };
    framed.send(echoed).await.is_ok()
}

/// One second of closed-loop load through a relay doing `work` in front of `backend`; every
/// answer clean. The relay is shut down before the report is returned.
async fn through_relay(backend: String, work: RelayWork, mix: &Arc<Mix>) -> RunReport {
    let relay = Relay::start(&RelayOptions {
        listen: "127.0.0.1:0".into(),
        backend,
        pool: 2,
        work,
    })
    .await
    .expect("relay");
    // Closed loop: as fast as it goes, for a short while.
    let mut o = options(relay.local_addr().to_string(), Expect::Echo, None);
    o.duration = Duration::from_secs(1);
    let r = run(&o, Arc::clone(mix)).await.expect("run");
    assert_clean(&r);
    relay.shutdown().await;
    r
}

/// A mix over `count` generated plain cards (no keys); the folder lives as long as the guard.
/// Cards for the stack's two issuers in a temporary folder (kept while the folder lives), with
/// `specials` special cards of each kind, PINs and keys with `security`, a test PKI with `tls`.
fn stack_cards(
    count: u64,
    specials: u32,
    security: bool,
    tls: bool,
) -> (tempfile::TempDir, simulators::loadgen::gencards::Generated) {
    let cards = tempfile::tempdir().expect("tempdir");
    let data = generate(&GenOptions {
        count,
        out: cards.path().to_owned(),
        issuers: stack_issuers(),
        specials,
        security,
        tls,
    })
    .expect("cards");
    (cards, data)
}

fn plain_mix(count: u64) -> (tempfile::TempDir, Arc<Mix>) {
    let (cards, data) = stack_cards(count, 1, false, false);
    let mix = Arc::new(Mix::load(&data.mix, SystemClock.today()).expect("mix"));
    (cards, mix)
}

/// A journal with the default options in a fresh temporary folder (kept alive by the guard).
fn journal_in_tempdir() -> (tempfile::TempDir, Arc<FileJournal>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let journal = FileJournal::open(dir.path(), JournalOptions::default())
        .expect("journal")
        .0;
    (dir, Arc::new(journal))
}

/// Every record in the journal at `dir` is a message without card data (fields 2, 14, 35, 45,
/// 52).
fn assert_no_card_data(dir: &std::path::Path) {
    for (_, payload) in read_all(dir).expect("journal reads") {
        let rec = decode(&ISO87_ASCII, payload).expect("a record is a message");
        for n in [2, 14, 35, 45, 52] {
            assert!(!rec.has(n), "field {n} in a journal record");
        }
    }
}

#[tokio::test]
async fn an_unreachable_target_is_a_clear_error() {
    let free = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = free.local_addr().expect("addr");
    drop(free);
    let (_cards, mix) = plain_mix(10);
    let e = run(&options(addr.to_string(), Expect::Switch, None), mix)
        .await
        .expect_err("no target");
    let text = e.to_string();
    assert!(text.contains(&addr.to_string()), "{text}");
}

/// `gen-cards --security` and the stack on its keys: acquirer 100001 must MAC, every request of
/// the mix carries a PIN block, the remote link is MACed, and the issuers verify the PINs. With
/// the acquirer's keys every answer is still the model's; without them the switch refuses every
/// request (63), and a wrong PIN gets 55 on both paths: the checks are really on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_macs_and_pins_every_answer_still_matches_the_model() {
    use simulators::loadgen::gencards::{ACQUIRER, pan};
    use simulators::loadgen::grid::terminal_keys;
    use switch::client::{AcquirerClient, ClientConfig, ClientOptions, TxnOptions};
    use switch::domain::{Amount, Currency, ResponseCode};

    let (_cards, data) = stack_cards(200, 2, true, false);
    let keys_path = data.keys.clone().expect("a keys file");
    let keys = Arc::new(
        terminal_keys(
            &keys_path,
            Some(&format!("acquirer:{ACQUIRER}:mac")),
            Some(&format!("acquirer:{ACQUIRER}:zpk")),
        )
        .expect("acquirer keys"),
    );
    let stack = Stack::start(&data, &StackOptions::default())
        .await
        .expect("stack");
    let mix = Arc::new(Mix::load(&data.mix, SystemClock.today()).expect("mix"));
    assert!(
        mix.txns.iter().all(|t| t.options.pin.is_some()),
        "every entry enters the PIN"
    );

    let mut o = options(stack.addr().to_string(), Expect::Switch, Some(300));
    o.keys = Arc::clone(&keys);
    let r = run(&o, Arc::clone(&mix)).await.expect("run");
    assert_clean(&r);
    assert!(
        r.response_codes.get("00").copied().unwrap_or(0) > 0,
        "{}",
        r.to_text()
    );

    // Without the MAC key the switch answers 63 to everything (the model expects otherwise).
    let mut plain = options(stack.addr().to_string(), Expect::Switch, Some(100));
    plain.duration = Duration::from_millis(500);
    let r = run(&plain, mix).await.expect("run");
    assert_eq!(codes(&r), ["63"], "{}", r.to_text());

    // A wrong PIN, remote (North Bank, translated and verified at its host) and on-us (Metro
    // Pay, verified in the switch): 55, on cards the run above may have used (one wrong PIN
    // does not block a card).
    let client = AcquirerClient::connect_with(
        stack.addr().to_string().as_str(),
        ClientConfig {
            terminal_id: "PINTEST1".into(),
            ..ClientConfig::default()
        },
        ClientOptions {
            keys,
            ..ClientOptions::default()
        },
    )
    .await
    .expect("connect");
    for g in &data.issuers {
        let card = pan(&g.bin, 100_000_000);
        let amount = Amount::parse_major("5.00", Currency::CNY).expect("amount");
        let wrong = client
            .purchase(&card, amount, TxnOptions::new().expiry("3012").pin("9999"))
            .await
            .expect("answered");
        assert_eq!(wrong.response_code, ResponseCode::IncorrectPin, "{}", g.id);
        let right = client
            .purchase(&card, amount, TxnOptions::new().expiry("3012").pin("1234"))
            .await
            .expect("answered");
        assert_eq!(right.response_code, ResponseCode::Approved, "{}", g.id);
    }
    stack.shutdown().await;
}

/// `gen-cards --tls` and `loadgen run --tls-*`: the stack's acquirer listener speaks TLS with the
/// generated test PKI and requires client certificates. With acquirer 100001's certificate every
/// answer is the model's. The checks are really on: with another acquirer's certificate every
/// request is refused (63, the certificate names no configured acquirer), and plain TCP gets no
/// answer at all (the handshake fails and the switch closes the connection). The issuer link is
/// on TLS as well. With `requests_per_connection`, terminals reconnect (and shake hands) every N
/// requests.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_tls_every_answer_still_matches_the_model() {
    use simulators::loadgen::gencards::{ACQUIRER, ACQUIRERS};

    let (cards, data) = stack_cards(200, 2, false, true);
    let pki = data.tls.clone().expect("a test PKI");
    let stack = Stack::start(&data, &StackOptions::default())
        .await
        .expect("stack");
    let target = stack.addr().to_string();
    let mix = Arc::new(Mix::load(&data.mix, SystemClock.today()).expect("mix"));

    let mut o = options(target.clone(), Expect::Switch, Some(300));
    o.tls = Some(pki.client_tls(ACQUIRER, &target).expect("client TLS"));
    let r = run(&o, Arc::clone(&mix)).await.expect("run");
    assert_clean(&r);
    assert!(
        r.response_codes.get("00").copied().unwrap_or(0) > 0,
        "{}",
        r.to_text()
    );

    // Terminals that dial per transaction: each connection (and TLS handshake) carries at most
    // N requests, in open loop and in closed loop, and every answer still matches the model.
    for (rate, n) in [(Some(300), 2), (None, 1)] {
        let mut o = options(target.clone(), Expect::Switch, rate);
        o.duration = Duration::from_millis(700);
        o.inflight = 2;
        o.requests_per_connection = Some(n);
        o.tls = Some(pki.client_tls(ACQUIRER, &target).expect("client TLS"));
        let r = run(&o, Arc::clone(&mix)).await.expect("run");
        assert_clean(&r);
        let re = r.reconnects.expect("reconnects reported");
        assert_eq!(re.requests_per_connection, n);
        assert!(re.count > o.connections as u64, "{}", r.to_text());
        // Every replaced connection carried exactly N, the last ones at most N.
        assert!(r.sent >= re.count * n, "{}", r.to_text());
        assert!(
            r.sent <= (re.count + o.connections as u64) * n,
            "{}",
            r.to_text()
        );
        assert!(re.p50_us > 0 && re.p50_us <= re.max_us, "{}", r.to_text());
    }

    // The command line: `loadgen run` with the `--tls-*` flags the generated switch-tls.toml's
    // header names, and `--requests-per-connection`.
    let client = pki.client(ACQUIRER).expect("100001's certificate");
    let json = cards.path().join("cli.json");
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_loadgen"));
    cmd.arg("run")
        .arg("--target")
        .arg(&target)
        .arg("--mix")
        .arg(&data.mix)
        .args([
            "-c",
            "2",
            "-p",
            "2",
            "--rate",
            "200",
            "--warmup-s",
            "0",
            "--duration-s",
            "1",
        ])
        .args(["--requests-per-connection", "5", "--quiet", "--json"])
        .arg(&json)
        .arg("--tls-ca")
        .arg(&pki.ca)
        .arg("--tls-cert")
        .arg(&client.cert)
        .arg("--tls-key")
        .arg(&client.key);
    let stdout = succeeds(cmd).await;
    let j: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&json).expect("report")).expect("JSON");
    assert!(j["answered"].as_u64().unwrap_or(0) > 0, "{stdout}");
    assert_eq!(j["mismatches"].as_u64(), Some(0), "{stdout}");
    assert_eq!(
        j["reconnects"]["requests_per_connection"].as_u64(),
        Some(5),
        "{stdout}"
    );
    assert!(
        j["reconnects"]["count"].as_u64().unwrap_or(0) > 0,
        "{stdout}"
    );

    // The other generated acquirer's certificate: a valid chain, but the stack configures no
    // acquirer with its identity.
    let other = ACQUIRERS[1];
    assert_ne!(other, ACQUIRER);
    let mut o = options(target.clone(), Expect::Switch, Some(100));
    o.duration = Duration::from_millis(500);
    o.tls = Some(pki.client_tls(other, &target).expect("client TLS"));
    let r = run(&o, Arc::clone(&mix)).await.expect("run");
    assert!(r.answered > 0, "{}", r.to_text());
    assert_eq!(codes(&r), ["63"], "{}", r.to_text());

    // The remote issuer's host listens on TLS too (the switch's links reached it, or the stack
    // would not have started): a client with the switch's link certificate completes a
    // handshake with it, which a plain TCP host never would.
    let (_, host) = stack.hosts().next().expect("a remote issuer host");
    let host_addr = host.local_addr().to_string();
    let link = switch::client::ClientTls::from_pem_files(
        &pki.ca,
        Some((&pki.link_cert, &pki.link_key)),
        None,
        &host_addr,
    )
    .expect("link TLS");
    switch::client::AcquirerClient::connect_with(
        host_addr.as_str(),
        switch::client::ClientConfig::default(),
        switch::client::ClientOptions {
            tls: Some(link),
            ..switch::client::ClientOptions::default()
        },
    )
    .await
    .expect("a TLS handshake with the issuer host");

    // Plain TCP to the TLS listener: nothing is answered, and every request is an error.
    let mut o = options(target, Expect::Switch, Some(100));
    o.duration = Duration::from_millis(500);
    o.timeout = Duration::from_secs(2);
    let r = run(&o, mix).await.expect("run");
    assert_eq!(r.answered, 0, "{}", r.to_text());
    assert!(r.errors.total() > 0, "{}", r.to_text());
    stack.shutdown().await;
}

/// `loadgen grid` end to end, in two rounds of one small point: it starts its stacks, runs the
/// relay, remote and on-us twice each, checks every answer (a mismatch or error fails the exit
/// code), and reports each round's rows and the medians' table, leaving the document alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_grid_command_runs_its_rounds() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let json = dir.path().join("grid.json");
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_loadgen"));
    cmd.arg("grid")
        .args(["--points", "2x2", "--rounds", "2", "--warmup-s", "0"])
        .args(["--duration-s", "1", "--cards", "200", "--no-doc", "--json"])
        .arg(&json);
    let stdout = succeeds(cmd).await;
    assert!(
        stdout.contains("each figure is the median of its point's 2 runs"),
        "{stdout}"
    );
    assert!(
        stdout.contains("Every answer of the 6 runs was checked"),
        "{stdout}"
    );
    let j: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&json).expect("report")).expect("JSON");
    assert_eq!(j["rounds"].as_u64(), Some(2));
    let rows = j["rows"].as_array().expect("rows");
    assert_eq!(rows.len(), 2);
    for (i, row) in rows.iter().enumerate() {
        assert_eq!(row["round"].as_u64(), Some(i as u64 + 1));
        assert_eq!(row["connections"].as_u64(), Some(2));
        for run in ["relay", "remote", "on_us"] {
            assert!(
                row[run]["answered"].as_u64().unwrap_or(0) > 0,
                "{run}: {stdout}"
            );
            assert_eq!(row[run]["mismatches"].as_u64(), Some(0), "{run}");
        }
    }

    // Zero rounds, or a point listed twice (its rows would mix), is a usage error, before
    // anything starts.
    for (args, says) in [
        (["--rounds", "0"], "--rounds"),
        (["--points", "2x2,4x1,2X2"], "listed twice"),
    ] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_loadgen"))
            .arg("grid")
            .args(args)
            .arg("--no-doc")
            .output()
            .expect("loadgen runs");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?}");
        assert!(stderr.contains(says), "{args:?}: {stderr}");
    }
}

/// Runs a loadgen command off the runtime's threads; its stdout, once it exited with success.
async fn succeeds(mut cmd: std::process::Command) -> String {
    let out = tokio::task::spawn_blocking(move || cmd.output())
        .await
        .expect("join")
        .expect("loadgen runs");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{}\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}
