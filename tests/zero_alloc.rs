//! Decoding allocates nothing: a counting global allocator watches `decode` of the sample 0100 and
//! 0110 in `iso87-ascii`, and reading every field (which returns slices of the frame).
//!
//! This file is its own test binary so that the counting allocator sees nothing else.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::BytesMut;
use switch::iso8583::{ISO87_ASCII, decode, samples};

struct Counting;
static ALLOCS: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    /// Only the measuring thread's allocations count: the test harness allocates on its own
    /// threads (spawning tests, printing results) at any moment.
    static COUNTING: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Runs `f` with this thread's allocations counted; returns how many there were.
fn count_allocations(f: impl FnOnce()) -> usize {
    let before = ALLOCS.load(Ordering::SeqCst);
    COUNTING.with(|c| c.set(true));
    f();
    COUNTING.with(|c| c.set(false));
    ALLOCS.load(Ordering::SeqCst) - before
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if COUNTING.with(|c| c.get()) {
            ALLOCS.fetch_add(1, Ordering::SeqCst);
        }
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

#[test]
fn decode_and_field_reads_allocate_nothing() {
    let mut frames = Vec::new();
    for b in [
        samples::auth_request(&ISO87_ASCII),
        samples::auth_response(&ISO87_ASCII),
    ] {
        let mut buf = BytesMut::new();
        b.encode(&mut buf).expect("encode");
        // As the framing layer does: the frame is split off a shared read buffer.
        frames.push(buf.freeze());
    }
    let mut total_len = 0usize;
    let allocations = count_allocations(|| {
        for frame in &frames {
            let m = decode(&ISO87_ASCII, frame.clone()).expect("decode");
            for n in m.field_numbers() {
                let f = m.field(n).expect("present");
                total_len += f.wire().len();
                total_len += m.get(n).map(|c| c.len()).unwrap_or(0);
            }
        }
    });
    assert!(total_len > 300, "fields were actually read");
    assert_eq!(allocations, 0, "decode allocated");
}

#[test]
fn encoding_into_a_reused_buffer_allocates_nothing() {
    let mut buf = BytesMut::with_capacity(1024);
    let allocations = count_allocations(|| {
        for _ in 0..10 {
            buf.clear();
            samples::auth_response(&ISO87_ASCII)
                .encode(&mut buf)
                .expect("encode");
        }
    });
    assert_eq!(buf.len(), 129);
    assert_eq!(allocations, 0, "encode allocated");
}
