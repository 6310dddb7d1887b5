//! How the stream job uses the allocator: scoring a window allocates a few buffers of
//! up to tens of MB per tensor operation, and glibc's defaults serve each from a fresh
//! `mmap` and unmap it on free.

/// Keeps freed memory for reuse; call before the first window, before the process
/// has threads. Serving the buffers from the heap and not trimming it keeps their
/// pages: every window paid for zeroing new pages otherwise (page faults were a third
/// of scoring a 100,000-node window), and resident memory stays at the largest
/// window's working set instead of dropping between windows.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
pub fn keep_freed_memory() {
    // SAFETY: mallopt takes two integers and only changes allocator tunables; it is
    // called before the process has threads that allocate concurrently with it.
    unsafe {
        libc::mallopt(libc::M_MMAP_MAX, 0);
        libc::mallopt(libc::M_TRIM_THRESHOLD, i32::MAX);
    }
}

/// Elsewhere the allocator's defaults stay.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn keep_freed_memory() {}
