//! The memory allocator of both binaries: mimalloc, for the Rust code and (through its
//! `override` feature) for the C code linked in, librdkafka above all, whose per-message
//! allocations went through glibc's allocator, whose heaps grew and shrank under them.
//!
//! Each binary declares `#[global_allocator] static ALLOCATOR: runtime::alloc::MiMalloc` and
//! calls [`tune`] first thing in `main`.

pub use mimalloc::MiMalloc;

/// mimalloc's `mi_option_purge_decommits` (its `mimalloc.h`, v3: the sixth option).
const PURGE_DECOMMITS: libmimalloc_sys::mi_option_t = 5;

/// Tunes the allocator for the writers' load; call it first thing in `main`.
///
/// - Memory mimalloc purges (pages left free for a while) is reset (`MADV_FREE`: the kernel
///   takes it back only when it needs it) instead of decommitted. A decommitted page is faulted
///   in and cleared again when it is next used, and the writers free and reuse their memory
///   batch after batch: with decommits, page faults and the kernel clearing pages were about
///   15% of the indexer's CPU (perf; 13,000 minor faults per 309,343-document replay, 2,000
///   with resets).
/// - Transparent huge pages are turned off for the process (`PR_SET_THP_DISABLE`). mimalloc
///   asks for them on its arenas (`MADV_HUGEPAGE`), so each fault there has the kernel clear
///   2 MiB, and a purge splits the huge page again: with them, clearing pages was still about
///   12% of the indexer's CPU (perf, 309,343-document replay); without, its client CPU fell
///   about 6% and its peak RSS about 25% (150 to 115 MB). The switch holds for memory faulted
///   in later, including the arena mimalloc reserved before `main`; a kernel that refuses it
///   leaves the default.
pub fn tune() {
    // SAFETY: sets one of mimalloc's options, which it reads on use; any value is valid.
    unsafe { libmimalloc_sys::mi_option_set(PURGE_DECOMMITS, 0) }
    // SAFETY: prctl with integer arguments only; it changes no memory of the process.
    unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0) };
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Set in the child processes [`tune_resets_purges_and_turns_huge_pages_off`] starts:
    /// `tuned` or `default`.
    const CHILD: &str = "CUTOVER_ALLOC_TEST_CHILD";

    /// A mimalloc option as it reads it.
    fn option(option: libmimalloc_sys::mi_option_t) -> std::ffi::c_long {
        // SAFETY: reads one of mimalloc's options.
        unsafe { libmimalloc_sys::mi_option_get(option) }
    }

    /// The child's part: tunes (or not), then prints the options around [`PURGE_DECOMMITS`]
    /// and by how much the process's huge pages (`AnonHugePages`, kB) grow when 64 MiB that
    /// mimalloc allocated are faulted in (memory faulted in before `tune` stays as it was).
    fn child(tuned: bool) {
        if tuned {
            tune();
        }
        let options = [PURGE_DECOMMITS - 1, PURGE_DECOMMITS, PURGE_DECOMMITS + 1].map(option);
        let size = 64 << 20;
        // SAFETY: a fresh allocation of `size` bytes, written in full, then freed.
        let huge_kb = unsafe {
            let before = anon_huge_pages_kb();
            let p = libmimalloc_sys::mi_malloc(size).cast::<u8>();
            assert!(!p.is_null());
            std::ptr::write_bytes(p, 1, size);
            let kb = anon_huge_pages_kb().saturating_sub(before);
            libmimalloc_sys::mi_free(p.cast());
            kb
        };
        println!("\noptions={options:?} huge_kb={huge_kb}");
    }

    fn anon_huge_pages_kb() -> u64 {
        let rollup = std::fs::read_to_string("/proc/self/smaps_rollup").expect("smaps_rollup");
        let line = rollup.lines().find(|l| l.starts_with("AnonHugePages:")).expect("AnonHugePages line");
        line.split_whitespace().nth(1).and_then(|n| n.parse().ok()).expect("a number of kB")
    }

    /// Runs [`child`] in a process of its own (what `tune` switches is process-wide, and the
    /// THP switch is inherited, so no test may call it in this one); returns what it printed.
    fn in_child(tuned: bool) -> String {
        let out = crate::in_child::rerun("alloc::tests::tune_resets_purges_and_turns_huge_pages_off", CHILD, if tuned { "tuned" } else { "default" });
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "child failed: {stdout}{}", String::from_utf8_lossy(&out.stderr));
        stdout.lines().find(|l| l.starts_with("options=")).unwrap_or_else(|| panic!("no report in {stdout}")).to_owned()
    }

    /// The option index is mimalloc's `purge_decommits` (default 1: decommit), next to
    /// `arena_eager_commit` (default 2) and `allow_large_os_pages` (default 0): an index
    /// shifted by a mimalloc upgrade fails here, not silently in production. After [`tune`],
    /// purges reset, and memory mimalloc hands out is faulted in as small pages; the control
    /// (mimalloc's defaults) gets huge pages wherever the kernel offers them.
    #[test]
    fn tune_resets_purges_and_turns_huge_pages_off() {
        if let Ok(mode) = std::env::var(CHILD) {
            return child(mode == "tuned");
        }
        let (default, tuned) = (in_child(false), in_child(true));
        assert_eq!(tuned, "options=[2, 0, 0] huge_kb=0");
        let thp = std::fs::read_to_string("/sys/kernel/mm/transparent_hugepage/enabled").unwrap_or_default();
        if thp.contains("[never]") {
            eprintln!("this kernel has transparent huge pages off (`{}`): the control cannot show them", thp.trim());
            assert_eq!(default, "options=[2, 1, 0] huge_kb=0");
        } else {
            let huge_kb: u64 =
                default.strip_prefix("options=[2, 1, 0] huge_kb=").and_then(|kb| kb.parse().ok()).unwrap_or_else(|| panic!("control: {default}"));
            assert!(huge_kb >= 2048, "the control (mimalloc's defaults) got no huge pages, so the test cannot tell: {default}");
        }
    }
}
