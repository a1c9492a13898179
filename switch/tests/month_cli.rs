//! The `switch` binary's month commands end to end: `switch demo --days 29` writes journals,
//! reports and statements into a folder and prints a credit statement and a settlement report;
//! then `switch statements` closes the on-us issuer's (Metro Pay's) cycle ending 2026-05-31 on
//! that switch journal: a dry run posts nothing, a real run posts once, a second run posts
//! nothing and writes the same files, and the refusals (a remote issuer, a cycle not over, a
//! journal held by a live process).
//!
//! The commands run from the workspace root, where `config/switch.toml`'s relative paths
//! (issuer files, keys, fees) resolve.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_owned()
}

fn switch(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_switch"))
        .current_dir(root())
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .expect("switch runs")
}

fn text(o: &Output) -> String {
    format!(
        "{}\n--- stderr ---\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn records(journal: &Path) -> usize {
    switch::journal::read_all(journal).expect("journal").len()
}

#[test]
fn a_demo_month_then_on_us_statements_from_the_switch_journal() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("month");
    let out_s = out.to_str().expect("utf-8 path");

    // 29 days: 2026-05-02..05-30. North Bank's cycles close on 05-05 and 05-20 (NB-0004's, the
    // statement shown); the calendar-month cycles of 05-31 are left to `switch statements`.
    let demo = switch(&["demo", "--days", "29", "--out", out_s]);
    assert!(demo.status.success(), "{}", text(&demo));
    let shown = text(&demo);
    assert!(
        shown.contains("==== credit statement NB-0004 of North Bank, 2026-04-21 to 2026-05-20"),
        "{shown}"
    );
    assert!(
        shown.contains("New balance                            60.07"),
        "{shown}"
    );
    assert!(
        shown.contains("Settlement, business day 2026-05-30"),
        "{shown}"
    );
    assert!(out.join("reports/2026-05-30/settlement.csv").exists());
    assert!(
        out.join("reports/statements/north-bank/2026-05-20/NB-0004.html")
            .exists()
    );

    // The default configuration, pointed at the demo's switch journal and reports.
    let journal = out.join("journals/switch");
    let config_text = read(&root().join("config/switch.toml"))
        .replace(
            "dir = \"data/journal\"",
            &format!("dir = {:?}", journal.to_str().expect("utf-8")),
        )
        .replace(
            "reports_dir = \"reports\"",
            &format!(
                "reports_dir = {:?}",
                out.join("reports").to_str().expect("utf-8")
            ),
        );
    let config = dir.path().join("switch.toml");
    std::fs::write(&config, config_text).expect("config");
    let cfg = config.to_str().expect("utf-8");
    let statements = |extra: &[&str]| {
        let mut args = vec!["--config", cfg, "statements"];
        args.extend_from_slice(extra);
        switch(&args)
    };

    // Refusals: a remote issuer, a cycle that is not over.
    let run = statements(&["--cycle-end", "2026-05-31", "--issuer", "north-bank"]);
    assert_eq!(run.status.code(), Some(2), "{}", text(&run));
    assert!(text(&run).contains("not an on-us issuer"), "{}", text(&run));
    let run = statements(&["--cycle-end", "2999-01-31"]);
    assert_eq!(run.status.code(), Some(2), "{}", text(&run));

    // A live process holding the switch's pid file (this test's) keeps statements out.
    let pid_file = journal.join("switch.pid");
    std::fs::write(&pid_file, format!("{}\n", std::process::id())).expect("pid");
    let run = statements(&["--cycle-end", "2026-05-31"]);
    assert_eq!(run.status.code(), Some(1), "{}", text(&run));
    assert!(
        text(&run).contains("is using this journal"),
        "{}",
        text(&run)
    );
    std::fs::remove_file(&pid_file).expect("remove pid");

    // A dry run previews and posts nothing.
    let before = records(&journal);
    let dry = dir.path().join("dry");
    let run = statements(&[
        "--cycle-end",
        "2026-05-31",
        "--dry-run",
        "--out",
        dry.to_str().expect("utf-8"),
    ]);
    assert!(run.status.success(), "{}", text(&run));
    assert_eq!(
        text(&run).matches("[preview, not posted]").count(),
        2,
        "{}",
        text(&run)
    );
    assert_eq!(records(&journal), before);

    // The real run posts Metro Pay's two closes (prepaid: no charges, but the cycle closes).
    // MP-0001 opened May at 200.00, bought 2.00 on every other day from 05-02 to 05-30 (15
    // days, 30.00) and loaded 50.00 on 05-10: it closes at 220.00.
    let run = statements(&["--cycle-end", "2026-05-31", "--issuer", "metro-pay"]);
    assert!(run.status.success(), "{}", text(&run));
    let printed = text(&run);
    assert_eq!(printed.matches("[posted]").count(), 2, "{printed}");
    assert!(
        printed.contains(
            "MP-0001      prepaid  2026-05-01..2026-05-31  opening 200.00 CNY  credits 50.00 CNY  debits 30.00 CNY  closing 220.00 CNY"
        ),
        "{printed}"
    );
    assert_eq!(records(&journal), before + 2);
    assert!(!pid_file.exists(), "the pid file is removed after the run");
    let files = out.join("reports/statements/metro-pay/2026-05-31");
    let json: serde_json::Value =
        serde_json::from_str(&read(&files.join("MP-0001.json"))).expect("json");
    assert_eq!(json["summary"]["closing_balance"], "220.00");
    assert!(read(&files.join("MP-0001.html")).contains("id=\"closing-balance\""));
    // The dry run's preview showed the same statement.
    assert_eq!(
        read(&dry.join("metro-pay/2026-05-31/MP-0001.txt")),
        read(&files.join("MP-0001.txt"))
    );

    // Again: nothing posted, the same statements.
    let first: Vec<String> = ["txt", "json", "csv", "html"]
        .iter()
        .map(|e| read(&files.join(format!("MP-0001.{e}"))))
        .collect();
    let run = statements(&["--cycle-end", "2026-05-31"]);
    assert!(run.status.success(), "{}", text(&run));
    assert_eq!(
        text(&run).matches("[already posted]").count(),
        2,
        "{}",
        text(&run)
    );
    assert_eq!(records(&journal), before + 2);
    for (e, was) in ["txt", "json", "csv", "html"].iter().zip(first) {
        assert_eq!(read(&files.join(format!("MP-0001.{e}"))), was, "{e}");
    }
}
