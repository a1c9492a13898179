//! The four renderings of a [`Statement`]: plain text, JSON, CSV and a printable HTML page.
//!
//! Owns words and layout only: every figure comes from the statement, and one list of summary
//! rows ([`summary_rows`]) feeds all four formats, so they cannot show different numbers. It
//! leaves writing files to the caller.
//!
//! Amounts are shown in major units with the currency's decimals (`913.95`), exactly (integer
//! formatting of minor units, no floats); in JSON they are strings, so no reader turns them into
//! floats either. Credit amounts are what is owed: a payment line is negative.
//!
//! The HTML page is self-contained (inline CSS, no script, no external resource) and prints on
//! A4. Its key figures carry stable ids and a `data-minor` attribute with the exact minor-unit
//! value, for tests driving a browser:
//!
//! | id                     | figure                                      |
//! |------------------------|---------------------------------------------|
//! | `new-balance`          | credit: new balance                         |
//! | `minimum-due`          | credit: minimum payment due                 |
//! | `due-date`             | credit: due date (`<time datetime=…>`)      |
//! | `previous-balance`, `payments-and-credits`, `purchases`, `cash-advances`, `fees`, `interest`, `credit-limit`, `available-credit` | credit: the other summary figures |
//! | `opening-balance`, `credits`, `debits`, `closing-balance` | debit and prepaid      |
//! | `transactions`         | the table of lines; each row `tr.line` with `data-kind` and `data-minor` |
//!
//! The same names with `_` for `-` are the JSON summary keys and the CSV summary rows' `kind`.

use core::fmt::Write;

use chrono::NaiveDate;
use serde::Serialize;
use serde::ser::SerializeMap;

use super::{Line, Statement, StatementError, Summary};
use crate::domain::{Amount, Currency};
use crate::issuing::config::ProductKind;

/// An output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    Text,
    Json,
    Csv,
    Html,
}

impl Format {
    /// Every format.
    pub const ALL: [Format; 4] = [Format::Text, Format::Json, Format::Csv, Format::Html];

    /// File extension.
    pub fn extension(self) -> &'static str {
        match self {
            Format::Text => "txt",
            Format::Json => "json",
            Format::Csv => "csv",
            Format::Html => "html",
        }
    }

    /// Looks a format up by name (`text`, `json`, `csv`, `html`).
    pub fn from_name(name: &str) -> Option<Format> {
        match name {
            "text" | "txt" => Some(Format::Text),
            "json" => Some(Format::Json),
            "csv" => Some(Format::Csv),
            "html" => Some(Format::Html),
            _ => None,
        }
    }

    /// The statement in this format.
    pub fn render(self, s: &Statement) -> Result<String, StatementError> {
        match self {
            Format::Text => Ok(text(s)),
            Format::Json => json(s),
            Format::Csv => csv(s),
            Format::Html => Ok(html(s)),
        }
    }
}

/// A summary figure's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Value {
    /// Minor units of the statement's currency.
    Money(i64),
    Date(NaiveDate),
}

/// One summary figure: stable id (`new-balance`), label, value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Row {
    pub id: &'static str,
    pub label: &'static str,
    pub value: Value,
}

/// The summary figures, in the order statements show them.
pub fn summary_rows(s: &Statement) -> Vec<Row> {
    let row = |id, label, value| Row { id, label, value };
    use Value::{Date, Money};
    match &s.summary {
        Summary::Credit(c) => vec![
            row(
                "previous-balance",
                "Previous balance",
                Money(c.previous_balance),
            ),
            row(
                "payments-and-credits",
                "Payments and credits (-)",
                Money(c.payments_and_credits),
            ),
            row("purchases", "Purchases (+)", Money(c.purchases)),
            row("cash-advances", "Cash advances (+)", Money(c.cash_advances)),
            row("fees", "Fees (+)", Money(c.fees)),
            row("interest", "Interest (+)", Money(c.interest)),
            row("new-balance", "New balance", Money(c.new_balance)),
            row("minimum-due", "Minimum payment due", Money(c.minimum_due)),
            row("due-date", "Payment due date", Date(c.due_date)),
            row("credit-limit", "Credit limit", Money(c.credit_limit)),
            row(
                "available-credit",
                "Available credit",
                Money(c.available_credit),
            ),
        ],
        Summary::Account(a) => vec![
            row(
                "opening-balance",
                "Opening balance",
                Money(a.opening_balance),
            ),
            row("credits", "Credits (+)", Money(a.credits)),
            row("debits", "Debits (-)", Money(a.debits)),
            row(
                "closing-balance",
                "Closing balance",
                Money(a.closing_balance),
            ),
        ],
    }
}

/// `minor` in major units with the currency's decimals, without the currency code.
pub fn money(minor: i64, currency: Currency) -> String {
    let shown = Amount::new(minor, currency).to_string();
    match shown.rsplit_once(' ') {
        Some((number, _)) => number.to_owned(),
        None => shown,
    }
}

fn title(kind: ProductKind) -> &'static str {
    match kind {
        ProductKind::Credit => "Credit card statement",
        ProductKind::Debit => "Debit account statement",
        ProductKind::Prepaid => "Prepaid account statement",
    }
}

fn value_text(v: Value, c: Currency) -> String {
    match v {
        Value::Money(m) => money(m, c),
        Value::Date(d) => d.to_string(),
    }
}

/// Interest and grace-period notes of a credit statement, one sentence each.
fn notes(s: &Statement) -> Vec<String> {
    let Summary::Credit(c) = &s.summary else {
        return Vec::new();
    };
    let m = |v| money(v, s.currency);
    let mut out = vec![
        format!(
            "Interest on purchases: {}% APR; average daily balance {} over {} days; charged {}.",
            c.purchase_apr,
            m(c.purchase_average_daily_balance),
            c.days,
            m(c.purchase_interest)
        ),
        format!(
            "Interest on cash advances: {}% APR from the posting date; average daily balance {}; charged {}.",
            c.cash_apr,
            m(c.cash_average_daily_balance),
            m(c.cash_interest)
        ),
    ];
    out.push(if c.grace {
        "Grace period: no interest on purchases this cycle.".to_owned()
    } else {
        "Grace period lost: the previous balance was not paid in full by its due date, so purchases accrue interest from their posting date.".to_owned()
    });
    if let Some(paid) = c.paid_by_previous_due {
        out.push(format!(
            "Payments and credits received by the previous due date: {}.",
            m(paid)
        ));
    }
    if c.new_balance > 0 {
        out.push(format!(
            "Pay the whole new balance, {}, by {} and purchases pay no interest next cycle.",
            m(c.new_balance),
            c.due_date
        ));
    }
    out
}

/// Plain text, fixed-width, for terminals and e-mail.
pub fn text(s: &Statement) -> String {
    let mut o = String::new();
    let c = s.currency;
    // Writing to a String cannot fail.
    let _ = writeln!(o, "{}", s.issuer_name);
    let _ = writeln!(o, "{}", title(s.kind));
    let _ = writeln!(o);
    let _ = writeln!(o, "{:<24}{} ({})", "Account", s.account, s.product);
    let _ = writeln!(o, "{:<24}{} to {}", "Period", s.period_start, s.period_end);
    let _ = writeln!(o, "{:<24}{}", "Cards", s.cards.join(", "));
    let _ = writeln!(o, "{:<24}{}", "Currency", c.alpha());
    let _ = writeln!(o);
    for r in summary_rows(s) {
        let _ = writeln!(o, "{:<28}{:>16}", r.label, value_text(r.value, c));
    }
    let notes = notes(s);
    if !notes.is_empty() {
        let _ = writeln!(o);
        for n in notes {
            let _ = writeln!(o, "{n}");
        }
    }
    let _ = writeln!(o);
    let _ = writeln!(
        o,
        "{:<11} {:<11} {:<17} {:<48} {:<8} {:>14}",
        "Posted", "Date", "Card", "Description", "Ref", "Amount"
    );
    if s.lines.is_empty() {
        let _ = writeln!(o, "(no transactions this period)");
    }
    for l in &s.lines {
        let _ = writeln!(
            o,
            "{:<11} {:<11} {:<17} {:<48} {:<8} {:>14}",
            l.posted.to_string(),
            l.date.to_string(),
            l.card.as_deref().unwrap_or(""),
            l.description,
            l.reference.as_deref().unwrap_or(""),
            money(l.amount, c)
        );
    }
    o
}

/// The summary rows as a JSON object, in order.
struct RowsJson<'a> {
    rows: &'a [Row],
    currency: Currency,
}

impl Serialize for RowsJson<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.rows.len()))?;
        for r in self.rows {
            map.serialize_entry(&r.id.replace('-', "_"), &value_text(r.value, self.currency))?;
        }
        map.end()
    }
}

#[derive(Serialize)]
struct StatementJson<'a> {
    issuer: &'a str,
    issuer_name: &'a str,
    account: &'a str,
    product: &'a str,
    kind: ProductKind,
    currency: &'static str,
    period_start: String,
    period_end: String,
    cards: &'a [String],
    summary: RowsJson<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    interest: Option<InterestJson>,
    transactions: Vec<LineJson<'a>>,
}

#[derive(Serialize)]
struct InterestJson {
    purchase_apr: String,
    cash_apr: String,
    days: u32,
    purchase_average_daily_balance: String,
    cash_average_daily_balance: String,
    purchase_interest: String,
    cash_interest: String,
    late_fee: String,
    grace: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    paid_by_previous_due: Option<String>,
}

#[derive(Serialize)]
struct LineJson<'a> {
    posted: String,
    date: String,
    kind: &'static str,
    reversal: bool,
    description: &'a str,
    card: Option<&'a str>,
    reference: Option<&'a str>,
    amount: String,
}

fn line_json(l: &Line, c: Currency) -> LineJson<'_> {
    LineJson {
        posted: l.posted.to_string(),
        date: l.date.to_string(),
        kind: l.kind.name(),
        reversal: l.reversal,
        description: &l.description,
        card: l.card.as_deref(),
        reference: l.reference.as_deref(),
        amount: money(l.amount, c),
    }
}

/// JSON (pretty), amounts as exact decimal strings.
pub fn json(s: &Statement) -> Result<String, StatementError> {
    let c = s.currency;
    let rows = summary_rows(s);
    let interest = match &s.summary {
        Summary::Credit(x) => Some(InterestJson {
            purchase_apr: x.purchase_apr.to_string(),
            cash_apr: x.cash_apr.to_string(),
            days: x.days,
            purchase_average_daily_balance: money(x.purchase_average_daily_balance, c),
            cash_average_daily_balance: money(x.cash_average_daily_balance, c),
            purchase_interest: money(x.purchase_interest, c),
            cash_interest: money(x.cash_interest, c),
            late_fee: money(x.late_fee, c),
            grace: x.grace,
            paid_by_previous_due: x.paid_by_previous_due.map(|p| money(p, c)),
        }),
        Summary::Account(_) => None,
    };
    let view = StatementJson {
        issuer: &s.issuer,
        issuer_name: &s.issuer_name,
        account: &s.account,
        product: &s.product,
        kind: s.kind,
        currency: c.alpha(),
        period_start: s.period_start.to_string(),
        period_end: s.period_end.to_string(),
        cards: &s.cards,
        summary: RowsJson {
            rows: &rows,
            currency: c,
        },
        interest,
        transactions: s.lines.iter().map(|l| line_json(l, c)).collect(),
    };
    serde_json::to_string_pretty(&view)
        .map(|mut t| {
            t.push('\n');
            t
        })
        .map_err(|e| StatementError::Render(e.to_string()))
}

/// CSV with one header: `record,posted,date,kind,description,card,reference,amount`. Summary
/// rows (`record` = `summary`) carry the figure's key in `kind` and its value in `amount`, or
/// in `date` for dates; then one `transaction` row per line.
pub fn csv(s: &Statement) -> Result<String, StatementError> {
    let c = s.currency;
    let mut w = csv::Writer::from_writer(Vec::new());
    let err = |e: csv::Error| StatementError::Render(e.to_string());
    w.write_record([
        "record",
        "posted",
        "date",
        "kind",
        "description",
        "card",
        "reference",
        "amount",
    ])
    .map_err(err)?;
    for r in summary_rows(s) {
        let key = r.id.replace('-', "_");
        let (date, amount) = match r.value {
            Value::Money(m) => (String::new(), money(m, c)),
            Value::Date(d) => (d.to_string(), String::new()),
        };
        w.write_record(["summary", "", &date, &key, r.label, "", "", &amount])
            .map_err(err)?;
    }
    for l in &s.lines {
        w.write_record([
            "transaction",
            &l.posted.to_string(),
            &l.date.to_string(),
            l.kind.name(),
            &l.description,
            l.card.as_deref().unwrap_or(""),
            l.reference.as_deref().unwrap_or(""),
            &money(l.amount, c),
        ])
        .map_err(err)?;
    }
    let bytes = w
        .into_inner()
        .map_err(|e| StatementError::Render(e.to_string()))?;
    String::from_utf8(bytes).map_err(|e| StatementError::Render(e.to_string()))
}

/// Escapes text for HTML element content and attribute values.
fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for ch in text.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(ch),
        }
    }
    out
}

const CSS: &str = "\
body{font-family:'DejaVu Sans',Arial,sans-serif;color:#111;margin:0;background:#eee}
main.statement{max-width:190mm;margin:12px auto;padding:12mm;background:#fff}
header{display:flex;justify-content:space-between;border-bottom:2px solid #1f3b63;margin-bottom:8mm}
header h1{font-size:20pt;margin:0 0 4px;color:#1f3b63}
header p{margin:0 0 6px}
dl.facts{display:grid;grid-template-columns:max-content auto;gap:2px 12px;margin:0}
dl.facts dt{font-weight:bold}dl.facts dd{margin:0}
.columns{display:flex;gap:10mm;align-items:flex-start}
table{border-collapse:collapse;width:100%}
table.summary{flex:1}
table.summary th{text-align:left;font-weight:normal;padding:3px 6px}
table.summary tr.total th,table.summary tr.total td{font-weight:bold;border-top:1px solid #111}
.amount{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap;padding:3px 6px}
.payment-box{flex:1;border:2px solid #1f3b63;padding:4mm}
.payment-box p{margin:0 0 3mm}.payment-box .figure{font-size:14pt;font-weight:bold}
section.notes{font-size:9pt;margin:6mm 0}
table.lines th{text-align:left;border-bottom:1px solid #111;padding:3px 6px;font-size:9pt}
table.lines td{padding:3px 6px;font-size:9pt;border-bottom:1px solid #ddd}
@media print{body{background:#fff}main.statement{margin:0;padding:0;max-width:none}
@page{size:A4;margin:15mm}tr{page-break-inside:avoid}}
";

/// A self-contained printable HTML page.
pub fn html(s: &Statement) -> String {
    let c = s.currency;
    let mut o = String::new();
    let cell = |r: &Row| match r.value {
        Value::Money(m) => format!(
            "<td id=\"{}\" class=\"amount\" data-minor=\"{m}\">{}</td>",
            r.id,
            money(m, c)
        ),
        Value::Date(d) => format!(
            "<td class=\"amount\"><time id=\"{}\" datetime=\"{d}\">{d}</time></td>",
            r.id
        ),
    };
    let _ = write!(
        o,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <title>{} {} {}</title>\n<style>\n{CSS}</style>\n</head>\n<body>\n\
         <main class=\"statement\" data-issuer=\"{}\" data-account=\"{}\" data-kind=\"{}\" \
         data-currency=\"{}\" data-period-start=\"{}\" data-period-end=\"{}\">\n",
        esc(&s.issuer_name),
        title(s.kind),
        s.period_end,
        esc(&s.issuer),
        esc(&s.account),
        product_name(s.kind),
        c.alpha(),
        s.period_start,
        s.period_end,
    );
    let _ = write!(
        o,
        "<header>\n<div><h1>{}</h1><p>{}</p></div>\n<dl class=\"facts\">\
         <dt>Account</dt><dd id=\"account\">{} ({})</dd>\
         <dt>Period</dt><dd id=\"period\">{} to {}</dd>\
         <dt>Cards</dt><dd id=\"cards\">{}</dd>\
         <dt>Currency</dt><dd>{}</dd></dl>\n</header>\n",
        esc(&s.issuer_name),
        title(s.kind),
        esc(&s.account),
        esc(&s.product),
        s.period_start,
        s.period_end,
        esc(&s.cards.join(", ")),
        c.alpha(),
    );
    let rows = summary_rows(s);
    let (key, rest): (Vec<&Row>, Vec<&Row>) = rows.iter().partition(|r| {
        matches!(
            r.id,
            "minimum-due" | "due-date" | "credit-limit" | "available-credit"
        )
    });
    o.push_str("<div class=\"columns\">\n<table class=\"summary\">\n");
    for r in &rest {
        let total = matches!(r.id, "new-balance" | "closing-balance");
        let _ = writeln!(
            o,
            "<tr{}><th>{}</th>{}</tr>",
            if total { " class=\"total\"" } else { "" },
            r.label,
            cell(r)
        );
    }
    o.push_str("</table>\n");
    if !key.is_empty() {
        o.push_str("<div class=\"payment-box\">\n<table>\n");
        for r in &key {
            let _ = writeln!(
                o,
                "<tr class=\"figure\"><th>{}</th>{}</tr>",
                r.label,
                cell(r)
            );
        }
        o.push_str("</table>\n</div>\n");
    }
    o.push_str("</div>\n");
    let notes = notes(s);
    if !notes.is_empty() {
        o.push_str("<section class=\"notes\">\n");
        for n in notes {
            let _ = writeln!(o, "<p>{}</p>", esc(&n));
        }
        o.push_str("</section>\n");
    }
    o.push_str(
        "<section>\n<h2>Transactions</h2>\n<table id=\"transactions\" class=\"lines\">\n\
         <thead><tr><th>Posted</th><th>Date</th><th>Card</th><th>Description</th>\
         <th>Reference</th><th class=\"amount\">Amount</th></tr></thead>\n<tbody>\n",
    );
    for l in &s.lines {
        let _ = writeln!(
            o,
            "<tr class=\"line\" data-kind=\"{}\" data-minor=\"{}\"><td>{}</td><td>{}</td>\
             <td>{}</td><td>{}</td><td>{}</td><td class=\"amount\">{}</td></tr>",
            l.kind.name(),
            l.amount,
            l.posted,
            l.date,
            esc(l.card.as_deref().unwrap_or("")),
            esc(&l.description),
            esc(l.reference.as_deref().unwrap_or("")),
            money(l.amount, c)
        );
    }
    if s.lines.is_empty() {
        o.push_str("<tr><td colspan=\"6\">No transactions this period.</td></tr>\n");
    }
    o.push_str("</tbody>\n</table>\n</section>\n</main>\n</body>\n</html>\n");
    o
}

fn product_name(kind: ProductKind) -> &'static str {
    match kind {
        ProductKind::Credit => "credit",
        ProductKind::Debit => "debit",
        ProductKind::Prepaid => "prepaid",
    }
}
