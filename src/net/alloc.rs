//! The allocator for large buffers.
//!
//! Real mode moves model vectors of tens of megabytes per frame: every
//! round frees one and allocates the next. The system allocator hands
//! blocks that large straight back to the kernel, so each new one is
//! faulted in and zeroed again — measured as a quarter of a push+pull round
//! of 10^7 floats. mimalloc keeps such memory for reuse (`pssim bench`: the
//! host's push+pull rate went from 0.39x to 0.5–0.8x of raw TCP), but made
//! the simulator's many small allocations about 6% slower. [`Split`] sends
//! each allocation by its size: large ones to mimalloc, the rest to the
//! system allocator. A block is freed by the allocator its size chose, so
//! the two never see each other's memory.
//!
//! May import: `crate::core`, `crate::run`, `crate::scenario`,
//! `crate::outcome`, `super` (net), tokio. Never: `crate::sim` (hosts never
//! import each other), madsim.

use std::alloc::{GlobalAlloc, Layout, System};

/// Allocations of at least this many bytes go to mimalloc.
pub const LARGE: usize = 1 << 20;

/// Routes allocations by size: `>= LARGE` bytes to mimalloc, smaller to the
/// system allocator.
pub struct Split;

fn large(layout: &Layout) -> bool {
    layout.size() >= LARGE
}

// SAFETY: every method delegates to an allocator chosen by the layout's
// size; `dealloc` and `realloc` receive the layout the block was allocated
// with, so a block is always returned to the allocator that made it (a
// realloc that crosses the boundary moves the block between them).
unsafe impl GlobalAlloc for Split {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if large(&layout) {
            mimalloc::MiMalloc.alloc(layout)
        } else {
            System.alloc(layout)
        }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if large(&layout) {
            mimalloc::MiMalloc.alloc_zeroed(layout)
        } else {
            System.alloc_zeroed(layout)
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if large(&layout) {
            mimalloc::MiMalloc.dealloc(ptr, layout)
        } else {
            System.dealloc(ptr, layout)
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let was = large(&layout);
        if was == (new_size >= LARGE) {
            return if was {
                mimalloc::MiMalloc.realloc(ptr, layout, new_size)
            } else {
                System.realloc(ptr, layout, new_size)
            };
        }
        // Crossing the boundary: allocate on the other side and move.
        let new_layout = Layout::from_size_align_unchecked(new_size, layout.align());
        let new = self.alloc(new_layout);
        if !new.is_null() {
            std::ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size));
            self.dealloc(ptr, layout);
        }
        new
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_cross_the_boundary_intact() {
        let a = Split;
        unsafe {
            let small = Layout::from_size_align(1024, 8).unwrap();
            let p = a.alloc(small);
            for i in 0..1024 {
                *p.add(i) = (i % 251) as u8;
            }
            let q = a.realloc(p, small, 2 * LARGE);
            for i in 0..1024 {
                assert_eq!(*q.add(i), (i % 251) as u8);
            }
            let big = Layout::from_size_align(2 * LARGE, 8).unwrap();
            let r = a.realloc(q, big, 512);
            for i in 0..512 {
                assert_eq!(*r.add(i), (i % 251) as u8);
            }
            a.dealloc(r, Layout::from_size_align(512, 8).unwrap());
            let z = a.alloc_zeroed(big);
            assert!((0..2 * LARGE).step_by(4096).all(|i| *z.add(i) == 0));
            a.dealloc(z, big);
        }
    }
}
