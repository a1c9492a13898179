//! The HTML statement in a real browser: a known credit statement (the figures of the month
//! demo's NB-0001 statement of 2026-06-05, see `tests/demo_month.rs`) is rendered to a file,
//! loaded by headless Chromium, and the key figures are read back from the DOM the browser
//! built: the stable ids `new-balance`, `minimum-due`, `due-date` and `available-credit`, each
//! with its exact `data-minor` (or `datetime`) and its shown text, and one `tr.line` per line.
//!
//! Chromium is Debian's `chromium` package; `.ci/run` installs it. Without it the test fails
//! when `CI` is set and is skipped, with a note, otherwise.

// Amounts are minor units written major_minor, `830_08` for 830.08, so the figures read as money.
#![allow(clippy::inconsistent_digit_grouping)]

use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use chrono::NaiveDate;
use rust_decimal::Decimal;
use switch::domain::Currency;
use switch::issuing::ProductKind;
use switch::issuing::Statement;
use switch::issuing::statement::render::html;
use switch::issuing::statement::{CreditSummary, Line, LineKind, Summary};

/// Chromium gets this long to load a local page and dump it.
const CHROMIUM_DEADLINE: Duration = Duration::from_secs(90);

fn date(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").expect("date")
}

fn line(day: &str, kind: LineKind, description: &str, amount: i64) -> Line {
    let charge = matches!(
        kind,
        LineKind::PurchaseInterest | LineKind::CashInterest | LineKind::LateFee
    );
    Line {
        posted: date(day),
        date: date(day),
        kind,
        reversal: false,
        description: description.into(),
        card: (!charge).then(|| "411111******0013".into()),
        reference: None,
        amount,
    }
}

fn statement() -> Statement {
    Statement {
        issuer: "north-bank".into(),
        issuer_name: "North Bank".into(),
        account: "NB-0001".into(),
        product: "north-classic-credit".into(),
        kind: ProductKind::Credit,
        currency: Currency::CNY,
        period_start: date("2026-05-06"),
        period_end: date("2026-06-05"),
        cards: vec!["411111******0013".into()],
        summary: Summary::Credit(CreditSummary {
            previous_balance: 355_00,
            payments_and_credits: 100_00,
            purchases: 334_40,
            cash_advances: 200_00,
            fees: 30_00,
            interest: 10_68,
            purchase_interest: 8_38,
            cash_interest: 2_30,
            late_fee: 30_00,
            new_balance: 830_08,
            minimum_due: 123_69,
            due_date: date("2026-06-30"),
            credit_limit: 10_000_00,
            available_credit: 9_169_92,
            grace: false,
            paid_by_previous_due: Some(0),
            purchase_apr: Decimal::new(1825, 2),
            cash_apr: Decimal::new(1825, 2),
            days: 31,
            purchase_average_daily_balance: 540_65,
            cash_average_daily_balance: 148_39,
        }),
        lines: vec![
            line("2026-05-08", LineKind::Purchase, "Purchase", 89_90),
            line("2026-05-12", LineKind::Cash, "Cash advance", 200_00),
            line("2026-05-16", LineKind::Purchase, "Purchase", 45_00),
            line("2026-05-21", LineKind::Purchase, "Purchase", 120_00),
            line("2026-05-27", LineKind::Purchase, "Purchase", 15_50),
            line("2026-06-02", LineKind::Payment, "Payment <late>", -100_00),
            line("2026-06-04", LineKind::Purchase, "Purchase", 64_00),
            line(
                "2026-06-05",
                LineKind::PurchaseInterest,
                "Interest on purchases",
                8_38,
            ),
            line(
                "2026-06-05",
                LineKind::CashInterest,
                "Interest on cash advances",
                2_30,
            ),
            line("2026-06-05", LineKind::LateFee, "Late fee", 30_00),
        ],
    }
}

/// `chromium` on the PATH.
fn chromium() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join("chromium"))
        .find(|p| p.is_file())
}

/// The DOM Chromium builds from `page`, serialised.
fn dump_dom(browser: &Path, page: &Path, profile: &Path) -> String {
    // Its log goes to a file: a pipe nobody drains could fill up and stall it.
    let log_path = profile.with_extension("log");
    let log = std::fs::File::create(&log_path).expect("chromium log file");
    let mut child = Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg("--dump-dom")
        .arg(format!("file://{}", page.display()))
        .stdout(Stdio::piped())
        .stderr(log)
        .spawn()
        .expect("chromium starts");
    // Chromium has no timeout of its own for this, and a hung browser must not hang the suite:
    // the DOM is read on a thread, which reports when the pipe closes (the browser exited).
    let Some(mut stdout) = child.stdout.take() else {
        panic!("chromium's output is not piped");
    };
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut out = Vec::new();
        let _ = tx.send(stdout.read_to_end(&mut out).map(|_| out));
    });
    let out = match rx.recv_timeout(CHROMIUM_DEADLINE) {
        Ok(read) => read.expect("chromium's output"),
        Err(_) => {
            let _ = child.kill();
            panic!("chromium did not finish within {CHROMIUM_DEADLINE:?}");
        }
    };
    let status = child.wait().expect("chromium exits");
    let dom = String::from_utf8_lossy(&out).into_owned();
    assert!(
        status.success() && dom.contains("</html>"),
        "chromium failed ({status}): {}",
        std::fs::read_to_string(&log_path).unwrap_or_default()
    );
    dom
}

/// The element with id `id`: its attributes (name, value) and its text up to the next tag.
fn element<'a>(dom: &'a str, id: &str) -> (Vec<(&'a str, &'a str)>, &'a str) {
    let needle = format!("id=\"{id}\"");
    let at = dom
        .find(&needle)
        .unwrap_or_else(|| panic!("no element #{id} in the DOM"));
    let open = dom[..at].rfind('<').expect("tag start");
    let close = at + dom[at..].find('>').expect("tag end");
    let tag = &dom[open + 1..close];
    let mut attrs = Vec::new();
    let mut rest = tag.split_once(' ').map_or("", |(_, r)| r);
    while let Some((name, after)) = rest.split_once("=\"") {
        let Some((value, tail)) = after.split_once('"') else {
            break;
        };
        attrs.push((name.trim(), value));
        rest = tail;
    }
    let text_end = dom[close + 1..]
        .find('<')
        .map_or(dom.len(), |i| close + 1 + i);
    (attrs, dom[close + 1..text_end].trim())
}

fn attr<'a>(attrs: &[(&'a str, &'a str)], name: &str) -> Option<&'a str> {
    attrs.iter().find(|(n, _)| *n == name).map(|(_, v)| *v)
}

#[test]
fn chromium_shows_the_statements_key_figures() {
    let Some(browser) = chromium() else {
        if std::env::var_os("CI").is_some() {
            panic!(
                "chromium is not installed, and CI is set: CI must run the HTML statement test \
                 (.ci/run installs it with `apt-get install -y chromium`)"
            );
        }
        eprintln!(
            "note: statement_html skipped: `chromium` is not on the PATH (apt-get install -y chromium)"
        );
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let page = dir.path().join("NB-0001.html");
    let s = statement();
    std::fs::write(&page, html(&s)).expect("write the page");
    let dom = dump_dom(&browser, &page, &dir.path().join("profile"));

    for (id, minor, shown) in [
        ("new-balance", "83008", "830.08"),
        ("minimum-due", "12369", "123.69"),
        ("available-credit", "916992", "9169.92"),
        ("credit-limit", "1000000", "10000.00"),
        ("interest", "1068", "10.68"),
        ("fees", "3000", "30.00"),
    ] {
        let (attrs, text) = element(&dom, id);
        assert_eq!(attr(&attrs, "data-minor"), Some(minor), "#{id}: {attrs:?}");
        assert_eq!(text, shown, "#{id}");
    }
    let (attrs, text) = element(&dom, "due-date");
    assert!(
        dom.contains("<time id=\"due-date\""),
        "due date is a <time>"
    );
    assert_eq!(attr(&attrs, "datetime"), Some("2026-06-30"));
    assert_eq!(text, "2026-06-30");

    // The browser built the whole table: one row per line, amounts in data-minor, and the
    // description's markup stayed text.
    assert_eq!(dom.matches("<tr class=\"line\"").count(), s.lines.len());
    assert!(
        dom.contains("data-kind=\"late_fee\" data-minor=\"3000\""),
        "{dom}"
    );
    assert!(dom.contains("Payment &lt;late&gt;"), "{dom}");
    assert!(!dom.contains("<late>"), "{dom}");
}
