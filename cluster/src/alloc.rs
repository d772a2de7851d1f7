//! The memory allocator of both binaries: mimalloc, for the Rust code and (through its
//! `override` feature) for the C code linked in, librdkafka above all, whose per-message
//! allocations went through glibc's allocator, whose heaps grew and shrank under them.
//!
//! Each binary declares `#[global_allocator] static ALLOCATOR: cluster::alloc::MiMalloc` and
//! calls [`tune`] first thing in `main`.

pub use mimalloc::MiMalloc;

/// mimalloc's `mi_option_purge_decommits` (its `mimalloc.h`, v3: the sixth option).
const PURGE_DECOMMITS: libmimalloc_sys::mi_option_t = 5;

/// Memory mimalloc purges (pages left free for a while) is reset (`MADV_FREE`: the kernel takes
/// it back only when it needs it) instead of decommitted. A decommitted page is faulted in and
/// cleared again when it is next used, and the writers free and reuse their memory batch after
/// batch: with decommits, page faults and the kernel clearing pages were about 15% of the
/// indexer's CPU (perf; 13,000 minor faults per 309,343-document replay, 2,000 with resets).
pub fn tune() {
    // SAFETY: sets one of mimalloc's options, which it reads on use; any value is valid.
    unsafe { libmimalloc_sys::mi_option_set(PURGE_DECOMMITS, 0) }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The option [`tune`] sets, as mimalloc reads it.
    fn purge_decommits() -> std::ffi::c_long {
        // SAFETY: reads one of mimalloc's options.
        unsafe { libmimalloc_sys::mi_option_get(PURGE_DECOMMITS) }
    }

    /// The option index is mimalloc's `purge_decommits` (default 1: decommit), next to
    /// `arena_eager_commit` (4, default 2) and `allow_large_os_pages` (6, default 0): an index
    /// shifted by a mimalloc upgrade fails here, not silently in production.
    #[test]
    fn tune_switches_purges_to_resets() {
        // SAFETY: reads mimalloc's options.
        let (eager, large) = unsafe { (libmimalloc_sys::mi_option_get(PURGE_DECOMMITS - 1), libmimalloc_sys::mi_option_get(PURGE_DECOMMITS + 1)) };
        assert_eq!((eager, purge_decommits(), large), (2, 1, 0), "mimalloc's defaults around the option");
        tune();
        assert_eq!(purge_decommits(), 0);
    }
}
