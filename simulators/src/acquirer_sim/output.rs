//! How `acquirer-sim` prints: messages field by field with card data masked, one outcome line
//! per transaction, or one JSON object per transaction with `--json`.
//!
//! Card data never appears in clear: field 2 shows its first 6 and last 4 digits, and track
//! data, the PIN block and ICC data are redacted (the codec's [`masked_value`]).

use std::fmt::Write as _;
use std::time::Duration;

use serde_json::{Value, json};
use switch::client::{ClientError, PreparedRequest, TxnResult};
use switch::domain::{Amount, Mti};
use switch::iso8583::Message;
use switch::iso8583::decode::masked_value;
use switch::iso8583::views::AdditionalAmount;

/// Major units without the currency code: `12.34`.
pub fn major(a: Amount) -> String {
    let s = a.to_string();
    match s.rsplit_once(' ') {
        Some((m, _)) => m.to_owned(),
        None => s,
    }
}

pub fn latency_ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// `> 0200 request` and one line per field, masked.
pub fn message_block(arrow: &str, what: &str, msg: &Message) -> String {
    let mut s = format!(
        "{arrow} {} {what}\n",
        String::from_utf8_lossy(&msg.mti_digits())
    );
    for n in msg.field_numbers() {
        if let Some(f) = msg.field(n) {
            let def = &f.spec().def;
            let shown = masked_value(n, def.class, &f.bytes());
            let _ = writeln!(s, "  {n:>3} {:<42} {shown}", def.name);
        }
    }
    s
}

fn amount_type_name(t: u8) -> String {
    match t {
        AdditionalAmount::LEDGER => "ledger".into(),
        AdditionalAmount::AVAILABLE => "available".into(),
        t => format!("amount-type-{t:02}"),
    }
}

/// The one-line outcome, e.g. `APPROVED 00 auth=A00001 stan=000001 rrn=... latency=1.2ms` or
/// `DECLINED 51 (Not sufficient funds) stan=...`.
pub fn outcome(r: &TxnResult) -> String {
    let network = r.request_mti == Mti::NETWORK_REQUEST;
    let mut s = match (network, r.is_approved()) {
        (true, true) => format!("OK {}", r.response_code.as_str()),
        (true, false) => format!("REFUSED {}", r.response_code),
        (false, true) => format!("APPROVED {}", r.response_code.as_str()),
        (false, false) => format!("DECLINED {}", r.response_code),
    };
    if let Some(a) = &r.auth_code {
        let _ = write!(s, " auth={}", a.trim_end());
    }
    if let (Some(approved), Some(asked)) = (r.approved_amount, r.amount)
        && approved != asked
    {
        let _ = write!(s, " approved={approved}");
    }
    for a in &r.additional_amounts {
        let _ = write!(s, " {}={}", amount_type_name(a.amount_type), a.amount);
    }
    let _ = write!(s, " stan={}", r.stan);
    if let Some(rrn) = &r.rrn {
        let _ = write!(s, " rrn={rrn}");
    }
    let _ = write!(s, " latency={:.1}ms", latency_ms(r.latency));
    s
}

/// A short description of a request: `purchase 411111******0013 12.34 CNY`.
pub fn request_summary(action: &str, p: &PreparedRequest) -> String {
    let mut s = action.to_owned();
    if let Some(pan) = &p.pan {
        let _ = write!(s, " {pan}");
    }
    if let Some(a) = p.amount {
        let _ = write!(s, " {a}");
    }
    s
}

fn request_json(action: &str, p: &PreparedRequest) -> serde_json::Map<String, Value> {
    let mut m = serde_json::Map::new();
    m.insert("action".into(), json!(action));
    m.insert("request_mti".into(), json!(p.request_mti.to_string()));
    m.insert("stan".into(), json!(p.stan.to_string()));
    m.insert("transmission".into(), json!(p.transmission.to_string()));
    if let Some(pan) = &p.pan {
        m.insert("pan".into(), json!(pan.to_string()));
    }
    if let Some(pc) = p.processing_code {
        m.insert("processing_code".into(), json!(pc.to_string()));
    }
    if let Some(a) = p.amount {
        m.insert("amount".into(), json!(major(a)));
        m.insert("currency".into(), json!(a.currency().alpha()));
    }
    if let Some(rrn) = &p.rrn {
        m.insert("rrn".into(), json!(rrn));
    }
    m
}

/// One transaction as a JSON object. The PAN is masked.
pub fn txn_json(
    action: &str,
    p: &PreparedRequest,
    r: &TxnResult,
) -> serde_json::Map<String, Value> {
    let mut m = request_json(action, p);
    m.insert("response_mti".into(), json!(r.response_mti.to_string()));
    m.insert("response_code".into(), json!(r.response_code.as_str()));
    m.insert("meaning".into(), json!(r.response_code.meaning()));
    m.insert("approved".into(), json!(r.is_approved()));
    m.insert("auth_code".into(), json!(r.auth_code));
    m.insert("rrn".into(), json!(r.rrn));
    m.insert(
        "approved_amount".into(),
        json!(r.approved_amount.map(major)),
    );
    let extra: Vec<Value> = r
        .additional_amounts
        .iter()
        .map(|a| {
            json!({
                "account_type": format!("{:02}", a.account_type),
                "amount_type": amount_type_name(a.amount_type),
                "amount": major(a.amount),
                "currency": a.amount.currency().alpha(),
            })
        })
        .collect();
    m.insert("additional_amounts".into(), Value::Array(extra));
    m.insert("latency_ms".into(), json!(latency_ms(r.latency)));
    m
}

/// A failed transaction as a JSON object.
pub fn error_json(
    action: &str,
    p: Option<&PreparedRequest>,
    e: &ClientError,
) -> serde_json::Map<String, Value> {
    let mut m = match p {
        Some(p) => request_json(action, p),
        None => {
            let mut m = serde_json::Map::new();
            m.insert("action".into(), json!(action));
            m
        }
    };
    m.insert("error".into(), json!(e.to_string()));
    m.insert("side".into(), json!(e.side().to_string()));
    m
}
