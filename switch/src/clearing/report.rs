//! The reports as text: a human page, CSV and JSON for each of the clearing report, the
//! settlement report and a merchant statement. Pure renderers from the computed figures to
//! strings; [`super::files`] writes them.
//!
//! Text and CSV show amounts in major units with the currency's decimals (`12.34`) and the
//! currency's alphabetic code; JSON keeps the computed structures as they are (integer minor units
//! and ISO 4217 numeric codes), so a program reads exactly what was added up.

use std::fmt::Write as _;

use chrono::DateTime;
use serde::Serialize;

use super::clear::{Approval, Clearing, OpenAuth};
use super::settle::{MerchantStatement, Settlement};
use crate::domain::Currency;

/// A text, a CSV and a JSON rendering of one report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    pub text: String,
    pub csv: String,
    pub json: String,
}

/// Why a report could not be rendered (only serialisation can fail).
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error("internal: report does not serialise as JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("internal: report does not serialise as CSV: {0}")]
    Csv(String),
}

/// `minor` as major units with the currency's decimals: `-12.34`; unknown currencies show minor
/// units.
pub fn money(minor: i64, currency: u16) -> String {
    let Ok(c) = Currency::from_numeric(currency) else {
        return minor.to_string();
    };
    let exp = u32::from(c.exponent());
    if exp == 0 {
        return minor.to_string();
    }
    let unit = 10u64.pow(exp);
    let abs = minor.unsigned_abs();
    let sign = if minor < 0 { "-" } else { "" };
    format!(
        "{sign}{}.{:0width$}",
        abs / unit,
        abs % unit,
        width = exp as usize
    )
}

/// The alphabetic code, or the numeric one if unknown.
pub fn currency_code(currency: u16) -> String {
    Currency::from_numeric(currency)
        .map(|c| c.alpha().to_owned())
        .unwrap_or_else(|_| format!("{currency:03}"))
}

fn time(at_ms: i64) -> String {
    DateTime::from_timestamp_millis(at_ms)
        .map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
        .unwrap_or_else(|| at_ms.to_string())
}

fn csv_of(header: &[&str], rows: Vec<Vec<String>>) -> Result<String, RenderError> {
    let mut w = csv::Writer::from_writer(Vec::new());
    let err = |e: csv::Error| RenderError::Csv(e.to_string());
    w.write_record(header).map_err(err)?;
    for r in rows {
        w.write_record(&r).map_err(err)?;
    }
    let bytes = w
        .into_inner()
        .map_err(|e| RenderError::Csv(e.to_string()))?;
    String::from_utf8(bytes).map_err(|e| RenderError::Csv(e.to_string()))
}

fn json_of<T: Serialize>(value: &T) -> Result<String, RenderError> {
    let mut s = serde_json::to_string_pretty(value)?;
    s.push('\n');
    Ok(s)
}

/// The clearing report: cleared items, reversals, holds carried over, expired holds, exceptions.
pub fn clearing(c: &Clearing) -> Result<Rendered, RenderError> {
    let mut t = String::new();
    let _ = writeln!(
        t,
        "Clearing, business day {} (closed at {} UTC)\n",
        c.business_date,
        c.cutover_at.format("%Y-%m-%d %H:%M")
    );
    let _ = writeln!(t, "Cleared items: {}", c.items.len());
    let _ = writeln!(
        t,
        "  {:>8} {:<10} {:<7} {:<11} {:<12} {:<15} {:<19} {:>14} {:>14} cur source",
        "txn", "kind", "class", "acquirer", "issuer", "merchant", "card", "before", "after"
    );
    for i in &c.items {
        let a = &i.approval;
        let _ = writeln!(
            t,
            "  {:>8} {:<10} {:<7} {:<11} {:<12} {:<15} {:<19} {:>14} {:>14} {} {:?}",
            i.by_txn,
            format!("{:?}", i.kind).to_lowercase(),
            a.class.name(),
            a.acquirer(),
            a.issuer,
            a.merchant_id(),
            a.masked_pan,
            money(i.before_minor, a.currency),
            money(i.after_minor, a.currency),
            currency_code(a.currency),
            a.source,
        );
    }
    let _ = writeln!(t, "\nReversals: {}", c.reversals.len());
    for r in &c.reversals {
        let _ = writeln!(
            t,
            "  approval {} by {} ({}): {} -> {} {} {}",
            r.txn,
            r.by_txn,
            r.what,
            money(r.before_minor, r.currency),
            money(r.after_minor, r.currency),
            currency_code(r.currency),
            r.masked_pan
        );
    }
    let holds = |t: &mut String, title: &str, list: &[OpenAuth]| {
        let _ = writeln!(t, "\n{title}: {}", list.len());
        for o in list {
            let a = &o.approval;
            let _ = writeln!(
                t,
                "  approval {} of {} at {} {} {} held {} {}",
                a.txn,
                a.business_date,
                time(a.at_ms),
                a.issuer,
                a.masked_pan,
                money(o.remaining_minor, a.currency),
                currency_code(a.currency)
            );
        }
    };
    holds(
        &mut t,
        "Authorized, not captured (carried over)",
        &c.authorized_not_captured,
    );
    holds(&mut t, "Expired holds (not cleared)", &c.expired);
    let _ = writeln!(t, "\nExceptions: {}", c.exceptions.len());
    for e in &c.exceptions {
        let _ = writeln!(t, "  txn {}: {}", e.txn, e.message);
    }

    let row = |section: &str, by_txn: u64, kind: &str, a: &Approval, before: i64, after: i64| {
        vec![
            section.to_owned(),
            by_txn.to_string(),
            a.txn.to_string(),
            kind.to_owned(),
            a.class.name().to_owned(),
            a.acquirer().to_owned(),
            a.issuer.clone(),
            a.merchant_id().to_owned(),
            a.masked_pan.clone(),
            currency_code(a.currency),
            money(before, a.currency),
            money(after, a.currency),
        ]
    };
    let mut rows = Vec::new();
    for i in &c.items {
        let kind = format!("{:?}", i.kind).to_lowercase();
        let (before, after) = (i.before_minor, i.after_minor);
        rows.push(row("cleared", i.by_txn, &kind, &i.approval, before, after));
    }
    for (section, list) in [
        ("authorized_not_captured", &c.authorized_not_captured),
        ("expired", &c.expired),
    ] {
        for o in list {
            let (a, held) = (&o.approval, o.remaining_minor);
            rows.push(row(section, a.txn, "authorization", a, held, held));
        }
    }
    let csv = csv_of(
        &[
            "section",
            "by_txn",
            "txn",
            "kind",
            "class",
            "acquirer",
            "issuer",
            "merchant",
            "masked_pan",
            "currency",
            "before",
            "after",
        ],
        rows,
    )?;
    Ok(Rendered {
        text: t,
        csv,
        json: json_of(c)?,
    })
}

/// The settlement report: per institution and currency, gross, fees and net.
pub fn settlement(
    s: &Settlement,
    names: &dyn Fn(&str) -> Option<String>,
) -> Result<Rendered, RenderError> {
    let mut t = String::new();
    let _ = writeln!(t, "Settlement, business day {}\n", s.business_date);
    let _ = writeln!(
        t,
        "  {:<8} {:<12} {:<24} {:>6} {:>16} {:>14} {:>12} {:>16} cur",
        "role", "institution", "name", "items", "gross", "interchange", "scheme fees", "net"
    );
    let mut rows = Vec::new();
    let mut last_currency = None;
    for p in &s.positions {
        if last_currency.is_some_and(|c| c != p.currency) {
            t.push('\n');
        }
        last_currency = Some(p.currency);
        let name = names(&p.institution).unwrap_or_default();
        let figures = [
            money(p.gross_minor, p.currency),
            money(p.interchange_minor, p.currency),
            money(p.scheme_fees_minor, p.currency),
            money(p.net_minor, p.currency),
        ];
        let _ = writeln!(
            t,
            "  {:<8} {:<12} {:<24} {:>6} {:>16} {:>14} {:>12} {:>16} {}",
            p.role.name(),
            p.institution,
            name,
            p.items,
            figures[0],
            figures[1],
            figures[2],
            figures[3],
            currency_code(p.currency)
        );
        let mut row = vec![
            p.role.name().to_owned(),
            p.institution.clone(),
            name,
            currency_code(p.currency),
            p.items.to_string(),
        ];
        row.extend(figures);
        rows.push(row);
    }
    let _ = writeln!(t, "\nNet positions sum to zero in every currency.");
    let csv = csv_of(
        &[
            "role",
            "institution",
            "name",
            "currency",
            "items",
            "gross",
            "interchange",
            "scheme_fees",
            "net",
        ],
        rows,
    )?;
    Ok(Rendered {
        text: t,
        csv,
        json: json_of(s)?,
    })
}

/// One merchant statement: its lines, then sales, refunds, MDR and net payout.
pub fn statement(m: &MerchantStatement) -> Result<Rendered, RenderError> {
    let cur = m.currency;
    let code = currency_code(cur);
    let mut t = String::new();
    let _ = writeln!(
        t,
        "Merchant statement, business day {}\nMerchant {} at acquirer {}, {}\n",
        m.business_date, m.merchant, m.acquirer, code
    );
    let _ = writeln!(
        t,
        "  {:>8} {:<19} {:<7} {:<10} {:<19} {:<8} {:>14} {:>10}",
        "txn", "time (UTC)", "class", "kind", "card", "terminal", "amount", "MDR"
    );
    let mut rows = Vec::new();
    for l in &m.lines {
        let _ = writeln!(
            t,
            "  {:>8} {:<19} {:<7} {:<10} {:<19} {:<8} {:>14} {:>10}",
            l.txn,
            time(l.at_ms),
            l.class.name(),
            l.kind,
            l.masked_pan,
            l.terminal,
            money(l.amount_minor, cur),
            money(l.mdr_minor, cur)
        );
        rows.push(vec![
            "line".into(),
            l.txn.to_string(),
            time(l.at_ms),
            l.class.name().into(),
            l.kind.clone(),
            l.masked_pan.clone(),
            l.terminal.clone(),
            code.clone(),
            money(l.amount_minor, cur),
            money(l.mdr_minor, cur),
            String::new(),
        ]);
    }
    let _ = writeln!(
        t,
        "\n  Sales        {:>6} {:>16}\n  Refunds      {:>6} {:>16}\n  MDR                 {:>16}\n  Net payout          {:>16} {code}",
        m.sales_count,
        money(m.sales_minor, cur),
        m.refunds_count,
        money(m.refunds_minor, cur),
        money(m.mdr_minor, cur),
        money(m.net_payout_minor, cur),
    );
    for (what, count, amount) in [
        ("sales", m.sales_count.to_string(), m.sales_minor),
        ("refunds", m.refunds_count.to_string(), m.refunds_minor),
        ("mdr", String::new(), m.mdr_minor),
        ("net_payout", String::new(), m.net_payout_minor),
    ] {
        rows.push(vec![
            "total".into(),
            String::new(),
            String::new(),
            what.into(),
            String::new(),
            String::new(),
            String::new(),
            code.clone(),
            money(amount, cur),
            String::new(),
            count,
        ]);
    }
    let csv = csv_of(
        &[
            "row",
            "txn",
            "time",
            "class",
            "kind",
            "masked_pan",
            "terminal",
            "currency",
            "amount",
            "mdr",
            "count",
        ],
        rows,
    )?;
    Ok(Rendered {
        text: t,
        csv,
        json: json_of(m)?,
    })
}
