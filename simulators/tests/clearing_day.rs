//! "A full day's traffic clears, settles to zero, and yields merchant statements", checked
//! automatically: a short loadgen run (purchases, preauthorizations, balance inquiries and its
//! declines) through the whole stack in-process, then the business day is closed and settled
//! from the switch's journal exactly as `switch cutover` and `switch settle` do, with the
//! shipped fee schedule (`config/fees.toml`). The stack runs on the system clock; the day is
//! closed by passing a `now` just after its cutover, as the command would see it that night.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use simulators::loadgen::gencards::{GenOptions, generate, stack_issuers};
use simulators::loadgen::mix::Mix;
use simulators::loadgen::runner::{Expect, RunOptions, run};
use simulators::loadgen::stack::{Stack, StackOptions};
use switch::clearing::files::file_name;
use switch::clearing::{ClearingRules, FeeSchedule, Job, cutover, cutover_instant, settle};
use switch::clock::{Clock, SystemClock};
use switch::events::Record;

/// `[switch] business_date_cutover` of the stack's configuration (the default, 23:00 UTC).
const CUTOVER_MINUTES: u16 = 23 * 60;

fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_days_load_clears_settles_to_zero_and_yields_merchant_statements() {
    let cards = tempfile::tempdir().expect("tempdir");
    let data = generate(&GenOptions {
        count: 500,
        out: cards.path().to_owned(),
        issuers: stack_issuers(),
        specials: 2,
        security: false,
        tls: false,
    })
    .expect("cards");
    let stack = Stack::start(&data, &StackOptions::default())
        .await
        .expect("stack");
    let mix = Arc::new(Mix::load(&data.mix, SystemClock.today()).expect("mix"));
    let report = run(
        &RunOptions {
            target: stack.addr().to_string(),
            rate: Some(300),
            warmup: Duration::from_millis(200),
            duration: Duration::from_secs(1),
            timeout: Duration::from_secs(10),
            expect: Expect::Switch,
            ..RunOptions::default()
        },
        mix,
    )
    .await
    .expect("load runs");
    assert_eq!(report.mismatches, 0, "{}", report.to_text());
    assert_eq!(report.errors.total(), 0, "{}", report.to_text());

    // The business days the load fell on (one, unless it straddled 23:00 UTC).
    let journal = stack.dir().join("switch");
    let days: Vec<_> = switch::clearing::files::read_journal(&journal)
        .expect("journal")
        .into_iter()
        .filter_map(|r| match r {
            Record::Request(q) => Some(q.business_date),
            _ => None,
        })
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    let last = *days.last().expect("the load journaled requests");

    let reports = tempfile::tempdir().expect("tempdir");
    let job = Job {
        journal_dir: journal,
        reports_dir: reports.path().to_owned(),
        rules: ClearingRules {
            cutover_minutes: CUTOVER_MINUTES,
            hold_expiry_h: 168,
            lookback_days: 30,
            carried_closed_max: 5_000_000,
        },
        names: Vec::new(),
    };
    let schedule = FeeSchedule::load(&workspace().join("config/fees.toml")).expect("fees");
    // The first moment of the next business day: the day has just ended.
    let night = cutover_instant(last, CUTOVER_MINUTES);
    let closed = cutover(&job, last, night).expect("cutover");
    assert_eq!(
        closed.iter().map(|c| c.business_date).collect::<Vec<_>>(),
        days
    );

    let mut sales = 0i64;
    let mut statements = 0usize;
    for day in &days {
        let c = closed
            .iter()
            .find(|c| c.business_date == *day)
            .expect("closed");
        assert!(c.exceptions.is_empty(), "{day}: {:?}", c.exceptions);
        let (settlement, merchants) = settle(&job, &schedule, *day, night).expect("settle");
        // Zero-sum per currency: the scheme is an institution too.
        let mut net: BTreeMap<u16, i64> = BTreeMap::new();
        for p in &settlement.positions {
            *net.entry(p.currency).or_default() += p.net_minor;
        }
        assert!(net.values().all(|v| *v == 0), "{day}: {net:?}");
        for m in &merchants {
            let file = reports
                .path()
                .join(day.to_string())
                .join("merchants")
                .join(file_name(&m.acquirer))
                .join(format!("{}.json", file_name(&m.merchant)));
            assert!(file.exists(), "{}", file.display());
            sales += m.sales_minor;
        }
        statements += merchants.len();
    }
    assert!(
        !closed.iter().all(|c| c.items.is_empty()),
        "nothing cleared"
    );
    assert!(statements > 0, "no merchant statement");
    assert!(sales > 0, "merchant statements without sales");
    stack.shutdown().await;
}
