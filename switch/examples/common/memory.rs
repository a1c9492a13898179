//! What the memory examples (`record_memory`, `checkpoint_memory`, `snapshot_cost`) share: the
//! process's memory as `/proc/self/status` gives it, the idempotency keys of their stream of
//! requests, and their positional arguments.

use chrono::NaiveDateTime;
use switch::domain::{AcquirerId, Stan, TerminalId, TransmissionDateTime};
use switch::issuing::IdemKey;

/// A `/proc/self/status` line in bytes (`"VmRSS:"`, `"VmHWM:"`); 0 where it cannot be read.
pub fn status_bytes(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// Gives the memory the allocator holds freed back to the system, so that a reading of the
/// resident size that follows counts only what is in use. Without it, what building an engine
/// freed (its issuer file, parsed) was given back in some runs and kept in others, and the kept
/// part, reused for records later, put the "before" reading of the same 100,000-account engine at
/// 110 MB in some runs and 577 MB in others.
#[allow(dead_code)] // Not every example that includes this file uses it.
pub fn release_freed() {
    unsafe extern "C" {
        fn mi_collect(force: bool);
    }
    // SAFETY: mimalloc's own collection, linked through `libmimalloc-sys` (the examples'
    // global allocator, `switch::alloc`); it takes no pointer and may be called at any time.
    unsafe { mi_collect(true) }
}

/// When the first request is sent; the examples send one a millisecond after it, so that all
/// stay inside the retry window and none is pruned.
pub fn start() -> NaiveDateTime {
    chrono::NaiveDate::from_ymd_opt(2026, 11, 25)
        .and_then(|d| d.and_hms_opt(12, 0, 0))
        .expect("now")
}

/// Request `i`'s key, sent at `t`: a STAN of its own, a new terminal every 999,999 requests.
pub fn key(i: u64, t: NaiveDateTime) -> IdemKey {
    IdemKey::new(
        AcquirerId::parse("100001").expect("acq"),
        TerminalId::from_field(format!("T{:07}", i / 999_999).as_bytes()).expect("tid"),
        Stan::new((i % 999_999 + 1) as u32).expect("stan"),
        TransmissionDateTime::from_datetime(t),
    )
}

/// The next positional argument, or `default` when it is missing or does not parse.
#[allow(dead_code)] // Not every example that includes this file uses it.
pub fn arg<T: std::str::FromStr>(args: &mut impl Iterator<Item = String>, default: T) -> T {
    args.next().and_then(|a| a.parse().ok()).unwrap_or(default)
}
