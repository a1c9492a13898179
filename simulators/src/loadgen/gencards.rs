//! `loadgen gen-cards`: issuer data for many cardholders, and the mix files that match it.
//!
//! For each issuer (by default the three of `config/switch.toml`: North Bank credit under BIN
//! 411111 and East Bank debit under 622202, both remote, and Metro Pay prepaid under 605001,
//! on-us) it writes into the output folder:
//!
//! - `<id>-cards.csv`: `pan,account,expiry,status,pvki,pvv` (the columns
//!   `switch::issuing::IssuerFile` reads), one active card per account, valid Luhn PANs
//!   `BIN + 9-digit sequence (from 100000000) + check digit`, expiry 3012, no PIN (empty PVKI and
//!   PVV).
//! - `<id>-accounts.csv`: `id,product,balance,credit_limit,cash_limit,overdraft`, balances and
//!   limits of 1,000,000,000.00 so that no run drains them.
//! - `<id>.toml`: the issuer file, naming both CSVs (`cards_csv`, `accounts_csv`), with one
//!   product without velocity or daily limits, plus a few special cards inline: `empty` (no
//!   money: 51), `lost` (41) and `stolen` (43), sequences from 900000000.
//! - `mix-<id>.toml`: a mix over that issuer's cards (purchases, preauthorizations and balance
//!   inquiries that approve, and one percent each of empty, expired, lost, stolen, not-on-file
//!   and unknown-BIN cards) with the model's expected answers in comments; `mix.toml` over all
//!   issuers.
//! - `switch.toml`: a switch configuration routing the BINs to these issuers (remote hosts at
//!   their `[listener]` addresses, on-us from its file), journal under `<out>/data/`.
//!
//! `--count` is the total number of cards, shared evenly between the issuers.
//!
//! With `--security` every card also gets a PIN, [`PIN`] (its Visa PVV under the published test
//! PVK, key index 1), every `[[txn]]` of the mixes enters it, and a fresh keys file `keys.toml`
//! holds test keys generated for this folder: acquirer 100001's X9.19 MAC key and zone PIN key,
//! and for each issuer a zone PIN key and, for a remote issuer, an X9.19 MAC key for its link.
//! The switch configuration then requires acquirer 100001's MAC and translates its PIN blocks, the
//! remote links are MACed both ways, and the issuers verify the PINs: every security step of a
//! real transaction is on (`loadgen grid --security` measures what it costs).
//!
//! With `--tls` a test PKI goes into `<out>/tls/` ([`super::pki`]: a CA, the switch's certificate
//! for `127.0.0.1` and `localhost`, a client certificate per acquirer, and certificates for the
//! issuer links), and `switch-tls.toml` is `switch.toml` with TLS on both hops:
//! - `[listener.tls]` on with client certificates required, each acquirer's `tls_identity` the
//!   SAN DNS name of its certificate; `loadgen run` connects with `--tls-ca`, `--tls-cert` and
//!   `--tls-key`;
//! - each remote issuer's links with `[issuer.tls]`, presenting the switch's link certificate;
//!   `issuer-sim` listens with `--tls-cert`, `--tls-key` and `--tls-client-ca`.
//!
//! The header of `switch-tls.toml` gives the commands. Both configurations stay, so one folder
//! measures the same cards with and without TLS.

use std::fmt::Write as _;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use switch::config::{
    AcquirerConfig, BinRangeConfig, Config, DialectId, FramingConfig, IssuerConfig, IssuerKind,
};
use switch::domain::{Pan, luhn_check_digit};
use switch::issuing::{IssuerFile, ProductKind, visa_pvv};

use super::pki::TestPki;

/// Balance, credit limit and prepaid maximum of the generated accounts (major units).
pub const AMPLE: &str = "1000000000.00";
/// Expiry of every generated card.
pub const EXPIRY: &str = "3012";
/// First sequence number of the bulk cards.
const SEQ_BULK: u64 = 100_000_000;
/// Most bulk cards per issuer (the 9-digit sequence space below the special cards).
pub const CARDS_PER_ISSUER_MAX: u64 = 800_000_000;
/// First sequence number of the special cards (empty, lost, stolen).
const SEQ_SPECIAL: u64 = 900_000_000;
/// First sequence number of cards under a routed BIN that no issuer file holds.
const SEQ_NOT_ON_FILE: u64 = 950_000_000;
/// A BIN no configuration routes.
pub const UNKNOWN_BIN: &str = "999999";
/// The PIN of every generated card with `--security`.
pub const PIN: &str = "1234";
/// The published test PIN verification key of the PVV test vectors (protects nothing).
const TEST_PVK: [u8; 16] = [
    0x01, 0x23, 0x45, 0x67, 0x89, 0xAB, 0xCD, 0xEF, 0xFE, 0xDC, 0xBA, 0x98, 0x76, 0x54, 0x32, 0x10,
];
/// The PVV key index of every generated card.
const PVKI: u8 = 1;
/// The acquirer that generated configurations admit (with `--security`, it MACs).
pub const ACQUIRER: &str = "100001";
/// Every acquirer of the generated switch configuration: [`ACQUIRER`] first (with `--tls`, each
/// gets a client certificate).
pub const ACQUIRERS: [&str; 2] = [ACQUIRER, "100002"];

/// An issuer to generate.
#[derive(Debug, Clone)]
pub struct GenIssuer {
    /// Issuer id, as in the switch's `[[issuer]] id`.
    pub id: String,
    pub name: String,
    /// 6 digits.
    pub bin: String,
    pub product: ProductKind,
    /// `Some(ip:port)` for a remote issuer host; `None` for on-us.
    pub listen: Option<String>,
    /// 0-2 upper-case characters opening every authorization code.
    pub auth_prefix: String,
}

impl GenIssuer {
    fn new(id: &str, name: &str, bin: &str, product: ProductKind, listen: Option<&str>) -> Self {
        GenIssuer {
            id: id.into(),
            name: name.into(),
            bin: bin.into(),
            product,
            listen: listen.map(str::to_owned),
            auth_prefix: name.chars().take(1).collect::<String>().to_uppercase(),
        }
    }
}

/// The issuers of the default configuration (same ids, BINs, products and ports).
pub fn default_issuers() -> Vec<GenIssuer> {
    vec![
        GenIssuer::new(
            "north-bank",
            "North Bank",
            "411111",
            ProductKind::Credit,
            Some("127.0.0.1:8601"),
        ),
        GenIssuer::new(
            "east-bank",
            "East Bank",
            "622202",
            ProductKind::Debit,
            Some("127.0.0.1:8602"),
        ),
        GenIssuer::new(
            "metro-pay",
            "Metro Pay",
            "605001",
            ProductKind::Prepaid,
            None,
        ),
    ]
}

/// The in-process stack of the grid and the tests: one remote issuer (North Bank, credit) and
/// one on-us issuer (Metro Pay, prepaid). The remote host listens on a free port.
pub fn stack_issuers() -> Vec<GenIssuer> {
    vec![
        GenIssuer::new(
            "north-bank",
            "North Bank",
            "411111",
            ProductKind::Credit,
            Some("127.0.0.1:0"),
        ),
        GenIssuer::new(
            "metro-pay",
            "Metro Pay",
            "605001",
            ProductKind::Prepaid,
            None,
        ),
    ]
}

/// What to generate.
#[derive(Debug, Clone)]
pub struct GenOptions {
    /// Cards in total, shared evenly between the issuers.
    pub count: u64,
    pub out: PathBuf,
    pub issuers: Vec<GenIssuer>,
    /// Special cards of each kind (empty, lost, stolen) per issuer, 1..=1000.
    pub specials: u32,
    /// PINs, MACs and PIN translation on (see the module documentation).
    pub security: bool,
    /// A test PKI and `switch-tls.toml`, TLS on both hops (see the module documentation).
    pub tls: bool,
}

/// One generated issuer.
#[derive(Debug, Clone)]
pub struct GeneratedIssuer {
    pub id: String,
    pub name: String,
    pub bin: String,
    pub product: ProductKind,
    pub listen: Option<String>,
    /// The issuer file.
    pub file: PathBuf,
    /// Bulk cards.
    pub cards: u64,
    /// The mix over this issuer's cards.
    pub mix: PathBuf,
}

/// Everything written.
#[derive(Debug, Clone)]
pub struct Generated {
    /// The output folder, absolute.
    pub out: PathBuf,
    pub issuers: Vec<GeneratedIssuer>,
    /// The mix over every issuer.
    pub mix: PathBuf,
    pub switch_config: PathBuf,
    /// With `security`: the generated keys file (test keys).
    pub keys: Option<PathBuf>,
    /// With `tls`: the test PKI.
    pub tls: Option<TestPki>,
    /// With `tls`: `switch-tls.toml`, [`Generated::switch_config`] with TLS on the acquirer
    /// listener and on the remote issuers' links (the same journal folder: run one of the two at
    /// a time).
    pub tls_switch_config: Option<PathBuf>,
}

/// Why generation failed.
#[derive(Debug, thiserror::Error)]
pub enum GenError {
    #[error("gen-cards: {0}")]
    Options(String),
    #[error("gen-cards: {}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("gen-cards: the generated {what} does not validate: {message}")]
    Invalid { what: String, message: String },
}

pub(super) fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> GenError + '_ {
    move |source| GenError::Io {
        path: path.to_owned(),
        source,
    }
}

/// `bin` + the 9-digit `seq` + the Luhn check digit.
pub fn pan(bin: &str, seq: u64) -> String {
    let mut s = String::with_capacity(bin.len() + 10);
    s.push_str(bin);
    let _ = write!(s, "{seq:09}");
    let check = luhn_check_digit(s.as_bytes());
    s.push(char::from(check));
    s
}

fn check_options(o: &GenOptions) -> Result<(), GenError> {
    let bad = |m: String| Err(GenError::Options(m));
    if o.issuers.is_empty() {
        return bad("no issuers to generate".into());
    }
    let n = o.issuers.len() as u64;
    if o.count < n {
        return bad(format!(
            "--count must be at least {n} (one card per issuer)"
        ));
    }
    if o.count / n > CARDS_PER_ISSUER_MAX {
        return bad(format!(
            "--count allows at most {CARDS_PER_ISSUER_MAX} cards per issuer"
        ));
    }
    if !(1..=1000).contains(&o.specials) {
        return bad("specials must be 1 to 1000".into());
    }
    for i in &o.issuers {
        if i.bin.len() != 6 || !i.bin.bytes().all(|b| b.is_ascii_digit()) {
            return bad(format!("issuer {}: BIN must be 6 digits", i.id));
        }
        if i.bin == UNKNOWN_BIN {
            return bad(format!(
                "issuer {}: BIN {UNKNOWN_BIN} is reserved for unknown-BIN cards",
                i.id
            ));
        }
    }
    Ok(())
}

/// Writes the issuer files, CSVs, mixes and switch configuration, then reads every issuer file
/// back through `IssuerFile::load` to make sure the switch and the issuer hosts accept it.
pub fn generate(o: &GenOptions) -> Result<Generated, GenError> {
    check_options(o)?;
    std::fs::create_dir_all(&o.out).map_err(io_error(&o.out))?;
    let out = std::fs::canonicalize(&o.out).map_err(io_error(&o.out))?;
    let keys = if o.security {
        let path = out.join("keys.toml");
        write_text(&path, &keys_toml(&o.issuers))?;
        Some(path)
    } else {
        None
    };
    let tls = if o.tls {
        Some(TestPki::generate(&out.join("tls"), &ACQUIRERS)?)
    } else {
        None
    };
    let n = o.issuers.len() as u64;
    let mut issuers = Vec::with_capacity(o.issuers.len());
    for (k, i) in o.issuers.iter().enumerate() {
        let cards = o.count / n + u64::from((k as u64) < o.count % n);
        issuers.push(write_issuer(&out, i, cards, o.specials, keys.as_deref())?);
    }
    let all: Vec<&GeneratedIssuer> = issuers.iter().collect();
    let mix = out.join("mix.toml");
    write_text(&mix, &mix_text(&all, o.specials, o.security))?;
    let switch_config = out.join("switch.toml");
    write_text(
        &switch_config,
        &switch_toml(&out, &issuers, keys.as_deref(), None)?,
    )?;
    let tls_switch_config = match &tls {
        Some(pki) => {
            let path = out.join("switch-tls.toml");
            write_text(
                &path,
                &switch_toml(&out, &issuers, keys.as_deref(), Some(pki))?,
            )?;
            Some(path)
        }
        None => None,
    };
    for g in &issuers {
        IssuerFile::load(&g.file).map_err(|e| GenError::Invalid {
            what: format!("issuer file {}", g.file.display()),
            message: e.to_string(),
        })?;
    }
    Ok(Generated {
        out,
        issuers,
        mix,
        switch_config,
        keys,
        tls,
        tls_switch_config,
    })
}

/// `bytes` random bytes as upper-case hex: a test key (16 bytes: double-length TDES, whose
/// parity bits are not set, which TDES ignores; 32: the journal's AES-256 PAN key). Not from a
/// cryptographic generator: these keys protect nothing.
pub fn random_key_hex(bytes: usize) -> String {
    (0..bytes)
        .map(|_| format!("{:02X}", fastrand::u8(..)))
        .collect()
}

/// A double-length TDES test key, as 32 hex digits.
fn random_key() -> String {
    random_key_hex(16)
}

/// A keys file of fresh test keys for acquirer [`ACQUIRER`] and `issuers` (see the module
/// documentation).
fn keys_toml(issuers: &[GenIssuer]) -> String {
    let mut t = String::from(
        "# TEST KEYS ONLY, generated by `loadgen gen-cards --security` for this folder. They\n\
         # protect nothing. Key ids: acquirer:<id>:mac|zpk, issuer:<id>:mac|zpk.\n\n",
    );
    let _ = writeln!(t, "[journal]\npan_key = \"{}\"\n", random_key_hex(32));
    let _ = writeln!(
        t,
        "[[acquirer]]\nid = \"{ACQUIRER}\"\nmac_algorithm = \"x9.19\"\nmac_key = \"{}\"\n\
         zpk_algorithm = \"tdes\"\nzpk = \"{}\"\n",
        random_key(),
        random_key()
    );
    for i in issuers {
        let _ = writeln!(t, "[[issuer]]\nid = \"{}\"", i.id);
        if i.listen.is_some() {
            let _ = writeln!(
                t,
                "mac_algorithm = \"x9.19\"\nmac_key = \"{}\"",
                random_key()
            );
        }
        let _ = writeln!(t, "zpk_algorithm = \"tdes\"\nzpk = \"{}\"\n", random_key());
    }
    t
}

/// The CSV cells `pvki,pvv` of a card: its PVV for [`PIN`] with `security`, empty without.
fn pin_cells(pan: &str, security: bool) -> String {
    match pvv(pan, security) {
        Some(v) => format!("{PVKI},{v}"),
        None => ",".into(),
    }
}

fn pvv(pan: &str, security: bool) -> Option<String> {
    if !security {
        return None;
    }
    let p = Pan::parse(pan.as_bytes()).ok()?;
    let v = visa_pvv(&TEST_PVK, &p, PVKI, PIN);
    Some(String::from_utf8_lossy(&v).into_owned())
}

fn write_text(path: &Path, text: &str) -> Result<(), GenError> {
    std::fs::write(path, text).map_err(io_error(path))
}

fn product_id(i: &GenIssuer) -> String {
    format!("{}-{}", i.id, product_name(i.product))
}

/// The `[[bin_range]] product` of an issuer's product kind: what clearing prices interchange by.
pub fn bin_product(p: ProductKind) -> switch::domain::Product {
    match p {
        ProductKind::Credit => switch::domain::Product::Credit,
        ProductKind::Debit => switch::domain::Product::Debit,
        ProductKind::Prepaid => switch::domain::Product::Prepaid,
    }
}

fn product_name(p: ProductKind) -> &'static str {
    match p {
        ProductKind::Credit => "credit",
        ProductKind::Debit => "debit",
        ProductKind::Prepaid => "prepaid",
    }
}

/// The CSV cells `balance,credit_limit,cash_limit,overdraft` of an account with `money`.
fn account_cells(p: ProductKind, money: &str) -> String {
    match p {
        // Credit: the balance is what is owed.
        ProductKind::Credit => format!("0.00,{money},{money},"),
        ProductKind::Debit => format!("{money},,,0.00"),
        ProductKind::Prepaid => format!("{money},,,"),
    }
}

/// The TOML lines of an account with `money`.
fn account_toml(p: ProductKind, money: &str) -> String {
    match p {
        ProductKind::Credit => {
            format!("balance = \"0.00\"\ncredit_limit = \"{money}\"\ncash_limit = \"{money}\"\n")
        }
        ProductKind::Debit => format!("balance = \"{money}\"\noverdraft = \"0.00\"\n"),
        ProductKind::Prepaid => format!("balance = \"{money}\"\n"),
    }
}

/// The special cards of an issuer: (class, status, money), in file order.
const SPECIALS: [(&str, &str, &str); 3] = [
    ("empty", "active", "0.00"),
    ("lost", "lost", AMPLE),
    ("stolen", "stolen", AMPLE),
];

fn special_pans(i: &GenIssuer, class: usize, specials: u32) -> Vec<String> {
    (0..u64::from(specials))
        .map(|j| pan(&i.bin, SEQ_SPECIAL + class as u64 * 1000 + j))
        .collect()
}

fn write_issuer(
    out: &Path,
    i: &GenIssuer,
    cards: u64,
    specials: u32,
    keys: Option<&Path>,
) -> Result<GeneratedIssuer, GenError> {
    let security = keys.is_some();
    let product = product_id(i);
    let cards_name = format!("{}-cards.csv", i.id);
    let accounts_name = format!("{}-accounts.csv", i.id);

    let cards_path = out.join(&cards_name);
    let accounts_path = out.join(&accounts_name);
    let mut cw = BufWriter::new(File::create(&cards_path).map_err(io_error(&cards_path))?);
    let mut aw = BufWriter::new(File::create(&accounts_path).map_err(io_error(&accounts_path))?);
    let cells = account_cells(i.product, AMPLE);
    (|| -> std::io::Result<()> {
        writeln!(cw, "pan,account,expiry,status,pvki,pvv")?;
        writeln!(aw, "id,product,balance,credit_limit,cash_limit,overdraft")?;
        for k in 0..cards {
            let seq = SEQ_BULK + k;
            let p = pan(&i.bin, seq);
            writeln!(cw, "{p},A{seq},{EXPIRY},active,{}", pin_cells(&p, security))?;
            writeln!(aw, "A{seq},{product},{cells}")?;
        }
        cw.flush()?;
        aw.flush()
    })()
    .map_err(io_error(&cards_path))?;

    let mut t = String::new();
    let _ = writeln!(
        t,
        "# Generated by `loadgen gen-cards`: {cards} {} cards under BIN {} in {cards_name}\n\
         # (accounts in {accounts_name}, {AMPLE} each), plus the special cards below. {}\n\
         # Read by `switch::issuing::IssuerFile::load`.\n",
        product_name(i.product),
        i.bin,
        if security {
            "Every card's PIN is 1234\n# (Visa PVV under the published test PVK, key index 1)."
        } else {
            "No card has a\n# PIN (no PVV)."
        }
    );
    let _ = writeln!(
        t,
        "cards_csv = \"{cards_name}\"\naccounts_csv = \"{accounts_name}\"\n"
    );
    let _ = writeln!(
        t,
        "[issuer]\nid = \"{}\"\nname = \"{}\"\nauth_code_prefix = \"{}\"\n",
        i.id, i.name, i.auth_prefix
    );
    if let Some(listen) = &i.listen {
        let _ = writeln!(t, "[listener]\naddress = \"{listen}\"\n");
    }
    if let Some(keys) = keys {
        let pvk: String = TEST_PVK.iter().map(|b| format!("{b:02X}")).collect();
        let _ = writeln!(
            t,
            "[security]\n# TEST KEY ONLY: the published test PVK.\npvk = \"{pvk}\""
        );
        if i.listen.is_some() {
            let _ = writeln!(
                t,
                "keys_file = {}\npin_key = \"issuer:{id}:zpk\"\nmac_key = \"issuer:{id}:mac\"",
                toml_string(&keys.display().to_string()),
                id = i.id
            );
        }
        t.push('\n');
    }
    let journal = out.join("data").join(&i.id).join("journal");
    let _ = writeln!(
        t,
        "[journal]\ndir = {}\n",
        toml_string(&journal.display().to_string())
    );
    let _ = writeln!(
        t,
        "[[product]]\nid = \"{product}\"\nkind = \"{}\"\ncurrency = \"156\"\nhold_expiry_h = 168\n\
         completion_tolerance_pct = \"20\"",
        product_name(i.product)
    );
    if i.product == ProductKind::Prepaid {
        let _ = writeln!(t, "max_balance = \"{AMPLE}\"");
    }
    t.push('\n');
    for (class, (label, status, money)) in SPECIALS.iter().enumerate() {
        for (j, p) in special_pans(i, class, specials).iter().enumerate() {
            let account = format!("S-{label}-{j}");
            let _ = writeln!(
                t,
                "[[account]]\nid = \"{account}\"\nproduct = \"{product}\"\n{}",
                account_toml(i.product, money)
            );
            let _ = writeln!(
                t,
                "[[card]]\npan = \"{p}\"\naccount = \"{account}\"\nexpiry = \"{EXPIRY}\"\nstatus = \"{status}\""
            );
            if let Some(v) = pvv(p, security) {
                let _ = writeln!(t, "pvki = {PVKI}\npvv = \"{v}\"");
            }
            t.push('\n');
        }
    }
    let file = out.join(format!("{}.toml", i.id));
    write_text(&file, &t)?;

    let g = GeneratedIssuer {
        id: i.id.clone(),
        name: i.name.clone(),
        bin: i.bin.clone(),
        product: i.product,
        listen: i.listen.clone(),
        file,
        cards,
        mix: out.join(format!("mix-{}.toml", i.id)),
    };
    write_text(&g.mix, &mix_text(&[&g], specials, security))?;
    Ok(g)
}

/// A TOML basic string.
fn toml_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04X}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn pan_list(pans: &[String]) -> String {
    let quoted: Vec<String> = pans.iter().map(|p| format!("\"{p}\"")).collect();
    format!("[{}]", quoted.join(", "))
}

/// The mix over `issuers`' generated cards.
fn mix_text(issuers: &[&GeneratedIssuer], specials: u32, security: bool) -> String {
    let mut t = String::new();
    let names: Vec<&str> = issuers.iter().map(|g| g.id.as_str()).collect();
    let _ = writeln!(
        t,
        "# Generated by `loadgen gen-cards`: the mix over the generated cards of {}.\n\
         # Expected answers are the model's (simulators/src/loadgen/model.rs), shown as comments.\n\
         # Weights per issuer: 94% that approve, 1% each of six declines.\n\ncurrency = \"156\"\n",
        names.join(", ")
    );
    let n = u64::from(specials);
    for g in issuers {
        let gi = GenIssuer {
            id: g.id.clone(),
            name: g.name.clone(),
            bin: g.bin.clone(),
            product: g.product,
            listen: None,
            auth_prefix: String::new(),
        };
        let _ = writeln!(
            t,
            "[[cards]]\nname = \"{id}\"\ncsv = \"{id}-cards.csv\"\nexpiry = \"{EXPIRY}\"\nfunds = \"ample\"\n",
            id = g.id
        );
        for (class, (label, status, money)) in SPECIALS.iter().enumerate() {
            let funds = if *money == AMPLE { "ample" } else { "empty" };
            let _ = writeln!(
                t,
                "[[cards]]\nname = \"{}-{label}\"\npans = {}\nstatus = \"{status}\"\nexpiry = \"{EXPIRY}\"\nfunds = \"{funds}\"\n",
                g.id,
                pan_list(&special_pans(&gi, class, specials))
            );
        }
        let missing: Vec<String> = (0..n).map(|j| pan(&g.bin, SEQ_NOT_ON_FILE + j)).collect();
        let _ = writeln!(
            t,
            "[[cards]]\nname = \"{}-not-on-file\"\nkind = \"not-on-file\"\npans = {}\nexpiry = \"{EXPIRY}\"\n",
            g.id,
            pan_list(&missing)
        );
    }
    let unknown: Vec<String> = (0..n).map(|j| pan(UNKNOWN_BIN, SEQ_BULK + j)).collect();
    let _ = writeln!(
        t,
        "[[cards]]\nname = \"unknown-bin\"\nkind = \"unknown-bin\"\npans = {}\nexpiry = \"{EXPIRY}\"\n",
        pan_list(&unknown)
    );
    for g in issuers {
        let id = &g.id;
        let rows: [(&str, u32, &str, &str, &str, &str); 9] = [
            (
                "purchase",
                65,
                "purchase",
                "",
                "amount_min = \"1.00\"\namount_max = \"200.00\"\n",
                "00",
            ),
            (
                "preauth",
                15,
                "preauth",
                "",
                "amount_min = \"10.00\"\namount_max = \"500.00\"\n",
                "00",
            ),
            ("balance", 14, "balance", "", "", "00"),
            (
                "purchase-empty",
                1,
                "purchase",
                "-empty",
                "amount_min = \"1.00\"\namount_max = \"50.00\"\n",
                "51",
            ),
            (
                "purchase-expired",
                1,
                "purchase",
                "",
                "amount = \"10.00\"\nexpiry = \"2401\"\n",
                "54",
            ),
            (
                "purchase-lost",
                1,
                "purchase",
                "-lost",
                "amount = \"10.00\"\n",
                "41",
            ),
            (
                "purchase-stolen",
                1,
                "purchase",
                "-stolen",
                "amount = \"10.00\"\n",
                "43",
            ),
            (
                "purchase-not-on-file",
                1,
                "purchase",
                "-not-on-file",
                "amount = \"10.00\"\n",
                "14",
            ),
            (
                "purchase-unknown-bin",
                1,
                "purchase",
                "",
                "amount = \"10.00\"\n",
                "15",
            ),
        ];
        for (name, weight, action, suffix, extra, code) in rows {
            let cards = if name == "purchase-unknown-bin" {
                "unknown-bin".to_owned()
            } else {
                format!("{id}{suffix}")
            };
            let pin = if security {
                format!("pin = \"{PIN}\"\n")
            } else {
                String::new()
            };
            let _ = writeln!(
                t,
                "[[txn]]                               # model: {code}\nname = \"{id} {name}\"\nweight = {weight}\naction = \"{action}\"\ncards = \"{cards}\"\n{extra}{pin}"
            );
        }
    }
    t
}

/// A switch configuration for the generated issuers.
fn switch_toml(
    out: &Path,
    issuers: &[GeneratedIssuer],
    keys: Option<&Path>,
    tls: Option<&TestPki>,
) -> Result<String, GenError> {
    let mut c = Config::default();
    if let Some(pki) = tls {
        c.listener.tls = Some(pki.switch_listener());
    }
    c.journal.dir = out.join("data").join("journal");
    if let Some(keys) = keys {
        c.security.keys_file = keys.to_owned();
    }
    let tls_identity = |id: &str| tls.and_then(|pki| pki.identity(id));
    c.acquirers = vec![
        AcquirerConfig {
            id: ACQUIRER.into(),
            name: "Harbor Acquiring".into(),
            mac_key: keys.map(|_| format!("acquirer:{ACQUIRER}:mac")),
            pin_key: keys.map(|_| format!("acquirer:{ACQUIRER}:zpk")),
            tls_identity: tls_identity(ACQUIRER),
            ..AcquirerConfig::default()
        },
        AcquirerConfig {
            id: ACQUIRERS[1].into(),
            name: "Summit Merchant Services".into(),
            tls_identity: tls_identity(ACQUIRERS[1]),
            ..AcquirerConfig::default()
        },
    ];
    for g in issuers {
        let mut ic = issuer_config(&g.id, &g.name, g.listen.as_deref(), &g.file, 1, 4096);
        if keys.is_some() {
            secure_issuer(&mut ic);
        }
        if let Some(pki) = tls
            && ic.kind == IssuerKind::Remote
        {
            ic.tls = Some(pki.link_tls());
        }
        c.issuers.push(ic);
        c.bin_ranges.push(BinRangeConfig {
            low: g.bin.clone(),
            high: g.bin.clone(),
            issuer: g.id.clone(),
            product: Some(bin_product(g.product)),
        });
    }
    c.validate("generated switch.toml")
        .map_err(|problems| GenError::Invalid {
            what: "switch.toml".into(),
            message: problems
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; "),
        })?;
    let body = c.to_toml_string().map_err(|e| GenError::Invalid {
        what: "switch.toml".into(),
        message: e.to_string(),
    })?;
    let mut t = String::new();
    let _ = writeln!(
        t,
        "# Generated by `loadgen gen-cards`. From the repository root (keys_file is relative to it):"
    );
    let host_tls = tls.map_or(String::new(), |pki| {
        format!(
            " \\\n#     --tls-cert {} --tls-key {} --tls-client-ca {}",
            pki.host_cert.display(),
            pki.host_key.display(),
            pki.ca.display()
        )
    });
    for g in issuers.iter().filter(|g| g.listen.is_some()) {
        let _ = writeln!(
            t,
            "#   cargo run --release --bin issuer-sim -- --config {}{host_tls} &",
            g.file.display()
        );
    }
    let tls_flags = match tls.and_then(|pki| pki.client(ACQUIRER).map(|c| (pki, c))) {
        Some((pki, c)) => format!(
            " \\\n#     --tls-ca {} --tls-cert {} --tls-key {}",
            pki.ca.display(),
            c.cert.display(),
            c.key.display()
        ),
        None => String::new(),
    };
    let _ = writeln!(
        t,
        "#   cargo run --release --bin switch -- --config {}\n\
         #   cargo run --release -p simulators --bin loadgen -- run --mix {}{tls_flags}\n",
        out.join(if tls.is_some() {
            "switch-tls.toml"
        } else {
            "switch.toml"
        })
        .display(),
        out.join("mix.toml").display()
    );
    t.push_str(&body);
    Ok(t)
}

/// Turns on the link keys of a remote `[[issuer]]` entry as `gen-cards --security` writes them
/// (`issuer:<id>:zpk`, `issuer:<id>:mac`); an on-us issuer verifies PINs inside the switch and
/// has no link.
pub fn secure_issuer(ic: &mut IssuerConfig) {
    if ic.kind == IssuerKind::Remote {
        ic.pin_key = Some(format!("issuer:{}:zpk", ic.id));
        ic.mac_key = Some(format!("issuer:{}:mac", ic.id));
    }
}

/// An `[[issuer]]` entry: remote (at `listen`) with `links` connections and `inflight_max`, or
/// on-us from `file`.
pub fn issuer_config(
    id: &str,
    name: &str,
    listen: Option<&str>,
    file: &Path,
    links: u32,
    inflight_max: u32,
) -> IssuerConfig {
    IssuerConfig {
        id: id.into(),
        name: name.into(),
        kind: if listen.is_some() {
            IssuerKind::Remote
        } else {
            IssuerKind::OnUs
        },
        endpoints: listen.map(|l| vec![l.to_owned()]).unwrap_or_default(),
        connections_per_endpoint: links,
        timeout_ms: 2000,
        inflight_max,
        echo_idle_ms: 30_000,
        reconnect_backoff_min_ms: 100,
        reconnect_backoff_max_ms: 5000,
        saf_retries_max: 10,
        saf_depth_max: 1_000_000,
        dialect: DialectId::Iso87Ascii,
        framing: FramingConfig::default(),
        frame_bytes_max: 8192,
        cards: listen.is_none().then(|| file.to_owned()),
        mac_key: None,
        pin_key: None,
        tls: None,
    }
}

#[cfg(test)]
mod tests {
    use switch::domain::luhn_valid;
    use switch::issuing::{Engine, NaiveDate, PinCheck};

    use super::super::mix::Mix;
    use super::*;

    /// `count` cards of the default issuers generated into `dir`.
    fn generated(dir: &Path, count: u64, specials: u32, security: bool, tls: bool) -> Generated {
        generate(&GenOptions {
            count,
            out: dir.to_owned(),
            issuers: default_issuers(),
            specials,
            security,
            tls,
        })
        .expect("generate")
    }

    #[test]
    fn pans_are_luhn_valid_under_their_bin() {
        for seq in [0, 1, 123_456_789, SEQ_BULK, SEQ_SPECIAL + 5] {
            let p = pan("411111", seq);
            assert_eq!(p.len(), 16);
            assert!(p.starts_with("411111"));
            assert!(luhn_valid(p.as_bytes()), "{p}");
        }
        // The published test card 4111110000000013 is sequence 1.
        assert_eq!(pan("411111", 1), "4111110000000013");
    }

    #[test]
    fn generated_files_load_into_engines_and_mixes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let g = generated(dir.path(), 301, 2, false, false);
        assert_eq!(g.issuers.iter().map(|i| i.cards).sum::<u64>(), 301);
        assert_eq!(g.issuers[0].cards, 101);
        for i in &g.issuers {
            let file = IssuerFile::load(&i.file).expect("issuer file");
            assert_eq!(file.cards.len() as u64, i.cards + 6);
            let engine = Engine::from_file(&file).expect("engine");
            assert_eq!(engine.card_count() as u64, i.cards + 6);
        }
        let today = NaiveDate::from_ymd_opt(2026, 11, 25).unwrap_or_default();
        let mix = Mix::load(&g.mix, today).expect("mix");
        assert_eq!(mix.txns.len(), 27);
        let lines = mix.describe(today).join("\n");
        for code in ["00", "51", "54", "41", "43", "14", "15"] {
            assert!(lines.contains(&format!("expect {code}")), "{code}: {lines}");
        }
        Mix::load(&g.issuers[2].mix, today).expect("per-issuer mix");
        let config = Config::load(&g.switch_config).expect("switch config");
        assert_eq!(config.issuers.len(), 3);
        assert_eq!(config.issuers[2].kind, IssuerKind::OnUs);
    }

    /// `--tls`: the switch configuration turns on `[listener.tls]` with the generated files, which
    /// load as the switch and a client load them; each acquirer's `tls_identity` is the SAN of
    /// its own certificate; private keys are readable by their owner only; and the header's
    /// command connects with acquirer 100001's certificate.
    #[test]
    fn with_tls_the_listener_and_every_acquirer_have_their_certificates() {
        let dir = tempfile::tempdir().expect("tempdir");
        let g = generated(dir.path(), 30, 1, false, true);
        let pki = g.tls.clone().expect("test PKI");
        let plain = Config::load(&g.switch_config).expect("switch config");
        assert!(plain.listener.tls.is_none(), "switch.toml stays plain TCP");
        assert!(plain.acquirers.iter().all(|a| a.tls_identity.is_none()));
        let tls_path = g.tls_switch_config.clone().expect("switch-tls.toml");
        let config = Config::load(&tls_path).expect("switch-tls.toml");
        assert_eq!(config.journal.dir, plain.journal.dir);
        let tls = config.listener.tls.clone().expect("[listener.tls]");
        assert_eq!(tls.cert_file, pki.server_cert);
        assert_eq!(tls.client_ca_file.as_ref(), Some(&pki.ca));
        switch::net::tls::server_config(&tls).expect("the switch loads its TLS files");
        switch::net::tls::server_config(&pki.host_listener()).expect("a host loads its files");
        for ic in &config.issuers {
            let remote = ic.kind == IssuerKind::Remote;
            assert_eq!(ic.tls.is_some(), remote, "{}", ic.id);
        }
        assert!(plain.issuers.iter().all(|ic| ic.tls.is_none()));
        assert_eq!(config.acquirers.len(), ACQUIRERS.len());
        for a in &config.acquirers {
            let c = pki.client(&a.id).expect("a certificate per acquirer");
            assert_eq!(a.tls_identity.as_deref(), Some(c.identity.as_str()));
            let chain = switch::net::tls::load_certificates("cert", &c.cert).expect("chain");
            assert_eq!(
                switch::net::tls::certificate_names(&chain[0]),
                vec![c.identity.clone()]
            );
            pki.client_tls(&a.id, "127.0.0.1:8583")
                .expect("a client loads its files");
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt as _;
                let mode = std::fs::metadata(&c.key).expect("key").permissions().mode();
                assert_eq!(mode & 0o777, 0o600, "{}", c.key.display());
            }
        }
        let text = std::fs::read_to_string(&tls_path).expect("switch-tls.toml");
        let client = pki.client(ACQUIRER).expect("100001");
        assert!(
            text.contains(&format!("--config {}", tls_path.display())),
            "{text}"
        );
        assert!(
            text.contains(&format!("--tls-ca {}", pki.ca.display())),
            "{text}"
        );
        assert!(
            text.contains(&format!(
                "--tls-cert {} --tls-key {} --tls-client-ca {}",
                pki.host_cert.display(),
                pki.host_key.display(),
                pki.ca.display()
            )),
            "issuer-sim's flags: {text}"
        );
        assert!(
            text.contains(&format!("--tls-cert {}", client.cert.display())),
            "{text}"
        );
    }

    #[test]
    fn with_security_every_card_has_a_pin_and_every_party_its_keys() {
        let dir = tempfile::tempdir().expect("tempdir");
        let g = generated(dir.path(), 30, 1, true, false);
        let keys_path = g.keys.clone().expect("keys file");
        let keys = switch::security::KeysFile::load(&keys_path).expect("keys load");
        let config = Config::load(&g.switch_config).expect("switch config");
        assert_eq!(config.security.keys_file, keys_path);
        assert_eq!(
            config.acquirers[0].mac_key.as_deref(),
            Some("acquirer:100001:mac")
        );
        assert_eq!(
            config.acquirers[0].pin_key.as_deref(),
            Some("acquirer:100001:zpk")
        );
        for ic in &config.issuers {
            let remote = ic.kind == IssuerKind::Remote;
            assert_eq!(ic.mac_key.is_some(), remote, "{}", ic.id);
            assert_eq!(ic.pin_key.is_some(), remote, "{}", ic.id);
        }
        // Every key the configuration names is in the keys file.
        let module = switch::security::SoftwareSecurityModule::from_keys(&keys).expect("module");
        let held: Vec<String> = module.key_ids().iter().map(ToString::to_string).collect();
        let named = config
            .acquirers
            .iter()
            .flat_map(|a| [&a.mac_key, &a.pin_key])
            .chain(config.issuers.iter().flat_map(|i| [&i.mac_key, &i.pin_key]))
            .flatten();
        for id in named {
            assert!(held.contains(id), "{id} is in the keys file");
        }
        for i in &g.issuers {
            let file = IssuerFile::load(&i.file).expect("issuer file");
            assert!(file.security.pvk.is_some(), "{}", i.id);
            let engine = Engine::from_file(&file).expect("engine");
            for c in &file.cards {
                let pan = Pan::parse(c.pan.as_bytes()).expect("pan");
                assert_eq!(engine.verify_pin(&pan, PIN), PinCheck::Verified, "{}", i.id);
                assert_eq!(engine.verify_pin(&pan, "9999"), PinCheck::Wrong, "{}", i.id);
            }
        }
        let today = NaiveDate::from_ymd_opt(2026, 11, 25).unwrap_or_default();
        let mix = Mix::load(&g.mix, today).expect("mix");
        assert!(
            mix.txns
                .iter()
                .all(|t| t.options.pin.as_deref() == Some(PIN))
        );
    }

    #[test]
    fn bad_options_are_refused() {
        let o = |count, specials| GenOptions {
            count,
            out: PathBuf::from("unused"),
            issuers: default_issuers(),
            specials,
            security: false,
            tls: false,
        };
        assert!(generate(&o(2, 1)).is_err());
        assert!(generate(&o(3, 0)).is_err());
        assert!(generate(&o(u64::MAX, 1)).is_err());
    }
}
