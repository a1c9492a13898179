//! An async ISO 8583 acquirer client: what a terminal host (or a test) uses to talk to the switch.
//! The acquirer simulator, the load generator, the demo and the end-to-end tests all use it.
//!
//! # What it owns
//!
//! - One TCP connection, cut into frames by [`FrameCodec`].
//! - Pipelining: any number of requests may be in flight on the connection. A reader task matches
//!   each response to its waiting caller by STAN (field 11), so responses may arrive in any
//!   order. Several waiters on one STAN (a duplicate sent on purpose) are answered first come,
//!   first served. The same task fails a request with [`ClientError::Timeout`] once
//!   [`ClientConfig::timeout`] has passed since it was registered, from one timer for the
//!   connection: every request has the same timeout, so the deadlines queue up in order.
//! - The STAN counter: unique among the requests in flight, 000001 to 999999, then 000001 again.
//! - The house conventions for each request type ([`TxnKind`], [`AcquirerClient::complete`],
//!   [`AcquirerClient::reverse`], [`AcquirerClient::echo`]): which MTI, processing code and
//!   fields, all in one currency (default 156, CNY).
//!
//! # Fields of a request
//!
//! Every authorization or financial request carries 2, 3, 4 (not on a balance inquiry), 7 (UTC
//! from the injected [`Clock`]), 11, 12 and 13 (the same clock), 18 (MCC, default 5411), 22 (POS
//! entry mode: 051 with a PIN, 021 without), 32, 37 (a fresh RRN: last digit of the year, day of
//! the year, hour and STAN), 41, 42 and 49, plus 14, 43, 52 and 60 when [`TxnOptions`] asks.
//! A completion (0220) carries the original's 2 and 3, field 37 = the original RRN, 38 = the
//! original authorization code and 90; a reversal (0400/0420) the same, plus 95 for a partial
//! reversal. Network messages (0800) carry 7, 11 and 70.
//!
//! # MACs and PIN blocks
//!
//! With terminal keys ([`ClientOptions::keys`], a [`TerminalKeys`]) the client plays the
//! acquirer host and its PIN pad: every request carries a MAC in field 64 (128 when it has a
//! secondary bitmap) and every answer's MAC is checked (a missing or wrong one is a
//! [`ClientError::BadResponse`] on that field); a PIN is enciphered under the zone PIN key
//! (format 0 in field 52, or format 4 as hex in field 63 for an AES key) or by a DUKPT PIN pad
//! (its KSN in field 62 as hex, advancing with each PIN). Without a PIN pad, field 52 is the
//! ISO 9564-1 format 0 block **in clear**, which the switch refuses; it is there for tests of
//! exactly that. This is a test client holding test keys: never point it at production keys or
//! cards.
//!
//! # Errors
//!
//! [`ClientError`] says which side failed ([`ClientError::side`]): the switch (no answer in time,
//! connection closed, an undecodable or unusable response) or the client (bad configuration, a
//! request that cannot be encoded).

use std::borrow::Borrow;
use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use chrono::{Datelike, NaiveDateTime, Timelike};
use futures::StreamExt;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpStream, ToSocketAddrs};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::codec::FramedRead;

use crate::clock::{Clock, SystemClock};
use crate::domain::{
    AccountType, AcquirerId, Amount, Currency, MerchantId, Mti, Pan, ProcessingCode, ResponseCode,
    Stan, TerminalId, TransmissionDateTime, TxnType,
};
use crate::iso8583::decode::mask_pan;
use crate::iso8583::mac::{encode_with_mac, mac_field_of};
use crate::iso8583::views::{AdditionalAmount, NetworkCode, OriginalData, ReplacementAmounts};
use crate::iso8583::views::{KSN_FIELD, PIN_BLOCK_AES_FIELD};
use crate::iso8583::{
    DecodeError, Dialect, ISO87_ASCII, Message, MessageBuilder, decode, decode_lenient,
};
use crate::net::framing::{FrameCodec, FramingConfig};
use crate::security::EncryptedPinBlock;
pub use crate::terminal::{PinSetup, TerminalKeys};

/// The next [`Inner::id`].
static NEXT_CLIENT_ID: AtomicU64 = AtomicU64::new(0);

/// Requests waiting for the writer task. Callers wait (backpressure) when it is full.
const OUT_QUEUE: usize = 1024;
/// The writer sends at most this much in one write before looking at the queue again.
const WRITE_BATCH_BYTES: usize = 64 * 1024;

/// Connection settings.
#[derive(Clone)]
pub struct ClientConfig {
    /// The wire dialect the switch's listener speaks.
    pub dialect: &'static Dialect,
    /// Length header and fixed header. A fixed header (e.g. a TPDU) is sent as zero bytes.
    pub framing: FramingConfig,
    /// Field 32: 1-11 digits.
    pub acquirer_id: String,
    /// Field 41: at most 8 characters, right-padded with spaces.
    pub terminal_id: String,
    /// Field 42: at most 15 characters, right-padded with spaces.
    pub merchant_id: String,
    /// How long to wait for each response, and for the TCP connect.
    pub timeout: Duration,
}

impl Default for ClientConfig {
    /// The switch's default listener (`iso87-ascii`, `binary2-be`) and the demo acquirer
    /// `100001`, terminal `TERM0001`, merchant `MERCHANT0000001`, 5 s timeout.
    fn default() -> Self {
        ClientConfig {
            dialect: &ISO87_ASCII,
            framing: FramingConfig::default(),
            acquirer_id: "100001".into(),
            terminal_id: "TERM0001".into(),
            merchant_id: "MERCHANT0000001".into(),
            timeout: Duration::from_secs(5),
        }
    }
}

impl fmt::Debug for ClientConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientConfig")
            .field("dialect", &self.dialect.id.name())
            .field("framing", &self.framing)
            .field("acquirer_id", &self.acquirer_id)
            .field("terminal_id", &self.terminal_id)
            .field("merchant_id", &self.merchant_id)
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// Settings with defaults that most callers leave alone (see [`AcquirerClient::connect_with`]).
#[derive(Clone)]
pub struct ClientOptions {
    /// Source of fields 7, 12, 13 and of the RRN. Default: the system clock.
    pub clock: Arc<dyn Clock>,
    /// The currency of every amount (field 49). Default: 156 (CNY).
    pub currency: Currency,
    /// The first STAN to use. Default: random, so that two runs of a tool within the same second
    /// do not look like duplicates to the switch.
    pub first_stan: Option<Stan>,
    /// The acquirer's MAC key and PIN pad. Default: none (no MAC, PINs in clear).
    pub keys: Arc<TerminalKeys>,
    /// Connect with TLS (for a listener with `[listener.tls]`). Default: none (plain TCP).
    pub tls: Option<ClientTls>,
}

/// TLS settings of [`ClientOptions`]: what to trust and present, and the name to check on the
/// switch's certificate.
#[derive(Clone)]
pub struct ClientTls {
    /// Root CAs and, for a listener that asks for one, the acquirer's client certificate
    /// ([`crate::net::tls::client_config`] builds one from PEM files).
    pub config: Arc<rustls::ClientConfig>,
    /// The DNS name or IP address the switch's certificate must carry, e.g. `localhost` or
    /// `127.0.0.1`.
    pub server_name: String,
}

impl ClientTls {
    /// From PEM files, as the simulators' `--tls-ca`, `--tls-cert`, `--tls-key` and
    /// `--tls-server-name` name them: trust the CAs of `ca_file`, present `identity` (certificate
    /// chain, key) when given, and check `server_name` on the switch's certificate, by default the
    /// host part of `target` (`host:port`; an IPv6 literal loses its brackets).
    pub fn from_pem_files(
        ca_file: &std::path::Path,
        identity: Option<(&std::path::Path, &std::path::Path)>,
        server_name: Option<&str>,
        target: &str,
    ) -> Result<ClientTls, crate::net::tls::TlsError> {
        let config = crate::net::tls::client_config(ca_file, identity)?;
        let host = target
            .rsplit_once(':')
            .map_or(target, |(h, _)| h)
            .trim_start_matches('[')
            .trim_end_matches(']');
        Ok(ClientTls {
            config: Arc::new(config),
            server_name: server_name.unwrap_or(host).to_owned(),
        })
    }
}

impl ClientTls {
    /// The same trust, identity and server name, with a TLS session cache of its own (room for
    /// 8 sessions): what one terminal keeps to resume its own sessions. Clones of a `ClientTls`
    /// share one cache, which suits one client reconnecting but not many terminals emulated at
    /// once (they would take each other's few tickets and fall back to full handshakes).
    pub fn with_own_sessions(&self) -> ClientTls {
        let mut config = (*self.config).clone();
        config.resumption = rustls::client::Resumption::in_memory_sessions(8);
        ClientTls {
            config: Arc::new(config),
            server_name: self.server_name.clone(),
        }
    }

    /// The same trust and identity with no session resumption: every connection shakes hands in
    /// full, as a terminal whose TLS stack cannot resume does, and as every terminal does once
    /// after the switch restarts (its ticket keys live in memory only).
    pub fn without_resumption(&self) -> ClientTls {
        let mut config = (*self.config).clone();
        config.resumption = rustls::client::Resumption::disabled();
        ClientTls {
            config: Arc::new(config),
            server_name: self.server_name.clone(),
        }
    }
}

impl fmt::Debug for ClientTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientTls")
            .field("server_name", &self.server_name)
            .finish_non_exhaustive()
    }
}

type ReadHalf = Box<dyn tokio::io::AsyncRead + Send + Unpin>;
type WriteHalf = Box<dyn tokio::io::AsyncWrite + Send + Unpin>;

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            clock: Arc::new(SystemClock),
            currency: Currency::CNY,
            first_stan: None,
            keys: Arc::new(TerminalKeys::none()),
            tls: None,
        }
    }
}

impl fmt::Debug for ClientOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientOptions")
            .field("currency", &self.currency)
            .field("first_stan", &self.first_stan)
            .field("keys", &self.keys)
            .field("tls", &self.tls)
            .finish_non_exhaustive()
    }
}

/// Which end of the connection an error comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Side {
    /// The switch (or the network to it): refused, closed, silent, or sent something unusable.
    Switch,
    /// This client: its configuration or a request it could not build.
    Client,
}

impl fmt::Display for Side {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Side::Switch => "switch",
            Side::Client => "client",
        })
    }
}

/// What can go wrong. `Clone`, because a closed connection fails every pending request with
/// the same error.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ClientError {
    #[error("client side: invalid configuration: {0}")]
    Config(String),
    #[error("client side: cannot build the request: {0}")]
    Request(String),
    #[error("switch side: cannot connect to {addr}: {source}")]
    Connect {
        addr: String,
        source: Arc<io::Error>,
    },
    #[error("switch side: no response to STAN {stan} within {} ms", .timeout.as_millis())]
    Timeout { stan: Stan, timeout: Duration },
    #[error("{side} side: connection closed: {reason}")]
    Closed { side: Side, reason: Arc<str> },
    #[error("switch side: undecodable response{}: {error}", .stan.map(|s| format!(" to STAN {s}")).unwrap_or_default())]
    Decode {
        /// The STAN, when it could still be read.
        stan: Option<Stan>,
        error: DecodeError,
    },
    #[error("switch side: response to STAN {stan}: field {field}: {reason}")]
    BadResponse {
        stan: Stan,
        field: u8,
        reason: String,
    },
}

impl ClientError {
    /// The side at fault.
    pub fn side(&self) -> Side {
        match self {
            ClientError::Config(_) | ClientError::Request(_) => Side::Client,
            ClientError::Closed { side, .. } => *side,
            ClientError::Connect { .. }
            | ClientError::Timeout { .. }
            | ClientError::Decode { .. }
            | ClientError::BadResponse { .. } => Side::Switch,
        }
    }

    /// True for a timeout waiting for the response.
    pub fn is_timeout(&self) -> bool {
        matches!(self, ClientError::Timeout { .. })
    }

    /// True when the connection is gone.
    pub fn is_closed(&self) -> bool {
        matches!(self, ClientError::Closed { .. })
    }
}

fn request_error(e: impl fmt::Display) -> ClientError {
    ClientError::Request(e.to_string())
}

/// A card number as the caller gave it. The client sends it in field 2 as is, without a Luhn
/// check, so that invalid numbers can be sent on purpose. `Display` and `Debug` mask it (first
/// 6 and last 4 digits).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct CardNumber(String);

impl CardNumber {
    pub fn new(digits: impl Into<String>) -> CardNumber {
        CardNumber(digits.into())
    }

    /// The clear digits.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for CardNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(&mask_pan(self.0.as_bytes()))
    }
}

impl fmt::Debug for CardNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CardNumber({})", mask_pan(self.0.as_bytes()))
    }
}

/// Anything that holds the digits of a card number: `&str`, `String`, [`Pan`], [`CardNumber`].
pub trait CardDigits {
    fn card_digits(&self) -> &str;
}

impl CardDigits for str {
    fn card_digits(&self) -> &str {
        self
    }
}

impl CardDigits for String {
    fn card_digits(&self) -> &str {
        self
    }
}

impl CardDigits for Pan {
    fn card_digits(&self) -> &str {
        self.expose_str()
    }
}

impl CardDigits for CardNumber {
    fn card_digits(&self) -> &str {
        &self.0
    }
}

impl<T: CardDigits + ?Sized> CardDigits for &T {
    fn card_digits(&self) -> &str {
        (**self).card_digits()
    }
}

/// Per-transaction options of authorization and financial requests.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct TxnOptions {
    /// Field 14, `YYMM`.
    pub expiry: Option<String>,
    /// A clear PIN (4-12 digits), enciphered by the client's PIN pad (see the module
    /// documentation; without one it goes as a clear format 0 block in field 52).
    pub pin: Option<String>,
    /// Field 60 = `1`: the terminal accepts a partial approval.
    pub partial_approval: bool,
    /// Field 18. Default 5411 (grocery stores).
    pub mcc: Option<u16>,
    /// Field 22. Default 051 with a PIN, 021 without.
    pub pos_entry_mode: Option<u16>,
    /// Field 43, right-padded with spaces to 40 characters.
    pub card_acceptor: Option<String>,
}

impl TxnOptions {
    pub fn new() -> TxnOptions {
        TxnOptions::default()
    }

    pub fn expiry(mut self, yymm: impl Into<String>) -> TxnOptions {
        self.expiry = Some(yymm.into());
        self
    }

    pub fn pin(mut self, pin: impl Into<String>) -> TxnOptions {
        self.pin = Some(pin.into());
        self
    }

    pub fn partial(mut self) -> TxnOptions {
        self.partial_approval = true;
        self
    }

    pub fn mcc(mut self, mcc: u16) -> TxnOptions {
        self.mcc = Some(mcc);
        self
    }

    pub fn pos_entry_mode(mut self, mode: u16) -> TxnOptions {
        self.pos_entry_mode = Some(mode);
        self
    }

    pub fn card_acceptor(mut self, name: impl Into<String>) -> TxnOptions {
        self.card_acceptor = Some(name.into());
        self
    }
}

// The PIN never appears in a log.
impl fmt::Debug for TxnOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TxnOptions")
            .field("expiry", &self.expiry)
            .field("pin", &self.pin.as_ref().map(|_| "[redacted]"))
            .field("partial_approval", &self.partial_approval)
            .field("mcc", &self.mcc)
            .field("pos_entry_mode", &self.pos_entry_mode)
            .field("card_acceptor", &self.card_acceptor)
            .finish()
    }
}

/// The ISO 9564-1 format 0 PIN block of `pin` for card `pan`: the PIN field (`0`, the PIN
/// length, the PIN, `F` padding) XOR the PAN field (four zeros and the 12 rightmost PAN digits
/// without the check digit). The result is in clear; see the module documentation.
pub fn pin_block_format0(pin: &str, pan: &str) -> Result<[u8; 8], ClientError> {
    crate::security::pinblock::check_pin(pin).map_err(|e| ClientError::Request(e.to_string()))?;
    let pin = pin.as_bytes();
    let pan = pan.as_bytes();
    if pan.len() < 2 || !pan.iter().all(u8::is_ascii_digit) {
        return Err(ClientError::Request(
            "PIN block needs a card number of digits".into(),
        ));
    }
    let mut pin_field = [0x0fu8; 16];
    pin_field[0] = 0;
    pin_field[1] = pin.len() as u8;
    for (i, &d) in pin.iter().enumerate() {
        pin_field[2 + i] = d - b'0';
    }
    let body = &pan[..pan.len() - 1];
    let tail = &body[body.len().saturating_sub(12)..];
    let mut pan_field = [0u8; 16];
    for (i, &d) in tail.iter().enumerate() {
        pan_field[16 - tail.len() + i] = d - b'0';
    }
    let mut out = [0u8; 8];
    for (i, o) in out.iter_mut().enumerate() {
        let hi = pin_field[2 * i] ^ pan_field[2 * i];
        let lo = pin_field[2 * i + 1] ^ pan_field[2 * i + 1];
        *o = (hi << 4) | lo;
    }
    Ok(out)
}

/// The authorization and financial request types of the house conventions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TxnKind {
    /// 0200, processing code 000000.
    Purchase,
    /// 0100, 000000: an authorization hold, completed later by a 0220.
    Preauth,
    /// 0200, 200000.
    Refund,
    /// 0100, 310000, without field 4.
    Balance,
    /// 0200, 010000.
    Cash,
    /// 0200, 210000: a prepaid load.
    Load,
    /// 0200, 210000: a payment to a credit account.
    Payment,
}

impl TxnKind {
    pub const ALL: [TxnKind; 7] = [
        TxnKind::Purchase,
        TxnKind::Preauth,
        TxnKind::Refund,
        TxnKind::Balance,
        TxnKind::Cash,
        TxnKind::Load,
        TxnKind::Payment,
    ];

    pub fn mti(self) -> Mti {
        match self {
            TxnKind::Preauth | TxnKind::Balance => Mti::AUTH_REQUEST,
            _ => Mti::FINANCIAL_REQUEST,
        }
    }

    pub fn processing_code(self) -> ProcessingCode {
        let txn = match self {
            TxnKind::Purchase | TxnKind::Preauth => TxnType::Purchase,
            TxnKind::Refund => TxnType::Refund,
            TxnKind::Balance => TxnType::BalanceInquiry,
            TxnKind::Cash => TxnType::Cash,
            TxnKind::Load | TxnKind::Payment => TxnType::Deposit,
        };
        ProcessingCode::new(txn, AccountType::Default, AccountType::Default)
    }

    /// Lower-case name, as the acquirer simulator spells it.
    pub fn name(self) -> &'static str {
        match self {
            TxnKind::Purchase => "purchase",
            TxnKind::Preauth => "preauth",
            TxnKind::Refund => "refund",
            TxnKind::Balance => "balance",
            TxnKind::Cash => "cash",
            TxnKind::Load => "load",
            TxnKind::Payment => "payment",
        }
    }
}

/// What a completion or reversal needs to know about its original request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OriginalRef {
    /// The original MTI, e.g. 0100 for a preauthorization.
    pub mti: Mti,
    pub stan: Stan,
    /// The original field 7.
    pub transmission: TransmissionDateTime,
    pub pan: CardNumber,
    /// The original field 3, repeated in the completion or reversal.
    pub processing_code: ProcessingCode,
    /// The original amount, if known.
    pub amount: Option<Amount>,
    /// The original field 37.
    pub rrn: Option<String>,
    /// The original field 38 (the issuer's approval code).
    pub auth_code: Option<String>,
}

impl OriginalRef {
    /// An original known by its MTI, STAN, field 7 and card; processing code 000000.
    pub fn new(
        mti: Mti,
        stan: Stan,
        transmission: TransmissionDateTime,
        pan: impl CardDigits,
    ) -> OriginalRef {
        OriginalRef {
            mti,
            stan,
            transmission,
            pan: CardNumber::new(pan.card_digits()),
            processing_code: ProcessingCode::PURCHASE,
            amount: None,
            rrn: None,
            auth_code: None,
        }
    }
}

/// Something a completion or reversal can refer to: a [`TxnResult`] or an [`OriginalRef`].
pub trait AsOriginal {
    fn original_ref(&self) -> Result<OriginalRef, ClientError>;
}

impl AsOriginal for OriginalRef {
    fn original_ref(&self) -> Result<OriginalRef, ClientError> {
        Ok(self.clone())
    }
}

impl AsOriginal for TxnResult {
    fn original_ref(&self) -> Result<OriginalRef, ClientError> {
        let (Some(pan), Some(processing_code)) = (&self.pan, self.processing_code) else {
            return Err(ClientError::Request(format!(
                "a {} has no card to refer to",
                self.request_mti
            )));
        };
        Ok(OriginalRef {
            mti: self.request_mti,
            stan: self.stan,
            transmission: self.transmission,
            pan: pan.clone(),
            processing_code,
            amount: self.amount,
            rrn: self.rrn.clone(),
            auth_code: self.auth_code.clone(),
        })
    }
}

impl<T: AsOriginal + ?Sized> AsOriginal for &T {
    fn original_ref(&self) -> Result<OriginalRef, ClientError> {
        (**self).original_ref()
    }
}

/// A request encoded and given its STAN, not yet sent. Send it with
/// [`AcquirerClient::send_prepared`], as often as wanted (duplicates keep their STAN and field
/// 7). It is framed when built, so a request too large for the client's framing fails here, not
/// when sent. Its `Debug` shows the card number masked and the message's length only.
#[derive(Clone)]
pub struct PreparedRequest {
    pub request_mti: Mti,
    pub stan: Stan,
    pub transmission: TransmissionDateTime,
    /// None for network messages.
    pub pan: Option<CardNumber>,
    pub processing_code: Option<ProcessingCode>,
    /// Field 4.
    pub amount: Option<Amount>,
    /// Field 37.
    pub rrn: Option<String>,
    /// The encoded message, without framing.
    pub payload: Bytes,
    wire: Wire,
}

/// How a [`PreparedRequest`] was encoded: its dialect, and the message framed (length header,
/// fixed header, payload) by the client that built it, whose [`Inner::id`] is `framed_by`. That
/// client sends the frame as is; another frames the payload again. The payload starts at
/// `frame[body..]`.
#[derive(Clone)]
struct Wire {
    dialect: &'static Dialect,
    frame: Bytes,
    framed_by: u64,
    body: usize,
}

impl fmt::Debug for PreparedRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PreparedRequest")
            .field("request_mti", &self.request_mti)
            .field("stan", &self.stan)
            .field("transmission", &self.transmission)
            .field("pan", &self.pan)
            .field("processing_code", &self.processing_code)
            .field("amount", &self.amount)
            .field("rrn", &self.rrn)
            .field("payload_bytes", &self.payload.len())
            .finish_non_exhaustive()
    }
}

impl PreparedRequest {
    /// The request as a decoded message (its `Debug` masks card data).
    pub fn message(&self) -> Result<Message, DecodeError> {
        decode_lenient(self.wire.dialect, self.payload.clone())
    }
}

/// A response, matched to its request.
#[derive(Debug, Clone)]
pub struct TxnResult {
    pub request_mti: Mti,
    pub stan: Stan,
    /// Field 7 of the request.
    pub transmission: TransmissionDateTime,
    /// None for network messages.
    pub pan: Option<CardNumber>,
    pub processing_code: Option<ProcessingCode>,
    /// Field 4 of the request.
    pub amount: Option<Amount>,
    /// Field 37 of the response (of the request when the response has none).
    pub rrn: Option<String>,
    pub response_mti: Mti,
    /// Field 39.
    pub response_code: ResponseCode,
    /// Field 38.
    pub auth_code: Option<String>,
    /// Field 4 of the response: the approved amount (less than requested on a partial approval).
    pub approved_amount: Option<Amount>,
    /// Field 54, parsed (balances on an inquiry or a prepaid purchase).
    pub additional_amounts: Vec<AdditionalAmount>,
    /// The whole response; its `Debug` masks card data.
    pub response: Message,
    /// From handing the request to the writer to reading its response.
    pub latency: Duration,
    /// When the response was read off the socket, before the caller's task was woken for it:
    /// the end of a round trip as a load generator should time it. On the system's monotonic
    /// clock, not tokio's, so a paused test clock does not freeze it.
    pub received_at: std::time::Instant,
}

impl TxnResult {
    /// 00 or 10.
    pub fn is_approved(&self) -> bool {
        self.response_code.is_approval()
    }

    /// The amount of the first field-54 entry of `amount_type` (e.g.
    /// [`AdditionalAmount::AVAILABLE`]).
    pub fn additional_amount(&self, amount_type: u8) -> Option<Amount> {
        self.additional_amounts
            .iter()
            .find(|a| a.amount_type == amount_type)
            .map(|a| a.amount)
    }
}

/// One frame read for a waiter, stamped when it was read.
struct Received {
    msg: Message,
    at: Instant,
    /// The same moment on the system's monotonic clock (see [`TxnResult::received_at`]).
    at_std: std::time::Instant,
}

type Reply = Result<Received, ClientError>;

struct Waiter {
    id: u64,
    tx: oneshot::Sender<Reply>,
}

/// The waiters of one STAN, oldest first. Almost always one, held inline: only a STAN sent
/// again on purpose while its first is in flight allocates.
struct Waiters {
    first: Waiter,
    more: VecDeque<Waiter>,
}

impl Waiters {
    /// Takes the oldest waiter; `None` once it was the last (the entry is then removed).
    fn pop_front(mut self) -> (Waiter, Option<Waiters>) {
        match self.more.pop_front() {
            None => (self.first, None),
            Some(next) => {
                let first = std::mem::replace(&mut self.first, next);
                (first, Some(self))
            }
        }
    }
}

/// When a waiter's time is up: the reader task fails it with [`ClientError::Timeout`] then.
struct Deadline {
    at: Instant,
    stan: Stan,
    id: u64,
    /// The waiter was answered, cancelled or failed: the entry only waits to reach the front.
    gone: bool,
}

struct State {
    /// Waiters by STAN; more than one only when the same STAN was sent again on purpose.
    /// foldhash: one insert and one removal per request.
    waiters: HashMap<u32, Waiters, foldhash::fast::RandomState>,
    /// Every waiter's deadline, in the order they registered, which is the order of the
    /// deadlines too: every request has the same timeout. The waiters' ids are handed out in
    /// the same order, one apart, so a waiter's entry is found by its distance from the
    /// front's, with no lookup. Entries of waiters that are gone (answered, cancelled) are
    /// dropped when they reach the front, so this holds the requests registered since the
    /// oldest one still waiting: the requests in flight while answers come, up to a timeout's
    /// worth of requests behind one that gets none. One
    /// timer for the connection ([`read_loop`]) instead of one per request: registering,
    /// polling and cancelling a tokio timer per request cost the load generator about 6% of
    /// its instructions per answer under load, and 5–15% of its CPU time
    /// (docs/performance.md, "Grids in rounds, and a lighter load client").
    deadlines: VecDeque<Deadline>,
    in_flight: usize,
    last_stan: Stan,
    next_id: u64,
    closed: Option<ClientError>,
}

/// What the caller side and the reader and writer tasks share.
struct Shared {
    state: Mutex<State>,
    dialect: &'static Dialect,
    /// How long a request waits for its response ([`ClientConfig::timeout`]).
    timeout: Duration,
    /// Responses nobody waited for (late after a timeout, unknown STAN, no STAN).
    unmatched: AtomicU64,
}

impl State {
    /// Marks waiter `id`'s deadline as gone, and drops the gone ones at the front.
    fn leave(&mut self, id: u64) {
        let at = self.deadlines.front().and_then(|front| {
            let i = id.checked_sub(front.id)?;
            usize::try_from(i).ok()
        });
        if let Some(d) = at.and_then(|i| self.deadlines.get_mut(i)) {
            debug_assert_eq!(d.id, id, "deadlines are queued in id order");
            d.gone = true;
        }
        while self.deadlines.front().is_some_and(|d| d.gone) {
            self.deadlines.pop_front();
        }
    }

    /// Takes the oldest waiter of `stan` out of the map (the one an answer goes to); `None`
    /// if none waits.
    fn take_first(&mut self, stan: u32) -> Option<Waiter> {
        let (w, rest) = self.waiters.remove(&stan)?.pop_front();
        if let Some(rest) = rest {
            self.waiters.insert(stan, rest);
        }
        self.left(w)
    }

    /// Takes waiter `id` of `stan` out of the map; `None` if it is gone.
    fn take(&mut self, stan: u32, id: u64) -> Option<Waiter> {
        let q = self.waiters.get_mut(&stan)?;
        if q.first.id == id {
            return self.take_first(stan);
        }
        let pos = q.more.iter().position(|w| w.id == id)?;
        let w = q.more.remove(pos)?;
        self.left(w)
    }

    /// The bookkeeping of a waiter just taken out of the map.
    fn left(&mut self, w: Waiter) -> Option<Waiter> {
        self.in_flight -= 1;
        self.leave(w.id);
        Some(w)
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // Nothing under this lock can panic in a release build (map and queue operations, and
        // counts that only go down for a waiter that was counted in), so a poisoned lock is
        // still usable.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn closed_error(&self) -> ClientError {
        self.lock()
            .closed
            .clone()
            .unwrap_or_else(|| ClientError::Closed {
                side: Side::Client,
                reason: "the client was shut down".into(),
            })
    }

    /// The next STAN not in flight.
    fn allocate(&self) -> Result<Stan, ClientError> {
        let mut st = self.lock();
        if let Some(e) = &st.closed {
            return Err(e.clone());
        }
        for _ in 0..Stan::MAX {
            st.last_stan = st.last_stan.next();
            if !st.waiters.contains_key(&st.last_stan.value()) {
                return Ok(st.last_stan);
            }
        }
        Err(ClientError::Request("every STAN is in flight".into()))
    }

    /// Registers a waiter for `stan` (which may already have waiters), with its deadline.
    fn register(
        self: &Arc<Self>,
        stan: Stan,
    ) -> Result<(Registration, oneshot::Receiver<Reply>), ClientError> {
        let (tx, rx) = oneshot::channel();
        let mut st = self.lock();
        if let Some(e) = &st.closed {
            return Err(e.clone());
        }
        let id = st.next_id;
        st.next_id += 1;
        // Read under the lock, so that the deadlines are in order in the queue.
        let at = self.deadline_from(Instant::now());
        st.deadlines.push_back(Deadline {
            at,
            stan,
            id,
            gone: false,
        });
        let waiter = Waiter { id, tx };
        match st.waiters.entry(stan.value()) {
            std::collections::hash_map::Entry::Occupied(mut e) => {
                e.get_mut().more.push_back(waiter)
            }
            std::collections::hash_map::Entry::Vacant(e) => {
                e.insert(Waiters {
                    first: waiter,
                    more: VecDeque::new(),
                });
            }
        }
        st.in_flight += 1;
        drop(st);
        let reg = Registration {
            shared: Arc::clone(self),
            stan,
            id,
            live: true,
        };
        Ok((reg, rx))
    }

    /// A full timeout after `now`; far in the future for a timeout too long to add (tokio's own
    /// timeout saturates the same way).
    fn deadline_from(&self, now: Instant) -> Instant {
        now.checked_add(self.timeout)
            .unwrap_or_else(|| now + Duration::from_secs(30 * 365 * 86_400))
    }

    /// Removes waiter `id` of `stan`; false if it is gone (answered or failed).
    fn remove(&self, stan: Stan, id: u64) -> bool {
        self.lock().take(stan.value(), id).is_some()
    }

    /// Fails every waiter whose deadline is `now` or earlier with [`ClientError::Timeout`];
    /// returns when to look again: the next deadline, or a full timeout from now when nothing
    /// waits (a request registered later has a later deadline still).
    fn expire(&self, now: Instant) -> Instant {
        let mut due = Vec::new();
        let next = {
            let mut st = self.lock();
            loop {
                match st.deadlines.front() {
                    Some(d) if d.at <= now => {
                        let (stan, id) = (d.stan, d.id);
                        match st.take(stan.value(), id) {
                            // Taking it dropped its deadline.
                            Some(w) => due.push((stan, w)),
                            // Not in the map, which `take` and `deliver` keep from happening:
                            // dropped here all the same, so that the loop ends.
                            None => {
                                st.deadlines.pop_front();
                            }
                        }
                    }
                    Some(d) => break d.at,
                    None => break self.deadline_from(now),
                }
            }
        };
        for (stan, w) in due {
            let _ = w.tx.send(Err(ClientError::Timeout {
                stan,
                timeout: self.timeout,
            }));
        }
        next
    }

    /// Hands `reply` to the oldest waiter of `stan`.
    fn deliver(&self, stan: Stan, reply: Reply) {
        let waiter = self.lock().take_first(stan.value());
        match waiter {
            // The caller may have stopped waiting in the meantime; nothing to do then.
            Some(w) => drop(w.tx.send(reply)),
            None => {
                self.unmatched.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(%stan, "response with no waiter (late or unknown STAN)");
            }
        }
    }

    /// Fails every waiter with `err` and refuses new requests. The first reason is kept.
    fn close(&self, err: ClientError) {
        let waiters = {
            let mut st = self.lock();
            if st.closed.is_none() {
                st.closed = Some(err.clone());
            }
            st.in_flight = 0;
            st.deadlines.clear();
            std::mem::take(&mut st.waiters)
        };
        for w in waiters
            .into_values()
            .flat_map(|q| std::iter::once(q.first).chain(q.more))
        {
            let _ = w.tx.send(Err(err.clone()));
        }
    }

    /// Matches one frame read from the switch.
    fn dispatch(&self, payload: Bytes, at: Instant, at_std: std::time::Instant) {
        let stan_of = |m: &Message| {
            m.is_valid(11)
                .then(|| m.get(11))
                .flatten()
                .and_then(|v| Stan::from_field(&v).ok())
        };
        match decode(self.dialect, payload.clone()) {
            Ok(msg) => {
                let is_response = Mti::from_digits(&msg.mti_digits()).is_ok_and(Mti::is_response);
                match stan_of(&msg) {
                    Some(stan) if is_response => {
                        self.deliver(stan, Ok(Received { msg, at, at_std }))
                    }
                    _ => {
                        self.unmatched.fetch_add(1, Ordering::Relaxed);
                        tracing::warn!(message = ?msg, "ignoring a message from the switch that answers no request");
                    }
                }
            }
            Err(error) => match decode_lenient(self.dialect, payload)
                .ok()
                .as_ref()
                .and_then(stan_of)
            {
                Some(stan) => self.deliver(
                    stan,
                    Err(ClientError::Decode {
                        stan: Some(stan),
                        error,
                    }),
                ),
                None => {
                    self.unmatched.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(%error, "undecodable response without a readable STAN");
                }
            },
        }
    }
}

/// A waiter in the map; removed on drop unless it was answered.
struct Registration {
    shared: Arc<Shared>,
    stan: Stan,
    id: u64,
    live: bool,
}

impl Registration {
    /// Removes the waiter; false if a reply was already handed to it.
    #[cfg(test)]
    fn cancel(&mut self) -> bool {
        self.live = false;
        self.shared.remove(self.stan, self.id)
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        if self.live {
            self.shared.remove(self.stan, self.id);
        }
    }
}

/// Bytes for the writer task, with an optional acknowledgement once they are written.
struct Outgoing {
    bytes: Bytes,
    ack: Option<oneshot::Sender<Result<(), ClientError>>>,
}

struct Inner {
    /// Unique in the process: which client framed a [`PreparedRequest`].
    id: u64,
    config: ClientConfig,
    acquirer: AcquirerId,
    terminal: String,
    merchant: String,
    clock: Arc<dyn Clock>,
    currency: Currency,
    keys: Arc<TerminalKeys>,
    codec: FrameCodec,
    /// The fixed header of every frame (zeros), empty when there is none.
    header: Vec<u8>,
    shared: Arc<Shared>,
    out: mpsc::Sender<Outgoing>,
    reader: JoinHandle<()>,
    local: SocketAddr,
    peer: SocketAddr,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // The writer stops by itself once `out` is dropped, after writing what is queued.
        self.reader.abort();
    }
}

/// An acquirer's connection to the switch. Cheap to clone: clones share the connection, and it
/// closes when the last clone is dropped.
#[derive(Clone)]
pub struct AcquirerClient {
    inner: Arc<Inner>,
}

impl fmt::Debug for AcquirerClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AcquirerClient")
            .field("local", &self.inner.local)
            .field("peer", &self.inner.peer)
            .field("in_flight", &self.in_flight())
            .finish_non_exhaustive()
    }
}

fn pad_id(kind: &str, value: &str, len: usize) -> Result<String, ClientError> {
    if value.len() > len {
        return Err(ClientError::Config(format!(
            "{kind} {value:?} is longer than {len} characters"
        )));
    }
    Ok(format!("{value:<len$}"))
}

impl AcquirerClient {
    /// Connects with the default [`ClientOptions`] (system clock, CNY, random first STAN).
    pub async fn connect(
        addr: impl ToSocketAddrs + fmt::Display,
        config: ClientConfig,
    ) -> Result<AcquirerClient, ClientError> {
        AcquirerClient::connect_with(addr, config, ClientOptions::default()).await
    }

    /// Connects to the switch at `addr` and starts the reader and writer tasks (on the current
    /// tokio runtime).
    pub async fn connect_with(
        addr: impl ToSocketAddrs + fmt::Display,
        config: ClientConfig,
        options: ClientOptions,
    ) -> Result<AcquirerClient, ClientError> {
        let acquirer = AcquirerId::parse(&config.acquirer_id)
            .map_err(|e| ClientError::Config(format!("acquirer id: {e}")))?;
        let terminal = pad_id("terminal id", &config.terminal_id, TerminalId::LEN)?;
        TerminalId::from_field(terminal.as_bytes())
            .map_err(|e| ClientError::Config(format!("terminal id: {e}")))?;
        let merchant = pad_id("merchant id", &config.merchant_id, MerchantId::LEN)?;
        MerchantId::from_field(merchant.as_bytes())
            .map_err(|e| ClientError::Config(format!("merchant id: {e}")))?;

        let addr_text = addr.to_string();
        let connect_error = |source: io::Error| ClientError::Connect {
            addr: addr_text.clone(),
            source: Arc::new(source),
        };
        let stream = match tokio::time::timeout(config.timeout, TcpStream::connect(addr)).await {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => return Err(connect_error(e)),
            Err(_) => {
                return Err(connect_error(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("no connection within {} ms", config.timeout.as_millis()),
                )));
            }
        };
        // Requests are small and latency matters more than packet count.
        stream.set_nodelay(true).map_err(connect_error)?;
        let local = stream.local_addr().map_err(connect_error)?;
        let peer = stream.peer_addr().map_err(connect_error)?;

        let first = options
            .first_stan
            .map(Stan::value)
            .unwrap_or_else(|| fastrand::u32(1..=Stan::MAX));
        // `allocate` hands out `last.next()`, so start one before the first.
        let last_stan = Stan::new(if first <= 1 { Stan::MAX } else { first - 1 })
            .map_err(|e| ClientError::Config(format!("first STAN: {e}")))?;
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                waiters: HashMap::default(),
                in_flight: 0,
                last_stan,
                next_id: 0,
                closed: None,
                deadlines: VecDeque::new(),
            }),
            dialect: config.dialect,
            timeout: config.timeout,
            unmatched: AtomicU64::new(0),
        });

        let (read_half, write_half): (ReadHalf, WriteHalf) = match &options.tls {
            None => {
                let (r, w) = stream.into_split();
                (Box::new(r), Box::new(w))
            }
            Some(tls) => {
                let name = rustls_pki_types::ServerName::try_from(tls.server_name.clone())
                    .map_err(|e| ClientError::Config(format!("TLS server name: {e}")))?;
                let connector = tokio_rustls::TlsConnector::from(Arc::clone(&tls.config));
                let tls_stream =
                    match tokio::time::timeout(config.timeout, connector.connect(name, stream))
                        .await
                    {
                        Ok(Ok(s)) => s,
                        Ok(Err(e)) => return Err(connect_error(e)),
                        Err(_) => {
                            return Err(connect_error(io::Error::new(
                                io::ErrorKind::TimedOut,
                                format!(
                                    "no TLS handshake within {} ms",
                                    config.timeout.as_millis()
                                ),
                            )));
                        }
                    };
                let (r, w) = tokio::io::split(tls_stream);
                (Box::new(r), Box::new(w))
            }
        };
        let codec = FrameCodec::new(config.framing);
        let reader = tokio::spawn(read_loop(
            FramedRead::new(read_half, codec.clone()),
            Arc::clone(&shared),
        ));
        let (out, rx) = mpsc::channel(OUT_QUEUE);
        tokio::spawn(write_loop(write_half, rx, Arc::clone(&shared)));

        Ok(AcquirerClient {
            inner: Arc::new(Inner {
                id: NEXT_CLIENT_ID.fetch_add(1, Ordering::Relaxed),
                header: vec![0; config.framing.header_bytes],
                config,
                acquirer,
                terminal,
                merchant,
                clock: options.clock,
                currency: options.currency,
                keys: options.keys,
                codec,
                shared,
                out,
                reader,
                local,
                peer,
            }),
        })
    }

    pub fn config(&self) -> &ClientConfig {
        &self.inner.config
    }

    /// The currency of every amount this client sends.
    pub fn currency(&self) -> Currency {
        self.inner.currency
    }

    /// Parses major units (`"12.34"`) in the client's currency.
    pub fn parse_amount(&self, major: &str) -> Result<Amount, ClientError> {
        Amount::parse_major(major, self.inner.currency)
            .map_err(|e| ClientError::Request(format!("amount {major:?}: {e}")))
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.inner.local
    }

    pub fn peer_addr(&self) -> SocketAddr {
        self.inner.peer
    }

    /// Requests sent (or being sent) and not yet answered, failed or timed out.
    pub fn in_flight(&self) -> usize {
        self.inner.shared.lock().in_flight
    }

    /// Responses that matched no waiting request: late answers after a timeout, unknown STANs.
    pub fn unmatched_responses(&self) -> u64 {
        self.inner.shared.unmatched.load(Ordering::Relaxed)
    }

    /// The STAN of the last request this client built (before the first: the one before
    /// [`ClientOptions::first_stan`]). A terminal that reconnects passes `last_stan().next()` as
    /// the new connection's `first_stan`, so its STANs go on counting and a request is never
    /// mistaken for a duplicate of one sent on an earlier connection.
    pub fn last_stan(&self) -> Stan {
        self.inner.shared.lock().last_stan
    }

    /// Why the connection closed, once it has.
    pub fn close_reason(&self) -> Option<ClientError> {
        self.inner.shared.lock().closed.clone()
    }

    pub fn is_closed(&self) -> bool {
        self.close_reason().is_some()
    }

    // ---- typed requests -------------------------------------------------------------------

    /// 0200 purchase (000000).
    pub async fn purchase(
        &self,
        pan: impl CardDigits,
        amount: Amount,
        opts: impl Borrow<TxnOptions>,
    ) -> Result<TxnResult, ClientError> {
        self.request(TxnKind::Purchase, pan, Some(amount), opts)
            .await
    }

    /// 0100 preauthorization (000000).
    pub async fn preauth(
        &self,
        pan: impl CardDigits,
        amount: Amount,
        opts: impl Borrow<TxnOptions>,
    ) -> Result<TxnResult, ClientError> {
        self.request(TxnKind::Preauth, pan, Some(amount), opts)
            .await
    }

    /// 0200 refund (200000).
    pub async fn refund(
        &self,
        pan: impl CardDigits,
        amount: Amount,
    ) -> Result<TxnResult, ClientError> {
        self.request(TxnKind::Refund, pan, Some(amount), TxnOptions::default())
            .await
    }

    /// 0100 balance inquiry (310000), without field 4.
    pub async fn balance(&self, pan: impl CardDigits) -> Result<TxnResult, ClientError> {
        self.request(TxnKind::Balance, pan, None, TxnOptions::default())
            .await
    }

    /// 0200 cash withdrawal (010000).
    pub async fn cash(
        &self,
        pan: impl CardDigits,
        amount: Amount,
    ) -> Result<TxnResult, ClientError> {
        self.request(TxnKind::Cash, pan, Some(amount), TxnOptions::default())
            .await
    }

    /// 0200 prepaid load (210000).
    pub async fn load(
        &self,
        pan: impl CardDigits,
        amount: Amount,
    ) -> Result<TxnResult, ClientError> {
        self.request(TxnKind::Load, pan, Some(amount), TxnOptions::default())
            .await
    }

    /// 0200 payment to a credit account (210000).
    pub async fn payment(
        &self,
        pan: impl CardDigits,
        amount: Amount,
    ) -> Result<TxnResult, ClientError> {
        self.request(TxnKind::Payment, pan, Some(amount), TxnOptions::default())
            .await
    }

    /// Any [`TxnKind`] with options. `amount` may be `None` only for a balance inquiry.
    pub async fn request(
        &self,
        kind: TxnKind,
        pan: impl CardDigits,
        amount: Option<Amount>,
        opts: impl Borrow<TxnOptions>,
    ) -> Result<TxnResult, ClientError> {
        let p = self.prepare(kind, pan, amount, opts)?;
        self.send_prepared(&p).await
    }

    /// 0220 completion of `original` (usually a preauthorization) for `amount`.
    pub async fn complete(
        &self,
        original: impl AsOriginal,
        amount: Amount,
    ) -> Result<TxnResult, ClientError> {
        let p = self.prepare_completion(original, amount)?;
        self.send_prepared(&p).await
    }

    /// 0400 reversal of `original`. `amount` is the original amount (field 4); `replacement`
    /// (field 95) is what actually happened, for a partial reversal.
    pub async fn reverse(
        &self,
        original: impl AsOriginal,
        amount: Amount,
        replacement: Option<Amount>,
    ) -> Result<TxnResult, ClientError> {
        let p = self.prepare_reversal(original, amount, replacement, false)?;
        self.send_prepared(&p).await
    }

    /// 0420 reversal advice; otherwise as [`reverse`](Self::reverse).
    pub async fn reverse_advice(
        &self,
        original: impl AsOriginal,
        amount: Amount,
        replacement: Option<Amount>,
    ) -> Result<TxnResult, ClientError> {
        let p = self.prepare_reversal(original, amount, replacement, true)?;
        self.send_prepared(&p).await
    }

    /// 0800 echo test (field 70 = 301); expects an 0810.
    pub async fn echo(&self) -> Result<TxnResult, ClientError> {
        self.network(NetworkCode::Echo).await
    }

    /// 0800 sign-on (field 70 = 001).
    pub async fn sign_on(&self) -> Result<TxnResult, ClientError> {
        self.network(NetworkCode::SignOn).await
    }

    /// 0800 sign-off (field 70 = 002).
    pub async fn sign_off(&self) -> Result<TxnResult, ClientError> {
        self.network(NetworkCode::SignOff).await
    }

    /// An 0800 with field 70 = `code`.
    pub async fn network(&self, code: NetworkCode) -> Result<TxnResult, ClientError> {
        let p = self.prepare_network(code)?;
        self.send_prepared(&p).await
    }

    // ---- prepared requests ----------------------------------------------------------------

    /// Builds (without sending) an authorization or financial request. The STAN is taken from
    /// the client's counter.
    pub fn prepare(
        &self,
        kind: TxnKind,
        pan: impl CardDigits,
        amount: Option<Amount>,
        opts: impl Borrow<TxnOptions>,
    ) -> Result<PreparedRequest, ClientError> {
        let opts = opts.borrow();
        if amount.is_none() && kind != TxnKind::Balance {
            return Err(ClientError::Request(format!(
                "a {} needs an amount",
                kind.name()
            )));
        }
        let pan = CardNumber::new(pan.card_digits());
        let pcode = kind.processing_code();
        let stan = self.inner.shared.allocate()?;
        let now = self.inner.clock.now();
        let rrn = rrn_for(now, stan);
        let mut f = self.common_fields(now, stan, Some(&rrn));
        f.push(2, pan.expose().as_bytes());
        f.push(3, &pcode.to_field());
        if let Some(a) = amount {
            f.push(4, &self.amount_field(a)?);
        }
        if let Some(e) = &opts.expiry {
            f.push(14, e.as_bytes());
        }
        f.push_number(18, opts.mcc.unwrap_or(5411).into(), 4);
        let pos = opts
            .pos_entry_mode
            .unwrap_or(if opts.pin.is_some() { 51 } else { 21 });
        f.push_number(22, pos.into(), 3);
        if let Some(name) = &opts.card_acceptor {
            if name.len() > 40 {
                return Err(ClientError::Request(
                    "card acceptor name is longer than 40 characters".into(),
                ));
            }
            // Padded to 40 bytes: a name that is not ASCII fails the field's class when encoded
            // (padding by characters, as `{:<40}` did, made it fail on length instead).
            f.push_padded(43, name.as_bytes(), 40 - name.len());
        }
        if let Some(pin) = &opts.pin {
            self.pin_fields(pin, &pan, &mut f)?;
        }
        if opts.partial_approval {
            f.push(60, b"1");
        }
        self.finish_prepare(kind.mti(), stan, f, |payload, wire| PreparedRequest {
            request_mti: kind.mti(),
            stan,
            transmission: TransmissionDateTime::from_datetime(now),
            pan: Some(pan),
            processing_code: Some(pcode),
            amount,
            rrn: Some(rrn),
            payload,
            wire,
        })
    }

    /// Builds a 0220 completion of `original` for `amount`: field 37 = the original RRN, 38 =
    /// the original authorization code (each left out when unknown), 90 = the original data.
    pub fn prepare_completion(
        &self,
        original: impl AsOriginal,
        amount: Amount,
    ) -> Result<PreparedRequest, ClientError> {
        let o = original.original_ref()?;
        let stan = self.inner.shared.allocate()?;
        let now = self.inner.clock.now();
        let mut f = self.common_fields(now, stan, o.rrn.as_deref());
        self.original_fields(&o, amount, &mut f)?;
        let mti = Mti::FINANCIAL_ADVICE;
        self.finish_prepare(mti, stan, f, |payload, wire| PreparedRequest {
            request_mti: mti,
            stan,
            transmission: TransmissionDateTime::from_datetime(now),
            pan: Some(o.pan.clone()),
            processing_code: Some(o.processing_code),
            amount: Some(amount),
            rrn: o.rrn.clone(),
            payload,
            wire,
        })
    }

    /// Builds a 0400 reversal (0420 when `advice`) of `original`. Field 4 is `amount` (the
    /// original amount), 95 the `replacement` when given. Field 37 is the original RRN when
    /// known (a fresh one otherwise) and 38 the original authorization code when known.
    pub fn prepare_reversal(
        &self,
        original: impl AsOriginal,
        amount: Amount,
        replacement: Option<Amount>,
        advice: bool,
    ) -> Result<PreparedRequest, ClientError> {
        let o = original.original_ref()?;
        let stan = self.inner.shared.allocate()?;
        let now = self.inner.clock.now();
        let rrn = o.rrn.clone().unwrap_or_else(|| rrn_for(now, stan));
        let mut f = self.common_fields(now, stan, Some(&rrn));
        self.original_fields(&o, amount, &mut f)?;
        if let Some(r) = replacement {
            self.amount_field(r)?;
            let repl = ReplacementAmounts {
                transaction: r,
                settlement: r,
            }
            .to_field()
            .map_err(request_error)?;
            f.push(95, &repl);
        }
        let mti = if advice {
            Mti::REVERSAL_ADVICE
        } else {
            Mti::REVERSAL_REQUEST
        };
        self.finish_prepare(mti, stan, f, |payload, wire| PreparedRequest {
            request_mti: mti,
            stan,
            transmission: TransmissionDateTime::from_datetime(now),
            pan: Some(o.pan.clone()),
            processing_code: Some(o.processing_code),
            amount: Some(amount),
            rrn: Some(rrn),
            payload,
            wire,
        })
    }

    /// Builds an 0800 with fields 7, 11 and 70.
    pub fn prepare_network(&self, code: NetworkCode) -> Result<PreparedRequest, ClientError> {
        let stan = self.inner.shared.allocate()?;
        let now = self.inner.clock.now();
        let transmission = TransmissionDateTime::from_datetime(now);
        let mut f = Fields::new();
        f.push(7, &transmission.to_field());
        f.push(11, &stan.to_field());
        f.push(70, code.code());
        let mti = Mti::NETWORK_REQUEST;
        self.finish_prepare(mti, stan, f, |payload, wire| PreparedRequest {
            request_mti: mti,
            stan,
            transmission,
            pan: None,
            processing_code: None,
            amount: None,
            rrn: None,
            payload,
            wire,
        })
    }

    /// Sends a prepared request and waits for its response. May be called again with the same
    /// request to send a duplicate.
    pub async fn send_prepared(&self, p: &PreparedRequest) -> Result<TxnResult, ClientError> {
        let (received, start) = self.round_trip(p.stan, self.frame_of(p)?).await?;
        self.result(p, received, start)
    }

    /// Sends a prepared request and returns its response as read, without interpreting it, and
    /// when it was read off the socket (see [`TxnResult::received_at`]): for a target that
    /// answers with something other than a switch's response (an echo, in the relay baseline).
    pub async fn send_prepared_raw(
        &self,
        p: &PreparedRequest,
    ) -> Result<(Message, std::time::Instant), ClientError> {
        let (received, _) = self.round_trip(p.stan, self.frame_of(p)?).await?;
        Ok((received.msg, received.at_std))
    }

    // ---- raw access -----------------------------------------------------------------------

    /// Sends an encoded message as is and waits for the response carrying the same STAN
    /// (field 11 of `message`, which the caller chose). The message only needs to be readable
    /// enough to find its STAN.
    pub async fn send_raw(&self, message: Bytes) -> Result<Message, ClientError> {
        self.send_raw_received(message).await.map(|(msg, _)| msg)
    }

    /// [`send_raw`](Self::send_raw), also returning when the response was read off the socket
    /// (see [`TxnResult::received_at`]).
    pub async fn send_raw_received(
        &self,
        message: Bytes,
    ) -> Result<(Message, std::time::Instant), ClientError> {
        let msg = decode_lenient(self.inner.config.dialect, message.clone())
            .map_err(|e| ClientError::Request(format!("raw message: {e}")))?;
        let stan = msg
            .get(11)
            .and_then(|v| Stan::from_field(&v).ok())
            .ok_or_else(|| ClientError::Request("raw message has no valid field 11".into()))?;
        let (received, _) = self.round_trip(stan, self.frame(&message)?).await?;
        Ok((received.msg, received.at_std))
    }

    /// Frames `payload` (length header and fixed header) and writes it without waiting for
    /// any response. Returns once it is written to the socket.
    pub async fn send_payload(&self, payload: &[u8]) -> Result<(), ClientError> {
        let frame = self.frame(payload)?;
        self.write_acked(frame).await
    }

    /// Writes `bytes` to the socket exactly as given (no length header is added), without
    /// waiting for any response: for malformed-frame tests. Returns once they are written.
    pub async fn send_frame_bytes(&self, bytes: &[u8]) -> Result<(), ClientError> {
        self.write_acked(Bytes::copy_from_slice(bytes)).await
    }

    // ---- internals ------------------------------------------------------------------------

    /// Fields 7, 11, 12, 13, 32, 37 (when given), 41, 42 and 49.
    fn common_fields(&self, now: NaiveDateTime, stan: Stan, rrn: Option<&str>) -> Fields {
        let mut f = Fields::new();
        f.push(7, &TransmissionDateTime::from_datetime(now).to_field());
        f.push(11, &stan.to_field());
        let hhmmss = now.hour() * 10_000 + now.minute() * 100 + now.second();
        f.push_number(12, hhmmss.into(), 6);
        f.push_number(13, (now.month() * 100 + now.day()).into(), 4);
        f.push(32, self.inner.acquirer.as_bytes());
        if let Some(rrn) = rrn {
            f.push(37, rrn.as_bytes());
        }
        f.push(41, self.inner.terminal.as_bytes());
        f.push(42, self.inner.merchant.as_bytes());
        f.push(49, &self.inner.currency.to_field());
        f
    }

    /// Fields 2, 3, 4, 38 and 90 of a completion or reversal.
    fn original_fields(
        &self,
        o: &OriginalRef,
        amount: Amount,
        f: &mut Fields,
    ) -> Result<(), ClientError> {
        f.push(2, o.pan.expose().as_bytes());
        f.push(3, &o.processing_code.to_field());
        f.push(4, &self.amount_field(amount)?);
        if let Some(code) = &o.auth_code {
            f.push(38, code.as_bytes());
        }
        let original = OriginalData {
            mti: o.mti,
            stan: o.stan,
            transmission: o.transmission,
            acquirer: self.inner.acquirer,
            forwarding: [b'0'; 11],
        };
        f.push(90, &original.to_field());
        Ok(())
    }

    /// Fields 52, 62 and 63 for `pin`: as the PIN pad enciphers it, or a clear block without
    /// one.
    fn pin_fields(&self, pin: &str, pan: &CardNumber, f: &mut Fields) -> Result<(), ClientError> {
        if !self.inner.keys.has_pin_pad() {
            f.push(52, &pin_block_format0(pin, pan.expose())?);
            return Ok(());
        }
        let pan = Pan::parse(pan.expose().as_bytes())
            .map_err(|e| ClientError::Request(format!("PIN block: card number: {e}")))?;
        let Some(e) = self
            .inner
            .keys
            .encipher_pin(pin, &pan)
            .map_err(request_error)?
        else {
            return Err(ClientError::Request("no PIN pad".into()));
        };
        match e.block {
            EncryptedPinBlock::Iso0(b) => f.push(52, &b),
            EncryptedPinBlock::Iso4(b) => {
                f.push(PIN_BLOCK_AES_FIELD, hex::encode_upper(b).as_bytes())
            }
        }
        if let Some(ksn) = e.ksn {
            f.push(KSN_FIELD, ksn.to_field().as_bytes());
        }
        Ok(())
    }

    fn amount_field(&self, a: Amount) -> Result<[u8; 12], ClientError> {
        if a.currency() != self.inner.currency {
            return Err(ClientError::Request(format!(
                "amount {a} is not in the client's currency {}",
                self.inner.currency
            )));
        }
        a.to_field()
            .map_err(|e| ClientError::Request(format!("amount {a}: {e}")))
    }

    fn finish_prepare(
        &self,
        mti: Mti,
        stan: Stan,
        fields: Fields,
        make: impl FnOnce(Bytes, Wire) -> PreparedRequest,
    ) -> Result<PreparedRequest, ClientError> {
        let dialect = self.inner.config.dialect;
        let mut b = MessageBuilder::new(dialect, mti.to_digits());
        for (n, range) in &fields.at {
            b.set(*n, &fields.bytes[range.clone()]);
        }
        let keys = &self.inner.keys;
        let codec = &self.inner.codec;
        // Encoded straight into its frame, so that sending it copies nothing. The encoder
        // reserves 256 bytes past the frame's headers: 512 fits that without a reallocation.
        let mut dst = BytesMut::with_capacity(512);
        let mark = codec
            .begin_frame(&mut dst, &self.inner.header)
            .map_err(request_error)?;
        let body = dst.len();
        if keys.has_mac() {
            encode_with_mac(&mut b, &mut dst, |data| keys.mac(data).ok_or("no MAC key"))
                .map_err(|e| e.to_string())
        } else {
            b.encode(&mut dst).map_err(|e| e.to_string())
        }
        .map_err(|e| ClientError::Request(format!("{mti} STAN {stan}: {e}")))?;
        codec.finish_frame(&mut dst, mark).map_err(request_error)?;
        let frame = dst.freeze();
        let payload = frame.slice(body..);
        let wire = Wire {
            dialect,
            frame,
            framed_by: self.inner.id,
            body,
        };
        Ok(make(payload, wire))
    }

    fn frame(&self, payload: &[u8]) -> Result<Bytes, ClientError> {
        let codec = &self.inner.codec;
        let mut dst = BytesMut::with_capacity(payload.len() + 4 + self.inner.header.len());
        let mark = codec
            .begin_frame(&mut dst, &self.inner.header)
            .map_err(request_error)?;
        dst.extend_from_slice(payload);
        codec.finish_frame(&mut dst, mark).map_err(request_error)?;
        Ok(dst.freeze())
    }

    async fn write_acked(&self, bytes: Bytes) -> Result<(), ClientError> {
        let (tx, rx) = oneshot::channel();
        self.inner
            .out
            .send(Outgoing {
                bytes,
                ack: Some(tx),
            })
            .await
            .map_err(|_| self.inner.shared.closed_error())?;
        match rx.await {
            Ok(r) => r,
            Err(_) => Err(self.inner.shared.closed_error()),
        }
    }

    /// `p` framed for this client: as it was built, when this client built it and its payload
    /// is still the one built (a caller may replace the public `payload`, e.g. to tamper with
    /// it; `Bytes` are immutable, so the same memory is the same content).
    fn frame_of(&self, p: &PreparedRequest) -> Result<Bytes, ClientError> {
        let w = &p.wire;
        let built = w
            .frame
            .get(w.body..)
            .is_some_and(|b| b.len() == p.payload.len() && b.as_ptr() == p.payload.as_ptr());
        if w.framed_by == self.inner.id && built {
            Ok(w.frame.clone())
        } else {
            self.frame(&p.payload)
        }
    }

    /// Registers a waiter for `stan`, writes `frame` and waits for the matching response.
    async fn round_trip(
        &self,
        stan: Stan,
        frame: Bytes,
    ) -> Result<(Received, Instant), ClientError> {
        // The latency counts any wait for room in the writer's queue; the timeout starts once
        // the request is queued, as it always has, so a wait for room cannot time it out unsent.
        let start = Instant::now();
        let out = &self.inner.out;
        let permit = match out.try_reserve() {
            Ok(permit) => permit,
            Err(mpsc::error::TrySendError::Full(())) => {
                // A closed client fails at once, as it did before a request waited for room.
                if let Some(e) = self.inner.shared.lock().closed.clone() {
                    return Err(e);
                }
                out.reserve()
                    .await
                    .map_err(|_| self.inner.shared.closed_error())?
            }
            Err(mpsc::error::TrySendError::Closed(())) => {
                return Err(self.inner.shared.closed_error());
            }
        };
        let (mut reg, rx) = self.inner.shared.register(stan)?;
        permit.send(Outgoing {
            bytes: frame,
            ack: None,
        });
        // The answer, or the timeout from the reader task (`Shared::expire`), whichever it
        // took out of the map first.
        let reply = match rx.await {
            Ok(reply) => {
                reg.live = false;
                reply
            }
            // Not expected: the reader task fails every waiter however it ends. Kept so that a
            // waiter could never be left without an answer.
            Err(_) => {
                reg.live = false;
                Err(self.inner.shared.closed_error())
            }
        };
        reply.map(|r| (r, start))
    }

    fn result(
        &self,
        p: &PreparedRequest,
        r: Received,
        start: Instant,
    ) -> Result<TxnResult, ClientError> {
        let msg = r.msg;
        let stan = p.stan;
        let bad = |field: u8, reason: String| ClientError::BadResponse {
            stan,
            field,
            reason,
        };
        let response_mti =
            Mti::from_digits(&msg.mti_digits()).map_err(|e| bad(0, e.to_string()))?;
        self.inner
            .keys
            .verify(&msg)
            .map_err(|v| bad(mac_field_of(&msg), v.to_string()))?;
        let response_code = match msg.get(39) {
            None => return Err(bad(39, "missing".into())),
            Some(v) => ResponseCode::from_field(&v).map_err(|e| bad(39, e.to_string()))?,
        };
        let currency = msg
            .get(49)
            .and_then(|v| Currency::from_field(&v).ok())
            .unwrap_or(self.inner.currency);
        let approved_amount = match msg.get(4) {
            None => None,
            Some(v) => Some(Amount::from_field(&v, currency).map_err(|e| bad(4, e.to_string()))?),
        };
        let additional_amounts = match msg.get(54) {
            None => Vec::new(),
            Some(v) => AdditionalAmount::parse_all(&v).map_err(|e| bad(54, e.to_string()))?,
        };
        let text = |n: u8| msg.get(n).map(|v| String::from_utf8_lossy(&v).into_owned());
        Ok(TxnResult {
            request_mti: p.request_mti,
            stan,
            transmission: p.transmission,
            pan: p.pan.clone(),
            processing_code: p.processing_code,
            amount: p.amount,
            rrn: text(37).or_else(|| p.rrn.clone()),
            response_mti,
            response_code,
            auth_code: text(38),
            approved_amount,
            additional_amounts,
            latency: r.at.saturating_duration_since(start),
            received_at: r.at_std,
            response: msg,
        })
    }
}

/// A 12-character RRN: last digit of the year, day of the year, hour, STAN.
fn rrn_for(now: NaiveDateTime, stan: Stan) -> String {
    let mut rrn = Vec::with_capacity(12);
    push_decimal(&mut rrn, now.year().rem_euclid(10).unsigned_abs().into(), 1);
    push_decimal(&mut rrn, now.ordinal().into(), 3);
    push_decimal(&mut rrn, now.hour().into(), 2);
    rrn.extend_from_slice(&stan.to_field());
    // Only ASCII digits were pushed.
    String::from_utf8(rrn).unwrap_or_default()
}

/// Appends `value` in decimal, zero-padded on the left to at least `width` digits, as `{:0width$}`
/// formats it (a wider value keeps all its digits).
fn push_decimal(out: &mut Vec<u8>, value: u64, width: usize) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    let mut v = value;
    loop {
        at -= 1;
        digits[at] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    let len = digits.len() - at;
    out.resize(out.len() + width.saturating_sub(len), b'0');
    out.extend_from_slice(&digits[at..]);
}

/// The fields of a request being built, their values in one buffer: two allocations rather than
/// one per field and a formatter's pass per number. (The load generator builds one request per
/// request it sends; this was a quarter of its instructions.)
struct Fields {
    bytes: Vec<u8>,
    at: Vec<(u8, std::ops::Range<usize>)>,
}

impl Fields {
    fn new() -> Fields {
        Fields {
            bytes: Vec::with_capacity(256),
            at: Vec::with_capacity(24),
        }
    }

    fn push(&mut self, n: u8, value: &[u8]) {
        let start = self.bytes.len();
        self.bytes.extend_from_slice(value);
        self.at.push((n, start..self.bytes.len()));
    }

    /// Field `n` as `value` in decimal, zero-padded to `width` digits.
    fn push_number(&mut self, n: u8, value: u64, width: usize) {
        let start = self.bytes.len();
        push_decimal(&mut self.bytes, value, width);
        self.at.push((n, start..self.bytes.len()));
    }

    /// Field `n` as `value` followed by `spaces` spaces.
    fn push_padded(&mut self, n: u8, value: &[u8], spaces: usize) {
        let start = self.bytes.len();
        self.bytes.extend_from_slice(value);
        self.bytes.resize(self.bytes.len() + spaces, b' ');
        self.at.push((n, start..self.bytes.len()));
    }
}

/// Reads the switch's frames and hands each to its waiter, and fails the waiters whose time is
/// up. Its one timer is armed at the oldest deadline, or a full timeout ahead when nothing
/// waits, and moved only when it is due (when it fires, or after an answer read once it is
/// due): every later request's deadline is later still.
async fn read_loop(mut reader: FramedRead<ReadHalf, FrameCodec>, shared: Arc<Shared>) {
    // However this task ends (a panic included, or an abort), no waiter is left without an
    // answer or a timeout: the timeouts are this task's. A close that came first keeps its
    // reason.
    struct CloseOnExit(Arc<Shared>);
    impl Drop for CloseOnExit {
        fn drop(&mut self) {
            let reason = if std::thread::panicking() {
                "the client's reader task panicked"
            } else {
                "the client's reader task stopped"
            };
            self.0.close(ClientError::Closed {
                side: Side::Client,
                reason: reason.into(),
            });
        }
    }
    let _close = CloseOnExit(Arc::clone(&shared));
    let timer = tokio::time::sleep(shared.timeout);
    tokio::pin!(timer);
    loop {
        let read = tokio::select! {
            biased;
            read = reader.next() => read,
            () = &mut timer => {
                let next = shared.expire(Instant::now());
                timer.as_mut().reset(next);
                continue;
            }
        };
        match read {
            Some(Ok(frame)) => {
                let now = Instant::now();
                shared.dispatch(frame.payload, now, std::time::Instant::now());
                // While frames keep coming the branch above wins every time (and tokio's
                // co-operative budget can leave the timer unpolled when it runs out), so the
                // deadlines are looked at here too.
                if timer.deadline() <= now {
                    let next = shared.expire(now);
                    timer.as_mut().reset(next);
                }
            }
            Some(Err(e)) => {
                shared.close(ClientError::Closed {
                    side: Side::Switch,
                    reason: e.to_string().into(),
                });
                return;
            }
            None => {
                shared.close(ClientError::Closed {
                    side: Side::Switch,
                    reason: "the switch closed the connection".into(),
                });
                return;
            }
        }
    }
}

async fn write_loop(mut half: WriteHalf, mut rx: mpsc::Receiver<Outgoing>, shared: Arc<Shared>) {
    let mut buf = BytesMut::with_capacity(8192);
    let mut acks = Vec::new();
    while let Some(first) = rx.recv().await {
        let mut next = Some(first);
        while let Some(o) = next.take() {
            buf.extend_from_slice(&o.bytes);
            acks.extend(o.ack);
            if buf.len() < WRITE_BATCH_BYTES {
                next = rx.try_recv().ok();
            }
        }
        if let Err(e) = half.write_all(&buf).await {
            let err = ClientError::Closed {
                side: Side::Switch,
                reason: format!("write failed: {e}").into(),
            };
            for a in acks.drain(..) {
                let _ = a.send(Err(err.clone()));
            }
            shared.close(err);
            return;
        }
        buf.clear();
        for a in acks.drain(..) {
            let _ = a.send(Ok(()));
        }
    }
    let _ = half.shutdown().await;
}

#[cfg(test)]
mod tests {
    use futures::SinkExt;
    use tokio::net::TcpListener;
    use tokio_util::codec::FramedWrite;

    use super::*;
    use crate::clock::ManualClock;
    use crate::iso8583::views::response_builder;
    use crate::net::framing::Frame;

    /// How the in-test fake switch behaves on its one connection.
    #[derive(Default)]
    struct Fake {
        /// Answer after this many requests, in reverse order (1 = answer each at once).
        batch: usize,
        /// Close the connection after reading this many requests, answering none.
        close_after: Option<usize>,
        /// Every decoded request is copied here.
        tap: Option<mpsc::UnboundedSender<Message>>,
        /// Append a byte to every answer, so that it fails a strict decode.
        garble: bool,
    }

    /// An 0800 echo test under `stan`, encoded.
    fn echo_request(stan: &[u8; 6]) -> Bytes {
        let mut raw = MessageBuilder::new(&ISO87_ASCII, *b"0800");
        raw.set(7, b"1125221805").set(11, stan).set(70, b"301");
        raw.to_bytes().expect("encode")
    }

    /// The answer of the fake: MTI + 10, the usual echoed fields, 70 for network messages,
    /// 39 = 00.
    fn answer(req: &Message, garble: bool) -> Bytes {
        let mut b = response_builder(&ISO87_ASCII, req, ResponseCode::Approved).expect("builder");
        b.copy_from(req, 70);
        let mut out = BytesMut::new();
        b.encode(&mut out).expect("encode");
        if garble {
            out.extend_from_slice(b"X");
        }
        out.freeze()
    }

    async fn fake_switch(fake: Fake) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            let (stream, _) = listener.accept().await.expect("accept");
            let (r, w) = stream.into_split();
            let codec = FrameCodec::new(FramingConfig::default());
            let mut reader = FramedRead::new(r, codec.clone());
            let mut writer = FramedWrite::new(w, codec);
            let batch = fake.batch.max(1);
            let mut held = Vec::new();
            let mut seen = 0;
            while let Some(Ok(frame)) = reader.next().await {
                let req = decode(&ISO87_ASCII, frame.payload).expect("request decodes");
                seen += 1;
                if let Some(tap) = &fake.tap {
                    let _ = tap.send(req.clone());
                }
                if fake.close_after == Some(seen) {
                    return;
                }
                if fake.close_after.is_some() {
                    continue;
                }
                held.push(req);
                if held.len() == batch {
                    for req in held.drain(..).rev() {
                        let payload = answer(&req, fake.garble);
                        writer
                            .feed(Frame {
                                header: Bytes::new(),
                                payload,
                            })
                            .await
                            .expect("feed");
                    }
                    writer.flush().await.expect("flush");
                }
            }
        });
        addr
    }

    fn config(timeout: Duration) -> ClientConfig {
        ClientConfig {
            timeout,
            ..ClientConfig::default()
        }
    }

    fn fixed_clock() -> Arc<ManualClock> {
        let t = chrono::NaiveDate::from_ymd_opt(2025, 11, 25)
            .and_then(|d| d.and_hms_opt(22, 18, 5))
            .expect("time");
        ManualClock::new(t)
    }

    async fn client(addr: SocketAddr, timeout: Duration) -> AcquirerClient {
        let options = ClientOptions {
            clock: fixed_clock(),
            first_stan: Stan::new(1).ok(),
            ..ClientOptions::default()
        };
        AcquirerClient::connect_with(addr, config(timeout), options)
            .await
            .expect("connect")
    }

    fn cny(minor: i64) -> Amount {
        Amount::new(minor, Currency::CNY)
    }

    const CARD: &str = "4111110000000013";

    #[test]
    fn pin_block_format0_published_vectors() {
        let b = pin_block_format0("1234", "4012345678909").expect("block");
        assert_eq!(hex::encode_upper(b), "041274EDCBA9876F");
        let b = pin_block_format0("1234", "43219876543210987").expect("block");
        assert_eq!(hex::encode_upper(b), "0412AC89ABCDEF67");
        assert!(pin_block_format0("123", CARD).is_err());
        assert!(pin_block_format0("12a4", CARD).is_err());
        assert!(format!("{:?}", TxnOptions::new().pin("1234")).contains("redacted"));
        assert!(!format!("{:?}", TxnOptions::new().pin("1234")).contains("1234"));
    }

    #[tokio::test]
    async fn out_of_order_answers_are_matched_by_stan() {
        let addr = fake_switch(Fake {
            batch: 5,
            ..Fake::default()
        })
        .await;
        let c = client(addr, Duration::from_secs(30)).await;
        let calls = (1..=5).map(|i| c.purchase(CARD, cny(100 * i), TxnOptions::new()));
        let results = futures::future::join_all(calls).await;
        for (i, r) in (1..=5).zip(results) {
            let r = r.expect("answered");
            assert_eq!(r.response_code, ResponseCode::Approved);
            assert_eq!(r.response_mti, Mti::FINANCIAL_RESPONSE);
            assert_eq!(r.response.get(11).as_deref(), Some(&r.stan.to_field()[..]));
            // Field 4 is echoed, so each caller got its own answer.
            assert_eq!(r.approved_amount, Some(cny(100 * i)));
        }
        assert_eq!(c.in_flight(), 0);
        assert_eq!(c.unmatched_responses(), 0);
    }

    #[tokio::test]
    async fn a_hundred_pipelined_requests_all_match() {
        // The fake answers only once all 100 are in, so they really are in flight together.
        let addr = fake_switch(Fake {
            batch: 100,
            ..Fake::default()
        })
        .await;
        let c = client(addr, Duration::from_secs(30)).await;
        let calls = (1..=100).map(|i| c.purchase(CARD, cny(i), TxnOptions::new()));
        let results: Vec<TxnResult> = futures::future::join_all(calls)
            .await
            .into_iter()
            .collect::<Result<_, _>>()
            .expect("all answered");
        let mut stans: Vec<u32> = results.iter().map(|r| r.stan.value()).collect();
        stans.sort_unstable();
        stans.dedup();
        assert_eq!(stans.len(), 100);
        for (i, r) in (1..=100).zip(&results) {
            assert_eq!(r.approved_amount, Some(cny(i)));
        }
        assert_eq!(c.in_flight(), 0);
    }

    #[tokio::test]
    async fn timeout_removes_the_pending_entry() {
        let addr = fake_switch(Fake {
            batch: usize::MAX,
            ..Fake::default()
        })
        .await;
        let c = client(addr, Duration::from_millis(100)).await;
        let e = c.echo().await.expect_err("no answer");
        assert!(e.is_timeout(), "{e}");
        assert_eq!(e.side(), Side::Switch);
        assert!(matches!(e, ClientError::Timeout { stan, .. } if stan.value() == 1));
        assert_eq!(c.in_flight(), 0);
        assert!(!c.is_closed());
    }

    #[tokio::test]
    async fn closing_the_connection_fails_every_pending_request_at_once() {
        let addr = fake_switch(Fake {
            close_after: Some(3),
            ..Fake::default()
        })
        .await;
        // A timeout far longer than the test: only the close can end these requests.
        let c = client(addr, Duration::from_secs(3600)).await;
        let results = futures::future::join_all((0..3).map(|_| c.balance(CARD))).await;
        for r in results {
            let e = r.expect_err("closed");
            assert!(
                matches!(
                    e,
                    ClientError::Closed {
                        side: Side::Switch,
                        ..
                    }
                ),
                "{e}"
            );
        }
        assert_eq!(c.in_flight(), 0);
        assert!(c.is_closed());
        // Later requests fail at once too.
        assert!(c.echo().await.expect_err("closed").is_closed());
    }

    #[tokio::test]
    async fn stans_wrap_from_999999_to_000001() {
        let addr = fake_switch(Fake::default()).await;
        let options = ClientOptions {
            clock: fixed_clock(),
            first_stan: Stan::new(999_999).ok(),
            ..ClientOptions::default()
        };
        let c = AcquirerClient::connect_with(addr, config(Duration::from_secs(30)), options)
            .await
            .expect("connect");
        assert_eq!(c.echo().await.expect("echo").stan.value(), 999_999);
        assert_eq!(c.echo().await.expect("echo").stan.value(), 1);
    }

    #[tokio::test]
    async fn requests_follow_the_house_conventions() {
        let (tap, mut requests) = mpsc::unbounded_channel();
        let addr = fake_switch(Fake {
            tap: Some(tap),
            ..Fake::default()
        })
        .await;
        let c = client(addr, Duration::from_secs(30)).await;
        let field = |m: &Message, n: u8| m.get(n).map(|v| v.into_owned());

        let opts = TxnOptions::new()
            .expiry("3012")
            .pin("1234")
            .partial()
            .card_acceptor("Harbor Grocery");
        let pre = c.preauth(CARD, cny(10_000), &opts).await.expect("preauth");
        let m = requests.recv().await.expect("request");
        assert_eq!(&m.mti_digits(), b"0100");
        let expect: [(u8, &[u8]); 17] = [
            (2, CARD.as_bytes()),
            (3, b"000000"),
            (4, b"000000010000"),
            (7, b"1125221805"),
            (11, b"000001"),
            (12, b"221805"),
            (13, b"1125"),
            (14, b"3012"),
            (18, b"5411"),
            (22, b"051"),
            (32, b"100001"),
            (37, b"532922000001"),
            (41, b"TERM0001"),
            (42, b"MERCHANT0000001"),
            (43, b"Harbor Grocery                          "),
            (49, b"156"),
            (60, b"1"),
        ];
        for (n, v) in expect {
            assert_eq!(field(&m, n).as_deref(), Some(v), "field {n}");
        }
        let block = pin_block_format0("1234", CARD).expect("block");
        assert_eq!(field(&m, 52).as_deref(), Some(&block[..]));
        assert_eq!(pre.rrn.as_deref(), Some("532922000001"));

        let done = c.complete(&pre, cny(8_000)).await.expect("complete");
        assert_eq!(done.request_mti, Mti::FINANCIAL_ADVICE);
        let m = requests.recv().await.expect("request");
        assert_eq!(&m.mti_digits(), b"0220");
        assert_eq!(field(&m, 4).as_deref(), Some(&b"000000008000"[..]));
        assert_eq!(field(&m, 37).as_deref(), Some(&b"532922000001"[..]));
        assert_eq!(
            field(&m, 90).as_deref(),
            Some(&b"010000000111252218050000010000100000000000"[..])
        );
        assert!(!m.has(52) && !m.has(14));

        let orig = OriginalRef {
            auth_code: Some("A00001".into()),
            ..OriginalRef::new(
                Mti::FINANCIAL_REQUEST,
                Stan::new(42).expect("stan"),
                pre.transmission,
                CARD,
            )
        };
        c.reverse_advice(&orig, cny(500), Some(cny(200)))
            .await
            .expect("reverse");
        let m = requests.recv().await.expect("request");
        assert_eq!(&m.mti_digits(), b"0420");
        assert_eq!(field(&m, 38).as_deref(), Some(&b"A00001"[..]));
        assert_eq!(&field(&m, 90).expect("90")[..10], b"0200000042");
        assert_eq!(
            &field(&m, 95).expect("95")[..24],
            b"000000000200000000000200"
        );

        let bal = c.balance(CARD).await.expect("balance");
        assert!(bal.approved_amount.is_none());
        let m = requests.recv().await.expect("request");
        assert_eq!(field(&m, 3).as_deref(), Some(&b"310000"[..]));
        assert_eq!(field(&m, 22).as_deref(), Some(&b"021"[..]));
        assert!(!m.has(4) && !m.has(52));

        for (kind, code) in [
            (TxnKind::Refund, b"200000"),
            (TxnKind::Cash, b"010000"),
            (TxnKind::Load, b"210000"),
        ] {
            c.request(kind, CARD, Some(cny(1)), TxnOptions::new())
                .await
                .expect("answered");
            let m = requests.recv().await.expect("request");
            assert_eq!(&m.mti_digits(), b"0200");
            assert_eq!(field(&m, 3).as_deref(), Some(&code[..]), "{kind:?}");
        }

        let echo = c.sign_on().await.expect("sign-on");
        assert_eq!(echo.response_mti, Mti::NETWORK_RESPONSE);
        let m = requests.recv().await.expect("request");
        assert_eq!(m.field_numbers().collect::<Vec<_>>(), vec![7, 11, 70]);
        assert_eq!(field(&m, 70).as_deref(), Some(&b"001"[..]));
    }

    #[tokio::test]
    async fn duplicates_and_raw_messages_are_matched_by_their_own_stan() {
        let addr = fake_switch(Fake::default()).await;
        let c = client(addr, Duration::from_secs(30)).await;
        let p = c
            .prepare(TxnKind::Purchase, CARD, Some(cny(5)), TxnOptions::new())
            .expect("prepare");
        let (a, b) = futures::join!(c.send_prepared(&p), c.send_prepared(&p));
        assert_eq!(a.expect("first").stan, p.stan);
        assert_eq!(b.expect("second").stan, p.stan);

        let m = c.send_raw(echo_request(b"777777")).await.expect("raw");
        assert_eq!(m.get(11).as_deref(), Some(&b"777777"[..]));
        assert_eq!(&m.mti_digits(), b"0810");
        assert_eq!(c.in_flight(), 0);
    }

    /// However the reader task ends, a request waiting for its answer fails with the client
    /// closed, not after its timeout nor never.
    #[tokio::test]
    async fn a_reader_that_stops_fails_the_waiting_requests() {
        let addr = fake_switch(Fake {
            batch: usize::MAX,
            ..Fake::default()
        })
        .await;
        let c = client(addr, Duration::from_secs(3600)).await;
        let waiting = c.echo();
        tokio::pin!(waiting);
        // Polled until it is registered and waits.
        while c.in_flight() == 0 {
            tokio::select! {
                biased;
                r = &mut waiting => panic!("answered: {r:?}"),
                () = tokio::task::yield_now() => {}
            }
        }
        c.inner.reader.abort();
        // The bound only turns a hang into a failure; the close comes at once.
        let e = tokio::time::timeout(Duration::from_secs(60), waiting)
            .await
            .expect("failed, not left waiting")
            .expect_err("closed");
        assert!(e.is_closed(), "{e}");
        assert_eq!(e.side(), Side::Client);
        assert!(c.echo().await.expect_err("closed").is_closed());
    }

    /// The state of a client with no connection: for the waiters' and deadlines' bookkeeping.
    fn shared_with(timeout: Duration) -> Arc<Shared> {
        Arc::new(Shared {
            state: Mutex::new(State {
                waiters: HashMap::default(),
                in_flight: 0,
                last_stan: Stan::new(1).expect("stan"),
                next_id: 0,
                closed: None,
                deadlines: VecDeque::new(),
            }),
            dialect: &ISO87_ASCII,
            timeout,
            unmatched: AtomicU64::new(0),
        })
    }

    /// Three waiters on one STAN: taking out the middle one and then the first leaves the third,
    /// which the answer reaches; the count in flight follows every step and the STAN is free
    /// at the end.
    #[test]
    fn waiters_of_one_stan_keep_their_order_through_removals() {
        let shared = shared_with(Duration::from_secs(5));
        let stan = Stan::new(42).expect("stan");
        let (mut first, mut rx1) = shared.register(stan).expect("first");
        let (mut middle, mut rx2) = shared.register(stan).expect("second");
        let (mut last, mut rx3) = shared.register(stan).expect("third");
        assert_eq!(shared.lock().in_flight, 3);
        assert!(middle.cancel());
        assert_eq!(shared.lock().in_flight, 2);
        assert!(first.cancel());
        assert_eq!(shared.lock().in_flight, 1);
        shared.deliver(stan, Err(ClientError::Request("the answer".into())));
        assert_eq!(shared.lock().in_flight, 0);
        assert!(!shared.lock().waiters.contains_key(&42), "the STAN is free");
        assert!(!last.cancel(), "answered already");
        match rx3.try_recv() {
            Ok(Err(ClientError::Request(text))) => assert_eq!(text, "the answer"),
            other => panic!(
                "the third waiter is answered with its error: {:?}",
                other.map(|r| r.map(|_| "an answer"))
            ),
        }
        assert!(rx1.try_recv().is_err() && rx2.try_recv().is_err());
        shared.deliver(stan, Err(ClientError::Request("late".into())));
        assert_eq!(shared.unmatched.load(Ordering::Relaxed), 1);
    }

    /// The deadlines: answered in order or out of order, their queue empties with the waiters;
    /// at the oldest deadline the waiters whose time is up fail with a timeout and the others
    /// keep waiting; with nothing waiting, the reader looks again a full timeout later.
    #[tokio::test(start_paused = true)]
    async fn deadlines_leave_with_their_waiters_and_fail_the_late_ones() {
        let shared = shared_with(Duration::from_secs(5));
        let stan = |n: u32| Stan::new(n).expect("stan");
        let answer = || Err(ClientError::Request("answer".into()));
        for order in [[1, 2, 3], [3, 1, 2]] {
            let regs: Vec<_> = (1..=3)
                .map(|n| shared.register(stan(n)).expect("registered"))
                .collect();
            for n in order {
                shared.deliver(stan(n), answer());
            }
            assert!(shared.lock().deadlines.is_empty(), "{order:?}");
            drop(regs);
        }

        let t0 = Instant::now();
        let (_a, mut rx_a) = shared.register(stan(10)).expect("a");
        tokio::time::advance(Duration::from_secs(2)).await;
        let (_b, mut rx_b) = shared.register(stan(11)).expect("b");
        let (c, mut rx_c) = shared.register(stan(12)).expect("c");
        drop(c);
        assert_eq!(shared.lock().deadlines.len(), 3);
        // Not yet: the next look is at the oldest deadline.
        assert_eq!(
            shared.expire(t0 + Duration::from_secs(1)),
            t0 + Duration::from_secs(5)
        );
        assert!(rx_a.try_recv().is_err());
        // At a's deadline a fails, and b waits on until its own.
        let b_due = t0 + Duration::from_secs(7);
        assert_eq!(shared.expire(t0 + Duration::from_secs(5)), b_due);
        assert!(matches!(
            rx_a.try_recv(),
            Ok(Err(ClientError::Timeout { stan: s, timeout })) if s.value() == 10 && timeout == Duration::from_secs(5)
        ));
        assert!(rx_b.try_recv().is_err());
        assert_eq!(shared.lock().in_flight, 1);
        // b's late answer after its timeout is unmatched; c was cancelled, never timed out.
        let later = shared.expire(b_due);
        assert_eq!(later, b_due + Duration::from_secs(5), "nothing waits");
        assert!(matches!(
            rx_b.try_recv(),
            Ok(Err(ClientError::Timeout { .. }))
        ));
        assert!(rx_c.try_recv().is_err());
        shared.deliver(stan(11), answer());
        assert_eq!(shared.unmatched.load(Ordering::Relaxed), 1);
        let st = shared.lock();
        assert!(st.deadlines.is_empty() && st.waiters.is_empty() && st.in_flight == 0);
        drop(st);

        // A timeout too long to add to the clock: far in the future, not a panic.
        let forever = shared_with(Duration::MAX);
        let now = Instant::now();
        assert!(forever.deadline_from(now) > now + Duration::from_secs(365 * 86_400));
    }

    /// A deadline that passes while answers keep arriving still fails its request: the reader
    /// looks at the deadlines after each answer, not only when its timer branch gets a turn.
    /// Two answers wait in the reader's input at once, b's then a's, after a's deadline: the
    /// biased select would take both before the timer, so without the look after each answer
    /// a would be answered late instead of timing out.
    #[tokio::test(start_paused = true)]
    async fn a_deadline_passes_while_answers_keep_coming() {
        let shared = shared_with(Duration::from_secs(5));
        let stan = |n: u32| Stan::new(n).expect("stan");
        let (_a, mut rx_a) = shared.register(stan(10)).expect("a");
        let (_b, mut rx_b) = shared.register(stan(11)).expect("b");
        let (mut to_reader, ours) = tokio::io::duplex(64 * 1024);
        let mut codec = FrameCodec::new(FramingConfig::default());
        let reader = tokio::spawn(read_loop(
            FramedRead::new(Box::new(ours) as ReadHalf, codec.clone()),
            Arc::clone(&shared),
        ));
        // The reader arms its timer and waits for input.
        tokio::task::yield_now().await;
        assert!(rx_a.try_recv().is_err() && rx_b.try_recv().is_err());

        let mut wire = BytesMut::new();
        for n in [b"000011", b"000010"] {
            let req = decode(&ISO87_ASCII, echo_request(n)).expect("decode");
            tokio_util::codec::Encoder::encode(
                &mut codec,
                Frame {
                    header: Bytes::new(),
                    payload: answer(&req, false),
                },
                &mut wire,
            )
            .expect("frame");
        }
        // Both answers are in the reader's input before it runs again, and the clock is past
        // both deadlines; b's answer comes first, so it reaches b before the reader looks.
        to_reader.write_all(&wire).await.expect("write");
        tokio::time::advance(Duration::from_secs(6)).await;
        let b = rx_b.await.expect("b's answer");
        assert_eq!(
            b.expect("answered").msg.get(11).as_deref(),
            Some(&b"000011"[..])
        );
        assert!(
            matches!(rx_a.await, Ok(Err(ClientError::Timeout { stan: s, .. })) if s.value() == 10),
            "a was answered after its deadline instead of timing out"
        );
        // a's answer came after its timeout: counted as unmatched, not delivered. The reader
        // reads it in the same turn as b's; the bound only turns a hang into a failure.
        for _ in 0..100 {
            if shared.unmatched.load(Ordering::Relaxed) > 0 {
                break;
            }
            tokio::task::yield_now().await;
        }
        assert_eq!(shared.unmatched.load(Ordering::Relaxed), 1);
        assert_eq!(shared.lock().in_flight, 0);
        reader.abort();
    }

    /// A request is framed once, by the client that built it; another client frames it again
    /// (its own framing may differ) and its answer still matches.
    #[tokio::test]
    async fn a_request_built_by_one_client_is_sent_by_another() {
        let builder = client(fake_switch(Fake::default()).await, Duration::from_secs(30)).await;
        let sender = client(fake_switch(Fake::default()).await, Duration::from_secs(30)).await;
        let p = builder
            .prepare(TxnKind::Purchase, CARD, Some(cny(5)), TxnOptions::new())
            .expect("prepare");
        // Built framed: the same bytes as framing the payload afterwards, and the builder sends
        // that very frame; another client frames it anew.
        assert_eq!(p.wire.frame, builder.frame(&p.payload).expect("framed"));
        assert_eq!(
            builder.frame_of(&p).expect("framed").as_ptr(),
            p.wire.frame.as_ptr()
        );
        let again = sender.frame_of(&p).expect("framed again");
        assert_ne!(again.as_ptr(), p.wire.frame.as_ptr());
        assert_eq!(again, sender.frame(&p.payload).expect("framed"));
        let r = sender.send_prepared(&p).await.expect("answered");
        assert_eq!(r.stan, p.stan);
        assert!(r.is_approved());
        // A payload replaced after it was built is framed anew.
        let mut changed = p.clone();
        changed.payload = Bytes::copy_from_slice(&p.payload);
        let reframed = builder.frame_of(&changed).expect("framed");
        assert_ne!(reframed.as_ptr(), p.wire.frame.as_ptr());
        assert_eq!(reframed, builder.frame(&changed.payload).expect("framed"));
        changed.payload = p.payload.slice(1..);
        assert_eq!(
            builder.frame_of(&changed).expect("framed"),
            builder.frame(&changed.payload).expect("framed")
        );
    }

    #[tokio::test]
    async fn payloads_and_raw_bytes_are_written_without_waiting() {
        let addr = fake_switch(Fake::default()).await;
        let c = client(addr, Duration::from_secs(30)).await;
        // A framed 0800 nobody waits for: its answer is counted as unmatched.
        c.send_payload(&echo_request(b"555555"))
            .await
            .expect("written");
        // The fake answers in order, so once the echo is answered the first answer was read.
        c.echo().await.expect("echo");
        assert_eq!(c.unmatched_responses(), 1);

        // A length header no frame can have: the fake's framing fails and it hangs up.
        c.send_frame_bytes(&[0xff, 0xff, 0x00])
            .await
            .expect("written");
        let e = c.echo().await.expect_err("closed");
        assert!(
            matches!(
                e,
                ClientError::Closed {
                    side: Side::Switch,
                    ..
                }
            ),
            "{e}"
        );
    }

    #[tokio::test]
    async fn an_undecodable_response_fails_its_request_on_the_switch_side() {
        let addr = fake_switch(Fake {
            garble: true,
            ..Fake::default()
        })
        .await;
        let c = client(addr, Duration::from_secs(30)).await;
        let e = c.echo().await.expect_err("garbled");
        assert!(
            matches!(e, ClientError::Decode { stan: Some(_), .. }),
            "{e}"
        );
        assert_eq!(e.side(), Side::Switch);
        assert!(e.to_string().starts_with("switch side"));
    }

    #[tokio::test]
    async fn client_side_errors_name_the_client() {
        let addr = fake_switch(Fake::default()).await;
        let bad = ClientConfig {
            terminal_id: "TOO-LONG-ID".into(),
            ..ClientConfig::default()
        };
        let e = AcquirerClient::connect(addr, bad)
            .await
            .expect_err("config");
        assert_eq!(e.side(), Side::Client);
        let c = client(addr, Duration::from_secs(30)).await;
        let e = c
            .purchase(CARD, Amount::new(1, Currency::USD), TxnOptions::new())
            .await
            .expect_err("currency");
        assert!(matches!(e, ClientError::Request(_)));
        assert!(e.to_string().starts_with("client side"));
        // Short ids are padded.
        let short = ClientConfig {
            terminal_id: "T1".into(),
            ..ClientConfig::default()
        };
        let c = AcquirerClient::connect(addr, short).await;
        assert!(c.is_ok());
    }

    proptest::proptest! {
        /// The hand-written digits are the formatter's, wider values included.
        #[test]
        fn push_decimal_formats_as_the_formatter_does(value in proptest::num::u64::ANY, width in 0usize..24) {
            let mut out = b"x".to_vec();
            push_decimal(&mut out, value, width);
            proptest::prop_assert_eq!(out, format!("x{value:0width$}").into_bytes());
        }

        /// The RRN is the one `format!` built before: year's last digit, day of the year, hour,
        /// STAN.
        #[test]
        fn rrn_matches_its_format(days in 0i64..40_000, seconds in 0u32..86_400, stan in 1u32..=999_999) {
            let now = chrono::NaiveDate::from_ymd_opt(1990, 1, 1).and_then(|d| d.and_hms_opt(0, 0, 0)).expect("date")
                + chrono::Duration::days(days)
                + chrono::Duration::seconds(seconds.into());
            let stan = Stan::new(stan).expect("stan");
            let old = format!("{}{:03}{:02}{}", now.year().rem_euclid(10), now.ordinal(), now.hour(), stan);
            proptest::prop_assert_eq!(rrn_for(now, stan), old);
        }
    }

    /// A request's fields as the formatter wrote them: MCC 4 digits, POS entry mode 3, the card
    /// acceptor name padded to 40, time and date from the clock. A name that is not ASCII is
    /// refused for field 43.
    #[tokio::test]
    async fn prepared_fields_are_formatted_as_before() {
        let addr = fake_switch(Fake::default()).await;
        let client = client(addr, Duration::from_secs(5)).await;
        let opts = TxnOptions::new()
            .mcc(742)
            .pos_entry_mode(7)
            .card_acceptor("Cafe Zurich");
        let p = client
            .prepare(TxnKind::Purchase, CARD, Some(cny(5)), opts)
            .expect("prepare");
        let m = p.message().expect("decodes");
        let text = |n: u8| String::from_utf8(m.get(n).expect("field").into_owned()).expect("text");
        // The fixed clock: 2025-11-25 (day 329) at 22:18:05.
        assert_eq!(text(12), "221805");
        assert_eq!(text(13), "1125");
        assert_eq!(text(18), "0742");
        assert_eq!(text(22), "007");
        assert_eq!(text(43), format!("{:<40}", "Cafe Zurich"));
        assert_eq!(text(37), format!("532922{}", p.stan));

        let refused = client.prepare(
            TxnKind::Purchase,
            CARD,
            Some(cny(5)),
            TxnOptions::new().card_acceptor("Café Zürich"),
        );
        match refused {
            Err(ClientError::Request(text)) => {
                assert!(
                    text.contains("field 43: character outside content class"),
                    "{text}"
                )
            }
            other => panic!("a name that is not ASCII is refused: {other:?}"),
        }
    }
}
