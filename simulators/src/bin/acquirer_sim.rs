//! `acquirer-sim`: sends ISO 8583 requests to the switch as an acquirer host would, one command
//! at a time or from a scenario file, through [`switch::client::AcquirerClient`].
//!
//! ```text
//! acquirer-sim purchase --pan 4111110000000013 --amount 12.34 --expiry 3012 --pin 1234
//! acquirer-sim preauth --pan 4111110000000013 --amount 100.00
//! acquirer-sim complete --pan 4111110000000013 --amount 80.00 --original-stan 000123 \
//!     --original-time 1125221800 --original-rrn 532922000123 --auth-code N00001
//! acquirer-sim reverse --pan 4111110000000013 --amount 100.00 --original-mti 0100 \
//!     --original-stan 000123 --original-time 1125221800 [--replacement 20.00] [--advice]
//! acquirer-sim refund --pan 4111110000000013 --amount 5.00
//! acquirer-sim balance --pan 6050010000000013 [--pin 1234]
//! acquirer-sim echo
//! acquirer-sim script simulators/scenarios/default-cards.toml
//! ```
//!
//! Global options (before or after the command): `--target 127.0.0.1:8583`, `--acquirer 100001`,
//! `--terminal TERM0001`, `--merchant MERCHANT0000001`, `--dialect iso87-ascii`,
//! `--length-header binary2-be`, `--header-bytes 0`, `--timeout-ms 5000`, `--currency 156`,
//! `--json`.
//!
//! Keys (the simulator plays the acquirer host and its PIN pad, so it reads clear test keys):
//! `--keys config/keys.toml` loads them; `--mac-key acquirer:100002:mac` MACs every request and
//! checks every answer's MAC; `--pin` is then enciphered under the acquirer's zone PIN key
//! (`acquirer:<acquirer>:zpk` when the keys file has it, or `--pin-key ID`), or by a DUKPT PIN
//! pad with `--dukpt tdes|aes` (`--bdk ID`, default `bdk:test-tdes` / `bdk:test-aes`; `--ksn HEX`,
//! the first KSN, default the published test KSNs), whose KSN advances with every PIN of the run.
//! Without `--keys` a PIN goes as a clear block, which the switch refuses.
//!
//! ```text
//! acquirer-sim --acquirer 100002 --keys config/keys.toml --mac-key acquirer:100002:mac \
//!     purchase --pan 4111110000000013 --amount 12.34 --expiry 3012 --pin 1234
//! acquirer-sim --keys config/keys.toml --dukpt aes purchase --pan 6050010000000013 \
//!     --amount 1.00 --expiry 3012 --pin 1234
//! ```
//!
//! Text output shows the request and the response field by field with card data masked, then
//! one outcome line (`APPROVED 00 auth=... stan=... rrn=... latency=1.2ms`, or
//! `DECLINED 51 (Not sufficient funds) ...`). With `--json`, one JSON object per transaction.
//!
//! Exit codes: 0 when the switch answered (whatever the response code) or every scenario step
//! passed; 1 on a transport error (no connection, timeout, connection closed, unreadable
//! answer) or a failed scenario step; 2 on a usage error.

#[path = "../acquirer_sim/output.rs"]
mod output;
#[path = "../acquirer_sim/scenario.rs"]
mod scenario;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use switch::client::{
    AcquirerClient, AsOriginal, ClientConfig, ClientError, PinSetup, PreparedRequest, Side,
    TerminalKeys, TxnKind, TxnOptions, TxnResult,
};
use switch::domain::Currency;
use switch::iso8583::DialectId;
use switch::iso8583::views::Ksn;
use switch::iso8583::views::NetworkCode;
use switch::net::framing::{FramingConfig, LengthHeader};
use switch::security::{KeyId, KeysFile};
use switch::terminal::{TEST_AES_KSN, TEST_TDES_KSN, TerminalKeyError};

use scenario::{ExplicitOriginal, Op, Original, Scenario};

/// mimalloc rather than glibc malloc: per-thread heaps, no arena lock contention under load
/// (`switch::alloc` says how it is called).
#[global_allocator]
static GLOBAL: switch::alloc::MiMalloc = switch::alloc::MiMalloc;

const EXIT_ANSWERED: u8 = 0;
const EXIT_TRANSPORT: u8 = 1;
const EXIT_USAGE: u8 = 2;

#[derive(Parser, Debug)]
#[command(
    name = "acquirer-sim",
    version,
    about = "Sends ISO 8583 requests to the Switchyard switch as an acquirer host would"
)]
struct Cli {
    #[command(flatten)]
    global: Global,
    #[command(subcommand)]
    command: Command,
}

#[derive(Args, Debug)]
struct Global {
    /// The switch's acquirer listener (ip:port).
    #[arg(long, global = true, default_value = "127.0.0.1:8583")]
    target: String,
    /// Acquiring institution id, field 32 (1-11 digits).
    #[arg(long, global = true, default_value = "100001")]
    acquirer: String,
    /// Terminal id, field 41 (up to 8 characters).
    #[arg(long, global = true, default_value = "TERM0001")]
    terminal: String,
    /// Merchant id, field 42 (up to 15 characters).
    #[arg(long, global = true, default_value = "MERCHANT0000001")]
    merchant: String,
    /// Wire dialect: iso87-ascii, iso87-ascii-hexbitmap or iso87-bcd.
    #[arg(long, global = true, default_value = "iso87-ascii", value_parser = parse_dialect)]
    dialect: DialectId,
    /// Length header: binary2-be, binary2-le, ascii4 or bcd2.
    #[arg(long, global = true, default_value = "binary2-be", value_parser = parse_length_header)]
    length_header: LengthHeader,
    /// Fixed header after the length (e.g. 5 for a TPDU), sent as zeros.
    #[arg(long, global = true, default_value_t = 0)]
    header_bytes: usize,
    /// How long to wait for each response, in milliseconds.
    #[arg(long, global = true, default_value_t = 5000)]
    timeout_ms: u64,
    /// Currency of every amount (ISO 4217 numeric or alphabetic code).
    #[arg(long, global = true, default_value = "156", value_parser = parse_currency)]
    currency: Currency,
    /// Print one JSON object per transaction instead of text.
    #[arg(long, global = true)]
    json: bool,
    /// The keys file the terminal's keys come from (test keys: the simulator holds them in
    /// clear, as a PIN pad does).
    #[arg(long, global = true, value_name = "PATH")]
    keys: Option<PathBuf>,
    /// MAC every request under this key and check every answer's MAC (e.g.
    /// acquirer:100002:mac). Needs --keys.
    #[arg(long, global = true, value_name = "KEY_ID")]
    mac_key: Option<String>,
    /// Encipher PINs under this zone PIN key (default: acquirer:<acquirer>:zpk when the keys
    /// file has it). Needs --keys.
    #[arg(long, global = true, value_name = "KEY_ID")]
    pin_key: Option<String>,
    /// Encipher PINs with a DUKPT PIN pad instead: tdes (ANSI X9.24-1) or aes (X9.24-3). Needs
    /// --keys.
    #[arg(long, global = true, value_parser = ["tdes", "aes"])]
    dukpt: Option<String>,
    /// The DUKPT base derivation key the PIN pad was loaded from (default bdk:test-tdes or
    /// bdk:test-aes).
    #[arg(long, global = true, value_name = "KEY_ID")]
    bdk: Option<String>,
    /// The DUKPT PIN pad's first KSN, hex (20 digits for tdes, 24 for aes; default the
    /// published test KSN, counter 1).
    #[arg(long, global = true, value_name = "HEX")]
    ksn: Option<String>,
    #[command(flatten)]
    tls: simulators::tls_args::ClientTlsArgs,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// 0200 purchase (processing code 000000).
    Purchase(CardTxn),
    /// 0100 preauthorization (000000).
    Preauth(CardTxn),
    /// 0220 completion of a preauthorization.
    Complete(CompleteArgs),
    /// 0400 reversal (0420 with --advice).
    Reverse(ReverseArgs),
    /// 0200 refund (200000).
    Refund(CardTxn),
    /// 0100 balance inquiry (310000).
    Balance(BalanceArgs),
    /// 0200 cash withdrawal (010000).
    Cash(CardTxn),
    /// 0200 prepaid load (210000).
    Load(CardTxn),
    /// 0800 echo test (field 70 = 301).
    Echo,
    /// Runs a TOML scenario file of steps (see simulators/scenarios/).
    Script(ScriptArgs),
}

#[derive(Args, Debug)]
struct CardTxn {
    /// Card number (sent as given: an invalid one gets the switch's answer).
    #[arg(long)]
    pan: String,
    /// Amount in major units, e.g. 12.34.
    #[arg(long)]
    amount: String,
    /// Card expiry, YYMM (field 14).
    #[arg(long)]
    expiry: Option<String>,
    /// PIN, enciphered by the terminal's PIN pad (see --keys); without one, sent as a clear ISO
    /// 9564 format 0 block in field 52, which the switch refuses.
    #[arg(long)]
    pin: Option<String>,
    /// The terminal accepts a partial approval (field 60 = 1).
    #[arg(long)]
    partial: bool,
    /// Merchant category code (field 18, default 5411).
    #[arg(long)]
    mcc: Option<u16>,
}

#[derive(Args, Debug)]
struct BalanceArgs {
    #[arg(long)]
    pan: String,
    #[arg(long)]
    expiry: Option<String>,
    #[arg(long)]
    pin: Option<String>,
}

#[derive(Args, Debug)]
struct CompleteArgs {
    #[arg(long)]
    pan: String,
    /// The final amount, in major units.
    #[arg(long)]
    amount: String,
    /// MTI of the original (the preauthorization).
    #[arg(long, default_value = "0100")]
    original_mti: String,
    #[arg(long)]
    original_stan: String,
    /// Field 7 of the original, MMDDhhmmss.
    #[arg(long)]
    original_time: String,
    /// Field 37 of the original.
    #[arg(long)]
    original_rrn: String,
    /// Field 38 of the original's approval.
    #[arg(long)]
    auth_code: String,
}

#[derive(Args, Debug)]
struct ReverseArgs {
    #[arg(long)]
    pan: String,
    /// The original amount, in major units.
    #[arg(long)]
    amount: String,
    /// MTI of the original: 0100 or 0200.
    #[arg(long)]
    original_mti: String,
    #[arg(long)]
    original_stan: String,
    /// Field 7 of the original, MMDDhhmmss.
    #[arg(long)]
    original_time: String,
    #[arg(long)]
    original_rrn: Option<String>,
    #[arg(long)]
    auth_code: Option<String>,
    /// What actually happened, for a partial reversal (field 95).
    #[arg(long)]
    replacement: Option<String>,
    /// Send an 0420 reversal advice instead of an 0400.
    #[arg(long)]
    advice: bool,
}

#[derive(Args, Debug)]
struct ScriptArgs {
    /// The scenario file.
    file: PathBuf,
}

fn parse_dialect(s: &str) -> Result<DialectId, String> {
    DialectId::ALL
        .into_iter()
        .find(|d| d.name() == s)
        .ok_or_else(|| "expected iso87-ascii, iso87-ascii-hexbitmap or iso87-bcd".into())
}

fn parse_length_header(s: &str) -> Result<LengthHeader, String> {
    match s {
        "binary2-be" => Ok(LengthHeader::Binary2Be),
        "binary2-le" => Ok(LengthHeader::Binary2Le),
        "ascii4" => Ok(LengthHeader::Ascii4),
        "bcd2" => Ok(LengthHeader::Bcd2),
        _ => Err("expected binary2-be, binary2-le, ascii4 or bcd2".into()),
    }
}

fn parse_currency(s: &str) -> Result<Currency, String> {
    let c = if s.bytes().all(|b| b.is_ascii_digit()) {
        Currency::from_field(s.as_bytes())
    } else {
        Currency::from_alpha(s)
    };
    c.map_err(|e| e.to_string())
}

/// What the command line asks for.
enum Plan {
    One { action: &'static str, op: Op },
    Script(Scenario),
}

fn card_op(kind: TxnKind, t: &CardTxn, currency: Currency) -> Result<Op, String> {
    Ok(Op::Txn {
        kind,
        pan: t.pan.clone(),
        amount: Some(scenario::amount(&t.amount, currency)?),
        opts: TxnOptions {
            expiry: t.expiry.clone(),
            pin: t.pin.clone(),
            partial_approval: t.partial,
            mcc: t.mcc,
            ..TxnOptions::default()
        },
    })
}

/// Checks the command's arguments before anything is sent.
fn plan(command: &Command, currency: Currency) -> Result<Plan, String> {
    let one = |action: &'static str, op: Op| Ok(Plan::One { action, op });
    match command {
        Command::Purchase(t) => one("purchase", card_op(TxnKind::Purchase, t, currency)?),
        Command::Preauth(t) => one("preauth", card_op(TxnKind::Preauth, t, currency)?),
        Command::Refund(t) => one("refund", card_op(TxnKind::Refund, t, currency)?),
        Command::Cash(t) => one("cash", card_op(TxnKind::Cash, t, currency)?),
        Command::Load(t) => one("load", card_op(TxnKind::Load, t, currency)?),
        Command::Balance(b) => one(
            "balance",
            Op::Txn {
                kind: TxnKind::Balance,
                pan: b.pan.clone(),
                amount: None,
                opts: TxnOptions {
                    expiry: b.expiry.clone(),
                    pin: b.pin.clone(),
                    ..TxnOptions::default()
                },
            },
        ),
        Command::Complete(c) => {
            let amount = scenario::amount(&c.amount, currency)?;
            let original = ExplicitOriginal {
                mti: scenario::mti(&c.original_mti)?,
                pan: &c.pan,
                stan: &c.original_stan,
                time: &c.original_time,
                rrn: Some(&c.original_rrn),
                auth_code: Some(&c.auth_code),
                amount,
            }
            .to_ref()?;
            one(
                "complete",
                Op::Complete {
                    original: Original::Explicit(original),
                    amount: Some(amount),
                },
            )
        }
        Command::Reverse(r) => {
            let amount = scenario::amount(&r.amount, currency)?;
            let original = ExplicitOriginal {
                mti: scenario::mti(&r.original_mti)?,
                pan: &r.pan,
                stan: &r.original_stan,
                time: &r.original_time,
                rrn: r.original_rrn.as_deref(),
                auth_code: r.auth_code.as_deref(),
                amount,
            }
            .to_ref()?;
            let replacement = r
                .replacement
                .as_deref()
                .map(|a| scenario::amount(a, currency))
                .transpose()?;
            one(
                "reverse",
                Op::Reverse {
                    original: Original::Explicit(original),
                    amount: Some(amount),
                    replacement,
                    advice: r.advice,
                },
            )
        }
        Command::Echo => one("echo", Op::Echo),
        Command::Script(s) => {
            let text = std::fs::read_to_string(&s.file)
                .map_err(|e| format!("{}: {e}", s.file.display()))?;
            Scenario::parse(&text, currency)
                .map(Plan::Script)
                .map_err(|e| format!("{}: {e}", s.file.display()))
        }
    }
}

/// Builds the request of `op`; `earlier` holds the results of the scenario's earlier steps.
fn prepare(
    client: &AcquirerClient,
    op: &Op,
    earlier: &[Option<TxnResult>],
) -> Result<PreparedRequest, ClientError> {
    let resolve = |original: &Original| match original {
        Original::Explicit(o) => Ok(o.clone()),
        Original::Step(i) => earlier
            .get(*i)
            .and_then(Option::as_ref)
            .ok_or_else(|| {
                ClientError::Request(format!("step {} has no result to refer to", i + 1))
            })?
            .original_ref(),
    };
    let amount_or_original = |amount: Option<_>, o: &switch::client::OriginalRef| {
        amount
            .or(o.amount)
            .ok_or_else(|| ClientError::Request("the original has no amount; give one".into()))
    };
    match op {
        Op::Txn {
            kind,
            pan,
            amount,
            opts,
        } => client.prepare(*kind, pan.as_str(), *amount, opts),
        Op::Complete { original, amount } => {
            let o = resolve(original)?;
            let amount = amount_or_original(*amount, &o)?;
            client.prepare_completion(&o, amount)
        }
        Op::Reverse {
            original,
            amount,
            replacement,
            advice,
        } => {
            let o = resolve(original)?;
            let amount = amount_or_original(*amount, &o)?;
            client.prepare_reversal(&o, amount, *replacement, *advice)
        }
        Op::Echo => client.prepare_network(NetworkCode::Echo),
    }
}

fn exit_code_for(e: &ClientError) -> u8 {
    match e.side() {
        Side::Client => EXIT_USAGE,
        Side::Switch => EXIT_TRANSPORT,
    }
}

fn print_json(m: serde_json::Map<String, serde_json::Value>) {
    println!("{}", serde_json::Value::Object(m));
}

fn report_error(g: &Global, action: &str, p: Option<&PreparedRequest>, e: &ClientError) {
    if g.json {
        print_json(output::error_json(action, p, e));
    } else {
        eprintln!("acquirer-sim: {action}: {e}");
    }
}

fn key_id(text: &str) -> Result<KeyId, ClientError> {
    text.parse()
        .map_err(|e| ClientError::Config(format!("{text:?}: {e}")))
}

fn ksn<const N: usize>(text: Option<&str>, default: [u8; N]) -> Result<[u8; N], ClientError> {
    let Some(text) = text else {
        return Ok(default);
    };
    Ksn::from_field(text.as_bytes())
        .ok()
        .and_then(|k| k.as_bytes().try_into().ok())
        .ok_or_else(|| ClientError::Config(format!("--ksn must be {} hex digits", 2 * N)))
}

/// The terminal's keys the flags ask for.
fn terminal_keys(g: &Global) -> Result<TerminalKeys, ClientError> {
    let Some(path) = &g.keys else {
        if g.mac_key.is_some() || g.pin_key.is_some() || g.dukpt.is_some() {
            return Err(ClientError::Config(
                "--mac-key, --pin-key and --dukpt need --keys".into(),
            ));
        }
        return Ok(TerminalKeys::none());
    };
    let keys = KeysFile::load(path).map_err(|e| ClientError::Config(e.to_string()))?;
    let mac = g.mac_key.as_deref().map(key_id).transpose()?;
    let bdk = |default: &str| key_id(g.bdk.as_deref().unwrap_or(default));
    let (pin, fallback) = match (g.dukpt.as_deref(), &g.pin_key) {
        (Some("tdes"), _) => (
            PinSetup::TdesDukpt {
                bdk: bdk("bdk:test-tdes")?,
                ksn: ksn(g.ksn.as_deref(), TEST_TDES_KSN)?,
            },
            false,
        ),
        (Some(_), _) => (
            PinSetup::AesDukpt {
                bdk: bdk("bdk:test-aes")?,
                ksn: ksn(g.ksn.as_deref(), TEST_AES_KSN)?,
            },
            false,
        ),
        (None, Some(k)) => (PinSetup::Zone(key_id(k)?), false),
        (None, None) => (PinSetup::Zone(KeyId::acquirer_zpk(&g.acquirer)), true),
    };
    let config = |e: TerminalKeyError| ClientError::Config(e.to_string());
    match TerminalKeys::from_keys_file(&keys, mac.as_ref(), &pin) {
        // The default zone PIN key is only taken when the keys file has it.
        Err(TerminalKeyError::Missing(id)) if fallback && PinSetup::Zone(id.clone()) == pin => {
            TerminalKeys::from_keys_file(&keys, mac.as_ref(), &PinSetup::None).map_err(config)
        }
        other => other.map_err(config),
    }
}

async fn connect(g: &Global) -> Result<AcquirerClient, ClientError> {
    let config = ClientConfig {
        dialect: g.dialect.dialect(),
        framing: FramingConfig {
            length_header: g.length_header,
            header_bytes: g.header_bytes,
            ..FramingConfig::default()
        },
        acquirer_id: g.acquirer.clone(),
        terminal_id: g.terminal.clone(),
        merchant_id: g.merchant.clone(),
        timeout: Duration::from_millis(g.timeout_ms),
    };
    let options = switch::client::ClientOptions {
        currency: g.currency,
        keys: Arc::new(terminal_keys(g)?),
        tls: g
            .tls
            .client_tls(&g.target)
            .map_err(|e| ClientError::Config(e.to_string()))?,
        ..Default::default()
    };
    AcquirerClient::connect_with(g.target.as_str(), config, options).await
}

async fn one_shot(client: &AcquirerClient, g: &Global, action: &str, op: &Op) -> u8 {
    let p = match prepare(client, op, &[]) {
        Ok(p) => p,
        Err(e) => {
            report_error(g, action, None, &e);
            return exit_code_for(&e);
        }
    };
    if !g.json
        && let Ok(m) = p.message()
    {
        print!("{}", output::message_block(">", "request", &m));
    }
    match client.send_prepared(&p).await {
        Ok(r) => {
            if g.json {
                print_json(output::txn_json(action, &p, &r));
            } else {
                print!("{}", output::message_block("<", "response", &r.response));
                println!("{}", output::outcome(&r));
            }
            EXIT_ANSWERED
        }
        Err(e) => {
            report_error(g, action, Some(&p), &e);
            exit_code_for(&e)
        }
    }
}

async fn script(client: &AcquirerClient, g: &Global, s: &Scenario) -> u8 {
    if !g.json
        && let Some(d) = &s.description
    {
        println!("# {d}");
    }
    let mut results: Vec<Option<TxnResult>> = Vec::with_capacity(s.steps.len());
    let mut failed = 0usize;
    for step in &s.steps {
        let action = step.action.name();
        let label = match &step.name {
            Some(n) => format!("step {} ({n})", step.number),
            None => format!("step {}", step.number),
        };
        let expect = step.expect.map(|c| c.as_str());
        let sent = match prepare(client, &step.op, &results) {
            Err(e) => Err((None, e)),
            Ok(p) => match client.send_prepared(&p).await {
                Ok(r) => Ok((p, r)),
                Err(e) => Err((Some(p), e)),
            },
        };
        let pass = match &sent {
            Ok((_, r)) => step.expect.is_none_or(|x| x == r.response_code),
            Err(_) => false,
        };
        if !pass {
            failed += 1;
        }
        let verdict = if pass { "PASS" } else { "FAIL" };
        let expected = expect.map(|x| format!(" expect={x}")).unwrap_or_default();
        match &sent {
            Ok((p, r)) if g.json => {
                let mut m = output::txn_json(action, p, r);
                step_json(&mut m, step, pass);
                print_json(m);
            }
            Ok((p, r)) => println!(
                "{verdict} {label}: {} -> {}{expected}",
                output::request_summary(action, p),
                output::outcome(r)
            ),
            Err((p, e)) if g.json => {
                let mut m = output::error_json(action, p.as_ref(), e);
                step_json(&mut m, step, pass);
                print_json(m);
            }
            Err((p, e)) => {
                let what = p
                    .as_ref()
                    .map(|p| output::request_summary(action, p))
                    .unwrap_or_else(|| action.to_owned());
                println!("{verdict} {label}: {what} -> ERROR {e}{expected}");
            }
        }
        results.push(sent.ok().map(|(_, r)| r));
    }
    if !g.json {
        println!(
            "{} steps: {} passed, {failed} failed",
            s.steps.len(),
            s.steps.len() - failed
        );
    }
    if failed == 0 {
        EXIT_ANSWERED
    } else {
        EXIT_TRANSPORT
    }
}

fn step_json(
    m: &mut serde_json::Map<String, serde_json::Value>,
    step: &scenario::PlannedStep,
    pass: bool,
) {
    m.insert("step".into(), step.number.into());
    m.insert("name".into(), step.name.clone().into());
    m.insert("expect".into(), step.expect.map(|c| c.as_str()).into());
    m.insert("pass".into(), pass.into());
}

async fn run(cli: Cli) -> u8 {
    let g = &cli.global;
    let plan = match plan(&cli.command, g.currency) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("acquirer-sim: {e}");
            return EXIT_USAGE;
        }
    };
    let action = match &plan {
        Plan::One { action, .. } => action,
        Plan::Script(_) => "script",
    };
    let client = match connect(g).await {
        Ok(c) => c,
        Err(e) => {
            report_error(g, action, None, &e);
            return exit_code_for(&e);
        }
    };
    match &plan {
        Plan::One { action, op } => one_shot(&client, g, action, op).await,
        Plan::Script(s) => script(&client, g, s).await,
    }
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // Usage errors exit 2; --help and --version exit 0.
            let code = e.exit_code();
            let _ = e.print();
            return ExitCode::from(u8::try_from(code).unwrap_or(EXIT_USAGE));
        }
    };
    simulators::log_to_stderr("warn");
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("acquirer-sim: cannot start the async runtime: {e}");
            return ExitCode::from(EXIT_TRANSPORT);
        }
    };
    ExitCode::from(runtime.block_on(run(cli)))
}
