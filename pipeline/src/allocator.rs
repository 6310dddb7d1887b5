//! How the process hands memory back to the kernel, per role. glibc's defaults suit
//! neither of ours: the agent frees tens of MB once at start (the kernel's BTF) and
//! must give them back; the stream job frees and re-allocates the same multi-MB model
//! buffers every window and must keep them.

/// Returns the free heap pages to the kernel, once (the agent, after loading probes:
/// glibc kept the parsed BTF's pages mapped, which tripled its resident memory).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
pub fn release_freed_memory() {
    // SAFETY: malloc_trim takes no pointers; it only returns free heap pages to the kernel.
    unsafe {
        nix::libc::malloc_trim(0);
    }
}

/// Keeps freed memory for reuse (the stream job, before the first window). Scoring a
/// window allocates a few buffers of up to tens of MB per tensor operation; glibc
/// serves each from a fresh `mmap` and unmaps it on free, so every window paid for
/// zeroing new pages (page faults were a third of scoring a 100,000-node window).
/// Serving them from the heap and not trimming it keeps the pages: resident memory
/// stays at the largest window's working set instead of dropping between windows.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
pub fn keep_freed_memory() {
    // SAFETY: mallopt takes two integers and only changes allocator tunables; it is
    // called before the process has threads that allocate concurrently with it.
    unsafe {
        nix::libc::mallopt(nix::libc::M_MMAP_MAX, 0);
        nix::libc::mallopt(nix::libc::M_TRIM_THRESHOLD, i32::MAX);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn release_freed_memory() {}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn keep_freed_memory() {}
