//! End to end: traffic over TCP through the real switch (on a manual clock, so that it spans two
//! business days), then `cutover` and `settle` over its journal, and the figures in the reports
//! they write checked by hand against `config/fees.toml`.

mod common;

use std::sync::Arc;

use chrono::{NaiveDate, NaiveDateTime};
use common::*;
use switch::clearing::{FeeSchedule, Job, Role, SCHEME_ID, Settlement};
use switch::client::{TxnKind, TxnOptions, TxnResult};
use switch::clock::ManualClock;
use switch::config::IssuerKind;
use switch::domain::ResponseCode;
use switch::host::{Faults, IssuerHost};
use switch::net::server::IssuerHandle;
use switch::net::start::{StartOptions, SwitchServer};
use switch::security::KeysFile;

fn at(day: u32, h: u32, m: u32) -> NaiveDateTime {
    NaiveDate::from_ymd_opt(2026, 11, day)
        .and_then(|d| d.and_hms_opt(h, m, 0))
        .expect("time")
}

fn date(day: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 11, day).expect("date")
}

fn net(s: &Settlement, role: Role, id: &str) -> i64 {
    s.positions
        .iter()
        .find(|p| p.role == role && p.institution == id)
        .map(|p| p.net_minor)
        .unwrap_or_else(|| panic!("no position for {id}"))
}

#[track_caller]
fn approved(r: Result<TxnResult, switch::client::ClientError>, what: &str) -> TxnResult {
    let r = r.expect("answered");
    assert_code(&r, ResponseCode::Approved, what);
    r
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_day_of_traffic_clears_settles_to_zero_and_yields_merchant_statements() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let mut config = base_config(dir.path());
    config.clearing.reports_dir = dir.path().join("reports");
    config.switch.business_date_cutover = "23:00".into();
    let mut hosts: Vec<IssuerHost> = Vec::new();
    for ic in config
        .issuers
        .iter_mut()
        .filter(|i| i.kind == IssuerKind::Remote)
    {
        let journal = dir.path().join("issuers").join(&ic.id);
        let host = start_host(&ic.id, "127.0.0.1:0", &journal, Faults::default()).await;
        ic.endpoints = vec![host.local_addr().to_string()];
        hosts.push(host);
    }
    let clock = ManualClock::new(at(25, 10, 0));
    let server = SwitchServer::start(StartOptions {
        config: config.clone(),
        keys: KeysFile::load(&config.security.keys_file).expect("keys"),
        clock: clock.clone(),
        on_us: Arc::new(switch::onus::engine_factory),
    })
    .await
    .expect("switch starts");
    for h in &server.runtime.issuers {
        if let IssuerHandle::Remote { pool, .. } = h {
            tokio::time::timeout(WAIT, pool.wait_ready(1))
                .await
                .expect("issuer signs on")
                .expect("issuer link");
        }
    }
    let c = switch::client::AcquirerClient::connect(server.local_addr(), Default::default())
        .await
        .expect("client connects");
    let o = || TxnOptions::new().expiry("3012");

    // Business day 25 (10:00). The client sends MCC 5411 (grocery), field 22 = 021 (card
    // present), merchant MERCHANT0000001, acquirer 100001.
    let credit = approved(c.purchase(NB_CREDIT, cny("100.00"), o()).await, "credit");
    approved(c.purchase(EB_DEBIT, cny("50.00"), o()).await, "debit");
    let hold = approved(c.preauth(NB_CREDIT, cny("200.00"), o()).await, "hold");
    approved(c.purchase(MP_PREPAID, cny("30.00"), o()).await, "prepaid");
    let undone = approved(c.purchase(EB_DEBIT, cny("20.00"), o()).await, "undone");
    approved(
        c.reverse(&undone, cny("20.00"), None).await,
        "same-day reversal",
    );
    approved(
        c.request(TxnKind::Refund, NB_CREDIT, Some(cny("10.00")), o())
            .await,
        "refund",
    );
    let declined = c
        .purchase(NB_LOW_LIMIT, cny("500.00"), o())
        .await
        .expect("answered");
    assert_code(&declined, ResponseCode::InsufficientFunds, "over the limit");

    // 23:30 on the 25th is business day 26: the hold is completed and the first purchase
    // reversed after the cutover that cleared it.
    clock.set(at(25, 23, 30));
    approved(c.complete(&hold, cny("180.00")).await, "completion");
    approved(
        c.reverse(&credit, cny("100.00"), None).await,
        "late reversal",
    );
    // Still open at the end of day 26: authorized, not captured.
    clock.set(at(26, 12, 0));
    approved(c.preauth(EB_DEBIT, cny("15.00"), o()).await, "open hold");

    drop(c);
    server.shutdown().await;
    for h in hosts {
        h.shutdown().await;
    }

    let job = Job::from_config(&config, None).expect("job");
    let schedule = FeeSchedule::load(&root().join("config/fees.toml")).expect("fees");
    let now = at(27, 12, 0);
    // Day 26 has not ended at 22:00 on the 26th.
    assert!(switch::clearing::cutover(&job, date(26), at(26, 22, 0)).is_err());
    let closed = switch::clearing::cutover(&job, date(26), now).expect("cutover");
    let days: Vec<NaiveDate> = closed.iter().map(|c| c.business_date).collect();
    assert_eq!(days, vec![date(25), date(26)]);
    assert_eq!(closed[0].items.len(), 4, "{:#?}", closed[0].items);
    assert_eq!(closed[0].reversals.len(), 1);
    assert_eq!(closed[0].authorized_not_captured.len(), 1);
    assert_eq!(closed[1].items.len(), 2);
    assert_eq!(closed[1].authorized_not_captured.len(), 1);
    assert!(closed.iter().all(|c| c.exceptions.is_empty()));

    // Day 25, per item (fen), from config/fees.toml:
    //   credit 100.00, grocery, present: interchange 0.80% + 0.05 = 85; scheme 2 bps + 0.01 = 3
    //     (acquirer), 1.5 bps + 0.01 = 2.5 -> 3 (issuer); MDR (merchant row) 1.50% = 150
    //   debit 50.00, present: 0.45% = 22.5 -> 23; scheme 1 + 1 = 2, 0.75 + 1 = 1.75 -> 2; MDR 75
    //   prepaid 30.00: 0.90% = 27; scheme 0.6 + 1 = 1.6 -> 2, 0.45 + 1 = 1.45 -> 1; MDR 45
    //   refund 10.00 credit: interchange 0.80% + 0.05 = 13 given back; scheme 1.2 -> 1, 1.15 -> 1
    //   acquirer: 17000 - (85 + 23 + 27 - 13) - (3 + 2 + 2 + 1) = 16870
    //   north-bank: -10000 + 1000 + 85 - 13 - 3 - 1 = -8932; east-bank: -5000 + 23 - 2 = -4979;
    //   metro-pay: -3000 + 27 - 1 = -2974; scheme: 8 + 4 + 2 + 1 = 15.
    let (s25, m25) = switch::clearing::settle(&job, &schedule, date(25), now).expect("settle 25");
    assert_eq!(net(&s25, Role::Acquirer, "100001"), 16_870);
    assert_eq!(net(&s25, Role::Issuer, NORTH), -8_932);
    assert_eq!(net(&s25, Role::Issuer, EAST), -4_979);
    assert_eq!(net(&s25, Role::Issuer, METRO), -2_974);
    assert_eq!(net(&s25, Role::Scheme, SCHEME_ID), 15);
    assert_eq!(s25.positions.iter().map(|p| p.net_minor).sum::<i64>(), 0);
    // The merchant: sales 180.00 (3), refunds 10.00, MDR 2.70, payout 167.30.
    assert_eq!(m25.len(), 1);
    let m = &m25[0];
    assert_eq!((m.sales_count, m.sales_minor), (3, 18_000));
    assert_eq!((m.refunds_count, m.refunds_minor), (1, 1_000));
    assert_eq!((m.mdr_minor, m.net_payout_minor), (270, 16_730));

    // Day 26: the completion 180.00 (the hold's MCC and card presence): interchange
    // 144 + 5 = 149, scheme 3.6 + 1 -> 5 and 2.7 + 1 -> 4, MDR 270; the late reversal gives back
    // 10000, 85, 3, 3 and 150. Acquirer 8000 - 64 - 2 = 7934; north-bank -8000 + 64 - 1 =
    // -7937; scheme 3. Merchant: sales 80.00, MDR 1.20, payout 78.80.
    let (s26, m26) = switch::clearing::settle(&job, &schedule, date(26), now).expect("settle 26");
    assert_eq!(net(&s26, Role::Acquirer, "100001"), 7_934);
    assert_eq!(net(&s26, Role::Issuer, NORTH), -7_937);
    assert_eq!(net(&s26, Role::Scheme, SCHEME_ID), 3);
    assert_eq!(
        (
            m26[0].sales_minor,
            m26[0].mdr_minor,
            m26[0].net_payout_minor
        ),
        (8_000, 120, 7_880)
    );

    // The files, in three forms each.
    let day25 = job.day_dir(date(25));
    for stem in ["clearing", "settlement", "merchants/100001/MERCHANT0000001"] {
        for ext in ["txt", "csv", "json"] {
            let path = day25.join(format!("{stem}.{ext}"));
            assert!(path.exists(), "{} missing", path.display());
        }
    }
    assert!(day25.join("carry-over.json").exists());
    let text = std::fs::read_to_string(day25.join("merchants/100001/MERCHANT0000001.txt"))
        .expect("statement");
    assert!(text.contains("167.30"), "{text}");
    let csv = std::fs::read_to_string(day25.join("settlement.csv")).expect("csv");
    assert!(
        csv.lines().any(
            |l| l.starts_with("acquirer,100001,Harbor Acquiring,CNY") && l.ends_with(",168.70")
        ),
        "{csv}"
    );
    let json: Settlement = serde_json::from_str(
        &std::fs::read_to_string(day25.join("settlement.json")).expect("json"),
    )
    .expect("settlement json reads back");
    assert_eq!(json, s25);

    // Closing day 26 again from day 25's carry-over gives the same figures.
    let again = switch::clearing::cutover(&job, date(26), now).expect("cutover again");
    assert_eq!(again.len(), 1);
    assert_eq!(again[0], closed[1]);
}
