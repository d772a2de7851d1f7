//! What a panic does in both binaries: it ends the process at once (a panic is a bug, and a
//! stalled task must not look like a clean stop).

/// Exit code of a process that panicked: Rust's own, which scripts already know.
pub const PANIC_EXIT: i32 = 101;

/// Makes a panic on any thread end the process at once with [`PANIC_EXIT`], after logging it
/// as an error event (with a backtrace when `RUST_BACKTRACE` asks for one). Call it right after
/// [`crate::init_logging`].
///
/// A panic is a bug, and tokio keeps a panicked task's panic in its `JoinHandle`: left alone,
/// a lane that panicked holds its records (nothing committed past them) and the indexer stops
/// only when the consumer next has records for that lane, then exits 0 as if it had stopped
/// cleanly; a panic unwinding `main` waits for the consumer's thread and librdkafka's close,
/// which can hang. Exiting is safe where waiting is not: committed offsets and checkpoints only
/// ever pass what was written, so a restart redoes what was in flight, as after kill -9.
pub fn exit_on_panic() {
    std::panic::set_hook(Box::new(|info| {
        let backtrace = std::backtrace::Backtrace::capture();
        let backtrace = (backtrace.status() == std::backtrace::BacktraceStatus::Captured).then(|| backtrace.to_string());
        let thread = std::thread::current();
        tracing::error!(
            panic = %info,
            thread = thread.name().unwrap_or("unnamed"),
            backtrace = backtrace.as_deref().unwrap_or("RUST_BACKTRACE=1 to record one"),
            "panicked (a bug): exiting now; a restart resumes from what was committed"
        );
        std::process::exit(PANIC_EXIT);
    }));
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Set in the child processes of [`a_panic_on_any_thread_ends_the_process`]: `hooked` or
    /// `default`.
    const CHILD: &str = "CUTOVER_PANIC_TEST_CHILD";

    /// Runs that test in a process of its own (the hook is process-wide, and the process must
    /// end); returns its exit code.
    fn child_exit_code(hooked: bool) -> Option<i32> {
        crate::in_child::rerun("panic::tests::a_panic_on_any_thread_ends_the_process", CHILD, if hooked { "hooked" } else { "default" }).status.code()
    }

    /// A worker thread panics while the main thread would go on (here: sleep, then end well,
    /// as a process whose stalled lane nobody notices). With the hook, the process ends at the
    /// panic with [`PANIC_EXIT`]; the control (Rust's default hook) goes on and exits 0.
    #[test]
    fn a_panic_on_any_thread_ends_the_process() {
        match std::env::var(CHILD).as_deref() {
            Ok(mode) => {
                if mode == "hooked" {
                    exit_on_panic();
                }
                let worker = std::thread::spawn(|| panic!("a bug in a worker"));
                assert!(worker.join().is_err(), "the worker panicked");
                std::thread::sleep(std::time::Duration::from_millis(200));
            }
            Err(_) => {
                assert_eq!(child_exit_code(false), Some(0), "control: without the hook the process goes on past the panic");
                assert_eq!(child_exit_code(true), Some(PANIC_EXIT), "with the hook the panic ends the process");
            }
        }
    }
}
