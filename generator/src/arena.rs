//! The generator's allocator. It runs once per boot, builds a few MB of policy tree and exits.
//! On a virtual machine a page fault costs microseconds, and 8 MB touched a 4 KiB page at a
//! time is some 2,000 of them: most of the run's time at 10,000 overrides. So the heap is one
//! reserved region that the kernel may back with transparent huge pages (one fault per
//! 2 MiB), handed out in order and given back only at exit; a free of the last block, and the
//! growth of the last block, happen in place. Where the region cannot be had or is used up,
//! the system allocator serves.

use nix::sys::mman::{MapFlags, MmapAdvise, ProtFlags, madvise, mmap_anonymous};
use std::alloc::{GlobalAlloc, Layout, System};
use std::ffi::c_void;
use std::num::NonZeroUsize;
use std::ptr::{self, NonNull};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Address space only: pages are backed when first touched.
const RESERVE: usize = 256 << 20;
const HUGE_PAGE: usize = 2 << 20;
/// Served in small pages before the huge ones: a small policy's whole run takes a few hundred
/// KiB, and a huge page would cost it the zeroing of 2 MiB.
const SMALL_FIRST: usize = 512 << 10;
/// Bytes handed out from the region.
const LENGTH: usize = SMALL_FIRST + RESERVE;

pub struct BootArena {
    /// Start of the region, `SMALL_FIRST` before a huge-page boundary; `None` where it could
    /// not be mapped. Set once, on first use, before any block is handed out.
    base: OnceLock<Option<usize>>,
    /// The first free byte.
    next: AtomicUsize,
}

impl BootArena {
    pub const fn new() -> Self {
        BootArena {
            base: OnceLock::new(),
            next: AtomicUsize::new(0),
        }
    }

    /// The region's start, mapped on first use.
    fn base(&self) -> Option<usize> {
        *self.base.get_or_init(|| {
            let base = map()?;
            self.next.store(base, Ordering::Relaxed);
            Some(base)
        })
    }

    fn owns(&self, ptr: *mut u8) -> bool {
        matches!(self.base.get(), Some(Some(base)) if (*base..base + LENGTH).contains(&(ptr as usize)))
    }
}

/// Maps the region (allocating nothing: this runs inside the first allocation).
fn map() -> Option<usize> {
    let length = NonZeroUsize::new(2 * HUGE_PAGE + RESERVE)?;
    // SAFETY: a fresh private anonymous mapping, touching no existing memory.
    let mapped = unsafe {
        mmap_anonymous(
            None,
            length,
            ProtFlags::PROT_READ | ProtFlags::PROT_WRITE,
            MapFlags::MAP_PRIVATE | MapFlags::MAP_NORESERVE,
        )
    }
    .ok()?;
    let huge = (mapped.as_ptr() as usize + 2 * HUGE_PAGE - 1) & !(HUGE_PAGE - 1);
    // Without THP the advice fails and the region is served a page at a time.
    // SAFETY: advice on the mapping just made.
    let _ = unsafe { madvise(ptr_at(huge), RESERVE, MmapAdvise::MADV_HUGEPAGE) };
    Some(huge - SMALL_FIRST)
}

impl Default for BootArena {
    fn default() -> Self {
        Self::new()
    }
}

fn ptr_at(address: usize) -> NonNull<c_void> {
    NonNull::new(address as *mut c_void).expect("a mapped address is not null")
}

// SAFETY: blocks are handed out from disjoint ranges claimed by compare-and-swap, aligned as
// asked, and never handed out twice while in use; foreign pointers go to the system allocator.
unsafe impl GlobalAlloc for BootArena {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if let Some(base) = self.base() {
            let mut next = self.next.load(Ordering::Relaxed);
            loop {
                let start = (next + layout.align() - 1) & !(layout.align() - 1);
                let Some(end) = start.checked_add(layout.size()) else {
                    break;
                };
                if end > base + LENGTH {
                    break;
                }
                match self
                    .next
                    .compare_exchange_weak(next, end, Ordering::Relaxed, Ordering::Relaxed)
                {
                    Ok(_) => return start as *mut u8,
                    Err(now) => next = now,
                }
            }
        }
        // SAFETY: the caller's layout, passed on.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if self.owns(ptr) {
            // The last block given back makes room again (a temporary); any other waits for exit.
            let end = ptr as usize + layout.size();
            let _ = self
                .next
                .compare_exchange(end, ptr as usize, Ordering::Relaxed, Ordering::Relaxed);
        } else {
            // SAFETY: a block the system allocator gave out with this layout.
            unsafe { System.dealloc(ptr, layout) }
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if self.owns(ptr) {
            let (start, end) = (ptr as usize, ptr as usize + layout.size());
            let limit = self.base().map_or(0, |base| base + LENGTH);
            // The last block grows or shrinks where it is.
            if start + new_size <= limit
                && self
                    .next
                    .compare_exchange(end, start + new_size, Ordering::Relaxed, Ordering::Relaxed)
                    .is_ok()
            {
                return ptr;
            }
            if new_size <= layout.size() {
                return ptr;
            }
        }
        // SAFETY: as GlobalAlloc's default: a new block, the old contents copied, the old freed.
        unsafe {
            let new_layout = Layout::from_size_align_unchecked(new_size, layout.align());
            let new = self.alloc(new_layout);
            if !new.is_null() {
                ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size));
                self.dealloc(ptr, layout);
            }
            new
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout(size: usize, align: usize) -> Layout {
        Layout::from_size_align(size, align).expect("layout")
    }

    #[test]
    fn blocks_are_aligned_disjoint_and_writable() {
        let arena = BootArena::new();
        let mut blocks = Vec::new();
        for (i, align) in [1, 8, 64, 4096, 16].into_iter().cycle().take(200).enumerate() {
            let l = layout(1 + i * 37 % 3000, align);
            // SAFETY: a non-zero layout; the block is written within its size only.
            let p = unsafe { arena.alloc(l) };
            assert!(!p.is_null() && (p as usize).is_multiple_of(align), "block {i}");
            assert!(arena.owns(p), "block {i} comes from the region");
            unsafe { ptr::write_bytes(p, i as u8, l.size()) };
            blocks.push((p, l, i as u8));
        }
        for (p, l, fill) in &blocks {
            // SAFETY: each block as written above.
            let bytes = unsafe { std::slice::from_raw_parts(*p, l.size()) };
            assert!(
                bytes.iter().all(|b| b == fill),
                "a block was overwritten by another"
            );
        }
    }

    #[test]
    fn the_last_block_grows_and_is_given_back_in_place() {
        let arena = BootArena::new();
        let l = layout(100, 8);
        // SAFETY: layouts as given; each pointer is the arena's, used within its size.
        unsafe {
            let a = arena.alloc(l);
            ptr::write_bytes(a, 7, 100);
            let grown = arena.realloc(a, l, 1 << 20);
            assert_eq!(grown, a, "the last block grows where it is");
            assert_eq!(*grown.add(99), 7);
            let b = arena.alloc(l);
            // a is no longer last: growing it moves it, its bytes with it.
            let moved = arena.realloc(a, layout(1 << 20, 8), 2 << 20);
            assert_ne!(moved, a);
            assert_eq!(*moved.add(99), 7);
            arena.dealloc(moved, layout(2 << 20, 8));
            let c = arena.alloc(l);
            assert_eq!(c, moved, "the last block given back makes room again");
            assert!(b < c);
        }
    }

    #[test]
    fn what_the_region_cannot_hold_goes_to_the_system_allocator() {
        let arena = BootArena::new();
        let big = layout(LENGTH + 1, 8);
        // SAFETY: layouts as given; the system's block is freed through the arena, which routes
        // it back.
        unsafe {
            let small = arena.alloc(layout(8, 8));
            assert!(arena.owns(small));
            let p = arena.alloc(big);
            assert!(!p.is_null() && !arena.owns(p), "too big for the region");
            *p.add(LENGTH) = 1;
            arena.dealloc(p, big);
            let grown = arena.realloc(small, layout(8, 8), LENGTH + 1);
            assert!(!grown.is_null() && !arena.owns(grown));
            arena.dealloc(grown, big);
        }
    }
}
