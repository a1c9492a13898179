use std::path::{Path, PathBuf};

use super::*;

const ORIGIN: &str = "test.toml";

fn shipped_config_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/switch.toml")
}

fn parse_error(text: &str) -> String {
    match Config::from_toml_str(text, ORIGIN) {
        Err(ConfigError::Parse { file, message }) => {
            assert_eq!(file, ORIGIN);
            message
        }
        other => panic!("expected a parse error, got {other:?}"),
    }
}

fn invalid(text: &str) -> Vec<Problem> {
    match Config::from_toml_str(text, ORIGIN) {
        Err(ConfigError::Invalid(problems)) => problems,
        other => panic!("expected validation problems, got {other:?}"),
    }
}

fn keys(problems: &[Problem]) -> Vec<&str> {
    problems.iter().map(|p| p.key.as_str()).collect()
}

/// Two issuers plus the given `[[bin_range]]` tables.
fn with_ranges(ranges: &[(&str, &str)]) -> String {
    let mut text = String::from(
        "[[issuer]]\nid = \"a\"\nname = \"A\"\nkind = \"on-us\"\n\
         [[issuer]]\nid = \"b\"\nname = \"B\"\nkind = \"on-us\"\n",
    );
    for (i, (low, high)) in ranges.iter().enumerate() {
        let issuer = if i % 2 == 0 { "a" } else { "b" };
        text.push_str(&format!(
            "[[bin_range]]\nlow = \"{low}\"\nhigh = \"{high}\"\nissuer = \"{issuer}\"\n"
        ));
    }
    text
}

/// `config` written as TOML reads back as the same config.
fn assert_round_trips(config: &Config) {
    let text = config.to_toml_string().expect("serializes");
    assert_eq!(
        &Config::from_toml_str(&text, ORIGIN).expect("round trip"),
        config
    );
}

#[test]
fn shipped_config_loads_and_validates() {
    let path = shipped_config_path();
    let config = match Config::load(&path) {
        Ok(config) => config,
        Err(err) => panic!("{} does not load:\n{err}", path.display()),
    };
    assert_eq!(config.listener.address, "127.0.0.1:8583");
    assert_eq!(config.listener.dialect, DialectId::Iso87Ascii);
    assert_eq!(
        config.listener.framing.length_header,
        LengthHeader::Binary2Be
    );
    assert_eq!(config.journal.dir, PathBuf::from("data/journal"));
    let acquirers: Vec<_> = config
        .acquirers
        .iter()
        .map(|a| (a.id.as_str(), a.name.as_str()))
        .collect();
    assert_eq!(
        acquirers,
        [
            ("100001", "Harbor Acquiring"),
            ("100002", "Summit Merchant Services")
        ]
    );
    let issuers: Vec<_> = config
        .issuers
        .iter()
        .map(|i| (i.id.as_str(), i.kind, i.endpoints.clone()))
        .collect();
    assert_eq!(
        issuers,
        [
            (
                "north-bank",
                IssuerKind::Remote,
                vec!["127.0.0.1:8601".to_owned()]
            ),
            (
                "east-bank",
                IssuerKind::Remote,
                vec!["127.0.0.1:8602".to_owned()]
            ),
            ("metro-pay", IssuerKind::OnUs, vec![]),
        ]
    );
    let ranges: Vec<_> = config
        .bin_ranges
        .iter()
        .map(|r| (r.low.as_str(), r.high.as_str(), r.issuer.as_str()))
        .collect();
    assert_eq!(
        ranges,
        [
            ("411111", "411111", "north-bank"),
            ("622202", "622202", "east-bank"),
            ("605001", "605001", "metro-pay")
        ]
    );
}

#[test]
fn empty_file_is_all_defaults() {
    let config = Config::from_toml_str("", ORIGIN).expect("empty config is valid");
    assert_eq!(config, Config::default());
    assert_eq!(config.listener.address, "127.0.0.1:8583");
    assert_eq!(config.listener.frame_bytes_max, 8192);
    assert_eq!(config.listener.connections_max, 1024);
    assert_eq!(config.listener.accept_backlog_max, 1024);
    assert_eq!(config.listener.inflight_per_connection_max, 256);
    assert_eq!(config.listener.idle_timeout_ms, 300_000);
    assert_eq!(config.listener.read_timeout_ms, 30_000);
    assert_eq!(config.listener.requests_per_s_max, 50_000);
    assert_eq!(config.listener.requests_burst_max, 5_000);
    assert_eq!(config.listener.framing.header_bytes, 0);
    assert_eq!(config.switch.duplicate_window_s, 300);
    assert_eq!(config.switch.duplicate_entries_max, 1_000_000);
    assert!(config.switch.check_expiry);
    assert_eq!(config.switch.shutdown_grace_ms, 5000);
    assert_eq!(config.switch.business_date_cutover_minutes(), Some(23 * 60));
    assert_eq!(config.switch.scheduling, crate::process::Scheduling::Batch);
    assert_eq!(config.journal.sync, JournalSync::Always);
    assert_eq!(config.journal.segment_bytes_max, 64 << 20);
    assert_eq!(config.journal.group_commit_max, 512);
    assert_eq!(config.journal.group_commit_delay_us, 0);
    assert_eq!(config.journal.group_commit_delay_min_records, 16);
    assert_eq!(config.journal.checkpoint_interval_s, 300);
    assert_eq!(config.journal.checkpoint_write_mib_per_s, 32);
    assert_eq!(config.metrics.address, "127.0.0.1:9583");
    assert!(config.metrics.enabled);
}

#[test]
fn a_duplicate_window_beyond_its_limit_is_refused_not_allocated() {
    // The window's order queue is allocated for the limit at start: a typo with extra zeros
    // must be a config problem, not an allocation that aborts the process.
    let text = "[switch]\nduplicate_entries_max = 100000000000\n";
    let problems = invalid(text);
    assert_eq!(keys(&problems), ["switch.duplicate_entries_max"]);
    assert!(
        problems[0].message.contains("at most 100000000"),
        "{problems:?}"
    );
    let at_limit = "[switch]\nduplicate_entries_max = 100000000\n";
    assert!(Config::from_toml_str(at_limit, ORIGIN).is_ok());
}

#[test]
fn remote_issuer_defaults() {
    let config = Config::from_toml_str(
        "[[issuer]]\nid = \"n\"\nname = \"N\"\nkind = \"remote\"\nendpoints = [\"10.0.0.1:9000\"]\n",
        ORIGIN,
    )
    .expect("valid");
    let issuer = &config.issuers[0];
    assert_eq!(issuer.connections_per_endpoint, 1);
    assert_eq!(issuer.timeout_ms, 2000);
    assert_eq!(issuer.inflight_max, 1024);
    assert_eq!(issuer.echo_idle_ms, 30_000);
    assert_eq!(issuer.reconnect_backoff_min_ms, 100);
    assert_eq!(issuer.reconnect_backoff_max_ms, 5000);
    assert_eq!(issuer.saf_retries_max, 10);
    assert_eq!(issuer.cards, None);
}

#[test]
fn unknown_fields_are_rejected_at_every_level() {
    let top = parse_error("colour = \"blue\"\n");
    assert!(top.contains("unknown field `colour`"), "{top}");
    assert!(top.contains("line 1"), "{top}");

    let section = parse_error("[listener]\naddress = \"127.0.0.1:1\"\nframe_bytes = 100\n");
    assert!(section.contains("unknown field `frame_bytes`"), "{section}");
    assert!(section.contains("line 3"), "{section}");
    assert!(section.contains("frame_bytes = 100"), "{section}");

    let nested = parse_error("[listener.framing]\nlength_header = \"ascii4\"\ntpdu_bytes = 5\n");
    assert!(nested.contains("unknown field `tpdu_bytes`"), "{nested}");

    let array =
        parse_error("[[issuer]]\nid = \"x\"\nname = \"X\"\nkind = \"on-us\"\ntimeout = 5\n");
    assert!(array.contains("unknown field `timeout`"), "{array}");

    for section in ["switch", "journal", "metrics"] {
        let message = parse_error(&format!("[{section}]\nbogus = 1\n"));
        assert!(
            message.contains("unknown field `bogus`"),
            "{section}: {message}"
        );
    }
    let acquirer = parse_error("[[acquirer]]\nid = \"1\"\nname = \"A\"\nbogus = 1\n");
    assert!(acquirer.contains("unknown field `bogus`"), "{acquirer}");
    let range = parse_error(
        "[[bin_range]]\nlow = \"400000\"\nhigh = \"400000\"\nissuer = \"a\"\nbogus = 1\n",
    );
    assert!(range.contains("unknown field `bogus`"), "{range}");
}

#[test]
fn bad_dialect_name_is_a_parse_error() {
    let message = parse_error("[listener]\ndialect = \"iso93-ascii\"\n");
    assert!(message.contains("line 2"), "{message}");
    assert!(message.contains("iso93-ascii"), "{message}");
    assert!(
        message.contains("iso87-ascii"),
        "lists the known dialects: {message}"
    );
    let display = ConfigError::Parse {
        file: ORIGIN.to_owned(),
        message,
    }
    .to_string();
    assert!(display.starts_with("test.toml: line 2"), "{display}");
}

#[test]
fn every_dialect_and_length_header_parses() {
    for dialect in DialectId::ALL {
        let text = format!("[listener]\ndialect = \"{}\"\n", dialect.name());
        assert_eq!(
            Config::from_toml_str(&text, ORIGIN)
                .expect("valid")
                .listener
                .dialect,
            dialect
        );
    }
    for header in [
        LengthHeader::Binary2Be,
        LengthHeader::Binary2Le,
        LengthHeader::Ascii4,
        LengthHeader::Bcd2,
    ] {
        let text = format!(
            "[listener.framing]\nlength_header = \"{}\"\n",
            length_header_name(header)
        );
        assert_eq!(
            Config::from_toml_str(&text, ORIGIN)
                .expect("valid")
                .listener
                .framing
                .length_header,
            header
        );
    }
}

#[test]
fn wrong_type_is_a_parse_error() {
    let message = parse_error("[[acquirer]]\nid = 100001\nname = \"A\"\n");
    assert!(message.contains("line 2"), "{message}");
    assert!(message.contains("string"), "{message}");
    let message = parse_error("[listener]\nframe_bytes_max = -1\n");
    assert!(message.contains("line 2"), "{message}");
}

#[test]
fn every_problem_is_reported_at_once() {
    let text = r#"
[listener]
address = "localhost"
frame_bytes_max = 10
connections_max = 0
accept_backlog_max = 70000

[listener.framing]
header_bytes = 65

[switch]
business_date_cutover = "24:00"
duplicate_entries_max = 0

[[acquirer]]
id = "12AB"
name = "Bad"

[[acquirer]]
id = "100001"
name = "One"

[[acquirer]]
id = "100001"
name = "Same"

[[issuer]]
id = "north"
name = "North"
kind = "remote"
reconnect_backoff_min_ms = 9000
saf_depth_max = 0

[[issuer]]
id = "north"
name = "Again"
kind = "on-us"
endpoints = ["127.0.0.1:1"]

[[bin_range]]
low = "400000"
high = "499999"
issuer = "north"

[[bin_range]]
low = "500000"
high = "50000"
issuer = "nobody"

[[bin_range]]
low = "41x111"
high = "411111"
issuer = "north"
"#;
    let problems = invalid(text);
    assert_eq!(
        keys(&problems),
        [
            "listener.address",
            "listener.frame_bytes_max",
            "listener.framing.header_bytes",
            "listener.connections_max",
            "listener.accept_backlog_max",
            "switch.duplicate_entries_max",
            "switch.business_date_cutover",
            "acquirer[0].id",
            "acquirer[2].id",
            "issuer[0].endpoints",
            "issuer[0].reconnect_backoff_min_ms",
            "issuer[0].saf_depth_max",
            "issuer[1].id",
            "issuer[1].endpoints",
            "bin_range[1].high",
            "bin_range[1].issuer",
            "bin_range[2].low",
        ],
        "{problems:#?}"
    );
    assert_eq!(problems.len(), 17);
    assert!(problems.iter().all(|p| p.file == ORIGIN));
    let last = problems.last().map(ToString::to_string);
    assert_eq!(
        last.as_deref(),
        Some("test.toml: bin_range[2].low: must be 6–11 digits")
    );

    // The error's Display lists them one per line.
    let display = ConfigError::Invalid(problems.clone()).to_string();
    assert_eq!(display.lines().count(), problems.len());
    assert!(
        display
            .lines()
            .zip(&problems)
            .all(|(line, p)| line == p.to_string())
    );
}

#[test]
fn acquirer_connection_policies() {
    let ok = Config::from_toml_str(
        r#"
[[acquirer]]
id = "100001"
name = "A"
connections_max = 4
allowed_sources = ["127.0.0.1", "10.0.0.0/8", "::1"]

[[acquirer]]
id = "100002"
name = "B"
"#,
        ORIGIN,
    )
    .expect("valid");
    assert_eq!(ok.acquirers[0].connections_max, Some(4));
    assert_eq!(ok.acquirers[1].connections_max, None);
    assert_eq!(ok.acquirers[1].allowed_sources, None);
    assert_round_trips(&ok);

    let problems = invalid(
        r#"
[listener]
requests_per_s_max = 0
requests_burst_max = 0

[[acquirer]]
id = "100001"
name = "A"
connections_max = 0
allowed_sources = []

[[acquirer]]
id = "100002"
name = "B"
allowed_sources = ["10.0.0.0/8", "localhost", "10.0.0.0/40"]
"#,
    );
    assert_eq!(
        keys(&problems),
        [
            "listener.requests_per_s_max",
            "listener.requests_burst_max",
            "acquirer[0].connections_max",
            "acquirer[0].allowed_sources",
            "acquirer[1].allowed_sources[1]",
            "acquirer[1].allowed_sources[2]",
        ],
        "{problems:#?}"
    );
}

#[test]
fn listener_tls_and_acquirer_identities() {
    // Cargo.toml stands in for the PEM files: validation checks that files exist, loading them
    // is the listener's job (and its errors are tested in `net::tls`).
    let ok = Config::from_toml_str(
        r#"
[listener.tls]
cert_file = "Cargo.toml"
key_file = "Cargo.toml"
client_ca_file = "Cargo.toml"

[[acquirer]]
id = "100001"
name = "A"
tls_identity = "acq-100001.example"
"#,
        ORIGIN,
    )
    .expect("valid");
    assert_eq!(
        ok.acquirers[0].tls_identity.as_deref(),
        Some("acq-100001.example")
    );
    assert_round_trips(&ok);
    assert_eq!(Config::default().listener.tls, None, "plain TCP by default");

    // Every problem at once, by key; without client_ca_file no identity can be checked.
    let problems = invalid(
        r#"
[listener.tls]
cert_file = "no-such-cert.pem"
key_file = "no-such-key.pem"

[[acquirer]]
id = "100001"
name = "A"
tls_identity = "*.example"

[[acquirer]]
id = "100002"
name = "B"
tls_identity = "acq.example"

[[acquirer]]
id = "100003"
name = "C"
tls_identity = "ACQ.example"
"#,
    );
    assert_eq!(
        keys(&problems),
        [
            "listener.tls.cert_file",
            "listener.tls.key_file",
            "acquirer[0].tls_identity",
            "acquirer[0].tls_identity",
            "acquirer[1].tls_identity",
            "acquirer[2].tls_identity",
            "acquirer[2].tls_identity",
        ],
        "{problems:#?}"
    );
    assert!(
        problems
            .iter()
            .any(|p| p.message.contains("duplicate of acquirer[1]")),
        "{problems:#?}"
    );
}

/// `[listener.tls] cipher_suites`: names rustls knows, each once, at least one TLS 1.3 suite;
/// every problem at once.
#[test]
fn listener_cipher_suites() {
    let ok = Config::from_toml_str(
        r#"
[listener.tls]
cert_file = "Cargo.toml"
key_file = "Cargo.toml"
cipher_suites = ["TLS13_CHACHA20_POLY1305_SHA256", "TLS13_AES_256_GCM_SHA384", "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256"]
"#,
        ORIGIN,
    )
    .expect("valid");
    let tls = ok.listener.tls.as_ref().expect("tls");
    assert_eq!(tls.cipher_suites.len(), 3);
    assert_round_trips(&ok);
    let problems = invalid(
        r#"
[listener.tls]
cert_file = "Cargo.toml"
key_file = "Cargo.toml"
cipher_suites = ["TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256", "TLS13_NULL_SHA256", "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256"]
"#,
    );
    assert_eq!(
        keys(&problems),
        ["listener.tls.cipher_suites"; 3],
        "{problems:#?}"
    );
    let messages: Vec<&str> = problems.iter().map(|p| p.message.as_str()).collect();
    assert!(
        messages[0].starts_with("unknown suite \"TLS13_NULL_SHA256\"; known: "),
        "{messages:?}"
    );
    assert!(
        messages[0].contains("TLS13_AES_128_GCM_SHA256"),
        "{messages:?}"
    );
    assert!(messages[1].contains("listed twice"), "{messages:?}");
    assert!(
        messages[2].contains("at least one TLS 1.3 suite"),
        "{messages:?}"
    );
}

#[test]
fn validate_reports_on_a_config_built_in_code() {
    let mut config = Config::default();
    assert_eq!(config.validate(ORIGIN), Ok(()));
    config.listener.framing.length_header = LengthHeader::Ascii4;
    config.listener.frame_bytes_max = 10_000;
    config.journal.group_commit_max = 0;
    config.journal.group_commit_delay_us = 10_001;
    config.journal.group_commit_delay_min_records = 0;
    config.metrics.address = config.listener.address.clone();
    let problems = config.validate(ORIGIN).expect_err("invalid");
    assert_eq!(
        keys(&problems),
        [
            "listener.frame_bytes_max",
            "journal.group_commit_max",
            "journal.group_commit_delay_us",
            "journal.group_commit_delay_min_records",
            "metrics.address"
        ]
    );
    assert!(problems[0].message.contains("9999"), "{}", problems[0]);
    assert!(problems[2].message.contains("10000"), "{}", problems[2]);

    config.listener.framing.length_header = LengthHeader::Bcd2;
    config.listener.frame_bytes_max = 9999;
    config.journal.group_commit_max = 2;
    config.journal.group_commit_delay_us = 10_000;
    config.journal.group_commit_delay_min_records = 1;
    config.metrics.enabled = false;
    assert_eq!(config.validate(ORIGIN), Ok(()));
    config.journal.group_commit_delay_min_records = 2;
    assert_eq!(
        keys(&config.validate(ORIGIN).expect_err("invalid")),
        ["journal.group_commit_delay_min_records"],
        "as many as a full batch never waits"
    );
}

#[test]
fn a_checkpoint_write_rate_is_unlimited_or_at_least_4_mib_per_s() {
    let mut config = Config::default();
    for ok in [0, 4, 32, u32::MAX] {
        config.journal.checkpoint_write_mib_per_s = ok;
        assert_eq!(config.validate(ORIGIN), Ok(()), "{ok}");
    }
    for slow in [1, 3] {
        config.journal.checkpoint_write_mib_per_s = slow;
        let problems = config.validate(ORIGIN).expect_err("too slow");
        assert_eq!(keys(&problems), ["journal.checkpoint_write_mib_per_s"]);
        assert!(
            problems[0].message.contains("at least 4"),
            "{}",
            problems[0]
        );
    }
}

#[test]
fn business_date_cutover_format() {
    for (text, minutes) in [
        ("00:00", Some(0)),
        ("23:59", Some(1439)),
        ("07:30", Some(450)),
    ] {
        assert_eq!(validate::parse_hh_mm(text), minutes, "{text}");
    }
    for text in [
        "24:00", "12:60", "7:30", "07:3", "0730", "07:30:00", "ab:cd", "", "+1:00", "０7:30",
    ] {
        assert_eq!(validate::parse_hh_mm(text), None, "{text}");
    }
}

#[test]
fn nested_bin_ranges_are_allowed() {
    let text = with_ranges(&[
        ("400000", "499999"),
        ("411111", "411111"),
        ("4111110000", "4111114999"), // inside 411111 (longer prefix)
        ("41111150", "41111199"),     // also inside 411111, beside the previous one
        ("500000", "599999"),
        ("51000000000", "51999999999"), // 11 digits, inside 500000–599999
    ]);
    let config = Config::from_toml_str(&text, ORIGIN);
    assert!(config.is_ok(), "{config:?}");
}

#[test]
fn partially_overlapping_bin_ranges_are_rejected() {
    let problems = invalid(&with_ranges(&[
        ("400000", "450000"),
        ("440000", "499999"),
        ("600000", "600000"),
    ]));
    assert_eq!(keys(&problems), ["bin_range[1]"]);
    assert_eq!(
        problems[0].message,
        "overlaps bin_range[0] (400000–450000) without either containing the other"
    );

    // Different lengths: 4500000–4599999 covers 450000..=459999, which crosses 400000–450000's end.
    let problems = invalid(&with_ranges(&[
        ("4500000", "4599999"),
        ("400000", "450000"),
    ]));
    assert_eq!(keys(&problems), ["bin_range[1]"]);
}

#[test]
fn identical_bin_ranges_are_rejected() {
    let problems = invalid(&with_ranges(&[
        ("411111", "411111"),
        ("622202", "622202"),
        ("411111", "411111"),
    ]));
    assert_eq!(keys(&problems), ["bin_range[2]"]);
    assert!(
        problems[0].message.contains("same PANs as bin_range[0]"),
        "{}",
        problems[0]
    );

    // Same coverage written at different lengths is identical too.
    let problems = invalid(&with_ranges(&[
        ("4111110", "4111119"),
        ("411111", "411111"),
    ]));
    assert_eq!(keys(&problems), ["bin_range[1]"]);
}

#[test]
fn malformed_bin_ranges() {
    let problems = invalid(&with_ranges(&[
        ("40000", "40000"),
        ("400000000000", "400000000000"),
        ("400000", "4000000"),
        ("499999", "400000"),
        ("４00000", "400000"),
    ]));
    assert_eq!(
        keys(&problems),
        [
            "bin_range[0].low",
            "bin_range[0].high",
            "bin_range[1].low",
            "bin_range[1].high",
            "bin_range[2].high",
            "bin_range[3].low",
            "bin_range[4].low",
        ]
    );
}

#[test]
fn overlap_check_scales_to_100k_ranges() {
    // 100k single-BIN ranges plus one enclosing range per 1000: all nested, no problems.
    let mut config = Config::default();
    config.issuers.push(IssuerConfig {
        id: "on-us".to_owned(),
        name: "On Us".to_owned(),
        kind: IssuerKind::OnUs,
        endpoints: Vec::new(),
        connections_per_endpoint: 1,
        timeout_ms: 1,
        inflight_max: 1,
        echo_idle_ms: 1,
        reconnect_backoff_min_ms: 1,
        reconnect_backoff_max_ms: 1,
        saf_retries_max: 1,
        saf_depth_max: 1,
        dialect: DialectId::default(),
        framing: FramingConfig::default(),
        frame_bytes_max: 8192,
        cards: None,
        mac_key: None,
        pin_key: None,
        tls: None,
    });
    let range = |low: u64, high: u64| BinRangeConfig {
        low: low.to_string(),
        high: high.to_string(),
        issuer: "on-us".to_owned(),
        product: None,
    };
    for block in 0..100u64 {
        let base = 400_000 + block * 1000;
        config.bin_ranges.push(range(base, base + 999));
    }
    for bin in (400_000..500_000u64).rev() {
        config.bin_ranges.push(range(bin, bin));
    }
    let started = std::time::Instant::now();
    assert_eq!(config.validate(ORIGIN), Ok(()));

    // One partial overlap among them is found.
    config.bin_ranges.push(range(400_500, 401_500));
    let problems = config.validate(ORIGIN).expect_err("overlap");
    assert_eq!(keys(&problems), ["bin_range[100100]"]);
    assert!(
        started.elapsed() < std::time::Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn remote_and_on_us_issuer_rules() {
    let text = r#"
[[issuer]]
id = "r"
name = "R"
kind = "remote"
endpoints = ["127.0.0.1:1", "host.example:2", "127.0.0.1:1"]
timeout_ms = 0
cards = "cards.toml"

[[issuer]]
id = "bad id!"
name = ""
kind = "on-us"
cards = "cards.toml"
"#;
    let problems = invalid(text);
    assert_eq!(
        keys(&problems),
        [
            "issuer[0].endpoints[1]",
            "issuer[0].endpoints[2]",
            "issuer[0].timeout_ms",
            "issuer[0].cards",
            "issuer[1].id",
            "issuer[1].name",
        ],
        "{problems:#?}"
    );
}

#[test]
fn re_serialized_config_round_trips() {
    let config = Config::load(&shipped_config_path()).expect("shipped config loads");
    let text = config.to_toml_string().expect("serializes");
    let again =
        Config::from_toml_str(&text, "re-serialized").unwrap_or_else(|err| panic!("{err}\n{text}"));
    assert_eq!(again, config);
    assert!(text.contains("dialect = \"iso87-ascii\""), "{text}");
    assert!(text.contains("length_header = \"binary2-be\""), "{text}");
}

#[test]
fn missing_file_is_an_io_error() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("no/such/switch.toml");
    match Config::load(&path) {
        Err(err @ ConfigError::Io { .. }) => {
            assert!(err.to_string().contains("no/such/switch.toml"), "{err}")
        }
        other => panic!("expected an I/O error, got {other:?}"),
    }
}

#[test]
fn clearing_section_and_bin_range_products() {
    let config = Config::load(&shipped_config_path()).expect("shipped config");
    assert_eq!(config.clearing, ClearingConfig::default());
    let products: Vec<_> = config.bin_ranges.iter().map(|r| r.product).collect();
    use crate::domain::Product;
    assert_eq!(
        products,
        vec![
            Some(Product::Credit),
            Some(Product::Debit),
            Some(Product::Prepaid)
        ]
    );
    let problems = invalid(
        "[clearing]\nreports_dir = \"\"\nfees_file = \"\"\nhold_expiry_h = 0\n\
         lookback_days = 0\ncarried_closed_max = 0\ncutover_delay_s = 86400\n",
    );
    assert_eq!(
        keys(&problems),
        vec![
            "clearing.reports_dir",
            "clearing.fees_file",
            "clearing.hold_expiry_h",
            "clearing.lookback_days",
            "clearing.carried_closed_max",
            "clearing.cutover_delay_s",
        ]
    );
    let message = parse_error(
        "[[issuer]]\nid = \"a\"\nname = \"A\"\nkind = \"on-us\"\n\
         [[bin_range]]\nlow = \"411111\"\nhigh = \"411111\"\nissuer = \"a\"\nproduct = \"charge\"\n",
    );
    assert!(message.contains("charge"), "{message}");
}

#[test]
fn key_ids_must_parse_and_fit_their_setting() {
    let problems = invalid(
        r#"
[[acquirer]]
id = "100001"
name = "A"
mac_key = "acquirer:100001:zpk"
pin_key = "acquirer:100001"
bdk = ["bdk:test-tdes", "acquirer:100001:mac"]

[[issuer]]
id = "r"
name = "R"
kind = "remote"
endpoints = ["127.0.0.1:9000"]
mac_key = "issuer:r:mac"
pin_key = "bdk:x"

[[issuer]]
id = "o"
name = "O"
kind = "on-us"
pin_key = "issuer:o:zpk"
"#,
    );
    assert_eq!(
        keys(&problems),
        [
            "acquirer[0].mac_key",
            "acquirer[0].pin_key",
            "acquirer[0].bdk[1]",
            "issuer[0].pin_key",
            "issuer[1].pin_key",
        ]
    );
    let text: Vec<String> = problems.iter().map(ToString::to_string).collect();
    assert!(
        text[0].contains("acquirer:100001:zpk is not a MAC key"),
        "{text:?}"
    );
    assert!(text[1].contains("not a key id"), "{text:?}");
    assert!(text[2].contains("is not a base derivation key"), "{text:?}");
    assert!(text[3].contains("bdk:x is not a zone PIN key"), "{text:?}");
    assert!(
        text[4].contains("only a remote issuer has link keys"),
        "{text:?}"
    );
}

#[test]
fn the_shipped_config_names_its_keys() {
    let config = Config::load(&shipped_config_path()).expect("loads");
    let a = |id: &str| {
        config
            .acquirers
            .iter()
            .find(|a| a.id == id)
            .expect("acquirer")
    };
    assert_eq!(a("100002").mac_key.as_deref(), Some("acquirer:100002:mac"));
    assert_eq!(a("100001").mac_key, None);
    assert_eq!(a("100001").bdk, ["bdk:test-tdes", "bdk:test-aes"]);
    for i in config
        .issuers
        .iter()
        .filter(|i| i.kind == IssuerKind::Remote)
    {
        assert_eq!(
            i.pin_key.as_deref(),
            Some(format!("issuer:{}:zpk", i.id).as_str()),
            "{}",
            i.id
        );
    }
}

#[test]
fn scheduling_is_batch_or_normal_and_anything_else_is_named() {
    let normal = Config::from_toml_str("[switch]\nscheduling = \"normal\"\n", ORIGIN)
        .expect("normal is a policy");
    assert_eq!(normal.switch.scheduling, crate::process::Scheduling::Normal);
    let err = Config::from_toml_str("[switch]\nscheduling = \"realtime\"\n", ORIGIN)
        .expect_err("realtime is not offered");
    let text = err.to_string();
    assert!(
        text.contains("scheduling") && text.contains("batch") && text.contains("normal"),
        "{text}"
    );
}
