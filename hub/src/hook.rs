//! The chained panic hook: panics on greenlet stacks, and in the
//! `spawn_blocking` jobs of greenlets, are recorded for the failure report
//! instead of being printed with the OS thread's name.

use std::backtrace::{Backtrace, BacktraceStatus};
use std::sync::Once;

use crate::hub::try_hub;

/// The stack a panicking greenlet must have left for its backtrace to be
/// captured (measured: about 20 KiB in a debug build).
const BACKTRACE_ROOM: usize = 32 << 10;

/// Installs the hook once per process, in front of whatever hook was set.
pub(crate) fn install() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let location = || info.location().map(|l| l.to_string()).unwrap_or_default();
            let backtrace = || {
                let bt = Backtrace::capture();
                (bt.status() == BacktraceStatus::Captured).then(|| bt.to_string())
            };
            let site = || (location(), backtrace());
            if let Some(core) = try_hub().and_then(|hub| hub.running_greenlet_core()) {
                let room = core.stack_room().unwrap_or(usize::MAX);
                let bt = if room >= BACKTRACE_ROOM {
                    backtrace()
                } else {
                    // Capturing and symbolizing a backtrace takes about 20
                    // KiB of stack: on a small stack it would overflow it.
                    std::env::var_os("RUST_BACKTRACE")
                        .is_some_and(|v| v != "0")
                        .then(|| {
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
