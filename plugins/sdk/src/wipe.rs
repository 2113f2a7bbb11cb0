//! The plugin's memory allocator: the standard one, except that every block
//! is wiped when it is freed.
//!
//! The host keeps plugin instances and reuses them for the next request,
//! whoever makes it. Without wiping, the bytes of a secret the plugin
//! handled (a value it read, the plaintext `unseal` gave it, a request body
//! it built) would stay in the instance's linear memory after the call: a
//! later bug or a hostile dependency in the same plugin could find them.
//! Wiping on free covers every buffer the plugin and its generated bindings
//! release, including the value a `get` returns, which the bindings free
//! once the host has copied it out.
//!
//! Linking the SDK installs this allocator; a plugin cannot install another.

use std::alloc::{GlobalAlloc, Layout, System};

use zeroize::Zeroize;

/// The system allocator, wiping blocks on free. Growing a block moves it
/// through `alloc` + copy + `dealloc`, so the old place is wiped too.
struct WipingAllocator;

// SAFETY: every call is forwarded to `System` with the caller's layout;
// `dealloc` only writes inside the block it is about to free.
unsafe impl GlobalAlloc for WipingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` is a live block of `layout.size()` bytes that the
        // caller gives up; nothing else refers to it any more.
        unsafe {
            std::slice::from_raw_parts_mut(ptr, layout.size()).zeroize();
            System.dealloc(ptr, layout);
        }
    }
}

#[global_allocator]
static ALLOCATOR: WipingAllocator = WipingAllocator;
