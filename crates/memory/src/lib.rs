//! Memory accounting and reclamation for the engine.
//!
//! * [`EngineAllocator`] is the engine's global allocator: mimalloc (built
//!   without transparent huge pages, so that freed memory can be returned
//!   64 KiB at a time instead of 2 MiB) wrapped in [`Counting`], which keeps
//!   the number of heap bytes currently handed out. [`heap_bytes`] reads it;
//!   `/metrics` exports it as `permanence_memory_heap_bytes`. It tells a
//!   leak (live bytes that grow) from an allocator that keeps freed pages
//!   (resident set far above the live bytes). With the `system-allocator`
//!   feature it wraps the C library's malloc instead, for heap profilers
//!   that intercept malloc (heaptrack).
//! * [`on_thread_park`] gives memory back: mimalloc frees the pages a thread
//!   emptied only when that thread calls into it again, so a worker that
//!   goes idle after a burst would keep them for ever. The tokio runtime
//!   calls this hook whenever a worker parks; at most once per
//!   [`RECLAIM_INTERVAL`] per thread it asks mimalloc to collect that
//!   thread's free pages and return them to the system.
//! * [`resident_bytes`] reads the process's resident set from `/proc`.
//!
//! The count is exact (no sampling, no drift when threads exit) and costs
//! one relaxed atomic add per allocation on a counter shared by few
//! threads: threads are spread over [`SHARDS`] cache-line-padded counters.
//! Memory that C libraries allocate with their own `malloc` (SQLite's page
//! cache) is not in the count; it is in the resident set.

use std::alloc::{GlobalAlloc, Layout};
use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicUsize, Ordering};

/// Number of counters threads are spread over (a power of two).
pub const SHARDS: usize = 16;

#[repr(align(128))]
struct Shard(AtomicI64);

#[allow(clippy::declare_interior_mutable_const)]
const ZERO: Shard = Shard(AtomicI64::new(0));
static COUNTS: [Shard; SHARDS] = [ZERO; SHARDS];
static NEXT_SHARD: AtomicUsize = AtomicUsize::new(0);
static INSTALLED: AtomicBool = AtomicBool::new(false);

thread_local! {
    // Const-initialised and without a destructor: usable inside the
    // allocator, even while the thread is being torn down.
    static MY_SHARD: Cell<usize> = const { Cell::new(usize::MAX) };
}

fn shard() -> &'static AtomicI64 {
    let i = MY_SHARD
        .try_with(|s| {
            let mut i = s.get();
            if i == usize::MAX {
                i = NEXT_SHARD.fetch_add(1, Ordering::Relaxed) % SHARDS;
                s.set(i);
            }
            i
        })
        .unwrap_or(0);
    &COUNTS[i % SHARDS].0
}

fn add(delta: i64) {
    shard().fetch_add(delta, Ordering::Relaxed);
}

/// A global allocator that forwards to `A` and counts live bytes.
///
/// ```
/// // The engine's binary wraps mimalloc the same way.
/// #[global_allocator]
/// static GLOBAL: permanence_memory::Counting<std::alloc::System> =
///     permanence_memory::Counting::new(std::alloc::System);
///
/// fn main() {
///     GLOBAL.installed();
///     let v = vec![0u8; 1 << 20];
///     assert!(permanence_memory::heap_bytes().unwrap_or(0) >= 1 << 20);
///     drop(v);
/// }
/// ```
pub struct Counting<A> {
    inner: A,
}

impl<A> Counting<A> {
    /// Wraps `inner`.
    pub const fn new(inner: A) -> Self {
        Counting { inner }
    }
}

// SAFETY: every method forwards to the wrapped allocator with the same
// arguments and returns its result unchanged; the accounting touches only
// atomics and a const thread-local, and never allocates.
unsafe impl<A: GlobalAlloc> GlobalAlloc for Counting<A> {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = self.inner.alloc(layout);
        if !p.is_null() {
            add(layout.size() as i64);
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = self.inner.alloc_zeroed(layout);
        if !p.is_null() {
            add(layout.size() as i64);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        self.inner.dealloc(ptr, layout);
        add(-(layout.size() as i64));
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = self.inner.realloc(ptr, layout, new_size);
        if !p.is_null() {
            add(new_size as i64 - layout.size() as i64);
        }
        p
    }
}

impl<A> Counting<A> {
    /// Marks the counter as live, so that [`heap_bytes`] answers. Call it
    /// once from `main` when this allocator is the global one.
    pub fn installed(&self) {
        INSTALLED.store(true, Ordering::Relaxed);
    }
}

/// The engine's global allocator (see the crate documentation).
#[cfg(not(feature = "system-allocator"))]
pub type EngineAllocator = Counting<mimalloc::MiMalloc>;
/// The engine's global allocator: the C library's malloc, counted.
#[cfg(feature = "system-allocator")]
pub type EngineAllocator = Counting<std::alloc::System>;

/// The engine's allocator, for `#[global_allocator] static GLOBAL:
/// EngineAllocator = engine_allocator();` (then call
/// [`Counting::installed`] first thing in `main`).
pub const fn engine_allocator() -> EngineAllocator {
    #[cfg(not(feature = "system-allocator"))]
    return Counting::new(mimalloc::MiMalloc);
    #[cfg(feature = "system-allocator")]
    return Counting::new(std::alloc::System);
}

/// Prepares the process for the engine's allocator: marks `allocator` as
/// the global one (so that [`heap_bytes`] answers) and, on Linux, turns
/// transparent huge pages off for this process. With huge pages, a 2 MiB
/// page stays resident as long as one byte of it is in use, and the
/// machine's THP setting (`always` on some distributions) would decide how
/// much memory comes back after a burst. Call it first thing in `main`.
pub fn init(allocator: &EngineAllocator) {
    allocator.installed();
    #[cfg(target_os = "linux")]
    // SAFETY: PR_SET_THP_DISABLE takes integer arguments only and changes
    // a flag of the calling process; failure (old kernels) is harmless.
    unsafe {
        libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0);
    }
}

/// Each thread gives its free pages back at most this often.
pub const RECLAIM_INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);

thread_local! {
    static LAST_RECLAIM: Cell<Option<std::time::Instant>> = const { Cell::new(None) };
}

/// For `tokio::runtime::Builder::on_thread_park`: returns the calling
/// thread's free pages to the system, at most once per
/// [`RECLAIM_INTERVAL`] (monotonic clock). Cheap when not due: one clock
/// read.
pub fn on_thread_park() {
    let now = std::time::Instant::now();
    let due = LAST_RECLAIM
        .try_with(|last| match last.get() {
            Some(t) if now.duration_since(t) < RECLAIM_INTERVAL => false,
            _ => {
                last.set(Some(now));
                true
            }
        })
        .unwrap_or(false);
    if due {
        release_free_pages();
    }
}

/// Asks the allocator to free the calling thread's empty pages and return
/// them to the system (mimalloc's `mi_collect`); nothing with the C
/// library's malloc.
pub fn release_free_pages() {
    #[cfg(not(feature = "system-allocator"))]
    // SAFETY: mi_collect takes no pointer and only touches the calling
    // thread's heap and mimalloc's own thread-safe structures.
    unsafe {
        libmimalloc_sys::mi_collect(false)
    };
}

/// Heap bytes currently allocated through [`Counting`], or `None` when the
/// process does not use it (tests, a build with another allocator).
pub fn heap_bytes() -> Option<u64> {
    if !INSTALLED.load(Ordering::Relaxed) {
        return None;
    }
    let sum: i64 = COUNTS.iter().map(|s| s.0.load(Ordering::Relaxed)).sum();
    // Shards are read one after the other: a block allocated on one thread
    // and freed on another between two reads may make the sum dip below 0.
    Some(sum.max(0) as u64)
}

/// The process's resident set in bytes (`VmRSS`), from `/proc/self/status`;
/// `None` where that file does not exist or cannot be read.
pub fn resident_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    parse_vm_rss(&status)
}

fn parse_vm_rss(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let mut words = line["VmRSS:".len()..].split_whitespace();
    let n: u64 = words.next()?.parse().ok()?;
    match words.next() {
        Some("kB") => n.checked_mul(1024),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::alloc::System;

    #[test]
    fn vm_rss_is_read_in_bytes() {
        let status = "Name:\tx\nVmPeak:\t  9000 kB\nVmRSS:\t   1234 kB\nThreads:\t1\n";
        assert_eq!(parse_vm_rss(status), Some(1234 * 1024));
        assert_eq!(parse_vm_rss("VmRSS:\t12 MB\n"), None);
        assert_eq!(parse_vm_rss("Name:\tx\n"), None);
        assert_eq!(parse_vm_rss("VmRSS:\tlots kB\n"), None);
    }

    #[test]
    fn resident_set_of_this_process_is_plausible() {
        let rss = resident_bytes().expect("Linux has /proc/self/status");
        assert!(rss > 100 * 1024 && rss < 64 << 30, "{rss}");
    }

    #[test]
    fn counts_follow_allocations_across_threads() {
        // Not installed as the global allocator here: drive it by hand.
        let a = Counting::new(System);
        a.installed();
        let before = heap_bytes().unwrap_or(0) as i64;
        let layout = Layout::from_size_align(1000, 8).unwrap_or(Layout::new::<u8>());
        let mut blocks = Vec::new();
        for _ in 0..10 {
            // SAFETY: non-zero size; every block is freed below with the
            // same layout.
            let p = unsafe { a.alloc(layout) };
            assert!(!p.is_null());
            blocks.push(p as usize);
        }
        let grown = unsafe { a.realloc(blocks[0] as *mut u8, layout, 3000) };
        assert!(!grown.is_null());
        blocks[0] = grown as usize;
        let after = heap_bytes().unwrap_or(0) as i64;
        assert_eq!(after - before, 12_000);
        // Freed on other threads: the total still comes back.
        let big = Layout::from_size_align(3000, 8).unwrap_or(layout);
        let first = blocks.remove(0);
        std::thread::scope(|s| {
            let a = &a;
            s.spawn(move || unsafe { a.dealloc(first as *mut u8, big) });
            for p in blocks {
                s.spawn(move || unsafe { a.dealloc(p as *mut u8, layout) });
            }
        });
        assert_eq!(heap_bytes().unwrap_or(0) as i64, before);
    }
}
