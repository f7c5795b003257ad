//! The static (musl) binaries' memory allocator: dlmalloc, a pure-Rust port of Doug Lea's
//! malloc with one heap, for blocks under [`DIRECT`]; anonymous mappings straight from the
//! kernel for larger ones, given back the moment they are freed.
//!
//! Why not musl's own malloc (mallocng): after the benchmarks' load it kept about 9 MiB
//! (bench-smtp) to 12 MiB (bench-imap) of freed memory resident, spread over ~90 small
//! mappings, where glibc's malloc came back to 2 MiB. Why the direct mappings: argon2
//! takes 7 MiB per login check; inside a heap, such a block is only returned when nothing
//! after it is in use. Not jemalloc: it breaks on the Pi 5's 16 KiB pages. glibc builds
//! keep glibc's malloc. LMDB's C code allocates with musl's malloc either way.

use std::alloc::{GlobalAlloc, Layout};
use std::ptr;

/// Blocks of this size and more are mapped directly.
pub const DIRECT: usize = 256 * 1024;
/// Mappings are page-aligned (4 KiB at least): larger alignments go to the heap.
const PAGE_ALIGN: usize = 4096;

static HEAP: dlmalloc::GlobalDlmalloc = dlmalloc::GlobalDlmalloc;

/// See the module doc.
pub struct Allocator;

fn is_direct(layout: &Layout) -> bool {
    layout.size() >= DIRECT && layout.align() <= PAGE_ALIGN
}

fn map(size: usize) -> *mut u8 {
    // SAFETY: a fresh private anonymous mapping; no existing memory is touched.
    let p = unsafe {
        libc::mmap(
            ptr::null_mut(),
            size,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    if p == libc::MAP_FAILED {
        ptr::null_mut()
    } else {
        p.cast()
    }
}

unsafe impl GlobalAlloc for Allocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if is_direct(&layout) {
            return map(layout.size());
        }
        // SAFETY: the caller's contract is passed on unchanged.
        unsafe { HEAP.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if is_direct(&layout) {
            // Fresh anonymous pages are zero.
            return map(layout.size());
        }
        // SAFETY: as in `alloc`.
        unsafe { HEAP.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if is_direct(&layout) {
            // SAFETY: `ptr` came from `map` with this size (the layout decides, the same
            // way at both ends).
            unsafe { libc::munmap(ptr.cast(), layout.size()) };
            return;
        }
        // SAFETY: `ptr` came from the heap with this layout.
        unsafe { HEAP.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: the caller guarantees a valid layout for `new_size`.
        let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        match (is_direct(&layout), is_direct(&new_layout)) {
            // SAFETY: a heap block stays a heap block.
            (false, false) => unsafe { HEAP.realloc(ptr, layout, new_size) },
            (true, true) => {
                // SAFETY: `ptr` is a mapping of `layout.size()` bytes; the kernel moves it.
                let p = unsafe {
                    libc::mremap(ptr.cast(), layout.size(), new_size, libc::MREMAP_MAYMOVE)
                };
                if p == libc::MAP_FAILED {
                    ptr::null_mut()
                } else {
                    p.cast()
                }
            }
            _ => {
                // Crossing the threshold: a new block, the bytes copied, the old one freed.
                // SAFETY: the new layout is valid; both blocks hold at least `keep` bytes.
                unsafe {
                    let new = self.alloc(new_layout);
                    if !new.is_null() {
                        let keep = layout.size().min(new_size);
                        ptr::copy_nonoverlapping(ptr, new, keep);
                        self.dealloc(ptr, layout);
                    }
                    new
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_and_large_blocks_round_trip() {
        let a = Allocator;
        for size in [1, 100, DIRECT - 1, DIRECT, 3 * DIRECT, 7 << 20] {
            let layout = Layout::from_size_align(size, 16).unwrap();
            unsafe {
                let p = a.alloc_zeroed(layout);
                assert!(!p.is_null());
                assert!(std::slice::from_raw_parts(p, size).iter().all(|&b| b == 0));
                p.write_bytes(0xab, size);
                // Grow across and within the threshold, then shrink back.
                let grown = a.realloc(p, layout, size * 2);
                assert!(!grown.is_null());
                assert!(std::slice::from_raw_parts(grown, size)
                    .iter()
                    .all(|&b| b == 0xab));
                let bigger = Layout::from_size_align(size * 2, 16).unwrap();
                let shrunk = a.realloc(grown, bigger, size.div_ceil(2));
                assert!(!shrunk.is_null());
                assert_eq!(*shrunk, 0xab);
                a.dealloc(
                    shrunk,
                    Layout::from_size_align(size.div_ceil(2), 16).unwrap(),
                );
            }
        }
        // A page-plus alignment stays on the heap.
        let layout = Layout::from_size_align(DIRECT, 8192).unwrap();
        unsafe {
            let p = a.alloc(layout);
            assert_eq!(p as usize % 8192, 0);
            a.dealloc(p, layout);
        }
    }
}
