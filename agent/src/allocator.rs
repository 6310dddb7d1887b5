//! How the agent hands memory back to the kernel: it frees tens of MB once at start
//! (parsing the kernel's BTF) and glibc would keep those pages mapped, tripling its
//! resident memory.

/// Returns the free heap pages to the kernel, once, after the probes are loaded.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
pub(crate) fn release_freed_memory() {
    // SAFETY: malloc_trim takes no pointers; it only returns free heap pages to the kernel.
    unsafe {
        nix::libc::malloc_trim(0);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub(crate) fn release_freed_memory() {}
