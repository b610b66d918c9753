// SPDX-License-Identifier: MIT OR Apache-2.0
//! The boot build's allocator: a bump arena in `.bss`, falling back to the system allocator.
//!
//! A boot run lives for milliseconds and allocates little (its collections are heapless; the
//! heap holds input buffers, log lines and the state file, all bounded by caps). musl's
//! allocator maps and unmaps pages for such buffers (an mmap/munmap pair each) and is slow on
//! small ones; here an allocation is a pointer bump in memory the kernel mapped at exec, a free
//! of the newest block gives it back, any other free is a no-op, and the newest block grows in
//! place. When the arena is full, the system allocator takes over: nothing fails for it.

use core::alloc::{GlobalAlloc, Layout};
use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicUsize, Ordering};
use std::alloc::System;

/// An arena of `N` bytes.
pub struct Arena<const N: usize> {
    mem: UnsafeCell<[u8; N]>,
    /// Offset of the first free byte.
    top: AtomicUsize,
}

// SAFETY: a range of `mem` belongs to one block at a time: handed out by an atomic bump of `top`,
// handed out again only after the newest block was given back (Acquire/Release on `top` order the
// last owner's writes before the next owner's).
unsafe impl<const N: usize> Sync for Arena<N> {}

impl<const N: usize> Arena<N> {
    pub const fn new() -> Self {
        Arena {
            mem: UnsafeCell::new([0; N]),
            top: AtomicUsize::new(0),
        }
    }

    fn base(&self) -> usize {
        self.mem.get() as usize
    }

    fn owns(&self, ptr: *mut u8) -> bool {
        let p = ptr as usize;
        p >= self.base() && p < self.base() + N
    }

    /// Bytes handed out and not given back (for tests and measurements).
    pub fn used(&self) -> usize {
        self.top.load(Ordering::Relaxed)
    }
}

impl<const N: usize> Default for Arena<N> {
    fn default() -> Self {
        Self::new()
    }
}

// SAFETY: blocks are disjoint ranges of `mem` (or the system allocator's), aligned as asked.
unsafe impl<const N: usize> GlobalAlloc for Arena<N> {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let base = self.base();
        let mut top = self.top.load(Ordering::Acquire);
        loop {
            let start = (base + top).next_multiple_of(layout.align()) - base;
            let Some(end) = start.checked_add(layout.size()).filter(|&e| e <= N) else {
                return System.alloc(layout);
            };
            match self
                .top
                .compare_exchange(top, end, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => return (base + start) as *mut u8,
                Err(now) => top = now,
            }
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if !self.owns(ptr) {
            return System.dealloc(ptr, layout);
        }
        // The newest block goes back; any other stays until exit.
        let start = ptr as usize - self.base();
        let _ = self.top.compare_exchange(
            start + layout.size(),
            start,
            Ordering::AcqRel,
            Ordering::Relaxed,
        );
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if self.owns(ptr) {
            // The newest block grows (or shrinks) where it is.
            let start = ptr as usize - self.base();
            let end = start + layout.size();
            if let Some(new_end) = start.checked_add(new_size).filter(|&e| e <= N) {
                if self
                    .top
                    .compare_exchange(end, new_end, Ordering::AcqRel, Ordering::Relaxed)
                    .is_ok()
                {
                    return ptr;
                }
            }
        } else {
            return System.realloc(ptr, layout, new_size);
        }
        // Elsewhere in the arena: a new block, the bytes copied (the old one stays).
        // SAFETY: size and align come from a valid layout; new_size is non-zero per the trait.
        let new = self.alloc(Layout::from_size_align_unchecked(new_size, layout.align()));
        if !new.is_null() {
            core::ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size));
            self.dealloc(ptr, layout);
        }
        new
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout(size: usize, align: usize) -> Layout {
        Layout::from_size_align(size, align).unwrap()
    }

    #[test]
    fn bumps_aligns_gives_back_the_newest_and_grows_in_place() {
        let a: Arena<4096> = Arena::new();
        // SAFETY: every pointer used is one this arena returned for the layout given, used
        // within its size, and freed once.
        unsafe {
            let p = a.alloc(layout(3, 1));
            let q = a.alloc(layout(8, 8));
            assert!(a.owns(p) && a.owns(q));
            assert_eq!(q as usize % 8, 0);
            assert!(q as usize >= p as usize + 3, "disjoint");
            q.write_bytes(7, 8);
            // The newest block grows where it is; an older one moves.
            assert_eq!(a.realloc(q, layout(8, 8), 64), q);
            assert_eq!(*q.add(7), 7);
            let p2 = a.realloc(p, layout(3, 1), 16);
            assert_ne!(p2, p);
            let used = a.used();
            a.dealloc(q, layout(64, 8));
            assert_eq!(a.used(), used, "an older block stays");
            a.dealloc(p2, layout(16, 1));
            assert_eq!(a.used(), used - 16, "the newest block goes back");
        }
    }

    #[test]
    fn a_full_arena_hands_over_to_the_system() {
        let a: Arena<64> = Arena::new();
        // SAFETY: as above; the system allocator's blocks go back to it through the arena.
        unsafe {
            let p = a.alloc(layout(48, 1));
            assert!(a.owns(p));
            let big = a.alloc(layout(1000, 8));
            assert!(!big.is_null() && !a.owns(big));
            big.write_bytes(1, 1000);
            let bigger = a.realloc(big, layout(1000, 8), 5000);
            assert!(!bigger.is_null() && !a.owns(bigger));
            assert_eq!(*bigger.add(999), 1);
            a.dealloc(bigger, layout(5000, 8));
            // Growing past the end moves the block to the system allocator.
            let moved = a.realloc(p, layout(48, 1), 100);
            assert!(!a.owns(moved));
            a.dealloc(moved, layout(100, 1));
        }
    }
}
