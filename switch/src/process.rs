//! Process-wide settings the binaries (`switch`, `issuer-sim`, `loadgen`) apply once, first
//! thing in `main`, before any thread starts or any state is loaded.
//!
//! **Owns:** what this process asks of the kernel about its own memory: today, no transparent
//! huge pages.
//!
//! **Leaves to others:** the allocator itself (mimalloc, chosen in each binary) and everything
//! about what the memory holds.
//!
//! **Why no transparent huge pages:** mimalloc advises the kernel (`MADV_HUGEPAGE`) to back its
//! segments with 2 MiB pages. The first touch of such a page zeroes all 2 MiB inside one page
//! fault, on whichever thread touched it: a tokio worker in the middle of a request. On the
//! benchmark machine (a VM whose host backs guest memory lazily) one such fault took 3–31 ms, and
//! every request queued behind that worker waited with it. State that grows with traffic (the
//! duplicate window, the issuing engine's idempotency records) touches fresh memory all the time,
//! so at 3,000 requests/s on-us these faults were nearly all of the latency tail: p99 1.0–2.4 ms
//! with them, 0.52–0.54 ms without (docs/performance.md, "Huge-page faults"). Closed-loop
//! throughput and CPU per answer moved within run-to-run noise. Databases and caches give the
//! same advice for the same reason; with 4 KiB pages the same zeroing is spread over many small
//! faults instead of one long stop.

/// Asks the kernel never to back this process's memory with transparent huge pages
/// (`prctl(PR_SET_THP_DISABLE)`, Linux only; inherited by child processes). Pages already huge
/// stay so, which is why this must run before the process allocates much. On other systems it
/// does nothing.
///
/// An error means the kernel refused (a kernel without the call): the process still runs, with
/// the allocator's default, and the caller should say so in its log.
pub fn disable_transparent_huge_pages() -> std::io::Result<()> {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: PR_SET_THP_DISABLE takes one integer argument (1 = disable) and the rest must
        // be zero; it changes a flag of this process's memory map and touches no user memory.
        let rc = unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0) };
        if rc != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

/// [`disable_transparent_huge_pages`] as each binary calls it first thing in `main`: a kernel
/// that refuses is logged, and the process runs on with the allocator's default.
pub fn disable_transparent_huge_pages_or_warn() {
    if let Err(e) = disable_transparent_huge_pages() {
        tracing::warn!(error = %e, "cannot disable transparent huge pages; page faults may pause requests for milliseconds");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The call takes effect: the kernel reports the process's flag set afterwards. (It is
    /// process-wide and only ever set, never cleared, so running it inside the test process is
    /// harmless to the other tests.)
    #[test]
    #[cfg(target_os = "linux")]
    fn disabling_huge_pages_sets_the_process_flag() {
        disable_transparent_huge_pages().expect("prctl(PR_SET_THP_DISABLE)");
        // SAFETY: PR_GET_THP_DISABLE takes no arguments (all zero) and returns 0 or 1.
        let disabled = unsafe { libc::prctl(libc::PR_GET_THP_DISABLE, 0, 0, 0, 0) };
        assert_eq!(disabled, 1);
    }
}
