//! A global allocator that counts allocations and bytes allocated, so the
//! load generator can report both per call. Install it in a binary with
//! `#[global_allocator] static A: weft_benches::alloc::CountingAlloc = CountingAlloc;`.
#![allow(unsafe_code)]

use std::{
    alloc::{GlobalAlloc, Layout, System},
    sync::atomic::{AtomicU64, Ordering::Relaxed},
};

static ALLOCS: AtomicU64 = AtomicU64::new(0);
static BYTES: AtomicU64 = AtomicU64::new(0);
/// Allocations per [`Side`], for tests that run a server and a client in
/// one process, each on threads of its own.
static BY_SIDE: [AtomicU64; 3] = [AtomicU64::new(0), AtomicU64::new(0), AtomicU64::new(0)];

std::thread_local! {
    // Const-initialised and without a destructor: reading it never
    // allocates, so the allocator may.
    static SIDE: std::cell::Cell<u8> = const { std::cell::Cell::new(0) };
}

/// Which side a thread works for, for [`side_count`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// Neither (the default).
    Other = 0,
    /// The server's threads.
    Server = 1,
    /// The client's threads.
    Client = 2,
}

/// Count this thread's allocations from now on as `side`'s.
pub fn set_side(side: Side) {
    SIDE.with(|s| s.set(side as u8));
}

/// Allocations so far by the threads of `side`.
pub fn side_count(side: Side) -> u64 {
    BY_SIDE[side as usize].load(Relaxed)
}

fn count(size: usize) {
    ALLOCS.fetch_add(1, Relaxed);
    BYTES.fetch_add(size as u64, Relaxed);
    let side = SIDE.try_with(|s| s.get()).unwrap_or(0);
    BY_SIDE[usize::from(side).min(2)].fetch_add(1, Relaxed);
}

/// The system allocator, counting. A `realloc` counts as one allocation of
/// the new size (it may move and copy); frees are not counted.
#[derive(Debug, Clone, Copy, Default)]
pub struct CountingAlloc;

// SAFETY: every method forwards to `System` with the arguments it was given,
// so `System`'s guarantees are ours; counting only touches atomics and
// never allocates (the side is a const thread-local `Cell`), so it cannot
// recurse into the allocator.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count(layout.size());
        // SAFETY: the caller upholds `GlobalAlloc::alloc`'s contract for
        // `layout`, which is the same for `System`.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count(layout.size());
        // SAFETY: as for `alloc`.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` was allocated by `System` (through us) with `layout`.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count(new_size);
        // SAFETY: `ptr` was allocated by `System` (through us) with `layout`,
        // and the caller upholds `realloc`'s contract for `new_size`.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

/// Allocations and bytes allocated so far by this process (zero unless
/// [`CountingAlloc`] is the global allocator).
pub fn counts() -> (u64, u64) {
    (ALLOCS.load(Relaxed), BYTES.load(Relaxed))
}
