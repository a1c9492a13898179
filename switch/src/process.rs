//! Process-wide settings the binaries (`switch`, `issuer-sim`, `loadgen`) apply once, early in
//! `main`, before any thread starts or any state is loaded.
//!
//! **Owns:** what this process asks of the kernel about its own memory (no transparent huge
//! pages) and about how its threads are scheduled ([`Scheduling`]).
//!
//! **Leaves to others:** the allocator itself (mimalloc, [`crate::alloc`], chosen in each binary), everything
//! about what the memory holds, and which setting to use (the switch's `[switch] scheduling`,
//! the simulators' `--scheduling`).
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
//!
//! **Why batch scheduling by default:** a thread that writes to a socket or completes a journal
//! batch wakes another thread (the peer's reader, a tokio worker). Under Linux's default policy
//! the woken thread usually takes the core at once, and the writer is switched out in the middle
//! of its batch. `SCHED_BATCH` threads do not preempt on waking: each runs until it blocks or its
//! time slice ends, so a batch of answers goes out in one go and a busy core switches far less.
//! Measured on the benchmark machine with the switch and the issuer hosts in batch (and the load
//! client not): on the remote path 13–18% less switch CPU per answer and 20–30% more throughput in
//! closed loop, and at 20,000 requests/s on the whole mix a p50 of 1.5–1.7 ms against 3.2–3.8 ms
//! (docs/performance.md, "Batch scheduling"). The cost is the flip side: a switch thread that
//! wakes while another process's thread runs on every core waits for that thread's slice (a few
//! milliseconds at most) instead of taking the core. On a machine given to the switch that case
//! is rare; where the switch shares its cores with other busy programs, `normal` is the choice.
//! Measured costs: at light load (3,000 on-us requests/s) the switch spent a fifth more CPU per
//! answer and its p50 grew by 30 µs, since a woken thread more often moves to the other, idle
//! core. (On the remote path at half its higher maximum, about 32,000/s, the issuer hosts'
//! checkpoints stall answers for about 230 ms once per run. The hosts' policy is not the cause:
//! with them in normal it stalled as long at 29,500/s, and with every process in normal,
//! 32,000/s gave a p99 of 109–168 ms against batch's 39 ms.)

use std::io;

use serde::{Deserialize, Serialize};

/// How the kernel schedules this process's threads against the other threads on its cores
/// (`[switch] scheduling`, `--scheduling` on the simulators).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Scheduling {
    /// `SCHED_BATCH`: a thread that wakes does not preempt the one running on its core; it runs
    /// when that thread blocks or its time slice ends (or at once on an idle core).
    #[default]
    Batch,
    /// `SCHED_OTHER`, the kernel's default: a thread that wakes usually preempts the running one.
    Normal,
}

impl Scheduling {
    /// The name the config and the command lines use.
    pub fn as_str(self) -> &'static str {
        match self {
            Scheduling::Batch => "batch",
            Scheduling::Normal => "normal",
        }
    }
}

/// Sets the scheduling policy of the calling thread; threads it starts afterwards inherit it
/// (Linux only: elsewhere it does nothing). So call it before the async runtime and the journal
/// threads start. Moving between these two policies needs no privilege (the nice value stays
/// as it is), so an error means a sandbox refused the call, or the process was started in
/// `SCHED_IDLE`, which it cannot leave without privilege.
pub fn set_scheduling(scheduling: Scheduling) -> io::Result<()> {
    #[cfg(target_os = "linux")]
    set_policy(match scheduling {
        Scheduling::Batch => libc::SCHED_BATCH,
        Scheduling::Normal => libc::SCHED_OTHER,
    })?;
    #[cfg(not(target_os = "linux"))]
    let _ = scheduling;
    Ok(())
}

/// Sets the calling thread's policy to `policy`, one of those that take priority 0
/// (`SCHED_OTHER`, `SCHED_BATCH`, `SCHED_IDLE`).
#[cfg(target_os = "linux")]
fn set_policy(policy: libc::c_int) -> io::Result<()> {
    let param = libc::sched_param { sched_priority: 0 };
    // SAFETY: pid 0 is the calling thread; `param` is a valid sched_param that outlives the
    // call, and priority 0 is the only one these policies take.
    if unsafe { libc::sched_setscheduler(0, policy, &param) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// How low a background thread of its own runs ([`background_cpu_priority`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Background {
    /// Nice 19 in the process's policy. For work that takes locks the request path also takes
    /// (freezing accounts, copying the store-and-forward queue): preempted there, it is still
    /// given a share of a core soon, so a worker waiting on that lock waits a slice at most.
    Low,
    /// `SCHED_IDLE` (nice 19 too, which counts only if the policy call fails). For work that
    /// holds no lock the request path needs (encoding and writing a checkpoint file): every
    /// other thread, batch included, preempts it on waking, where a waking batch thread never
    /// preempts a nice-19 one and would wait for its slice. Not for lock holders: under load an
    /// idle-policy thread preempted inside a lock may not run again for a long time.
    Idle,
}

/// Lowers the calling thread's CPU priority for background work (Linux only; elsewhere it does
/// nothing). Meant for a thread of its own that ends with its work
/// (`crate::journal::in_background`): without `CAP_SYS_NICE`, or an `RLIMIT_NICE` that allows
/// it, a thread cannot raise either back. Errors are ignored: the thread then keeps what it had,
/// which still runs the work, at the priority of the rest of the process.
pub fn background_cpu_priority(level: Background) {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: setpriority reads no memory of ours; `who` 0 is the calling thread only.
        let _ = unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, 19) };
        if level == Background::Idle {
            let _ = set_policy(libc::SCHED_IDLE);
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = level;
}

/// [`set_scheduling`] as the binaries call it: a refusal is logged, and the process runs on
/// with the policy it has.
pub fn set_scheduling_or_warn(scheduling: Scheduling) {
    match set_scheduling(scheduling) {
        Ok(()) => tracing::info!(scheduling = scheduling.as_str(), "thread scheduling set"),
        Err(e) => tracing::warn!(
            error = %e,
            scheduling = scheduling.as_str(),
            "cannot set the thread scheduling policy; running with the one inherited"
        ),
    }
}

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

    /// The policy reaches the threads started after it is set, and can be set back: the test
    /// runs in a thread of its own so the test harness's threads keep theirs.
    #[test]
    #[cfg(target_os = "linux")]
    fn a_thread_started_after_the_policy_is_set_inherits_it() {
        fn policy() -> i32 {
            // SAFETY: pid 0 is the calling thread; the call only reads its policy.
            unsafe { libc::sched_getscheduler(0) }
        }
        std::thread::spawn(|| {
            set_scheduling(Scheduling::Batch).expect("SCHED_BATCH");
            assert_eq!(policy(), libc::SCHED_BATCH);
            let child = std::thread::spawn(policy).join().expect("child thread");
            assert_eq!(child, libc::SCHED_BATCH, "a later thread inherits batch");
            set_scheduling(Scheduling::Normal).expect("back to SCHED_OTHER");
            assert_eq!(policy(), libc::SCHED_OTHER);
            let child = std::thread::spawn(policy).join().expect("child thread");
            assert_eq!(child, libc::SCHED_OTHER, "and normal after it is set back");
        })
        .join()
        .expect("test thread");
    }

    /// `Low` keeps the process's policy at nice 19; `Idle` takes the idle policy.
    #[test]
    #[cfg(target_os = "linux")]
    fn background_threads_run_at_nice_19_and_idle_only_when_asked() {
        for (level, expected) in [
            (Background::Low, libc::SCHED_BATCH),
            (Background::Idle, libc::SCHED_IDLE),
        ] {
            std::thread::spawn(move || {
                set_scheduling(Scheduling::Batch).expect("SCHED_BATCH");
                background_cpu_priority(level);
                // SAFETY: pid 0 is the calling thread; the call only reads its policy.
                assert_eq!(
                    unsafe { libc::sched_getscheduler(0) },
                    expected,
                    "{level:?}"
                );
                // SAFETY: getpriority reads no memory of ours; `who` 0 is the calling thread.
                assert_eq!(unsafe { libc::getpriority(libc::PRIO_PROCESS, 0) }, 19);
            })
            .join()
            .expect("test thread");
        }
    }

    #[test]
    fn the_names_are_those_of_the_config() {
        for s in [Scheduling::Batch, Scheduling::Normal] {
            let text = toml::to_string(&std::collections::BTreeMap::from([("s", s)])).unwrap();
            assert_eq!(text.trim(), format!("s = \"{}\"", s.as_str()));
        }
        assert_eq!(Scheduling::default(), Scheduling::Batch);
    }
}
