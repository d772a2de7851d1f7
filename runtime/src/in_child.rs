//! Unit tests of what is process-wide (an allocator switch the kernel passes on to children, a
//! panic hook, an exit) run their own body again in a process of its own, through [`rerun`].

/// Runs the unit test `test` (its path in this crate, e.g. `alloc::tests::name`) of the
/// current test binary again, alone, in a child process with `var` set to `mode` (which tells
/// the test it is the child, and what to do); returns what the child did.
pub(crate) fn rerun(test: &str, var: &str, mode: &str) -> std::process::Output {
    std::process::Command::new(std::env::current_exe().expect("test binary"))
        .args(["--exact", test, "--nocapture", "--test-threads=1"])
        .env(var, mode)
        .output()
        .expect("run the child")
}
