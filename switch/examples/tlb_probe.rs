//! What a TLB miss costs on this machine: `cargo run --release -p switch --example tlb_probe --
//! [MIB...]` (default 16 64 256).
//!
//! The switch's hot tables (the duplicate window, the issuing engine's cards, accounts and
//! records) are tens to hundreds of MiB read at random, and every binary turns transparent huge
//! pages off (`switch::process`), so each such read may miss the TLB as well as the cache. This
//! measures that share directly, with nothing of the switch in it: for each size it maps an
//! anonymous region, advises it `MADV_NOHUGEPAGE` (4 KiB pages) or `MADV_HUGEPAGE` (2 MiB), touches
//! every page, then times
//! - independent loads at random 64-byte lines (the processor may overlap them), and
//! - a pointer chase over a random cyclic order of every line (each load waits for the one
//!   before, as a chain of hash-table probes does).
//!
//! It prints nanoseconds per load for both page sizes and the process's `AnonHugePages` (the
//! region is most of it), which says whether the kernel really gave huge pages (it may not, with
//! THP set to `never`). Linux only.
//! docs/performance.md ("Huge pages for the hot tables: measured, not adopted") has the figures.

#[cfg(target_os = "linux")]
fn main() {
    // 1 MiB to 64 GiB: a region of at least one huge page, and sizes whose byte counts and line
    // indices (u32) cannot overflow.
    let sizes: Vec<usize> = std::env::args()
        .skip(1)
        .map(|a| match a.parse::<usize>() {
            Ok(m) if (1..=65_536).contains(&m) => m,
            _ => panic!("sizes in MiB, 1 to 65536 (not {a:?})"),
        })
        .collect();
    let sizes = if sizes.is_empty() {
        vec![16, 64, 256]
    } else {
        sizes
    };
    println!("| MiB | pages | AnonHugePages KiB | independent ns/load | chained ns/load |");
    println!("|---:|---|---:|---:|---:|");
    for mib in sizes {
        for huge in [false, true] {
            let r = probe(mib << 20, huge);
            println!(
                "| {mib} | {} | {} | {:.1} | {:.1} |",
                if huge { "2 MiB" } else { "4 KiB" },
                r.anon_huge_kib,
                r.independent_ns,
                r.chained_ns
            );
        }
    }
}

#[cfg(not(target_os = "linux"))]
fn main() {
    eprintln!("tlb_probe: Linux only");
}

#[cfg(target_os = "linux")]
struct Probe {
    anon_huge_kib: u64,
    independent_ns: f64,
    chained_ns: f64,
}

/// An anonymous private mapping, unmapped when dropped (a panic included).
#[cfg(target_os = "linux")]
struct Mapping {
    raw: *mut libc::c_void,
    len: usize,
}

#[cfg(target_os = "linux")]
impl Mapping {
    fn new(len: usize) -> Mapping {
        // SAFETY: a fresh anonymous private mapping; nothing else refers to it.
        let raw = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        assert!(raw != libc::MAP_FAILED, "mmap of {len} bytes");
        Mapping { raw, len }
    }

    /// `bytes` bytes of it from its first 2 MiB boundary, advised `advice`, as words.
    fn words(&mut self, bytes: usize, advice: libc::c_int) -> &mut [u64] {
        let start = (self.raw as usize).next_multiple_of(ALIGN);
        assert!(
            start + bytes <= self.raw as usize + self.len,
            "region inside the mapping"
        );
        // SAFETY: the range lies inside this mapping (checked above).
        let rc = unsafe { libc::madvise(start as *mut libc::c_void, bytes, advice) };
        assert_eq!(rc, 0, "madvise");
        // SAFETY: `start..start + bytes` is inside the mapping, readable, writable and 2 MiB
        // aligned (enough for u64); fresh pages read as zeros, a valid u64. The slice borrows
        // `self` mutably, so it cannot outlive the mapping or alias another view of it.
        unsafe { std::slice::from_raw_parts_mut(start as *mut u64, bytes / 8) }
    }
}

#[cfg(target_os = "linux")]
impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly the mapping `new` made; no slice of it outlives `self`.
        let rc = unsafe { libc::munmap(self.raw, self.len) };
        debug_assert_eq!(rc, 0, "munmap");
    }
}

/// Huge pages are 2 MiB: the region starts on such a boundary.
#[cfg(target_os = "linux")]
const ALIGN: usize = 2 << 20;

#[cfg(target_os = "linux")]
fn probe(bytes: usize, huge: bool) -> Probe {
    use std::time::Instant;
    const LINE: usize = 64;
    let mut mapping = Mapping::new(bytes.checked_add(ALIGN).expect("size fits"));
    let advice = if huge {
        libc::MADV_HUGEPAGE
    } else {
        libc::MADV_NOHUGEPAGE
    };
    let mem = mapping.words(bytes, advice);
    mem.fill(1);
    let lines = bytes / LINE;
    let words_per_line = LINE / 8;

    let mut rng = fastrand::Rng::with_seed(0x5eed);
    let loads = 20_000_000usize;
    let mut sum = 0u64;
    let t = Instant::now();
    for _ in 0..loads {
        sum = sum.wrapping_add(mem[rng.usize(..lines) * words_per_line]);
    }
    let independent_ns = t.elapsed().as_nanos() as f64 / loads as f64;

    // A random cycle through every line: each line's first word holds the next line's index.
    let mut order: Vec<u32> = (0..lines as u32).collect();
    rng.shuffle(&mut order);
    for (i, &line) in order.iter().enumerate() {
        mem[line as usize * words_per_line] = u64::from(order[(i + 1) % lines]);
    }
    drop(order);
    let chain = 5_000_000usize;
    let mut at = 0usize;
    let t = Instant::now();
    for _ in 0..chain {
        at = mem[at * words_per_line] as usize;
    }
    let chained_ns = t.elapsed().as_nanos() as f64 / chain as f64;
    std::hint::black_box((sum, at));

    Probe {
        anon_huge_kib: anon_huge_pages_kib(),
        independent_ns,
        chained_ns,
    }
}

/// The process's `AnonHugePages` (KiB), from `/proc/self/smaps_rollup`.
#[cfg(target_os = "linux")]
fn anon_huge_pages_kib() -> u64 {
    std::fs::read_to_string("/proc/self/smaps_rollup")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("AnonHugePages:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}
