//! The chained panic hook: panics on greenlet stacks, and in the
//! `spawn_blocking` jobs of greenlets, are recorded for the failure report
//! instead of being printed with the OS thread's name.

use std::backtrace::{Backtrace, BacktraceStatus};
use std::sync::Once;

use crate::hub::try_hub;

/// The stack a panicking greenlet must have left for its backtrace to be
/// captured (measured: about 20 KiB in a debug build).
const BACKTRACE_ROOM: usize = 32 << 10;

/// Marks the bottom of a greenlet body's frames in a backtrace, as std's
/// `__rust_begin_short_backtrace` marks a thread's: the frames below it are
/// sylvan's entry and `catch_unwind`s, of no use in a report.
#[inline(never)]
pub(crate) fn sylvan_begin_short_backtrace<R>(f: impl FnOnce() -> R) -> R {
    let r = f();
    // Keeps this frame on the stack under `f` (no tail call).
    std::hint::black_box(());
    r
}

/// A captured backtrace cut as std's hook cuts one for `RUST_BACKTRACE=1`:
/// from the panic (below std's `__rust_end_short_backtrace`, which leaves
/// out the hook and the panic machinery) to the greenlet's body or its
/// `spawn_blocking` job (above [`sylvan_begin_short_backtrace`], which
/// wraps both; std's `__rust_begin_short_backtrace` is a fallback), renumbered,
/// with std's note. Whole
/// with `RUST_BACKTRACE=full`, or when a marker is missing.
fn short(bt: &str) -> String {
    if std::env::var_os("RUST_BACKTRACE").is_some_and(|v| v == "full") {
        return bt.to_owned();
    }
    // Each frame is a line `   N: symbol`, then its `at file:line` lines.
    let mut frames: Vec<Vec<&str>> = Vec::new();
    for line in bt.lines() {
        let head = line
            .trim_start()
            .split_once(": ")
            .is_some_and(|(n, _)| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
        match frames.last_mut() {
            Some(frame) if !head => frame.push(line),
            _ => frames.push(vec![line]),
        }
    }
    fn symbol<'a>(frame: &[&'a str]) -> &'a str {
        frame[0]
            .trim_start()
            .split_once(": ")
            .map_or("", |(_, s)| s)
    }
    let Some(top) = frames
        .iter()
        .position(|f| symbol(f).contains("__rust_end_short_backtrace"))
    else {
        return bt.to_owned();
    };
    // A greenlet's body or its `spawn_blocking` job, else a thread's
    // (std's marker, a fallback).
    let bottom = [
        "sylvan_begin_short_backtrace",
        "__rust_begin_short_backtrace",
    ]
    .iter()
    .find_map(|m| frames.iter().position(|f| symbol(f).contains(m)))
    .unwrap_or(frames.len());
    if top + 1 >= bottom {
        return bt.to_owned();
    }
    let mut out = String::new();
    for (i, frame) in frames[top + 1..bottom].iter().enumerate() {
        out.push_str(&format!("{i:>4}: {}\n", symbol(frame)));
        for at in &frame[1..] {
            out.push_str(at);
            out.push('\n');
        }
    }
    out.push_str(
        "note: Some details are omitted, run with `RUST_BACKTRACE=full` for a verbose backtrace.",
    );
    out
}

/// Whether `RUST_BACKTRACE` asks for backtraces (set, and not "0").
pub(crate) fn backtraces_asked() -> bool {
    std::env::var_os("RUST_BACKTRACE").is_some_and(|v| v != "0")
}

/// The message of the panic std raises, and cannot unwind, when a
/// destructor panics during an unwind (`core::panicking::panic_in_cleanup`).
const PANIC_IN_CLEANUP: &str = "panic in a destructor during cleanup";

/// Installs the hook once per process, in front of whatever hook was set.
pub(crate) fn install() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let location = || info.location().map(|l| l.to_string()).unwrap_or_default();
            let backtrace = || {
                let bt = Backtrace::capture();
                (bt.status() == BacktraceStatus::Captured).then(|| short(&bt.to_string()))
            };
            let site = || (location(), backtrace());
            if let Some(core) = try_hub().and_then(|hub| hub.running_greenlet_core()) {
                if info.payload_as_str() == Some(PANIC_IN_CLEANUP) {
                    // std aborts next: the greenlet's report, which would
                    // have said what panicked, will never be made.
                    stderr!(
                        "sylvan: a destructor panicked while a greenlet was already unwinding (a \
                         panic in cleanup); the process aborts"
                    );
                    for (message, location) in core.recorded_panics() {
                        stderr!("sylvan: earlier panic on that greenlet, at {location}: {message}");
                    }
                    return previous(info);
                }
                let room = core.stack_room().unwrap_or(usize::MAX);
                let bt = if room >= BACKTRACE_ROOM {
                    backtrace()
                } else {
                    // Capturing and symbolizing a backtrace takes about 20
                    // KiB of stack: on a small stack it would overflow it.
                    backtraces_asked().then(|| {
                        format!(
                            "(no backtrace: {} KiB of stack left, fewer than the {} KiB \
                                 capturing one takes; give the greenlet a larger stack_size)",
                            room >> 10,
                            BACKTRACE_ROOM >> 10
                        )
                    })
                };
                let message = info.payload_as_str().unwrap_or("Box<dyn Any>").to_owned();
                core.record_panic_site(message, location(), bt);
                return;
            }
            // A `spawn_blocking` job of a greenlet, on a pool thread: its
            // greenlet reports the panic.
            if crate::threadpool::capture_job_panic(site) {
                return;
            }
            previous(info)
        }));
    });
}
