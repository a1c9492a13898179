//! The global allocator of every binary (`switch`, `issuer-sim`, `loadgen`, `acquirer-sim`):
//! mimalloc, called the way its own `malloc` is fastest.
//!
//! **Owns:** the `GlobalAlloc` glue between Rust's allocation calls and mimalloc's C API.
//!
//! **Leaves to others:** mimalloc itself (the `libmimalloc-sys` crate builds and links it), and
//! what the process asks of the kernel about its memory ([`crate::process`]).
//!
//! **Why not the `mimalloc` crate's `MiMalloc`:** it hands every allocation to
//! `mi_malloc_aligned(size, align)`, even the alignment of 1 to 8 bytes that nearly every Rust
//! allocation asks for. mimalloc's aligned entry takes its fast path only for a block of at
//! most 1 KiB whose free list happens to start at an aligned address. Anything larger goes
//! through its generic aligned function, which, unless the size rounds to a power of two,
//! asks the generic allocator for `size + align - 1` bytes (at times a larger size class) and
//! then aligns the pointer. Plain `mi_malloc` also serves blocks above 1 KiB from the generic
//! allocator; what the aligned entry adds there is its layers of checks and the padded request.
//! The switch allocates a few blocks above 1 KiB per request (the task of a request's future
//! among them), and callgrind at 16×16 on-us counted about 1,400 instructions per answer inside
//! `mi_malloc_aligned`, 4% of the switch's total (docs/performance.md, "The allocator's aligned
//! path"). Here an alignment up to 16 bytes (what mimalloc's plain `mi_malloc` gives every
//! block of 16 bytes or more, and 8 bytes to every block) takes `mi_malloc`, and any block it
//! returns is checked: one that is not aligned after all (a mimalloc built another way, a size
//! below the alignment) is freed and allocated again through the aligned entry. So the guarantee
//! does not rest on mimalloc's internals, only on `mi_malloc_aligned` doing what it says.
//! Larger alignments go straight to the aligned entry, as before.

use std::alloc::{GlobalAlloc, Layout};
use std::ffi::c_void;

use libmimalloc_sys as mi;

/// The alignment every `mi_malloc` block of 16 bytes or more has (mimalloc's
/// `MI_MAX_ALIGN_SIZE` on 64-bit targets); larger alignments always go to the aligned entry.
const PLAIN_ALIGN_MAX: usize = 16;

/// mimalloc as the global allocator: `#[global_allocator] static GLOBAL: MiMalloc = MiMalloc;`.
pub struct MiMalloc;

/// `plain(size)` when it gives a block aligned as `layout` asks, otherwise `aligned(size, align)`
/// (see the module's header).
///
/// # Safety
///
/// `layout` has a non-zero size (as `GlobalAlloc` requires of its callers); `plain` and
/// `aligned` are mimalloc's matching pair (`mi_malloc` and `mi_malloc_aligned`, or the zeroing
/// `mi_zalloc` and `mi_zalloc_aligned`).
#[inline(always)]
unsafe fn plain_first(
    layout: Layout,
    plain: unsafe extern "C" fn(usize) -> *mut c_void,
    aligned: unsafe extern "C" fn(usize, usize) -> *mut c_void,
) -> *mut u8 {
    let (size, align) = (layout.size(), layout.align());
    if align <= PLAIN_ALIGN_MAX {
        // SAFETY: a plain allocation of `size` bytes; its alignment is checked before use.
        let p = unsafe { plain(size) };
        if (p as usize) & (align - 1) == 0 {
            return p.cast();
        }
        // SAFETY: `p` came from `plain` just above and is not used again.
        unsafe { mi::mi_free(p) };
    }
    // SAFETY: `align` is a power of two (a `Layout` guarantees it).
    unsafe { aligned(size, align).cast() }
}

// SAFETY (for the whole impl): each method forwards to the mimalloc function of the same
// contract; every pointer it returns is either null or aligned to `layout.align()`, checked
// before it is returned, and every block, however it was allocated, is released by `mi_free`,
// which takes blocks from both entries.
unsafe impl GlobalAlloc for MiMalloc {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's contract (a non-zero size); mimalloc's plain and aligned pair.
        unsafe { plain_first(layout, mi::mi_malloc, mi::mi_malloc_aligned) }
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as in `alloc`, with the zeroing pair.
        unsafe { plain_first(layout, mi::mi_zalloc, mi::mi_zalloc_aligned) }
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, _layout: Layout) {
        // SAFETY: `ptr` was allocated by this allocator (the caller's contract), so by mimalloc.
        unsafe { mi::mi_free(ptr.cast()) }
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // mimalloc's aligned reallocation already takes the plain path for alignments up to a
        // word, which is nearly every reallocation (vectors of bytes and of words). For larger
        // alignments a plain `mi_realloc` would need the same check as `alloc` and, when the
        // moved block came out misaligned, a second move; they are rare enough to stay on the
        // aligned entry.
        // SAFETY: `ptr` is this allocator's block of `layout`; `layout.align()` is a power of two.
        unsafe { mi::mi_realloc_aligned(ptr.cast(), new_size, layout.align()).cast() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Asserts that `p`, from `what` on a block of `size` bytes, is not null, is aligned to
    /// `align`, and holds `byte` in its first `kept` bytes.
    ///
    /// # Safety
    ///
    /// `p`, when not null, points to at least `kept` initialised bytes.
    unsafe fn check(p: *mut u8, align: usize, kept: usize, byte: u8, what: &str, size: usize) {
        assert!(!p.is_null(), "{what}: size {size} align {align}");
        assert_eq!(p as usize % align, 0, "{what}: size {size} align {align}");
        // SAFETY: the caller's contract.
        let bytes = unsafe { std::slice::from_raw_parts(p, kept) };
        assert!(
            bytes.iter().all(|&b| b == byte),
            "{what}: size {size} align {align}"
        );
    }

    /// Every alignment from 1 byte to 4 KiB, at every size up to 64 bytes and around each power
    /// of two up to 96 KiB: each block is non-null, aligned, writable over its whole size, zeroed
    /// when asked, and keeps its bytes when a reallocation grows or shrinks it. Sizes below 16 at
    /// an alignment of 16 are the ones whose plain block can come back misaligned, so they
    /// exercise the fallback (this test fails with the check in `plain_first` taken out).
    #[test]
    fn every_block_is_aligned_and_usable() {
        let sizes: Vec<usize> = (1..=64)
            .chain((6..=16).flat_map(|s| {
                let p = 1usize << s;
                [p - 8, p - 1, p, p + 1, p + 8, p + p / 2]
            }))
            .collect();
        let alloc = MiMalloc;
        for align in (0..=12).map(|s| 1usize << s) {
            let mut kept = Vec::new();
            for &size in &sizes {
                let layout = Layout::from_size_align(size, align).expect("layout");
                // SAFETY: the layout's size is not zero; each block is used within its size and
                // freed once, with its layout.
                unsafe {
                    let p = alloc.alloc(layout);
                    check(p, align, 0, 0, "alloc", size);
                    std::ptr::write_bytes(p, 0xA5, size);
                    let z = alloc.alloc_zeroed(layout);
                    check(z, align, size, 0, "alloc_zeroed", size);
                    let half = size.div_ceil(2);
                    let shrunk = alloc.realloc(z, layout, half);
                    check(shrunk, align, half, 0, "shrinking realloc", size);
                    let grown = alloc.realloc(p, layout, size * 3);
                    check(grown, align, size, 0xA5, "growing realloc", size);
                    alloc.dealloc(
                        shrunk,
                        Layout::from_size_align(half, align).expect("layout"),
                    );
                    kept.push((
                        grown,
                        Layout::from_size_align(size * 3, align).expect("layout"),
                    ));
                }
            }
            for (p, layout) in kept {
                // SAFETY: each block once, with the layout it was last (re)allocated with.
                unsafe { alloc.dealloc(p, layout) };
            }
        }
    }
}
